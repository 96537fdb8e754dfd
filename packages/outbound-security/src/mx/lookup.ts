/**
 * MX selection with DNS (MX-3 … MX-9): one MX query for the absolute A-label
 * name, implicit MX on NODATA only, null MX and NXDOMAIN as permanent
 * failures, resolver trouble as transient, then each host resolved to its
 * addresses and filtered by the address policy. OPS-5: at most
 * `max_mx_records` records considered and `max_addresses_per_mx` addresses
 * used per host.
 */
import { checkAddress, type AddressPolicy } from './address-policy';
import { describeFailure, type DnsAnswer, type DnsClient } from './dns-client';
import { DEFAULT_MAX_MX_RECORDS, filterAndCap, orderMxRecords, type MxFilter, type MxHost } from './selection';

/** OPS-5: addresses used per MX host (ini `max_addresses_per_mx`): thousands of A records are not thousands of connections. */
export const DEFAULT_MAX_ADDRESSES_PER_MX = 4;

/** An MX host ready for Haraka: its name (kept for certificate checks) and addresses. */
export interface ResolvedMx {
  host: string;
  priority: number;
  addresses: string[];
  /** DANE-2: the MX answer and both address answers of this host were DNSSEC-validated. */
  secure?: boolean;
  /** One of the host's address lookups (A or AAAA) failed: its DNSSEC status is unknown (DANE-2). */
  addressLookupFailed?: string;
}

/** DSN status codes used for permanent failures. */
export const DSN_BAD_DESTINATION = '5.1.2';
export const DSN_NULL_MX = '5.1.10';

export type MxLookupResult =
  /** `secure` (DANE-2): the MX RRset (or, for an implicit MX, the NODATA answer) was DNSSEC-validated. */
  | { kind: 'deliver'; mxs: ResolvedMx[]; implicit: boolean; notes: string[]; secure?: boolean }
  | { kind: 'null-mx'; reason: string }
  | { kind: 'permanent'; dsn: typeof DSN_BAD_DESTINATION; reason: string }
  | { kind: 'transient'; reason: string };

export interface MxLookupOptions {
  maxMx: number;
  /** OPS-5: MX records considered (default DEFAULT_MAX_MX_RECORDS). */
  maxMxRecords?: number;
  /** OPS-5: addresses kept per MX host (default DEFAULT_MAX_ADDRESSES_PER_MX). */
  maxAddressesPerMx?: number;
  addressPolicy: AddressPolicy;
  /** MX-8 seam: MTA-STS enforce supplies the policy's patterns. */
  filter?: MxFilter;
  random?: () => number;
}

/** `unused`: allowed addresses beyond the per-host limit (OPS-5). */
export type HostAddresses =
  | { kind: 'ok'; addresses: string[]; refused: string[]; unused: number; secure: boolean; failed?: string }
  | { kind: 'missing'; detail: string }
  | { kind: 'failure'; detail: string };

/**
 * Resolves a host's A then AAAA records and applies the address policy (MX-9);
 * keeps the first `maxAddresses` allowed ones (OPS-5), looking at no more
 * records than it needs for that.
 */
export async function resolveHost(
  dns: DnsClient,
  host: string,
  policy: AddressPolicy,
  maxAddresses: number = DEFAULT_MAX_ADDRESSES_PER_MX,
): Promise<HostAddresses> {
  const [a, aaaa] = await Promise.all([dns.a(host), dns.aaaa(host)]);
  const found = [...answerRecords(a), ...answerRecords(aaaa)];
  const failures = [a, aaaa].filter((answer) => answer.kind === 'failure');
  if (found.length === 0) {
    if (failures.length > 0) {
      return { kind: 'failure', detail: `address lookup for ${host} failed: ${failures.map(describeFailure).join(', ')}` };
    }
    const nx = a.kind === 'nxdomain' || aaaa.kind === 'nxdomain';
    return { kind: 'missing', detail: `${host} has ${nx ? 'no such name (NXDOMAIN)' : 'no A or AAAA records'}` };
  }
  const addresses: string[] = [];
  const refused: string[] = [];
  let checked = 0;
  for (const address of found) {
    if (addresses.length >= maxAddresses) break;
    checked++;
    const verdict = checkAddress(policy, String(address));
    if (verdict.allowed) addresses.push(address);
    else refused.push(verdict.reason);
  }
  // DANE-2: both answers validated (records or a validated denial).
  const secure = a.kind !== 'failure' && aaaa.kind !== 'failure' && a.secure === true && aaaa.secure === true;
  const failed = failures.length > 0 ? failures.map(describeFailure).join(', ') : undefined;
  return { kind: 'ok', addresses, refused, unused: found.length - checked, secure, ...(failed ? { failed } : {}) };
}

function answerRecords<T>(answer: DnsAnswer<T>): T[] {
  return answer.kind === 'answer' ? answer.records : [];
}

/** The MX answer of a domain, ordered (MX-3 … MX-7), before any filter, cap or address lookup. */
export type MxQueryResult =
  { kind: 'hosts'; hosts: MxHost[]; implicit: boolean; notes: string[]; secure: boolean } | Exclude<MxLookupResult, { kind: 'deliver' }>;

/**
 * The MX lookup (MX-3 … MX-9): the MX query, then the hosts' addresses. The
 * plan (delivery/plan.ts) asks the query once and may resolve its hosts twice
 * (unfiltered for DANE, then with the MTA-STS filter), so the two halves are
 * also callable on their own.
 */
