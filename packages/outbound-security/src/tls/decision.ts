/**
 * The decision made at the first MAIL FROM (or AUTH) of a connection (TLS-2,
 * TLS-4, TLS-5, TLS-8, STS-7, STS-8, POL-2): given the connection's
 * classification, what the ratchet store holds, the MTA-STS mode and the
 * policy table's rule, pass, raise or abandon. The requirement is
 * max(table minimum, automatic requirement without the parts the table
 * exempts); a pass that only an exemption allowed says so, for the log and
 * the count. Pure: the caller reads the store and persists a raise.
 */
import type { RatchetRead } from '../ratchet/store';
import { SecLevel, levelName, maxLevel } from '../sec-level';
import { isModernTls, type Classification } from './classify';
import type { StsMode } from '../mta-sts/policy';
import type { DaneHostRequirement, DaneMode } from '../dane/plan-step';

export interface Requirement {
  /** Recipient domain key (A-label or address literal). */
  domain: string;
  /** Whether the domain's ratchet applies (it may be off for smart-host routes). */
  ratchet: boolean;
  /** MTA-STS of the domain's policy, when there is one (never on a relay hop, POL-4). */
  sts?: StsRequirement;
  /**
   * TLS-8: on a hop to a relay (another plugin chose the route), the relay's own
   * ratchet key (`relay:<host>`): read and raised beside the domain's. The
   * caller passes the higher of the two stored levels as `stored`.
   */
  relayKey?: string;
  /** TLS-8: the connection carries credentials (AUTH): it must reach this level. */
  authMinLevel?: SecLevel;
  /** POL-1, POL-4: the policy table's minimum for this hop (the recipient domain's rule, or the relay's). */
  minimum?: TableMinimum;
  /**
   * POL-2: ratchet keys the table exempts (`domain`: the recipient domain's
   * key, `relay`: the relay's), each with the rule that says so. They are read
   * and raised, never enforced; the caller passes their highest level as `exempt`.
   */
  ratchetExempt?: { domain?: string; relay?: string };
  /** DANE-3/DANE-4: the MX host has TLSA records: what the connection must match, and the mode. */
  dane?: DaneHostRequirement & { mode: DaneMode };
  /** POL-5: a policy table line governing this hop cannot be read: nothing is sent until it is fixed (the reason). */
  brokenRule?: string;
  /** RT-2, RT-4: the message was received with REQUIRETLS (tls/requiretls.ts): what this hop must also show. */
  requireTls?: RequireTlsRequirement;
}

/** RT-2 (a), RT-4: what a REQUIRETLS message asks of one hop beyond the rest of the requirement. */
export interface RequireTlsRequirement {
  /** RT-2 (a): how the MX host was authenticated (`DNSSEC-validated MX RRset`, `MTA-STS policy … lists it`), or why it was not. */
  mxSet: { ok: true; by: string } | { ok: false; reason: string; transient?: true };
  /** RT-4: the relay's `requiretls=relax` rule: it need not advertise REQUIRETLS (each use logged and counted). */
  relaxedBy?: string;
}

export interface StsRequirement {
  mode: StsMode;
  policyId: string;
  /** POL-2: the rule exempting this domain from MTA-STS: nothing enforced, what enforce would refuse is an exemption use. */
  exemptBy?: string;
  /** With `exemptBy`: this MX host does not match the policy (enforce would not have used it). */
  outsidePolicy?: boolean;
}

export interface TableMinimum {
  level: SecLevel;
  /** `match=`: the certificate must carry one of these names (instead of the MX host name). */
  match?: readonly string[];
  /** How the log names the rule: `partner.example (config/outbound_tls_policy line 4)`. */
  rule: string;
}

/** POL-2: the highest level stored under the exempted ratchet keys, with its key and the rule exempting it. */
export interface ExemptLevel {
  level: SecLevel;
  key: string;
  rule: string;
}

/** A connection that passed only because the table exempts part of the automatic requirement (POL-2). */
export interface ExemptionUse {
  exemption: 'ratchet' | 'mta-sts';
  rule: string;
  /** What was not required: `stored level TLS_SECURE of example.com`, `MTA-STS enforce (policy id 1): …`. */
  waived: string;
}

export type StoreProblem = { kind: 'unreadable'; reason: string };

export type Verdict =
  | { kind: 'pass'; stored: SecLevel; raiseTo?: SecLevel; stsWouldRefuse?: string; exemptions?: ExemptionUse[] }
  | {
      kind: 'abandon';
      cause: AbandonCause;
      reason: string;
      stored?: SecLevel;
      raiseTo?: SecLevel;
      /** RT-3: what a REQUIRETLS message found missing at this hop (a lasting reason: it is returned when no MX does better). */
      requireTls?: RequireTlsMissing;
    };

/** RT-3: what a hop lacked for a REQUIRETLS message; each is lasting (retrying will not heal it soon). */
export type RequireTlsMissing = 'mx-set' | 'certificate' | 'requiretls';

/** Why a connection was abandoned before MAIL FROM (the `cause` label of the abandoned metric). */
export type AbandonCause = 'ratchet' | 'mta_sts' | 'store' | 'auth' | 'protocol' | 'policy_table' | 'dane' | 'requiretls';

