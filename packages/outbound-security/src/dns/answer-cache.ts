/**
 * A DNS answer cache that honours TTLs (OPS-6): a warm delivery asks no DNS
 * question whose answer is still valid. Positive answers live for the smallest
 * TTL of their records, NXDOMAIN and NODATA for the SOA's negative TTL
 * (RFC 2308 §5: min of the SOA record's TTL and its MINIMUM field); SERVFAIL,
 * REFUSED and timeouts are never kept, so a resolver that recovers is asked
 * again at once. TTLs are capped at `maxTtlS`; a TTL of 0 is not cached.
 * Concurrent identical questions share one query. OPS-5: the cache is bounded
 * in bytes; the oldest entries go first.
 */
import type { DnsResponse, DnsTransport, QueryOptions, QueryOutcome, RecordType } from './wire';

export const DEFAULT_CACHE_MB = 16;
export const DEFAULT_CACHE_MAX_TTL_S = 3600;
/** Rough cost of an entry beyond its wire size: decoded objects are larger than the message. */
const ENTRY_OVERHEAD_BYTES = 256;
const DECODED_SIZE_FACTOR = 4;

export interface AnswerCacheSettings {
  /** Memory budget in bytes; 0 turns the cache off. */
  maxBytes: number;
  maxTtlS: number;
}

interface Entry {
  outcome: QueryOutcome;
  expiresAt: number;
  bytes: number;
}

/** Seconds the response may be kept, or 0. */
export function cacheableTtl(response: DnsResponse, type: RecordType): number {
  if (response.rcode === 'NOERROR') {
    const answers = response.answers.filter((rr) => rr.type === type || rr.type === 'CNAME');
    if (answers.some((rr) => rr.type === type)) return Math.min(...answers.map((rr) => rr.ttl));
  }
  if (response.rcode === 'NOERROR' || response.rcode === 'NXDOMAIN') {
    const soa = response.authorities.find((rr) => rr.type === 'SOA');
    const minimum = (soa?.data as { minimum?: number } | undefined)?.minimum;
    if (!soa || typeof minimum !== 'number') return 0;
    return Math.min(soa.ttl, minimum);
  }
  return 0;
}

/** One cache entry per question: type, name (case and the root dot ignored), DNSSEC or not. */
function cacheKey(name: string, type: RecordType, options: QueryOptions): string {
  return `${type} ${name.toLowerCase().replace(/\.$/, '')}${options.dnssec ? ' +do' : ''}`;
}

export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
}

export class CachingTransport implements DnsTransport {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<QueryOutcome>>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly inner: DnsTransport,
    private readonly settings: AnswerCacheSettings,
    private readonly now: () => number = Date.now,
  ) {}

  query(name: string, type: RecordType, options: QueryOptions = {}): Promise<QueryOutcome> {
    if (this.settings.maxBytes <= 0) return this.inner.query(name, type, options);
    const key = cacheKey(name, type, options);
    const entry = this.entries.get(key);
    if (entry) {
      if (entry.expiresAt > this.now()) {
        this.hits++;
        return Promise.resolve(entry.outcome);
      }
      this.drop(key, entry);
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    this.misses++;
    const asked = this.inner.query(name, type, options).then((outcome) => {
      this.inFlight.delete(key);
      this.keep(key, type, outcome);
      return outcome;
    });
    this.inFlight.set(key, asked);
    return asked;
  }

  /**
   * OPS-6: until when the answer to this question is kept (ms since the epoch),
   * or undefined when it is not in the cache now (never kept, expired, evicted):
   * what was planned from the answer stays valid until then.
   */
  cachedUntil(name: string, type: RecordType, options: QueryOptions = {}): number | undefined {
    const entry = this.entries.get(cacheKey(name, type, options));
    return entry && entry.expiresAt > this.now() ? entry.expiresAt : undefined;
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size, bytes: this.bytes };
  }

  private keep(key: string, type: RecordType, outcome: QueryOutcome): void {
    if (outcome.kind !== 'response') return;
    const ttl = Math.min(cacheableTtl(outcome.response, type), this.settings.maxTtlS);
    if (!(ttl > 0)) return;
    const bytes = outcome.response.bytes * DECODED_SIZE_FACTOR + key.length * 2 + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.settings.maxBytes) return;
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    this.entries.set(key, { outcome, expiresAt: this.now() + ttl * 1000, bytes });
    this.bytes += bytes;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.bytes <= this.settings.maxBytes) break;
      this.drop(oldestKey, oldest);
    }
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
