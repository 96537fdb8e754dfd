/**
 * `haraka-outbound tlsrpt show|send` (RPT-5):
 * - `show DOMAIN [DAY]`: what would be reported for a Policy Domain and UTC
 *   day (default today, as it stands): sessions per policy, failures with the
 *   details a report carries, and the delivery state (`previewReport`).
 * - `send [--wait=S] [DAY] [DOMAIN…]`: sends a day's reports now (default
 *   today, as it stands; every domain with counts unless named) through the
 *   scheduler's `sendNow`, the path automatic sending takes. `mailto:`
 *   reports are DKIM-signed here when a key is configured and handed to
 *   Haraka through the outbox under data_dir (RPT-7, tlsrpt/outbox.ts: never
 *   over SMTP, where any client could pose as the CLI); the command waits up
 *   to S seconds (default 15) until a Haraka process with reporting on took
 *   them, and says so when none did (they stay in the outbox and go when one
 *   does).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { IniFile } from '../ini';
import { createDnsClient } from '../mx/dns-client';
import { signingQueueMail } from '../tlsrpt/dkim';
import { DEFAULT_LOCK_TTL_MS, previewReport, type ReportIdentity } from '../tlsrpt/deliver';
import { postReport } from '../tlsrpt/https';
import { outboxDir, submitToOutbox } from '../tlsrpt/outbox';
import { openTlsReportStore, processHolder } from '../tlsrpt/open';
import { isDay, utcDay } from '../tlsrpt/record';
import { DEFAULT_SCHEDULE } from '../tlsrpt/schedule';
import { TlsReportScheduler, type PassSummary } from '../tlsrpt/scheduler';
import type { TlsReport } from '../tlsrpt/report';
import type { DomainCounts } from '../tlsrpt/store';
import { loadMxSettings, waitUntilConnected } from './config';
import { domainKey } from '../store/keys';
// The same {out, err} as cli.ts's Output, imported from mx.ts: cli.ts imports this file.
import type { MxOutput as Output } from './mx';

export type TlsrptCommand =
  | { kind: 'tlsrpt-show'; domain: string; day: string | null }
  | { kind: 'tlsrpt-send'; day: string | null; domains: string[]; waitSeconds: number };

/** How long `tlsrpt send` waits for Haraka to take the mailto: reports from the outbox, by default. */
export const DEFAULT_OUTBOX_WAIT_SECONDS = 15;

/** Exit status of `tlsrpt send` when a report could not be sent to every address. */
export const EXIT_TLSRPT_NOT_SENT = 7;

export function parseTlsrptCommand(words: readonly string[], flags: ReadonlySet<string>): TlsrptCommand | string {
  const [action, ...args] = words;
  const waitFlag = [...flags].find((f) => f.startsWith('--wait='));
  if ([...flags].some((f) => f.startsWith('--smtp'))) {
    return '--smtp is gone: tlsrpt send hands mailto: reports to Haraka through <data_dir>/tlsrpt-outbox (RPT-7), not over SMTP';
  }
  const unknown = [...flags].find((f) => f !== waitFlag);
  if (unknown !== undefined) return `unknown option ${unknown}`;
  const day = args[0] !== undefined && /^\d{4}-/.test(args[0]) ? args[0] : null;
  if (day !== null && !isDay(day)) return `bad DAY: "${day}" is not a day (YYYY-MM-DD)`;
  const rest = day === null ? args : args.slice(1);
  if (action === 'show') {
    if (waitFlag) return 'tlsrpt show takes no --wait';
    const [first, second] = args;
    // show DOMAIN [DAY]
    if (first === undefined || args.length > 2) return 'tlsrpt show needs DOMAIN and an optional DAY';
    if (second !== undefined && !isDay(second)) return `bad DAY: "${second}" is not a day (YYYY-MM-DD)`;
    return { kind: 'tlsrpt-show', domain: first, day: second ?? null };
  }
  if (action === 'send') {
    const wait = waitFlag ? waitFlag.slice('--wait='.length) : String(DEFAULT_OUTBOX_WAIT_SECONDS);
    if (!/^\d{1,4}$/.test(wait)) return `bad --wait: "${wait}" is not a number of seconds`;
    for (const domain of rest) {
      const key = domainKey(domain);
      if (!key.ok || key.key.startsWith('[') || key.key.includes(':')) return `bad DOMAIN: ${key.ok ? domain : key.error}`;
    }
    return { kind: 'tlsrpt-send', day, domains: rest.map((d) => (domainKey(d) as { key: string }).key), waitSeconds: Number(wait) };
  }
  return action === undefined ? 'tlsrpt needs show or send' : `unknown tlsrpt command "${action}"`;
}

/** The report as `show` prints it: counts per policy, failures with their details. */
export function formatPreview(counts: DomainCounts, report: TlsReport): string[] {
  const lines = [`${counts.policyDomain} ${counts.day}: report ${report['report-id']}`];
  if (report.policies.length === 0) lines.push('  no sessions counted');
  for (const entry of report.policies) {
    const { policy, summary } = entry;
    lines.push(
      `  policy ${policy['policy-type']} ${policy['policy-domain']}: ${summary['total-successful-session-count']} successful, ` +
        `${summary['total-failure-session-count']} failed`,
    );
    for (const line of policy['policy-string'] ?? []) lines.push(`    | ${line}`);
    for (const failure of entry['failure-details'] ?? []) {
      const { 'result-type': type, 'failed-session-count': count, ...details } = failure;
      const shown = Object.entries(details)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      lines.push(`    ${count} × ${type}${shown ? ` (${shown})` : ''}`);
    }
  }
  for (const problem of counts.problems) lines.push(`  skipped: ${problem}`);
  return lines;
}

