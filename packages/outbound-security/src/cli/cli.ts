#!/usr/bin/env node
/**
 * haraka-outbound: the admin command (OPS-4). It reads the same
 * `outbound_tls.ini` as the plugin and opens the same stores, so what it shows
 * is what the next delivery will use, and a reset counts at once (ST-2).
 *
 * Parsing and formatting are plain functions (tested without processes);
 * `main` does the I/O. A new command group (`policy show|purge`) is one more
 * case in `parseArgs` and `run`.
 */
import { printable } from '../domain';
import { openRatchetStore } from '../state/open';
import type { RatchetRead } from '../ratchet/store';
import { RELAY_KEY_PREFIX, domainKey } from '../store/keys';
import { levelName } from '../sec-level';
import fs from 'node:fs';
import path from 'node:path';
import { loadRedisIni, loadSettings, resolveConfigDir, waitUntilConnected } from './config';
import { migrate, type MigrateDirection } from './migrate';
import { parseMxCommand, runMx, type MxCommand } from './mx';
import { runProbe } from './probe';
import { parsePolicyCommand, runPolicy, type PolicyCommand } from './policy';
import { EXIT_TABLE_PROBLEMS, parseTableCommand, runTable, type TableCommand } from './table';
import { runExplain, type ExplainCommand } from './explain';
import { EXIT_DANE_NOT_IN_EFFECT, runDaneStatus, type DaneCommand } from './dane';
import { EXIT_CHECK_FAILED, runCheck, type CheckCommand } from './check';
import { EXIT_TLSRPT_NOT_SENT, parseTlsrptCommand, runTlsrpt, type TlsrptCommand } from './tlsrpt';

export const PROGRAM = 'haraka-outbound';
export const DEFAULT_CONFIG_DIR = './config';

export const USAGE = `usage:
  ${PROGRAM} [--config DIR] ratchet show DOMAIN
  ${PROGRAM} [--config DIR] ratchet list [--json]
  ${PROGRAM} [--config DIR] ratchet reset DOMAIN
  ${PROGRAM} [--config DIR] policy show DOMAIN     cached MTA-STS policy and the live one (fetched now, not cached)
  ${PROGRAM} [--config DIR] policy list
  ${PROGRAM} [--config DIR] policy purge DOMAIN    forget the cached policy (counts at the next delivery)
  ${PROGRAM} [--config DIR] migrate file-to-redis|redis-to-file
                                                   copy ratchet levels and cached policies between the stores
  ${PROGRAM} [--config DIR] mx show DOMAIN         what outbound_mx would do now: MTA-STS policy (cached, live, in
                                                   effect), MX hosts and addresses or the failure, DANE (in effect or
                                                   not, DNSSEC status, TLSA records per MX host), required level
  ${PROGRAM} [--config DIR] probe [--timeout S] DOMAIN
                                                   connect to every selected MX address (EHLO, STARTTLS, EHLO, QUIT;
                                                   never MAIL FROM), classify each and check it against the
                                                   requirement and its TLSA records; S seconds per connection
                                                   (default 10)
  ${PROGRAM} [--config DIR] dane status            whether DANE is in effect: the resolver check of outbound_mx
  ${PROGRAM} [--config DIR] check                  health view: plugins and their order, the running Haraka's guard,
                                                   stores readable, DANE in effect, table lines not in force,
                                                   TLS reporting on or off (exit 8 when a line says FAIL)
  ${PROGRAM} [--config DIR] table list [--json]     the policy table (config/outbound_tls_policy): each rule in force
                                                   with its line, each line not in force with the reason
  ${PROGRAM} [--config DIR] explain DOMAIN         the requirement of DOMAIN's connections part by part: ratchet,
                                                   MTA-STS, the table rule that matched, exemptions
  ${PROGRAM} [--config DIR] tlsrpt show DOMAIN [DAY]
                                                   what the TLS report of DOMAIN for DAY (UTC, default today as it
                                                   stands) would say: sessions per policy, failure details
  ${PROGRAM} [--config DIR] tlsrpt send [--wait=S] [DAY] [DOMAIN...]
                                                   send DAY's TLS reports now (default today as it stands; every
                                                   domain with counts unless named), as the automatic sending does;
                                                   mailto: reports go to Haraka through <data_dir>/tlsrpt-outbox
                                                   (waits S seconds, default 15, until Haraka took them)
  ${PROGRAM} --version | --help                    this command's version (also -V, -v), or this text (-h)

  DOMAIN of ratchet show/reset and explain may be relay:<host>: a smart host (TLS-8, POL-4).
  --config DIR  the Haraka directory (holding config/, as haraka -c takes it) or its config/ directory
                (default ${DEFAULT_CONFIG_DIR}); a relative data_dir is relative to the Haraka directory
  DOMAIN        a domain in Unicode or A-label form, or an address literal such as [192.0.2.1]
  --            ends the options: what follows are words, even when they start with -

exit status: 0 done, 1 error, 2 bad usage, 3 a stored entry is unreadable,
             4 probe: no MX meets the requirement (or there is no MX to deliver to),
             5 table list: a line of the policy table is not in force,
             6 dane status: [dane] mode is on or observe but DANE is not in effect,
             7 tlsrpt send: a report did not reach every address (retried by the automatic sending),
               or Haraka did not take the mailto: reports from the outbox in time,
             8 check: a line says FAIL (mail is deferred, or protection is missing)`;

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREADABLE: 3,
  NONE_MEETS: 4,
  TABLE_PROBLEMS: EXIT_TABLE_PROBLEMS,
  DANE_NOT_IN_EFFECT: EXIT_DANE_NOT_IN_EFFECT,
  TLSRPT_NOT_SENT: EXIT_TLSRPT_NOT_SENT,
  CHECK_FAILED: EXIT_CHECK_FAILED,
} as const;

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'ratchet-show'; domain: string }
  | { kind: 'ratchet-list'; json: boolean }
  | { kind: 'ratchet-reset'; domain: string }
  | PolicyCommand
  | MxCommand
  | TableCommand
  | ExplainCommand
  | DaneCommand
  | TlsrptCommand
  | CheckCommand
  | { kind: 'migrate'; direction: MigrateDirection };

