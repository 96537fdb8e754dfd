/**
 * The embedded ratchet store (ST-2): plain files under `<data_dir>/ratchet`,
 * safe for several Haraka worker processes and the CLI at once, without locks.
 *
 * Layout: one directory per domain, one file per level reached in it:
 *
 *     <dir>/example.com/TLS_INSECURE   {"raisedAt":1764000000000,"host":"mx1.example.com"}
 *     <dir>/example.com/TLS_SECURE     {"raisedAt":1764000100000,"host":"mx2.example.com"}
 *
 * The stored level is the highest level file present. `raise` only ever
 * creates a level file, never rewrites or removes one, so no writer can lower
 * a level whatever the interleaving (monotonic by construction). A level file
 * appears complete or not at all: it is written and fsynced under a temporary
 * name, then hard-linked to its final name (`link` fails with EEXIST instead
 * of replacing, so the first writer wins and the others have nothing to do).
 * A `kill -9` at any moment leaves at most a `.tmp-*` file, which readers
 * ignore and `list` removes later.
 *
 * Anything a raise cannot produce (an unknown name in a domain directory, an
 * empty or malformed level file, a file where a directory belongs, a read
 * error) makes the domain `unreadable` (ST-4): it may hold any level.
 *
 * `reset` renames the domain directory out of sight (atomic for readers) and
 * then deletes it.
 *
 * OPS-6: each process remembers what it read (RatchetMemory, bounded), so a
 * delivery reads no per-domain file when nothing changed. What keeps that
 * memory true is the change marker `<dir>/.changes` (change-marker.ts): every
 * raise and reset, by any process, appends the domain to it before touching
 * the domain and again once the change is durable, before it resolves; every
 * `get` first checks the marker (a stat when the kernel reported a change in
 * the directory: store/watched-stat.ts) and forgets the domains appended
 * since. So a raise by another worker, or a reset by the CLI, counts at the
 * next delivery everywhere, and a writer killed between its change and its
 * second line leaves no reader stale for more than `settleMs` (the first line
 * makes readers read the domain once more when that time has passed). `raise`
 * itself never trusts memory: it reads the directory before and after.
 */
import { promises as fsp } from 'node:fs';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import { printable } from '../domain';
import { mapBounded } from '../store/bounded-tasks';
import { TEMP_PREFIX, createFileOnce, errorCode, errorText, makeDirectory, uniqueName } from '../store/durable-file';
import { isValidStoreKey } from '../store/keys';
import { type RatchetEntry, type RatchetRead, type RatchetStore } from './store';
import { ChangeWatcher, SETTLE_MS, announceChange } from './change-marker';
import { RatchetMemory, type RatchetMemoryLimits } from './memory';
import { SEC_LEVELS, SecLevel, levelName } from '../sec-level';

/** Prefix of a domain directory being deleted by `reset`. */
export const RESET_PREFIX = '.reset-';
/** `list` removes `.tmp-*` and `.reset-*` leftovers older than this (crashed writers). */
export const STALE_LEFTOVER_MS = 60_000;
/** `list` reads at most this many domains at once. */
export const LIST_CONCURRENCY = 16;
/** A level file larger than this was not written by `raise`. */
export const MAX_LEVEL_FILE_BYTES = 4096;
/** How often `raise` starts over when a concurrent `reset` removed the domain under it. */
const RAISE_ATTEMPTS = 5;

interface LevelFileContent {
  raisedAt: number;
  host?: string;
}

/** What one readdir + readFile of a domain directory found. */
type DomainScan = { read: RatchetRead; tempFiles: string[] };

