/**
 * The TLS report store for the store settings in force (ST-1, PKG-4): the
 * same settings the ratchet and the MTA-STS cache use (state/open.ts), so
 * counts go where every other worker's and machine's go (RPT-1): files under
 * `<data_dir>/tlsrpt`, or Redis under the plugins' key prefix.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { StoreSettings } from '../store/settings';
import { RedisConnection } from '../store/redis-connection';
import { FileTlsReportStore } from './file-store';
import { RedisTlsReportStore } from './redis-store';
import type { TlsReportStore } from './store';

/** The TLS report store's directory under `data_dir`. */
export const TLSRPT_SUBDIR = 'tlsrpt';

export function openTlsReportStore(settings: StoreSettings): TlsReportStore {
  const backend = settings.store ?? { backend: 'file' };
  if (backend.backend === 'file') return new FileTlsReportStore(path.join(path.resolve(settings.dataDir), TLSRPT_SUBDIR));
  const connection = new RedisConnection(
    {
      server: settings.redisIni?.server ?? {},
      opts: settings.redisIni?.opts ?? {},
      plugin: backend.plugin,
      commandTimeoutMs: backend.commandTimeoutMs,
    },
    settings.log ?? { info: () => undefined, error: () => undefined },
  );
  return new RedisTlsReportStore(connection, backend.prefix);
}

/** A send lock holder name unique in the cluster: host, process, and a random part (a restarted pid differs). */
export function processHolder(): string {
  const host =
    hostname()
      .replace(/[^\x21-\x7e]/g, '-')
      .slice(0, 60) || 'host';
  return `${host}-${process.pid}-${randomBytes(4).toString('hex')}`;
}
