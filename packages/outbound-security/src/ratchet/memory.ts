/**
 * What one process remembers of the ratchet between store reads (OPS-6),
 * bounded in entries and in estimated bytes (OPS-5), the oldest forgotten
 * first. Forgetting is always safe: the store still holds every level; memory
 * only saves a read. The store that owns a memory tells it what changed (a
 * change marker for files, pub/sub messages for Redis) and decides when it may
 * be used at all.
 *
 * Three rules keep a remembered read from hiding a change:
 * - an unreadable entry (ST-4) is never remembered: it is read again each time,
 *   so it is reported again and its repair is seen at once;
 * - a read that started before a change was learnt of (`token()` before,
 *   `remember` after) is not remembered: it may predate the change;
 * - a read never replaces a remembered higher one: two reads running at once
 *   can finish in either order, and the lower is the older (levels only go up
 *   until a reset, and a reset is learnt of, which starts a new token).
 */
import { BoundedMap, stringBytes } from '../store/bounded-map';
import type { RatchetRead } from './store';

/** OPS-5: domains remembered per process by default. */
export const RATCHET_MEMORY_ENTRIES = 100_000;
/** OPS-5: estimated bytes remembered per process by default (about 100,000 entries with a host name). */
export const RATCHET_MEMORY_BYTES = 48 * 1024 * 1024;

export interface RatchetMemoryLimits {
  entries: number;
  bytes: number;
}

/** A read worth remembering: a level or the absence of one. */
export type RememberedRead = Exclude<RatchetRead, { kind: 'unreadable' }>;

interface Remembered {
  read: RememberedRead;
  /** From this time on (ms since epoch) the read is made again; Infinity: until a change is learnt of. */
  revalidateAt: number;
}

/** An upper estimate of the heap one remembered read holds: map slot, key, objects, host. */
export function rememberedBytes(domain: string, remembered: Remembered): number {
  const { read } = remembered;
  const entry = read.kind === 'level' ? 160 + stringBytes(read.entry.domain) + (read.entry.host ? stringBytes(read.entry.host) : 0) : 0;
  return 120 + stringBytes(domain) + entry;
}

/** none < PLAIN < TLS_INSECURE < TLS_SECURE. */
function rank(read: RememberedRead): number {
  return read.kind === 'level' ? read.entry.level : -1;
}

export class RatchetMemory {
  private readonly reads: BoundedMap<string, Remembered>;
  private generation = 0;

  constructor(limits: RatchetMemoryLimits = { entries: RATCHET_MEMORY_ENTRIES, bytes: RATCHET_MEMORY_BYTES }) {
    this.reads = new BoundedMap(limits.entries, () => limits.bytes, rememberedBytes);
  }

  /** Domains remembered now. */
  get size(): number {
    return this.reads.size;
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.reads.bytes;
  }

  /** The remembered read of `domain`, unless it is due to be made again at `now`. */
  recall(domain: string, now: number): RememberedRead | undefined {
    const remembered = this.reads.get(domain);
    return remembered !== undefined && now < remembered.revalidateAt ? remembered.read : undefined;
  }

  /** Take before reading the store; `remember` keeps the read only if nothing was learnt of since. */
  token(): number {
    return this.generation;
  }

  remember(domain: string, read: RatchetRead, token: number, revalidateAt = Infinity): void {
    if (read.kind === 'unreadable' || token !== this.generation) return;
    const existing = this.reads.get(domain);
    if (existing !== undefined && rank(existing.read) > rank(read)) return;
    this.reads.set(domain, { read, revalidateAt });
  }

  /** `domain` changed (or may have). */
  forget(domain: string): void {
    this.reads.delete(domain);
    this.generation++;
  }

  /** Anything may have changed. */
  forgetAll(): void {
    this.reads.clear();
    this.generation++;
  }
}
