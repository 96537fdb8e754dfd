/**
 * The ratchet in Redis (ST-3), shared by every Haraka process on every
 * machine. Each domain is a hash `<prefix>ratchet:<domain>` with fields
 * `level` (0 PLAIN, 1 TLS_INSECURE, 2 TLS_SECURE), `raisedAt` and `host`.
 * A raise is one Lua script run atomically by the server: it only ever
 * raises, so concurrent raises end at the maximum and a lower write never wins.
 */
import { isValidRatchetKey, type RatchetRead, type RatchetStore } from './store';
import type { RedisConnection } from '../store/redis-connection';
import { SecLevel } from '../tls/sec-level';

/** KEYS[1] = the hash; ARGV = level, raisedAt, host. Returns the stored level, or an error for a corrupt entry. */
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
  return wanted
end
return current
`;

export class RedisRatchetStore implements RatchetStore {
  readonly description: string;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
  ) {
    this.description = `${connection.description} (keys ${prefix}ratchet:*)`;
  }

  private key(domain: string): string {
    if (!isValidRatchetKey(domain)) throw new Error(`invalid ratchet key "${domain}"`);
    return `${this.prefix}ratchet:${domain}`;
  }

  async get(domain: string): Promise<RatchetRead> {
    const key = this.key(domain);
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

  async raise(domain: string, level: SecLevel, host?: string): Promise<SecLevel> {
    const key = this.key(domain);
    if (!Number.isInteger(level) || level < SecLevel.PLAIN || level > SecLevel.TLS_SECURE)
      throw new Error(`invalid level ${String(level)}`);
    const result = await this.connection.run(`raise ${key}`, (c) =>
      c.eval(RAISE_SCRIPT, { keys: [key], arguments: [String(level), String(Date.now()), host ?? ''] }),
    );
    const stored = Number(result);
    if (!Number.isInteger(stored) || stored < SecLevel.PLAIN || stored > SecLevel.TLS_SECURE) {
      throw new Error(`${key}: raise answered ${String(result)}`);
    }
    return stored as SecLevel;
  }

  async reset(domain: string): Promise<boolean> {
    const key = this.key(domain);
    return (await this.connection.run(`DEL ${key}`, (c) => c.del(key))) > 0;
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
        read: isValidRatchetKey(domain)
          ? await this.get(domain)
          : { kind: 'unreadable', reason: `bad key ${this.prefix}ratchet:${domain}` },
      });
    }
    return out;
  }

  ready(timeoutMs: number): Promise<boolean> {
    return this.connection.ready(timeoutMs);
  }

  async close(): Promise<void> {
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