export async function lookupMx(aLabel: string, dns: DnsClient, options: MxLookupOptions): Promise<MxLookupResult> {
  const query = await queryMx(aLabel, dns, options);
  return query.kind === 'hosts' ? resolveMxHosts(aLabel, query, dns, options) : query;
}

/** The MX query for the absolute A-label name: NODATA is an implicit MX, null MX and NXDOMAIN are permanent. */
export async function queryMx(
  aLabel: string,
  dns: DnsClient,
  options: Pick<MxLookupOptions, 'maxMxRecords' | 'random'>,
): Promise<MxQueryResult> {
  const answer = await dns.mx(aLabel);
  const notes: string[] = [];
  let hosts: MxHost[];
  let implicit = false;
  const secure = answer.kind !== 'failure' && answer.secure === true;
  switch (answer.kind) {
    case 'nxdomain':
      return { kind: 'permanent', dsn: DSN_BAD_DESTINATION, reason: `no such domain: ${aLabel} (NXDOMAIN)` };
    case 'failure':
      return { kind: 'transient', reason: `MX lookup for ${aLabel} failed: ${describeFailure(answer)}` };
    case 'nodata':
      implicit = true;
      hosts = [{ host: aLabel, priority: 0 }];
      notes.push(`${aLabel} has no MX records: implicit MX ${aLabel}`);
      break;
    case 'answer': {
      const maxRecords = options.maxMxRecords ?? DEFAULT_MAX_MX_RECORDS;
      const ordered = orderMxRecords(answer.records, options.random, maxRecords);
      if (ordered.kind === 'null-mx') {
        return { kind: 'null-mx', reason: `${aLabel} accepts no mail (null MX, RFC 7505)` };
      }
      if (ordered.notConsidered > 0) {
        notes.push(`${answer.records.length} MX records, only the ${maxRecords} most preferred considered (max_mx_records)`);
      }
      // Bounded: at most max_mx_records entries (one line for any number of malformed ones).
      for (const d of ordered.dropped.slice(0, maxRecords)) notes.push(`MX target "${d.exchange}" dropped: ${d.reason}`);
      hosts = ordered.hosts;
      if (hosts.length === 0) {
        return { kind: 'transient', reason: `no valid MX host for ${aLabel} (every target was dropped)` };
      }
      break;
    }
  }
  return { kind: 'hosts', hosts, implicit, notes, secure };
}

/**
 * The hosts of an MX answer that may be used: the filter (MTA-STS enforce),
 * the cap, then each host's addresses through the address policy (MX-8, MX-9,
 * OPS-5). `resolved` memoises the address lookups of one plan: a host asked
 * twice is resolved once.
 */
export async function resolveMxHosts(
  aLabel: string,
  query: Extract<MxQueryResult, { kind: 'hosts' }>,
  dns: DnsClient,
  options: MxLookupOptions,
  resolved: Map<string, Promise<HostAddresses>> = new Map(),
): Promise<MxLookupResult> {
  const { hosts, implicit, secure } = query;
  const notes = [...query.notes];
  const filtered = filterAndCap(hosts, options.maxMx, options.filter);
  if (filtered.kind === 'none-left') return { kind: 'transient', reason: filtered.reason };
  if (filtered.filteredOut.length > 0) {
    notes.push(`MX hosts not matching ${options.filter?.name ?? 'the filter'}: ${filtered.filteredOut.join(', ')}`);
  }
  if (filtered.capped.length > 0) {
    notes.push(`more than ${options.maxMx} MX hosts, not used: ${filtered.capped.join(', ')}`);
  }

  const maxAddresses = options.maxAddressesPerMx ?? DEFAULT_MAX_ADDRESSES_PER_MX;
  const resolve = (host: string): Promise<HostAddresses> => {
    let found = resolved.get(host);
    if (!found) {
      found = resolveHost(dns, host, options.addressPolicy, maxAddresses);
      resolved.set(host, found);
    }
    return found;
  };
  const addresses = await Promise.all(filtered.hosts.map((mx) => resolve(mx.host)));
  const mxs: ResolvedMx[] = [];
  const problems: string[] = [];
  let anyFailure = false;
  addresses.forEach((result, i) => {
    const mx = filtered.hosts[i] as MxHost;
    if (result.kind === 'ok') {
      problems.push(...result.refused.map((reason) => `${mx.host} → ${reason}`));
      if (result.unused > 0) {
        notes.push(`MX ${mx.host}: ${result.unused} more addresses not used (max_addresses_per_mx=${maxAddresses})`);
      }
      if (result.addresses.length > 0) {
        mxs.push({
          ...mx,
          addresses: result.addresses,
          ...(secure && result.secure ? { secure: true } : {}),
          ...(result.failed ? { addressLookupFailed: result.failed } : {}),
        });
      } else notes.push(`MX ${mx.host} dropped: every address is refused`);
    } else {
      if (result.kind === 'failure') anyFailure = true;
      problems.push(result.detail);
    }
  });
  notes.push(...problems.map((p) => `address refused or missing: ${p}`));
  if (mxs.length > 0) return { kind: 'deliver', mxs, implicit, notes, ...(secure ? { secure: true } : {}) };

  const detail = problems.join('; ');
  if (implicit && !anyFailure && addresses.every((r) => r.kind === 'missing')) {
    return {
      kind: 'permanent',
      dsn: DSN_BAD_DESTINATION,
      reason: `${aLabel} has no MX records and no address records to deliver to`,
    };
  }
  return { kind: 'transient', reason: `no usable MX address for ${aLabel}: ${detail}` };
}
