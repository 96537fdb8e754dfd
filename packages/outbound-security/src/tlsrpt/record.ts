/**
 * One connection's outcome as TLS reporting counts it (RPT-1, RPT-2, RFC 8460
 * §4): the Policy Domain and UTC day it is counted under, the policy that
 * applied, and success or a failure with its details.
 *
 * - A session is counted under its Policy Domain, where the report goes
 *   (`_smtp._tls.<domain>`, RFC 8460 §3): the recipient domain as a lowercase
 *   A-label (MX-1).
 * - The policy (RFC 8460 §4.4 `policy`) carries its own `policy-domain`: for
 *   `sts` the recipient domain; for `tlsa` RFC 8460 §1.3 names the TLSA base
 *   domain (the MX host), which the caller passes. Its `id` (a digest of type, domain,
 *   strings and mx hosts) names it in the recorder and the stores, so equal
 *   policies count together and a changed policy (new id, new mx lines) is a
 *   separate entry of the same day's report, as §4.4 allows (`policies[]`).
 * - Result types are RFC 8460 §4.3's (RPT-2); result-type.ts derives them from
 *   this project's classification, the MTA-STS fetch and DANE.
 * - Failure details come partly from the network (the peer's EHLO name, the
 *   reply to STARTTLS): `normaliseFailure` bounds every field and replaces
 *   control characters before they are counted (OPS-5), so a hostile peer
 *   cannot grow a key or break a report line.
 * - Days are UTC (RFC 8460 §4.1: a report covers 00:00–24:00 UTC).
 */
import { createHash } from 'node:crypto';
import { serialisePolicy, type MtaStsPolicy } from '../mta-sts/policy';
import type { TlsaRecord } from '../dane/tlsa';

/** RFC 8460 §4.3 (and the IANA "STARTTLS Validation Result Types" registry). */
export const RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;

export type ResultType = (typeof RESULT_TYPES)[number];

/** RFC 8460 §4.4 `policy-type`. */
export type PolicyType = 'sts' | 'tlsa' | 'no-policy-found';

/** The policy a connection was made under, as §4.4's `policy` object reports it. */
export interface ReportedPolicy {
  readonly type: PolicyType;
  /** `policy-string`: the MTA-STS policy's lines, or the TLSA records in presentation form. */
  readonly strings: readonly string[];
  /** `policy-domain` (lowercase A-label). */
  readonly domain: string;
  /** `mx-host`: the MTA-STS policy's mx patterns, or the MX host of a TLSA policy. */
  readonly mxHosts: readonly string[];
  /** Identity of the policy (equal policies, equal ids): the key it is counted under. */
  readonly id: string;
  /** RPT-8: strings of the policy left out of `strings` (over the limit); 0 for a whole policy. */
  readonly omittedStrings: number;
}

/** RFC 8460 §4.4 `failure-details`, without the count. */
export interface FailureDetails {
  resultType: ResultType;
  sendingMtaIp?: string;
  receivingMxHostname?: string;
  receivingMxHelo?: string;
  receivingIp?: string;
  failureReasonCode?: string;
  /** A URI with more about the failure (`additional-information`). */
  additionalInformation?: string;
}

/** A session either succeeded or failed with details. */
export type SessionResult = 'success' | FailureDetails;

export interface SessionRecord {
  /**
   * The Policy Domain (RFC 8460 §1.3) the session is counted and reported
   * under: the recipient domain (lowercase A-label), whose `_smtp._tls` record
   * says where its reports go.
   */
  policyDomain: string;
  /** UTC day `YYYY-MM-DD`; the recorder's clock decides when absent. */
  day?: string;
  policy: ReportedPolicy;
  result: SessionResult;
}

/** OPS-5: the longest text kept in a failure detail field. */
export const MAX_FIELD_LENGTH = 255;
/**
 * OPS-5, RPT-8: the most policy strings kept (an MTA-STS policy has at most 512
 * mx lines plus three); `[tlsrpt] max_policy_strings` may keep fewer.
 */
export const MAX_POLICY_STRINGS = 520;

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;
/** Control characters, DEL and lone surrogates: replaced in text from the network. */
const UNPRINTABLE = /[\x00-\x1f\x7f\u{d800}-\u{dfff}]/gu;

/** The UTC day of a time in milliseconds; the last answer is kept, as most calls fall on the same day. */
let lastDay = { start: 0, end: 0, text: '1970-01-01' };
export function utcDay(ms: number): string {
  if (ms >= lastDay.start && ms < lastDay.end) return lastDay.text;
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
  lastDay = { start, end: start + DAY_MS, text: new Date(start).toISOString().slice(0, 10) };
  return lastDay.text;
}

/** The start of a UTC day in milliseconds, or null when `day` is not a real `YYYY-MM-DD` date. */
export function dayStart(day: string): number | null {
  const match = DAY.exec(day);
  if (!match) return null;
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return new Date(ms).toISOString().slice(0, 10) === day ? ms : null;
}

export function isDay(day: string): boolean {
  return dayStart(day) !== null;
}

/** The day after (or `offset` days after) a valid day. */
export function addDays(day: string, offset: number): string {
  const start = dayStart(day);
  if (start === null) throw new Error(`tlsrpt: "${day}" is not a day (YYYY-MM-DD)`);
  return utcDayUncached(start + offset * DAY_MS);
}

