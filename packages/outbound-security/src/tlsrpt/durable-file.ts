/**
 * Files that survive a crash, for the TLS report file store (ST-2, ST-5): a
 * name is relied on only once the data under it and the directory entry are
 * on disk (fsync of the file, then of its directory).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

/** Prefix of a file being written; readers ignore it. */
export const TEMP_PREFIX = '.tmp-';

export function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A name no other writer (process or call) uses at the same time. */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** fsync of a directory, so a name made in it is durable; some file systems refuse, which is not an error here. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r').catch(() => null);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // EINVAL and the like: the file system offers no directory fsync
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** `mkdir -p dir`; the directories it made are made durable in their parents. */
export async function makeDirectory(dir: string): Promise<void> {
  const first = await fsp.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let made = dir; made.length >= first.length; made = path.dirname(made)) {
    await syncDirectory(path.dirname(made));
    if (made === path.dirname(made)) break;
  }
}

/**
 * Writes `content` fsynced under a temporary name beside `file`, lets `place`
 * give it the final name, removes the temporary name, and makes the directory
 * durable when `place` placed it. Resolves with what `place` said.
 */
async function placeDurably(file: string, content: string, place: (temp: string) => Promise<boolean>): Promise<boolean> {
  const dir = path.dirname(file);
  await makeDirectory(dir);
  const temp = path.join(dir, uniqueName(TEMP_PREFIX));
  let placed = false;
  try {
    const handle = await fsp.open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    placed = await place(temp);
  } finally {
    await fsp.unlink(temp).catch(() => undefined); // gone after a rename; a second name after a link
  }
  if (placed) await syncDirectory(dir);
  return placed;
}

/** Replaces `file` with `content` atomically (readers see the old or the new content, never a mix). */
export async function replaceFile(file: string, content: string): Promise<void> {
  await placeDurably(file, content, async (temp) => {
    await fsp.rename(temp, file);
    return true;
  });
}

/** Creates `file` with `content` unless it exists (link never replaces); true when this call created it. */
export function createFileOnce(file: string, content: string): Promise<boolean> {
  return placeDurably(file, content, async (temp) => {
    try {
      await fsp.link(temp, file);
      return true;
    } catch (err) {
      if (errorCode(err) === 'EEXIST') return false;
      throw err;
    }
  });
}

/** The text of `file`, or null when it does not exist. */
export async function readIfExists(file: string): Promise<string | null> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return null;
    throw err;
  }
}
