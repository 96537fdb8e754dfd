/**
 * RPT-8 and RPT-9: what bounds a TLS report, and the tally of what the bounds
 * left out. The numbers come from `[tlsrpt]` (settings.ts); each has a
 * default here and a hard ceiling the settings cannot pass.
 *
 * A hostile receiving domain controls what its reports would hold (TLSA
 * records, MTA-STS lines, wildcard subdomains each a Policy Domain, report
 * addresses, where an `https:` address points). Without bounds, 50 sessions
 * with distinct TLSA RRsets made a 4.5 MB report per address, ten addresses
 * per record, DKIM-signed by us. So:
 *
 * - `maxPolicyStrings`: strings kept per policy (the rest are cut when the
 *   session is recorded);
 * - `maxDomainsRecordedPerDay`: distinct Policy Domains one process records a
 *   day (a new domain past it is not counted);
 * - `maxPoliciesPerReport`: policies in one report (the busiest are kept);
 * - `maxReportBytes`: the gzip-compressed report, for mail and https alike;
 * - `maxReportAddresses`: report addresses (rua URIs) used per record;
 * - `maxDomainsReportedPerDay`: Policy Domains one process sends a report for
 *   a day;
 * - `httpsPorts`: the ports an `https:` report address may use (RPT-9).
 *
 * What is left out is counted by kind (a metric) and logged once per report
 * or day, never once per item (`LeftOutTally`).
 */

export interface ReportLimits {
  maxPolicyStrings: number;
  maxDomainsRecordedPerDay: number;
  maxPoliciesPerReport: number;
  maxReportBytes: number;
  maxReportAddresses: number;
  maxDomainsReportedPerDay: number;
  httpsPorts: readonly number[];
}

export const DEFAULT_REPORT_LIMITS: Readonly<ReportLimits> = Object.freeze({
  maxPolicyStrings: 100,
  maxDomainsRecordedPerDay: 50_000,
  maxPoliciesPerReport: 100,
  maxReportBytes: 1024 * 1024,
  maxReportAddresses: 2,
  maxDomainsReportedPerDay: 1000,
  httpsPorts: Object.freeze([443]),
});

/** What a bound left out, as the metric labels it. */
export const LEFT_OUT_KINDS = [
  'policy_strings',
  'domains_recorded',
  'policies',
  'oversize_reports',
  'report_addresses',
  'domains_reported',
  'endpoint_addresses',
  'endpoint_ports',
] as const;

export type LeftOutKind = (typeof LEFT_OUT_KINDS)[number];

/** Bound of the "already logged" memory (OPS-5); it starts over when full. */
const MAX_LOGGED_KEYS = 10_000;

/**
 * Counts what the bounds left out, by kind, and says so in the log once per
 * `onceKey` (a report, a day): an attacker's thousand items make one line.
 */
export class LeftOutTally {
  private readonly counts = new Map<LeftOutKind, number>();
  private readonly logged = new Set<string>();

  constructor(private readonly log: (message: string) => void = () => undefined) {}

  /** `count` items of `kind` left out; `message` is logged unless `onceKey` was logged already. */
  note(kind: LeftOutKind, count: number, onceKey: string, message: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + count);
    const key = `${kind}\n${onceKey}`;
    if (this.logged.has(key)) return;
    if (this.logged.size >= MAX_LOGGED_KEYS) this.logged.clear();
    this.logged.add(key);
    this.log(message);
  }

  /** Items left out so far, by kind (every kind present). */
  totals(): Record<LeftOutKind, number> {
    return Object.fromEntries(LEFT_OUT_KINDS.map((kind) => [kind, this.counts.get(kind) ?? 0])) as Record<LeftOutKind, number>;
  }
}

/**
 * RPT-8: how many distinct keys (Policy Domains) were let through per day in
 * this process, the newest two days remembered. A key already let through
 * that day passes again (a retry is not a new report).
 */
export class DailyQuota {
  private readonly days = new Map<string, Set<string>>();

  /** Whether `key` may go on `day`, at most `max` keys a day. */
  take(day: string, key: string, max: number): boolean {
    let keys = this.days.get(day);
    if (keys === undefined) {
      keys = new Set();
      this.days.set(day, keys);
      for (const old of [...this.days.keys()].sort().slice(0, -2)) this.days.delete(old);
    }
    if (keys.has(key)) return true;
    if (keys.size >= max) return false;
    keys.add(key);
    return true;
  }
}