export interface FileRatchetStoreOptions {
  /** OPS-5: what one process remembers (default RATCHET_MEMORY_ENTRIES and _BYTES). */
  memory?: RatchetMemoryLimits;
  /** How long after a change was announced a read of its domain is made once more (default SETTLE_MS). */
  settleMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class FileRatchetStore implements RatchetStore {
  readonly description: string;
  private readonly dir: string;
  private readonly memory: RatchetMemory;
  private readonly changes: ChangeWatcher;
  private readonly settleMs: number;
  private readonly now: () => number;

  /** `dir` is the ratchet directory itself (`<data_dir>/ratchet`); it is created on the first raise. */
  constructor(dir: string, options: FileRatchetStoreOptions = {}) {
    this.dir = path.resolve(dir);
    this.description = `file:${this.dir}`;
    this.memory = new RatchetMemory(options.memory);
    this.settleMs = options.settleMs ?? SETTLE_MS;
    this.now = options.now ?? Date.now;
    this.changes = new ChangeWatcher(this.dir, this.memory, this.settleMs, this.now);
  }

  async get(domain: string): Promise<RatchetRead> {
    checkKey(domain);
    if (!(await this.changes.refresh())) return (await this.scan(domain)).read;
    const readAt = this.now();
    const remembered = this.memory.recall(domain, readAt);
    if (remembered !== undefined) return remembered;
    const token = this.memory.token();
    const { read } = await this.scan(domain);
    this.memory.remember(domain, read, token, this.changes.revalidateAt(domain, readAt));
    return read;
  }

  peek(domain: string): RatchetRead | undefined {
    if (!isValidStoreKey(domain) || !this.changes.isCurrent()) return undefined;
    return this.memory.recall(domain, this.now());
  }

  async raise(domain: string, level: SecLevel, host?: string, raisedAt: number = Date.now()): Promise<SecLevel> {
    checkKey(domain);
    if (!SEC_LEVELS.includes(level)) throw new Error(`ratchet: cannot raise ${domain}: ${String(level)} is not a security level`);
    const domainDir = this.domainDir(domain);
    for (let attempt = 1; ; attempt++) {
      const before = (await this.scan(domain)).read;
      if (before.kind === 'unreadable') throw new Error(`ratchet: cannot raise ${domain} to ${levelName(level)}: ${before.reason}`);
      if (before.kind === 'level' && before.entry.level >= level) {
        // Another process's level may be linked before its done line lands: what this process
        // remembers must not outlive what this raise just read (its caller reads next).
        this.memory.forget(domain);
        return before.entry.level;
      }
      try {
        await this.announce(domain, true); // intent: see change-marker.ts
        let announcedAt = Date.now();
        await this.createLevelFile(domainDir, level, { raisedAt, host }, async () => {
          // The link must land within settleMs of an intent line: announce again after a slow write.
          if (Date.now() - announcedAt > this.settleMs / 3) {
            await this.announce(domain, true);
            announcedAt = Date.now();
          }
        });
        await this.announce(domain, true); // done: every reader's next get forgets what it remembers
      } catch (err) {
        // ENOENT: a concurrent reset renamed the directory away between our mkdir and link.
        if (errorCode(err) === 'ENOENT' && attempt < RAISE_ATTEMPTS) continue;
        throw new Error(`ratchet: cannot raise ${domain} to ${levelName(level)} in ${domainDir}: ${errorText(err)}`, { cause: err });
      }
      const after = (await this.scan(domain)).read;
      if (after.kind === 'level' && after.entry.level >= level) {
        this.memory.forget(domain);
        return after.entry.level;
      }
      if (after.kind === 'unreadable')
        throw new Error(`ratchet: raised ${domain} to ${levelName(level)} but cannot read it back: ${after.reason}`);
      // `none` or lower: a reset removed what we wrote. Raise again (the raise then follows the reset).
      if (attempt >= RAISE_ATTEMPTS) {
        throw new Error(
          `ratchet: cannot raise ${domain} to ${levelName(level)} in ${domainDir}: removed by concurrent resets ${attempt} times`,
        );
      }
    }
  }

  async reset(domain: string): Promise<boolean> {
    const domainDir = this.domainDir(checkKey(domain));
    const doomed = path.join(this.dir, uniqueName(RESET_PREFIX));
    const announce = (): Promise<unknown> =>
      this.announce(domain, false).catch((err: unknown) => {
        throw new Error(`ratchet: cannot reset ${domain}: ${errorText(err)}`, { cause: err });
      });
    // Intent, even if there is nothing to reset: a reset killed before its done line is finished by the next one.
    if (!(await announce())) return false; // no ratchet directory: nothing stored, nothing remembered
    try {
      await fsp.rename(domainDir, doomed);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return false;
      throw new Error(`ratchet: cannot reset ${domain}: rename ${domainDir}: ${errorText(err)}`, { cause: err });
    }
    await announce(); // done: every reader's next get forgets what it remembers
    // The entry is gone for readers; a failed cleanup is retried by list().
    await fsp.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
    return true;
  }

  async list(): Promise<Array<{ domain: string; read: RatchetRead }>> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw new Error(`ratchet: cannot list ${this.dir}: ${errorText(err)}`, { cause: err });
    }
    const domains = names.filter((name) => !name.startsWith('.')).sort();
    const resetLeftovers = names.filter((name) => name.startsWith(RESET_PREFIX)).map((name) => path.join(this.dir, name));
    const tempLeftovers: string[] = [];
    const results = await mapBounded(domains, LIST_CONCURRENCY, async (domain) => {
      if (!isValidStoreKey(domain)) {
        const read: RatchetRead = unreadable(
          path.join(this.dir, printable(domain)),
          'not a domain key (lowercase A-label or address literal)',
        );
        return { domain, read };
      }
      const { read, tempFiles } = await this.scan(domain);
      tempLeftovers.push(...tempFiles);
      return { domain, read };
    });
    await removeStale([...resetLeftovers, ...tempLeftovers]);
    return results;
  }

  async close(): Promise<void> {
    this.changes.close();
  }

  private domainDir(domain: string): string {
    return path.join(this.dir, domain);
  }

  /** Appends `domain` to the change marker; `create`: make the ratchet directory first if needed. */
  private async announce(domain: string, create: boolean): Promise<boolean> {
    if (await announceChange(this.dir, domain)) {
      this.changes.wrote();
      return true;
    }
    if (!create) return false;
    await makeDirectory(this.dir);
    if (await announceChange(this.dir, domain)) {
      this.changes.wrote();
      return true;
    }
    throw new Error(`${this.dir} disappeared`);
  }

  /** One readdir of the domain directory, one readFile of its highest level file. */
  private async scan(domain: string): Promise<DomainScan> {
    const domainDir = this.domainDir(domain);
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(domainDir, { withFileTypes: true });
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { read: await this.explainMissing(domainDir), tempFiles: [] };
      return { read: unreadable(domainDir, errorText(err)), tempFiles: [] };
    }
    let highest: SecLevel | null = null;
    const tempFiles: string[] = [];
    for (const entry of entries) {
      const entryPath = path.join(domainDir, printable(entry.name));
      if (entry.name.startsWith(TEMP_PREFIX)) {
        tempFiles.push(path.join(domainDir, entry.name));
        continue;
      }
      const level = levelOfFileName(entry.name);
      if (level === null) return { read: unreadable(entryPath, 'unexpected entry (not a level file)'), tempFiles };
      if (!entry.isFile()) return { read: unreadable(entryPath, 'level entry is not a regular file'), tempFiles };
      if (highest === null || level > highest) highest = level;
    }
    if (highest === null) return { read: { kind: 'none' }, tempFiles };
    const levelFile = path.join(domainDir, levelName(highest));
    let text: string;
    try {
      text = await fsp.readFile(levelFile, 'utf8');
    } catch (err) {
      // ENOENT here means a reset removed the directory since the readdir: the domain is gone.
      if (errorCode(err) === 'ENOENT') return { read: { kind: 'none' }, tempFiles: [] };
      return { read: unreadable(levelFile, errorText(err)), tempFiles };
    }
    const content = parseLevelFile(text);
    if (typeof content === 'string') return { read: unreadable(levelFile, content), tempFiles };
    const entry: RatchetEntry = { domain, level: highest, raisedAt: content.raisedAt };
    if (content.host !== undefined) entry.host = content.host;
    return { read: { kind: 'level', entry }, tempFiles };
  }

  /**
   * The domain directory does not exist. That normally means no level, but a
   * dangling symbolic link (for the domain or for the ratchet directory itself,
   * say an unmounted volume) must not silently read as "nothing stored".
   */
  private async explainMissing(domainDir: string): Promise<RatchetRead> {
    for (const candidate of [domainDir, this.dir]) {
      const stat = await fsp.lstat(candidate).catch(() => null);
      if (stat?.isSymbolicLink() && !(await fsp.stat(candidate).catch(() => null))) {
        return unreadable(candidate, 'dangling symbolic link');
      }
    }
    return { kind: 'none' };
  }

  /** Creates `<domainDir>/<LEVEL>` with its full content, unless it exists already. */
  private async createLevelFile(
    domainDir: string,
    level: SecLevel,
    { raisedAt, host }: { raisedAt: number; host: string | undefined },
    beforeLink: () => Promise<void>,
  ): Promise<void> {
    const content: LevelFileContent = { raisedAt };
    if (host !== undefined) content.host = host;
    // Another writer may have created it first: fine. The new name (and any directory made for it)
    // is durable before MAIL FROM is sent.
    await createFileOnce(path.join(domainDir, levelName(level)), `${JSON.stringify(content)}\n`, { beforePlace: beforeLink });
  }
}

