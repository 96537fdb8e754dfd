/**
 * The `mx show` command of the admin CLI (OPS-4): what outbound_mx would do
 * for a domain right now, without sending or writing anything.
 *
 * It prints the plugin's own plan (`planDelivery`, delivery/plan: A-label, MTA-STS
 * policy, MX lookup, filter, cap, testing notes: MX-1 … MX-9, STS-7 … STS-9)
 * computed with the plugin's settings, beside what the plugin cannot show: the
 * cached and the live MTA-STS policy (the one in effect is the cached
 * unexpired one, else the live one, STS-5; the live one is not cached), the
 * stored ratchet level, the policy table rule that applies (POL-3) and the
 * requirement of a connection as outbound_tls computes it (TLS-5, POL-2:
 * max(table minimum, ratchet and MTA-STS enforce unless exempted)), and what
 * a message sent with REQUIRETLS would need (RT-6, ./requiretls). `probe`
 * (./probe) and `explain` (./explain) start from the same report.
 */
import { parseLiteralKey, toULabel } from '../domain';
import { MTA_STS_DISABLED, planDelivery, planSettings, type DeliveryPlan } from '../delivery/plan';
import type { MtaStsPolicy } from '../mta-sts/policy';
import { hiddenPolicyReason, usableEntry } from '../mta-sts/resolver';
import { openPolicyStore, openRatchetStore } from '../state/open';
import type { IniFile } from '../ini';
import type { OutboundMxConfig } from '../config/outbound-mx';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { PolicyRead } from '../mta-sts/store';
import type { RatchetRead } from '../ratchet/store';
import { levelName, type SecLevel } from '../sec-level';
import type { Requirement } from '../tls/decision';
import { plannedRequirement, requiredLevel, type ConnectionContext } from '../tls/requirement';
import { ruleText, type PolicyRule } from '../policy-table/rule';
import type { PolicyTable } from '../policy-table/table';
import { loadMxSettings, loadPolicyTable, waitUntilConnected } from './config';
import { fetchLivePolicy, formatCached, formatLivePolicy, type LivePolicy } from './policy';
import { formatDaneLines, setUpDane, type DaneView } from './dane';
import { requireTlsLines } from './requiretls';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';
import { badDomain, requireKey } from './keys';

export type MxCommand = { kind: 'mx-show'; domain: string };

/** `mx show DOMAIN`; a string is a usage error. */
export function parseMxCommand(line: CommandLine): MxCommand | string {
  const unknown = unknownOption(line);
  if (unknown !== undefined) return unknown;
  const [action, ...args] = line.words;
  if (action === undefined) return 'mx needs show';
  if (action !== 'show') return `unknown mx command "${action}"`;
  if (args.length !== 1 || args[0] === undefined) return 'mx show needs exactly one DOMAIN';
  return badDomain(args[0], { relay: false, literal: true }) ?? { kind: 'mx-show', domain: args[0] };
}

// ---------------------------------------------------------------------------
// What the plugins would do (mx show)

/** Why a cached entry cannot be used (ST-5): `unreadable`, or it holds an `invalid` policy. */
export type UnusableEntry = 'unreadable' | 'invalid';

/**
 * The MTA-STS policy outbound_mx would apply now, as the CLI sees it
 * (read-only). `replaces`: the live policy is the one the plugin fetches to
 * replace an unusable cached entry. `store-unavailable`: an unusable entry and
 * no fresh policy to replace it: the plugin defers under on_store_error=defer.
 */
export type EffectivePolicy =
  | { kind: 'policy'; source: 'cache' | 'live'; id: string; policy: MtaStsPolicy; expiresAt?: number; replaces?: UnusableEntry }
  | { kind: 'none'; reason: string }
  | { kind: 'store-unavailable'; reason: string; domain: string; entry: UnusableEntry; onStoreError: 'defer' | 'send' };

export interface MxReport {
  /** The store key: lowercase A-label, or the address literal. */
  domain: string;
  literal: boolean;
  /** null when MTA-STS does not apply (address literal). */
  sts: { enabled: boolean; cached: PolicyRead; live: LivePolicy | null; effective: EffectivePolicy } | null;
  /** outbound_mx's plan for the domain (delivery/plan), with the policy in effect. */
  plan: DeliveryPlan<EffectivePolicy>;
  ratchet: RatchetRead;
  onStoreError: 'defer' | 'send';
  /** POL-3: the table in force and the domain's rule in it (exact or nearest parent), or null. */
  table: PolicyTable;
  rule: PolicyRule | null;
  /** What a connection to one of the planned MXs must reach, as outbound_tls builds it (tls/requirement). */
  requirement: Requirement;
  /** What outbound_tls knows of such a connection besides the delivery state and the MX. */
  connection: Omit<ConnectionContext, 'state' | 'mxHost' | 'exchange'>;
  /** The level of `requirement` with the stored level; null when the ratchet entry cannot be read and on_store_error=defer (ST-4). */
  required: SecLevel | null;
  /** DANE-1 … DANE-6: the resolver check and what the plan saw of DNSSEC and TLSA records. */
  dane: DaneView;
}

