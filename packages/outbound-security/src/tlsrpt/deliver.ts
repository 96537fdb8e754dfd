/**
 * One Policy Domain's report for one day, from the stored counts to every
 * report URI (RPT-3, RPT-4), as the scheduler and the CLI both run it:
 *
 * 1. The delivery state: read, or created with this day's random due time and
 *    a new report id (the store keeps the first one made, for the cluster).
 * 2. Nothing before the due time (unless forced) or once finished.
 * 3. The send lock (one process of the cluster); the state is read again
 *    under it, as another process may just have finished.
 * 4. The day's counts; a day without sessions, or without failures when such
 *    days are not sent, finishes without sending.
 * 5. The `_smtp._tls` TXT record (txt.ts): none or invalid → finished, no
 *    reports for that domain; a failed lookup → retried later.
 * 6. The report, gzipped, to each URI that does not have it yet: `mailto:` as
 *    a message queued through the MTA, `https:` as a POST. Each URI's result
 *    is kept, so a retry sends only to those that failed (an unreachable
 *    report address delays only its own report, RPT-4).
 * 7. The state after the attempt (schedule.ts), then the lock is released.
 *
 * A forced delivery of a day not yet over (the CLI's "send now") sends the
 * counts as they stand under a report id of its own and leaves the stored
 * state alone, so the report of the whole day still goes out after it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DnsAnswer } from '../mx/dns-client';
import { describeFailure } from '../mx/dns-client';
import { endpointPortRefusal, type PostResult } from './https';
import { DEFAULT_REPORT_LIMITS, LeftOutTally, type DailyQuota, type ReportLimits } from './limits';
import { reportMessage, type QueueMail } from './mailto';
import { buildReport, gzipReport, hasFailures, limitPolicies, reportFileName, type TlsReport } from './report';
import {
  afterAttempt,
  afterLookupFailure,
  dayIsOver,
  finishWithout,
  firstAttemptAt,
  newDelivery,
  nextStep,
  type ScheduleSettings,
} from './schedule';
import type { DeliveryOutcome, DeliveryState, DomainCounts, TlsReportStore } from './store';
import { parseTlsRptRecords, TXT_PREFIX, type ReportUri } from './txt';

/**
 * How long one process may hold a domain's send lock: longer than one attempt
 * can take (MAX_REPORT_URIS sends, each with its own deadline).
 */
export const DEFAULT_LOCK_TTL_MS = 10 * 60_000;

/** Who reports (the settings). */
export interface ReportIdentity {
  organization: string;
  contact: string;
  /** The sender address of report messages. */
  sender: string;
  /** The submitter domain: the sender's domain (file name, headers, DKIM). */
  submitter: string;
}

export interface DeliveryDeps {
  store: TlsReportStore;
  /** TXT lookup (`DnsClient.txt`). */
  txt(name: string): Promise<DnsAnswer<string>>;
  queueMail: QueueMail;
  post(url: URL, gzipped: Buffer): Promise<PostResult>;
  identity: ReportIdentity;
  schedule: ScheduleSettings;
  /** This process's name for the send lock (unique in the cluster: host name and pid, say). */
  holder: string;
  /** DEFAULT_LOCK_TTL_MS unless the sends are slower. */
  lockTtlMs: number;
  now(): number;
  random(): number;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** RPT-8, RPT-9: the bounds of a report (DEFAULT_REPORT_LIMITS when absent). */
  limits?: ReportLimits;
  /** RPT-8: where what the limits leave out is counted and logged. */
  leftOut?: LeftOutTally;
  /** RPT-8: the Policy Domains reported per day by this process (the scheduler keeps one); absent: no daily bound. */
  reportQuota?: DailyQuota;
}

export type DomainOutcome =
  | { kind: 'waiting'; until: number }
  | { kind: 'finished'; outcome: DeliveryOutcome; reason: string }
  | { kind: 'locked' }
  | { kind: 'attempted'; state: DeliveryState };

/** A report id: day, random token, domain, submitter (unique, and readable in logs). */
export function newReportId(day: string, policyDomain: string, submitter: string): string {
  return `${day}.${randomBytes(6).toString('hex')}.${policyDomain}@${submitter}`;
}

/** The §5.3 file name's unique id for a report id (letters and digits). */
function fileUniqueId(reportId: string): string {
  return createHash('sha256').update(reportId).digest('hex').slice(0, 16);
}

