/**
 * The file ratchet store's change marker (ST-2, OPS-6): `<dir>/.changes`, a
 * log to which every raise and every reset, by any process (Haraka workers,
 * the CLI), appends the domain's key as one line, opened with O_APPEND so the
 * file only grows and concurrent appends never overwrite each other. A reader
 * checks it before every read (a stat, made only when the kernel reported a
 * change in the directory since the last one: store/watched-stat.ts); when
 * its size (or inode) changed, it reads
 * only the new lines and forgets those domains, so a change costs every other
 * process one read of each domain it changed, not of every domain.
 *
 * A writer announces a change twice: before it touches the domain (intent)
 * and after the change is durable (done), and only then resolves. The done
 * line makes the change seen at the next read everywhere. The intent line
 * covers a writer killed between the two: a reader that read the domain
 * within `settleMs` after seeing an intent line for it (or after it started,
 * or after anything it could not attribute to a domain) reads it once more
 * when `settleMs` has passed. A writer that took longer than a third of
 * `settleMs` to write its level file announces its intent again before
 * linking it, so the change lands within `settleMs` of an intent line that
 * every reader sees before it reads; a read that might have missed it is
 * therefore made again after the change is in place, and a killed writer
 * leaves no reader with a stale level for more than `settleMs`.
 *
 * Anything unexpected (the marker missing or unreadable, replaced, truncated,
 * a line that is not a key, a tail too long to read) makes the reader forget
 * everything, which is always safe. Without a marker nothing is remembered.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { isValidStoreKey } from '../store/keys';
import type { RatchetMemory } from './memory';
import { WatchedStat } from '../store/watched-stat';

/** The change marker's name in the ratchet directory (a dot-file: never a domain). */
export const CHANGES_FILE = '.changes';
/** OPS-6: default time after which a read made soon after a change was announced is made again. */
export const SETTLE_MS = 30_000;
/** A tail longer than this is not read: everything is forgotten instead. */
export const MAX_TAIL_BYTES = 1024 * 1024;
/** More domains than this announced within `settleMs`: all reads of that period are treated alike. */
const MAX_RECENT = 10_000;
/** The marker is written by the Haraka user (and the CLI, as that user or as root: see isRoot). */
const MARKER_MODE = 0o644;

interface MarkerState {
  dev: number;
  ino: number;
  /** Bytes of the marker this process has applied. */
  size: number;
}

/** The marker is the one applied, with nothing appended since (an append grows it; a replacement is another inode). */
function unchangedSince(applied: MarkerState, stat: fs.Stats): boolean {
  return applied.dev === stat.dev && applied.ino === stat.ino && applied.size === stat.size;
}

/**
 * Appends `key` to the change marker of `dir` (one write with O_APPEND),
 * creating the marker if needed. Resolves false when `dir` does not exist
 * (then nothing is stored in it, and nothing can be remembered of it).
 */
export async function announceChange(dir: string, key: string): Promise<boolean> {
  if (!isValidStoreKey(key)) throw new Error(`ratchet: cannot announce a change of "${key}": not a domain key`);
  const file = path.join(dir, CHANGES_FILE);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'a', MARKER_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    const line = Buffer.from(`${key}\n`);
    const { bytesWritten } = await handle.write(line);
    if (bytesWritten !== line.length) throw new Error(`${file}: wrote ${bytesWritten} of ${line.length} bytes`);
    if (isRoot()) {
      const [owner, marker] = await Promise.all([fsp.stat(dir), handle.stat()]);
      if (marker.uid !== owner.uid || marker.gid !== owner.gid) await handle.chown(owner.uid, owner.gid);
    }
    return true;
  } finally {
    await handle.close();
  }
}

/**
 * Creates an empty change marker in an existing `dir` (a store written before
 * the marker existed, or one nothing was raised in yet). False when it cannot.
 */
function createMarkerSync(dir: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path.join(dir, CHANGES_FILE), 'a', MARKER_MODE);
    if (isRoot()) {
      const owner = fs.statSync(dir);
      fs.fchownSync(fd, owner.uid, owner.gid);
    }
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Run as root (the CLI, say), a marker this process creates is given to the
 * ratchet directory's owner, so the Haraka user can still append to it.
 */
