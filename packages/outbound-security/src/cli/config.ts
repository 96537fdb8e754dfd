/**
 * What every CLI command reads first: the plugins' ini files and the policy
 * table from the Haraka config directory (parsed and checked as the plugins
 * parse and check them: an unusable value fails the command, an unknown
 * section or key, a broken section header or a table line not in force is a
 * warning on stderr, PKG-4, POL-1), and the stores' wait for a background
 * connection. One place, so the commands cannot drift apart.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { HarakaConfig } from '../haraka/api';
import { formatWarning, type IniFile } from '../ini';
import { parseOutboundMxConfig, type OutboundMxConfig } from '../config/outbound-mx';
import { parseOutboundTlsConfig, type OutboundTlsConfig } from '../config/outbound-tls';
import { iniWarnings } from '../haraka/settings';
import { POLICY_TABLE_FILE, readPolicyTable } from '../policy-table/file';
import { formatProblem, type PolicyTable } from '../policy-table/table';

/** Milliseconds a Redis store may take to connect before a command gives up. */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * One ini file of the config directory; empty when absent. haraka-config ships
 * no types (lib/haraka's HarakaConfig types get()); an absolute name is read
 * as it is, whatever HARAKA is set to; no_watch lets the process exit.
 */
export function readIni(configDir: string, name: string, warn: (line: string) => void = warnOnStderr): IniFile {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const harakaConfig = require('haraka-config') as HarakaConfig;
  const dir = path.resolve(configDir);
  const ini = (harakaConfig.get(path.join(dir, name), { no_watch: true }) as IniFile) ?? {};
  const file = path.join(dir, name);
  if (!warned.has(file)) {
    warned.add(file);
    for (const w of iniWarnings(name, ini, dir)) warn(`warning: ${formatWarning(w)}`);
  }
  return ini;
}

/** Files already checked by this process: each warning is shown once per command. */
const warned = new Set<string>();

function warnOnStderr(line: string): void {
  process.stderr.write(`haraka-outbound: ${line}\n`);
}

/** Files that make a directory a Haraka config directory for the CLI: the plugins' own and Haraka's plugin list. */
export const CONFIG_DIR_FILES = ['outbound_tls.ini', 'outbound_mx.ini', POLICY_TABLE_FILE, 'plugins'] as const;

export type ConfigDirResult = { ok: true; configDir: string; harakaDir: string } | { ok: false; error: string };

/**
 * OPS-4: what `--config DIR` names. Either the Haraka directory (the one
 * holding config/, as `haraka -c DIR` takes it) or that config/ directory
 * itself; the Haraka directory anchors a relative data_dir in both forms, as
 * the plugins anchor it at HARAKA. A directory that is neither is an error
 * (never an empty store: a reset there would reset nothing while the real
 * level stays).
 */
export function resolveConfigDir(given: string): ConfigDirResult {
  const dir = path.resolve(given);
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) return { ok: false, error: `--config ${given}: not found (${dir}); give the Haraka directory or its config/` };
  if (!stat.isDirectory()) return { ok: false, error: `--config ${given}: not a directory; give the Haraka directory or its config/` };
  const isFile = (file: string): boolean => fs.statSync(file, { throwIfNoEntry: false })?.isFile() === true;
  if (CONFIG_DIR_FILES.some((file) => isFile(path.join(dir, file)))) return { ok: true, configDir: dir, harakaDir: path.dirname(dir) };
  const sub = path.join(dir, 'config');
  if (fs.statSync(sub, { throwIfNoEntry: false })?.isDirectory()) return { ok: true, configDir: sub, harakaDir: dir };
  return {
    ok: false,
    error:
      `--config ${given}: neither a Haraka directory (holding config/) nor a Haraka config directory ` +
      `(holding ${CONFIG_DIR_FILES.join(', ')}); nothing was read or changed`,
  };
}

/** outbound_tls.ini, parsed as the plugin parses it (a relative data_dir is relative to DIR's parent, the Haraka directory). */
export function loadSettings(configDir: string): OutboundTlsConfig {
  const dir = path.resolve(configDir);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`config directory ${dir} not found (give the Haraka directory or its config/ with --config DIR)`);
  }
  try {
    return parseOutboundTlsConfig(readIni(dir, 'outbound_tls.ini'), path.dirname(dir));
  } catch (err) {
    throw new Error(`${path.join(dir, 'outbound_tls.ini')}: ${(err as Error).message}`);
  }
}

/** outbound_mx.ini (DNS servers, MX selection and MTA-STS fetch settings). */
export function loadMxSettings(configDir: string): OutboundMxConfig {
  try {
    return parseOutboundMxConfig(readIni(configDir, 'outbound_mx.ini'));
  } catch (err) {
    throw new Error(`${path.join(path.resolve(configDir), 'outbound_mx.ini')}: ${(err as Error).message}`);
  }
}

/**
 * POL-1: the policy table of the config directory, read as the plugins read it
 * (no file: no rules); its problems are warnings on stderr, once per command.
 * Throws when the file cannot be read.
 */
export function loadPolicyTable(configDir: string, warn: (line: string) => void = warnOnStderr): PolicyTable {
  const { table } = readPolicyTable(path.resolve(configDir));
  const file = path.join(path.resolve(configDir), POLICY_TABLE_FILE);
  if (!warned.has(file)) {
    warned.add(file);
    for (const problem of table.problems) warn(`${problem.severity}: ${formatProblem(problem)}`);
  }
  return table;
}

/** config/redis.ini (haraka-plugin-redis's [server] and [opts]). */
export function loadRedisIni(configDir: string): IniFile {
  return readIni(configDir, 'redis.ini');
}

/** A Redis store connects in the background; a command waits for it before its first request. */
export async function waitUntilConnected(store: { description: string; ready?(timeoutMs: number): Promise<boolean> }): Promise<void> {
  if (store.ready && !(await store.ready(CONNECT_TIMEOUT_MS))) throw new Error(`${store.description}: cannot connect`);
}
