/**
 * The embedded MTA-STS policy cache (ST-1, STS-5): one JSON file per domain
 * under `<data_dir>/mta-sts/`, written atomically (temporary file, fsync,
 * rename, fsync of the directory: ST-5), shared by every Haraka worker and the
 * CLI. An entry that cannot be read or understood is `unreadable`.
 *
 * OPS-6: every delete appends one byte to `<dir>/.purges` (after the unlink),
 * so the file only grows; its size and inode are the purge generation that a
 * resolver compares at every delivery instead of reading the entry (a stat
 * only when the kernel reported a change in the directory: store/watched-stat.ts).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { isValidStoreKey } from '../store/keys';
import type { CachedPolicy, PolicyRead, PolicyStore } from './store';
import { WatchedStat } from '../store/watched-stat';
import { replaceFile } from '../store/durable-file';

function isCachedPolicy(value: unknown, domain: string): value is CachedPolicy {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    v.domain === domain &&
    typeof v.id === 'string' &&
    typeof v.text === 'string' &&
    ['fetchedAt', 'expiresAt', 'checkedAt', 'usedAt'].every((k) => typeof v[k] === 'number' && Number.isFinite(v[k]))
  );
}

/** Grows by one byte per delete: its size is the purge generation (OPS-6). */
const PURGES_FILE = '.purges';

export class FilePolicyStore implements PolicyStore {
  readonly description: string;
  private readonly purges: WatchedStat;
  constructor(private readonly dir: string) {
    this.description = `file:${path.resolve(dir)}`;
    this.purges = new WatchedStat(path.join(dir, PURGES_FILE));
  }

  private file(domain: string): string {
    if (!isValidStoreKey(domain) || domain.startsWith('[')) throw new Error(`invalid policy cache key "${domain}"`);
    return path.join(this.dir, `${domain}.json`);
  }

  async get(domain: string): Promise<PolicyRead> {
    const file = this.file(domain);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      return { kind: 'unreadable', reason: `${file}: ${(err as Error).message}` };
    }
    try {
      const value: unknown = JSON.parse(text);
      if (!isCachedPolicy(value, domain)) return { kind: 'unreadable', reason: `${file}: not a cached policy entry` };
      return { kind: 'entry', entry: value };
    } catch (err) {
      return { kind: 'unreadable', reason: `${file}: ${(err as Error).message}` };
    }
  }

  async put(entry: CachedPolicy): Promise<void> {
    const file = this.file(entry.domain);
    try {
      // ST-5: the data reach the disk before the name points at them, and the rename
      // reaches the disk before the entry is relied on (a crash leaves the old or the new entry).
      await replaceFile(file, JSON.stringify(entry));
    } catch (err) {
      throw new Error(`cannot write ${file}: ${(err as Error).message}`);
    }
  }

  async delete(domain: string): Promise<boolean> {
    let existed = true;
    try {
      await fs.unlink(this.file(domain));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      existed = false;
    }
    // Even when nothing was there: a worker may still hold the policy in memory.
    try {
      await fs.appendFile(path.join(this.dir, PURGES_FILE), 'p');
      this.purges.invalidate();
    } catch (err) {
      // No cache directory at all: nothing was ever cached here, so nothing is remembered either.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return existed;
  }

  purgeGeneration(): string {
    const stat = this.purges.stat();
    return stat ? `${stat.ino}:${stat.size}` : 'none';
  }

  async list(): Promise<Array<{ domain: string; read: PolicyRead }>> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const domains = names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5));
    const out: Array<{ domain: string; read: PolicyRead }> = [];
    for (const domain of domains.sort()) {
      out.push({
        domain,
        read: isValidStoreKey(domain) ? await this.get(domain) : { kind: 'unreadable', reason: `bad file name ${domain}.json` },
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.purges.close();
  }
}