export async function deliverDomain(deps: DeliveryDeps, day: string, policyDomain: string, force = false): Promise<DomainOutcome> {
  const { store, now } = deps;
  const live = !dayIsOver(day, now());
  if (live && !force) return { kind: 'waiting', until: firstAttemptAt(day, deps.schedule, () => 0) };
  let state = live ? newDelivery(newReportId(day, policyDomain, deps.identity.submitter), now()) : await planned(deps, day, policyDomain);
  const step = nextStep(state, now(), force);
  if (step.kind === 'wait') return { kind: 'waiting', until: step.until };
  if (step.kind === 'finished') return finished(state);
  if (!(await store.lock(day, policyDomain, deps.holder, deps.lockTtlMs))) return { kind: 'locked' };
  try {
    if (!live) {
      state = (await store.delivery(day, policyDomain)) ?? state;
      const again = nextStep(state, now(), force);
      if (again.kind === 'finished') return finished(state);
      if (again.kind === 'wait') return { kind: 'waiting', until: again.until };
    }
    state = await attempt(deps, day, policyDomain, state);
    if (!live) await store.saveDelivery(day, policyDomain, state);
    return { kind: 'attempted', state };
  } finally {
    await store.unlock(day, policyDomain, deps.holder).catch((err: unknown) => {
      deps.log('warn', `TLS report for ${policyDomain} (${day}): could not release the send lock: ${(err as Error).message}`);
    });
  }
}

async function planned(deps: DeliveryDeps, day: string, policyDomain: string): Promise<DeliveryState> {
  const known = await deps.store.delivery(day, policyDomain);
  if (known) return known;
  const reportId = newReportId(day, policyDomain, deps.identity.submitter);
  return deps.store.startDelivery(day, policyDomain, newDelivery(reportId, firstAttemptAt(day, deps.schedule, deps.random)));
}

function finished(state: DeliveryState): DomainOutcome {
  const done = state.finished as NonNullable<DeliveryState['finished']>;
  return { kind: 'finished', outcome: done.outcome, reason: done.reason };
}

/** One attempt under the lock: counts, reporting policy, bounds (RPT-8, RPT-9), report, sends. */
async function attempt(deps: DeliveryDeps, day: string, policyDomain: string, state: DeliveryState): Promise<DeliveryState> {
  const { now, random, schedule } = deps;
  const limits = deps.limits ?? DEFAULT_REPORT_LIMITS;
  const leftOut = deps.leftOut ?? new LeftOutTally((message) => deps.log('warn', message));
  const where = `TLS report for ${policyDomain} (${day})`;
  const once = `${day}\n${policyDomain}`;
  const stored = await deps.store.counts(day, policyDomain);
  for (const problem of stored.problems) deps.log('warn', `${where}: stored counts skipped: ${problem}`);
  if (stored.policies.length === 0) return finishWithout(state, 'not-sent', 'no sessions counted', now());
  if (!schedule.sendDaysWithoutFailures && !hasFailures(stored)) {
    return finishWithout(state, 'not-sent', 'no failed sessions (send_days_without_failures=false)', now());
  }
  const answer = await deps.txt(`${TXT_PREFIX}${policyDomain}`);
  if (answer.kind === 'failure') {
    deps.log('warn', `${where}: TXT lookup of ${TXT_PREFIX}${policyDomain} failed: ${describeFailure(answer)}; retried later`);
    return afterLookupFailure(state, describeFailure(answer), now(), schedule, random);
  }
  const policy = parseTlsRptRecords(answer.kind === 'answer' ? answer.records : [], limits.maxReportAddresses);
  if (policy.kind === 'none') {
    const reason = answer.kind === 'answer' ? policy.reason : `no TXT record (${describeFailure(answer)})`;
    return finishWithout(state, 'no-record', reason, now());
  }
  for (const ignored of policy.ignored) deps.log('info', `${where}: ${ignored}`);
  if (policy.overLimit.length > 0) {
    const n = policy.overLimit.length;
    leftOut.note(
      'report_addresses',
      n,
      once,
      `${where}: ${n} report addresses left out (${policy.overLimit.join(', ')}) (max_report_addresses=${limits.maxReportAddresses})`,
    );
  }
  const uris = policy.uris.filter((uri) => {
    const refusal = uri.kind === 'https' ? endpointPortRefusal(uri.url, limits.httpsPorts) : null;
    if (refusal !== null) leftOut.note('endpoint_ports', 1, `${once}\n${uri.uri}`, `${where}: ${refusal}`);
    return refusal === null;
  });
  if (uris.length === 0) return finishWithout(state, 'not-sent', 'every report address refused (https_ports)', now());
  if (deps.reportQuota && !deps.reportQuota.take(day, policyDomain, limits.maxDomainsReportedPerDay)) {
    const max = limits.maxDomainsReportedPerDay;
    leftOut.note(
      'domains_reported',
      1,
      day,
      `TLS reports for ${day}: more than ${max} Policy Domains to report to (max_domains_reported_per_day=${max}); ${policyDomain} and further ones get no report that day`,
    );
    return finishWithout(state, 'not-sent', `over max_domains_reported_per_day=${max}`, now());
  }
  const { counts, omitted } = limitPolicies(stored, limits.maxPoliciesPerReport);
  if (omitted.policies > 0) {
    const total = stored.policies.length;
    leftOut.note(
      'policies',
      omitted.policies,
      once,
      `${where}: ${omitted.policies} of ${total} policies (${omitted.sessions} sessions) left out of the report (max_policies_per_report=${limits.maxPoliciesPerReport})`,
    );
  }
  const report = buildReport(counts, {
    organization: deps.identity.organization,
    contact: deps.identity.contact,
    reportId: state.reportId,
  });
  const gzipped = await gzipReport(report);
  if (gzipped.length > limits.maxReportBytes) {
    const reason = `the report is ${gzipped.length} bytes gzip-compressed, over max_report_bytes=${limits.maxReportBytes}; not sent`;
    leftOut.note('oversize_reports', 1, once, `${where}: ${reason}`);
    return finishWithout(state, 'not-sent', reason, now());
  }
  const results = await sendAll(deps, counts, gzipped, state, uris);
  for (const refused of results.refused)
    leftOut.note('endpoint_addresses', 1, `${once}\n${refused}\n${state.attempts}`, `${where}: ${refused}: ${results.errors[refused]}`);
  const next = afterAttempt(
    state,
    results,
    uris.map((u) => u.uri),
    now(),
    schedule,
    random,
  );
  for (const [uri, error] of Object.entries(results.errors)) deps.log('warn', `${where}: ${uri}: ${error}`);
  if (next.finished) deps.log(next.finished.outcome === 'sent' ? 'info' : 'warn', `${where}: ${next.finished.reason}`);
  return next;
}

