/**
 * Pure MX list decisions (MX-5, MX-7, MX-8, OPS-5): null MX detection,
 * ordering by preference with ties shuffled, duplicate and invalid target
 * removal, the `max_mx_records` bound, the policy filter seam and the cap. No
 * I/O here.
 */
import { normaliseHostName, printable } from '../domain';
import type { MxRecord } from './dns-client';

export interface MxHost {
  host: string;
  priority: number;
}

export interface DroppedTarget {
  exchange: string;
  reason: string;
}

/** OPS-5: MX records considered per answer, the most preferred first (ini `max_mx_records`). */
export const DEFAULT_MAX_MX_RECORDS = 50;

export type OrderedMx =
  | { kind: 'null-mx' }
  /** `notConsidered`: records beyond the `max_mx_records` most preferred (OPS-5). */
  | { kind: 'hosts'; hosts: MxHost[]; dropped: DroppedTarget[]; notConsidered: number };

/**
 * A filter applied to MX host names before the cap (MX-8). MTA-STS provides
 * one in enforce mode; `name` appears in logs and deferral texts.
 */
export interface MxFilter {
  readonly name: string;
  accepts(host: string): boolean;
}

/** A well-formed record: resolvers (or fakes of them) may hand over `null` or half-filled entries. */
function isRecord(record: unknown): record is MxRecord {
  if (record === null || typeof record !== 'object') return false;
  const r = record as Partial<MxRecord>;
  return typeof r.exchange === 'string' && typeof r.priority === 'number';
}

/**
 * RFC 7505: a single MX, preference 0, target "." (c-ares reports ""). The same
 * record repeated in one answer is still that single record (MX-5).
 */
export function isNullMx(records: readonly MxRecord[]): boolean {
  const wellFormed = records.filter(isRecord);
  return wellFormed.length > 0 && wellFormed.every((r) => r.priority === 0 && isRootTarget(r.exchange));
}

function isRootTarget(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Fisher–Yates shuffle with an injectable random source (for tests). */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items;
}

/**
 * Orders MX records by preference (ties shuffled), keeps each host once (at
 * its best preference) and drops targets that are not valid host names and
 * entries that are not records at all. Only the `maxRecords` most preferred
 * records are looked at (OPS-5: a hostile answer of thousands of records costs
 * a sort of numbers, not thousands of host name checks).
 */
export function orderMxRecords(
  records: readonly MxRecord[],
  random: () => number = Math.random,
  maxRecords: number = DEFAULT_MAX_MX_RECORDS,
): OrderedMx {
  if (isNullMx(records)) return { kind: 'null-mx' };
  const dropped: DroppedTarget[] = [];
  const wellFormed: MxRecord[] = [];
  for (const record of records) {
    if (isRecord(record)) wellFormed.push(record);
    else dropped.push({ exchange: '?', reason: 'malformed entry in the resolver answer' });
  }
  // Shuffled, then stably sorted: ties stay in random order, also across the cut.
  const considered = shuffle(wellFormed, random).sort((a, b) => a.priority - b.priority);
  const notConsidered = Math.max(0, considered.length - maxRecords);
  considered.length = Math.min(considered.length, maxRecords);
  const best = new Map<string, number>();
  for (const record of considered) {
    if (isRootTarget(record.exchange)) {
      dropped.push({ exchange: '.', reason: 'null MX listed beside other MX records' });
      continue;
    }
    const host = normaliseHostName(record.exchange);
    if (host === null) {
      dropped.push({ exchange: printable(record.exchange), reason: 'not a valid host name' });
      continue;
    }
    if (!Number.isInteger(record.priority) || record.priority < 0 || record.priority > 65535) {
      dropped.push({ exchange: host, reason: `invalid preference ${record.priority}` });
      continue;
    }
    if (!best.has(host)) best.set(host, record.priority); // sorted: the first seen is the best
  }
  const hosts = [...best].map(([host, priority]) => ({ host, priority }));
  return { kind: 'hosts', hosts, dropped, notConsidered };
}

export type FilteredMx =
  { kind: 'hosts'; hosts: MxHost[]; filteredOut: string[]; capped: string[] } | { kind: 'none-left'; reason: string };

/** Applies the policy filter, then the cap (MX-8). */
export function filterAndCap(hosts: readonly MxHost[], maxMx: number, filter?: MxFilter): FilteredMx {
  const filteredOut: string[] = [];
  const kept = filter
    ? hosts.filter((mx) => {
        const ok = filter.accepts(mx.host);
        if (!ok) filteredOut.push(mx.host);
        return ok;
      })
    : [...hosts];
  if (kept.length === 0 && filter && hosts.length > 0) {
    return {
      kind: 'none-left',
      reason: `no MX host matches ${filter.name} (MX hosts: ${hosts.map((mx) => mx.host).join(', ')})`,
    };
  }
  const capped = kept.slice(maxMx).map((mx) => mx.host);
  return { kind: 'hosts', hosts: kept.slice(0, maxMx), filteredOut, capped };
}
