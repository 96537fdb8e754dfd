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

test('ST-5: a policy is cached on a file system that refuses a directory fsync (EINVAL): the write is not failed for it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-store-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // What such a file system answers: fsync of a file works, fsync of a directory is EINVAL.
  const probe = await fs.promises.open(dir, 'r');
  const handles = Object.getPrototypeOf(probe) as { sync(): Promise<void>; stat(): Promise<fs.Stats> };
  await probe.close();
  const sync = handles.sync;
  t.mock.method(handles, 'sync', async function (this: typeof handles) {
    if ((await this.stat()).isDirectory()) throw Object.assign(new Error('EINVAL: invalid argument, fsync'), { code: 'EINVAL' });
    return sync.call(this);
  });
  const store = new FilePolicyStore(dir);
  const entry = { domain: 'example.com', id: 'a1', text: 'version: STSv1\n', fetchedAt: 1, expiresAt: 2, checkedAt: 1, usedAt: 1 };
  await store.put(entry);
  assert.deepEqual(await store.get('example.com'), { kind: 'entry', entry });
});
