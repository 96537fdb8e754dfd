/**
 * The keys of every store (ST-6, TLS-8): one name for one thing, derived here
 * only. A recipient domain is its lowercase A-label, an address literal its
 * canonical form (`[192.0.2.1]`, `[2001:db8::1]`), a relay host's own ratchet
 * key `relay:` and either of them. The ratchet, the MTA-STS cache, the policy
 * table, the per-message plan, the fail-closed check and the CLI all derive
 * and check keys with these functions.
 */
import net from 'node:net';
import { literalKey, parseDomainLiteral, parseLiteralKey, printable, toALabel } from '../domain';

const HOST_KEY = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LITERAL_KEY = /^\[[0-9a-f.:]+\]$/;

/** The prefix of a relay host's own ratchet key (TLS-8): `relay:<host>`. */
export const RELAY_KEY_PREFIX = 'relay:';

/**
 * Keys are A-labels, address literals, or `relay:` and either of them (a relay
 * host's own level, TLS-8); anything else is refused before touching a store.
 */
export function isValidStoreKey(key: string): boolean {
  const rest = key.startsWith(RELAY_KEY_PREFIX) ? key.slice(RELAY_KEY_PREFIX.length) : key;
  return HOST_KEY.test(rest) || LITERAL_KEY.test(rest);
}

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

/** A recipient domain as Haraka hands it over (`example.com`, `bücher.example`, `[IPv6:2001:db8::1]`), as a store key. */
export type RecipientKey =
  | { kind: 'domain'; key: string }
  | { kind: 'literal'; key: string; address: string }
  | { kind: 'invalid'; literal: boolean; reason: string };

export function recipientKeyOf(domain: string): RecipientKey {
  if (domain.trim().startsWith('[')) {
    const literal = parseDomainLiteral(domain);
    if (!literal) return { kind: 'invalid', literal: true, reason: `"${printable(domain)}" is not a valid address literal` };
    return { kind: 'literal', key: literalKey(literal), address: literal.address };
  }
  const name = toALabel(domain);
  return name.ok ? { kind: 'domain', key: name.aLabel } : { kind: 'invalid', literal: false, reason: name.reason };
}

/** The ratchet key of a recipient domain as outbound_mx writes it (A-label or canonical literal), or null. */
export function recipientKey(domain: string): string | null {
  const key = recipientKeyOf(domain);
  return key.kind === 'invalid' ? null : key.key;
}

/**
 * The store key for what the admin typed: the lowercase A-label, the address
 * literal in canonical form (ST-6, also as `ratchet list` shows it), or a relay
 * host's own key `relay:<host>` (TLS-8).
 */
export function domainKey(input: string): { ok: true; key: string } | { ok: false; error: string } {
  const text = input.trim();
  if (text.startsWith(RELAY_KEY_PREFIX)) {
    const key = relayKey(text.slice(RELAY_KEY_PREFIX.length));
    return key ? { ok: true, key } : { ok: false, error: `"${printable(text)}" is not relay:<host name or address>` };
  }
  if (text.startsWith('[')) {
    const literal = parseLiteralKey(text);
    return literal ? { ok: true, key: literalKey(literal) } : { ok: false, error: `"${text}" is not an address literal` };
  }
  const result = toALabel(text);
  return result.ok ? { ok: true, key: result.aLabel } : { ok: false, error: result.reason };
}
