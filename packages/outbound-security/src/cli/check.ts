/**
 * `haraka-outbound check` (TLS-9, OPS-4): one health view of everything that
 * can make the plugins protect less than an admin expects, each line `ok`,
 * `warn` or `FAIL`:
 * - the plugin list (outbound_tls listed, above outbound_mx: TLS-9);
 * - the connection guard of the Haraka that runs (the status outbound_tls
 *   writes at startup under data_dir: installed, or why not; TLS-6);
 * - the stores (ratchet levels, MTA-STS cache) readable where the settings
 *   put them (ST-4);
 * - DANE in effect, or why not (DANE-8);
 * - policy table lines not in force, and the destinations whose mail waits
 *   for a fix (POL-5);
 * - TLS reporting on or off, its settings, its outbox (RPT-7);
 * - REQUIRETLS on or off, and whether Haraka can offer it at all (RT-1:
 *   only inside TLS, so Haraka's tls plugin and its key and certificate).
 * Exit status 8 when a line says FAIL (mail is deferred, or protection is
 * missing), 0 otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import type { IniFile } from '../ini';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';
import { pluginListProblem, PLUGINS_FIX } from '../haraka/guard-status';
import { processRuns, readRuntimeStatus } from '../haraka/runtime-status';
import { readPolicyTable } from '../policy-table/file';
import { openPolicyStore, openRatchetStore } from '../state/open';
import { outboxDir, outboxProblem } from '../tlsrpt/outbox';
import { loadMxSettings, waitUntilConnected } from './config';
import { checkDaneStatus, describeDaneStatus } from './dane';

export type CheckCommand = { kind: 'check' };

/** Exit status of `check` when a line says FAIL. */
export const EXIT_CHECK_FAILED = 8;

type Mark = 'ok' | 'warn' | 'FAIL';
export interface Finding {
  mark: Mark;
  what: string;
  text: string;
}

/** config/plugins as Haraka reads it: one name per line, `#` comments. */
function pluginList(configDir: string): string[] | null {
  try {
    return fs
      .readFileSync(path.join(configDir, 'plugins'), 'utf8')
      .split(/\r?\n/)
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean);
  } catch {
    return null;
  }
}

function checkPlugins(configDir: string): Finding[] {
  const list = pluginList(configDir);
  if (list === null) return [{ mark: 'FAIL', what: 'plugins', text: `${path.join(configDir, 'plugins')} cannot be read` }];
  const problem = pluginListProblem(list);
  if (problem) return [{ mark: 'FAIL', what: 'plugins', text: `${problem}: mail with a requirement is deferred (${PLUGINS_FIX})` }];
  const mx = list.some((name) => name.replace(/^haraka-plugin-/, '') === 'outbound_mx');
  return [
    mx
      ? { mark: 'ok', what: 'plugins', text: 'outbound_tls, then outbound_mx' }
      : {
          mark: 'warn',
          what: 'plugins',
          text: 'outbound_mx is not listed: only the routes other plugins choose are guarded (no MTA-STS, no DANE)',
        },
  ];
}

async function checkGuard(dataDir: string): Promise<Finding> {
  const status = await readRuntimeStatus(dataDir);
  if (status === null) {
    return { mark: 'warn', what: 'guard', text: `no Haraka with outbound_tls has started with data_dir ${dataDir} (nothing to check)` };
  }
  if (typeof status === 'string')
    return { mark: 'FAIL', what: 'guard', text: `the runtime status in ${dataDir} cannot be read: ${status}` };
  const when = `Haraka pid ${status.pid}, started ${status.startedAt}`;
  if (!processRuns(status.pid)) return { mark: 'warn', what: 'guard', text: `${when}, is not running now` };
  if (status.guardProblem) {
    return {
      mark: 'FAIL',
      what: 'guard',
      text: `${when}: cannot guard connections (${status.guardProblem}); mail with a requirement is deferred`,
    };
  }
  return { mark: 'ok', what: 'guard', text: `installed (${when})` };
}

async function checkStores(settings: OutboundTlsConfig, redisIni: IniFile): Promise<Finding[]> {
  const storeSettings = { dataDir: settings.dataDir, store: settings.store, redisIni };
  const findings: Finding[] = [];
  for (const [what, open] of [
    ['ratchet store', () => openRatchetStore(storeSettings)],
    ['MTA-STS cache', () => openPolicyStore(storeSettings)],
  ] as const) {
    const store = open();
    try {
      await waitUntilConnected(store);
      const read = await store.get('check.invalid');
      findings.push(
        read.kind === 'unreadable'
          ? { mark: 'FAIL', what, text: `${store.description}: ${read.reason}` }
          : { mark: 'ok', what, text: `${store.description} readable` },
      );
    } catch (err) {
      findings.push({
        mark: 'FAIL',
        what,
        text: `${store.description}: ${(err as Error).message}; mail that needs stored state is deferred`,
      });
    } finally {
      await store.close().catch(() => undefined);
    }
  }
  return findings;
}

