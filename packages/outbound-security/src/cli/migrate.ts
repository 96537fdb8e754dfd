/**
 * `migrate`: copies the ratchet and the MTA-STS policy cache from the file
 * store to Redis or back (ST-1), so a running installation can move. The copy
 * is the store switch's carry (ST-7, state/carry.ts): the target keeps the
 * higher of the two levels, a copied level keeps its `raised` time and host,
 * and policies replace the target's entry only when they were fetched later.
 */
import { openPolicyStore, openRatchetStore, type StoreSettings } from '../state/open';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { IniFile } from '../ini';
import type { PolicyStore } from '../mta-sts/store';
import type { RatchetStore } from '../ratchet/store';
import { carryStores } from '../state/carry';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import { waitUntilConnected } from './config';
import type { CliContext } from './context';

export type MigrateDirection = 'file-to-redis' | 'redis-to-file';

export type MigrateCommand = { kind: 'migrate'; direction: MigrateDirection };

/** `migrate file-to-redis|redis-to-file`; a string is a usage error. */
export function parseMigrateCommand(line: CommandLine): MigrateCommand | string {
  const unknown = unknownOption(line);
  if (unknown !== undefined) return unknown;
  const [direction, ...rest] = line.words;
  return rest.length === 0 && (direction === 'file-to-redis' || direction === 'redis-to-file')
    ? { kind: 'migrate', direction }
    : 'migrate needs file-to-redis or redis-to-file';
}

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
    const { levels, policies, skipped } = await carryStores(
      { ratchet: stores.fromRatchet, policy: stores.fromPolicy },
      { ratchet: stores.toRatchet, policy: stores.toPolicy },
    );
    return { levels, policies, skipped };
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

export async function runMigrate(command: MigrateCommand, { settings, redisIni, output }: CliContext): Promise<number> {
  const report = await migrate(command.direction, settings, redisIni);
  output.out(`${command.direction}: ${report.levels} ratchet levels and ${report.policies} policies copied`);
  for (const line of report.skipped) output.err(`skipped ${line}`);
  return 0;
}

export const migrateCommand: CliCommand<MigrateCommand> = { options: {}, parse: parseMigrateCommand, run: runMigrate };
