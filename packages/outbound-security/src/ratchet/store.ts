/**
 * The ratchet store (ST-1): recipient domain (lowercase A-label, or an address
 * literal such as `[192.0.2.1]`) → the highest security level seen. Levels only
 * go up through `raise`; only the operator lowers them, with `reset`.
 */
import type { SecLevel } from '../sec-level';

export interface RatchetEntry {
  domain: string;
  level: SecLevel;
  /** When the stored level was reached (ms since epoch), if the store knows. */
  raisedAt?: number;
  /** The MX host whose connection raised it, if the store knows. */
  host?: string;
}

export type RatchetRead =
  | { kind: 'none' }
  | { kind: 'level'; entry: RatchetEntry }
  /** The entry exists but cannot be read or understood: it may hold any level (ST-4). */
  | { kind: 'unreadable'; reason: string };

export interface RatchetStore {
  /** A short name for logs: `file:/var/lib/haraka/ratchet`, `redis:…`. */
  readonly description: string;
  get(domain: string): Promise<RatchetRead>;
  /**
   * OPS-6: what `get` would answer now from this process's memory alone (no
   * I/O, no wait), or undefined when `get` has to read (not remembered, a
   * change may be pending, an invalid key: `get` says why). Never throws.
   */
  peek?(domain: string): RatchetRead | undefined;
  /**
   * Records that `level` was seen for `domain`. Atomic and monotonic: the stored
   * level afterwards is max(stored, level), whatever other writers do at once.
   * Resolves with the level now stored; rejects when it could not be persisted.
   * `raisedAt` (ms since epoch, default now): when the level was reached, for a
   * level carried from another store (ST-7, `migrate`).
   */
  raise(domain: string, level: SecLevel, host?: string, raisedAt?: number): Promise<SecLevel>;
  /** Forgets a domain (operator action). Resolves true when there was an entry. */
  reset(domain: string): Promise<boolean>;
  /** Every entry; unreadable ones are reported, not thrown. */
  list(): Promise<Array<{ domain: string; read: RatchetRead }>>;
  close(): Promise<void>;
  /** Stores that connect in the background (Redis): resolves true once usable, false after `timeoutMs`. */
  ready?(timeoutMs: number): Promise<boolean>;
}
