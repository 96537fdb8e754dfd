/**
 * The file store's send lock (RPT-3): one process of those sharing
 * `data_dir` sends a Policy Domain's report for a day.
 *
 * - Taking it creates the lock file with O_EXCL (`wx`): of two processes, one
 *   succeeds. The file holds `{"holder":…,"expiresAt":…}`.
 * - A lock past its `expiresAt` (or unreadable and older than the caller's
 *   time to live, as a lock file cut short by a crash is) is stale: it is
 *   renamed away under a unique name and, when what was moved is still the
 *   stale file (same inode), removed; the O_EXCL create is then tried again.
 *   If a fresh lock was moved instead (another process replaced the stale one
 *   between our read and our rename), it is put back with `link`, which never
 *   replaces: in the rare case that a third lock appeared meanwhile, two
 *   holders may send, and the delivery state's sent marks keep that to a
 *   duplicate report at worst.
 * - Unlock removes the file only when it still names the holder.
 * - The holder re-taking its own lock extends it.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { errorCode, replaceFile, uniqueName } from '../store/durable-file';

interface LockContent {
  holder: string;
  expiresAt: number;
}

type LockRead = { kind: 'none' } | { kind: 'held'; content: LockContent | null; ino: number; mtimeMs: number };

async function readLock(file: string): Promise<LockRead> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { kind: 'none' };
    throw err;
  }
  try {
    const stat = await handle.stat();
    const text = await handle.readFile('utf8');
    return { kind: 'held', content: parseLock(text), ino: stat.ino, mtimeMs: stat.mtimeMs };
  } finally {
    await handle.close();
  }
}

function parseLock(text: string): LockContent | null {
  try {
    const value = JSON.parse(text) as Partial<LockContent> | null;
    if (value && typeof value.holder === 'string' && typeof value.expiresAt === 'number')
      return { holder: value.holder, expiresAt: value.expiresAt };
  } catch {
    // a lock file cut short: judged by its age
  }
  return null;
}

/** Attempts at taking a lock when stale ones keep getting in the way. */
const ATTEMPTS = 3;

export async function takeLock(file: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
  const content = JSON.stringify({ holder, expiresAt: now + ttlMs } satisfies LockContent);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      const handle = await fsp.open(file, 'wx', 0o644);
      try {
        await handle.writeFile(content);
      } finally {
        await handle.close();
      }
      return true;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
    }
    const current = await readLock(file);
    if (current.kind === 'none') continue;
    if (current.content?.holder === holder) {
      await replaceFile(file, content); // extend our own lock
      return true;
    }
    const expired = current.content ? current.content.expiresAt <= now : current.mtimeMs + ttlMs <= now;
    if (!expired) return false;
    await removeStale(file, current.ino);
  }
  return false;
}

/** Moves the stale lock (inode `ino`) out of the way; puts back a fresh one moved by mistake. */
async function removeStale(file: string, ino: number): Promise<void> {
  const moved = path.join(path.dirname(file), uniqueName('.stale-lock-'));
  try {
    await fsp.rename(file, moved);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return; // someone else removed it
    throw err;
  }
  const stat = await fsp.stat(moved);
  if (stat.ino !== ino) await fsp.link(moved, file).catch(() => undefined);
  await fsp.unlink(moved).catch(() => undefined);
}

export async function releaseLock(file: string, holder: string): Promise<void> {
  const current = await readLock(file);
  if (current.kind === 'held' && current.content?.holder === holder) await fsp.unlink(file).catch(() => undefined);
}
