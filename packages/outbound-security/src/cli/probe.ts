/**
 * The `probe` command of the admin CLI (OPS-4): connects to every MX address
 * of `mx show`'s plan with a minimal SMTP client (banner, EHLO, STARTTLS when
 * offered, EHLO, QUIT: never MAIL FROM), classifies each connection as
 * outbound_tls does (TLS-1) and judges it with the plugin's own requirement
 * and decision (TLS-2, TLS-4, STS-7, POL-2; the table rule is named, POL-3);
 * a host with TLSA records is checked against them as the guard checks it
 * (DANE-4, DANE-6). Beside each verdict, what a message sent with REQUIRETLS
 * would meet there (RT-6, ./requiretls): REQUIRETLS advertised after STARTTLS,
 * and the guard's decision with a REQUIRETLS message's requirement.
 * Nothing is written to the stores: a probe never raises the ratchet nor
 * caches a policy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PlannedMx } from '../delivery/plan';
import type { Classification, TlsObservation } from '../tls/classify';
import { decideConnection, type ConnectionRatchet } from '../delivery/connection';
import { plannedRequirement } from '../tls/requirement';
import { SecLevel, levelName } from '../sec-level';
import { loadMxSettings, loadPolicyTable } from './config';
import { formatMxReport, gatherMxReport, mxName, planLines, type MxReport } from './mx';
import { probeAddress, type ProbeOutcome } from './smtp-probe';
import { REQUIRETLS_LABEL, formatRequireTlsProbe, judgeRequireTls, requireTlsSummary, type RequireTlsProbe } from './requiretls';
import { optionValue, unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';
import { badDomain, requireKey } from './keys';

export const DEFAULT_PROBE_TIMEOUT_S = 10;
/** Exit status of `probe` when no MX meets the requirement (or there is no MX to probe). */
export const EXIT_NONE_MEETS = 4;

export type ProbeCommand = { kind: 'probe'; domain: string; timeoutMs: number };

const PROBE_OPTIONS = { timeout: { type: 'string', value: 'a number of seconds' } } as const;

/** `probe [--timeout SECONDS] DOMAIN`; a string is a usage error. */
export function parseProbeCommand(line: CommandLine): ProbeCommand | string {
  const unknown = unknownOption(line, PROBE_OPTIONS);
  if (unknown !== undefined) return unknown;
  const [domain, ...rest] = line.words;
  if (domain === undefined || rest.length > 0) return 'probe needs exactly one DOMAIN';
  const timeout = optionValue(line, 'timeout');
  let seconds = DEFAULT_PROBE_TIMEOUT_S;
  if (timeout !== undefined) {
    seconds = /^\d+(?:\.\d+)?$/.test(timeout.trim()) ? Number(timeout) : NaN;
    if (!(seconds >= 0.1 && seconds <= 300)) return `--timeout ${timeout}: expected seconds between 0.1 and 300`;
  }
  return badDomain(domain, { relay: false, literal: true }) ?? { kind: 'probe', domain, timeoutMs: Math.round(seconds * 1000) };
}

/** The EHLO name: Haraka's `config/me`, else this machine's host name. */
export function ehloNameFor(configDir: string): string {
  let name = '';
  try {
    name = (fs.readFileSync(path.join(path.resolve(configDir), 'me'), 'utf8').split(/\r?\n/)[0] ?? '').trim();
  } catch {
    // no config/me: Haraka uses the host name too
  }
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(name)) name = os.hostname();
  return /^[A-Za-z0-9.-]{1,253}$/.test(name) ? name : 'localhost';
}

export interface ProbeLine {
  mx: PlannedMx;
  address: string;
  outcome: ProbeOutcome;
  /** The level outbound_tls would see (after a TLS-3 plain retry when STARTTLS failed); absent when none. */
  classification?: Classification;
  meets: boolean;
  verdict: string;
  /** RT-6: what a message sent with REQUIRETLS would meet at this address. */
  requireTls: RequireTlsProbe;
}

/** The ratchet as the report read it, without `raise`: a probe never raises. */
function readOnlyRatchet(report: MxReport): ConnectionRatchet {
  return {
    description: 'the ratchet as read for this report',
    get: (key: string) => Promise.resolve(key === report.domain ? report.ratchet : ({ kind: 'none' } as const)),
  };
}

/**
 * Judges one probed connection with the plugin's own requirement and decision
 * (TLS-2, TLS-4, STS-7, POL-2): the level, TLS version and names against the
 * ratchet, the policy and the table rule. `mx` is the planned MX probed.
 * A host with TLSA records is judged as the connection guard judges it
 * (DANE-3, DANE-4): its chain against the records first; a match is
 * TLS_SECURE, a mismatch or no TLS abandons under mode=on (observe: noted),
 * and a failed STARTTLS gets no plain retry under mode=on.
 */
