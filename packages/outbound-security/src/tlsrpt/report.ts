/**
 * The report (RPT-3, RFC 8460 §4.4 and §5.3): one Policy Domain's counts of one
 * UTC day as the JSON object the RFC defines, gzip-compressed, under the
 * RFC's file name.
 *
 * - `date-range` is the whole UTC day: `YYYY-MM-DDT00:00:00Z` to
 *   `YYYY-MM-DDT23:59:59Z` (RFC 8460 §4.1, as the RFC's example shows it).
 * - `policies[]` has one entry per policy in effect that day (a policy that
 *   changed during the day gives two); `policy-string` and `mx-host` are
 *   arrays (errata 6241) and are left out for `no-policy-found`.
 * - `summary.total-failure-session-count` is the sum of the failed sessions
 *   (each session is counted under one failure here).
 * - `failure-details[]`: the fields a failure has, empty ones left out; the
 *   most frequent first. OPS-5: at most MAX_FAILURE_DETAILS per policy; the
 *   rest still count in the summary.
 * - File name (§5.3): `<submitter>!<policy-domain>!<begin>!<end>!<unique-id>.json.gz`
 *   with the begin and end of the range in seconds since the epoch; the
 *   unique id is letters and digits only.
 * - gzip runs off the event loop (zlib's thread pool), OPS-5.
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { dayStart, type FailureDetails } from './record';
import type { DomainCounts, PolicyCounts } from './store';

/** OPS-5: the most failure-details entries reported per policy. */
export const MAX_FAILURE_DETAILS = 1000;
const DAY_S = 86_400;

export interface ReportFailureDetails {
  'result-type': string;
  'sending-mta-ip'?: string;
  'receiving-mx-hostname'?: string;
  'receiving-mx-helo'?: string;
  'receiving-ip'?: string;
  'failed-session-count': number;
  'additional-information'?: string;
  'failure-reason-code'?: string;
}

export interface ReportPolicy {
  policy: {
    'policy-type': string;
    'policy-string'?: string[];
    'policy-domain': string;
    'mx-host'?: string[];
  };
  summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
  'failure-details'?: ReportFailureDetails[];
}

/** RFC 8460 §4.4. */
export interface TlsReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: ReportPolicy[];
}

export interface ReportAuthor {
  /** `organization-name`. */
  organization: string;
  /** `contact-info`: an address or URI. */
  contact: string;
  reportId: string;
}

/** The day's range in seconds since the epoch: start, and the last second of the day. */
export function dayRange(day: string): { begin: number; end: number } {
  const start = dayStart(day);
  if (start === null) throw new Error(`tlsrpt: "${day}" is not a day (YYYY-MM-DD)`);
  return { begin: start / 1000, end: start / 1000 + DAY_S - 1 };
}

const isoSeconds = (seconds: number): string => `${new Date(seconds * 1000).toISOString().slice(0, 19)}Z`;

export function buildReport(counts: DomainCounts, author: ReportAuthor): TlsReport {
  const { begin, end } = dayRange(counts.day);
  return {
    'organization-name': author.organization,
    'date-range': { 'start-datetime': isoSeconds(begin), 'end-datetime': isoSeconds(end) },
    'contact-info': author.contact,
    'report-id': author.reportId,
    policies: counts.policies.map(reportPolicy),
  };
}

function reportPolicy({ policy, successes, failures }: PolicyCounts): ReportPolicy {
  const sorted = [...failures].sort((a, b) => b.count - a.count || compareFailures(a.failure, b.failure));
  const failed = failures.reduce((sum, f) => sum + f.count, 0);
  const described: ReportPolicy['policy'] =
    policy.type === 'no-policy-found'
      ? { 'policy-type': policy.type, 'policy-domain': policy.domain }
      : {
          'policy-type': policy.type,
          'policy-string': [...policy.strings],
          'policy-domain': policy.domain,
          'mx-host': [...policy.mxHosts],
        };
  return {
    policy: described,
    summary: { 'total-successful-session-count': successes, 'total-failure-session-count': failed },
    ...(sorted.length > 0 ? { 'failure-details': sorted.slice(0, MAX_FAILURE_DETAILS).map(reportFailure) } : {}),
  };
}

function compareFailures(a: FailureDetails, b: FailureDetails): number {
  return JSON.stringify(a).localeCompare(JSON.stringify(b));
}

function reportFailure({ failure, count }: { failure: FailureDetails; count: number }): ReportFailureDetails {
  // In §4.4's order; the fields a failure lacks are left out.
  return {
    'result-type': failure.resultType,
    ...(failure.sendingMtaIp ? { 'sending-mta-ip': failure.sendingMtaIp } : {}),
    ...(failure.receivingMxHostname ? { 'receiving-mx-hostname': failure.receivingMxHostname } : {}),
    ...(failure.receivingMxHelo ? { 'receiving-mx-helo': failure.receivingMxHelo } : {}),
    ...(failure.receivingIp ? { 'receiving-ip': failure.receivingIp } : {}),
    'failed-session-count': count,
    ...(failure.additionalInformation ? { 'additional-information': failure.additionalInformation } : {}),
    ...(failure.failureReasonCode ? { 'failure-reason-code': failure.failureReasonCode } : {}),
  };
}

/**
 * RPT-8: the counts with at most `maxPolicies` policies, the busiest (most
 * sessions) first when some are left out; `omitted` says how many policies
 * and sessions were.
 */
export function limitPolicies(
  counts: DomainCounts,
  maxPolicies: number,
): { counts: DomainCounts; omitted: { policies: number; sessions: number } } {
  if (counts.policies.length <= maxPolicies) return { counts, omitted: { policies: 0, sessions: 0 } };
  const sessions = (p: PolicyCounts): number => p.successes + p.failures.reduce((sum, f) => sum + f.count, 0);
  const busiest = counts.policies.map((policy) => ({ policy, sessions: sessions(policy) })).sort((a, b) => b.sessions - a.sessions);
  const left = busiest.slice(maxPolicies);
  return {
    counts: { ...counts, policies: busiest.slice(0, maxPolicies).map((p) => p.policy) },
    omitted: { policies: left.length, sessions: left.reduce((sum, p) => sum + p.sessions, 0) },
  };
}

/** Whether the day had any failed session (RPT-3: days without failures may be left out). */
export function hasFailures(counts: DomainCounts): boolean {
  return counts.policies.some((p) => p.failures.length > 0);
}

/** The total sessions of a day, for logs. */
export function sessionTotals(counts: DomainCounts): { successes: number; failures: number } {
  let successes = 0;
  let failures = 0;
  for (const policy of counts.policies) {
    successes += policy.successes;
    for (const f of policy.failures) failures += f.count;
  }
  return { successes, failures };
}

const gzipAsync = promisify(gzipCallback);

/** The report as gzip-compressed JSON (`application/tlsrpt+gzip`). */
export async function gzipReport(report: TlsReport): Promise<Buffer> {
  return gzipAsync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/** RFC 8460 §5.3 file name; `uniqueId` loses every character that is not a letter or digit. */
export function reportFileName(submitter: string, policyDomain: string, day: string, uniqueId?: string): string {
  const { begin, end } = dayRange(day);
  const unique = uniqueId?.replace(/[^A-Za-z0-9]/g, '') ?? '';
  return `${submitter}!${policyDomain}!${begin}!${end}${unique ? `!${unique}` : ''}.json.gz`;
}
