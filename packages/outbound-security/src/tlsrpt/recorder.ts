/**
 * RPT-1 on the hot path: every connection is counted once, per Policy Domain
 * and UTC day, in memory, and the counts reach the shared store in batches
 * (issue 13 item 7: at most 5 µs per connection; bench/tlsrpt-record.ts).
 *
 * - `record` is synchronous and never throws or waits: one Map lookup and an
 *   increment for a kind of session seen before in this batch. Counts are kept
 *   per (day, Policy Domain, policy id, failure details); a success is keyed
 *   without details, so the commonest case builds one short string.
 * - `flush` hands the batch to the store every `flushIntervalMs` (and when the
 *   batch is full, and on `close`). One flush at a time. A batch the store
 *   refused is merged back and offered again at the next flush: all of it, or
 *   only what the store says it did not add (`PartialAddError`). At least
 *   once: a write whose outcome is unknown (a Redis timeout after the server
 *   ran the script) may count those sessions twice.
 * - OPS-5: at most `maxEntries` distinct kinds are held. Past that, a new kind
 *   of session is not held but counted in `dropped` (a metric), never grown;
 *   kinds already held keep counting.
 * - RPT-8: a policy with more than `maxPolicyStrings` strings is counted
 *   with its strings cut to the limit; at most `maxDomainsPerDay` Policy
 *   Domains are recorded per UTC day by this recorder (a cluster of P
 *   processes stores at most P times as many), sessions with a further one
 *   are not. Both are counted and logged once (`leftOut`).
 * - Invalid keys (a Policy Domain that is not a lowercase A-label, a malformed
 *   day) are counted in `rejected` and never reach the store, where they could
 *   block every later batch.
 */
import { boundedPolicy, failureKey, isDay, normaliseFailure, utcDay, type ReportedPolicy, type SessionRecord } from './record';
import { PartialAddError, isPolicyDomain, type CountEntry } from './store';
import { DEFAULT_REPORT_LIMITS, DailyQuota, LeftOutTally } from './limits';

/** How often the counts are written (RPT-1). */
export const DEFAULT_FLUSH_INTERVAL_MS = 30_000;
/** OPS-5: distinct kinds of sessions held between two flushes. */
export const DEFAULT_MAX_ENTRIES = 10_000;

export interface RecorderStats {
  /** Sessions recorded since start. */
  recorded: number;
  /** Sessions not counted because the batch was full (OPS-5). */
  dropped: number;
  /** Sessions refused for an invalid Policy Domain or day. */
  rejected: number;
  /** Distinct kinds waiting for the next flush. */
  pending: number;
  flushes: number;
  failedFlushes: number;
}

export interface RecorderOptions {
  /** Where batches go: the store's `add`. */
  write(entries: readonly CountEntry[]): Promise<void>;
  flushIntervalMs?: number;
  maxEntries?: number;
  /** The clock that picks the UTC day of a record without one. */
  now?: () => number;
  /** A flush failed (the batch is kept for the next one). */
  onFlushError?(err: Error): void;
  /** RPT-8: strings kept per policy (DEFAULT_REPORT_LIMITS). */
  maxPolicyStrings?: number;
  /** RPT-8: distinct Policy Domains recorded per UTC day by this recorder (DEFAULT_REPORT_LIMITS). */
  maxDomainsPerDay?: number;
  /** RPT-8: where what the limits leave out is counted and logged. */
  leftOut?: LeftOutTally;
}

export class TlsReportRecorder {
  private pending = new Map<string, CountEntry>();
  private readonly write: RecorderOptions['write'];
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onFlushError: (err: Error) => void;
  private readonly flushIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | null = null;
  private flushAgain = false;
  private readonly stats_ = { recorded: 0, dropped: 0, rejected: 0, flushes: 0, failedFlushes: 0 };
  private readonly maxPolicyStrings: number;
  private readonly maxDomainsPerDay: number;
  private readonly leftOut: LeftOutTally;
  /** RPT-8: the Policy Domains recorded per day (today's and yesterday's). */
  private readonly domainsRecorded = new DailyQuota();
  /** RPT-8: oversized policies already counted and logged. */
  private readonly cutPolicies = new WeakSet<ReportedPolicy>();

  constructor(options: RecorderOptions) {
    this.write = options.write;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.now = options.now ?? Date.now;
    this.onFlushError = options.onFlushError ?? (() => undefined);
    this.maxPolicyStrings = options.maxPolicyStrings ?? DEFAULT_REPORT_LIMITS.maxPolicyStrings;
    this.maxDomainsPerDay = options.maxDomainsPerDay ?? DEFAULT_REPORT_LIMITS.maxDomainsRecordedPerDay;
    this.leftOut = options.leftOut ?? new LeftOutTally();
  }

