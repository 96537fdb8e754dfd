/**
 * What every CLI command reads first: the plugins' ini files from the Haraka
 * config directory (parsed and checked as the plugins parse and check them:
 * an unusable value fails the command, an unknown section or key or a broken
 * section header is a warning on stderr, PKG-4), and the stores' wait for a
 * background connection. One place, so the commands cannot drift apart.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { HarakaConfig } from '../haraka/api';
import { formatWarning, type IniFile } from '../config/ini';
import { parseOutboundMxConfig, type OutboundMxConfig } from '../config/outbound-mx';
import { parseOutboundTlsConfig, type OutboundTlsConfig } from '../config/outbound-tls';
import { iniWarnings } from '../config/settings';

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

/** outbound_tls.ini, parsed as the plugin parses it (a relative data_dir is relative to DIR's parent). */
export function loadSettings(configDir: string): OutboundTlsConfig {
  const dir = path.resolve(configDir);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`config directory ${dir} not found (give the Haraka config directory with --config DIR)`);
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

/** config/redis.ini (haraka-plugin-redis's [server] and [opts]). */
export function loadRedisIni(configDir: string): IniFile {
  return readIni(configDir, 'redis.ini');
}

/** A Redis store connects in the background; a command waits for it before its first request. */
export async function waitUntilConnected(store: { description: string; ready?(timeoutMs: number): Promise<boolean> }): Promise<void> {
  if (store.ready && !(await store.ready(CONNECT_TIMEOUT_MS))) throw new Error(`${store.description}: cannot connect`);
}