export async function judge(
  report: MxReport,
  mx: PlannedMx,
  outcome: ProbeOutcome,
  plainRetry: boolean,
): Promise<{ meets: boolean; verdict: string; classification?: Classification }> {
  const host = mxName(mx);
  if (outcome.kind === 'error') return { meets: false, verdict: 'not usable now' };
  // What outbound_tls would require of this connection (the plan's delivery state, this MX host).
  const requirement =
    report.plan.kind === 'deliver'
      ? plannedRequirement({ ...report.connection, mxHost: mx.host, exchange: host }, report.plan.state)
      : report.requirement;
  let classification: Classification;
  let observed: TlsObservation;
  if (outcome.kind === 'starttls-failed') {
    if (mx.host !== undefined && requirement.dane?.mode === 'on') {
      return { meets: false, verdict: `not usable: ${outcome.reason}; a host with TLSA records is never retried without TLS (DANE-3)` };
    }
    if (!plainRetry) return { meets: false, verdict: 'not usable: plain_retry=false, Haraka moves to the next MX' };
    classification = { level: SecLevel.PLAIN, reason: `${outcome.reason}; Haraka retries this MX once without STARTTLS (TLS-3)` };
    observed = { encrypted: false };
  } else {
    classification = outcome.classification;
    observed = outcome.observation;
  }
  // The connection path of outbound_tls's guard, over what the report read of the ratchet; nothing is raised.
  const decision = await decideConnection(
    { requirement, observed, mxHost: mx.host, where: host, classification },
    { ratchet: readOnlyRatchet(report), onStoreError: report.onStoreError },
  );
  const { verdict, dane } = decision;
  classification = decision.classification;
  if (verdict.kind === 'abandon' && verdict.cause === 'dane' && dane?.refuse !== undefined) {
    const result = dane.check.kind === 'refused' ? dane.check.result : 'mismatch';
    return { meets: false, verdict: `DANE ${result}: abandoned before MAIL FROM: ${dane.refuse}`, classification };
  }
  if (verdict.kind === 'abandon') return { meets: false, verdict: `below the requirement: ${verdict.reason}`, classification };
  const extras = [
    dane?.note ?? '',
    verdict.raiseTo !== undefined ? `a delivery would raise the stored level to ${levelName(verdict.raiseTo)}` : '',
    verdict.stsWouldRefuse ? `MTA-STS testing: enforce would refuse (${verdict.stsWouldRefuse})` : '',
    ...(verdict.exemptions ?? []).map(
      (use) => `only by exempt=${use.exemption} of policy table rule ${use.rule}: ${use.waived} not required`,
    ),
  ].filter(Boolean);
  return { meets: true, verdict: `meets the requirement${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`, classification };
}

/** The lines of one address: what was seen and the verdict, then what a REQUIRETLS message would meet (RT-6). */
export function formatProbeLines(line: ProbeLine): string[] {
  const where = `${mxName(line.mx)} [${line.address}]`;
  return [formatProbeLine(where, line), formatRequireTlsProbe(where, line.requireTls)];
}

function formatProbeLine(where: string, line: ProbeLine): string {
  const o = line.outcome;
  let seen: string;
  const c = line.classification;
  if (o.kind === 'error') seen = `ERROR (${o.reason})`;
  else if (c === undefined) seen = `STARTTLS FAILED (${o.kind === 'starttls-failed' ? o.reason : 'unknown'})`;
  else {
    const note = o.kind === 'classified' ? o.note : undefined;
    const details = [c.level === SecLevel.PLAIN && note ? note : c.reason, c.protocol ?? ''].filter(Boolean);
    seen = `${levelName(c.level)} (${details.join(', ')})`;
    if (note && c.level !== SecLevel.PLAIN) seen += ` [${note}]`;
  }
  return `${where}: ${seen}: ${line.verdict}`;
}

/** `probe [--timeout S] DOMAIN`: the requirement first, then one line per MX address, then the count. */
export async function runProbe(command: ProbeCommand, { configDir, settings: tlsSettings, redisIni, output }: CliContext): Promise<number> {
  const mxSettings = loadMxSettings(configDir);
  const report = await gatherMxReport(requireKey(command.domain), tlsSettings, mxSettings, redisIni, loadPolicyTable(configDir));
  const labels = ['domain', 'policy', 'note', 'dane', 'dnssec', 'tlsa', 'ratchet', 'rule', 'required', REQUIRETLS_LABEL];
  const header = formatMxReport(report).filter((line) => labels.some((label) => line.startsWith(`${label} `)));
  for (const line of header) output.out(line);
  const plan = report.plan;
  if (plan.kind !== 'deliver') {
    for (const line of planLines(plan)) output.out(line);
    output.out(`no MX to probe: ${command.domain} would not be delivered now`);
    return EXIT_NONE_MEETS;
  }
  const ehloName = ehloNameFor(configDir);
  const targets = plan.mxs.flatMap((mx) => mx.addresses.map((address) => ({ mx, address })));
  const lines = await Promise.all(
    targets.map(async ({ mx, address }): Promise<ProbeLine> => {
      const match = report.requirement.minimum?.match;
      const target = { host: mx.host, address, port: mxSettings.mxPort, ...(match ? { match } : {}) };
      const outcome = await probeAddress(target, ehloName, command.timeoutMs);
      // RT-6: a second decision with a REQUIRETLS message's requirement; the verdict above stays as it is.
      const requireTls = await judgeRequireTls(
        { state: plan.state, connection: report.connection, mx, host: mxName(mx), outcome },
        { ratchet: readOnlyRatchet(report), onStoreError: report.onStoreError },
      );
      return { mx, address, outcome, requireTls, ...(await judge(report, mx, outcome, tlsSettings.plainRetry)) };
    }),
  );
  for (const line of lines) for (const text of formatProbeLines(line)) output.out(text);
  const meeting = plan.mxs.filter((mx) => lines.some((line) => line.mx === mx && line.meets));
  const required = report.required === null ? 'unknown' : levelName(report.required);
  output.out(`${meeting.length} of ${plan.mxs.length} MX hosts meet the requirement (${required})`);
  output.out(requireTlsSummary(plan.mxs, lines));
  return meeting.length > 0 ? 0 : EXIT_NONE_MEETS;
}

export const probeCommand: CliCommand<ProbeCommand> = { options: PROBE_OPTIONS, parse: parseProbeCommand, run: runProbe };
