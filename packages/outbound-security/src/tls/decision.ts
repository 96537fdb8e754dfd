/**
 * The decision made at the first MAIL FROM (or AUTH) of a connection (TLS-2,
 * TLS-4, TLS-5, STS-7, STS-8): given the connection's classification, what the
 * ratchet store holds and the MTA-STS mode, pass, raise or abandon. Pure: the
 * caller reads the store and persists a raise.
 */
import type { RatchetRead } from '../ratchet/store';
import { SecLevel, levelName } from './sec-level';
import { isModernTls, type Classification } from './classify';
import type { StsMode } from '../mta-sts/policy';

export interface Requirement {
  /** Recipient domain key (A-label or address literal). */
  domain: string;
  /** Whether the ratchet applies (it may be off for smart-host routes). */
  ratchet: boolean;
  /** MTA-STS mode of the domain's policy, when there is one. */
  sts?: { mode: StsMode; policyId: string };
  /**
   * TLS-8: on a hop to a relay (another plugin chose the route), the relay's own
   * ratchet key (`relay:<host>`): read and raised beside the domain's. The
   * caller passes the higher of the two stored levels as `stored`.
   */
  relayKey?: string;
  /** TLS-8: the connection carries credentials (AUTH): it must reach this level. */
  authMinLevel?: SecLevel;
}

export type StoreProblem = { kind: 'unreadable'; reason: string };

export type Verdict =
  | { kind: 'pass'; stored: SecLevel; raiseTo?: SecLevel; stsWouldRefuse?: string }
  | { kind: 'abandon'; cause: AbandonCause; reason: string; stored?: SecLevel; raiseTo?: SecLevel };

/** Why a connection was abandoned before MAIL FROM (the `cause` label of the abandoned metric). */
export type AbandonCause = 'ratchet' | 'mta_sts' | 'store' | 'auth' | 'protocol';

/**
 * `stored` is the ratchet read (or a store failure). `onStoreError` says what
 * to do when the store cannot tell: `defer` abandons (ST-4), `send` treats the
 * domain as having no level.
 */
export function decide(
  classification: Classification,
  requirement: Requirement,
  stored: RatchetRead | StoreProblem | undefined,
  onStoreError: 'defer' | 'send',
  host: string,
): Verdict {
  const level = classification.level;
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
  const raiseTo = ratchet && level > storedLevel ? level : undefined;
  // TLS-8: credentials never go out below auth_min_level.
  if (requirement.authMinLevel !== undefined && level < requirement.authMinLevel) {
    return {
      kind: 'abandon',
      cause: 'auth',
      stored: storedLevel,
      reason:
        `${requirement.domain}: ${host} offers ${seen}, credentials require ${levelName(requirement.authMinLevel)} ` +
        `(auth_min_level); AUTH not sent`,
      ...(raiseTo !== undefined ? { raiseTo } : {}),
    };
  }
  // STS-7 / STS-8: then MTA-STS.
  const sts = requirement.sts;
  let stsProblem: string | undefined;
  if (sts && sts.mode !== 'none') {
    if (level < SecLevel.TLS_SECURE) stsProblem = `${host} offers ${seen}, MTA-STS requires TLS_SECURE`;
    else if (!isModernTls(classification.protocol))
      stsProblem = `${host} negotiated ${classification.protocol ?? 'unknown TLS'}, MTA-STS requires TLS 1.2 or later`;
  }
  if (stsProblem && sts?.mode === 'enforce') {
    return {
      kind: 'abandon',
      cause: 'mta_sts',
      stored: storedLevel,
      reason: `${requirement.domain}: ${stsProblem} (policy id ${sts.policyId}, mode enforce)`,
      ...(raiseTo !== undefined ? { raiseTo } : {}),
    };
  }
  return {
    kind: 'pass',
    stored: storedLevel,
    ...(raiseTo !== undefined ? { raiseTo } : {}),
    ...(stsProblem ? { stsWouldRefuse: `${requirement.domain}: ${stsProblem} (policy id ${sts?.policyId}, mode testing)` } : {}),
  };
}