export function formatSendSummary(summary: PassSummary): { lines: string[]; allSent: boolean } {
  const lines: string[] = [];
  let allSent = true;
  for (const { day, policyDomain, outcome } of summary.outcomes) {
    let text: string;
    if (outcome.kind === 'error') text = `error: ${outcome.error}`;
    else if (outcome.kind === 'attempted') {
      const sent = Object.keys(outcome.state.sent);
      const errors = Object.entries(outcome.state.errors).filter(([uri]) => !sent.includes(uri));
      text = `sent to ${sent.join(', ') || 'nobody'}${errors.length ? `; not sent: ${errors.map(([u, e]) => `${u} (${e})`).join('; ')}` : ''}`;
      if (errors.length > 0) allSent = false;
    } else if (outcome.kind === 'finished') text = `${outcome.outcome}: ${outcome.reason}`;
    else if (outcome.kind === 'locked') text = 'another process is sending it now';
    else text = `waiting until ${new Date(outcome.until).toISOString()}`;
    if (outcome.kind === 'error' || outcome.kind === 'locked') allSent = false;
    lines.push(`${policyDomain} ${day}: ${text}`);
  }
  if (summary.outcomes.length === 0) lines.push(`no domains with counts on ${summary.days[0] ?? '?'}`);
  return { lines, allSent };
}

/** Waits until Haraka took every file of `names` from the outbox (or `seconds` passed); the names left. */
async function waitForPickup(dir: string, names: readonly string[], seconds: number): Promise<string[]> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const left = names.filter((name) => fs.existsSync(path.join(dir, name)));
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const PLACEHOLDER: ReportIdentity = { organization: '(tlsrpt not enabled)', contact: '-', sender: '-', submitter: 'localhost' };

export async function runTlsrpt(
  command: TlsrptCommand,
  configDir: string,
  settings: OutboundTlsConfig,
  redisIni: IniFile,
  output: Output,
): Promise<number> {
  const config = settings.tlsrpt;
  if (command.kind === 'tlsrpt-send' && config.kind !== 'on') {
    throw new Error(config.kind === 'off' ? 'TLS reporting is off ([tlsrpt] enabled=false)' : config.reason);
  }
  const store = openTlsReportStore({ dataDir: settings.dataDir, store: settings.store, redisIni });
  await waitUntilConnected(store);
  const day = command.day ?? utcDay(Date.now());
  try {
    if (command.kind === 'tlsrpt-show') {
      const key = domainKey(command.domain);
      if (!key.ok) throw new Error(`bad DOMAIN: ${key.error}`);
      const identity = config.kind === 'on' ? config.settings.identity : PLACEHOLDER;
      const { counts, report, state } = await previewReport(store, identity, day, key.key);
      const lines = formatPreview(counts, report);
      if (config.kind !== 'on') {
        // OPS-4: no report id of a report that will not be sent; say why first.
        output.out(
          config.kind === 'off'
            ? 'TLS reporting is off ([tlsrpt] enabled=false in outbound_tls.ini): nothing is counted or sent; the store holds:'
            : `TLS reporting is misconfigured, so off: ${config.reason}; the store holds:`,
        );
        lines[0] = `${counts.policyDomain} ${counts.day}:`;
      }
      for (const line of lines) output.out(line);
      if (state?.finished) output.out(`  delivery: ${state.finished.outcome} (${state.finished.reason})`);
      else if (state) output.out(`  delivery: due ${new Date(state.dueAt).toISOString()}, ${state.attempts} attempt(s)`);
      return config.kind === 'misconfigured' ? 1 : 0;
    }
    if (config.kind !== 'on') return 1;
    const mx = loadMxSettings(configDir);
    const dns = createDnsClient(mx.dns);
    const extraCa = mx.mtaSts.caFile ? [fs.readFileSync(mx.mtaSts.caFile, 'utf8')] : [];
    const outbox = outboxDir(settings.dataDir);
    const written: string[] = [];
    const scheduler = new TlsReportScheduler({
      store,
      txt: (name) => dns.txt(name),
      post: (url, gzipped) => postReport(url, gzipped, { addressPolicy: mx.addressPolicy, dns, extraCa }),
      queueMail: signingQueueMail(submitToOutbox(outbox, written), config.settings.dkim),
      identity: config.settings.identity,
      schedule: {
        ...DEFAULT_SCHEDULE,
        delayWindowMs: config.settings.delayWindowMs,
        sendDaysWithoutFailures: config.settings.sendDaysWithoutFailures,
      },
      holder: processHolder(),
      lockTtlMs: DEFAULT_LOCK_TTL_MS,
      now: Date.now,
      random: Math.random,
      log: (level, message) => output.err(`${level}: ${message}`),
      limits: config.settings.limits,
    });
    const summary = await scheduler.sendNow(day, command.domains.length > 0 ? command.domains : undefined);
    const { lines, allSent } = formatSendSummary(summary);
    for (const line of lines) output.out(line);
    const left = await waitForPickup(outbox, written, command.waitSeconds);
    if (written.length > 0 && left.length === 0) output.out(`mailto: reports taken by Haraka from ${outbox}: ${written.length}`);
    if (left.length > 0) {
      output.err(
        `${left.length} of ${written.length} mailto: report(s) still in ${outbox} after ${command.waitSeconds} s: no Haraka process with ` +
          `[tlsrpt] enabled=true and this data_dir took them; they are sent when one does`,
      );
    }
    return allSent && left.length === 0 ? 0 : EXIT_TLSRPT_NOT_SENT;
  } finally {
    await store.close();
  }
}
