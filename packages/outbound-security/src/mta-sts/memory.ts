/**
 * What one process remembers of MTA-STS between cache store reads (STS-5,
 * OPS-5): maps bounded in entries *and* in estimated bytes, forgetting the
 * least recently stored first. Forgetting is always safe: the cache store
 * (files or Redis) still holds every policy; memory only saves a read.
 */
import type { MtaStsPolicy } from './policy';
import type { CachedPolicy } from './store';

/** Domains remembered per process, for each of the in-memory maps; the oldest go first. */
export const MEMORY_LIMIT = 50_000;

/** OPS-5: default memory budget (ini `[mta_sts] memory_mb`) for the three maps together. */
export const DEFAULT_MEMORY_BUDGET_MB = 64;

/** Share of the budget for policies; remembered absences and failures get an eighth each. */
export const POLICY_SHARE = 3 / 4;

/** Bytes counted for a JavaScript string: UTF-16 at worst, plus the string header. */
function stringBytes(text: string): number {
  return 2 * text.length + 24;
}

/**
 * An upper estimate of the heap a remembered policy holds: its text (kept for
 * writing the entry back), the parsed patterns (an object and two strings
 * each) and their lookup sets, the entry and the map slot.
 */
export function policyBytes(entry: CachedPolicy, policy: MtaStsPolicy): number {
  let patterns = 0;
  for (const p of policy.mx) patterns += 120 + stringBytes(p.text) + stringBytes(p.base);
  return 400 + stringBytes(entry.text) + stringBytes(entry.id) + 2 * stringBytes(entry.domain) + patterns;
}

/** A remembered failure or absence: a key, a number and maybe a reason. */
export function noteBytes(domain: string, reason = ''): number {
  return 160 + 2 * stringBytes(domain) + (reason === '' ? 0 : stringBytes(reason));
}

/**
 * A Map that forgets its oldest entries beyond `limit` entries or `budget()`
 * estimated bytes (read on every insert, so a reload applies at once), so
 * memory stays bounded whatever the traffic. An entry larger than the whole
 * budget is not kept at all.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  private readonly costs = new Map<K, number>();
  private total = 0;

  constructor(
    private readonly limit: number,
    private readonly budget: () => number,
    private readonly cost: (key: K, value: V) => number,
  ) {
    super();
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.total;
  }

  override set(key: K, value: V): this {
    if (this.has(key)) this.delete(key); // refreshed entries move to the young end
    // Map's constructor calls set() before our fields exist; it is never given entries here.
    if (this.costs === undefined) return super.set(key, value);
    const cost = this.cost(key, value);
    const budget = this.budget();
    if (cost > budget) return this;
    super.set(key, value);
    this.costs.set(key, cost);
    this.total += cost;
    while (this.size > this.limit || this.total > budget) {
      const oldest = this.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    return this;
  }

  override delete(key: K): boolean {
    const cost = this.costs.get(key);
    if (cost !== undefined) {
      this.total -= cost;
      this.costs.delete(key);
    }
    return super.delete(key);
  }

  override clear(): void {
    this.costs.clear();
    this.total = 0;
    super.clear();
  }
}
