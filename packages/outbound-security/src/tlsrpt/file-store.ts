/**
 * The embedded TLS report store (RPT-1, RPT-3, ST-2): plain files under
 * `<data_dir>/tlsrpt`, shared by every Haraka worker process and the CLI
 * without a lock for counting.
 *
 * Layout, one directory per UTC day:
 *
 *     <dir>/2025-03-14/counts-<host>-<pid>-<random>.jsonl   one per process (counts-log.ts)
 *     <dir>/2025-03-14/send/example.com.json                delivery state (report id, due time, sent marks)
 *     <dir>/2025-03-14/send/example.com.lock                send lock (file-lock.ts)
 *
 * - Counting: each process appends its batches to its own file (no two
 *   writers share a file, so appends never interleave) and fsyncs it after
 *   each batch (and the directory when the file is new). A report reads every
 *   file of the day and sums them. A write that fails makes the process start
 *   a new file, so a torn batch can only be a file's last line; it counts
 *   not at all and the recorder offers the batch again.
 * - The delivery state is created with link (first writer wins) and replaced
 *   with rename, both after an fsync of the data, then of the directory.
 * - What a day's files hold is read once per change of the files (their
 *   names, sizes and times), not once per domain.
 * - `prune` renames a day away (atomic for readers), then deletes it.
 */
import { hostname } from 'node:os';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { DayReader, encodeBatch } from './counts-log';
import {
  errorCode,
  errorText,
  makeDirectory,
  readIfExists,
  replaceFile,
  createFileOnce,
  syncDirectory,
  uniqueName,
} from '../store/durable-file';
import { releaseLock, takeLock } from './file-lock';
import { isDay } from './record';
import {
  CountsBuilder,
  PartialAddError,
  checkKeys,
  isToken,
  parseDeliveryState,
  type CountEntry,
  type DeliveryState,
  type DomainCounts,
  type TlsReportStore,
} from './store';

const COUNTS_PREFIX = 'counts-';
const COUNTS_SUFFIX = '.jsonl';
const SEND_DIR = 'send';

interface DayWriter {
  file: string;
  handle: fsp.FileHandle;
  /** Policy ids this file defines already. */
  defined: Set<string>;
}

export interface FileTlsReportStoreOptions {
  /** The clock of the send lock (tests). */
  now?: () => number;
}

export class FileTlsReportStore implements TlsReportStore {
  readonly description: string;
  private readonly dir: string;
  private readonly now: () => number;
  private readonly writers = new Map<string, DayWriter>();
  /** One add at a time: they share the writers. */
  private adding: Promise<void> = Promise.resolve();
  private batches = 0;
  private lastRead: { day: string; signature: string; domains: Map<string, DomainCounts> } | null = null;

  /** `dir` is the store's own directory (`<data_dir>/tlsrpt`), made on the first add. */
  constructor(dir: string, options: FileTlsReportStoreOptions = {}) {
    this.dir = path.resolve(dir);
    this.description = `file:${this.dir}`;
    this.now = options.now ?? Date.now;
  }

  add(entries: readonly CountEntry[]): Promise<void> {
    try {
      for (const entry of entries) checkKeys(entry.day, entry.policyDomain);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const run = this.adding.then(() => this.append(entries));
    this.adding = run.catch(() => undefined);
    return run;
  }

  private async append(entries: readonly CountEntry[]): Promise<void> {
    const byDay = new Map<string, CountEntry[]>();
    for (const entry of entries) {
      const list = byDay.get(entry.day) ?? [];
      list.push(entry);
      byDay.set(entry.day, list);
    }
    const days = [...byDay.keys()];
    for (const [index, day] of days.entries()) {
      try {
        await this.appendDay(day, byDay.get(day) as CountEntry[]);
      } catch (err) {
        const notAdded = days.slice(index).flatMap((d) => byDay.get(d) as CountEntry[]);
        throw new PartialAddError(`tlsrpt: ${errorText(err)}`, notAdded, { cause: err });
      }
    }
    this.closeOldWriters();
  }

  /** One batch of one day: written in one write, then fsynced. */
  private async appendDay(day: string, list: CountEntry[]): Promise<void> {
    const writer = await this.writer(day);
    const defined = new Set(writer.defined);
    const text = encodeBatch(`${path.basename(writer.file)}:${++this.batches}`, list, defined);
    try {
      await writer.handle.write(text);
      await writer.handle.sync();
    } catch (err) {
      // A torn batch may end this file: the next batch goes to a new one.
      this.writers.delete(day);
      await writer.handle.close().catch(() => undefined);
      throw new Error(`cannot append to ${writer.file}: ${errorText(err)}`, { cause: err });
    }
    writer.defined = defined;
  }

  private async writer(day: string): Promise<DayWriter> {
    const known = this.writers.get(day);
    if (known) return known;
    const dayDir = path.join(this.dir, day);
    await makeDirectory(dayDir);
    const host =
      hostname()
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-')
        .slice(0, 40) || 'host';
    const file = path.join(dayDir, `${uniqueName(`${COUNTS_PREFIX}${host}-`)}${COUNTS_SUFFIX}`);
    const handle = await fsp.open(file, 'a', 0o644);
    await syncDirectory(dayDir);
    const writer = { file, handle, defined: new Set<string>() };
    this.writers.set(day, writer);
    return writer;
  }

  /** Keeps the files of the two newest days open (a flush just after midnight still writes yesterday's). */
  private closeOldWriters(): void {
    const days = [...this.writers.keys()].sort();
    for (const day of days.slice(0, -2)) {
      void this.writers
        .get(day)
        ?.handle.close()
        .catch(() => undefined);
      this.writers.delete(day);
    }
  }

  async days(): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch((err: unknown) => {
      if (errorCode(err) === 'ENOENT') return [] as string[];
      throw err;
    });
    return names.filter(isDay).sort();
  }

