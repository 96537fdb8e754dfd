/**
 * A Redis store's change feed (ST-3, OPS-6), for the ratchet (its levels) and
 * the MTA-STS cache (its purges): a subscriber on a channel such as
 * `<prefix>ratchet-changes`, on a second connection made like the
 * store's own (haraka-plugin-redis settings, duplicated client). Every raise
 * that changes a level and every reset publishes the domain on that channel
 * from inside the same server-side script as the change, so no change goes
 * unannounced; each message makes the process forget that domain.
 *
 * The memory may be used only while the feed is `live`: subscribed, with no
 * error since. Any error, disconnection or reconnection makes the process
 * forget everything and read from Redis until it is subscribed again (node-redis
 * resubscribes before it reports `ready`), so a message lost while the
 * subscriber was away can never leave a stale level behind.
 *
 * What is left: a message travels on its own connection, so a reader learns
 * of another process's change when the message arrives, which Redis sends
 * before it answers the writer; a reader whose read reached Redis just before
 * the change sees the old level in the same way. A subscriber whose TCP peer
 * vanished without a reset (a half-open connection) is only noticed by TCP
 * keepalive.
 */
import type { RedisClient, RedisConnection } from './redis-connection';
import { isValidStoreKey } from './keys';

/** What a process remembers of a store: what the feed makes it forget. */
export interface ForgetfulMemory {
  /** A change of one key. */
  forget(key: string): void;
  /** Everything: a change that names no valid key, or a feed that may have missed changes. */
  forgetAll(): void;
}

/** The ratchet's channel's name after the store's key prefix. */
export const CHANGES_CHANNEL = 'ratchet-changes';
/** Longest pause between two attempts to subscribe. */
const MAX_RETRY_MS = 1_000;

export class RedisChangeFeed {
  private subscriber: RedisClient | null = null;
  /** Subscribed and no error since: the memory may be used. */
  private subscribedNow = false;
  /** Our SUBSCRIBE was acknowledged once; from then on node-redis resubscribes before each `ready`. */
  private listening = false;
  private closed = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly connection: RedisConnection,
    readonly channel: string,
    private readonly memory: ForgetfulMemory,
  ) {
    void this.start();
  }

  /** True while every change is being heard of. */
  get live(): boolean {
    return this.subscribedNow;
  }

  /** Resolves true once live, false after `timeoutMs`. */
  async whenLive(timeoutMs: number): Promise<boolean> {
    if (this.subscribedNow) return true;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    clearTimeout(timer);
    return this.subscribedNow;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.down();
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber === null) return;
    try {
      await Promise.race([subscriber.quit(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    } catch {
      subscriber.destroy?.();
    }
  }

  private async start(): Promise<void> {
    const client = await this.connection.duplicate().catch(() => null);
    if (client === null) return;
    if (this.closed) {
      client.destroy?.();
      return;
    }
    this.subscriber = client;
    client.on('error', () => this.down()); // also keeps an unhandled 'error' from ending the process
    client.on('end', () => this.down());
    client.on('reconnecting', () => this.down());
    client.on('ready', () => {
      if (this.listening) this.up();
    });
    let opened = false;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        if (!opened) {
          await client.connect(); // retries by itself while Redis is down
          opened = true;
        }
        await client.subscribe(this.channel, (message) => this.heard(message));
        if (this.closed) return;
        this.listening = true;
        this.up();
        return;
      } catch {
        this.down();
        await new Promise((resolve) => setTimeout(resolve, Math.min(MAX_RETRY_MS, 50 * 2 ** attempt)).unref());
      }
    }
  }

  private heard(domain: string): void {
    if (isValidStoreKey(domain)) this.memory.forget(domain);
    else this.memory.forgetAll();
  }

  private up(): void {
    if (this.closed) return;
    this.memory.forgetAll();
    this.subscribedNow = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  private down(): void {
    this.subscribedNow = false;
    this.memory.forgetAll();
  }
}
