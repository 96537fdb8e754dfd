/**
 * ST-7: the stores the plugins use across a store switch. Each view writes to
 * the store in force (the target); while what the previous stores hold is
 * still being carried over (state/switch.ts), a read asks them too, so no
 * read ever answers lower than before the switch:
 *
 * - ratchet: the highest level of the target and the previous stores; an
 *   unreadable entry anywhere is unreadable (ST-4); a previous store that
 *   cannot answer fails the read (the delivery defers as on_store_error says).
 * - policy cache: the target's entry, else a previous store's (unreadable
 *   included: ST-5).
 *
 * Once carried, the previous stores drop out and a read is the target's alone
 * (one call more on the hot path).
 */
import type { CachedPolicy, PolicyRead, PolicyStore } from '../mta-sts/store';
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import type { SecLevel } from '../sec-level';

export interface StoresInForce<T> {
  target: T;
  /** The previous stores still being carried over, oldest first. */
  previous: readonly T[];
}

/** The higher of several reads of one key: unreadable first (it may hold any level), then the highest level. */
export function higherRead(reads: readonly RatchetRead[]): RatchetRead {
  let best: RatchetRead = { kind: 'none' };
  for (const read of reads) {
    if (read.kind === 'unreadable') return read;
    if (read.kind === 'level' && (best.kind !== 'level' || read.entry.level > best.entry.level)) best = read;
  }
  return best;
}

export class CarryingRatchetStore implements RatchetStore {
  constructor(private readonly stores: () => StoresInForce<RatchetStore>) {}

  get description(): string {
    return this.stores().target.description;
  }

  get(domain: string): Promise<RatchetRead> {
    const { target, previous } = this.stores();
    if (previous.length === 0) return target.get(domain);
    return Promise.all([target, ...previous].map((store) => store.get(domain))).then(higherRead);
  }

  /** The higher of what every store remembers; undefined as soon as one of them would have to read. */
  peek(domain: string): RatchetRead | undefined {
    const { target, previous } = this.stores();
    const reads: RatchetRead[] = [];
    for (const store of [target, ...previous]) {
      const read = store.peek?.(domain);
      if (read === undefined) return undefined;
      reads.push(read);
    }
    return higherRead(reads);
  }

  raise(domain: string, level: SecLevel, host?: string, raisedAt?: number): Promise<SecLevel> {
    return this.stores().target.raise(domain, level, host, raisedAt);
  }

  /** Forgets the domain in the previous stores too, or the carry would bring it back. */
  async reset(domain: string): Promise<boolean> {
    const { target, previous } = this.stores();
    const results = await Promise.all([target, ...previous].map((store) => store.reset(domain)));
    return results.some(Boolean);
  }

  list(): Promise<Array<{ domain: string; read: RatchetRead }>> {
    return this.stores().target.list();
  }

  /** The stores belong to SharedStores, which closes them. */
  async close(): Promise<void> {}

  async ready(timeoutMs: number): Promise<boolean> {
    const { target } = this.stores();
    return target.ready ? target.ready(timeoutMs) : true;
  }
}

export class CarryingPolicyStore implements PolicyStore {
  constructor(private readonly stores: () => StoresInForce<PolicyStore>) {}

  get description(): string {
    return this.stores().target.description;
  }

  async get(domain: string): Promise<PolicyRead> {
    const { target, previous } = this.stores();
    const read = await target.get(domain);
    if (read.kind !== 'none') return read;
    for (const store of previous) {
      const earlier = await store.get(domain);
      if (earlier.kind !== 'none') return earlier;
    }
    return read;
  }

  put(entry: CachedPolicy): Promise<void> {
    return this.stores().target.put(entry);
  }

  /** A purge reaches the previous stores too, or the carry would bring the policy back. */
  async delete(domain: string): Promise<boolean> {
    const { target, previous } = this.stores();
    const results = await Promise.all([target, ...previous].map((store) => store.delete(domain)));
    return results.some(Boolean);
  }

  list(): Promise<Array<{ domain: string; read: PolicyRead }>> {
    return this.stores().target.list();
  }

  async close(): Promise<void> {}

  async ready(timeoutMs: number): Promise<boolean> {
    const { target } = this.stores();
    return target.ready ? target.ready(timeoutMs) : true;
  }

  purgeGeneration(): string {
    const { target, previous } = this.stores();
    // A previous store dropping out changes what a read answers: a new generation.
    return `${target.purgeGeneration?.() ?? 'none'}/${previous.length}`;
  }
}
