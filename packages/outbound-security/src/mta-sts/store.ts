/**
 * The MTA-STS policy cache store (ST-1, STS-5): domain → the policy last
 * fetched, with its id and times. Implementations: `FilePolicyStore`
 * (./file-store, the embedded default) and `RedisPolicyStore` (./redis-store);
 * `state/open` picks one from outbound_tls.ini. An entry that cannot be read or
 * understood is reported as `unreadable`, never skipped silently: it may hide
 * an enforce policy (ST-5).
 */

export interface CachedPolicy {
  domain: string;
  /** The TXT record's id the policy was fetched under. */
  id: string;
  /** The policy as fetched (re-parsed on load; never trusted unparsed). */
  text: string;
  fetchedAt: number;
  /** fetchedAt + max_age. */
  expiresAt: number;
  /** Last time the TXT id was checked (STS-5 recheck). */
  checkedAt: number;
  /** Last time a delivery used it (STS-6 drops entries unused for longer than max_age). */
  usedAt: number;
}

export type PolicyRead = { kind: 'none' } | { kind: 'entry'; entry: CachedPolicy } | { kind: 'unreadable'; reason: string };

export interface PolicyStore {
  readonly description: string;
  get(domain: string): Promise<PolicyRead>;
  put(entry: CachedPolicy): Promise<void>;
  delete(domain: string): Promise<boolean>;
  list(): Promise<Array<{ domain: string; read: PolicyRead }>>;
  close(): Promise<void>;
  /** Stores that connect in the background (Redis): resolves true once usable, false after `timeoutMs`. */
  ready?(timeoutMs: number): Promise<boolean>;
  /**
   * OPS-6: a cheap, synchronous token that changes whenever any process (a
   * worker, the CLI's `policy purge`) deleted an entry; a resolver that keeps
   * policies in memory drops them when it changes, so a purge counts at the
   * next delivery without a per-delivery read of the domain's entry. Absent:
   * the store offers no such check (purges count within `recheck`).
   */
  purgeGeneration?(): string;
}
