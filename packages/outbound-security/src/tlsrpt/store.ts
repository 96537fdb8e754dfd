/**
 * The TLS report store (RPT-1, RPT-3, ST-1): where every worker and machine
 * adds its session counts per UTC day and Policy Domain, and where the
 * sending of each day's reports is coordinated. Implementations:
 * `FileTlsReportStore` (./file-store, the embedded default under `data_dir`),
 * `RedisTlsReportStore` (./redis-store) and `MemoryTlsReportStore`
 * (./memory-store, one process). One contract suite proves them alike.
 *
 * - `add` only ever adds: counts from any number of processes sum up, in any
 *   order (RPT-1). A failed `add` rejects with `PartialAddError` naming the
 *   entries it did not add (the others are stored), and the recorder offers
 *   those again (at least once: an entry whose write outcome is unknown, a
 *   timeout say, is among them).
 * - `counts` merges what every process added; what cannot be read is skipped
 *   and named in `problems`, never thrown.
 * - Sending is coordinated per (day, domain): a lock with a time to live, so
 *   one process of the cluster sends (RPT-3), and a delivery state (report id,
 *   when it is due, attempts, which report URIs were sent) that only the lock
 *   holder changes. `startDelivery` creates the state unless it exists, so the
 *   first process to plan a day's report fixes its random delay and report id
 *   for everyone.
 * - Days are kept for RETENTION_DAYS after they end, then pruned (files) or
 *   expired (Redis).
 */
import { isDay, type FailureDetails, type ReportedPolicy } from './record';

/** How long a day's counts and delivery state are kept after the day ended. */
export const RETENTION_DAYS = 4;

/** One line of counts, as the recorder flushes it: `count` sessions of one kind. */
export interface CountEntry {
  day: string;
  policyDomain: string;
  policy: ReportedPolicy;
  /** Absent: successful sessions. */
  failure?: FailureDetails;
  count: number;
}

/** One policy's sessions of a day, every process's counts merged. */
export interface PolicyCounts {
  policy: ReportedPolicy;
  successes: number;
  failures: Array<{ failure: FailureDetails; count: number }>;
}

export interface DomainCounts {
  day: string;
  policyDomain: string;
  policies: PolicyCounts[];
  /** Stored data that could not be read (skipped). */
  problems: string[];
}

/** How one Policy Domain's report for one day went out (or did not). */
export interface DeliveryState {
  /** RFC 8460 §4.4 `report-id`: the same in every attempt, so a receiver can recognise a retry. */
  reportId: string;
  /** When the first attempt is due (ms since epoch): after the day, plus the random delay. */
  dueAt: number;
  attempts: number;
  nextAttemptAt: number;
  /** Report URI → when it was sent (ms). */
  sent: Record<string, number>;
  /** Report URI → the last error. */
  errors: Record<string, string>;
  /** Set once nothing more will be attempted. */
  finished?: { at: number; outcome: DeliveryOutcome; reason: string };
}

export type DeliveryOutcome = 'sent' | 'gave-up' | 'no-record' | 'not-sent';

