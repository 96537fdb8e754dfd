/**
 * The `mx show` and `probe` commands of the admin CLI (OPS-4): what the
 * plugins would do for a domain right now, without sending anything.
 *
 * `mx show` runs the plugin's own steps with its settings: the A-label (MX-1),
 * the MTA-STS policy in effect (the cached unexpired one, else the live one,
 * STS-5/STS-9), `lookupMx` with the ini's max_mx, address policy and, in
 * enforce mode, the policy filter (MX-3 … MX-9), and the requirement
 * max(ratchet, TLS_SECURE if enforce) (TLS-5).
 *
 * `probe` then connects to every selected MX address with a minimal SMTP
 * client (banner, EHLO, STARTTLS when offered, EHLO, QUIT: never MAIL FROM),
 * classifies each connection as outbound_tls does (TLS-1) and judges it with
 * the plugin's own decision (TLS-2, TLS-4, STS-7). Nothing is written to the
 * stores: a probe never raises the ratchet nor caches a policy.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkAddress } from '../mx/address-policy';
import { decide, type Requirement } from '../tls/decision';
import { createDnsClient } from '../mx/dns-client';
import { toULabel } from '../domain';
import { matchesPolicy, parsePolicy, policyFilter, type MtaStsPolicy } from '../mta-sts/policy';
import { lookupMx, type MxLookupResult } from '../mx/lookup';
import { openPolicyStore, openRatchetStore } from '../store/open';
import type { IniFile, OutboundMxConfig } from '../config/outbound-mx';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { PolicyRead } from '../mta-sts/store';
import type { RatchetRead } from '../ratchet/store';
import { SecLevel, levelName, maxLevel } from '../tls/sec-level';
import type { Classification } from '../tls/classify';
import { probeAddress, type ProbeOutcome } from './smtp-probe';
import { loadMxSettings, waitUntilConnected } from './config';
import { fetchLivePolicy, formatCached, formatLivePolicy, type LivePolicy } from './policy';

export const DEFAULT_PROBE_TIMEOUT_S = 10;
/** Exit status of `probe` when no MX meets the requirement (or there is no MX to probe). */
export const EXIT_NONE_MEETS = 4;

export type MxCommand = { kind: 'mx-show'; domain: string } | { kind: 'probe'; domain: string; timeoutMs: number };

export interface MxOutput {
  out(line: string): void;
  err(line: string): void;
}

/**
 * `mx show DOMAIN` and `probe [--timeout SECONDS] DOMAIN`; `flags` are the
 * options given, `timeout` the value of `--timeout`. A string is a usage error.
 */
export function parseMxCommand(group: 'mx' | 'probe', words: string[], flags: ReadonlySet<string>, timeout?: string): MxCommand | string {
  const allowed = group === 'probe' ? ['--timeout'] : [];
  const unknownFlag = [...flags].find((flag) => !allowed.includes(flag));
  if (unknownFlag !== undefined) return `unknown option ${unknownFlag}`;
  if (group === 'mx') {
    const [action, ...args] = words;
    if (action === undefined) return 'mx needs show';
    if (action !== 'show') return `unknown mx command "${action}"`;
    if (args.length !== 1 || args[0] === undefined) return 'mx show needs exactly one DOMAIN';
    return { kind: 'mx-show', domain: args[0] };
  }
  if (words.length !== 1 || words[0] === undefined) return 'probe needs exactly one DOMAIN';
  let seconds = DEFAULT_PROBE_TIMEOUT_S;
  if (timeout !== undefined) {
    seconds = /^\d+(?:\.\d+)?$/.test(timeout.trim()) ? Number(timeout) : NaN;
    if (!(seconds >= 0.1 && seconds <= 300)) return `--timeout ${timeout}: expected seconds between 0.1 and 300`;
  }
  return { kind: 'probe', domain: words[0], timeoutMs: Math.round(seconds * 1000) };
}

// ---------------------------------------------------------------------------
// What the plugins would do (mx show)

/** The MTA-STS policy outbound_mx would apply now. */
export type EffectivePolicy =
  { kind: 'policy'; source: 'cache' | 'live'; id: string; policy: MtaStsPolicy; expiresAt?: number } | { kind: 'none'; reason: string };

