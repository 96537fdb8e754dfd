/**
 * What one outbound connection must reach (TLS-5, TLS-8, POL-2, POL-4), before
 * anything is read from the stores: one function for outbound_tls's guard and
 * the CLI's `probe`, so what the CLI judges is what the plugin enforces.
 *
 * - outbound_mx planned the message (its delivery state): the recipient
 *   domain's ratchet and MTA-STS policy, and the domain's table rule (the one
 *   the plan saw): its minimum, `match=` names and exemptions.
 * - another plugin chose the route (a relay): the relay's own ratchet key and
 *   its `relay:<host>` rule (minimum, `match=`, `auth_min_level`, its
 *   exemptions); the recipient domain's ratchet too unless
 *   smart_host_ratchet=false, exempted only by the domain's own rule. The
 *   domain's minimum and MTA-STS never apply to a relay hop: they name the
 *   recipient's MX hosts, not the relay.
 */
import type { DeliveryState } from '../tls/delivery-state';
import { toALabel } from '../domain';
import { relayKey } from '../store/keys';
import { TABLE_LEVELS, type PolicyRule } from '../policy-table/rule';
import { brokenLineReason, type PolicyTableLookup } from '../policy-table/table';
import type { RatchetRead } from '../ratchet/store';
import type { Requirement, TableMinimum } from './decision';
import { SecLevel, maxLevel } from '../sec-level';
import { mxSetAuthentication } from './requiretls';

export interface ConnectionContext {
  /** outbound_mx's plan for the message, when it answered get_mx. */
  state: DeliveryState | undefined;
  /** The recipient domain as Haraka hands it over (`hmail.todo.domain`). */
  recipientDomain: string;
  /** The MX host name of the connection (undefined for a bare address) and the address or name connected to. */
  mxHost: string | undefined;
  exchange: string;
  /** TLS-8: the route carries AUTH credentials. */
  credentials: boolean;
  settings: { authMinLevel: SecLevel; smartHostRatchet: boolean };
  table: PolicyTableLookup;
  /** RT-2, RT-4: the message was received with REQUIRETLS. */
  requireTls?: boolean;
}

/** The hop's minimum from a rule, for the decision. */
function minimumOf(rule: PolicyRule): TableMinimum {
  const minimum: TableMinimum = { level: rule.minimum, rule: rule.label };
  if (rule.match.length > 0) minimum.match = rule.match;
  return minimum;
}

/** The label of `rule` when it exempts `part` (logged at each use). */
function exempts(rule: PolicyRule | null | undefined, part: 'ratchet' | 'mta-sts'): string | undefined {
  return rule?.exempt.includes(part) ? rule.label : undefined;
}

/** The requirement of one connection; null: nothing to check (no plan, no relay key, no ratchet). */
export function connectionRequirement(ctx: ConnectionContext): Requirement | null {
  return ctx.state ? plannedRequirement(ctx, ctx.state) : relayRequirement(ctx);
}

/** The requirement of a connection for a message outbound_mx planned (its delivery state). */
export function plannedRequirement(ctx: Omit<ConnectionContext, 'state'>, state: DeliveryState): Requirement {
  const rule = state.rule;
  const requirement: Requirement = { domain: state.domain, ratchet: true };
  if (state.sts) {
    const { mode, policyId, exempted } = state.sts;
    const exemptBy = exempted ? exempts(rule, 'mta-sts') : undefined;
    const outsidePolicy = exempted !== undefined && ctx.mxHost !== undefined && exempted.outsidePolicy.includes(ctx.mxHost);
    requirement.sts = { mode, policyId, ...(exemptBy ? { exemptBy } : {}), ...(outsidePolicy ? { outsidePolicy } : {}) };
  }
  if (ctx.credentials) requirement.authMinLevel = ctx.settings.authMinLevel;
  // OPS-8: host names come from DNS: `constructor` or `__proto__` must not read an inherited property.
  const daneHost = state.dane && ctx.mxHost && Object.hasOwn(state.dane.hosts, ctx.mxHost) ? state.dane.hosts[ctx.mxHost] : undefined;
  if (state.dane && daneHost) requirement.dane = { ...daneHost, mode: state.dane.mode };
  if (rule) {
    requirement.minimum = minimumOf(rule);
    const domainExempt = exempts(rule, 'ratchet');
    if (domainExempt) requirement.ratchetExempt = { domain: domainExempt };
  }
  if (ctx.requireTls) requirement.requireTls = { mxSet: mxSetAuthentication(state, ctx.mxHost) };
  return requirement;
}