function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Keeps a process's RatchetMemory in step with the change marker of one ratchet directory. */
export class ChangeWatcher {
  private readonly file: string;
  private applied: MarkerState | null = null;
  /** Domain → when this process learnt of an announced change of it (pruned after settleMs). */
  private readonly recent = new Map<string, number>();
  /** When this process last learnt of changes it cannot attribute to domains (start, forget all). */
  private allRecentAt: number;
  private applying: Promise<void> | null = null;
  private readonly marker: WatchedStat;

  constructor(
    private readonly dir: string,
    private readonly memory: RatchetMemory,
    private readonly settleMs: number,
    private readonly now: () => number,
  ) {
    this.file = path.join(dir, CHANGES_FILE);
    this.marker = new WatchedStat(this.file);
    this.allRecentAt = now();
  }

  /** This process appended to the marker: the next refresh looks at it (without waiting for the notification). */
  wrote(): void {
    this.marker.invalidate();
  }

  close(): void {
    this.marker.close();
  }

  /**
   * Brings the memory up to date with every change announced before this
   * call. Resolves false when the memory must not be used (no marker).
   */
  async refresh(): Promise<boolean> {
    let triedToCreate = false;
    for (;;) {
      // OPS-6: a stat only when the directory changed (or once a second). Sync: a few µs of CPU, less than an
      // async stat's round trip through the thread pool.
      let stat: fs.Stats | undefined;
      try {
        stat = this.marker.stat();
      } catch {
        stat = undefined;
      }
      if (stat === undefined) {
        if (this.applied !== null) this.forgetAll(null);
        if (!triedToCreate && createMarkerSync(this.dir)) {
          triedToCreate = true;
          this.marker.invalidate();
          continue;
        }
        return false;
      }
      const applied = this.applied;
      if (applied !== null && unchangedSince(applied, stat)) return true;
      if (this.applying === null) {
        this.applying = this.apply(stat).finally(() => {
          this.applying = null;
        });
        await this.applying;
        return true;
      }
      await this.applying; // another read is applying: wait for it, then check again
    }
  }

  /**
   * OPS-6: true when what is remembered is current without waiting (the marker is
   * as it was when last applied); false when a read has to refresh first.
   */
  isCurrent(): boolean {
    if (this.applying !== null || this.applied === null) return false;
    let stat: fs.Stats | undefined;
    try {
      stat = this.marker.stat();
    } catch {
      return false;
    }
    const applied = this.applied;
    return stat !== undefined && unchangedSince(applied, stat);
  }

  /** Until when a read of `domain` made at `readAt` may be served from memory. */
  revalidateAt(domain: string, readAt: number): number {
    const learnt = Math.max(this.allRecentAt, this.recent.get(domain) ?? -Infinity);
    return readAt - learnt < this.settleMs ? learnt + this.settleMs : Infinity;
  }

  private async apply(stat: fs.Stats): Promise<void> {
    const applied = this.applied;
    const target: MarkerState = { dev: stat.dev, ino: stat.ino, size: stat.size };
    if (applied === null || applied.dev !== stat.dev || applied.ino !== stat.ino || stat.size < applied.size) {
      this.forgetAll(target); // first sight, or replaced: what happened before is unknown
      return;
    }
    if (stat.size - applied.size > MAX_TAIL_BYTES) {
      this.forgetAll(target);
      return;
    }
    let tail: string;
    try {
      tail = await readRange(this.file, applied.size, stat.size);
    } catch {
      this.forgetAll(target);
      return;
    }
    const now = this.now();
    const lines = tail.split('\n');
    // The last element is what follows the last newline: empty unless a line is incomplete.
    if (lines.pop() !== '' || lines.some((key) => !isValidStoreKey(key))) {
      this.forgetAll(target);
      return;
    }
    for (const key of lines) {
      this.memory.forget(key);
      this.recent.delete(key); // re-inserted at the young end, so pruning can stop at the first recent one
      this.recent.set(key, now);
    }
    this.prune(now);
    this.applied = target;
  }

  private prune(now: number): void {
    for (const [key, learnt] of this.recent) {
      if (now - learnt < this.settleMs) break;
      this.recent.delete(key);
    }
    if (this.recent.size > MAX_RECENT) this.forgetAll(this.applied);
  }

  private forgetAll(state: MarkerState | null): void {
    this.memory.forgetAll();
    this.recent.clear();
    this.allRecentAt = this.now();
    this.applied = state;
  }
}

/** The bytes of `file` from `start` to `end`, as UTF-8. */
async function readRange(file: string, start: number, end: number): Promise<string> {
  const handle = await fsp.open(file, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled).toString('utf8');
  } finally {
    await handle.close();
  }
}
