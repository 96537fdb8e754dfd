/**
 * The `explain` command of the admin CLI (POL-3): a destination's requirement
 * part by part, as outbound_tls builds it (tls/requirement): the stored
 * ratchet level, the MTA-STS policy in effect, the policy table rule that
 * matched (and lines naming the destination that are not in force), what the
 * rule exempts, and the level every connection must reach; for a domain,
 * what a message sent with REQUIRETLS would need (RT-6). A domain is read
 * through `mx show`'s report (the plugin's own plan); `relay:<host>` is a hop
 * to that relay (its own level, its rule, auth_min_level). Writes nothing.
 */
import type { IniFile } from '../ini';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';
import { badDomain, requireKey } from './keys';
import type { RatchetRead } from '../ratchet/store';
import { RELAY_KEY_PREFIX } from '../store/keys';
import { openRatchetStore } from '../state/open';
import { ruleLabel, type PolicyRule } from '../policy-table/rule';
import { formatProblem, type PolicyTable, type TableProblem } from '../policy-table/table';
import type { Requirement } from '../tls/decision';
import { connectionRequirement, requiredLevel } from '../tls/requirement';
import { SecLevel, levelName } from '../sec-level';
import { loadMxSettings, loadPolicyTable, waitUntilConnected } from './config';
import { describeEffective, describeRatchet, describeRequired, describeRule, gatherMxReport, row, type MxReport } from './mx';
import { requireTlsLines } from './requiretls';

export type ExplainCommand = { kind: 'explain'; domain: string };

/** `explain DOMAIN|relay:<host>`; a string is a usage error. */
export function parseExplainCommand(line: CommandLine): ExplainCommand | string {
  const unknown = unknownOption(line);
  if (unknown !== undefined) return unknown;
  const [domain, ...rest] = line.words;
  if (domain === undefined || rest.length > 0) return 'explain needs exactly one DOMAIN (or relay:<host>)';
  return badDomain(domain, { relay: true, literal: true }) ?? { kind: 'explain', domain };
}

export const EXEMPTION_NOTE =
  'each connection that passes only by an exemption is logged and counted in outbound_tls_policy_exemptions_total';

/** The parts of a relay hop's requirement (`explain relay:<host>`). */
export interface RelayExplanation {
  key: string;
  table: PolicyTable;
  rule: PolicyRule | null;
  ratchet: RatchetRead;
  requirement: Requirement;
  required: SecLevel | null;
  settings: Pick<OutboundTlsConfig, 'authMinLevel' | 'smartHostRatchet'>;
}

/** Lines of the table that name `key` (or, for a domain, one of its parents) but are not in force. */
export function ignoredLines(table: PolicyTable, key: string): TableProblem[] {
  const names = [key];
  if (!key.startsWith(RELAY_KEY_PREFIX) && !key.startsWith('[')) {
    for (let dot = key.indexOf('.'); dot !== -1; dot = key.indexOf('.', dot + 1)) names.push(key.slice(dot));
  }
  return names.flatMap((name) => table.ignoredFor(name));
}

function ratchetPart(read: RatchetRead, exemptBy: string | undefined, whose: string): string {
  const stored = describeRatchet(read);
  if (exemptBy) return `${stored}: exempted by ${exemptBy}: read and raised by better connections, not required`;
  return read.kind === 'level' && read.entry.level > SecLevel.PLAIN ? `${stored}: required (${whose})` : stored;
}

function tablePart(requirement: Requirement, rule: PolicyRule | null): string {
  const minimum = requirement.minimum;
  if (!rule || !minimum) return 'no rule: nothing beyond the automatic requirement';
  if (rule.level === 'may') return 'may: nothing beyond the automatic requirement';
  const names = minimum.match ? `; the certificate must carry ${minimum.match.join(' or ')} (match=), not only the MX host name` : '';
  return `${rule.level}: ${levelName(minimum.level)}${names}`;
}

/** What exempt=dane does (delivery/plan: no DANE step for the domain), and that a relay hop never has DANE to exempt. */
export const DANE_EXEMPTION_NOTE = {
  domain:
    "exempt=dane: this destination's TLSA records are not looked up and its connections are judged as without DANE " +
    '(MTA-STS and the ratchet apply as they would without DANE)',
  relay: "exempt=dane: nothing to exempt on a relay hop: DANE applies to a recipient domain's MX hosts, never to a relay (POL-4)",
} as const;

/** The exempt line of a rule, and a note on exempt=dane for the kind of hop (`domain` or `relay`). */
export function exemptionLines(rule: PolicyRule | null, hop: 'domain' | 'relay'): string[] {
  if (!rule || rule.exempt.length === 0) return [];
  const lines = [row('exempt', `${rule.exempt.join(', ')}, by ${ruleLabel(rule)}; ${EXEMPTION_NOTE}`)];
  if (rule.exempt.includes('dane')) lines.push(row('note', DANE_EXEMPTION_NOTE[hop]));
  return lines;
}