/**
 * RPT-4, RPT-7: the requirement of a TLS report message's connection. RFC 8460
 * §5.3 delivers reports "despite any TLS-related failures" of the recipient
 * domain, so its MTA-STS policy, its DANE records and its ratchet are waived;
 * everything that protects more than this message stays: the relay's own
 * ratchet key and rules (POL-4), `auth_min_level` for credentials (TLS-8) and
 * the admin's table minimum.
 */
export function waiveRecipientPolicy(requirement: Requirement): Requirement {
  const waived: Requirement = { ...requirement, ratchet: false };
  delete waived.sts;
  delete waived.dane;
  delete waived.ratchetExempt;
  if (requirement.ratchetExempt?.relay) waived.ratchetExempt = { relay: requirement.ratchetExempt.relay };
  return waived;
}

/** RT-5: how the log and the exemption count name what waived a domain's ratchet for `TLS-Required: No`. */
export const TLS_REQUIRED_NO_WAIVER = "the message's TLS-Required: No header (RT-5)";

/**
 * RT-5: the requirement of a connection for a message with `TLS-Required: No`
 * (and without REQUIRETLS): the recipient domain's MTA-STS and DANE waived,
 * its ratchet read and raised but not enforced (a better connection still
 * raises it; nothing lowers it); the relay's ratchet and rules, TLS-8 and the
 * table minimum stay.
 */
export function waiveForTlsRequiredNo(requirement: Requirement): Requirement {
  const waived = waiveRecipientPolicy(requirement);
  if (!requirement.ratchet) return waived;
  return { ...waived, ratchet: true, ratchetExempt: { ...waived.ratchetExempt, domain: TLS_REQUIRED_NO_WAIVER } };
}

function relayRequirement(ctx: ConnectionContext): Requirement | null {
  const name = toALabel(ctx.recipientDomain);
  const domainRatchet = name.ok && ctx.settings.smartHostRatchet;
  const domainRule = name.ok && domainRatchet ? ctx.table.forDomain(name.aLabel) : null;
  const relay = relayKey(ctx.mxHost ?? ctx.exchange);
  const relayRule = relay ? ctx.table.forRelay(relay) : null;
  // POL-5: a broken line for the relay, or for the recipient domain, holds the hop back until it is fixed.
  const broken = (relay ? ctx.table.brokenForRelay?.(relay) : null) ?? (name.ok ? ctx.table.brokenForDomain?.(name.aLabel) : null);
  if (!relay && !domainRatchet && !broken && !ctx.requireTls) return null;
  const requirement: Requirement = { domain: name.ok ? name.aLabel : (relay as string), ratchet: domainRatchet };
  if (broken) requirement.brokenRule = brokenLineReason(broken);
  if (relay) requirement.relayKey = relay;
  if (ctx.credentials) {
    requirement.authMinLevel = relayRule?.authMinLevel ? TABLE_LEVELS[relayRule.authMinLevel] : ctx.settings.authMinLevel;
  }
  if (relayRule) requirement.minimum = minimumOf(relayRule);
  const domainExempt = exempts(domainRule, 'ratchet');
  const relayExempt = exempts(relayRule, 'ratchet');
  if (domainExempt || relayExempt) {
    const ratchetExempt: Requirement['ratchetExempt'] = {};
    if (domainExempt) ratchetExempt.domain = domainExempt;
    if (relayExempt) ratchetExempt.relay = relayExempt;
    requirement.ratchetExempt = ratchetExempt;
  }
  // RT-4: a relay route is the admin's configuration (nothing to authenticate in DNS); the rest of RT-2 holds.
  if (ctx.requireTls) {
    requirement.requireTls = {
      mxSet: { ok: true, by: `relay route to ${relay ?? ctx.exchange} (configured by the admin)` },
      ...(relayRule?.requireTlsRelax ? { relaxedBy: relayRule.label } : {}),
    };
  }
  return requirement;
}

/**
 * The level a connection must reach before any is made (the CLI's `mx show`,
 * `explain`, `probe`): max(stored level of the enforced ratchet keys,
 * TLS_SECURE for an MTA-STS enforce policy not exempted, the table minimum).
 * null when the stored level cannot be read and on_store_error=defer (ST-4).
 */
export function requiredLevel(
  requirement: Requirement,
  enforced: RatchetRead | undefined,
  onStoreError: 'defer' | 'send',
): SecLevel | null {
  if (enforced?.kind === 'unreadable' && onStoreError === 'defer') return null;
  const stored = enforced?.kind === 'level' ? enforced.entry.level : SecLevel.PLAIN;
  const sts = requirement.sts?.mode === 'enforce' && !requirement.sts.exemptBy ? SecLevel.TLS_SECURE : SecLevel.PLAIN;
  return maxLevel(maxLevel(stored, sts), requirement.minimum?.level ?? SecLevel.PLAIN);
}