export interface TlsReportStore {
  /** For logs: `file:/var/lib/haraka/tlsrpt`, `redis://…`. */
  readonly description: string;
  /** Adds counts; rejects with PartialAddError (what was not added) when some could not be stored. */
  add(entries: readonly CountEntry[]): Promise<void>;
  /** Days that have counts, oldest first. */
  days(): Promise<string[]>;
  /** Policy Domains with counts on `day`, sorted. */
  domains(day: string): Promise<string[]>;
  counts(day: string, policyDomain: string): Promise<DomainCounts>;
  delivery(day: string, policyDomain: string): Promise<DeliveryState | null>;
  /** Stores `initial` unless a state exists; resolves with the state stored. */
  startDelivery(day: string, policyDomain: string, initial: DeliveryState): Promise<DeliveryState>;
  /** Replaces the state (only the lock holder calls this). */
  saveDelivery(day: string, policyDomain: string, state: DeliveryState): Promise<void>;
  /** Takes the send lock for `ttlMs` unless another holder has it; true when taken (or already held by `holder`). */
  lock(day: string, policyDomain: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lock back if `holder` still has it. */
  unlock(day: string, policyDomain: string, holder: string): Promise<void>;
  /** Removes days before `day`; resolves with how many went. */
  prune(beforeDay: string): Promise<number>;
  close(): Promise<void>;
  /** Stores that connect in the background (Redis): resolves true once usable. */
  ready?(timeoutMs: number): Promise<boolean>;
}

/** A failed `add`: `notAdded` lists what was not stored (everything, unless the store knows better). */
export class PartialAddError extends Error {
  constructor(
    message: string,
    readonly notAdded: readonly CountEntry[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const HOST_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A Policy Domain key: a lowercase A-label host name (ST-6), safe as a file name and in a Redis key. */
export function isPolicyDomain(domain: string): boolean {
  return HOST_NAME.test(domain);
}

/** A lock holder or report URI check for the stores: printable ASCII without spaces, bounded. */
export function isToken(text: string, max = 200): boolean {
  return text.length > 0 && text.length <= max && /^[\x21-\x7e]+$/.test(text);
}

/** Merges count entries into per-policy counts (what every store's `counts` returns). */
export class CountsBuilder {
  private readonly policies = new Map<string, { policy: ReportedPolicy; successes: number; failures: Map<string, FailureCount> }>();
  readonly problems: string[] = [];

  constructor(
    private readonly day: string,
    private readonly policyDomain: string,
  ) {}

  addPolicy(policy: ReportedPolicy): void {
    if (!this.policies.has(policy.id)) this.policies.set(policy.id, { policy, successes: 0, failures: new Map() });
  }

  /** Adds `count` sessions of policy `policyId`; `failure` and its key absent for successes. */
  addCount(policyId: string, count: number, failure?: { key: string; details: FailureDetails }): void {
    const entry = this.policies.get(policyId);
    if (!entry) {
      this.problems.push(`${count} session(s) counted under unknown policy ${policyId}`);
      return;
    }
    if (!failure) {
      entry.successes += count;
      return;
    }
    const known = entry.failures.get(failure.key);
    if (known) known.count += count;
    else entry.failures.set(failure.key, { failure: failure.details, count });
  }

  build(): DomainCounts {
    const policies = [...this.policies.values()]
      .filter((p) => p.successes > 0 || p.failures.size > 0)
      .sort((a, b) => a.policy.type.localeCompare(b.policy.type) || a.policy.id.localeCompare(b.policy.id))
      .map(({ policy, successes, failures }) => ({ policy, successes, failures: [...failures.values()] }));
    return { day: this.day, policyDomain: this.policyDomain, policies, problems: this.problems };
  }
}

interface FailureCount {
  failure: FailureDetails;
  count: number;
}

/** A delivery state read back from storage, or why it is not one. */
export function parseDeliveryState(text: string): DeliveryState | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  if (typeof v.reportId !== 'string' || v.reportId === '') return 'reportId missing';
  for (const key of ['dueAt', 'attempts', 'nextAttemptAt'] as const) {
    if (typeof v[key] !== 'number' || !Number.isFinite(v[key])) return `${key} is not a number`;
  }
  if (!isRecordOf(v.sent, 'number') || !isRecordOf(v.errors, 'string')) return 'sent or errors is not a map';
  if (v.finished !== undefined) {
    const f = v.finished as Record<string, unknown> | null;
    if (typeof f !== 'object' || f === null || typeof f.at !== 'number' || typeof f.outcome !== 'string' || typeof f.reason !== 'string') {
      return 'finished is malformed';
    }
  }
  return value as DeliveryState;
}

function isRecordOf(value: unknown, type: 'number' | 'string'): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === type);
}

/** Rejects keys a store must never see (ST-6); stores call this before touching storage. */
export function checkKeys(day: string, policyDomain: string): void {
  if (!isDay(day)) throw new Error(`tlsrpt store: "${day.slice(0, 40)}" is not a day (YYYY-MM-DD)`);
  if (!isPolicyDomain(policyDomain)) throw new Error(`tlsrpt store: "${policyDomain.slice(0, 80)}" is not a lowercase A-label domain`);
}
