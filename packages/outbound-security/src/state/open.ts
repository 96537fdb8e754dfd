/**
 * Store selection (ST-1): which ratchet and policy stores the plugins and the CLI open for
 * the settings in outbound_tls.ini. One place, so both always use the same
 * store: the embedded file store (ST-2) or Redis (ST-3). `SharedStores` keeps
 * one ratchet store and one policy store per process for the settings in
 * force, and reopens them when data_dir, store or the Redis settings change
 * (PKG-4), carrying what the previous ones hold into them (ST-7).
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileRatchetStore } from '../ratchet/file-store';
import { FilePolicyStore } from '../mta-sts/file-store';
import type { PolicyStore } from '../mta-sts/store';
import type { RedisBackend, StoreLog, StoreSettings } from '../store/settings';

export type { StoreSettings } from '../store/settings';
import type { RatchetStore } from '../ratchet/store';
import { RedisConnection, redisEndpoint } from '../store/redis-connection';
import { CarryingPolicyStore, CarryingRatchetStore } from './carrying';
import type { StoreInUse } from './in-use';
import { StoreSwitch, type OpenedStores } from './switch';
import { RedisPolicyStore } from '../mta-sts/redis-store';
import { RedisRatchetStore } from '../ratchet/redis-store';

/** The ratchet's directory under `data_dir`. */
export const RATCHET_SUBDIR = 'ratchet';

const quiet: StoreLog = { info: () => undefined, error: () => undefined };

function redisConnection(settings: StoreSettings, backend: RedisBackend): RedisConnection {
  return new RedisConnection(
    {
      server: settings.redisIni?.server ?? {},
      opts: settings.redisIni?.opts ?? {},
      plugin: backend.plugin,
      commandTimeoutMs: backend.commandTimeoutMs,
      consequence:
        settings.onStoreError === 'send'
          ? 'mail is sent without its stored levels and policies (on_store_error=send)'
          : 'mail that needs stored state is deferred (on_store_error=defer)',
      ...(settings.onAvailability ? { onAvailability: settings.onAvailability } : {}),
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

/** ST-7: which store the settings name (what the record of the store in use holds). */
export function storeInUse(settings: StoreSettings): StoreInUse {
  const backend = settings.store ?? { backend: 'file' };
  if (backend.backend === 'file') return { backend: 'file', dataDir: path.resolve(settings.dataDir) };
  const endpoint = redisEndpoint({ server: settings.redisIni?.server ?? {}, opts: settings.redisIni?.opts ?? {}, plugin: backend.plugin });
  return { backend: 'redis', ...endpoint, prefix: backend.prefix };
}

/** The settings that open `inUse` (a store named by the record), the rest (redis.ini [opts], the log) from `current`. */
function settingsFor(inUse: StoreInUse, current: StoreSettings): StoreSettings {
  if (inUse.backend === 'file') return { ...current, dataDir: inUse.dataDir, store: { backend: 'file' } };
  const timeout = current.store?.backend === 'redis' ? current.store.commandTimeoutMs : DEFAULT_REDIS_TIMEOUT_MS;
  const plugin = { host: inUse.host, port: String(inUse.port), ...(inUse.database ? { database: inUse.database } : {}) };
  return { ...current, store: { backend: 'redis', prefix: inUse.prefix, commandTimeoutMs: timeout, plugin } };
}

const DEFAULT_REDIS_TIMEOUT_MS = 1000;
const NONE: readonly never[] = [];

/**
 * The ratchet and policy stores of this process, shared by both plugins,
 * opened on first use for the settings in force (a plugin asks for the ones
 * it uses when it loads, so a Redis connection is made before the first
 * delivery). `update` with new settings opens the stores they describe; ST-7:
 * the previous ones are carried into them and closed (state/switch.ts), and
 * meanwhile `ratchet()` and `policy()` read both (state/carrying.ts).
 */
export class SharedStores {
  private opened: OpenedStores | undefined;
  private key: string;
  private readonly switcher: StoreSwitch;
  private readonly ratchetView: CarryingRatchetStore;
  private readonly policyView: CarryingPolicyStore;
  /** Counts the moves: a cache of what a store held (MTA-STS policies in memory) is stale when it changed. */
  generation = 0;

  constructor(private settings: StoreSettings) {
    this.key = storeKey(settings);
    const log = settings.log ?? quiet;
    this.switcher = new StoreSwitch(
      () => this.target(),
      { info: (m) => log.info(m), warn: (m) => (log.warn ?? log.error).call(log, m), error: (m) => log.error(m) },
      settings.recordFile,
    );
    this.ratchetView = new CarryingRatchetStore(() => ({ target: this.target().ratchet, previous: this.previous('ratchet') }));
    this.policyView = new CarryingPolicyStore(() => ({ target: this.target().policy, previous: this.previous('policy') }));
    if (settings.recordFile) this.switcher.start((inUse) => this.open(settingsFor(inUse, this.settings)), unrecordedStore(settings));
  }

  /** New settings; true when the stores moved (the previous ones are carried into the new ones, then closed). */
  update(settings: StoreSettings): boolean {
    const key = storeKey(settings);
    const before = this.settings;
    this.settings = settings;
    if (key === this.key) return false;
    this.key = key;
    this.generation += 1;
    const previous = this.opened ?? this.open(before);
    // The new stores are opened at once: a Redis connection is up before the next delivery needs it.
    this.opened = this.open(settings);
    this.switcher.add(previous);
    return true;
  }

  ratchet(): RatchetStore {
    this.target();
    return this.ratchetView;
  }

  policy(): PolicyStore {
    this.target();
    return this.policyView;
  }

  /** Where the stores are, for the log (`file:<data_dir>` or `redis`). */
  get description(): string {
    const backend = this.settings.store ?? { backend: 'file' };
    return backend.backend === 'file' ? `file:${path.resolve(this.settings.dataDir)}` : `redis (prefix ${backend.prefix})`;
  }

  async close(): Promise<void> {
    const opened = this.opened;
    this.opened = undefined;
    await this.switcher.close();
    if (opened) await Promise.all([opened.ratchet.close().catch(() => undefined), opened.policy.close().catch(() => undefined)]);
  }

  private target(): OpenedStores {
    this.opened ??= this.open(this.settings);
    return this.opened;
  }

  private previous<K extends 'ratchet' | 'policy'>(kind: K): ReadonlyArray<OpenedStores[K]> {
    const pending = this.switcher.pending;
    return pending.length === 0 ? NONE : pending.map((p) => p[kind]);
  }

  private open(settings: StoreSettings): OpenedStores {
    return { inUse: storeInUse(settings), ratchet: openRatchetStore(settings), policy: openPolicyStore(settings) };
  }
}

/**
 * With no record of the store in use (the first start with one): the file
 * store under data_dir, when Redis is in force and that directory holds a
 * ratchet or a policy cache (it may have been in use until now).
 */
function unrecordedStore(settings: StoreSettings): StoreInUse | undefined {
  if ((settings.store ?? { backend: 'file' }).backend !== 'redis') return undefined;
  const dataDir = path.resolve(settings.dataDir);
  const used = [RATCHET_SUBDIR, POLICY_SUBDIR].some((sub) => fs.existsSync(path.join(dataDir, sub)));
  return used ? { backend: 'file', dataDir } : undefined;
}
