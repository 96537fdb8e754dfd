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

export function pinnedHttpsOptions(target: PinnedTarget): RequestOptions {
  const { host, extraCa } = target;
  return {
    host: target.address,
    port: target.port,
    ...(net.isIP(host) ? {} : { servername: host }),
    ca: extraCa && extraCa.length > 0 ? [...tls.rootCertificates, ...extraCa] : undefined,
    rejectUnauthorized: true,
    checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
    agent: false,
    signal: target.signal,
  };
}
