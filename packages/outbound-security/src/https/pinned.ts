/**
 * The options of an HTTPS request to one address chosen by the caller (after
 * the address policy, MX-9): the TLS name is the URL's host, never the
 * address, the certificate must be valid for that host (the system's roots,
 * plus the admin's extra CA), and no connection is pooled or reused. Shared
 * by the MTA-STS policy fetch (STS-2) and the TLS report POST (RPT-3).
 */
import type { RequestOptions } from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

export interface PinnedTarget {
  /** The host name (or bracket-free IP literal) of the URL. */
  host: string;
  /** The address connected to. */
  address: string;
  port: number;
  extraCa?: readonly string[];
  signal: AbortSignal;
}

/** The last trust store built for an extra CA (settings change rarely: one is kept). */
let trustStore: { key: string; context: tls.SecureContext } | null = null;

/**
 * OPS-6: the system's roots plus the admin's extra CA as one TLS context,
 * built once per extra CA instead of at every request (parsing the ~140 root
 * certificates again cost ≈ 30 ms of CPU per MTA-STS fetch or report POST).
 */
export function trustStoreWith(extraCa: readonly string[]): tls.SecureContext {
  const key = extraCa.join('\n');
  if (trustStore?.key !== key) trustStore = { key, context: tls.createSecureContext({ ca: [...tls.rootCertificates, ...extraCa] }) };
  return trustStore.context;
}

/** https.request options; `secureContext` is passed on to tls.connect. */
export type PinnedRequestOptions = RequestOptions & { secureContext?: tls.SecureContext };

export function pinnedHttpsOptions(target: PinnedTarget): PinnedRequestOptions {
  const { host, extraCa } = target;
  return {
    host: target.address,
    port: target.port,
    ...(net.isIP(host) ? {} : { servername: host }),
    ...(extraCa && extraCa.length > 0 ? { secureContext: trustStoreWith(extraCa) } : {}),
    rejectUnauthorized: true,
    checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
    agent: false,
    signal: target.signal,
  };
}