/** One MX as outbound_mx hands it to Haraka; `host` is undefined for an address literal (MX-2). */
export interface SelectedMx {
  host: string | undefined;
  priority: number;
  addresses: string[];
}

export type Selection =
  | { kind: 'deliver'; mxs: SelectedMx[]; implicit: boolean; notes: string[] }
  | { kind: 'null-mx'; reason: string }
  | { kind: 'permanent'; dsn: string; reason: string }
  | { kind: 'transient'; reason: string };

export interface MxReport {
  /** The store key: lowercase A-label, or the address literal. */
  domain: string;
  literal: boolean;
  /** null when MTA-STS does not apply (address literal). */
  sts: { enabled: boolean; cached: PolicyRead; live: LivePolicy | null; effective: EffectivePolicy } | null;
  selection: Selection;
  ratchet: RatchetRead;
  onStoreError: 'defer' | 'send';
  /** max(ratchet, TLS_SECURE if enforce); null when the ratchet entry cannot be read and on_store_error=defer (ST-4). */
  required: SecLevel | null;
}

/** STS-5: an unexpired cached policy that still parses wins; else the live one. */
export function effectivePolicy(cached: PolicyRead, live: LivePolicy | null, now = Date.now()): EffectivePolicy {
  if (cached.kind === 'entry' && cached.entry.expiresAt > now) {
    const parsed = parsePolicy(cached.entry.text);
    if (parsed.ok)
      return { kind: 'policy', source: 'cache', id: cached.entry.id, policy: parsed.policy, expiresAt: cached.entry.expiresAt };
  }
  if (live === null) return { kind: 'none', reason: 'MTA-STS is disabled ([mta_sts] enabled=false)' };
  if (live.kind === 'policy') return { kind: 'policy', source: 'live', id: live.id, policy: live.policy };
  return { kind: 'none', reason: live.reason };
}

/** TLS-5: max(stored level, TLS_SECURE when the policy in effect is enforce). */
export function requiredLevel(ratchet: RatchetRead, enforce: boolean, onStoreError: 'defer' | 'send'): SecLevel | null {
  if (ratchet.kind === 'unreadable' && onStoreError === 'defer') return null;
  const stored = ratchet.kind === 'level' ? ratchet.entry.level : SecLevel.PLAIN;
  return maxLevel(stored, enforce ? SecLevel.TLS_SECURE : SecLevel.PLAIN);
}

function isEnforce(report: Pick<MxReport, 'sts'>): boolean {
  return report.sts?.effective.kind === 'policy' && report.sts.effective.policy.mode === 'enforce';
}

