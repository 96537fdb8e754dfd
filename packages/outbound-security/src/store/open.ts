/**
 * Store selection (ST-1): which ratchet and policy stores the plugins and the CLI open for
 * the settings in outbound_tls.ini. One place, so both always use the same
 * store: the embedded file store (ST-2) or Redis (ST-3). `SharedStores` keeps
 * one ratchet store and one policy store per process for the settings in
 * force, and reopens them when data_dir, store or the Redis settings change
 * (PKG-4).
 */
import path from 'node:path';
import { FileRatchetStore } from '../ratchet/file-store';
import { FilePolicyStore, type PolicyStore } from '../mta-sts/store';
import type { IniFile } from '../config/ini';
import type { RedisBackend, StoreBackend } from '../config/outbound-tls';
import type { RatchetStore } from '../ratchet/store';
import { RedisConnection, type RedisLog } from './redis-connection';
import { RedisPolicyStore } from '../mta-sts/redis-store';
import { RedisRatchetStore } from '../ratchet/redis-store';

/** The ratchet's directory under `data_dir`. */
export const RATCHET_SUBDIR = 'ratchet';

export interface StoreSettings {
  /** Absolute `data_dir` (see parseOutboundTlsConfig). */
  dataDir: string;
  /** File (default) or Redis. */
  store?: StoreBackend;
  /** config/redis.ini (its [server] and [opts]), for the Redis store. */
  redisIni?: IniFile;
  log?: RedisLog;
}

const quiet: RedisLog = { info: () => undefined, error: () => undefined };

function redisConnection(settings: StoreSettings, backend: RedisBackend): RedisConnection {
  return new RedisConnection(
    {
      server: settings.redisIni?.server ?? {},
      opts: settings.redisIni?.opts ?? {},
      plugin: backend.plugin,
      commandTimeoutMs: backend.commandTimeoutMs,
    },
    settings.log ?? quiet,
  );
}

export function openRatchetStore(settings: StoreSettings): RatchetStore {
  const backend = settings.store ?? { backend: 'file' };
  if (backend.backend === 'redis') return new RedisRatchetStore(redisConnection(settings, backend), backend.prefix);
  return new FileRatchetStore(path.join(path.resolve(settings.dataDir), RATCHET_SUBDIR));
}

/**
 * For tests and tools: `file:/abs/dir` (the ratchet directory itself) or
 * `redis://host:port/?prefix=P&timeout=MS`.
 */
export function openRatchetStoreFromUrl(url: string): RatchetStore {
  if (url.startsWith('file:')) return new FileRatchetStore(url.slice('file:'.length));
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:') throw new Error(`unsupported store URL ${url}`);
  return new RedisRatchetStore(
    new RedisConnection(
      {
        server: { host: parsed.hostname, port: parsed.port || '6379' },
        opts: {},
        plugin: {},
        commandTimeoutMs: Number(parsed.searchParams.get('timeout') ?? 1000),
      },
      quiet,
    ),
    parsed.searchParams.get('prefix') ?? 'haraka-outbound:',
  );
}

/** The MTA-STS policy cache's directory under `data_dir`. */
export const POLICY_SUBDIR = 'mta-sts';

export function openPolicyStore(settings: StoreSettings): PolicyStore {
  const backend = settings.store ?? { backend: 'file' };
  if (backend.backend === 'redis') return new RedisPolicyStore(redisConnection(settings, backend), backend.prefix);
  return new FilePolicyStore(path.join(path.resolve(settings.dataDir), POLICY_SUBDIR));
}

/** What identifies the stores a settings value opens: a change means reopening. */
function storeKey(settings: StoreSettings): string {
  const backend = settings.store ?? { backend: 'file' };
  if (backend.backend === 'file') return JSON.stringify(['file', path.resolve(settings.dataDir)]);
  return JSON.stringify(['redis', backend, settings.redisIni?.server ?? {}, settings.redisIni?.opts ?? {}]);
}

/**
 * The ratchet and policy stores of this process, shared by both plugins,
 * opened on first use for the settings in force (a plugin asks for the ones
 * it uses when it loads, so a Redis connection is made before the first
 * delivery). `update` with new settings replaces the open stores they no
 * longer describe and closes the old ones.
 */
export class SharedStores {
  private ratchetStore: RatchetStore | undefined;
  private policyStore: PolicyStore | undefined;
  private key: string;
  /** Counts the moves: a cache of what a store held (MTA-STS policies in memory) is stale when it changed. */
  generation = 0;

  constructor(private settings: StoreSettings) {
    this.key = storeKey(settings);
  }

  /** New settings; true when the stores moved (the old ones are closed). */
  update(settings: StoreSettings): boolean {
    const key = storeKey(settings);
    this.settings = settings;
    if (key === this.key) return false;
    this.key = key;
    this.generation += 1;
    const previous = [this.ratchetStore, this.policyStore];
    // The stores in use are reopened at once: a Redis connection is up before the next delivery needs it.
    this.ratchetStore = previous[0] && openRatchetStore(settings);
    this.policyStore = previous[1] && openPolicyStore(settings);
    for (const store of previous) store?.close().catch(() => undefined);
    return true;
  }

  ratchet(): RatchetStore {
    this.ratchetStore ??= openRatchetStore(this.settings);
    return this.ratchetStore;
  }

  policy(): PolicyStore {
    this.policyStore ??= openPolicyStore(this.settings);
    return this.policyStore;
  }

  /** Where the stores are, for the log (`file:<data_dir>` or `redis`). */
  get description(): string {
    const backend = this.settings.store ?? { backend: 'file' };
    return backend.backend === 'file' ? `file:${path.resolve(this.settings.dataDir)}` : `redis (prefix ${backend.prefix})`;
  }

  async close(): Promise<void> {
    const stores = [this.ratchetStore, this.policyStore];
    this.ratchetStore = undefined;
    this.policyStore = undefined;
    await Promise.all(stores.map((store) => store?.close().catch(() => undefined)));
  }
}
