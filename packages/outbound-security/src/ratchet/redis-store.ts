/**
 * The ratchet in Redis (ST-3), shared by every Haraka process on every
 * machine. Each domain is a hash `<prefix>ratchet:<domain>` with fields
 * `level` (0 PLAIN, 1 TLS_INSECURE, 2 TLS_SECURE), `raisedAt` and `host`.
 * A raise is one Lua script run atomically by the server: it only ever
 * raises, so concurrent raises end at the maximum and a lower write never wins.
 *
 * OPS-6: each process remembers what it read (RatchetMemory, bounded), so a
 * delivery makes no Redis round trip when nothing changed. A raise that
 * changes a level, and every reset (the CLI's too), publish the domain on
 * `<prefix>ratchet-changes` from inside the script that makes the change; the
 * change feed (redis-changes.ts) forgets it in every process, and while the
 * feed is not subscribed nothing is remembered and every read goes to Redis.
 */
import { isValidStoreKey } from '../store/keys';
import { type RatchetRead, type RatchetStore } from './store';
import type { RedisConnection } from '../store/redis-connection';
import { SecLevel } from '../sec-level';
import { RatchetMemory, type RatchetMemoryLimits } from './memory';
import { CHANGES_CHANNEL, RedisChangeFeed } from '../store/redis-changes';

/**
 * KEYS[1] = the hash; ARGV = level, raisedAt, host, change channel, domain.
 * Returns the stored level, or an error for a corrupt entry. A change is
 * published in the same atomic step, so no reader can miss it.
 */
const RAISE_SCRIPT = `
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('corrupt ratchet entry: key of type ' .. kind)
end
local current = -1
if kind == 'hash' then
  local raw = redis.call('HGET', KEYS[1], 'level')
  if not raw or not string.match(raw, '^[0-2]$') then
    return redis.error_reply('corrupt ratchet entry: level ' .. tostring(raw))
  end
  current = tonumber(raw)
end
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('HSET', KEYS[1], 'level', ARGV[1], 'raisedAt', ARGV[2], 'host', ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return wanted
end
return current
`;

/** KEYS[1] = the hash; ARGV = change channel, domain. Deletes and publishes in one step; returns how many keys went. */
const RESET_SCRIPT = `
local deleted = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return deleted
`;

export interface RedisRatchetStoreOptions {
  /** OPS-5: what one process remembers (default RATCHET_MEMORY_ENTRIES and _BYTES). */
  memory?: RatchetMemoryLimits;
}

