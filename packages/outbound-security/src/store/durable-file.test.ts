import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createFileOnce, replaceFile, syncDirectory } from './durable-file';

/** From now until the test ends, an fsync of a directory fails with `code` (an fsync of a file still works). */
async function refuseDirectorySync(t: TestContext, code: string): Promise<void> {
  const probe = await fs.promises.open(os.tmpdir(), 'r');
  const handles = Object.getPrototypeOf(probe) as { sync(): Promise<void>; stat(): Promise<fs.Stats> };
  await probe.close();
  const sync = handles.sync;
  t.mock.method(handles, 'sync', async function (this: typeof handles) {
    if ((await this.stat()).isDirectory()) throw Object.assign(new Error(`${code}: fsync`), { code });
    return sync.call(this);
  });
}

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-file-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const code of ['EINVAL', 'ENOTSUP']) {
  test(`ST-5: on a file system that refuses a directory fsync (${code}) files are still replaced and created`, async (t) => {
    const dir = tempDir(t);
    await refuseDirectorySync(t, code);
    const file = path.join(dir, 'sub', 'entry.json');
    await replaceFile(file, 'one');
    await replaceFile(file, 'two');
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    assert.equal(await createFileOnce(path.join(dir, 'once'), 'first'), true);
    assert.equal(await createFileOnce(path.join(dir, 'once'), 'second'), false);
    assert.equal(fs.readFileSync(path.join(dir, 'once'), 'utf8'), 'first');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['once', 'sub'], 'no temporary file is left');
  });
}

test('ST-5: any other failure of a directory fsync (EIO) fails the write: the name is not relied on', async (t) => {
  const dir = tempDir(t);
  await refuseDirectorySync(t, 'EIO');
  await assert.rejects(replaceFile(path.join(dir, 'entry.json'), 'one'), /EIO/);
  await assert.rejects(syncDirectory(dir), /EIO/);
});

test('ST-5: a replaced file gets the mode asked for (0600 for the TLS report outbox)', async (t) => {
  const dir = tempDir(t);
  await replaceFile(path.join(dir, 'private'), 'x', { mode: 0o600 });
  assert.equal(fs.statSync(path.join(dir, 'private')).mode & 0o777, 0o600);
});
