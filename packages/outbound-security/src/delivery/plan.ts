/**
 * The per-message plan (§1, MX-1 … MX-9, STS-7 … STS-9, ST-4, TLS-6): a
 * recipient domain → the MX hosts a message may go to and what its
 * connections must reach, or why it cannot go now (transient) or ever
 * (permanent, null MX). outbound_mx's `get_mx` hook and the CLI's `mx show`
 * both call `planDelivery`, so what the CLI shows is what the plugin does; each
 * only translates the plan (to Haraka's answer and log lines, to text).
 *
 * The steps, top to bottom:
 * 1. an address literal (MX-2): its address through the address policy, no
 *    MX lookup, no MTA-STS; else the A-label (MX-1);
 * 2. the MTA-STS policy in effect (STS-9: before the MX query, so an enforce
 *    policy also filters an implicit MX); a policy store that cannot be read
 *    defers under on_store_error=defer (ST-4, ST-5);
 * 3. the MX lookup: enforce filter, cap, addresses (MX-3 … MX-9, MX-8);
 * 4. testing mode: the hosts enforce would not use, for the log (STS-8);
 * 5. an enforce policy or a policy table minimum while the connection guard
 *    is missing defers (TLS-6).
 *
 * The domain's policy table rule (POL-1) rides along in the delivery state for
 * outbound_tls; `exempt=mta-sts` (POL-2) keeps an enforce policy from
 * filtering the MXs here, and the planned hosts enforce would not use are
 * noted for the connection guard, which logs and counts their use.
 *
 * No I/O of its own: DNS and the policy source are handed in (the plugin's
 * caching resolver, the CLI's read-only view), so it tests with small fakes.
 */
import type { OutboundMxConfig } from '../config/outbound-mx';
import type { DeliveryState } from '../tls/delivery-state';
import { toULabel } from '../domain';
import { recipientKeyOf } from '../store/keys';
import { stsEnforceReason, tableMinimumReason } from './fail-closed';
import { matchesPolicy, policyFilter, type MtaStsPolicy } from '../mta-sts/policy';
import { checkAddress, type AddressPolicy } from '../mx/address-policy';
import type { DnsClient } from '../mx/dns-client';
import { DSN_BAD_DESTINATION, DSN_NULL_MX, queryMx, resolveMxHosts, type HostAddresses, type MxLookupResult } from '../mx/lookup';
import { ruleLabel, type PolicyRule } from '../policy-table/rule';
import { brokenLineReason, type PolicyTableLookup } from '../policy-table/table';
import { SecLevel } from '../sec-level';
import { daneStep, type DaneDeps } from '../dane/plan-step';

/**
 * The MTA-STS policy a source says applies to a domain now. The plugin's
 * resolver (PolicyDecision) and the CLI's cached-else-live view both fit; the
 * plan hands the caller's own value back as `policy`.
 */
export type PolicyInEffect =
  | DomainPolicy
  | NoPolicy
  /** The policy store could not be read: a policy may exist that we cannot see (ST-4, ST-5). */
  | { kind: 'store-unavailable'; reason: string };

export type DomainPolicy = { kind: 'policy'; id: string; policy: MtaStsPolicy; source: string };
/** `failed`: discovery failed, a policy may exist (a REQUIRETLS message waits rather than being returned, RT-3). */
export type NoPolicy = { kind: 'none'; reason: string; failed?: true };

/** The policy used when `[mta_sts] enabled=false`. */
export const MTA_STS_DISABLED: NoPolicy = { kind: 'none', reason: 'MTA-STS is disabled ([mta_sts] enabled=false)' };

export interface PlanDeps<P extends PolicyInEffect> {
  dns: DnsClient;
  /** The MTA-STS policy for a lowercase A-label; asked only when MTA-STS is enabled. */
  policyFor(aLabel: string): Promise<P>;
  /** TLS-6: why outbound connections cannot be guarded in this process, or null; absent: they can. */
  guardProblem?(): string | null;
  /** POL-1: the admin policy table in force; absent: no rules. */
  policyTable?: PolicyTableLookup;
  /** Tie shuffling (MX-7); tests fix it. */
  random?: () => number;
  /**
   * DANE-1: present when DANE is in effect (`dane` on or observe, and the declared resolver validates),
   * or when that is unknown (DANE-8: a failed resolver check; its candidate hosts are then skipped).
   */
  dane?: DaneDeps;
}

