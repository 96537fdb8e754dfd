/**
 * Files that survive a crash (ST-2, ST-5), for every file store (the ratchet,
 * the MTA-STS policy cache, TLS reports and their outbox): a name is relied on
 * only once the data under it and the directory entry are on disk. The data
 * are written and fsynced under a temporary name beside the final one, which
 * is then given to them atomically (rename: replace; link: create once), and
 * the directory is fsynced.
 *
 * Some file systems refuse an fsync of a directory (EINVAL, ENOTSUP: network
 * and FUSE file systems, some container overlays): there the rename is as
 * durable as the file system makes it, and the write does not fail for it.
 * Any other error of the directory fsync (EIO) fails the write.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

/** Prefix of a file being written; readers ignore it. */
export const TEMP_PREFIX = '.tmp-';

/** What a file system answers when it offers no fsync of a directory (or no opening of one for it). */
const DIRECTORY_SYNC_REFUSED: ReadonlySet<string> = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF', 'EPERM', 'EACCES']);

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

/** fsync of a directory, so a name made in it is durable; a file system that refuses it is not an error here. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(dir, 'r');
  } catch (err) {
    // ENOENT: the directory was renamed away meanwhile (a ratchet reset): nothing of it is left to make durable.
    if (errorCode(err) === 'ENOENT' || DIRECTORY_SYNC_REFUSED.has(errorCode(err) ?? '')) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    if (!DIRECTORY_SYNC_REFUSED.has(errorCode(err) ?? '')) throw err;
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

export interface DurableWriteOptions {
  /** The new file's mode (default 0644; the TLS report outbox: 0600). */
  mode?: number;
  /** Called after the data are on disk, before the name is given to them (the ratchet announces a raise again). */
  beforePlace?: () => Promise<void>;
}

/**
 * Writes `content` fsynced under a temporary name beside `file`, lets `place`
 * give it the final name, removes the temporary name, and makes the directory
 * durable. Resolves with what `place` said.
 */
async function placeDurably(
  file: string,
  content: string,
  options: DurableWriteOptions,
  place: (temp: string) => Promise<boolean>,
): Promise<boolean> {
  const dir = path.dirname(file);
  await makeDirectory(dir);
  const temp = path.join(dir, uniqueName(TEMP_PREFIX));
  let placed: boolean;
  try {
    const handle = await fsp.open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await options.beforePlace?.();
    placed = await place(temp);
  } finally {
    await fsp.unlink(temp).catch(() => undefined); // gone after a rename; a second name after a link
  }
  await syncDirectory(dir);
  return placed;
}

/** Replaces `file` with `content` atomically (readers see the old or the new content, never a mix). */
export async function replaceFile(file: string, content: string, options: DurableWriteOptions = {}): Promise<void> {
  await placeDurably(file, content, options, async (temp) => {
    await fsp.rename(temp, file);
    return true;
  });
}

/** Creates `file` with `content` unless it exists (link never replaces); true when this call created it. */
export function createFileOnce(file: string, content: string, options: DurableWriteOptions = {}): Promise<boolean> {
  return placeDurably(file, content, options, async (temp) => {
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
