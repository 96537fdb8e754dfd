/**
 * DANE in the admin CLI (DANE-1, DANE-2, DANE-3, DANE-5, DANE-6): whether
 * DANE is in effect (`dane status`, and the first DANE line of `mx show`), and
 * what the plan saw on the way: the DNSSEC status of the MX answer and of each
 * host's addresses, each host's TLSA records or why it has none, and whether
 * DANE applies to the delivery (then MTA-STS is not used).
 *
 * The plan gets the plugin's own DANE dependency (dane/deps) over the same
 * kind of cached transport, after a one-shot resolver check (DaneStatus), so
 * what `mx show` reports is what outbound_mx does; the DNS client and the TLSA
 * lookups are only watched on the way, never answered differently.
 */
import type { OutboundMxConfig } from '../config/outbound-mx';
import { DECLARE_RESOLVER_HINT } from '../dns/resolver-trust';
import { daneStatusFor, planDaneDeps, planDns } from '../delivery/dns';
import type { TlsaLookup } from '../dane/lookup';
import type { DaneDeps } from '../dane/plan-step';
import type { DaneStatusState } from '../dane/resolver-status';
import { describeTlsaParameters, formatTlsa } from '../dane/tlsa';
import { unknownOption, type CliCommand, type CommandLine } from './command';
import { loadMxSettings } from './config';
import type { CliContext } from './context';
import type { DnsAnswer, DnsClient } from '../mx/dns-client';
import type { DeliveryPlan, PolicyInEffect } from '../delivery/plan';
import type { PolicyRule } from '../policy-table/rule';

/** Exit status of `dane status` when DANE is on or observed but not in effect (or its status unknown). */
export const EXIT_DANE_NOT_IN_EFFECT = 6;

export type DaneCommand = { kind: 'dane-status' };

/** What the CLI saw of DANE while planning one delivery. */
export interface DaneView {
  mode: OutboundMxConfig['dane']['mode'];
  /** The name the resolver check asked for (`[dane] probe`). */
  probe: string;
  /** The resolver check's outcome: off, in-effect or not-in-effect. */
  status: DaneStatusState;
  /** `MX name`, `A name`, `AAAA name` → whether the answer was DNSSEC-validated (names lowercase, no trailing dot). */
  secure: Map<string, boolean>;
  /** Per MX host: the outcome of its TLSA lookup, for the hosts the plan asked about. */
  tlsa: Map<string, TlsaLookup>;
}

/** The plan's DNS client and DANE dependency, watched; `view` fills in as the plan runs. */
export interface DaneSetup {
  view: DaneView;
  dns: DnsClient;
  dane: DaneDeps | undefined;
}

const key = (type: string, name: string): string => `${type} ${name.replace(/\.$/, '').toLowerCase()}`;

/**
 * DANE-1, DANE-8: the resolver check, once, as the plugin makes it at startup
 * (straight to the resolver). One answer without AD is reported as "not in
 * effect" at once: the plugin waits for three in a row before it says so.
 */
export async function checkDaneStatus(mx: OutboundMxConfig): Promise<DaneStatusState> {
  const status = daneStatusFor(mx, () => undefined, { notValidatingAfter: 1 });
  await status.check();
  status.stop();
  return status.current;
}

/** The DNS client and DANE dependency outbound_mx would plan with, from outbound_mx.ini. */
export async function setUpDane(mx: OutboundMxConfig): Promise<DaneSetup> {
  const { transport, client: inner } = planDns(mx);
  const status = await checkDaneStatus(mx);
  const view: DaneView = { mode: mx.dane.mode, probe: mx.dane.probe, status, secure: new Map(), tlsa: new Map() };
  const watch =
    (type: string, lookup: (name: string) => Promise<DnsAnswer<never>>) =>
    async (name: string): Promise<DnsAnswer<never>> => {
      const answer = await lookup(name);
      view.secure.set(key(type, name), answer.kind !== 'failure' && answer.secure === true);
      return answer;
    };
  const dns: DnsClient = {
    mx: watch('MX', (name) => inner.mx(name) as Promise<DnsAnswer<never>>),
    a: watch('A', (name) => inner.a(name) as Promise<DnsAnswer<never>>),
    aaaa: watch('AAAA', (name) => inner.aaaa(name) as Promise<DnsAnswer<never>>),
    txt: (name) => inner.txt(name),
  };
  const dane = planDaneDeps(mx, status, transport, (host, found) => view.tlsa.set(host.replace(/\.$/, '').toLowerCase(), found));
  return { view, dns, dane };
}

