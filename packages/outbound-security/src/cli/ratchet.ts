/**
 * `haraka-outbound ratchet show|list|reset` (OPS-4, ST-2): the security level
 * stored for a domain (or a relay host's own, TLS-8), every stored level, and
 * a reset that the next delivery sees at once.
 */
import { openRatchetStore } from '../state/open';
import type { RatchetRead } from '../ratchet/store';
import { levelName } from '../sec-level';
import { hasFlag, unknownOption, type CliCommand, type CommandLine } from './command';
import { waitUntilConnected } from './config';
import type { CliContext } from './context';
import { badDomain, requireKey } from './keys';

export type RatchetCommand =
  { kind: 'ratchet-show'; domain: string } | { kind: 'ratchet-list'; json: boolean } | { kind: 'ratchet-reset'; domain: string };

/** Exit status when a stored entry cannot be read (ST-4). */
export const EXIT_UNREADABLE = 3;

const LIST_OPTIONS = { json: { type: 'boolean' } } as const;

/** `ratchet show|reset DOMAIN` (DOMAIN may be relay:<host>), `ratchet list [--json]`; a string is a usage error. */
export function parseRatchetCommand(line: CommandLine): RatchetCommand | string {
  const [action, ...args] = line.words;
  const unknown = unknownOption(line, action === 'list' ? LIST_OPTIONS : {});
  if (unknown !== undefined) return unknown;
  switch (action) {
    case 'show':
    case 'reset': {
      const [domain, ...rest] = args;
      if (domain === undefined || rest.length > 0) return `ratchet ${action} needs exactly one DOMAIN`;
      return badDomain(domain, { relay: true, literal: true }) ?? { kind: action === 'show' ? 'ratchet-show' : 'ratchet-reset', domain };
    }
    case 'list':
      if (args.length > 0) return 'ratchet list takes no DOMAIN';
      return { kind: 'ratchet-list', json: hasFlag(line, 'json') };
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

export async function runRatchet(command: RatchetCommand, { settings, redisIni, output }: CliContext): Promise<number> {
  const store = openRatchetStore({ dataDir: settings.dataDir, store: settings.store, redisIni });
  await waitUntilConnected(store);
  try {
    switch (command.kind) {
      case 'ratchet-show': {
        const domain = requireKey(command.domain);
        const read = await store.get(domain);
        output.out(formatRead(domain, read));
        return read.kind === 'unreadable' ? EXIT_UNREADABLE : 0;
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
        return entries.some(({ read }) => read.kind === 'unreadable') ? EXIT_UNREADABLE : 0;
      }
      case 'ratchet-reset': {
        const domain = requireKey(command.domain);
        const before = await store.get(domain);
        output.out(formatReset(domain, before, await store.reset(domain)));
        return 0;
      }
    }
  } finally {
    await store.close();
  }
}

export const ratchetCommand: CliCommand<RatchetCommand> = {
  options: LIST_OPTIONS,
  parse: parseRatchetCommand,
  run: runRatchet,
};
