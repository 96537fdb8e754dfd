/**
 * DNS lookups for MX selection and MTA-STS discovery, as raw DNS messages to
 * the servers the ini names (or the system's), through an answer cache that
 * honours TTLs (OPS-6). Every answer is one of four outcomes, so callers can
 * tell "the name does not exist" (permanent) from "the resolver could not
 * answer" (transient) without reading error codes (MX-3, MX-4, MX-6).
 */
import { getServers } from 'node:dns';
import { CachingTransport, DEFAULT_CACHE_MAX_TTL_S, DEFAULT_CACHE_MB } from '../dns/answer-cache';
import { createDnsTransport, type DnsTransport, type QueryOutcome, type RecordType, type WireSettings } from '../dns/wire';

export interface DnsSettings {
  /** `host` or `host:port` entries; empty = the system's resolvers. */
  servers: readonly string[];
  /** Per-try timeout in milliseconds. */
  timeoutMs: number;
  tries: number;
  /** Answer cache budget in bytes (default DEFAULT_CACHE_MB MiB); 0 = no cache. */
  cacheBytes?: number;
  /** Longest time an answer is kept, whatever its TTL (default DEFAULT_CACHE_MAX_TTL_S). */
  cacheMaxTtlS?: number;
  /**
   * DANE-1: ask for DNSSEC (DO and AD set) and report `secure` on answers the
   * resolver validated. The AD bit is believed only when `trustAd` says so
   * (DANE-8: every server asked is declared validating, see dns/resolver-trust).
   */
  dnssec?: boolean;
  trustAd?: boolean;
}

/** `secure` (DANE-1): the resolver validated the answer (AD) and is trusted to say so. */
export type DnsAnswer<T> =
  | { kind: 'answer'; records: T[]; secure?: true }
  | { kind: 'nodata'; secure?: true }
  | { kind: 'nxdomain'; secure?: true }
  | { kind: 'failure'; code: string; message: string };

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** The lookups the plugins make; tests of pure decisions may fake this. */
export interface DnsClient {
  mx(name: string): Promise<DnsAnswer<MxRecord>>;
  a(name: string): Promise<DnsAnswer<string>>;
  aaaa(name: string): Promise<DnsAnswer<string>>;
  /** Each TXT record with its character-strings joined (RFC 7208 §3.3 style). */
  txt(name: string): Promise<DnsAnswer<string>>;
  /** OPS-6: until when the answer to this question stays cached (ms since the epoch); undefined: not cached now. */
  cachedUntil?(name: string, type: 'MX' | 'A' | 'AAAA' | 'TXT'): number | undefined;
}

/** Appends the root label so no search-list expansion can apply (MX-3). */
function absolute(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

/** The rcode as the c-ares-style code logs and deferral texts have always shown. */
function rcodeFailure(rcode: string): { kind: 'failure'; code: string; message: string } {
  const code = rcode === 'SERVFAIL' ? 'ESERVFAIL' : rcode === 'REFUSED' ? 'EREFUSED' : `E${rcode}`;
  return { kind: 'failure', code, message: `the DNS server answered ${rcode}` };
}

function toAnswer<T>(outcome: QueryOutcome, type: RecordType, convert: (data: unknown) => T | undefined, trustAd: boolean): DnsAnswer<T> {
  if (outcome.kind === 'failure') return { kind: 'failure', code: outcome.code, message: outcome.message };
  const { rcode, answers, authenticated } = outcome.response;
  const secure = trustAd && authenticated ? { secure: true as const } : {};
  if (rcode === 'NXDOMAIN') return { kind: 'nxdomain', ...secure };
  if (rcode !== 'NOERROR') return rcodeFailure(rcode);
  const records: T[] = [];
  for (const rr of answers) {
    if (rr.type !== type) continue;
    // Entries that cannot be read are dropped, never handed on to throw later.
    const value = convert(rr.data);
    if (value !== undefined) records.push(value);
  }
  return records.length === 0 ? { kind: 'nodata', ...secure } : { kind: 'answer', records, ...secure };
}

const asAddress = (data: unknown): string | undefined => (typeof data === 'string' ? data : undefined);

function asMx(data: unknown): MxRecord | undefined {
  const mx = data as { exchange?: unknown; preference?: unknown } | null;
  if (!mx || typeof mx.exchange !== 'string' || typeof mx.preference !== 'number') return undefined;
  return { exchange: mx.exchange, priority: mx.preference };
}

/** Character-strings joined; bytes kept one to one (latin1), as Node's resolveTxt does. */
function asTxt(data: unknown): string | undefined {
  const parts = Array.isArray(data) ? data : [data];
  if (!parts.every((part) => Buffer.isBuffer(part) || typeof part === 'string')) return undefined;
  return parts.map((part: Buffer | string) => (typeof part === 'string' ? part : part.toString('latin1'))).join('');
}

/**
 * A DnsClient over any transport (the cache, or a test's). With `dnssec`,
 * queries carry DO and AD; `trustAd` decides whether AD becomes `secure`.
 */
export function dnsClientOver(transport: DnsTransport, dnssec = false, trustAd = false): DnsClient {
  const options = { dnssec };
  const ad = dnssec && trustAd;
  const ask = async <T>(name: string, type: RecordType, convert: (data: unknown) => T | undefined): Promise<DnsAnswer<T>> =>
    toAnswer(await transport.query(absolute(name), type, options), type, convert, ad);
  const cached = transport.cachedUntil?.bind(transport);
  return {
    mx: (name) => ask(name, 'MX', asMx),
    a: (name) => ask(name, 'A', asAddress),
    aaaa: (name) => ask(name, 'AAAA', asAddress),
    txt: (name) => ask(name, 'TXT', asTxt),
    ...(cached ? { cachedUntil: (name: string, type: RecordType) => cached(absolute(name), type, options) } : {}),
  };
}

/** The servers the client asks: the ini's, else the system's. */
export function effectiveServers(settings: DnsSettings): readonly string[] {
  return settings.servers.length > 0 ? settings.servers : getServers();
}

/** The transport (with the answer cache) the client and DANE lookups share. */
export function createCachedTransport(settings: DnsSettings, health?: WireSettings['health']): DnsTransport {
  const wire = createDnsTransport({
    servers: effectiveServers(settings),
    timeoutMs: settings.timeoutMs,
    tries: settings.tries,
    ...(health ? { health } : {}),
  });
  return new CachingTransport(wire, {
    maxBytes: settings.cacheBytes ?? DEFAULT_CACHE_MB * 1024 * 1024,
    maxTtlS: settings.cacheMaxTtlS ?? DEFAULT_CACHE_MAX_TTL_S,
  });
}

export function createDnsClient(settings: DnsSettings, transport: DnsTransport = createCachedTransport(settings)): DnsClient {
  return dnsClientOver(transport, settings.dnssec === true, settings.trustAd === true);
}

/** Short description of a failed answer for logs and deferral texts. */
export function describeFailure(answer: DnsAnswer<unknown>): string {
  switch (answer.kind) {
    case 'failure':
      return `${answer.code} (${answer.message})`;
    case 'nxdomain':
      return 'NXDOMAIN';
    case 'nodata':
      return 'no records';
    case 'answer':
      return 'answered';
  }
}
