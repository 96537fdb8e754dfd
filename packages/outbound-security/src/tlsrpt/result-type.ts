/**
 * RPT-2: RFC 8460 §4.3 result types from what this project already knows
 * about a connection or a policy lookup. Pure: text in, result type and
 * `failure-reason-code` out. Each mapping, in the order it is tried:
 *
 * Connections (the classification's reason, TLS-1, and the conversation's
 * reasons for ending a connection before the decision, TLS-3/TLS-7):
 * | reason | result type | failure-reason-code |
 * |---|---|---|
 * | `certificate valid for <host>` | success | |
 * | `no TLS` (the server offered no STARTTLS) | starttls-not-supported | `starttls-not-offered` |
 * | `refused STARTTLS: <reply>` | starttls-not-supported | the reply |
 * | `TLS handshake failed…`, `sent plaintext/bytes after the STARTTLS reply…` | validation-failure | the reason |
 * | `no peer certificate` | certificate-not-trusted | `no-peer-certificate` |
 * | `certificate not trusted: CERT_HAS_EXPIRED` | certificate-expired | `CERT_HAS_EXPIRED` |
 * | `certificate not trusted: <code>` | certificate-not-trusted | the code (§4.3 asks for one) |
 * | `certificate outside its validity period (<from> – <to>)` | certificate-expired after `<to>`; certificate-not-trusted before `<from>` | `certificate-expired` / `certificate-not-yet-valid` |
 * | `certificate not valid for <host>…` | certificate-host-mismatch | |
 * | anything else (address literal, new reasons) | validation-failure | the reason |
 *
 * MTA-STS (STS-7/STS-8, a connection an enforce policy refuses or a testing
 * policy would refuse; the decision's texts, tls/decision.ts):
 * | `… is not an MX host the policy lists` | validation-failure | `mx-not-in-sts-policy` |
 * | `… negotiated <protocol>, MTA-STS requires TLS 1.2 or later` | validation-failure | `tls-version-below-1.2` |
 * | `… offers <LEVEL> (<reason>), MTA-STS requires TLS_SECURE` | the connection mapping of `<reason>` | |
 *
 * MTA-STS discovery (STS-2/STS-3, the resolver's failure texts):
 * | a certificate error of the policy host | sts-webpki-invalid | the error |
 * | an invalid policy, a body that is not UTF-8 or not text/plain, or too large | sts-policy-invalid | the error |
 * | any other fetch failure (DNS, connect, timeout, HTTP status) | sts-policy-fetch-error | the error |
 *
 * DANE (DANE-3/DANE-4, the plan's TLSA lookup and the guard's `DaneCheck`):
 * | TLSA lookup bogus, SERVFAIL or timed out | dnssec-invalid | the reason |
 * | `authenticated` (a record matched) | success | |
 * | `encrypted` (only unusable TLSA records) | tlsa-invalid | `all-tlsa-records-unusable` |
 * | `refused`, no TLS | starttls-not-supported | `starttls-not-offered` |
 * | `refused`, usable records, none matches the chain | tlsa-invalid | `tlsa-no-match` |
 * `dane-required` is never produced: no setting here requires DANE of every MX.
 */
import type { DaneCheck } from '../tls/dane-check';
import type { ResultType } from './record';

export type MappedResult = { kind: 'success' } | { kind: 'failure'; resultType: ResultType; failureReasonCode?: string };

const failure = (resultType: ResultType, failureReasonCode?: string): MappedResult =>
  failureReasonCode === undefined ? { kind: 'failure', resultType } : { kind: 'failure', resultType, failureReasonCode };

const VALIDITY = /^certificate outside its validity period \((.*) – (.*)\)$/;
const STS_OFFERS = / offers [A-Z_]+ \((.*)\), MTA-STS requires TLS_SECURE/;
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|ALTNAME|UNABLE_TO|certificate/i;
const INVALID_POLICY = /is invalid:|not valid UTF-8|Content-Type|not text\/plain|bytes is over|body over/i;

/**
 * A connection's outcome from its classification reason (or the reason the
 * conversation ended it before the decision); `now` decides whether a
 * certificate outside its validity period has expired or is not valid yet.
 */
export function resultOfConnection(reason: string, now: Date = new Date()): MappedResult {
  if (reason.startsWith('certificate valid for ')) return { kind: 'success' };
  if (reason === 'no TLS') return failure('starttls-not-supported', 'starttls-not-offered');
  if (reason.startsWith('refused STARTTLS: ')) return failure('starttls-not-supported', reason.slice('refused STARTTLS: '.length));
  if (reason.startsWith('TLS handshake failed') || /^sent (plaintext|bytes) after the STARTTLS reply/.test(reason)) {
    return failure('validation-failure', reason);
  }
  if (reason === 'no peer certificate') return failure('certificate-not-trusted', 'no-peer-certificate');
  if (reason === 'certificate not trusted: CERT_HAS_EXPIRED') return failure('certificate-expired', 'CERT_HAS_EXPIRED');
  if (reason.startsWith('certificate not trusted: '))
    return failure('certificate-not-trusted', reason.slice('certificate not trusted: '.length));
  const validity = VALIDITY.exec(reason);
  if (validity) {
    const validFrom = Date.parse(validity[1] as string);
    return Number.isFinite(validFrom) && now.getTime() < validFrom
      ? failure('certificate-not-trusted', 'certificate-not-yet-valid')
      : failure('certificate-expired', 'certificate-expired');
  }
  if (reason.startsWith('certificate not valid for ')) return failure('certificate-host-mismatch');
  return failure('validation-failure', reason);
}

/**
 * What an MTA-STS policy refuses (or, in testing mode, would refuse) about a
 * connection: the decision's reason or `stsWouldRefuse` (tls/decision.ts), as
 * it is (`<domain>: <host> offers … (policy id …, mode …)`).
 */
export function resultOfStsShortfall(shortfall: string, now: Date = new Date()): MappedResult {
  if (shortfall.includes(' is not an MX host the policy lists')) return failure('validation-failure', 'mx-not-in-sts-policy');
  if (shortfall.includes(', MTA-STS requires TLS 1.2 or later')) return failure('validation-failure', 'tls-version-below-1.2');
  const offers = STS_OFFERS.exec(shortfall);
  if (offers) return resultOfConnection(offers[1] as string, now);
  return failure('validation-failure', shortfall);
}

/** An MTA-STS discovery that failed: the resolver's reason (`policy fetch failed: …`, `policy at … is invalid: …`). */
export function resultOfStsDiscovery(reason: string): MappedResult {
  if (CERTIFICATE_ERROR.test(reason)) return failure('sts-webpki-invalid', reason);
  if (INVALID_POLICY.test(reason)) return failure('sts-policy-invalid', reason);
  return failure('sts-policy-fetch-error', reason);
}

/** DANE-3: a TLSA lookup that failed (bogus, SERVFAIL, timeout): the host is skipped. */
export function resultOfTlsaLookupFailure(reason: string): MappedResult {
  return failure('dnssec-invalid', reason);
}

/** DANE-4: the guard's DANE check of a connection (tls/dane-check.ts). */
export function resultOfDaneCheck(check: DaneCheck): MappedResult {
  if (check.kind === 'authenticated') return { kind: 'success' };
  if (check.kind === 'encrypted') return failure('tlsa-invalid', 'all-tlsa-records-unusable');
  return check.result === 'no_tls' ? failure('starttls-not-supported', 'starttls-not-offered') : failure('tlsa-invalid', 'tlsa-no-match');
}