/** The status line: `in effect (mode=on) …`, `not in effect: reason …`, `off …`. */
export function describeDaneStatus(view: Pick<DaneView, 'mode' | 'probe' | 'status'>): string {
  switch (view.status.kind) {
    case 'off':
      return 'off ([dane] mode=off): no TLSA lookups, MTA-STS as without DANE';
    case 'in-effect':
      return `in effect (mode=${view.mode}): the DNS resolver validates DNSSEC (SOA ${view.probe} answered with AD)`;
    case 'not-in-effect':
      return view.status.cause === 'undeclared'
        ? `not in effect: ${view.status.reason}; ${DECLARE_RESOLVER_HINT}`
        : `not in effect: ${view.status.reason}; TLSA records are not checked and nothing is deferred because of DANE`;
    case 'unknown':
      return `status unknown: ${view.status.reason}; outbound_mx skips the hosts of DNSSEC-validated MX answers (deferred, never used without DANE) until a check succeeds`;
    case 'checking':
      return 'not checked yet';
  }
}

/** One host's addresses: secure when its A and AAAA answers both were validated. */
function addressesSecure(view: DaneView, host: string): boolean | undefined {
  const a = view.secure.get(key('A', host));
  const aaaa = view.secure.get(key('AAAA', host));
  if (a === undefined && aaaa === undefined) return undefined;
  return a === true && aaaa === true;
}

/** The TLSA part of a host's line, or the lines of its records. */
function tlsaLines(view: DaneView, host: string, mxSecure: boolean, exempt: boolean): string[] {
  const found = view.tlsa.get(host);
  if (found === undefined) {
    if (view.status.kind === 'unknown') return ['TLSA not looked up (DANE status unknown)'];
    if (view.status.kind !== 'in-effect') return ['TLSA not looked up (DANE not in effect)'];
    if (exempt) return ['TLSA not looked up (exempt=dane)'];
    if (!mxSecure) return ['TLSA not looked up (the MX answer is insecure)'];
    if (addressesSecure(view, host) !== true) return ['TLSA not looked up (addresses insecure)'];
    return ['TLSA not looked up'];
  }
  switch (found.kind) {
    case 'failed':
      return view.mode === 'observe'
        ? [`lookup failed: ${found.reason}; mode=on would skip this host, observe keeps it`]
        : [`lookup failed: ${found.reason}, host skipped`];
    case 'none':
      return /no TLSA records/.test(found.reason)
        ? [`${found.name}: no TLSA (secure denial): no DANE for this host`]
        : [`${found.name}: insecure (not DNSSEC-validated): no DANE for this host`];
    case 'dane': {
      const { rrset } = found;
      const usable = rrset.kind === 'usable' ? rrset.usable : [];
      const lines = [
        ...usable.map((record) => `${found.name} ${formatTlsa(record)}: usable (${describeTlsaParameters(record)})`),
        ...rrset.unusable.map(({ record, reason }) => `${found.name} ${formatTlsa(record)}: unusable: ${reason}`),
        ...found.malformed.map((reason) => `${found.name}: unreadable record: ${reason}`),
      ];
      if (usable.length === 0) lines.push(`${found.name}: no usable record: TLS required without authentication (RFC 7672 §3.1.3)`);
      return lines;
    }
  }
}

/**
 * The DANE lines of `mx show`: the status, the MX answer's DNSSEC status, one
 * `tlsa` line per MX host (per record), and whether DANE applies (DANE-5).
 */