/** Reads the stores and DNS as the plugins would for `domain` (a store key); writes nothing. */
export async function gatherMxReport(
  domain: string,
  tlsSettings: OutboundTlsConfig,
  mx: OutboundMxConfig,
  redisIni: IniFile,
): Promise<MxReport> {
  const stores = { dataDir: tlsSettings.dataDir, store: tlsSettings.store, redisIni };
  const ratchetStore = openRatchetStore(stores);
  const policyStore = openPolicyStore(stores);
  try {
    for (const store of [ratchetStore, policyStore]) {
      await waitUntilConnected(store);
    }
    const ratchet = await ratchetStore.get(domain);
    const base = { domain, ratchet, onStoreError: tlsSettings.onStoreError };
    if (domain.startsWith('[')) {
      // The store key of a literal: `[192.0.2.1]` or `[2001:db8::1]` (MX-2).
      const address = domain.slice(1, -1);
      if (!domain.endsWith(']') || net.isIP(address) === 0) throw new Error(`bad DOMAIN: "${domain}" is not an address literal`);
      const verdict = checkAddress(mx.addressPolicy, address);
      const selection: Selection = verdict.allowed
        ? { kind: 'deliver', mxs: [{ host: undefined, priority: 0, addresses: [address] }], implicit: false, notes: [] }
        : { kind: 'transient', reason: `address literal refused: ${verdict.reason}` };
      return { ...base, literal: true, sts: null, selection, required: requiredLevel(ratchet, false, tlsSettings.onStoreError) };
    }
    const dns = createDnsClient(mx.dns);
    const cached = await policyStore.get(domain);
    const live = mx.mtaSts.enabled ? await fetchLivePolicy(domain, mx, dns) : null;
    const effective = mx.mtaSts.enabled ? effectivePolicy(cached, live) : effectivePolicy({ kind: 'none' }, null);
    const enforce = effective.kind === 'policy' && effective.policy.mode === 'enforce';
    const result: MxLookupResult = await lookupMx(domain, dns, {
      maxMx: mx.maxMx,
      maxMxRecords: mx.maxMxRecords,
      maxAddressesPerMx: mx.maxAddressesPerMx,
      addressPolicy: mx.addressPolicy,
      ...(enforce && effective.kind === 'policy' ? { filter: policyFilter(domain, effective.id, effective.policy) } : {}),
    });
    const selection: Selection = result.kind === 'deliver' ? { ...result, notes: [...result.notes] } : result;
    if (selection.kind === 'deliver' && effective.kind === 'policy' && effective.policy.mode === 'testing') {
      const outside = selection.mxs.filter((m) => m.host !== undefined && !matchesPolicy(effective.policy, m.host)).map((m) => m.host);
      if (outside.length > 0) selection.notes.push(`MTA-STS testing: enforce would not use ${outside.join(', ')}`);
    }
    return {
      ...base,
      literal: false,
      sts: { enabled: mx.mtaSts.enabled, cached, live, effective },
      selection,
      required: requiredLevel(ratchet, enforce, tlsSettings.onStoreError),
    };
  } finally {
    await Promise.all([ratchetStore.close(), policyStore.close()]);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `label` padded so the values line up. */
function row(label: string, value: string): string {
  return `${label.padEnd(9)}${value}`;
}

function describeEffective(effective: EffectivePolicy): string {
  if (effective.kind === 'none') return `none in effect: ${effective.reason}`;
  const { policy, id, source } = effective;
  const from = source === 'cache' ? `cached, expires ${iso(effective.expiresAt ?? 0)}` : 'live, not cached by this command';
  const what =
    policy.mode === 'enforce'
      ? `only MX hosts matching ${policy.mx.map((m) => m.text).join(' ')}; every connection TLS_SECURE with TLS 1.2 or later`
      : policy.mode === 'testing'
        ? 'nothing enforced, what enforce would refuse is logged'
        : 'nothing enforced';
  return `${policy.mode}, id ${id}, ${from}: ${what}`;
}

function describeRatchet(read: RatchetRead): string {
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

export function describeRequired(report: MxReport): string {
  if (report.required === null)
    return 'unknown: the ratchet entry is unreadable and on_store_error=defer, so every delivery is deferred (ST-4)';
  const why: string[] = [];
  if (report.ratchet.kind === 'level') why.push(`ratchet ${levelName(report.ratchet.entry.level)}`);
  else why.push(report.ratchet.kind === 'unreadable' ? 'ratchet unreadable, on_store_error=send: as PLAIN' : 'no ratchet level');
  if (isEnforce(report)) why.push('MTA-STS enforce, TLS 1.2 or later');
  return `${levelName(report.required)} (${why.join('; ')})`;
}

function mxName(mx: SelectedMx): string {
  return mx.host ?? (mx.addresses[0] as string);
}

function selectionLines(report: MxReport): string[] {
  const s = report.selection;
  switch (s.kind) {
    case 'null-mx':
      return [row('mx', `PERMANENT FAILURE (5.1.10, bounced at once): ${s.reason}`)];
    case 'permanent':
      return [row('mx', `PERMANENT FAILURE (${s.dsn}, bounced): ${s.reason}`)];
    case 'transient':
      return [row('mx', `TEMPORARY FAILURE (deferred): ${s.reason}`)];
    case 'deliver':
      return [
        ...s.mxs.map((mx) => row('mx', `${mx.priority} ${mxName(mx)} [${mx.addresses.join(' ')}]${s.implicit ? ' (implicit MX)' : ''}`)),
        ...s.notes.map((note) => row('note', note)),
      ];
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
  lines.push(...selectionLines(report));
  lines.push(row('ratchet', describeRatchet(report.ratchet)));
  lines.push(row('required', describeRequired(report)));
  return lines;
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
  mx: SelectedMx;
  address: string;
  outcome: ProbeOutcome;
  /** The level outbound_tls would see (after a TLS-3 plain retry when STARTTLS failed); absent when none. */
  classification?: Classification;
  meets: boolean;
  verdict: string;
}

/**
 * Judges one probed connection with the plugin's own decision (TLS-2, TLS-4,
 * STS-7): the level and TLS version against the ratchet and the policy.
 */
export function judge(
  report: MxReport,
  host: string,
  outcome: ProbeOutcome,
  plainRetry: boolean,
): { meets: boolean; verdict: string; classification?: Classification } {
  if (outcome.kind === 'error') return { meets: false, verdict: 'not usable now' };
  let classification: Classification;
  if (outcome.kind === 'starttls-failed') {
    if (!plainRetry) return { meets: false, verdict: 'not usable: plain_retry=false, Haraka moves to the next MX' };
    classification = { level: SecLevel.PLAIN, reason: `${outcome.reason}; Haraka retries this MX once without STARTTLS (TLS-3)` };
  } else {
    classification = outcome.classification;
  }
  const effective = report.sts?.effective;
  const requirement: Requirement = {
    domain: report.domain,
    ratchet: true,
    ...(effective?.kind === 'policy' ? { sts: { mode: effective.policy.mode, policyId: effective.id } } : {}),
  };
  const verdict = decide(classification, requirement, report.ratchet, report.onStoreError, host);
  if (verdict.kind === 'abandon') return { meets: false, verdict: `below the requirement: ${verdict.reason}`, classification };
  const extras = [
    verdict.raiseTo !== undefined ? `a delivery would raise the stored level to ${levelName(verdict.raiseTo)}` : '',
    verdict.stsWouldRefuse ? `MTA-STS testing: enforce would refuse (${verdict.stsWouldRefuse})` : '',
  ].filter(Boolean);
  return { meets: true, verdict: `meets the requirement${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`, classification };
}

export function formatProbeLine(line: ProbeLine): string {
  const where = `${mxName(line.mx)} [${line.address}]`;
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

// ---------------------------------------------------------------------------
// The commands

export async function runMx(
  command: MxCommand,
  configDir: string,
  tlsSettings: OutboundTlsConfig,
  redisIni: IniFile,
  key: (input: string) => string,
  output: MxOutput,
): Promise<number> {
  const domain = key(command.domain);
  const mxSettings = loadMxSettings(configDir);
  const report = await gatherMxReport(domain, tlsSettings, mxSettings, redisIni);
  const unreadable = report.ratchet.kind === 'unreadable' || report.sts?.cached.kind === 'unreadable';
  if (command.kind === 'mx-show') {
    for (const line of formatMxReport(report)) output.out(line);
    return unreadable ? 3 : 0;
  }

  // probe: the requirement first, then one line per MX address.
  const header = formatMxReport(report).filter((line) => /^(domain|policy|note|ratchet|required) /.test(line));
  for (const line of header) output.out(line);
  const selection = report.selection;
  if (selection.kind !== 'deliver') {
    for (const line of selectionLines(report)) output.out(line);
    output.out(`no MX to probe: ${command.domain} would not be delivered now`);
    return EXIT_NONE_MEETS;
  }
  const ehloName = ehloNameFor(configDir);
  const targets = selection.mxs.flatMap((mx) => mx.addresses.map((address) => ({ mx, address })));
  const lines = await Promise.all(
    targets.map(async ({ mx, address }): Promise<ProbeLine> => {
      const outcome = await probeAddress({ host: mx.host, address, port: mxSettings.mxPort }, ehloName, command.timeoutMs);
      return { mx, address, outcome, ...judge(report, mxName(mx), outcome, tlsSettings.plainRetry) };
    }),
  );
  for (const line of lines) output.out(formatProbeLine(line));
  const meeting = selection.mxs.filter((mx) => lines.some((line) => line.mx === mx && line.meets));
  const required = report.required === null ? 'unknown' : levelName(report.required);
  output.out(`${meeting.length} of ${selection.mxs.length} MX hosts meet the requirement (${required})`);
  return meeting.length > 0 ? 0 : EXIT_NONE_MEETS;
}
