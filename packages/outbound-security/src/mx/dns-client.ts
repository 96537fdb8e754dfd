/**
 * DNS lookups for MX selection and MTA-STS discovery, through Node's resolver
 * (c-ares) pointed at the servers the ini names. Every answer is one of four
 * outcomes, so callers can tell "the name does not exist" (permanent) from "the
 * resolver could not answer" (transient) without reading error codes (MX-3,
 * MX-4, MX-6).
 */
import { promises as dns } from 'node:dns';

export interface DnsSettings {
  /** `host` or `host:port` entries; empty = the system's resolvers. */
  servers: readonly string[];
  /** Per-try timeout in milliseconds. */
  timeoutMs: number;
  tries: number;
}

export type DnsAnswer<T> =
  { kind: 'answer'; records: T[] } | { kind: 'nodata' } | { kind: 'nxdomain' } | { kind: 'failure'; code: string; message: string };

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
}

/** Error codes c-ares gives for "the name exists but has no such record". */
const NODATA_CODES = new Set(['ENODATA']);
/** …and for "the name does not exist" (NXDOMAIN). */
const NXDOMAIN_CODES = new Set(['ENOTFOUND']);

/** Appends the root label so no search-list expansion can apply (MX-3). */
function absolute(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

async function ask<T>(query: () => Promise<T[]>): Promise<DnsAnswer<T>> {
  try {
    // Entries that are not there are dropped, never handed on to throw later.
    const records = (await query()).filter((record) => record !== null && record !== undefined);
    return records.length === 0 ? { kind: 'nodata' } : { kind: 'answer', records };
  } catch (err) {
    const code = typeof (err as NodeJS.ErrnoException).code === 'string' ? String((err as NodeJS.ErrnoException).code) : 'EUNKNOWN';
    if (NODATA_CODES.has(code)) return { kind: 'nodata' };
    if (NXDOMAIN_CODES.has(code)) return { kind: 'nxdomain' };
    return { kind: 'failure', code, message: (err as Error).message };
  }
}

export function createDnsClient(settings: DnsSettings): DnsClient {
  const resolver = new dns.Resolver({ timeout: settings.timeoutMs, tries: settings.tries });
  if (settings.servers.length > 0) resolver.setServers([...settings.servers]);
  return {
    mx: (name) => ask(() => resolver.resolveMx(absolute(name))),
    a: (name) => ask(() => resolver.resolve4(absolute(name))),
    aaaa: (name) => ask(() => resolver.resolve6(absolute(name))),
    txt: (name) => ask(async () => (await resolver.resolveTxt(absolute(name))).map((parts) => parts.join(''))),
  };
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
