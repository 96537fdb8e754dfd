/**
 * A Redis connection for the shared stores (ST-3), made through
 * haraka-plugin-redis the Haraka way: `config/redis.ini` [server] merged with
 * the plugin's own [redis] section (its normalize_endpoint), the client from
 * its get_redis_client. Commands fail fast while Redis is unreachable (no
 * offline queue) and after a timeout when it is slow, so a delivery never
 * waits on Redis: the caller defers (ST-4). The client reconnects by itself,
 * backing off from RECONNECT_FIRST_MS to RECONNECT_MAX_MS.
 *
 * OPS-7: every connection to one address in this process (the ratchet, the
 * policy cache, TLS reports) reports to one Outage (store/outage.ts): one
 * line when Redis goes away, a reminder at most once a minute, one line when
 * it is back; haraka-plugin-redis's per-attempt error lines are not logged.
 * In a Haraka cluster every process holds the same connections: the primary
 * tells the outage, the workers only follow it (and the metric).
 */
import cluster from 'node:cluster';
import type { IniSection } from '../ini';
import { Outage, type OutageMember } from './outage';

/** The first pause before reconnecting; each failed attempt doubles it up to RECONNECT_MAX_MS (OPS-7). */
export const RECONNECT_FIRST_MS = 100;
export const RECONNECT_MAX_MS = 30_000;
/** What mail meets while Redis is down, when the settings do not say (ST-4's default). */
const DEFAULT_CONSEQUENCE = 'mail that needs stored state is deferred (on_store_error=defer)';

/** The subset of node-redis (v5) the stores use. */
export interface RedisClient {
  isReady: boolean;
  hGetAll(key: string): Promise<Record<string, string>>;
  type(key: string): Promise<string>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: { PXAT?: number }): Promise<unknown>;
  del(key: string | string[]): Promise<number>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  scanIterator(options: { MATCH: string; COUNT?: number }): AsyncIterable<string | string[]>;
  quit(): Promise<unknown>;
  destroy?(): void;
  disconnect?(): Promise<void>;
  /** A new, unconnected client with the same options (a subscriber, say). */
  duplicate(): RedisClient;
  connect(): Promise<unknown>;
  on(event: 'error' | 'end' | 'reconnecting' | 'ready', listener: (...args: unknown[]) => void): unknown;
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  publish(channel: string, message: string): Promise<number>;
}

interface HarakaPluginRedis {
  normalize_endpoint(
    section?: Record<string, unknown>,
    opts?: Record<string, unknown>,
  ): Record<string, unknown> & { socket: Record<string, unknown> };
  get_redis_client(this: { loginfo(m: string): void; logerror(m: string): void }, opts: unknown): Promise<RedisClient>;
}

export interface RedisSettings {
  /** redis.ini [server] and [opts], as haraka-config returns them. */
  server: IniSection;
  opts: IniSection;
  /** The plugin's own [redis] section (overrides). */
  plugin: IniSection;
  /** Per-command deadline in milliseconds. */
  commandTimeoutMs: number;
  /** OPS-7: what mail meets while Redis is down, for the outage line (default: deferred). */
  consequence?: string;
  /** OPS-7: availability of `address` (`redis://host:port`): true up, false down, null no longer used (a metric). */
  onAvailability?: (address: string, up: boolean | null) => void;
}

export interface RedisLog {
  info(message: string): void;
  error(message: string): void;
}

export class RedisUnavailable extends Error {}

/** This process's outages, one per Redis address, shared by every connection to it (OPS-7). */
const outages = new Map<string, Outage>();

function outageOf(address: string, settings: RedisSettings, log: RedisLog): Outage {
  const consequence = settings.consequence ?? DEFAULT_CONSEQUENCE;
  let outage = outages.get(address);
  if (outage) {
    outage.update({ consequence });
    return outage;
  }
  const onAvailability = settings.onAvailability;
  outage = new Outage({
    service: `Redis store ${address}`,
    consequence,
    log: cluster.isWorker ? { info: () => undefined, error: () => undefined } : log,
    ...(onAvailability ? { onChange: (up: boolean | null) => onAvailability(address, up) } : {}),
  });
  outages.set(address, outage);
  return outage;
}