/** Sends the gzipped report to every URI that does not have it yet; `refused` lists those RPT-9 refused. Never throws. */
async function sendAll(
  deps: DeliveryDeps,
  counts: DomainCounts,
  gzipped: Buffer,
  state: DeliveryState,
  uris: readonly ReportUri[],
): Promise<{ sent: Record<string, number>; errors: Record<string, string>; refused: string[] }> {
  const { submitter, sender } = deps.identity;
  const fileName = reportFileName(submitter, counts.policyDomain, counts.day, fileUniqueId(state.reportId));
  const sent: Record<string, number> = {};
  const errors: Record<string, string> = {};
  const refused: string[] = [];
  for (const uri of uris) {
    if (uri.uri in state.sent) continue;
    try {
      if (uri.kind === 'mailto') {
        const message = reportMessage({
          from: sender,
          to: uri.address,
          policyDomain: counts.policyDomain,
          submitter,
          reportId: state.reportId,
          fileName,
          gzipped,
          date: new Date(deps.now()),
        });
        await deps.queueMail(sender, uri.address, message);
      } else {
        const posted = await deps.post(uri.url, gzipped);
        if (!posted.ok && posted.refused) refused.push(uri.uri);
        if (!posted.ok) throw new Error(posted.error);
      }
      sent[uri.uri] = deps.now();
    } catch (err) {
      errors[uri.uri] = err instanceof Error ? err.message : String(err);
    }
  }
  return { sent, errors, refused };
}

/** RPT-5: what would be reported for a domain and day, without sending or changing anything. */
export async function previewReport(
  store: TlsReportStore,
  identity: ReportIdentity,
  day: string,
  policyDomain: string,
): Promise<{ counts: DomainCounts; report: TlsReport; state: DeliveryState | null }> {
  const [counts, state] = await Promise.all([store.counts(day, policyDomain), store.delivery(day, policyDomain)]);
  const reportId = state?.reportId ?? newReportId(day, policyDomain, identity.submitter);
  return { counts, report: buildReport(counts, { organization: identity.organization, contact: identity.contact, reportId }), state };
}