/**
 * STS-5: an unexpired cached policy that still parses wins; else the live one
 * (null: MTA-STS disabled). ST-5, as the plugin's resolver does it: a cached
 * entry that is unreadable or holds an invalid policy is replaced by a fresh
 * live policy; without one, it may hide an enforce policy (`store-unavailable`).
 */
export function effectivePolicy(
  domain: string,
  cached: PolicyRead,
  live: LivePolicy | null,
  onStoreError: 'defer' | 'send',
  now = Date.now(),
): EffectivePolicy {
  const usable = cached.kind === 'none' ? null : usableEntry(cached);
  if (usable?.ok && usable.entry.expiresAt > now) {
    return { kind: 'policy', source: 'cache', id: usable.entry.id, policy: usable.policy, expiresAt: usable.entry.expiresAt };
  }
  if (live === null) return MTA_STS_DISABLED;
  const unusable = usable && !usable.ok ? usable : null;
  if (live.kind === 'policy') {
    return { kind: 'policy', source: 'live', id: live.id, policy: live.policy, ...(unusable ? { replaces: unusable.problem } : {}) };
  }
  if (unusable) {
    const reason = `${hiddenPolicyReason(domain, unusable.why)}; ${live.reason}`;
    return { kind: 'store-unavailable', reason, domain, entry: unusable.problem, onStoreError };
  }
  return { kind: 'none', reason: live.reason };
}

/**
 * Reads the stores and DNS as the plugins would for `domain` (a store key) and
 * plans the delivery with the plugin's own function; writes nothing.
 */
export async function gatherMxReport(
  domain: string,
  tlsSettings: OutboundTlsConfig,
  mx: OutboundMxConfig,
  redisIni: IniFile,
  table: PolicyTable,
): Promise<MxReport> {
  const stores = { dataDir: tlsSettings.dataDir, store: tlsSettings.store, redisIni };
  const ratchetStore = openRatchetStore(stores);
  const policyStore = openPolicyStore(stores);
  try {
    for (const store of [ratchetStore, policyStore]) {
      await waitUntilConnected(store);
    }
    const ratchet = await ratchetStore.get(domain);
    // DANE-1: the resolver check and the plan's DANE dependency, as outbound_mx makes them.
    const { view: dane, dns, dane: daneDeps } = await setUpDane(mx);
    // The store key of a literal is `[2001:db8::1]`; the plan takes it as Haraka hands it over (`[IPv6:…]`).
    const literal = domain.startsWith('[') ? parseLiteralKey(domain) : null;
    let sts: MxReport['sts'] = null;
    if (!literal) {
      const cached = await policyStore.get(domain);
      const live = mx.mtaSts.enabled ? await fetchLivePolicy(domain, mx, dns) : null;
      const effective = mx.mtaSts.enabled ? effectivePolicy(domain, cached, live, tlsSettings.onStoreError) : MTA_STS_DISABLED;
      sts = { enabled: mx.mtaSts.enabled, cached, live, effective };
    }
    const effective = sts?.effective ?? MTA_STS_DISABLED;
    const recipientDomain = literal?.family === 6 ? `[IPv6:${literal.address}]` : domain;
    const plan = await planDelivery(
      recipientDomain,
      { dns, policyFor: () => Promise.resolve(effective), policyTable: table, ...(daneDeps ? { dane: daneDeps } : {}) },
      planSettings(mx, tlsSettings.onStoreError),
    );
    const rule = literal ? null : table.forDomain(domain);
    const connection = { recipientDomain: domain, credentials: false, settings: tlsSettings, table };
    const requirement = reportRequirement(domain, plan, effective, rule, connection);
    const enforced = requirement.ratchetExempt?.domain ? undefined : ratchet;
    return {
      domain,
      literal: literal !== null,
      sts,
      plan,
      ratchet,
      onStoreError: tlsSettings.onStoreError,
      table,
      rule,
      requirement,
      connection,
      required: requiredLevel(requirement, enforced, tlsSettings.onStoreError),
      dane,
    };
  } finally {
    await Promise.all([ratchetStore.close(), policyStore.close()]);
  }
}

