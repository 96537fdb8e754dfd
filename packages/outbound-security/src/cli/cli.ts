#!/usr/bin/env node
/**
 * haraka-outbound: the admin command (OPS-4). It reads the same
 * `outbound_tls.ini` as the plugin and opens the same stores, so what it shows
 * is what the next delivery will use, and a reset counts at once (ST-2).
 *
 * This file is the entry (ARC-3): it reads the command line with Node's
 * `util.parseArgs`, takes the global options (`--config`, `--help`,
 * `--version`), hands the rest to the command named (one file each, see
 * COMMANDS) with one context, and maps errors to exit statuses. A new command
 * is one more file and one more row in COMMANDS.
 */
import { parseArgs as parseCommandLine } from 'node:util';
import { checkCommand, type CheckCommand } from './check';
import type { CliCommand, CliOption, CliOptions, GivenOption } from './command';
import { resolveConfigDir } from './config';
import { createContext, processOutput, type Output } from './context';
import { daneCommand, type DaneCommand } from './dane';
import { explainCommand, type ExplainCommand } from './explain';
import { DEFAULT_CONFIG_DIR, EXIT, PROGRAM, USAGE, packageVersion } from './help';
import { migrateCommand, type MigrateCommand } from './migrate';
import { mxCommand, type MxCommand } from './mx';
import { policyCommand, type PolicyCommand } from './policy';
import { probeCommand, type ProbeCommand } from './probe';
import { ratchetCommand, type RatchetCommand } from './ratchet';
import { tableCommand, type TableCommand } from './table';
import { tlsrptCommand, type TlsrptCommand } from './tlsrpt';

export { DEFAULT_CONFIG_DIR, EXIT, PROGRAM, USAGE } from './help';
export type { Output } from './context';

/** A command that runs in a config directory (every one but help and version). */
export type ConfigCommand =
  | RatchetCommand
  | PolicyCommand
  | MxCommand
  | ProbeCommand
  | TableCommand
  | ExplainCommand
  | DaneCommand
  | TlsrptCommand
  | CheckCommand
  | MigrateCommand;

export type Command = { kind: 'help' } | { kind: 'version' } | ConfigCommand;

/**
 * The commands by the first word of the command line. Each parses and runs
 * only its own kind: the CliCommand<ConfigCommand> view is safe because a
 * command is always run by the entry that parsed it.
 */
const COMMANDS: ReadonlyMap<string, CliCommand<ConfigCommand>> = new Map<string, CliCommand<ConfigCommand>>([
  ['ratchet', ratchetCommand],
  ['policy', policyCommand],
  ['mx', mxCommand],
  ['probe', probeCommand],
  ['table', tableCommand],
  ['explain', explainCommand],
  ['dane', daneCommand],
  ['tlsrpt', tlsrptCommand],
  ['check', checkCommand],
  ['migrate', migrateCommand],
]);

/** `-v` is --version too, besides -V: util.parseArgs gives one short name per option, so it is matched by what was typed. */
const GLOBAL_OPTIONS = {
  config: { type: 'string', value: 'a directory' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies CliOptions;

/** Every option any command takes: an option may stand anywhere on the line, before the command's name too (`--timeout=3 probe D`). */
const OPTIONS: CliOptions = Object.fromEntries([
  ...Object.entries(GLOBAL_OPTIONS),
  ...[...COMMANDS.values()].flatMap((command) => Object.entries(command.options)),
]);

type Parsed = { ok: true; configDir: string; command: Command; runner?: CliCommand<ConfigCommand> } | { ok: false; error: string };
export type ParsedArgs = { ok: true; configDir: string; command: Command } | { ok: false; error: string };

/** Splits the command line into the config directory and one command; never throws. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed = parse(argv);
  return parsed.ok ? { ok: true, configDir: parsed.configDir, command: parsed.command } : parsed;
}

function parse(argv: readonly string[]): Parsed {
  // strict: false, so that options unknown to the command named are reported by it, in this CLI's words.
  const { tokens } = parseCommandLine({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
  let configDir = DEFAULT_CONFIG_DIR;
  const words: string[] = [];
  const options: GivenOption[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') words.push(token.value);
    if (token.kind !== 'option') continue;
    const option: CliOption | undefined = Object.hasOwn(OPTIONS, token.name) ? OPTIONS[token.name] : undefined;
    if (option?.type === 'string' && !token.value) return { ok: false, error: `${token.rawName} needs ${option.value}` };
    const flag = token.value === undefined;
    if (flag && token.name === 'help') return { ok: true, configDir, command: { kind: 'help' } };
    if (flag && (token.name === 'version' || token.rawName === '-v')) return { ok: true, configDir, command: { kind: 'version' } };
    if (token.name === 'config') configDir = token.value ?? configDir;
    else options.push({ name: token.name, typed: argv[token.index] as string, value: token.value ?? true });
  }
  const [name, ...rest] = words;
  if (name === undefined) return { ok: false, error: 'no command given' };
  const runner = COMMANDS.get(name);
  if (runner === undefined) return { ok: false, error: `unknown command "${name}"` };
  const command = runner.parse({ words: rest, options });
  return typeof command === 'string' ? { ok: false, error: command } : { ok: true, configDir, command, runner };
}

/** Runs one command line; resolves with the exit status. Never rejects. */
export async function main(argv: readonly string[], output: Output = processOutput): Promise<number> {
  const parsed = parse(argv);
  if (!parsed.ok) {
    output.err(`${PROGRAM}: ${parsed.error}\n${USAGE}`);
    return EXIT.USAGE;
  }
  const { command, runner } = parsed;
  if (command.kind === 'help' || command.kind === 'version' || runner === undefined) {
    output.out(command.kind === 'version' ? `${PROGRAM} ${packageVersion()}` : USAGE);
    return EXIT.OK;
  }
  const config = resolveConfigDir(parsed.configDir);
  if (!config.ok) {
    output.err(`${PROGRAM}: ${config.error}`);
    return EXIT.USAGE;
  }
  try {
    return await runner.run(command, createContext(config.configDir, output, runner.readsSettings !== false));
  } catch (err) {
    output.err(`${PROGRAM}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.ERROR;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
