/**
 * MTA-STS policy fetch (STS-2, RFC 8461 §3.3): GET
 * https://mta-sts.<domain>/.well-known/mta-sts.txt with every limit the RFC
 * asks for: a certificate valid for the policy host (system roots plus an
 * optional extra CA), no redirects, status exactly 200, media type text/plain,
 * a body of at most 64 KiB (larger is rejected, never truncated) in valid
 * UTF-8 (STS-3: a fatal decoder, never U+FFFD), one deadline
 * for connect + headers + body, no proxy, and the policy host's addresses
 * checked against the address policy before connecting (MX-9).
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressPolicy } from '../mx/address-policy';
import type { DnsClient } from '../mx/dns-client';
import { decodePolicyBody } from './policy';
import { resolveHost } from '../mx/lookup';
import { pinnedHttpsOptions } from '../https/pinned';

export const MAX_POLICY_BYTES = 64 * 1024;
export const POLICY_PATH = '/.well-known/mta-sts.txt';

export interface FetchSettings {
  /** One deadline for DNS + connect + headers + body, in milliseconds. */
  timeoutMs: number;
  /** TCP port of the policy host (443; tests use another). */
  port: number;
  /** Extra trusted CA certificates (PEM), added to the system roots. */
  extraCa: string[];
  addressPolicy: AddressPolicy;
}

export type FetchResult = { ok: true; text: string; address: string } | { ok: false; error: string };

/** RFC 7231 media type: `type/subtype *( OWS ";" OWS parameter )`; we require text/plain. */
export function checkMediaType(header: string | undefined): string | null {
  if (header === undefined) return 'no Content-Type';
  const token = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
  const parameter = `${token}=(?:${token}|"(?:[^"\\\\]|\\\\.)*")`;
  const grammar = new RegExp(`^(${token})/(${token})(?:[ \\t]*;[ \\t]*${parameter})*[ \\t]*$`);
  const match = grammar.exec(header.trim());
  if (!match) return `malformed Content-Type "${header.slice(0, 80)}"`;
  if (match[1]?.toLowerCase() !== 'text' || match[2]?.toLowerCase() !== 'plain')
    return `Content-Type is ${match[1]}/${match[2]}, not text/plain`;
  return null;
}

/** The policy host's addresses, through the same resolution and address policy as MX hosts (MX-9). */
async function policyHostAddresses(
  host: string,
  dns: DnsClient,
  policy: AddressPolicy,
): Promise<{ ok: true; addresses: string[] } | { ok: false; error: string }> {
  const resolved = await resolveHost(dns, host, policy);
  if (resolved.kind !== 'ok') return { ok: false, error: resolved.detail };
  if (resolved.addresses.length === 0) return { ok: false, error: `${host}: every address refused (${resolved.refused.join('; ')})` };
  return { ok: true, addresses: resolved.addresses };
}

/** Fetches the policy text of `domain` (an A-label). Never throws. */
export async function fetchPolicyText(domain: string, dns: DnsClient, settings: FetchSettings): Promise<FetchResult> {
  const host = `mta-sts.${domain}`;
  const deadline = Date.now() + settings.timeoutMs;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), settings.timeoutMs);
  try {
    const resolved = await Promise.race([
      policyHostAddresses(host, dns, settings.addressPolicy),
      new Promise<{ ok: false; error: string }>((resolve) =>
        controller.signal.addEventListener('abort', () => resolve({ ok: false, error: `${host}: address lookup timed out` })),
      ),
    ]);
    if (!resolved.ok) return resolved;
    let lastError = '';
    for (const address of resolved.addresses) {
      if (Date.now() >= deadline) break;
      const result = await getOnce(host, address, settings, controller.signal);
      if (result.ok) return result;
      lastError = result.error;
      if (!result.retryable) return { ok: false, error: result.error };
    }
    return { ok: false, error: lastError || `https://${host}${POLICY_PATH}: deadline of ${settings.timeoutMs} ms passed` };
  } finally {
    clearTimeout(timer);
  }
}

type Attempt = { ok: true; text: string; address: string } | { ok: false; error: string; retryable: boolean };

function getOnce(host: string, address: string, settings: FetchSettings, signal: AbortSignal): Promise<Attempt> {
  const url = `https://${host}${POLICY_PATH}`;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Attempt): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const request = https.request(
      {
        ...pinnedHttpsOptions({ host, address, port: settings.port, extraCa: settings.extraCa, signal }),
        path: POLICY_PATH,
        method: 'GET',
        headers: { Host: host, Accept: 'text/plain', 'User-Agent': 'haraka-outbound-security MTA-STS' },
      },
      (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          const location = response.headers.location ? ` (redirect to ${response.headers.location} not followed)` : '';
          finish({ ok: false, error: `${url}: HTTP status ${status}${location}`, retryable: false });
          return response.destroy();
        }
        const mediaProblem = checkMediaType(response.headers['content-type']);
        if (mediaProblem) {
          finish({ ok: false, error: `${url}: ${mediaProblem}`, retryable: false });
          return response.destroy();
        }
        const declared = Number(response.headers['content-length']);
        if (Number.isFinite(declared) && declared > MAX_POLICY_BYTES) {
          finish({ ok: false, error: `${url}: body of ${declared} bytes is over ${MAX_POLICY_BYTES}`, retryable: false });
          return response.destroy();
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_POLICY_BYTES) {
            finish({ ok: false, error: `${url}: body over ${MAX_POLICY_BYTES} bytes`, retryable: false });
            response.destroy();
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          const decoded = decodePolicyBody(Buffer.concat(chunks));
          finish(
            decoded.ok ? { ok: true, text: decoded.text, address } : { ok: false, error: `${url}: ${decoded.error}`, retryable: false },
          );
        });
        response.on('error', (err) => finish({ ok: false, error: `${url}: ${err.message}`, retryable: false }));
        response.on('aborted', () => finish({ ok: false, error: `${url}: response aborted`, retryable: false }));
      },
    );
    request.on('error', (err: NodeJS.ErrnoException) => {
      const timedOut = signal.aborted;
      finish({
        ok: false,
        error: timedOut
          ? `${url} via ${address}: deadline of ${settings.timeoutMs} ms passed`
          : `${url} via ${address}: ${err.code ?? ''} ${err.message}`.trim(),
        // Connection problems may be one address's; certificate problems are the host's.
        retryable: !timedOut && !/CERT|SELF_SIGNED|ALTNAME|UNABLE_TO|certificate/i.test(`${err.code} ${err.message}`),
      });
    });
    request.end();
  });
}