async function checkDane(configDir: string): Promise<Finding> {
  const mx = loadMxSettings(configDir);
  const status = await checkDaneStatus(mx);
  const text = describeDaneStatus({ mode: mx.dane.mode, probe: mx.dane.probe, status });
  if (status.kind === 'in-effect' || status.kind === 'off') return { mark: 'ok', what: 'DANE', text };
  // Not declaring a resolver is a choice (DANE stays off); a declared one that fails its check is a fault.
  return { mark: mx.dane.trustedResolvers.length === 0 ? 'warn' : 'FAIL', what: 'DANE', text };
}

function checkTable(configDir: string): Finding[] {
  const { table, exists } = readPolicyTable(configDir);
  if (!exists) return [{ mark: 'ok', what: 'policy table', text: 'no config/outbound_tls_policy (no rules)' }];
  const findings: Finding[] = [];
  for (const problem of table.problems.filter((p) => p.severity === 'error')) {
    findings.push({
      mark: problem.defers ? 'FAIL' : 'warn',
      what: 'policy table',
      text: `line ${problem.line}: ${problem.message}${problem.defers ? `: mail to ${problem.name ?? 'it'} waits until it is fixed` : ': ignored'}`,
    });
  }
  if (findings.length === 0) findings.push({ mark: 'ok', what: 'policy table', text: `${table.rules.length} rules in force, every line` });
  return findings;
}

async function checkReporting(settings: OutboundTlsConfig): Promise<Finding[]> {
  const config = settings.tlsrpt;
  if (config.kind === 'off') return [{ mark: 'ok', what: 'TLS reporting', text: 'off ([tlsrpt] enabled=false)' }];
  if (config.kind === 'misconfigured') return [{ mark: 'FAIL', what: 'TLS reporting', text: config.reason }];
  const findings: Finding[] = [{ mark: 'ok', what: 'TLS reporting', text: `on: reports from ${config.settings.identity.sender}` }];
  const dir = outboxDir(settings.dataDir);
  const problem = await outboxProblem(dir);
  if (problem) findings.push({ mark: 'FAIL', what: 'TLS reporting', text: `outbox refused: ${problem}` });
  else {
    const waiting = fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.json') && !name.startsWith('.')) : [];
    if (waiting.length > 0) findings.push({ mark: 'warn', what: 'TLS reporting', text: `${waiting.length} report(s) waiting in ${dir}` });
  }
  return findings;
}

/**
 * RT-1, RT-6: `[requiretls] enabled=true` does nothing visible when Haraka has
 * no inbound TLS (REQUIRETLS is advertised only after STARTTLS): say so.
 */
export function checkRequireTls(configDir: string, settings: Pick<OutboundTlsConfig, 'requiretls'>): Finding {
  const { enabled, tlsRequiredHeader } = settings.requiretls;
  const header = `TLS-Required: No ${tlsRequiredHeader === 'honour' ? 'honoured' : 'ignored'}`;
  if (!enabled)
    return { mark: 'ok', what: 'REQUIRETLS', text: `off ([requiretls] enabled=false: MAIL FROM … REQUIRETLS refused with 555); ${header}` };
  const list = pluginList(configDir) ?? [];
  if (!list.some((name) => name.replace(/^haraka-plugin-/, '') === 'tls')) {
    return {
      mark: 'warn',
      what: 'REQUIRETLS',
      text: "enabled, but Haraka's tls plugin is not in config/plugins: no inbound STARTTLS, so REQUIRETLS is never advertised",
    };
  }
  const missing = ['tls_key.pem', 'tls_cert.pem'].filter((file) => !fs.existsSync(path.join(configDir, file)));
  if (missing.length > 0) {
    return {
      mark: 'warn',
      what: 'REQUIRETLS',
      text: `enabled, but ${missing.map((f) => path.join(configDir, f)).join(' and ')} missing: Haraka cannot offer STARTTLS, so REQUIRETLS is never advertised`,
    };
  }
  return {
    mark: 'ok',
    what: 'REQUIRETLS',
    text: `on: advertised after STARTTLS; such messages go only to authenticated MX hosts over TLS_SECURE connections that advertise it, or are returned (RT-2, RT-3); ${header}`,
  };
}

/** `check` takes no argument; a string is a usage error. */
export function parseCheckCommand(line: CommandLine): CheckCommand | string {
  return unknownOption(line) ?? (line.words.length > 0 ? 'check takes no argument' : { kind: 'check' });
}

export async function runCheck(_command: CheckCommand, { configDir, settings, redisIni, output }: CliContext): Promise<number> {
  const findings: Finding[] = [
    ...checkPlugins(configDir),
    await checkGuard(settings.dataDir),
    ...(await checkStores(settings, redisIni)),
    await checkDane(configDir),
    ...checkTable(configDir),
    ...(await checkReporting(settings)),
    checkRequireTls(configDir, settings),
  ];
  for (const { mark, what, text } of findings) output.out(`${mark.padEnd(4)} ${what}: ${text}`);
  const failed = findings.filter((f) => f.mark === 'FAIL').length;
  output.out(failed === 0 ? 'no problem found' : `${failed} problem(s): see the FAIL lines`);
  return failed === 0 ? 0 : EXIT_CHECK_FAILED;
}

export const checkCommand: CliCommand<CheckCommand> = { options: {}, parse: parseCheckCommand, run: runCheck };
