/**
 * Pure MX list decisions (MX-5, MX-7, MX-8): null MX detection, ordering by
 * preference with ties shuffled, duplicate and invalid target removal, the
 * policy filter seam and the cap. No I/O here.
 */
import { normaliseHostName, printable } from './domain';
import type { MxRecord } from './dns-client';

export interface MxHost {
  host: string;
  priority: number;
}

export interface DroppedTarget {
  exchange: string;
  reason: string;
}

export type OrderedMx = { kind: 'null-mx' } | { kind: 'hosts'; hosts: MxHost[]; dropped: DroppedTarget[] };

/**
 * A filter applied to MX host names before the cap (MX-8). MTA-STS provides
 * one in enforce mode; `name` appears in logs and deferral texts.
 */
export interface MxFilter {
  readonly name: string;
  accepts(host: string): boolean;
}

/** RFC 7505: exactly one MX, preference 0, target "." (c-ares reports ""). */
export function isNullMx(records: readonly MxRecord[]): boolean {
  if (records.length !== 1) return false;
  const only = records[0];
  return only !== undefined && only.priority === 0 && isRootTarget(only.exchange);
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
 * its best preference) and drops targets that are not valid host names.
 */
export function orderMxRecords(records: readonly MxRecord[], random: () => number = Math.random): OrderedMx {
  if (isNullMx(records)) return { kind: 'null-mx' };
  const dropped: DroppedTarget[] = [];
  const best = new Map<string, number>();
  for (const record of records) {
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
    const seen = best.get(host);
    if (seen === undefined || record.priority < seen) best.set(host, record.priority);
  }
  const byPriority = new Map<number, MxHost[]>();
  for (const [host, priority] of best) {
    const group = byPriority.get(priority) ?? [];
    group.push({ host, priority });
    byPriority.set(priority, group);
  }
  const hosts = [...byPriority.keys()].sort((a, b) => a - b).flatMap((priority) => shuffle(byPriority.get(priority) ?? [], random));
  return { kind: 'hosts', hosts, dropped };
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
