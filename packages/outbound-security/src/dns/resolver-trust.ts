/**
 * DANE-8: whose AD ("validated") bit is believed. Only resolvers the admin
 * declares validating (`[dane] trusted_resolvers`) are believed, and only when
 * every server the plugins ask is one of them. Being on loopback is not
 * enough: a stub on loopback (systemd-resolved before v257, dnsmasq with
 * `proxy-dnssec`) copies the AD bit of whatever upstream it asks, so a forged
 * MX and TLSA answer would look validated and override an MTA-STS enforce
 * policy. A server is its address and port (53 unless given): a validating
 * unbound on 127.0.0.1:53 does not vouch for a stub on 127.0.0.1:5353.
 */
import { parseServer } from './wire';

export type ResolverTrust =
  /** Every server asked is declared: its AD bit is believed. */
  | { kind: 'declared' }
  /** Some server asked is not declared (or none is): `reason` names them, for the log and the CLI. */
  | { kind: 'undeclared'; reason: string };

/** `host:port` as one server is compared with another (`[v6]:port` for IPv6). */
export function serverKey(entry: string): string {
  const { host, port, family } = parseServer(entry);
  return family === 6 ? `[${host.toLowerCase()}]:${port}` : `${host}:${port}`;
}

/**
 * Whether the AD bit of `servers` (the ones the plugins ask: `[dns] servers`,
 * else the system's) is believed, given the declared `trusted` resolvers.
 */
export function resolverTrust(servers: readonly string[], trusted: readonly string[]): ResolverTrust {
  if (trusted.length === 0) return { kind: 'undeclared', reason: 'no validating resolver is declared ([dane] trusted_resolvers is empty)' };
  if (servers.length === 0) return { kind: 'undeclared', reason: 'no DNS server is configured' };
  const declared = new Set(trusted.map(serverKey));
  const others = servers.filter((entry) => !declared.has(serverKey(entry)));
  if (others.length === 0) return { kind: 'declared' };
  return {
    kind: 'undeclared',
    reason: `the DNS server${others.length > 1 ? 's' : ''} asked (${others.map(serverKey).join(', ')}) ${others.length > 1 ? 'are' : 'is'} not declared validating in [dane] trusted_resolvers (${trusted.map(serverKey).join(', ')})`,
  };
}

/** What an admin does to put DANE in effect, for the log line and `dane status`. */
export const DECLARE_RESOLVER_HINT =
  'to use DANE, run a validating resolver (for example unbound on 127.0.0.1) and declare it in outbound_mx.ini: ' +
  '[dns] servers=127.0.0.1 and [dane] trusted_resolvers=127.0.0.1';