export function formatDaneLines(
  view: DaneView,
  plan: DeliveryPlan<PolicyInEffect>,
  rule: PolicyRule | null,
  row: (label: string, value: string) => string,
): string[] {
  const lines = [row('dane', describeDaneStatus(view))];
  if (view.status.kind === 'off' || plan.kind === 'null-mx' || plan.destination?.kind !== 'domain') return lines;
  const domain = plan.destination.aLabel;
  const mxSecure = view.secure.get(key('MX', domain));
  if (mxSecure !== undefined) {
    lines.push(row('dnssec', mxSecure ? 'MX answer secure (DNSSEC-validated)' : 'MX answer insecure (not DNSSEC-validated)'));
  }
  const exempt = rule?.exempt.includes('dane') === true;
  const planned = plan.kind === 'deliver' ? plan.mxs.map((mx) => mx.host).filter((host): host is string => host !== undefined) : [];
  const hosts = [...new Set([...planned.map((h) => h.replace(/\.$/, '').toLowerCase()), ...view.tlsa.keys()])];
  for (const host of hosts) {
    const secure = addressesSecure(view, host);
    const addresses = secure === undefined ? '' : secure ? ' (addresses secure)' : ' (addresses insecure)';
    for (const line of tlsaLines(view, host, mxSecure === true, exempt)) lines.push(row('tlsa', `${host}${addresses}: ${line}`));
  }
  if (view.status.kind !== 'in-effect' && view.status.kind !== 'unknown') return lines;
  lines.push(row('dane', daneVerdict(view, plan, mxSecure === true, exempt, rule)));
  return lines;
}

function daneVerdict(
  view: DaneView,
  plan: DeliveryPlan<PolicyInEffect>,
  mxSecure: boolean,
  exempt: boolean,
  rule: PolicyRule | null,
): string {
  if (exempt) return `not used for this domain: exempt=dane of policy table rule ${rule?.label ?? ''} (POL-2)`;
  if (view.status.kind === 'unknown') {
    if (!mxSecure) return 'does not apply: the MX answer is not DNSSEC-validated';
    if (plan.kind === 'transient' && plan.cause === 'dane') return `status unknown, every MX host is skipped: ${plan.reason}`;
    return 'status unknown: the hosts with DNSSEC-validated addresses are skipped (DANE-8), the others used without DANE';
  }
  if (plan.kind === 'deliver' && plan.state.dane) {
    const hosts = Object.keys(plan.state.dane.hosts);
    const sts = plan.policy?.kind === 'policy' ? '; MTA-STS is not used (DANE-5)' : '';
    const observe = view.mode === 'observe' ? ' (observe: what mode=on would refuse is logged and counted, not refused)' : '';
    return `applies: connections to ${hosts.join(', ')} must match their TLSA records (DANE-4: a match is TLS_SECURE, a mismatch is abandoned before MAIL FROM)${sts}${observe}`;
  }
  if (plan.kind === 'transient' && plan.cause === 'dane') return `applies, but no MX host is left: ${plan.reason}`;
  if (plan.kind !== 'deliver') return 'does not apply (no MX to deliver to)';
  if (!mxSecure) return 'does not apply: the MX answer is not DNSSEC-validated';
  if (view.tlsa.size === 0) return 'does not apply: no MX host has DNSSEC-validated addresses';
  return 'does not apply: no MX host publishes TLSA records';
}

/** `dane status`; a string is a usage error. */
export function parseDaneCommand(line: CommandLine): DaneCommand | string {
  const unknown = unknownOption(line);
  if (unknown !== undefined) return unknown;
  return line.words.length === 1 && line.words[0] === 'status' ? { kind: 'dane-status' } : 'dane needs status';
}

/** `dane status`: the resolver check of outbound_mx, once; exit 6 when DANE is on or observed but not in effect. */
export async function runDaneStatus(_command: DaneCommand, { configDir, output }: CliContext): Promise<number> {
  const mx = loadMxSettings(configDir);
  const status = await checkDaneStatus(mx);
  output.out(`DANE ${describeDaneStatus({ mode: mx.dane.mode, probe: mx.dane.probe, status })}`);
  return status.kind === 'not-in-effect' || status.kind === 'unknown' ? EXIT_DANE_NOT_IN_EFFECT : 0;
}

export const daneCommand: CliCommand<DaneCommand> = { options: {}, parse: parseDaneCommand, run: runDaneStatus };
