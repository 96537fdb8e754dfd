/**
 * The `table list` command of the admin CLI (POL-3): the policy table of the
 * config directory as the plugins read it: each rule in force with its line,
 * then each line that is not (or that has a warning), with the reason. Exit
 * status 5 when a line is not in force, so a table can be checked before it
 * is put in place (`--config` another directory).
 */
import path from 'node:path';
import { POLICY_TABLE_FILE, readPolicyTable } from '../policy-table/file';
import { ruleText, type PolicyRule } from '../policy-table/rule';
import { formatProblem, type PolicyTable, type TableProblem } from '../policy-table/table';
import { hasFlag, unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';

export type TableCommand = { kind: 'table-list'; json: boolean };

/** Exit status of `table list` when some lines of the table are not in force. */
export const EXIT_TABLE_PROBLEMS = 5;

const TABLE_OPTIONS = { json: { type: 'boolean' } } as const;

/** `table list [--json]`; a string is a usage error. */
export function parseTableCommand(line: CommandLine): TableCommand | string {
  const [action, ...args] = line.words;
  const unknown = unknownOption(line, TABLE_OPTIONS);
  if (unknown !== undefined) return unknown;
  if (action === undefined) return 'table needs list';
  if (action !== 'list') return `unknown table command "${action}"`;
  if (args.length > 0) return 'table list takes no DOMAIN';
  return { kind: 'table-list', json: hasFlag(line, 'json') };
}

/** The lines of `table list`: a summary, one line per rule, one per problem. */
export function formatTable(table: PolicyTable, exists: boolean): string[] {
  if (!exists) return [`${table.file}: no such file: no rules (a commented template ships in the outbound_tls plugin's config/)`];
  const ignored = table.errors;
  const lines = [`${table.file}: ${table.rules.length} rules in force, ${ignored} line${ignored === 1 ? '' : 's'} ignored`];
  for (const rule of table.rules) lines.push(`line ${String(rule.line).padEnd(5)} ${ruleText(rule)}`);
  for (const problem of table.problems) lines.push(`${problem.severity === 'error' ? 'IGNORED' : 'WARNING'}  ${formatProblem(problem)}`);
  return lines;
}

export interface RuleJson {
  line: number;
  destination: string;
  kind: PolicyRule['key']['kind'];
  level: PolicyRule['level'];
  match: readonly string[];
  exempt: readonly string[];
  auth_min_level?: string;
}

/** The `--json` form: the file, its rules and its problems. */
export function tableToJson(
  table: PolicyTable,
  exists: boolean,
): { file: string; exists: boolean; rules: RuleJson[]; problems: Array<Omit<TableProblem, 'file' | 'name'>> } {
  return {
    file: table.file,
    exists,
    rules: table.rules.map((rule) => ({
      line: rule.line,
      destination: rule.name,
      kind: rule.key.kind,
      level: rule.level,
      match: rule.match,
      exempt: rule.exempt,
      ...(rule.authMinLevel ? { auth_min_level: rule.authMinLevel } : {}),
    })),
    problems: table.problems.map(({ line, severity, message }) => ({ line, severity, message })),
  };
}

/** `table list`: reads the table (a file that cannot be read throws: status 1). */
export function runTable(command: TableCommand, { configDir, output }: CliContext): number {
  const { table, exists } = readPolicyTable(path.resolve(configDir));
  if (command.json) output.out(JSON.stringify(tableToJson(table, exists), null, 2));
  else for (const line of formatTable(table, exists)) output.out(line);
  if (table.errors > 0) output.err(`${table.errors} line(s) of ${path.join(path.resolve(configDir), POLICY_TABLE_FILE)} not in force`);
  return table.errors > 0 ? EXIT_TABLE_PROBLEMS : 0;
}

/** Reads only the table, not outbound_tls.ini: a table can be checked in a directory of its own. */
export const tableCommand: CliCommand<TableCommand> = {
  options: TABLE_OPTIONS,
  parse: parseTableCommand,
  readsSettings: false,
  run: runTable,
};
