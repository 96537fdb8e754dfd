/**
 * The DNS and DANE the per-message plan runs on (MX-3, DANE-1, DANE-8,
 * OPS-7), made from outbound_mx.ini in one place for outbound_mx and the
 * CLI's `mx show`, `probe` and `dane status`, so both ask the same resolvers
 * the same way:
 *
 * - the cached transport (`[dns] cache_mb`, `cache_max_ttl`) the MX, address
 *   and TLSA lookups share, and the DNS client over it;
 * - the resolver check (DaneStatus), which asks the resolver itself each time
 *   (a cached answer would say nothing about it now);
 * - the plan's DANE dependency for the resolver status in force.
 */
import type { OutboundMxConfig } from '../config/outbound-mx';
import { daneDeps } from '../dane/deps';
import type { TlsaLookup } from '../dane/lookup';
import type { DaneDeps } from '../dane/plan-step';
import { DaneStatus, type DaneStatusOptions, type DaneStatusState } from '../dane/resolver-status';
import { createDnsTransport, type DnsTransport } from '../dns/wire';
import { createCachedTransport, createDnsClient, effectiveServers, type DnsClient } from '../mx/dns-client';

/** OPS-7: told of each server's answer or silence (the resolver health follower). */
export type ResolverObserver = Parameters<typeof createCachedTransport>[1];

export interface PlanDns {
  /** The cached transport the client and the TLSA lookups share. */
  transport: DnsTransport;
  client: DnsClient;
}

/** The plan's DNS client over the cached transport, from `[dns]`. */
export function planDns(mx: OutboundMxConfig, observe?: ResolverObserver): PlanDns {
  const transport = createCachedTransport(mx.dns, observe);
  return { transport, client: createDnsClient(mx.dns, transport) };
}

/** DANE-8: the resolver check, straight to the resolvers of `[dns]` (never the cache). */
export function daneStatusFor(mx: OutboundMxConfig, onChange: (state: DaneStatusState) => void, options?: DaneStatusOptions): DaneStatus {
  const transport = createDnsTransport({ servers: effectiveServers(mx.dns), timeoutMs: mx.dns.timeoutMs, tries: mx.dns.tries });
  return new DaneStatus(transport, mx.dane, onChange, options);
}

/** DANE-1, DANE-8: the plan's DANE dependency for `status`, on the plan's transport; undefined while DANE is off or not in effect. */
export function planDaneDeps(
  mx: OutboundMxConfig,
  status: DaneStatusState,
  transport: DnsTransport,
  onLookup?: (host: string, found: TlsaLookup) => void,
): DaneDeps | undefined {
  return daneDeps({ mode: mx.dane.mode, status, transport, port: mx.mxPort, ...(onLookup ? { onLookup } : {}) });
}