function utcDayUncached(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * A policy value with its id; strings and hosts are copied and frozen. Never
 * throws (OPS-8: it runs in the guard's socket callbacks): strings past
 * MAX_POLICY_STRINGS are left out and counted in `omittedStrings` (RPT-8).
 */
export function reportedPolicy(type: PolicyType, domain: string, strings: readonly string[], mxHosts: readonly string[]): ReportedPolicy {
  const kept = strings.length > MAX_POLICY_STRINGS ? strings.slice(0, MAX_POLICY_STRINGS) : strings;
  const omittedStrings = strings.length - kept.length;
  const body = JSON.stringify([type, domain, kept, mxHosts]);
  const id = type === 'no-policy-found' ? `none-${domain}` : createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return Object.freeze({ type, domain, strings: Object.freeze([...kept]), mxHosts: Object.freeze([...mxHosts]), id, omittedStrings });
}

const bounded = new WeakMap<ReportedPolicy, ReportedPolicy>();

/**
 * RPT-8: `policy` with at most `maxStrings` strings (itself when it has no
 * more); `omittedStrings` counts every string left out. Made once per policy
 * value, so the hot path pays a WeakMap lookup only for an oversized policy.
 */
export function boundedPolicy(policy: ReportedPolicy, maxStrings: number): ReportedPolicy {
  if (policy.strings.length <= maxStrings) return policy;
  let made = bounded.get(policy);
  if (made === undefined || made.strings.length !== maxStrings) {
    const cut = reportedPolicy(policy.type, policy.domain, policy.strings.slice(0, maxStrings), policy.mxHosts);
    made = Object.freeze({ ...cut, omittedStrings: policy.omittedStrings + policy.strings.length - maxStrings });
    bounded.set(policy, made);
  }
  return made;
}

const noPolicies = new Map<string, ReportedPolicy>();
/** Bound of the no-policy-found cache (OPS-5); it starts over when full. */
const NO_POLICY_CACHE = 10_000;

/** `no-policy-found` for `domain`, made once per domain (it is the commonest policy of all). */
export function noPolicyFound(domain: string): ReportedPolicy {
  let policy = noPolicies.get(domain);
  if (policy === undefined) {
    if (noPolicies.size >= NO_POLICY_CACHE) noPolicies.clear();
    policy = reportedPolicy('no-policy-found', domain, [], []);
    noPolicies.set(domain, policy);
  }
  return policy;
}

const stsPolicies = new WeakMap<MtaStsPolicy, ReportedPolicy>();

/**
 * An MTA-STS policy as reported (RFC 8460 §4.4: `policy-string` the policy's
 * lines, `mx-host` its patterns). Made once per parsed policy object, so the
 * hot path pays a WeakMap lookup.
 */
export function stsPolicy(domain: string, policy: MtaStsPolicy): ReportedPolicy {
  const known = stsPolicies.get(policy);
  if (known !== undefined && known.domain === domain) return known;
  const lines = serialisePolicy(policy).split('\r\n').slice(0, -1);
  const made = reportedPolicy(
    'sts',
    domain,
    lines,
    policy.mx.map((pattern) => pattern.text),
  );
  stsPolicies.set(policy, made);
  return made;
}

/** A TLSA record in presentation form with its full data (RFC 6698 §2.2), as `policy-string` carries it. */
export function tlsaPresentation(record: TlsaRecord): string {
  return `${record.usage} ${record.selector} ${record.matchingType} ${record.data.toString('hex').toUpperCase()}`;
}

/** A DANE policy: the TLSA RRset of `mxHost`, reported under `domain` (the TLSA base domain, RFC 8460 §1.3). */
export function tlsaPolicy(domain: string, mxHost: string, records: readonly TlsaRecord[]): ReportedPolicy {
  return reportedPolicy('tlsa', domain, records.map(tlsaPresentation), [mxHost]);
}

function boundedText(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  const clean = text.replace(UNPRINTABLE, '?');
  return clean.length > MAX_FIELD_LENGTH ? `${clean.slice(0, MAX_FIELD_LENGTH - 1)}…` : clean;
}

/** The failure with every text field bounded and printable, empty fields dropped. */
export function normaliseFailure(failure: FailureDetails): FailureDetails {
  const out: FailureDetails = { resultType: failure.resultType };
  const fields = [
    'sendingMtaIp',
    'receivingMxHostname',
    'receivingMxHelo',
    'receivingIp',
    'failureReasonCode',
    'additionalInformation',
  ] as const;
  for (const field of fields) {
    const value = boundedText(failure[field]);
    if (value !== undefined) out[field] = value;
  }
  return out;
}

/** The fields of a failure in a fixed order, the form the stores keep it in. */
export function failureKey(failure: FailureDetails): string {
  return JSON.stringify([
    failure.resultType,
    failure.sendingMtaIp ?? '',
    failure.receivingMxHostname ?? '',
    failure.receivingMxHelo ?? '',
    failure.receivingIp ?? '',
    failure.failureReasonCode ?? '',
    failure.additionalInformation ?? '',
  ]);
}

/** The failure a `failureKey` stands for, or null when the text is not one. */
export function parseFailureKey(key: string): FailureDetails | null {
  let fields: unknown;
  try {
    fields = JSON.parse(key);
  } catch {
    return null;
  }
  if (!Array.isArray(fields) || fields.length !== 7 || !fields.every((f) => typeof f === 'string')) return null;
  const [resultType, sendingMtaIp, receivingMxHostname, receivingMxHelo, receivingIp, failureReasonCode, additionalInformation] =
    fields as string[];
  if (!isResultType(resultType)) return null;
  return normaliseFailure({
    resultType,
    sendingMtaIp,
    receivingMxHostname,
    receivingMxHelo,
    receivingIp,
    failureReasonCode,
    additionalInformation,
  });
}

export function isResultType(value: unknown): value is ResultType {
  return typeof value === 'string' && (RESULT_TYPES as readonly string[]).includes(value);
}
