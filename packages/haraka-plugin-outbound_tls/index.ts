/**
 * outbound_tls — classifies every outbound connection, enforces the
 * security-level ratchet, MTA-STS enforce, DANE and the admin policy table
 * before MAIL FROM, and never sends below them (TLS-1 … TLS-9, POL-1 … POL-4);
 * with `[tlsrpt] enabled=true` it also counts every connection and sends the
 * daily TLS reports (RFC 8460, RPT-1 … RPT-4). A thin adapter: it hands over
 * to the library (haraka-outbound-security/haraka/outbound-tls), whose
 * connection guard decides each connection with delivery/connection, as the
 * CLI's `probe` does.
 */
import path from 'node:path';
import type { HMailItem, Next } from 'haraka-outbound-security/haraka/api';
import {
  failClosedGetMx,
  registerOutboundTls,
  shutdownOutboundTls,
  type OutboundTlsPlugin,
} from 'haraka-outbound-security/haraka/outbound-tls';

// RT-1, RT-3, RT-5: RFC 8689 on receipt and the REQUIRETLS DSN; Haraka calls hooks by the names exported here.
export {
  requiretls_advertise,
  requiretls_bounce,
  requiretls_data_post,
  requiretls_mail,
} from 'haraka-outbound-security/haraka/outbound-tls';

export function register(this: OutboundTlsPlugin): void {
  // Registers fail_closed_get_mx itself, only when Haraka cannot be guarded (a hook costs every message).
  registerOutboundTls(this, path.join(__dirname, '..'));
}

/** TLS-6: only when the guard is missing: defers mail for every requirement the plugins know of. */
export function fail_closed_get_mx(this: OutboundTlsPlugin, next: Next, hmail: HMailItem, domain: string): void {
  failClosedGetMx(this, next, hmail, domain);
}

export function shutdown(this: OutboundTlsPlugin): void {
  shutdownOutboundTls(this);
}
