/** Runs `body` with a fresh fixture from `setup`, cleaning it up afterwards whatever happens (the store contracts' per-test store). */
export async function withFresh<T extends { cleanup(): Promise<void> }>(
  setup: () => Promise<T>,
  body: (fresh: T) => Promise<void>,
): Promise<void> {
  const fresh = await setup();
  try {
    await body(fresh);
  } finally {
    await fresh.cleanup();
  }
}