export type ParsedArgs = { ok: true; configDir: string; command: Command } | { ok: false; error: string };

/** Splits the command line into the config directory and one command; never throws. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  let configDir = DEFAULT_CONFIG_DIR;
  let timeout: string | undefined;
  const words: string[] = [];
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--config') {
      const value = argv[++i];
      if (value === undefined || value === '') return { ok: false, error: '--config needs a directory' };
      configDir = value;
    } else if (arg.startsWith('--config=')) {
      configDir = arg.slice('--config='.length);
      if (configDir === '') return { ok: false, error: '--config needs a directory' };
    } else if (arg === '--timeout' || arg.startsWith('--timeout=')) {
      timeout = arg === '--timeout' ? argv[++i] : arg.slice('--timeout='.length);
      if (timeout === undefined || timeout === '') return { ok: false, error: '--timeout needs a number of seconds' };
      flags.add('--timeout');
    } else if (arg === '-h' || arg === '--help') {
      return { ok: true, configDir, command: { kind: 'help' } };
    } else if (arg === '--version' || arg === '-V' || arg === '-v') {
      return { ok: true, configDir, command: { kind: 'version' } };
    } else if (arg === '--') {
      // End of options (POSIX): the rest are words, even a DOMAIN that starts with "-".
      words.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith('-') && arg !== '-') {
      flags.add(arg);
    } else {
      words.push(arg);
    }
  }
  const [group, ...rest] = words;
  if (group === undefined) return { ok: false, error: 'no command given' };
  let command: Command | string;
  if (group === 'ratchet') command = parseRatchetCommand(rest, flags);
  else if (group === 'policy') command = flags.size > 0 ? `unknown option ${[...flags][0]}` : parsePolicyCommand(rest);
  else if (group === 'mx' || group === 'probe') command = parseMxCommand(group, rest, flags, timeout);
  else if (group === 'table') command = parseTableCommand(rest, flags);
  else if (group === 'explain') command = parseExplainCommand(rest, flags);
  else if (group === 'dane')
    command =
      flags.size > 0
        ? `unknown option ${[...flags][0]}`
        : rest.length === 1 && rest[0] === 'status'
          ? { kind: 'dane-status' }
          : 'dane needs status';
  else if (group === 'tlsrpt') command = parseTlsrptCommand(rest, flags);
  else if (group === 'check')
    command = flags.size > 0 ? `unknown option ${[...flags][0]}` : rest.length > 0 ? 'check takes no argument' : { kind: 'check' };
  else if (group === 'migrate')
    command =
      rest.length === 1 && (rest[0] === 'file-to-redis' || rest[0] === 'redis-to-file')
        ? { kind: 'migrate', direction: rest[0] }
        : 'migrate needs file-to-redis or redis-to-file';
  else command = `unknown command "${group}"`;
  if (typeof command !== 'string') command = checkDomain(command);
  return typeof command === 'string' ? { ok: false, error: command } : { ok: true, configDir, command };
}

/** A DOMAIN that is not one is bad usage (status 2), found before any store is opened. */
function checkDomain(command: Command): Command | string {
  if (!('domain' in command)) return command;
  // The reasons name the value: `bad DOMAIN: "a..b": empty label`.
  const key = domainKey(command.domain);
  if (!key.ok) return `bad DOMAIN: ${key.error}`;
  if (key.key.startsWith(RELAY_KEY_PREFIX) && !['ratchet-show', 'ratchet-reset', 'explain'].includes(command.kind)) {
    return `bad DOMAIN: "${printable(command.domain)}" is a relay's key, only for ratchet show, ratchet reset and explain`;
  }
  if ((command.kind === 'policy-show' || command.kind === 'policy-purge') && key.key.startsWith('[')) {
    return `bad DOMAIN: "${printable(command.domain)}" is an address literal, which has no MTA-STS policy`;
  }
  return command;
}

