import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { WatchedStat, type WatchedStatOptions } from './watched-stat';

const run = promisify(execFile);

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'watched-stat-'));
  file = path.join(dir, '.changes');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A WatchedStat whose stat calls are counted; `clock.now` is the time it sees. */
function counted(options: WatchedStatOptions = {}): { check: WatchedStat; stats: () => number; clock: { now: number } } {
  let stats = 0;
  const clock = { now: 1_000_000 };
  const check = new WatchedStat(file, {
    now: () => clock.now,
    statSync: (f) => {
      stats++;
      return fs.statSync(f, { throwIfNoEntry: false });
    },
    ...options,
  });
  return { check, stats: () => stats, clock };
}

/** Appends `text` to `target` from another process; resolves when that process has exited. */
async function appendFromAnotherProcess(target: string, text: string): Promise<void> {
  await run('sh', ['-c', 'printf %s "$1" >> "$2"', 'sh', text, target]);
}

describe('WatchedStat', () => {
  test('OPS-6: while nothing changes in the directory, a thousand checks make one stat', () => {
    fs.writeFileSync(file, 'a\n');
    const { check, stats } = counted();
    for (let i = 0; i < 1000; i++) assert.equal(check.stat()?.size, 2);
    assert.equal(check.watching, true);
    assert.equal(stats(), 1);
    check.close();
  });

  test('OPS-6: a change by another process is seen by the first check after hearing that it finished', async () => {
    fs.writeFileSync(file, '');
    const { check, stats } = counted({ maxAgeMs: 3_600_000 });
    assert.equal(check.stat()?.size, 0);
    for (let i = 1; i <= 20; i++) {
      await appendFromAnotherProcess(file, 'x');
      // No wait, no safety net (an hour): the notification was ready before the exit of the writer.
      assert.equal(check.stat()?.size, i, `append ${i}`);
    }
    const before = stats();
    check.stat();
    check.stat();
    assert.equal(stats(), before, 'no stat without a new change');
    check.close();
  });

  test('OPS-6: the file appearing, being replaced, and the directory being replaced are all seen', async () => {
    const { check } = counted({ maxAgeMs: 3_600_000 });
    assert.equal(check.stat(), undefined);
    await appendFromAnotherProcess(file, 'ab');
    assert.equal(check.stat()?.size, 2, 'created');
    const inode = check.stat()?.ino;
    await run('sh', ['-c', 'printf abc > "$1.new" && mv "$1.new" "$1"', 'sh', file]);
    assert.equal(check.stat()?.size, 3, 'replaced');
    assert.notEqual(check.stat()?.ino, inode);
    await run('sh', ['-c', 'rm -rf "$1" && mkdir "$1" && printf abcd > "$1/.changes"', 'sh', dir]);
    // The watch on the removed directory ended; the next check stats and watches the new one.
    assert.equal(check.stat()?.size, 4, 'directory replaced');
    await appendFromAnotherProcess(file, 'e');
    assert.equal(check.stat()?.size, 5, 'the new directory is watched');
    check.close();
  });

  test('OPS-6: at least one stat every maxAgeMs even without a notification', () => {
    fs.writeFileSync(file, 'a\n');
    const { check, stats, clock } = counted({ maxAgeMs: 1000 });
    check.stat();
    clock.now += 999;
    check.stat();
    assert.equal(stats(), 1);
    clock.now += 1;
    check.stat();
    assert.equal(stats(), 2);
    check.close();
  });

  test('OPS-6: invalidate() makes the next check stat (a write by this process)', () => {
    fs.writeFileSync(file, 'a\n');
    const { check, stats } = counted();
    check.stat();
    fs.appendFileSync(file, 'b\n');
    check.invalidate();
    assert.equal(check.stat()?.size, 4);
    assert.equal(stats(), 2);
    check.close();
  });

  test('OPS-6: a directory that cannot be watched is stat-ed at every check, and watching is tried again later', () => {
    fs.writeFileSync(file, 'a\n');
    let attempts = 0;
    let fail = true;
    const { check, stats, clock } = counted({
      maxAgeMs: 1000,
      watch: (d, listener) => {
        attempts++;
        if (fail) throw Object.assign(new Error('inotify watch limit reached'), { code: 'ENOSPC' });
        return fs.watch(d, { persistent: false }, listener);
      },
    });
    for (let i = 0; i < 5; i++) check.stat();
    assert.equal(stats(), 5, 'every check stats');
    assert.equal(attempts, 1, 'watching is not tried at every check');
    fail = false;
    clock.now += 1000;
    check.stat();
    assert.equal(attempts, 2);
    assert.equal(check.watching, true);
    const before = stats();
    check.stat();
    assert.equal(stats(), before, 'watched now: no stat');
    check.close();
  });

  test('OPS-6: a directory that does not exist yet is waited for through its parent, without a stat per check', async () => {
    fs.rmSync(dir, { recursive: true });
    const { check, stats } = counted({ maxAgeMs: 3_600_000 });
    assert.equal(check.stat(), undefined);
    assert.equal(check.waitingForDirectory, true);
    for (let i = 0; i < 100; i++) assert.equal(check.stat(), undefined);
    assert.equal(stats(), 1, 'no stat while nothing appears');
    await run('sh', ['-c', 'mkdir "$1" && printf abc > "$1/.changes"', 'sh', dir]);
    assert.equal(check.stat()?.size, 3, 'the directory and the file appeared');
    assert.equal(check.watching, true, 'the directory itself is watched now');
    await appendFromAnotherProcess(file, 'd');
    assert.equal(check.stat()?.size, 4);
    check.close();
  });

  test('OPS-6: without the directory nor its parent, every check stats, and watching is tried again later', () => {
    const deeper = path.join(dir, 'missing', 'sub', '.changes');
    let stats = 0;
    const clock = { now: 0 };
    const check = new WatchedStat(deeper, {
      maxAgeMs: 1000,
      now: () => clock.now,
      statSync: (f) => (stats++, fs.statSync(f, { throwIfNoEntry: false })),
    });
    check.stat();
    check.stat();
    assert.equal(stats, 2);
    assert.equal(check.watching || check.waitingForDirectory, false);
    fs.mkdirSync(path.dirname(deeper), { recursive: true });
    clock.now += 1000;
    check.stat();
    assert.equal(check.watching, true);
    check.close();
  });

  test('close() stops watching and later checks still answer', async () => {
    fs.writeFileSync(file, 'a');
    const { check, stats } = counted();
    check.stat();
    check.close();
    assert.equal(check.watching, false);
    await appendFromAnotherProcess(file, 'b');
    assert.equal(check.stat()?.size, 2);
    check.stat();
    assert.equal(stats(), 3, 'closed: every check stats');
  });
});
