/**
 * A DOMAIN as the admin typed it, turned into the key the stores use (MX-1,
 * ST-6, TLS-8): the lowercase A-label, the address literal in canonical form,
 * or a relay host's own key `relay:<host>`. Shared by the commands that take a
 * DOMAIN; a bad one is bad usage (status 2), found before any store is opened.
 */
import { printable } from '../domain';
import { RELAY_KEY_PREFIX, domainKey } from '../store/keys';

/** The store key for what the admin typed (one derivation: store/keys); the error names the value. */
export type DomainKey = ReturnType<typeof domainKey>;
export { domainKey };

/** What a command's DOMAIN may be besides a domain: `relay:<host>` (ratchet show/reset, explain), an address literal (not for MTA-STS). */
export interface DomainAccepts {
  relay: boolean;
  literal: boolean;
}

/**
 * The usage error for a DOMAIN argument, or undefined when it is one the
 * command takes: `bad DOMAIN: "a..b": empty label`.
 */
export function badDomain(input: string, accepts: DomainAccepts): string | undefined {
  const key = domainKey(input);
  if (!key.ok) return `bad DOMAIN: ${key.error}`;
  if (key.key.startsWith(RELAY_KEY_PREFIX) && !accepts.relay) {
    return `bad DOMAIN: "${printable(input)}" is a relay's key, only for ratchet show, ratchet reset and explain`;
  }
  if (key.key.startsWith('[') && !accepts.literal) {
    return `bad DOMAIN: "${printable(input)}" is an address literal, which has no MTA-STS policy`;
  }
  return undefined;
}

/** The store key of a DOMAIN that the command's parse accepted. */
export function requireKey(input: string): string {
  const key = domainKey(input);
  if (!key.ok) throw new Error(`bad DOMAIN: ${key.error}`);
  return key.key;
}
