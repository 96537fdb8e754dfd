/**
 * OPS-7 outages are told once, clearly. An `Outage` follows one service (the
 * Redis store at an address, a DNS resolver) through the connections that use
 * it: one error line when the first of them goes down (naming the service, its
 * address, the cause and what happens to mail meanwhile), a reminder at most
 * once a minute while any is down, one line when all are back (with how long
 * it was down); `onChange` follows it (the availability metric). Every
 * further failure in between is silent: reconnect attempts and errors of each
 * connection repeat, the outage does not.
 */

/** At most one reminder per this many milliseconds while a service stays down. */
export const REMINDER_INTERVAL_MS = 60_000;

export interface OutageLog {
  info(message: string): void;
  error(message: string): void;
}

export interface OutageOptions {
  /** What and where: `Redis store redis://127.0.0.1:6379`. */
  service: string;
  /** What mail meets meanwhile: `mail that needs stored state is deferred (on_store_error=defer)`. */
  consequence: string;
  log: OutageLog;
  /** Called with false when the service goes down, true when it is up (first connection, or back), null when no connection uses it any more. */
  onChange?: (up: boolean | null) => void;
  now?: () => number;
}

/** One connection's view of the service: it reports its own failures and recoveries. */
export interface OutageMember {
  down(reason: string): void;
  up(): void;
  /** The connection is closed: it no longer counts. */
  leave(): void;
}

export class Outage {
  private readonly members = new Set<object>();
  private readonly down = new Set<object>();
  private since: number | null = null;
  private toldAt = 0;
  private readonly now: () => number;

  constructor(private options: OutageOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Newer wording for the lines to come (a reload changed on_store_error, say). */
  update(options: Pick<OutageOptions, 'consequence'>): void {
    this.options = { ...this.options, ...options };
  }

  get isDown(): boolean {
    return this.since !== null;
  }

  member(): OutageMember {
    const self = {};
    this.members.add(self);
    return {
      down: (reason) => this.failed(self, reason),
      up: () => this.recovered(self),
      leave: () => this.left(self),
    };
  }

  private failed(member: object, reason: string): void {
    this.down.add(member);
    const { service, consequence, log } = this.options;
    const now = this.now();
    if (this.since === null) {
      this.since = now;
      this.toldAt = now;
      log.error(`${service} unavailable: ${reason}; ${consequence}`);
      this.options.onChange?.(false);
      return;
    }
    if (now - this.toldAt >= REMINDER_INTERVAL_MS) {
      this.toldAt = now;
      log.error(`${service} still unavailable after ${duration(now - this.since)}: ${reason}; ${consequence}`);
    }
  }

  private recovered(member: object): void {
    this.down.delete(member);
    if (this.down.size > 0) return;
    if (this.since === null) {
      this.options.onChange?.(true);
      return;
    }
    const lasted = this.now() - this.since;
    this.since = null;
    this.options.log.info(`${this.options.service} is back after ${duration(lasted)}`);
    this.options.onChange?.(true);
  }

  private left(member: object): void {
    this.members.delete(member);
    this.down.delete(member);
    // The last connection that was down went away: nothing is down any more, nothing came back either.
    if (this.down.size === 0) this.since = null;
    if (this.members.size === 0) this.options.onChange?.(null);
  }
}

/** `450 ms`, `12 s`, `3 min 20 s`, `2 h 5 min`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return s % 60 ? `${min} min ${s % 60} s` : `${min} min`;
  const h = Math.floor(min / 60);
  return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
}
