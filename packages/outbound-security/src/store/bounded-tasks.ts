/**
 * Work over many items with a bound on how much runs at once (OPS-5): a list of
 * a store's entries, the TLS reports due, never one promise per item at a time.
 */

/** `fn` over `items`, at most `limit` at a time; the results in the items' order. Rejects with the first failure. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  });
  await Promise.all(workers);
  return results;
}
