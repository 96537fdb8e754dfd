/**
 * Where the stores live (ST-1, PKG-4): the settings every store opener reads
 * (the ratchet and the MTA-STS cache, state/open.ts; TLS reports,
 * tlsrpt/open.ts), parsed from outbound_tls.ini and redis.ini.
 */
import type { IniFile, IniSection } from '../ini';
import type { RedisLog } from './redis-connection';

export interface RedisBackend {
  backend: 'redis';
  /** Prefix of every key the plugins write. */
  prefix: string;
  commandTimeoutMs: number;
  /** outbound_tls.ini [redis]: overrides of config/redis.ini [server] (haraka-plugin-redis convention). */
  plugin: IniSection;
}

/** Where the ratchet and the policy cache live (ST-1). */
export type StoreBackend = { backend: 'file' } | RedisBackend;

export interface StoreLog extends RedisLog {
  /** Defaults to `error`. */
  warn?(message: string): void;
}

export interface StoreSettings {
  /** Absolute `data_dir` (see parseOutboundTlsConfig). */
  dataDir: string;
  /** File (default) or Redis. */
  store?: StoreBackend;
  /** config/redis.ini (its [server] and [opts]), for the Redis store. */
  redisIni?: IniFile;
  log?: StoreLog;
  /**
   * ST-7: the record of the store in use (the plugins: STORE_RECORD_FILE in the
   * Haraka directory), so that a switch made while Haraka was stopped is
   * carried over at the next start. None: only switches by `update` are.
   */
  recordFile?: string;
  /** OPS-7: what mail meets while a store is unavailable (outbound_tls.ini on_store_error), for the outage line. */
  onStoreError?: 'defer' | 'send';
  /** OPS-7: a Redis address's availability (true up, false down, null unused), for the metric. */
  onAvailability?: (address: string, up: boolean | null) => void;
}
