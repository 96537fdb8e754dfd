/**
 * Memory that stays bounded whatever the traffic (OPS-5): what a process
 * remembers of the stores between reads (MTA-STS policies, ratchet levels) is
 * kept in maps bounded in entries *and* in estimated bytes, forgetting the
 * least recently stored first. Forgetting is always safe: the store still
 * holds everything; memory only saves a read.
 */

/** Bytes counted for a JavaScript string in a cost estimate: UTF-16 at worst, plus the string header. */
export function stringBytes(text: string): number {
  return 2 * text.length + 24;
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
