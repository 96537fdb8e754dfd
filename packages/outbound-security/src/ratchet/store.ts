/**
 * The ratchet store (ST-1): recipient domain (lowercase A-label, or an address
 * literal such as `[192.0.2.1]`) → the highest security level seen. Levels only
 * go up through `raise`; only the operator lowers them, with `reset`.
 */
import net from 'node:net';
import { literalKey, parseLiteralKey, toALabel } from '../domain';
import type { SecLevel } from '../tls/sec-level';

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

const HOST_KEY = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LITERAL_KEY = /^\[[0-9a-f.:]+\]$/;

/** The prefix of a relay host's own ratchet key (TLS-8): `relay:<host>`. */
export const RELAY_KEY_PREFIX = 'relay:';

/**
 * A relay host's own ratchet key (TLS-8): `relay:` and the host's A-label, or
 * its address in canonical literal form (`relay:[192.0.2.1]`, ST-6); null when
 * `host` is neither a host name nor an address.
 */
export function relayKey(host: string): string | null {
  const text = host.trim();
  if (net.isIP(text)) {
    const literal = parseLiteralKey(`[${text}]`);
    return literal ? `${RELAY_KEY_PREFIX}${literalKey(literal)}` : null;
  }
  const literal = text.startsWith('[') ? parseLiteralKey(text) : null;
  if (literal) return `${RELAY_KEY_PREFIX}${literalKey(literal)}`;
  const name = toALabel(text);
  return name.ok ? `${RELAY_KEY_PREFIX}${name.aLabel}` : null;
}

/**
 * Keys are A-labels, address literals, or `relay:` and either of them (a relay
 * host's own level, TLS-8); anything else is refused before touching a store.
 */
export function isValidRatchetKey(domain: string): boolean {
  const key = domain.startsWith(RELAY_KEY_PREFIX) ? domain.slice(RELAY_KEY_PREFIX.length) : domain;
  return HOST_KEY.test(key) || LITERAL_KEY.test(key);
}