/**
 * The requirement of a connection to one of the planned MXs (the plan's
 * delivery state, as outbound_tls reads it); when the plan delivers nowhere,
 * the state it would have left: the policy in effect and the domain's rule.
 */
function reportRequirement(
  domain: string,
  plan: DeliveryPlan<EffectivePolicy>,
  effective: EffectivePolicy,
  rule: PolicyRule | null,
  connection: MxReport['connection'],
): Requirement {
  const exempted = rule?.exempt.includes('mta-sts') && effective.kind === 'policy' && effective.policy.mode === 'enforce';
  const sts = effective.kind === 'policy' ? { mode: effective.policy.mode, policyId: effective.id } : null;
  const state =
    plan.kind === 'deliver'
      ? plan.state
      : {
          domain,
          ...(sts ? { sts: { ...sts, ...(exempted ? { exempted: { outsidePolicy: [] } } : {}) } } : {}),
          ...(rule ? { rule } : {}),
        };
  return plannedRequirement({ ...connection, mxHost: undefined, exchange: domain }, state);
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `label` padded so the values line up. */
export function row(label: string, value: string): string {
  return `${label.padEnd(9)}${value}`;
}

/** How an unusable cached entry is named: `the cached entry is unreadable`. */
const ENTRY_PROBLEM: Readonly<Record<UnusableEntry, string>> = {
  unreadable: 'the cached entry is unreadable',
  invalid: 'the cached entry holds an invalid policy',
};

export function describeEffective(effective: EffectivePolicy): string {
  if (effective.kind === 'none') return `none in effect: ${effective.reason}`;
  if (effective.kind === 'store-unavailable') {
    const problem = `${ENTRY_PROBLEM[effective.entry]} and may hide an enforce policy`;
    if (effective.onStoreError === 'send') {
      return `none usable: ${problem}; on_store_error=send: outbound_mx sends as if no policy were cached (ST-5)`;
    }
    return (
      `none usable: ${problem}: outbound_mx defers mail to ${effective.domain} until a fresh policy is fetched or the entry ` +
      `is purged (haraka-outbound policy purge ${effective.domain}) (ST-5)`
    );
  }
  const { policy, id, source } = effective;
  const from = source === 'cache' ? `cached, expires ${iso(effective.expiresAt ?? 0)}` : 'live, not cached by this command';
  const what =
    policy.mode === 'enforce'
      ? `only MX hosts matching ${policy.mx.map((m) => m.text).join(' ')}; every connection TLS_SECURE with TLS 1.2 or later`
      : policy.mode === 'testing'
        ? 'nothing enforced, what enforce would refuse is logged'
        : 'nothing enforced';
  const replaces = effective.replaces
    ? `; ${ENTRY_PROBLEM[effective.replaces]}: outbound_mx replaces it with this policy at the next delivery (ST-5)`
    : '';
  return `${policy.mode}, id ${id}, ${from}: ${what}${replaces}`;
}

export function describeRatchet(read: RatchetRead): string {
  switch (read.kind) {
    case 'none':
      return 'no level stored (PLAIN)';
    case 'unreadable':
      return `UNREADABLE: ${read.reason}`;
    case 'level': {
      const { level, raisedAt, host } = read.entry;
      const details = [raisedAt === undefined ? '' : `raised ${iso(raisedAt)}`, host === undefined ? '' : `by ${host}`].filter(Boolean);
      return `${levelName(level)}${details.length > 0 ? ` (${details.join(' ')})` : ''}`;
    }
  }
}

/** The `required` line: the level and the parts it comes from (a domain's, or a relay's with `explain`). */
export function describeRequired(report: Pick<MxReport, 'required' | 'requirement' | 'ratchet' | 'rule'>): string {
  if (report.required === null)
    return 'unknown: the ratchet entry is unreadable and on_store_error=defer, so every delivery is deferred (ST-4)';
  const { requirement } = report;
  const why: string[] = [];
  const exempt = requirement.ratchetExempt?.domain || requirement.ratchetExempt?.relay ? ' exempted' : '';
  if (report.ratchet.kind === 'level') why.push(`ratchet ${levelName(report.ratchet.entry.level)}${exempt}`);
  else
    why.push(
      report.ratchet.kind === 'unreadable' ? `ratchet unreadable${exempt || ', on_store_error=send: as PLAIN'}` : 'no ratchet level',
    );
  if (requirement.sts?.mode === 'enforce') why.push(`MTA-STS enforce${requirement.sts.exemptBy ? ' exempted' : ', TLS 1.2 or later'}`);
  if (requirement.minimum) {
    const match = requirement.minimum.match ? ` match=${requirement.minimum.match.join(',')}` : '';
    why.push(`table ${report.rule?.level ?? levelName(requirement.minimum.level)}${match}`);
  }
  return `${levelName(report.required)} (${why.join('; ')})`;
}

/** POL-3: the `rule` line: the rule in force for the domain, or none. */
export function describeRule(report: Pick<MxReport, 'rule' | 'table' | 'domain' | 'literal'>): string {
  if (report.rule) return `${ruleText(report.rule)} (${report.rule.file} line ${report.rule.line})`;
  if (report.literal) return 'none (address literals have no table rule)';
  return `none (no line of ${report.table.file} names ${report.domain} or a parent domain of it)`;
}

/** How an MX is named in the output: its host name, or the address of a literal. */
export function mxName(mx: { host: string | undefined; addresses: string[] }): string {
  return mx.host ?? (mx.addresses[0] as string);
}

/** The `mx` and `note` lines: the plan's MXs and notes, or its failure. */
export function planLines(plan: DeliveryPlan<EffectivePolicy>): string[] {
  switch (plan.kind) {
    case 'null-mx':
      return [row('mx', `PERMANENT FAILURE (${plan.dsn}, bounced at once): ${plan.reason}`)];
    case 'permanent':
      return [row('mx', `PERMANENT FAILURE (${plan.dsn}, bounced): ${plan.reason}`)];
    case 'transient':
      return [row('mx', `TEMPORARY FAILURE (deferred): ${plan.reason}`)];
    case 'deliver': {
      const testing =
        plan.testingWouldNotUse.length > 0 ? [`MTA-STS testing: enforce would not use ${plan.testingWouldNotUse.join(', ')}`] : [];
      return [
        ...plan.mxs.map((mx) =>
          row('mx', `${mx.priority} ${mxName(mx)} [${mx.addresses.join(' ')}]${plan.implicit ? ' (implicit MX)' : ''}`),
        ),
        ...[...plan.notes, ...testing].map((note) => row('note', note)),
      ];
    }
  }
}

/** The lines of `mx show`, in order. */
export function formatMxReport(report: MxReport, now = Date.now()): string[] {
  const lines: string[] = [];
  const uLabel = toULabel(report.domain);
  if (report.literal) lines.push(row('domain', `${report.domain} (address literal: no MX lookup, no MTA-STS, at most TLS_INSECURE)`));
  else lines.push(row('domain', uLabel === report.domain ? report.domain : `${report.domain} (${uLabel})`));
  if (report.sts) {
    const prefix = `${report.domain}: `;
    lines.push(row('cached', formatCached(report.domain, report.sts.cached, now).slice(prefix.length)));
    lines.push(row('live', report.sts.live === null ? 'not looked up (MTA-STS disabled)' : formatLivePolicy(report.sts.live)));
    lines.push(row('policy', describeEffective(report.sts.effective)));
    const { effective, live } = report.sts;
    if (effective.kind === 'policy' && effective.source === 'cache' && live?.kind === 'policy' && live.id !== effective.id) {
      lines.push(row('note', `the live record has a new id (${live.id}): outbound_mx fetches it at its next id check ([mta_sts] recheck)`));
    }
  }
  lines.push(...planLines(report.plan));
  if (!report.literal) lines.push(...formatDaneLines(report.dane, report.plan, report.rule, row));
  lines.push(row('ratchet', describeRatchet(report.ratchet)));
  lines.push(row('rule', describeRule(report)));
  lines.push(row('required', describeRequired(report)));
  // RT-6: what a message sent with REQUIRETLS would need.
  lines.push(...requireTlsLines(report.plan, row));
  return lines;
}

/** Exit status 3 when a stored entry the report read is unreadable. */
export function hasUnreadable(report: MxReport): boolean {
  return report.ratchet.kind === 'unreadable' || report.sts?.cached.kind === 'unreadable';
}

/** `mx show DOMAIN`. */
export async function runMx(command: MxCommand, { configDir, settings: tlsSettings, redisIni, output }: CliContext): Promise<number> {
  const report = await gatherMxReport(
    requireKey(command.domain),
    tlsSettings,
    loadMxSettings(configDir),
    redisIni,
    loadPolicyTable(configDir),
  );
  for (const line of formatMxReport(report)) output.out(line);
  return hasUnreadable(report) ? 3 : 0;
}

export const mxCommand: CliCommand<MxCommand> = { options: {}, parse: parseMxCommand, run: runMx };