/** The settings the plan reads, from outbound_mx.ini (and on_store_error from outbound_tls.ini). */
export interface PlanSettings {
  maxMx: number;
  maxMxRecords: number;
  maxAddressesPerMx: number;
  addressPolicy: AddressPolicy;
  mtaStsEnabled: boolean;
  onStoreError: 'defer' | 'send';
}

/** The plan's settings from the parsed outbound_mx.ini and outbound_tls.ini's on_store_error: one mapping for the plugin and the CLI. */
export function planSettings(mx: OutboundMxConfig, onStoreError: 'defer' | 'send'): PlanSettings {
  return {
    maxMx: mx.maxMx,
    maxMxRecords: mx.maxMxRecords,
    maxAddressesPerMx: mx.maxAddressesPerMx,
    addressPolicy: mx.addressPolicy,
    mtaStsEnabled: mx.mtaSts.enabled,
    onStoreError,
  };
}

/** Where the message goes: a domain (both label forms) or an address literal (its canonical key, ST-6). */
export type Destination = { kind: 'domain'; aLabel: string; uLabel: string } | { kind: 'literal'; key: string; address: string };

/** One MX as planned; `host` is undefined for an address literal (no name to verify, MX-2). */
export interface PlannedMx {
  host: string | undefined;
  priority: number;
  addresses: string[];
}

/** `policy`: the one used, null when MTA-STS does not apply (an address literal) or the plan stopped before it. */
export type DeliveryPlan<P extends PolicyInEffect = PolicyInEffect> =
  | {
      kind: 'deliver';
      destination: Destination;
      policy: P | NoPolicy | null;
      mxs: PlannedMx[];
      /** MX-4: the domain has no MX records and is its own MX. */
      implicit: boolean;
      /** What was dropped or left out on the way (targets, addresses, hosts outside the policy or over the cap). */
      notes: string[];
      /** STS-8: in testing mode, the planned hosts an enforce policy would not use. */
      testingWouldNotUse: string[];
      /** POL-2: an enforce policy the domain's table rule exempts: the planned hosts it would not use. */
      exemptedWouldNotUse: string[];
      /** POL-2: DANE is in effect, the MX answer is DNSSEC-validated, and the domain's rule exempts DANE: the rule. */
      daneExemptedBy?: string;
      /** What outbound_tls enforces on this message's connections. */
      state: DeliveryState;
    }
  | { kind: 'null-mx'; destination: Destination; policy: P | NoPolicy; dsn: typeof DSN_NULL_MX; reason: string }
  | {
      kind: 'permanent';
      cause: 'invalid-domain' | 'invalid-literal' | 'mx';
      destination: Destination | null;
      policy: P | NoPolicy | null;
      dsn: typeof DSN_BAD_DESTINATION;
      reason: string;
    }
  | {
      kind: 'transient';
      cause: 'store-unavailable' | 'unguarded' | 'literal-refused' | 'mx' | 'dane' | 'policy-table';
      destination: Destination;
      policy: P | NoPolicy | null;
      reason: string;
    };

/**
 * The plan for one recipient domain as Haraka hands it over (`example.com`,
 * `bücher.example`, `[192.0.2.1]`, `[IPv6:2001:db8::1]`). Rejects only when a
 * dependency does (the plugin defers then).
 */