function harakaPluginRedis(): HarakaPluginRedis {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('haraka-plugin-redis') as HarakaPluginRedis;
}

/** The client options haraka-plugin-redis makes of the settings: redis.ini [server] and [opts], the plugin's [redis] over them. */
function clientOptions(settings: Pick<RedisSettings, 'server' | 'opts' | 'plugin'>): ReturnType<HarakaPluginRedis['normalize_endpoint']> {
  return harakaPluginRedis().normalize_endpoint({ ...settings.server, ...settings.plugin }, settings.opts);
}

/** Where the settings connect: host, port and database (ST-7 names a store by it). */
export function redisEndpoint(settings: Pick<RedisSettings, 'server' | 'opts' | 'plugin'>): {
  host: string;
  port: number;
  database?: string;
} {
  const options = clientOptions(settings);
  const database = options.database ?? options.db;
  return {
    host: String(options.socket.host),
    port: Number(options.socket.port),
    ...(database !== undefined && database !== '' && String(database) !== '0' ? { database: String(database) } : {}),
  };
}

export class RedisConnection {
  private client: RedisClient | null = null;
  private closed = false;
  readonly description: string;
  private readonly connecting: Promise<void>;
  private readonly outage: OutageMember;

  constructor(
    private readonly settings: RedisSettings,
    private readonly log: RedisLog,
  ) {
    const hpr = harakaPluginRedis();
    const options = clientOptions(settings);
    options.disableOfflineQueue = true;
    options.socket = {
      ...options.socket,
      connectTimeout: Math.max(500, settings.commandTimeoutMs),
      reconnectStrategy: (retries: number) => Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(retries, 20), RECONNECT_MAX_MS),
    };
    this.description = `redis://${String(options.socket.host)}:${String(options.socket.port)}${options.database ? `/${String(options.database)}` : ''}`;
    this.outage = outageOf(this.description, settings, log).member();
    // haraka-plugin-redis logs every failed attempt (an error event each) and every disconnection: the outage tells them once.
    const context = {
      loginfo: (m: string) => {
        if (/^connected to /.test(m)) log.info(m);
      },
      logerror: (m: string) => {
        if (!this.closed) this.outage.down(m.replace(/^Redis connect failed: /, ''));
      },
    };
    // Resolves once connected (it keeps retrying while Redis is down).
    this.connecting = hpr.get_redis_client.call(context, options).then(
      (client) => {
        if (this.closed) {
          void client.quit().catch(() => undefined);
          return;
        }
        this.client = client;
        client.on('ready', () => this.outage.up());
        this.outage.up();
      },
      (err: Error) => {
        if (!this.closed) this.outage.down(err.message);
      },
    );
  }

  /** Resolves when the first connection is up (tests, CLI). */
  async ready(timeoutMs: number): Promise<boolean> {
    await Promise.race([this.connecting, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    return this.client?.isReady === true;
  }

  /** Runs one command with the deadline; rejects with RedisUnavailable when Redis cannot answer. */
  async run<T>(what: string, command: (client: RedisClient) => Promise<T>): Promise<T> {
    const client = this.client;
    if (!client || !client.isReady) throw new RedisUnavailable(`${this.description} is not connected (${what})`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RedisUnavailable(`${this.description} did not answer within ${this.settings.commandTimeoutMs} ms (${what})`)),
        this.settings.commandTimeoutMs,
      );
    });
    try {
      return await Promise.race([command(client), deadline]);
    } catch (err) {
      if (err instanceof RedisUnavailable) throw err;
      const message = (err as Error).message;
      if (/closed|connect|socket|offline|ECONN|EPIPE/i.test(message))
        throw new RedisUnavailable(`${this.description}: ${message} (${what})`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A new client with this connection's settings, not connected yet, for a
   * subscriber (the ratchet's change feed); waits for the first connection.
   * Null once closed. The caller owns it: listen to its `error` events and quit it.
   */
  async duplicate(): Promise<RedisClient | null> {
    await this.connecting;
    return this.closed || this.client === null ? null : this.client.duplicate();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.outage.leave();
    const client = this.client;
    this.client = null;
    if (!client) return;
    try {
      await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1000).unref())]);
    } catch {
      client.destroy?.();
    }
  }
}
