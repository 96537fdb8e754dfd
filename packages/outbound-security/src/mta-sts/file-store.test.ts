import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FilePolicyStore } from './file-store';

test('OPS-6: every delete changes the purge generation, nothing else does; a purge with no cache directory is a no-op', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-store-'));
  try {
    const missing = new FilePolicyStore(path.join(dir, 'never-created'));
    assert.equal(await missing.delete('example.com'), false);
    const store = new FilePolicyStore(dir);
    const entry = {
      domain: 'example.com',
      id: 'a1',
      text: 'version: STSv1\n',
      fetchedAt: 1,
      expiresAt: Date.now() + 60_000,
      checkedAt: 1,
      usedAt: 1,
    };
    const first = store.purgeGeneration();
    await store.put(entry);
    await store.get('example.com');
    assert.equal(store.purgeGeneration(), first, 'writes and reads leave it alone');
    assert.equal(await store.delete('example.com'), true);
    const second = store.purgeGeneration();
    assert.notEqual(second, first);
    assert.equal(await store.delete('example.com'), false);
    assert.notEqual(store.purgeGeneration(), second, 'a purge of nothing still tells the workers');
    assert.deepEqual(
      (await store.list()).map((e) => e.domain),
      [],
      'the marker is not an entry',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