/** `explain DOMAIN`: from `mx show`'s report. */
export function formatDomainExplanation(report: MxReport): string[] {
  const { requirement, rule } = report;
  const lines = [row('domain', report.domain), row('rule', describeRule(report))];
  for (const problem of ignoredLines(report.table, report.domain)) lines.push(row('ignored', formatProblem(problem)));
  lines.push(row('ratchet', ratchetPart(report.ratchet, requirement.ratchetExempt?.domain, 'TLS-4')));
  if (report.sts) {
    const effective = describeEffective(report.sts.effective);
    const exempted = requirement.sts?.exemptBy;
    const outside = report.plan.kind === 'deliver' && report.plan.exemptedWouldNotUse.length > 0;
    const wouldNotUse =
      outside && report.plan.kind === 'deliver' ? `; enforce would not use ${report.plan.exemptedWouldNotUse.join(', ')}` : '';
    lines.push(row('mta-sts', exempted ? `${effective}: exempted by ${exempted}: not enforced${wouldNotUse}` : effective));
  } else {
    lines.push(row('mta-sts', 'does not apply (address literal)'));
  }
  lines.push(row('table', tablePart(requirement, rule)), ...exemptionLines(rule, 'domain'));
  lines.push(row('required', describeRequired(report)));
  // RT-6: what a message sent with REQUIRETLS would need.
  lines.push(...requireTlsLines(report.plan, row));
  return lines;
}

/** `explain relay:<host>`: a hop to the relay. */
export function formatRelayExplanation(explanation: RelayExplanation): string[] {
  const { key, table, rule, requirement } = explanation;
  const lines = [row('relay', key)];
  lines.push(
    row('rule', rule ? describeRule({ rule, table, domain: key, literal: false }) : `none (no line of ${table.file} names ${key})`),
  );
  for (const problem of ignoredLines(table, key)) lines.push(row('ignored', formatProblem(problem)));
  lines.push(row('ratchet', ratchetPart(explanation.ratchet, requirement.ratchetExempt?.relay, "the relay's own level, TLS-8")));
  lines.push(row('mta-sts', 'never applies to a relay hop (POL-4)'));
  lines.push(row('table', tablePart(requirement, rule)), ...exemptionLines(rule, 'relay'));
  const auth = requirement.authMinLevel ?? explanation.settings.authMinLevel;
  const from = rule?.authMinLevel ? `auth_min_level=${rule.authMinLevel} of the rule` : 'auth_min_level of outbound_tls.ini';
  lines.push(row('auth', `AUTH credentials only at ${levelName(auth)} or better (${from}); never a plain retry`));
  lines.push(row('required', describeRequired({ ...explanation, rule })));
  if (explanation.settings.smartHostRatchet) {
    lines.push(row('note', "the recipient domain's own level applies to relay hops too (smart_host_ratchet=true)"));
  }
  return lines;
}

/** Reads the relay's own level (writes nothing). */
async function explainRelay(key: string, settings: OutboundTlsConfig, redisIni: IniFile, table: PolicyTable): Promise<RelayExplanation> {
  const store = openRatchetStore({ dataDir: settings.dataDir, store: settings.store, redisIni });
  try {
    await waitUntilConnected(store);
    const ratchet = await store.get(key);
    const requirement = connectionRequirement({
      state: undefined,
      recipientDomain: '',
      mxHost: undefined,
      exchange: key.slice(RELAY_KEY_PREFIX.length),
      credentials: true,
      settings,
      table,
    }) as Requirement;
    const enforced = requirement.ratchetExempt?.relay ? undefined : ratchet;
    const required = requiredLevel(requirement, enforced, settings.onStoreError);
    return { key, table, rule: table.forRelay(key), ratchet, requirement, required, settings };
  } finally {
    await store.close();
  }
}

/** `explain DOMAIN|relay:<host>`. Status 3 when a stored entry is unreadable. */
export async function runExplain(command: ExplainCommand, { configDir, settings, redisIni, output }: CliContext): Promise<number> {
  const table = loadPolicyTable(configDir);
  const destination = requireKey(command.domain);
  if (destination.startsWith(RELAY_KEY_PREFIX)) {
    const explanation = await explainRelay(destination, settings, redisIni, table);
    for (const line of formatRelayExplanation(explanation)) output.out(line);
    return explanation.ratchet.kind === 'unreadable' ? 3 : 0;
  }
  const report = await gatherMxReport(destination, settings, loadMxSettings(configDir), redisIni, table);
  for (const line of formatDomainExplanation(report)) output.out(line);
  return report.ratchet.kind === 'unreadable' ? 3 : 0;
}

export const explainCommand: CliCommand<ExplainCommand> = { options: {}, parse: parseExplainCommand, run: runExplain };
