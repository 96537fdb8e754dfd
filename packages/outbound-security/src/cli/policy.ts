/**
 * The `policy` commands of the admin CLI (OPS-4, STS-5): show a domain's
 * cached MTA-STS policy beside the live one (discovered and fetched now, with
 * the plugin's settings, without touching the cache), list the cache, purge a
 * domain's entry.
 */
import fs from 'node:fs';
import { createDnsClient, describeFailure, type DnsClient } from '../mx/dns-client';
import { fetchPolicyText } from '../mta-sts/fetch';
import { parsePolicy, parseStsTxtRecords, type MtaStsPolicy } from '../mta-sts/policy';
import { openPolicyStore } from '../state/open';
import { loadMxSettings, waitUntilConnected } from './config';
import type { OutboundMxConfig } from '../config/outbound-mx';
import type { CachedPolicy, PolicyRead } from '../mta-sts/store';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import type { CliContext } from './context';
import { badDomain, requireKey } from './keys';

export type PolicyCommand = { kind: 'policy-show'; domain: string } | { kind: 'policy-list' } | { kind: 'policy-purge'; domain: string };

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `policy show|purge DOMAIN`, `policy list`; a string is a usage error. */
export function parsePolicyCommand(line: CommandLine): PolicyCommand | string {
  const unknown = unknownOption(line);
  if (unknown !== undefined) return unknown;
  const [action, ...args] = line.words;
  switch (action) {
    case 'show':
    case 'purge':
      if (args.length !== 1 || args[0] === undefined) return `policy ${action} needs exactly one DOMAIN`;
      return (
        badDomain(args[0], { relay: false, literal: false }) ?? {
          kind: action === 'show' ? 'policy-show' : 'policy-purge',
          domain: args[0],
        }
      );
    case 'list':
      return args.length > 0 ? 'policy list takes no DOMAIN' : { kind: 'policy-list' };
    case undefined:
      return 'policy needs show, list or purge';
    default:
      return `unknown policy command "${action}"`;
  }
}

export { loadMxSettings } from './config';

export function formatCached(domain: string, read: PolicyRead, now = Date.now()): string {
  if (read.kind === 'none') return `${domain}: no cached policy`;
  if (read.kind === 'unreadable') return `${domain}: UNREADABLE: ${read.reason}`;
  const e: CachedPolicy = read.entry;
  const parsed = parsePolicy(e.text);
  const summary = parsed.ok
    ? `mode ${parsed.policy.mode}, max_age ${parsed.policy.maxAge}, mx ${parsed.policy.mx.map((m) => m.text).join(' ')}`
    : `INVALID: ${parsed.error}`;
  const state = e.expiresAt > now ? `expires ${iso(e.expiresAt)}` : `EXPIRED ${iso(e.expiresAt)}`;
  return `${domain}: id ${e.id}, ${summary}; fetched ${iso(e.fetchedAt)}, ${state}, id checked ${iso(e.checkedAt)}`;
}

export async function runPolicy(command: PolicyCommand, { configDir, settings, redisIni, output }: CliContext): Promise<number> {
  const store = openPolicyStore({ dataDir: settings.dataDir, store: settings.store, redisIni });
  await waitUntilConnected(store);
  try {
    switch (command.kind) {
      case 'policy-list': {
        const entries = await store.list();
        for (const { domain, read } of entries) output.out(formatCached(domain, read));
        if (entries.length === 0) output.err(`no policies cached in ${store.description}`);
        return entries.some((e) => e.read.kind === 'unreadable') ? 3 : 0;
      }
      case 'policy-purge': {
        const domain = requireKey(command.domain);
        output.out((await store.delete(domain)) ? `${domain}: cached policy purged` : `${domain}: no cached policy`);
        return 0;
      }
      case 'policy-show': {
        const domain = requireKey(command.domain);
        const read = await store.get(domain);
        output.out(`cached: ${formatCached(domain, read)}`);
        output.out(`live:   ${formatLivePolicy(await fetchLivePolicy(domain, loadMxSettings(configDir)))}`);
        return read.kind === 'unreadable' ? 3 : 0;
      }
    }
  } finally {
    await store.close();
  }
}

/** The live MTA-STS policy of a domain, discovered and fetched now (nothing cached). */
export type LivePolicy =
  | { kind: 'policy'; id: string; policy: MtaStsPolicy; address: string }
  | { kind: 'none'; reason: string }
  | { kind: 'failed'; reason: string };

/**
 * STS-1/STS-2/STS-3 with the plugin's settings: the TXT record, then the
 * HTTPS fetch and the parse. Shared by `policy show` and `mx show`.
 */
export async function fetchLivePolicy(domain: string, mx: OutboundMxConfig, dns: DnsClient = createDnsClient(mx.dns)): Promise<LivePolicy> {
  const txt = await dns.txt(`_mta-sts.${domain}`);
  if (txt.kind === 'failure') return { kind: 'failed', reason: `TXT lookup failed: ${describeFailure(txt)}` };
  const record = txt.kind === 'answer' ? parseStsTxtRecords(txt.records) : { kind: 'none' as const, reason: 'no TXT record' };
  if (record.kind === 'none') return { kind: 'none', reason: `no policy record (${record.reason})` };
  const extraCa = mx.mtaSts.caFile ? [fs.readFileSync(mx.mtaSts.caFile, 'utf8')] : [];
  const fetched = await fetchPolicyText(domain, dns, {
    timeoutMs: mx.mtaSts.fetchTimeoutMs,
    port: mx.mtaSts.httpsPort,
    extraCa,
    addressPolicy: mx.addressPolicy,
  });
  if (!fetched.ok) return { kind: 'failed', reason: `record id ${record.id}; fetch failed: ${fetched.error}` };
  const parsed = parsePolicy(fetched.text);
  if (!parsed.ok) return { kind: 'failed', reason: `record id ${record.id}; policy invalid: ${parsed.error}` };
  return { kind: 'policy', id: record.id, policy: parsed.policy, address: fetched.address };
}

/** One line for a live policy, as `policy show` prints it after "live:". */
export function formatLivePolicy(live: LivePolicy): string {
  if (live.kind !== 'policy') return live.reason;
  const p = live.policy;
  return `record id ${live.id}; mode ${p.mode}, max_age ${p.maxAge}, mx ${p.mx.map((m) => m.text).join(' ')} (from ${live.address})`;
}

export const policyCommand: CliCommand<PolicyCommand> = { options: {}, parse: parsePolicyCommand, run: runPolicy };
