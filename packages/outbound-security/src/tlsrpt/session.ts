/**
 * One guarded connection as TLS reporting counts it (RPT-1, RPT-2): which
 * policy it was made under and whether that policy's check succeeded. Pure:
 * the connection guard hands in what it knows, the recorder counts the result.
 *
 * The policy (RFC 8460 §4.4 `policy`), in the order of precedence DANE-5 gives:
 * - `tlsa` when the MX host has TLSA records (the requirement's `dane`): the
 *   usable records, under the TLSA base domain (the MX host, RFC 8460 §1.3);
 * - `sts` when the recipient domain has an MTA-STS policy in testing or
 *   enforce mode (a `none` policy means "no active policy", RFC 8461 §5);
 * - `no-policy-found` otherwise.
 *
 * The result, judged against that policy alone (not the ratchet or the policy
 * table, which are the sender's own requirements, not the recipient's):
 * - `tlsa`: the DANE check (tls/dane-check.ts, `resultOfDaneCheck`);
 * - `sts`: the host must be one the policy lists, the certificate valid for
 *   it (TLS_SECURE) and the protocol TLS 1.2 or later (RFC 8461 §4); testing
 *   mode is judged the same, that is what a testing policy asks to hear about
 *   (STS-8);
 * - `no-policy-found`: only a session without TLS is a failure
 *   (starttls-not-supported): without a policy nothing asks the certificate
 *   to be valid, so an encrypted session is a success.
 * A connection that ended in its TLS negotiation (STARTTLS refused, handshake
 * failed, bytes after the STARTTLS reply) fails whatever the policy, with the
 * result type of its reason (`resultOfConnection`).
 */
import { matchesPolicy, type MtaStsPolicy } from '../mta-sts/policy';
import { isModernTls, type Classification } from '../tls/classify';
import type { DaneCheck } from '../tls/dane-check';
import type { Requirement } from '../tls/decision';
import { SecLevel } from '../sec-level';
import { noPolicyFound, stsPolicy, tlsaPolicy, type FailureDetails, type ReportedPolicy, type SessionRecord } from './record';
import { resultOfConnection, resultOfDaneCheck, type MappedResult } from './result-type';

/** What the guard knows of a connection when it ends or is decided. */
export type ConnectionOutcome =
  /** The first MAIL FROM (or AUTH) was reached and the connection classified; `dane` when the host has TLSA records. */
  | { kind: 'decided'; classification: Classification; dane?: DaneCheck }
  /** The connection ended in its TLS negotiation: the conversation's or the handshake's reason. */
  | { kind: 'tls-ended'; reason: string };

export interface ConnectionFacts {
  requirement: Requirement;
  /** The domain's MTA-STS policy as planned (the delivery state), when it has one. */
  stsPolicy?: MtaStsPolicy;
  /** The MX host name (undefined for a bare address) and the address connected to. */
  mxHost: string | undefined;
  receivingIp: string;
  /** The local address of the connection, when known. */
  sendingIp?: string;
}

/** The reported policy of a connection (see the file header). */
export function policyOfConnection(facts: ConnectionFacts): ReportedPolicy {
  const { requirement, mxHost } = facts;
  if (requirement.dane && mxHost) return tlsaPolicy(mxHost, mxHost, requirement.dane.usable);
  const sts = requirement.sts;
  if (sts && sts.mode !== 'none' && facts.stsPolicy) return stsPolicy(requirement.domain, facts.stsPolicy);
  return noPolicyFound(requirement.domain);
}

/** The session to record for a connection, or null when its domain is not a Policy Domain (an address literal). */
export function sessionOfConnection(facts: ConnectionFacts, outcome: ConnectionOutcome, now: Date = new Date()): SessionRecord | null {
  const { requirement } = facts;
  if (requirement.domain.startsWith('[') || requirement.relayKey !== undefined) return null;
  const policy = policyOfConnection(facts);
  const mapped = resultOf(policy, facts, outcome, now);
  if (mapped.kind === 'success') return { policyDomain: requirement.domain, policy, result: 'success' };
  // RPT-10: sending-mta-ip, receiving-ip and receiving-mx-hostname in every failure, TLS reached or not.
  const failure: FailureDetails = {
    resultType: mapped.resultType,
    receivingIp: facts.receivingIp,
    receivingMxHostname: facts.mxHost ?? facts.receivingIp,
  };
  if (facts.sendingIp) failure.sendingMtaIp = facts.sendingIp;
  if (mapped.failureReasonCode !== undefined) failure.failureReasonCode = mapped.failureReasonCode;
  return { policyDomain: requirement.domain, policy, result: failure };
}

function resultOf(policy: ReportedPolicy, facts: ConnectionFacts, outcome: ConnectionOutcome, now: Date): MappedResult {
  if (outcome.kind === 'tls-ended') return resultOfConnection(outcome.reason, now);
  const { classification } = outcome;
  if (policy.type === 'tlsa') return outcome.dane ? resultOfDaneCheck(outcome.dane) : resultOfConnection(classification.reason, now);
  if (policy.type === 'sts') return stsResult(classification, facts, now);
  return classification.level === SecLevel.PLAIN ? resultOfConnection('no TLS', now) : { kind: 'success' };
}

/** RFC 8461 §4 for one connection: a listed MX host, a valid certificate for it, TLS 1.2 or later. */
function stsResult(classification: Classification, facts: ConnectionFacts, now: Date): MappedResult {
  const listed = facts.mxHost !== undefined && facts.stsPolicy !== undefined && matchesPolicy(facts.stsPolicy, facts.mxHost);
  if (!listed || facts.requirement.sts?.outsidePolicy) {
    return { kind: 'failure', resultType: 'validation-failure', failureReasonCode: 'mx-not-in-sts-policy' };
  }
  if (classification.level < SecLevel.TLS_SECURE) {
    const mapped = resultOfConnection(classification.reason, now);
    return mapped.kind === 'failure'
      ? mapped
      : { kind: 'failure', resultType: 'validation-failure', failureReasonCode: classification.reason };
  }
  if (!isModernTls(classification.protocol)) {
    return { kind: 'failure', resultType: 'validation-failure', failureReasonCode: 'tls-version-below-1.2' };
  }
  return { kind: 'success' };
}

/** The note on a report message (transaction and queue file): RPT-4, never counted, TLS-Required: No. */
export const REPORT_NOTE = 'outbound_security_tlsrpt';

/** RPT-4: whether a queued message is a TLS report (Haraka's `hmail.todo.notes`). */
export function isReportMessage(hmail: { todo?: { notes?: unknown } }): boolean {
  const notes = hmail.todo?.notes as Record<string, unknown> | undefined;
  return typeof notes?.[REPORT_NOTE] === 'string';
}