  async domains(day: string): Promise<string[]> {
    return [...(await this.readDay(day)).keys()];
  }

  async counts(day: string, policyDomain: string): Promise<DomainCounts> {
    checkKeys(day, policyDomain);
    return (await this.readDay(day)).get(policyDomain) ?? new CountsBuilder(day, policyDomain).build();
  }

  /** Every domain's counts of `day`, read again only when its files changed. */
  private async readDay(day: string): Promise<Map<string, DomainCounts>> {
    if (!isDay(day)) throw new Error(`tlsrpt store: "${day.slice(0, 40)}" is not a day`);
    const dayDir = path.join(this.dir, day);
    const names = (await fsp.readdir(dayDir).catch(() => [] as string[]))
      .filter((name) => name.startsWith(COUNTS_PREFIX) && name.endsWith(COUNTS_SUFFIX))
      .sort();
    const stats = await Promise.all(names.map((name) => fsp.stat(path.join(dayDir, name)).catch(() => null)));
    const signature = names.map((name, i) => `${name}:${stats[i]?.size}:${stats[i]?.mtimeMs}`).join('\n');
    if (this.lastRead?.day === day && this.lastRead.signature === signature) return this.lastRead.domains;
    const reader = new DayReader(day);
    for (const name of names) {
      const text = await readIfExists(path.join(dayDir, name)).catch((err: unknown) => {
        reader.problems.push(`${name}: ${errorText(err)}`);
        return null;
      });
      if (text !== null) reader.addFile(name, text);
    }
    const domains = reader.result();
    this.lastRead = { day, signature, domains };
    return domains;
  }

  private sendFile(day: string, policyDomain: string, suffix: '.json' | '.lock'): string {
    checkKeys(day, policyDomain);
    return path.join(this.dir, day, SEND_DIR, `${policyDomain}${suffix}`);
  }

  async delivery(day: string, policyDomain: string): Promise<DeliveryState | null> {
    const file = this.sendFile(day, policyDomain, '.json');
    const text = await readIfExists(file);
    if (text === null) return null;
    const state = parseDeliveryState(text);
    if (typeof state === 'string') throw new Error(`tlsrpt: ${file}: ${state}`);
    return state;
  }

  async startDelivery(day: string, policyDomain: string, initial: DeliveryState): Promise<DeliveryState> {
    const file = this.sendFile(day, policyDomain, '.json');
    if (await createFileOnce(file, JSON.stringify(initial))) return initial;
    const stored = await this.delivery(day, policyDomain);
    if (!stored) throw new Error(`tlsrpt: ${file} disappeared`);
    return stored;
  }

  async saveDelivery(day: string, policyDomain: string, state: DeliveryState): Promise<void> {
    await replaceFile(this.sendFile(day, policyDomain, '.json'), JSON.stringify(state));
  }

  async lock(day: string, policyDomain: string, holder: string, ttlMs: number): Promise<boolean> {
    if (!isToken(holder)) throw new Error(`tlsrpt store: invalid lock holder "${holder.slice(0, 40)}"`);
    return takeLock(this.sendFile(day, policyDomain, '.lock'), holder, ttlMs, this.now());
  }

  async unlock(day: string, policyDomain: string, holder: string): Promise<void> {
    await releaseLock(this.sendFile(day, policyDomain, '.lock'), holder);
  }

  async prune(beforeDay: string): Promise<number> {
    let removed = 0;
    for (const day of await this.days()) {
      if (day >= beforeDay) continue;
      const doomed = path.join(this.dir, uniqueName('.prune-'));
      try {
        await fsp.rename(path.join(this.dir, day), doomed);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') continue;
        throw err;
      }
      removed++;
      this.writers
        .get(day)
        ?.handle.close()
        .catch(() => undefined);
      this.writers.delete(day);
      await fsp.rm(doomed, { recursive: true, force: true });
    }
    return removed;
  }

  async close(): Promise<void> {
    await this.adding;
    const writers = [...this.writers.values()];
    this.writers.clear();
    await Promise.all(writers.map((w) => w.handle.close().catch(() => undefined)));
  }
}