export async function planDelivery<P extends PolicyInEffect>(
  domain: string,
  deps: PlanDeps<P>,
  settings: PlanSettings,
): Promise<DeliveryPlan<P>> {
  const key = recipientKeyOf(domain);
  if (key.kind === 'literal') return planLiteral(key, settings);
  if (key.kind === 'invalid') {
    const reason = key.literal ? key.reason : `invalid recipient domain: ${key.reason}`;
    const cause = key.literal ? 'invalid-literal' : 'invalid-domain';
    return { kind: 'permanent', cause, destination: null, policy: null, dsn: DSN_BAD_DESTINATION, reason };
  }
  const aLabel = key.key;
  const destination: Destination = { kind: 'domain', aLabel, uLabel: toULabel(aLabel) };
  // POL-5: a table line naming this domain that cannot be read: its mail waits, whatever else would apply.
  const broken = deps.policyTable?.brokenForDomain?.(aLabel);
  if (broken) return { kind: 'transient', cause: 'policy-table', destination, policy: null, reason: brokenLineReason(broken) };

  // STS-9: the policy comes first, so an enforce policy also filters an implicit MX.
  const policy: P | NoPolicy = settings.mtaStsEnabled ? await deps.policyFor(aLabel) : MTA_STS_DISABLED;
  if (policy.kind === 'store-unavailable' && settings.onStoreError === 'defer') {
    return { kind: 'transient', cause: 'store-unavailable', destination, policy, reason: policy.reason };
  }
  // TypeScript does not narrow a type parameter by its discriminant: P's `policy` members are DomainPolicys.
  const sts: DomainPolicy | null = policy.kind === 'policy' ? (policy as DomainPolicy) : null;
  const rule = deps.policyTable?.forDomain(aLabel) ?? null;
  const stsExempt = rule?.exempt.includes('mta-sts') === true;
  let enforce = sts?.policy.mode === 'enforce' && !stsExempt;
  // DANE-5: whether DANE applies is known only after the MX lookup; until then the MTA-STS filter waits.
  const daneDeps = deps.dane && rule?.exempt.includes('dane') !== true ? deps.dane : undefined;
  const options = {
    maxMx: settings.maxMx,
    maxMxRecords: settings.maxMxRecords,
    maxAddressesPerMx: settings.maxAddressesPerMx,
    addressPolicy: settings.addressPolicy,
    ...(deps.random ? { random: deps.random } : {}),
  };
  // One MX query per plan; its hosts are resolved once each, whether DANE or MTA-STS decides which are used.
  const query = await queryMx(aLabel, deps.dns, options);
  const addresses = new Map<string, Promise<HostAddresses>>();
  const lookup = async (filtered: boolean): Promise<MxLookupResult> =>
    query.kind !== 'hosts'
      ? query
      : resolveMxHosts(
          aLabel,
          query,
          deps.dns,
          { ...options, ...(sts && filtered ? { filter: policyFilter(aLabel, sts.id, sts.policy) } : {}) },
          addresses,
        );
  let result = await lookup(enforce && !daneDeps);
  switch (result.kind) {
    case 'null-mx':
      return { kind: 'null-mx', destination, policy, dsn: DSN_NULL_MX, reason: result.reason };
    case 'permanent':
      return { kind: 'permanent', cause: 'mx', destination, policy, dsn: result.dsn, reason: result.reason };
    case 'transient':
      return { kind: 'transient', cause: 'mx', destination, policy, reason: result.reason };
    case 'deliver':
      break;
  }
  // RT-2 (a): the MX set is authenticated by DNSSEC only through a resolver DANE trusts.
  const mxDnssec = deps.dane !== undefined && deps.dane.unknown === undefined && result.secure === true;
  // RT-3: what may authenticate the MX set but could not be learnt now (a REQUIRETLS message waits for it):
  // a failed discovery, or a policy store that cannot be read (on_store_error=send) may hide a policy listing the host.
  const mxAuthUnknown = mxDnssec
    ? undefined
    : (policy.kind === 'none' && policy.failed) || policy.kind === 'store-unavailable'
      ? policy.reason
      : deps.dane?.unknown !== undefined && result.secure === true
        ? `DNSSEC validation unknown: ${deps.dane.unknown}`
        : undefined;
  let dane: DeliveryState['dane'];
  // POL-2: an exemption is visible at each use: here, each delivery DANE could have applied to.
  const daneExemptedBy = deps.dane && !daneDeps && rule && result.secure === true ? ruleLabel(rule) : undefined;
  if (daneDeps) {
    const step = await daneStep(result.mxs, result.secure === true, daneDeps);
    if (step.kind === 'none-left') return { kind: 'transient', cause: 'dane', destination, policy, reason: `${aLabel}: ${step.reason}` };
    if (step.kind === 'applies' && Object.keys(step.hosts).length > 0) {
      // DANE-5: MTA-STS is not used where DANE applies.
      const notUsed = sts ? [`MTA-STS policy (id ${sts.id}, ${sts.policy.mode}) not used: DANE applies (RFC 8461 §2)`] : [];
      result = { ...result, mxs: step.mxs, notes: [...result.notes, ...step.notes, ...notUsed] };
      dane = { mode: daneDeps.mode, hosts: step.hosts };
      enforce = false;
    } else {
      const kept = new Set((step.kind === 'applies' ? step.mxs : result.mxs).map((mx) => mx.host));
      const notes = step.kind === 'applies' ? step.notes : [];
      if (enforce) {
        const filtered = await lookup(true);
        if (filtered.kind !== 'deliver')
          return { kind: 'transient', cause: 'mx', destination, policy, reason: filtered.reason ?? result.notes.join('; ') };
        result = filtered;
      }
      const mxs = result.mxs.filter((mx) => kept.has(mx.host));
      if (mxs.length === 0)
        return { kind: 'transient', cause: 'dane', destination, policy, reason: `${aLabel}: no usable MX host left (${notes.join('; ')})` };
      result = { ...result, mxs, notes: [...result.notes, ...notes] };
    }
  }
  const unguarded = unguardedReason(aLabel, sts, enforce, rule, deps, dane !== undefined);
  if (unguarded) return { kind: 'transient', cause: 'unguarded', destination, policy, reason: unguarded };
  const planned = result.mxs;
  const wouldNotUse = (mode: string): string[] =>
    sts && !dane && sts.policy.mode === mode ? planned.filter((mx) => !matchesPolicy(sts.policy, mx.host)).map((mx) => mx.host) : [];
  const exemptedWouldNotUse = stsExempt ? wouldNotUse('enforce') : [];
  const stsState =
    sts && !dane
      ? {
          mode: sts.policy.mode,
          policyId: sts.id,
          policy: sts.policy,
          ...(stsExempt && sts.policy.mode === 'enforce' ? { exempted: { outsidePolicy: exemptedWouldNotUse } } : {}),
        }
      : undefined;
  return {
    kind: 'deliver',
    destination,
    policy,
    mxs: result.mxs,
    implicit: result.implicit,
    notes: result.notes,
    testingWouldNotUse: wouldNotUse('testing'),
    exemptedWouldNotUse,
    ...(daneExemptedBy ? { daneExemptedBy } : {}),
    state: {
      domain: aLabel,
      ...(stsState ? { sts: stsState } : {}),
      ...(rule ? { rule } : {}),
      ...(dane ? { dane } : {}),
      ...(mxDnssec ? { mxDnssec: true as const } : {}),
      ...(mxAuthUnknown ? { mxAuthUnknown } : {}),
    },
  };
}

