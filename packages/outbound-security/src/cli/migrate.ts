/**
 * `migrate`: copies the ratchet and the MTA-STS policy cache from the file
 * store to Redis or back (ST-1), so a running installation can move. Ratchet
 * levels are copied with `raise` (the target keeps the higher of the two);
 * policies replace the target's entry only when they were fetched later.
 */
import { openPolicyStore, openRatchetStore, type StoreSettings } from '../store/open';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { IniFile } from '../config/ini';
import type { PolicyStore } from '../mta-sts/store';
import type { RatchetStore } from '../ratchet/store';
import { waitUntilConnected } from './config';

export type MigrateDirection = 'file-to-redis' | 'redis-to-file';

export interface MigrateReport {
  levels: number;
  policies: number;
  skipped: string[];
}

export async function migrate(direction: MigrateDirection, tls: OutboundTlsConfig, redisIni: IniFile): Promise<MigrateReport> {
  const file: StoreSettings = { dataDir: tls.dataDir, store: { backend: 'file' } };
  const redis: StoreSettings = { dataDir: tls.dataDir, store: tls.redis, redisIni };
  const [from, to] = direction === 'file-to-redis' ? [file, redis] : [redis, file];
  const stores = {
    fromRatchet: openRatchetStore(from),
    toRatchet: openRatchetStore(to),
    fromPolicy: openPolicyStore(from),
    toPolicy: openPolicyStore(to),
  };
  try {
    await waitForRedis(Object.values(stores));
    const report: MigrateReport = { levels: 0, policies: 0, skipped: [] };
    await copyLevels(stores.fromRatchet, stores.toRatchet, report);
    await copyPolicies(stores.fromPolicy, stores.toPolicy, report);
    return report;
  } finally {
    await Promise.all(Object.values(stores).map((s) => s.close().catch(() => undefined)));
  }
}

/** A Redis store connects in the background; give it a moment before the first command. */
async function waitForRedis(stores: Array<RatchetStore | PolicyStore>): Promise<void> {
  for (const store of stores) {
    await waitUntilConnected(store);
  }
}

async function copyLevels(from: RatchetStore, to: RatchetStore, report: MigrateReport): Promise<void> {
  for (const { domain, read } of await from.list()) {
    if (read.kind !== 'level') {
      report.skipped.push(`${domain}: ${read.kind === 'unreadable' ? `unreadable (${read.reason})` : 'no level'}`);
      continue;
    }
    await to.raise(domain, read.entry.level, read.entry.host);
    report.levels++;
  }
}

async function copyPolicies(from: PolicyStore, to: PolicyStore, report: MigrateReport): Promise<void> {
  for (const { domain, read } of await from.list()) {
    if (read.kind !== 'entry') {
      report.skipped.push(`policy ${domain}: ${read.kind === 'unreadable' ? `unreadable (${read.reason})` : 'none'}`);
      continue;
    }
    if (read.entry.expiresAt <= Date.now()) {
      report.skipped.push(`policy ${domain}: expired`);
      continue;
    }
    const existing = await to.get(domain);
    if (existing.kind === 'entry' && existing.entry.fetchedAt >= read.entry.fetchedAt) continue;
    await to.put(read.entry);
    report.policies++;
  }
}