function checkKey(domain: string): string {
  if (!isValidStoreKey(domain)) {
    throw new Error(`ratchet: "${printable(domain)}" is not a valid domain key (lowercase A-label or address literal)`);
  }
  return domain;
}

function levelOfFileName(name: string): SecLevel | null {
  for (const level of SEC_LEVELS) if (levelName(level) === name) return level;
  return null;
}

/** The parsed content of a level file, or what is wrong with it. */
function parseLevelFile(text: string): LevelFileContent | string {
  if (text.length === 0) return 'empty level file';
  if (text.length > MAX_LEVEL_FILE_BYTES) return `level file of ${text.length} bytes is too large`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const { raisedAt, host } = value as Record<string, unknown>;
  if (typeof raisedAt !== 'number' || !Number.isFinite(raisedAt) || raisedAt < 0) return 'raisedAt is not a time in milliseconds';
  if (host !== undefined && typeof host !== 'string') return 'host is not a string';
  return host === undefined ? { raisedAt } : { raisedAt, host };
}

function unreadable(file: string, problem: string): RatchetRead {
  return { kind: 'unreadable', reason: `${file}: ${problem}` };
}

/** Removes `.tmp-*` files and `.reset-*` directories left by crashed processes. Never throws. */
async function removeStale(paths: string[]): Promise<void> {
  const now = Date.now();
  await mapBounded(paths, LIST_CONCURRENCY, async (leftover) => {
    try {
      // mtime: a temp file's is when it was written; a reset directory's may be older than the
      // reset, in which case this rm can race with the resetting process's own: both are idempotent.
      const stat = await fsp.lstat(leftover);
      if (now - stat.mtimeMs > STALE_LEFTOVER_MS) await fsp.rm(leftover, { recursive: true, force: true });
    } catch {
      // best effort
    }
  });
}
