/**
 * A report POSTed to an `https:` report URI (RPT-3, RFC 8460 §5.4):
 * `Content-Type: application/tlsrpt+gzip`, the gzip-compressed report as the
 * body. Only a 2xx answer counts as sent (§5.4: "a successful response …
 * typically a 200 or 201"); anything else, a redirect included (not
 * followed), is a failure the scheduler retries.
 *
 * The URI comes from the receiving domain's DNS, so the request is held to
 * the same limits as an MTA-STS fetch (STS-2): the certificate must be valid
 * for the URL's host (system roots plus the extra CAs of the settings), no
 * proxy, one deadline for DNS + connect + request + answer, a bounded body on
 * both sides (OPS-5).
 *
 * RPT-9, report endpoints are public: the publisher chooses host, port, path
 * and query, so a report address must not reach the sender's own network.
 * - Addresses: the MX refusals of the address policy (MX-9) plus
 *   REPORT_ENDPOINT_REFUSED_RANGES (RFC 1918, CGNAT, unique-local and
 *   site-local IPv6); the admin's `allow` CIDRs still let an address through.
 * - Every address of the host is judged, and one refused address refuses the
 *   host whole: trying its other addresses would tell the publisher, by the
 *   outcome, whether the internal one speaks TLS. Nothing is connected to.
 * - Ports: only those the admin allows (`[tlsrpt] https_ports`, default 443),
 *   checked by the sender before the POST (`endpointPortRefusal`).
 */
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { checkAddress, type AddressPolicy } from '../mx/address-policy';
import type { DnsClient } from '../mx/dns-client';
import { resolveHost } from '../mx/lookup';
import { pinnedHttpsOptions } from '../https/pinned';

/** One deadline for the whole POST. */
export const DEFAULT_POST_TIMEOUT_MS = 30_000;
/** OPS-5: the largest report POSTed (compressed). */
export const MAX_REPORT_BYTES = 10 * 1024 * 1024;
/** OPS-5: the most of an answer's body read (then the connection is closed). */
export const MAX_ANSWER_BYTES = 64 * 1024;

export interface PostSettings {
  timeoutMs?: number;
  /** Extra trusted CA certificates (PEM), added to the system roots. */
  extraCa?: readonly string[];
  addressPolicy: AddressPolicy;
  dns: DnsClient;
}

/** RPT-9: the ranges refused for a report endpoint on top of the address policy's (ipaddr.js range names). */
export const REPORT_ENDPOINT_REFUSED_RANGES = ['private', 'carrierGradeNat', 'uniqueLocal', 'deprecatedSiteLocal'] as const;
/** OPS-5: allowed addresses of one endpoint tried in turn. */
const MAX_ENDPOINT_ADDRESSES = 4;

/** `refused`: RPT-9 refused the endpoint before any connection (an address or the port). */
export type PostResult = { ok: true; status: number } | { ok: false; error: string; refused?: 'address' | 'port' };