/**
 * `stored` is the ratchet read of the enforced keys (or a store failure);
 * `exempt`, the highest level under the keys the table exempts. `onStoreError`
 * says what to do when the store cannot tell: `defer` abandons (ST-4), `send`
 * treats the domain as having no level.
 */
export function decide(
  classification: Classification,
  requirement: Requirement,
  stored: RatchetRead | StoreProblem | undefined,
  onStoreError: 'defer' | 'send',
  host: string,
  exempt?: ExemptLevel,
): Verdict {
  const level = classification.level;
  if (requirement.brokenRule) return { kind: 'abandon', cause: 'policy_table', reason: `${requirement.domain}: ${requirement.brokenRule}` };
  const seen = `${levelName(level)} (${classification.reason})`;
  let storedLevel = SecLevel.PLAIN;
  const ratchet = requirement.ratchet || requirement.relayKey !== undefined;
  if (ratchet && stored) {
    if (stored.kind === 'unreadable') {
      if (onStoreError === 'defer') {
        return {
          kind: 'abandon',
          cause: 'store',
          reason: `${requirement.domain}: ratchet state unavailable (${stored.reason}); not sending via ${host} at ${levelName(level)}`,
        };
      }
    } else if (stored.kind === 'level') {
      storedLevel = stored.entry.level;
    }
  }
  // TLS-4: the ratchet check runs first.
  if (ratchet && level < storedLevel) {
    return {
      kind: 'abandon',
      cause: 'ratchet',
      stored: storedLevel,
      reason: `${requirement.domain}: ${host} offers ${seen}, required ${levelName(storedLevel)} (ratchet)`,
    };
  }
  // POL-2: an exempted level is skipped, never lowered: a better connection still raises it.
  const exemptLevel = exempt?.level ?? SecLevel.PLAIN;
  const raiseTo = ratchet && level > maxLevel(storedLevel, exemptLevel) ? level : undefined;
  const raise = raiseTo !== undefined ? { raiseTo } : {};
  const exemptions: ExemptionUse[] = [];
  if (exempt && level < exempt.level) {
    exemptions.push({ exemption: 'ratchet', rule: exempt.rule, waived: `stored level ${levelName(exempt.level)} of ${exempt.key}` });
  }
  // TLS-8: credentials never go out below auth_min_level.
  if (requirement.authMinLevel !== undefined && level < requirement.authMinLevel) {
    return {
      kind: 'abandon',
      cause: 'auth',
      stored: storedLevel,
      reason:
        `${requirement.domain}: ${host} offers ${seen}, credentials require ${levelName(requirement.authMinLevel)} ` +
        `(auth_min_level); AUTH not sent`,
      ...raise,
    };
  }
  // POL-1: the table's minimum.
  const shortfall = requirement.minimum ? tableShortfall(classification, seen, requirement.minimum) : null;
  if (shortfall) {
    const reason = `${requirement.domain}: ${host} offers ${shortfall} (policy table rule ${requirement.minimum?.rule})`;
    return { kind: 'abandon', cause: 'policy_table', stored: storedLevel, reason, ...raise };
  }
  // STS-7 / STS-8: then MTA-STS.
  const sts = requirement.sts;
  const stsProblem = sts && sts.mode !== 'none' ? stsShortfall(classification, seen, sts, host) : null;
  const policy = `policy id ${sts?.policyId}, mode ${sts?.mode}`;
  if (stsProblem && sts?.mode === 'enforce') {
    if (!sts.exemptBy) {
      return {
        kind: 'abandon',
        cause: 'mta_sts',
        stored: storedLevel,
        reason: `${requirement.domain}: ${stsProblem} (${policy})`,
        ...raise,
      };
    }
    exemptions.push({ exemption: 'mta-sts', rule: sts.exemptBy, waived: `MTA-STS enforce (${policy}): ${stsProblem}` });
  }
  return {
    kind: 'pass',
    stored: storedLevel,
    ...raise,
    ...(stsProblem && sts?.mode === 'testing' ? { stsWouldRefuse: `${requirement.domain}: ${stsProblem} (${policy})` } : {}),
    ...(exemptions.length > 0 ? { exemptions } : {}),
  };
}

/** What falls short of the table minimum (`offers …, required …`), or null. */
function tableShortfall(classification: Classification, seen: string, minimum: TableMinimum): string | null {
  if (minimum.match && minimum.match.length > 0) {
    const match = classification.match;
    if (match?.ok) return null;
    return `${seen}, required a certificate for ${minimum.match.join(' or ')} (match=): ${match?.reason ?? 'no certificate'}`;
  }
  return classification.level < minimum.level ? `${seen}, required ${levelName(minimum.level)}` : null;
}

/** What an MTA-STS enforce policy would refuse on this connection, or null. */
function stsShortfall(classification: Classification, seen: string, sts: StsRequirement, host: string): string | null {
  if (sts.outsidePolicy) return `${host} is not an MX host the policy lists`;
  if (classification.level < SecLevel.TLS_SECURE) return `${host} offers ${seen}, MTA-STS requires TLS_SECURE`;
  if (!isModernTls(classification.protocol)) {
    return `${host} negotiated ${classification.protocol ?? 'unknown TLS'}, MTA-STS requires TLS 1.2 or later`;
  }
  return null;
}