function parseExplainCommand(words: string[], flags: Set<string>): Command | string {
  if (flags.size > 0) return `unknown option ${[...flags][0]}`;
  if (words.length !== 1 || words[0] === undefined) return 'explain needs exactly one DOMAIN (or relay:<host>)';
  return { kind: 'explain', domain: words[0] };
}

function parseRatchetCommand(words: string[], flags: Set<string>): Command | string {
  const [action, ...args] = words;
  const allowed = action === 'list' ? ['--json'] : [];
  const unknownFlag = [...flags].find((flag) => !allowed.includes(flag));
  if (unknownFlag !== undefined) return `unknown option ${unknownFlag}`;
  switch (action) {
    case 'show':
    case 'reset': {
      if (args.length !== 1 || args[0] === undefined) return `ratchet ${action} needs exactly one DOMAIN`;
      return { kind: action === 'show' ? 'ratchet-show' : 'ratchet-reset', domain: args[0] };
    }
    case 'list':
      if (args.length > 0) return 'ratchet list takes no DOMAIN';
      return { kind: 'ratchet-list', json: flags.has('--json') };
    case undefined:
      return 'ratchet needs show, list or reset';
    default:
      return `unknown ratchet command "${action}"`;
  }
}

/** `2026-11-24T14:00:00Z`: ISO 8601 in UTC, to the second. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One line per domain, as `show` and `list` print it. */
export function formatRead(domain: string, read: RatchetRead): string {
  switch (read.kind) {
    case 'none':
      return `${domain}: no level stored (PLAIN)`;
    case 'unreadable':
      return `${domain}: UNREADABLE: ${read.reason}`;
    case 'level': {
      const { level, raisedAt, host } = read.entry;
      const details = [raisedAt === undefined ? null : `raised ${formatTime(raisedAt)}`, host === undefined ? null : `by ${host}`];
      const detail = details.filter((part) => part !== null).join(' ');
      return `${domain} ${levelName(level)}${detail === '' ? '' : ` (${detail})`}`;
    }
  }
}

export type ReadJson =
  | { domain: string; kind: 'none' }
  | { domain: string; kind: 'unreadable'; reason: string }
  | { domain: string; kind: 'level'; level: string; raisedAt?: string; host?: string };

/** The `list --json` form of one entry. */
export function readToJson(domain: string, read: RatchetRead): ReadJson {
  if (read.kind !== 'level') return read.kind === 'none' ? { domain, kind: 'none' } : { domain, kind: 'unreadable', reason: read.reason };
  const json: ReadJson = { domain, kind: 'level', level: levelName(read.entry.level) };
  if (read.entry.raisedAt !== undefined) json.raisedAt = formatTime(read.entry.raisedAt);
  if (read.entry.host !== undefined) json.host = read.entry.host;
  return json;
}