/** TLS-6: why this delivery must wait for a guard that could not be installed (an enforce policy, a table minimum), or null. */
function unguardedReason(
  aLabel: string,
  sts: DomainPolicy | null,
  enforce: boolean,
  rule: PolicyRule | null,
  deps: Pick<PlanDeps<PolicyInEffect>, 'guardProblem'>,
  daneApplies: boolean,
): string | null {
  const requires = daneApplies
    ? `${aLabel} has DANE TLSA records`
    : sts && enforce
      ? stsEnforceReason(aLabel, sts.id)
      : rule && rule.minimum > SecLevel.PLAIN
        ? tableMinimumReason(aLabel, rule)
        : null;
  const unguarded = requires ? (deps.guardProblem?.() ?? null) : null;
  // outbound_tls could not install its guard; nothing would check the certificate.
  return unguarded === null ? null : `outbound_tls cannot guard connections (${unguarded}); ${requires}`;
}

/** MX-2: an address literal skips MX lookup and MTA-STS; its address still passes the address policy (MX-9). */
function planLiteral<P extends PolicyInEffect>(literal: { key: string; address: string }, settings: PlanSettings): DeliveryPlan<P> {
  const { key, address } = literal;
  const destination: Destination = { kind: 'literal', key, address };
  const verdict = checkAddress(settings.addressPolicy, address);
  if (!verdict.allowed) {
    return { kind: 'transient', cause: 'literal-refused', destination, policy: null, reason: `address literal refused: ${verdict.reason}` };
  }
  return {
    kind: 'deliver',
    destination,
    policy: null,
    mxs: [{ host: undefined, priority: 0, addresses: [address] }],
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state: { domain: key },
  };
}

/** How logs and the CLI name a destination: `xn--bcher-kva.example (bücher.example)`, `[192.0.2.1]`. */
export function destinationName(destination: Destination): string {
  if (destination.kind === 'literal') return destination.key;
  return destination.uLabel === destination.aLabel ? destination.aLabel : `${destination.aLabel} (${destination.uLabel})`;
}
