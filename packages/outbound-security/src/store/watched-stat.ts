/**
 * OPS-6: "did this file change?" without a system call per question. The
 * file stores' change checks (the ratchet's change marker, the MTA-STS
 * cache's purge generation) ask it at every delivery; a `stat` each time is
 * cheap alone but is the largest item of the plugins' per-message cost in
 * a loaded Haraka. So the file's directory is watched (inotify, through
 * `fs.watch`), and the file is stat'ed again only:
 *  - after the kernel reported something in that directory (the event is
 *    read by the event loop, so a change made before this process heard of
 *    it by any other way, such as a CLI that finished or a reply that
 *    arrived, is seen: the notification is ready first and is handled first);
 *  - when the last stat is older than `maxAgeMs`, a safety net should a
 *    notification ever be lost;
 *  - after `invalidate()` (this process wrote the file itself);
 *  - every time, when the directory cannot be watched (the system's
 *    inotify limits are reached: watching is tried again at most every
 *    `maxAgeMs`).
 * A directory that does not exist yet (an MTA-STS cache nothing was stored
 * in) is waited for by watching its parent: the file cannot appear before it.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A stat at least this often (ms) even without a notification. */
export const WATCHED_STAT_MAX_AGE_MS = 1_000;

export interface WatchedStatOptions {
  maxAgeMs?: number;
  /** The clock (tests). */
  now?: () => number;
  /** The stat call (tests count it). */
  statSync?: (file: string) => fs.Stats | undefined;
  /** The directory watch (tests can make it fail); default `fs.watch`. */
  watch?: (dir: string, listener: (event: string, name: string | Buffer | null) => void) => fs.FSWatcher;
}

const defaultStat = (file: string): fs.Stats | undefined => fs.statSync(file, { throwIfNoEntry: false });
const defaultWatch = (dir: string, listener: (event: string, name: string | Buffer | null) => void): fs.FSWatcher =>
  fs.watch(dir, { persistent: false }, listener);

export class WatchedStat {
  private readonly dir: string;
  private readonly dirName: string;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly statFile: (file: string) => fs.Stats | undefined;
  private readonly watch: NonNullable<WatchedStatOptions['watch']>;
  private watcher: fs.FSWatcher | null = null;
  /** The watcher is on the parent, waiting for the directory to appear. */
  private watchingParent = false;
  /** When watching was last tried without success. */
  private watchTriedAt = -Infinity;
  private stale = true;
  private statAt = -Infinity;
  private last: fs.Stats | undefined;
  private closed = false;

  constructor(
    private readonly file: string,
    options: WatchedStatOptions = {},
  ) {
    this.dir = path.dirname(file);
    this.dirName = path.basename(this.dir);
    this.maxAgeMs = options.maxAgeMs ?? WATCHED_STAT_MAX_AGE_MS;
    this.now = options.now ?? Date.now;
    this.statFile = options.statSync ?? defaultStat;
    this.watch = options.watch ?? defaultWatch;
  }

  /** The file's stat (undefined: it does not exist), as of now. Throws what `fs.statSync` throws. */
  stat(): fs.Stats | undefined {
    const now = this.now();
    if (this.watcher === null) this.startWatching(now);
    if (this.watcher !== null && !this.stale && now - this.statAt < this.maxAgeMs) return this.last;
    // Cleared before the stat: a change after it sets it again.
    this.stale = false;
    try {
      this.last = this.statFile(this.file);
    } catch (err) {
      this.stale = true;
      throw err;
    }
    this.statAt = now;
    return this.last;
  }

  /** The next `stat()` asks the file system (this process just changed the file). */
  invalidate(): void {
    this.stale = true;
  }

  /** True while the directory is watched (tests, status). */
  get watching(): boolean {
    return this.watcher !== null && !this.watchingParent;
  }

  /** True while the directory does not exist and its parent is watched for it (tests). */
  get waitingForDirectory(): boolean {
    return this.watcher !== null && this.watchingParent;
  }

  close(): void {
    this.closed = true;
    this.stopWatching();
  }

  private startWatching(now: number): void {
    if (this.closed || now - this.watchTriedAt < this.maxAgeMs) return;
    try {
      this.watcher = this.watchDirectory(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.watchTriedAt = now;
        return;
      }
      // No directory yet: its creation is an event in the parent, then the directory itself is watched.
      try {
        this.watcher = this.watchDirectory(path.dirname(this.dir));
        this.watchingParent = true;
      } catch {
        this.watchTriedAt = now;
        return;
      }
    }
    this.stale = true; // what happened before the watch started is unknown
  }

  private watchDirectory(dir: string): fs.FSWatcher {
    const parent = dir !== this.dir;
    const name = path.basename(dir);
    const watcher = this.watch(dir, (event, changed) => {
      this.stale = true;
      const what = changed === null ? null : String(changed);
      // Watching the parent: something was created or removed there, perhaps the directory (or the
      // parent went away). Watching the directory: it was removed or replaced itself. Either way,
      // watch again by path at the next stat.
      if (event === 'rename' && (parent || what === null || what === name)) this.stopWatching();
    });
    watcher.on('error', () => this.stopWatching());
    return watcher;
  }

  private stopWatching(): void {
    const watcher = this.watcher;
    this.watcher = null;
    this.watchingParent = false;
    this.stale = true;
    if (watcher) {
      try {
        watcher.close();
      } catch {
        // already gone
      }
    }
  }
}