/** POSTs `gzipped` to `url`. Never throws. */
export async function postReport(url: URL, gzipped: Buffer, settings: PostSettings): Promise<PostResult> {
  const shown = url.href;
  if (url.protocol !== 'https:') return { ok: false, error: `${shown}: not an https URL` };
  if (gzipped.length > MAX_REPORT_BYTES)
    return { ok: false, error: `${shown}: report of ${gzipped.length} bytes is over ${MAX_REPORT_BYTES}` };
  const timeoutMs = settings.timeoutMs ?? DEFAULT_POST_TIMEOUT_MS;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const addresses = await Promise.race([
      addressesOf(url.hostname, settings),
      new Promise<string>((resolve) => controller.signal.addEventListener('abort', () => resolve('address lookup timed out'))),
    ]);
    if (typeof addresses === 'string') return { ok: false, error: `${shown}: ${addresses}` };
    if ('refused' in addresses) return { ok: false, error: `${shown}: ${addresses.refused}`, refused: 'address' };
    let error = '';
    for (const address of addresses) {
      const result = await postOnce(url, address, gzipped, settings, controller.signal, timeoutMs);
      if (result.ok || !result.nextAddress) return result;
      error = result.error;
      if (controller.signal.aborted) break;
    }
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

const endpointPolicies = new WeakMap<AddressPolicy, AddressPolicy>();

/** RPT-9: the address policy for report endpoints: `policy`'s refusals and allowances, and the private ranges. */
export function reportEndpointPolicy(policy: AddressPolicy): AddressPolicy {
  let made = endpointPolicies.get(policy);
  if (made === undefined) {
    made = { refusedRanges: new Set([...policy.refusedRanges, ...REPORT_ENDPOINT_REFUSED_RANGES]), allowCidrs: policy.allowCidrs };
    endpointPolicies.set(policy, made);
  }
  return made;
}

/** RPT-9: why `url`'s port is refused (not in `ports`), or null when it is allowed. */
export function endpointPortRefusal(url: URL, ports: readonly number[]): string | null {
  const port = url.port === '' ? 443 : Number(url.port);
  return ports.includes(port) ? null : `${url.href}: port ${port} is not in https_ports=${ports.join(',')}`;
}

/**
 * The addresses to try for the URL's host (a name, or an address in the URL),
 * `refused` when any address of the host is (RPT-9), or why there are none.
 */
async function addressesOf(hostname: string, settings: PostSettings): Promise<string[] | { refused: string } | string> {
  const policy = reportEndpointPolicy(settings.addressPolicy);
  const literal = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  if (net.isIP(literal)) {
    const verdict = checkAddress(policy, literal);
    return verdict.allowed ? [literal] : { refused: verdict.reason };
  }
  // Every address is judged (a DNS answer holds a bounded number), not only the first few allowed.
  const resolved = await resolveHost(settings.dns, hostname, policy, Number.POSITIVE_INFINITY);
  if (resolved.kind !== 'ok') return resolved.detail;
  if (resolved.refused.length > 0) {
    return { refused: `${resolved.refused.join('; ')}: the report host is refused whole (none of its addresses is tried)` };
  }
  return resolved.addresses.slice(0, MAX_ENDPOINT_ADDRESSES);
}

type Attempt = { ok: true; status: number } | { ok: false; error: string; nextAddress: boolean };

function postOnce(
  url: URL,
  address: string,
  body: Buffer,
  settings: PostSettings,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Attempt> {
  const shown = `${url.href} via ${address}`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Attempt): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const request = https.request(
      {
        ...pinnedHttpsOptions({
          host,
          address,
          port: url.port === '' ? 443 : Number(url.port),
          ...(settings.extraCa ? { extraCa: settings.extraCa } : {}),
          signal,
        }),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: {
          Host: url.host,
          'Content-Type': 'application/tlsrpt+gzip',
          'Content-Length': String(body.length),
          'User-Agent': 'haraka-outbound-security TLSRPT',
        },
      },
      (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) response.destroy();
        });
        response.on('error', () => undefined);
        response.on('close', () => {
          if (status >= 200 && status < 300) return finish({ ok: true, status });
          const location = response.headers.location
            ? ` (redirect to ${String(response.headers.location).slice(0, 200)} not followed)`
            : '';
          finish({ ok: false, error: `${shown}: HTTP status ${status}${location}`, nextAddress: false });
        });
      },
    );
    request.on('error', (err: NodeJS.ErrnoException) => {
      const timedOut = signal.aborted;
      finish({
        ok: false,
        error: timedOut ? `${shown}: deadline of ${timeoutMs} ms passed` : `${shown}: ${`${err.code ?? ''} ${err.message}`.trim()}`,
        // Connection problems may be one address's; certificate problems are the host's.
        nextAddress: !timedOut && !/CERT|SELF_SIGNED|ALTNAME|UNABLE_TO|certificate/i.test(`${err.code} ${err.message}`),
      });
    });
    request.end(body);
  });
}