export function formatReset(domain: string, before: RatchetRead, existed: boolean): string {
  if (!existed) return `${domain}: nothing stored`;
  if (before.kind === 'level') return `${domain}: reset (was ${levelName(before.entry.level)})`;
  if (before.kind === 'unreadable') return `${domain}: reset (was UNREADABLE: ${before.reason})`;
  return `${domain}: reset (no level was stored)`;
}

export { loadRedisIni, loadSettings, waitUntilConnected } from './config';

export interface Output {
  out(line: string): void;
  err(line: string): void;
}

const processOutput: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Runs one command line; resolves with the exit status. Never rejects. */
export async function main(argv: readonly string[], output: Output = processOutput): Promise<number> {
  const parsed = parseArgs(argv);
  if (!parsed.ok) {
    output.err(`${PROGRAM}: ${parsed.error}\n${USAGE}`);
    return EXIT.USAGE;
  }
  if (parsed.command.kind === 'help') {
    output.out(USAGE);
    return EXIT.OK;
  }
  if (parsed.command.kind === 'version') {
    output.out(`${PROGRAM} ${packageVersion()}`);
    return EXIT.OK;
  }
  const config = resolveConfigDir(parsed.configDir);
  if (!config.ok) {
    output.err(`${PROGRAM}: ${config.error}`);
    return EXIT.USAGE;
  }
  try {
    return await run(config.configDir, parsed.command, output);
  } catch (err) {
    output.err(`${PROGRAM}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.ERROR;
  }
}

/** The version of this package (dist/cli/cli.js → package.json), as npm installed it. */
function packageVersion(): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}

async function run(configDir: string, command: Exclude<Command, { kind: 'help' | 'version' }>, output: Output): Promise<number> {
  if (command.kind === 'table-list') return runTable(command, configDir, output);
  const settings = loadSettings(configDir);
  const redisIni = loadRedisIni(configDir);
  if (command.kind === 'policy-show' || command.kind === 'policy-list' || command.kind === 'policy-purge') {
    return runPolicy(command, configDir, settings, redisIni, requireKey, output);
  }
  if (command.kind === 'mx-show') return runMx(command, configDir, settings, redisIni, requireKey, output);
  if (command.kind === 'probe') return runProbe(command, configDir, settings, redisIni, requireKey, output);
  if (command.kind === 'explain') return runExplain(command, configDir, settings, redisIni, requireKey, output);
  if (command.kind === 'dane-status') return runDaneStatus(configDir, output);
  if (command.kind === 'check') return runCheck(configDir, settings, redisIni, output);
  if (command.kind === 'tlsrpt-show' || command.kind === 'tlsrpt-send') return runTlsrpt(command, configDir, settings, redisIni, output);
  if (command.kind === 'migrate') {
    const report = await migrate(command.direction, settings, redisIni);
    output.out(`${command.direction}: ${report.levels} ratchet levels and ${report.policies} policies copied`);
    for (const line of report.skipped) output.err(`skipped ${line}`);
    return EXIT.OK;
  }
  const store = openRatchetStore({ dataDir: settings.dataDir, store: settings.store, redisIni });
  await waitUntilConnected(store);
  try {
    switch (command.kind) {
      case 'ratchet-show': {
        const domain = requireKey(command.domain);
        const read = await store.get(domain);
        output.out(formatRead(domain, read));
        return read.kind === 'unreadable' ? EXIT.UNREADABLE : EXIT.OK;
      }
      case 'ratchet-list': {
        const entries = await store.list();
        if (command.json)
          output.out(
            JSON.stringify(
              entries.map(({ domain, read }) => readToJson(domain, read)),
              null,
              2,
            ),
          );
        else for (const { domain, read } of entries) output.out(formatRead(domain, read));
        if (entries.length === 0 && !command.json) output.err(`no domains stored in ${store.description}`);
        return entries.some(({ read }) => read.kind === 'unreadable') ? EXIT.UNREADABLE : EXIT.OK;
      }
      case 'ratchet-reset': {
        const domain = requireKey(command.domain);
        const before = await store.get(domain);
        output.out(formatReset(domain, before, await store.reset(domain)));
        return EXIT.OK;
      }
    }
  } finally {
    await store.close();
  }
}

/** The store key of a DOMAIN that parseArgs accepted (checkDomain). */
function requireKey(input: string): string {
  const key = domainKey(input);
  if (!key.ok) throw new Error(`bad DOMAIN: ${key.error}`);
  return key.key;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
