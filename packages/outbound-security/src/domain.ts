/**
 * Domain names as the rest of the project uses them: every recipient domain
 * and every MX host is turned into its lowercase A-label form (UTS #46,
 * non-transitional, STD3 rules, DNS length checks) before it is used as a key
 * or looked up (MX-1). Domain literals (`[192.0.2.1]`) are recognised here too
 * (MX-2).
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import type * as Psl from 'psl';
import { toASCII, toUnicode } from 'tr46';

/** RFC 1035 limits, checked on the A-label form. */
export const MAX_DOMAIN_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export type DomainResult = { ok: true; aLabel: string } | { ok: false; reason: string };

const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const PLAIN_ASCII = /^[A-Za-z0-9.-]+$/;
/** A label starting `xn--` (any case): Punycode that tr46 must decode and check. */
const ACE_LABEL = /(?:^|\.)xn--/i;

const UTS46_OPTIONS = {
  checkBidi: true,
  checkJoiners: true,
  // CheckHyphens would refuse real host names such as `r3--sn.example`; the
  // leading/trailing hyphen rule is enforced by the LDH check below instead.
  checkHyphens: false,
  useSTD3ASCIIRules: true,
  transitionalProcessing: false,
  verifyDNSLength: true,
} as const;

/** Removes one trailing dot (an absolute name) so `example.com.` is `example.com`. */
function stripRoot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Converts a domain (U-label or A-label, any case) to its lowercase A-label
 * form, or says why it cannot be one.
 */
export function toALabel(domain: string): DomainResult {
  const input = stripRoot(domain.trim());
  if (input === '') return { ok: false, reason: 'empty domain' };
  if (input.length > 1024) return { ok: false, reason: `domain of ${input.length} characters is too long` };
  // OPS-5: plain ASCII letters, digits, hyphens and dots without an ACE label map
  // to their lowercase form under UTS #46 (what tr46 would return, about 30 µs
  // faster per name: a 512-pattern policy or 50 MX hosts stay well under 10 ms).
  const aLabel = PLAIN_ASCII.test(input) && !ACE_LABEL.test(input) ? input.toLowerCase() : toASCII(input, UTS46_OPTIONS);
  if (aLabel === null) {
    return { ok: false, reason: `"${printable(input)}" is not a valid domain name (UTS #46 / IDNA)` };
  }
  const labelProblem = checkLabels(aLabel);
  if (labelProblem) return { ok: false, reason: `"${printable(input)}": ${labelProblem}` };
  return { ok: true, aLabel };
}

/** The Unicode form of an A-label domain, for logs (falls back to the input). */
export function toULabel(aLabel: string): string {
  // OPS-6: without a punycode label there is nothing to decode (the common case, every message).
  if (!/(^|\.)xn--/i.test(aLabel)) return aLabel;
  const { domain, error } = toUnicode(aLabel, { ...UTS46_OPTIONS });
  return error ? aLabel : domain;
}

function checkLabels(aLabel: string): string | null {
  if (aLabel.length > MAX_DOMAIN_LENGTH) return `longer than ${MAX_DOMAIN_LENGTH} octets`;
  for (const label of aLabel.split('.')) {
    if (label.length === 0) return 'empty label';
    if (label.length > MAX_LABEL_LENGTH) return `label "${label.slice(0, 20)}…" longer than ${MAX_LABEL_LENGTH} octets`;
    if (!LDH_LABEL.test(label)) return `label "${label}" is not letters, digits and inner hyphens`;
  }
  return null;
}

/**
 * A host name an MX record may point at: a valid A-label domain with at least
 * two labels, not an IP address. Returns the normalised name or null.
 */
export function normaliseHostName(name: string): string | null {
  const host = stripRoot(name.trim());
  if (host === '' || host.endsWith('.') || net.isIP(host)) return null;
  const result = toALabel(host);
  if (!result.ok) return null;
  return result.aLabel;
}

/** An address literal's address, in canonical form (ST-6). */
export type DomainLiteral = { address: string; family: 4 | 6 };

/**
 * Parses an RFC 5321 address literal: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
 * Returns null when the text is not a literal at all or holds no valid address.
 * The address comes back canonical (ST-6): IPv6 in RFC 5952 form (lowercase,
 * zeros compressed), and an IPv4-mapped IPv6 address as the IPv4 address it
 * carries, so every spelling of one address is one key and one destination.
 */
export function parseDomainLiteral(domain: string): DomainLiteral | null {
  const match = /^\[(ipv6:)?([^\]]+)\]$/i.exec(domain.trim());
  if (!match?.[2]) return null;
  const family = net.isIP(match[2]);
  if (family === 4 && !match[1]) return canonicalAddress(match[2]);
  if (family === 6 && match[1] && !match[2].includes('%')) return canonicalAddress(match[2]);
  return null;
}

/** ST-6: one form per address (ipaddr.js); IPv4-mapped IPv6 becomes IPv4. */
function canonicalAddress(text: string): DomainLiteral | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(text);
  } catch {
    return null;
  }
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed.kind() === 'ipv4'
    ? { address: parsed.toString(), family: 4 }
    : { address: (parsed as ipaddr.IPv6).toRFC5952String(), family: 6 };
}

/**
 * A literal as an operator may type it: the SMTP forms above, or the store key
 * form `[2001:db8::1]` that `ratchet list` shows. Canonical, like parseDomainLiteral.
 */
export function parseLiteralKey(text: string): DomainLiteral | null {
  const literal = parseDomainLiteral(text);
  if (literal) return literal;
  const bare = /^\[([0-9a-fA-F:.]+)\]$/.exec(text.trim());
  return bare?.[1] && net.isIPv6(bare[1]) ? canonicalAddress(bare[1]) : null;
}

/** The store key of an address literal: `[192.0.2.1]`, `[2001:db8::1]` (canonical, no `IPv6:` tag). */
export function literalKey(literal: DomainLiteral): string {
  return `[${literal.address}]`;
}

export function isDomainLiteral(domain: string): boolean {
  return domain.trim().startsWith('[');
}

/** Control characters and overlong text are not written to logs as they came. */
export function printable(text: string, max = 80): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

let psl: typeof Psl | undefined;

/**
 * OPS-6: psl (its list compiled into a trie) costs ≈ 50 ms of CPU to load, in
 * every Haraka process at every start; it is needed only when a policy with a
 * wildcard or a parent rule of the policy table is read.
 */
function publicSuffixList(): typeof Psl {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (psl ??= require('psl') as typeof Psl);
}

/**
 * STS-4, POL-5: whether `name` (an A-label) is a public suffix: `com`, `co.uk`,
 * `github.io`, where a wildcard or a parent rule would reach other owners'
 * domains. Unknown single labels count as suffixes too.
 */
export function isPublicSuffix(name: string): boolean {
  // psl's two result shapes, read without relying on how its typings narrow.
  const parsed = publicSuffixList().parse(name) as { error?: unknown; domain?: string | null };
  return parsed.error !== undefined || parsed.domain === null || parsed.domain === undefined;
}
