/**
 * What each command file of haraka-outbound exports (ARC-3): its options as
 * `util.parseArgs` takes them, a `parse` from the words and options of the
 * command line to the command (or a usage error naming the value), and a
 * `run` with the one context every command gets. The entry (cli.ts) reads the
 * command line with `util.parseArgs` and dispatches by the command's name.
 */
import type { CliContext } from './context';

/**
 * One option, as `util.parseArgs` takes it; a value option says what its
 * value is, for the usage error when it has none (`--timeout needs a number of seconds`).
 */
export type CliOption = { type: 'boolean'; short?: string } | { type: 'string'; short?: string; value: string };

export type CliOptions = Readonly<Record<string, CliOption>>;

/** One option given on the command line: its name, what was typed (for messages), its value (`true`: given without one). */
export interface GivenOption {
  name: string;
  typed: string;
  value: string | true;
}

/** What the command line gave a command: the words after its name, and the options that are not global, in order. */
export interface CommandLine {
  words: string[];
  options: GivenOption[];
}

export interface CliCommand<C extends { kind: string }> {
  /** Its options; they may stand anywhere on the line, before the command's name too. */
  readonly options: CliOptions;
  /** The command, or a usage error (status 2). Reads nothing. */
  parse(line: CommandLine): C | string;
  /** false: runs without reading outbound_tls.ini and redis.ini (table list checks a table on its own). */
  readonly readsSettings?: false;
  /** Runs the command; resolves with the exit status. */
  run(command: C, context: CliContext): Promise<number> | number;
}

/**
 * `unknown option --yaml` for the first option given that `allowed` does not
 * hold (a flag given a value, `--json=x`, is not the flag); undefined when all are allowed.
 */
export function unknownOption(line: CommandLine, allowed: CliOptions = {}): string | undefined {
  const unknown = line.options.find(({ name, value }) => {
    const option = Object.hasOwn(allowed, name) ? allowed[name] : undefined;
    return option === undefined || (option.type === 'boolean') !== (value === true);
  });
  return unknown && `unknown option ${unknown.typed}`;
}

/** The value of option `name` (the last one when it is given more than once, as util.parseArgs keeps it). */
export function optionValue(line: CommandLine, name: string): string | undefined {
  const value = line.options.filter((option) => option.name === name).at(-1)?.value;
  return typeof value === 'string' ? value : undefined;
}

/** Whether flag `name` was given. */
export function hasFlag(line: CommandLine, name: string): boolean {
  return line.options.some((option) => option.name === name && option.value === true);
}