  /** Starts the periodic flush (the timer does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Counts one session. Synchronous, never throws. */
  record(session: SessionRecord): void {
    this.stats_.recorded++;
    const day = session.day ?? utcDay(this.now());
    const { policyDomain, result } = session;
    const policy =
      session.policy.strings.length > this.maxPolicyStrings || session.policy.omittedStrings > 0 ? this.cut(session, day) : session.policy;
    const failure = result === 'success' ? undefined : normaliseFailure(result);
    const key = failure ? `${day}\n${policyDomain}\n${policy.id}\n${failureKey(failure)}` : `${day}\n${policyDomain}\n${policy.id}`;
    const known = this.pending.get(key);
    if (known !== undefined) {
      known.count++;
      return;
    }
    if (!isPolicyDomain(policyDomain) || (session.day !== undefined && !isDay(day))) {
      this.stats_.rejected++;
      return;
    }
    if (!this.domainRecorded(day, policyDomain)) return;
    if (this.pending.size >= this.maxEntries) {
      this.stats_.dropped++;
      void this.flush();
      return;
    }
    this.pending.set(key, failure ? { day, policyDomain, policy, failure, count: 1 } : { day, policyDomain, policy, count: 1 });
    if (this.pending.size >= this.maxEntries) void this.flush();
  }

  /** RPT-8: the session's policy within max_policy_strings; counted once per policy, logged once per domain and day. */
  private cut(session: SessionRecord, day: string): ReportedPolicy {
    const { policy } = session;
    const cut = boundedPolicy(policy, this.maxPolicyStrings);
    if (!this.cutPolicies.has(policy)) {
      this.cutPolicies.add(policy);
      const total = cut.strings.length + cut.omittedStrings;
      this.leftOut.note(
        'policy_strings',
        cut.omittedStrings,
        `${day}\n${session.policyDomain}`,
        `TLS reports: the ${policy.type} policy of ${policy.domain} (for ${session.policyDomain}) has ${total} strings; ` +
          `${cut.strings.length} kept (max_policy_strings=${this.maxPolicyStrings})`,
      );
    }
    return cut;
  }

  /** RPT-8: whether `policyDomain` is, or may become, one of the day's max_domains_recorded_per_day. */
  private domainRecorded(day: string, policyDomain: string): boolean {
    if (this.domainsRecorded.take(day, policyDomain, this.maxDomainsPerDay)) return true;
    this.leftOut.note(
      'domains_recorded',
      1,
      day,
      `TLS reports: more than ${this.maxDomainsPerDay} Policy Domains on ${day} (max_domains_recorded_per_day=${this.maxDomainsPerDay}); ` +
        'sessions with further domains are not recorded that day',
    );
    return false;
  }

  /** Writes what is pending; resolves when this flush (and one asked for meanwhile) is done. Never rejects. */
  flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushLoop(): Promise<void> {
    do {
      this.flushAgain = false;
      if (this.pending.size === 0) return;
      const batch = this.pending;
      this.pending = new Map();
      this.stats_.flushes++;
      try {
        await this.write([...batch.values()]);
      } catch (err) {
        this.stats_.failedFlushes++;
        this.mergeBack(err instanceof PartialAddError ? notAddedOf(batch, err.notAdded) : batch);
        this.onFlushError(err instanceof Error ? err : new Error(String(err)));
        return; // the next timer tick tries again
      }
    } while (this.flushAgain);
  }

  /** Puts a refused batch back in front of what was recorded meanwhile, within the bound. */
  private mergeBack(batch: Map<string, CountEntry>): void {
    for (const [key, entry] of this.pending) {
      const earlier = batch.get(key);
      if (earlier) earlier.count += entry.count;
      else if (batch.size < this.maxEntries) batch.set(key, entry);
      else this.stats_.dropped += entry.count;
    }
    this.pending = batch;
  }

  stats(): RecorderStats {
    return { ...this.stats_, pending: this.pending.size };
  }

  /** Stops the timer and writes what is pending (once; a failure leaves it counted in `failedFlushes`). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    if (this.flushAgain || this.pending.size > 0) await this.flush();
  }
}

/** The entries of `batch` (by key) that the store did not add. */
function notAddedOf(batch: Map<string, CountEntry>, notAdded: readonly CountEntry[]): Map<string, CountEntry> {
  const missing = new Set(notAdded);
  return new Map([...batch].filter(([, entry]) => missing.has(entry)));
}
