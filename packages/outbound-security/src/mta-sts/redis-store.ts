/**
 * The MTA-STS policy cache in Redis (ST-3): `<prefix>mta-sts:<domain>` holds
 * the cached entry as JSON and expires in Redis when the policy expires.
 *
 * OPS-6: a delete (the CLI's `policy purge`) publishes the domain on
 * `<prefix>mta-sts-purges`; every process subscribes (the ratchet store's
 * change feed) and counts what it hears, and that count is the purge
 * generation its resolver checks before trusting its memory. While not
 * subscribed the generation changes at every call, so nothing remembered is
 * trusted until the feed is back.
 */
import type { CachedPolicy, PolicyRead, PolicyStore } from './store';
import { isValidStoreKey } from '../store/keys';
import type { RedisConnection } from '../store/redis-connection';
import { RedisChangeFeed } from '../store/redis-changes';

/** The channel purges are announced on, after the key prefix. */
export const PURGES_CHANNEL = 'mta-sts-purges';

export class RedisPolicyStore implements PolicyStore {
  readonly description: string;
  private purges = 0;
  private readonly feed: RedisChangeFeed;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
  ) {
    this.description = `${connection.description} (keys ${prefix}mta-sts:*)`;
    const heard = (): void => void this.purges++;
    this.feed = new RedisChangeFeed(connection, `${prefix}${PURGES_CHANNEL}`, { forget: heard, forgetAll: heard });
  }

  purgeGeneration(): string {
    return this.feed.live ? `live:${this.purges}` : `not subscribed:${++this.purges}`;
  }

  private key(domain: string): string {
    if (!isValidStoreKey(domain) || domain.startsWith('[')) throw new Error(`invalid policy cache key "${domain}"`);
    return `${this.prefix}mta-sts:${domain}`;
  }

  async get(domain: string): Promise<PolicyRead> {
    const key = this.key(domain);
    let text: string | null;
    try {
      text = await this.connection.run(`GET ${key}`, (c) => c.get(key));
    } catch (err) {
      if (/WRONGTYPE/.test((err as Error).message)) return { kind: 'unreadable', reason: `${key}: not a string` };
      throw err;
    }
    if (text === null) return { kind: 'none' };
    try {
      const value = JSON.parse(text) as CachedPolicy;
      const fieldsOk =
        value.domain === domain &&
        typeof value.id === 'string' &&
        typeof value.text === 'string' &&
        [value.fetchedAt, value.expiresAt, value.checkedAt, value.usedAt].every((n) => typeof n === 'number' && Number.isFinite(n));
      return fieldsOk ? { kind: 'entry', entry: value } : { kind: 'unreadable', reason: `${key}: not a cached policy entry` };
    } catch (err) {
      return { kind: 'unreadable', reason: `${key}: ${(err as Error).message}` };
    }
  }

  async put(entry: CachedPolicy): Promise<void> {
    const key = this.key(entry.domain);
    if (entry.expiresAt <= Date.now()) {
      await this.connection.run(`DEL ${key}`, (c) => c.del(key));
      return;
    }
    await this.connection.run(`SET ${key}`, (c) => c.set(key, JSON.stringify(entry), { PXAT: entry.expiresAt }));
  }

  async delete(domain: string): Promise<boolean> {
    const key = this.key(domain);
    const deleted = (await this.connection.run(`DEL ${key}`, (c) => c.del(key))) > 0;
    // Even when nothing was there: a process may still hold the policy in memory.
    const channel = `${this.prefix}${PURGES_CHANNEL}`;
    await this.connection.run(`PUBLISH ${channel}`, (c) => c.publish(channel, domain));
    return deleted;
  }

  async list(): Promise<Array<{ domain: string; read: PolicyRead }>> {
    const pattern = `${this.prefix}mta-sts:*`;
    const keys = await this.connection.run(`SCAN ${pattern}`, async (c) => {
      const found: string[] = [];
      for await (const batch of c.scanIterator({ MATCH: pattern, COUNT: 500 })) found.push(...(Array.isArray(batch) ? batch : [batch]));
      return found;
    });
    const out: Array<{ domain: string; read: PolicyRead }> = [];
    for (const domain of [...new Set(keys.map((k) => k.slice(`${this.prefix}mta-sts:`.length)))].sort()) {
      out.push({ domain, read: await this.get(domain) });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.feed.close();
    await this.connection.close();
  }

  /** Resolves true once connected and subscribed to the purges, false after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<boolean> {
    const started = Date.now();
    if (!(await this.connection.ready(timeoutMs))) return false;
    return this.feed.whenLive(Math.max(0, timeoutMs - (Date.now() - started)));
  }
}
