/**
 * RT-2, RT-4: what a message received with REQUIRETLS (RFC 8689 §4.2.1) asks
 * of each hop, on top of everything else the connection must reach:
 *
 * (a) the MX host is authenticated: the MX RRset was DNSSEC-validated by a
 *     resolver DANE trusts (DANE-1, DANE-8), or an MTA-STS policy in enforce
 *     or testing mode lists the host; a relay route is the admin's own
 *     configuration;
 * (b) the connection is TLS_SECURE for the host name (PKIX, or a DANE match);
 * (c) the server advertised REQUIRETLS in its EHLO reply after STARTTLS,
 *     unless the relay's table rule says `requiretls=relax` (RT-4).
 *
 * Nothing lowers this: not a policy-table exemption (the checks read what the
 * connection is, not what the table requires), not `TLS-Required: No` (the
 * notes never carry both). Pure: the plan's state and the connection's facts
 * come in, the shortfall goes out.
 */
import type { DeliveryState } from './delivery-state';
import type { Classification } from './classify';
import type { RequireTlsMissing, RequireTlsRequirement } from './decision';
import { matchesPolicy } from '../mta-sts/policy';
import { SecLevel, levelName } from '../sec-level';

/** RT-2 (a): how the plan authenticated `mxHost` for a REQUIRETLS message, or why it could not. */
export function mxSetAuthentication(state: DeliveryState, mxHost: string | undefined): RequireTlsRequirement['mxSet'] {
  if (mxHost === undefined) return { ok: false, reason: `${state.domain}: an address literal has no MX host name to authenticate` };
  if (state.mxDnssec) return { ok: true, by: 'DNSSEC-validated MX RRset' };
  const sts = state.sts;
  if (sts && (sts.mode === 'enforce' || sts.mode === 'testing') && sts.policy) {
    if (matchesPolicy(sts.policy, mxHost)) return { ok: true, by: `MTA-STS policy ${sts.policyId} (${sts.mode}) lists ${mxHost}` };
    // A host the policy does not list may still be authenticated by DNSSEC when that is what is unknown (below).
    if (!state.mxAuthUnknown) {
      return { ok: false, reason: `${state.domain}: ${mxHost} is not listed by the MTA-STS policy (id ${sts.policyId}, ${sts.mode})` };
    }
  }
  if (state.mxAuthUnknown) {
    // RT-3: not known now is not known to be missing: the message waits.
    return { ok: false, reason: `${state.domain}: MX set authentication unknown for now (${state.mxAuthUnknown})`, transient: true };
  }
  return {
    ok: false,
    reason:
      `${state.domain}: MX set not authenticated (no DNSSEC-validated MX answer from a resolver DANE trusts, ` +
      `no MTA-STS policy in enforce or testing mode)`,
  };
}

/**
 * RT-3: the status of a return (RFC 8689 §6): 5.7.30 "REQUIRETLS support required" when what every
 * host lacked was REQUIRETLS itself, else 5.7.10 "encryption needed" (RFC 5248). The guard's return
 * and the CLI's forecast both use it.
 */
export function returnStatus(missing: readonly RequireTlsMissing[]): { subject: 7; detail: 10 | 30 } {
  return { subject: 7, detail: missing.every((what) => what === 'requiretls') ? 30 : 10 };
}

export interface RequireTlsShortfall {
  missing: RequireTlsMissing;
  reason: string;
  /** RT-3: retrying may heal it (the message is deferred, not returned). */
  transient?: true;
}

/** RT-2 (a)–(c): what this hop lacks for a REQUIRETLS message, or null. */
export function requireTlsShortfall(
  requirement: RequireTlsRequirement,
  classification: Classification,
  advertised: boolean,
  host: string,
): RequireTlsShortfall | null {
  if (!requirement.mxSet.ok) {
    return {
      missing: 'mx-set',
      reason: `REQUIRETLS: ${requirement.mxSet.reason}`,
      ...(requirement.mxSet.transient ? { transient: true as const } : {}),
    };
  }
  if (classification.level < SecLevel.TLS_SECURE) {
    return {
      missing: 'certificate',
      reason:
        `REQUIRETLS: ${host} offers ${levelName(classification.level)} (${classification.reason}), ` +
        `required TLS_SECURE for the host name (PKIX or DANE)`,
    };
  }
  if (!advertised && !requirement.relaxedBy) {
    return { missing: 'requiretls', reason: `REQUIRETLS: ${host} does not advertise REQUIRETLS after STARTTLS` };
  }
  return null;
}
