/**
 * Which IP addresses outbound mail (and policy fetches) may connect to (MX-9).
 * Addresses in the refused range classes (loopback, unspecified, link-local,
 * multicast, reserved, broadcast by default) are dropped unless an `allow`
 * CIDR covers them.
 */
import ipaddr from 'ipaddr.js';

/** Range class names as `ipaddr.js` reports them. */
export const DEFAULT_REFUSED_RANGES = ['unspecified', 'loopback', 'linkLocal', 'multicast', 'reserved', 'broadcast'] as const;

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

export interface AddressPolicy {
  readonly refusedRanges: ReadonlySet<string>;
  readonly allowCidrs: ReadonlyArray<[ipaddr.IPv4 | ipaddr.IPv6, number]>;
}

/**
 * Builds an address policy from config text. Throws with the offending value
 * when a CIDR cannot be parsed, so a typo in the ini is reported at startup.
 */
export function makeAddressPolicy(refused: readonly string[], allow: readonly string[]): AddressPolicy {
  const allowCidrs = allow.map((cidr) => {
    try {
      return cidr.includes('/') ? ipaddr.parseCIDR(cidr) : hostCidr(cidr);
    } catch {
      throw new Error(`invalid CIDR "${cidr}" in the allowed address list`);
    }
  });
  return { refusedRanges: new Set(refused), allowCidrs };
}

function hostCidr(address: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const parsed = ipaddr.parse(address);
  return [parsed, parsed.kind() === 'ipv4' ? 32 : 128];
}

/** IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. */
function canonical(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed;
}

export function checkAddress(policy: AddressPolicy, address: string): AddressVerdict {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = canonical(address);
  } catch {
    return { allowed: false, reason: `"${address}" is not an IP address` };
  }
  for (const [network, bits] of policy.allowCidrs) {
    if (network.kind() === parsed.kind() && parsed.match(network, bits)) return { allowed: true };
  }
  const range = parsed.range();
  if (policy.refusedRanges.has(range)) {
    return { allowed: false, reason: `${address} is in the refused ${range} range` };
  }
  return { allowed: true };
}
