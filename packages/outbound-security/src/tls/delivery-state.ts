/**
 * What the per-message plan (delivery/plan.ts) decided for a message's
 * connections: the ratchet key, the MTA-STS policy, the policy table rule and
 * DANE's per-host requirements. outbound_mx's get_mx leaves it with the
 * message (haraka/delivery-state.ts); the connection requirement
 * (./requirement.ts) reads it for each connection of that message.
 */
import type { MtaStsPolicy, StsMode } from '../mta-sts/policy';
import type { PolicyRule } from '../policy-table/rule';
import type { DaneHostRequirement, DaneMode } from '../dane/plan-step';

export interface DeliveryState {
  /** The ratchet key: the recipient domain in lowercase A-label form, or the address literal's canonical key (ST-6). */
  domain: string;
  /** The domain's MTA-STS policy mode and id, when it has a policy (STS-7, STS-8). */
  sts?: {
    mode: StsMode;
    policyId: string;
    /**
     * RPT-1: the parsed policy (a reference to the cached object, not a copy),
     * whose lines the TLS report carries as `policy-string`.
     */
    policy?: MtaStsPolicy;
    /** POL-2: the policy is exempted by the domain's table rule; these planned hosts are ones enforce would not use. */
    exempted?: { outsidePolicy: readonly string[] };
  };
  /** POL-1: the policy table rule of the domain when the plan was made. */
  rule?: PolicyRule;
  /**
   * RT-2 (a): the MX RRset (or an implicit MX's NODATA) was DNSSEC-validated by a resolver DANE trusts
   * (DANE-1 in effect, DANE-8), whether or not DANE applies or a table rule exempts it.
   */
  mxDnssec?: true;
  /** RT-3: the MX set may be authenticated but that could not be learnt now (an MTA-STS discovery failed, the policy store cannot be read, a resolver check is unknown). */
  mxAuthUnknown?: string;
  /** DANE-3/DANE-5: DANE applies to this delivery; per MX host name, what its connections must match. */
  dane?: { mode: DaneMode; hosts: Record<string, DaneHostRequirement> };
}