export class RedisRatchetStore implements RatchetStore {
  readonly description: string;
  private readonly memory: RatchetMemory;
  private readonly changes: RedisChangeFeed;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
    options: RedisRatchetStoreOptions = {},
  ) {
    this.description = `${connection.description} (keys ${prefix}ratchet:*)`;
    this.memory = new RatchetMemory(options.memory);
    this.changes = new RedisChangeFeed(connection, `${prefix}${CHANGES_CHANNEL}`, this.memory);
  }

  private key(domain: string): string {
    if (!isValidStoreKey(domain)) throw new Error(`invalid ratchet key "${domain}"`);
    return `${this.prefix}ratchet:${domain}`;
  }

  peek(domain: string): RatchetRead | undefined {
    // Only while the change feed is live, as `get` serves from memory.
    return this.changes.live && isValidStoreKey(domain) ? this.memory.recall(domain, 0) : undefined;
  }

  async get(domain: string): Promise<RatchetRead> {
    const key = this.key(domain);
    if (this.changes.live) {
      const remembered = this.memory.recall(domain, 0);
      if (remembered !== undefined) return remembered;
    }
    const token = this.memory.token();
    const read = await this.read(domain, key);
    // Not remembered unless the feed was live throughout (going down or up forgets all, a new token).
    if (this.changes.live) this.memory.remember(domain, read, token);
    return read;
  }

  private async read(domain: string, key: string): Promise<RatchetRead> {
    let fields: Record<string, string>;
    try {
      fields = await this.connection.run(`HGETALL ${key}`, (c) => c.hGetAll(key));
    } catch (err) {
      if (/WRONGTYPE/.test((err as Error).message)) return { kind: 'unreadable', reason: `${key}: not a hash` };
      throw err;
    }
    if (Object.keys(fields).length === 0) return { kind: 'none' };
    return readFields(domain, key, fields);
  }

  async raise(domain: string, level: SecLevel, host?: string, raisedAt: number = Date.now()): Promise<SecLevel> {
    const key = this.key(domain);
    if (!Number.isInteger(level) || level < SecLevel.PLAIN || level > SecLevel.TLS_SECURE)
      throw new Error(`invalid level ${String(level)}`);
    const result = await this.connection.run(`raise ${key}`, (c) =>
      c.eval(RAISE_SCRIPT, {
        keys: [key],
        arguments: [String(level), String(Math.round(raisedAt)), host ?? '', this.changes.channel, domain],
      }),
    );
    this.memory.forget(domain); // this process's next read sees its own raise, before the message arrives
    const stored = Number(result);
    if (!Number.isInteger(stored) || stored < SecLevel.PLAIN || stored > SecLevel.TLS_SECURE) {
      throw new Error(`${key}: raise answered ${String(result)}`);
    }
    return stored as SecLevel;
  }

  async reset(domain: string): Promise<boolean> {
    const key = this.key(domain);
    const deleted = await this.connection.run(`reset ${key}`, (c) =>
      c.eval(RESET_SCRIPT, { keys: [key], arguments: [this.changes.channel, domain] }),
    );
    this.memory.forget(domain);
    return Number(deleted) > 0;
  }

  async list(): Promise<Array<{ domain: string; read: RatchetRead }>> {
    const pattern = `${this.prefix}ratchet:*`;
    const keys = await this.connection.run(`SCAN ${pattern}`, async (c) => {
      const found: string[] = [];
      for await (const batch of c.scanIterator({ MATCH: pattern, COUNT: 500 })) found.push(...(Array.isArray(batch) ? batch : [batch]));
      return found;
    });
    const domains = [...new Set(keys.map((k) => k.slice(`${this.prefix}ratchet:`.length)))].sort();
    const out: Array<{ domain: string; read: RatchetRead }> = [];
    for (const domain of domains) {
      out.push({
        domain,
        read: isValidStoreKey(domain)
          ? await this.read(domain, `${this.prefix}ratchet:${domain}`)
          : { kind: 'unreadable', reason: `bad key ${this.prefix}ratchet:${domain}` },
      });
    }
    return out;
  }

  /** Resolves true once connected; waits (within `timeoutMs`) for the change feed too, so reads are remembered from the start. */
  async ready(timeoutMs: number): Promise<boolean> {
    const started = Date.now();
    if (!(await this.connection.ready(timeoutMs))) return false;
    await this.changes.whenLive(Math.max(0, timeoutMs - (Date.now() - started)));
    return this.connection.ready(0);
  }

  async close(): Promise<void> {
    await this.changes.close();
    await this.connection.close();
  }
}

function readFields(domain: string, key: string, fields: Record<string, string>): RatchetRead {
  const raw = fields.level;
  const level = Number(raw);
  if (raw === undefined || !/^[0-2]$/.test(raw) || !Number.isInteger(level)) {
    return { kind: 'unreadable', reason: `${key}: level field ${raw === undefined ? 'missing' : `"${raw.slice(0, 20)}"`}` };
  }
  const raisedAt = Number(fields.raisedAt);
  return {
    kind: 'level',
    entry: {
      domain,
      level: level as SecLevel,
      ...(Number.isFinite(raisedAt) && raisedAt > 0 ? { raisedAt } : {}),
      ...(fields.host ? { host: fields.host } : {}),
    },
  };
}
