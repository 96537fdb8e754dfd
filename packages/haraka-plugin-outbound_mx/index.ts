/**
 * outbound_mx — Haraka `get_mx` hook: recipient domain → the MX hosts Haraka
 * may use and what their connections must reach (MX-1 … MX-9, STS-5 … STS-9,
 * DANE-1 … DANE-8). A thin adapter: it registers the hook and hands over to
 * the library (haraka-outbound-security/haraka/outbound-mx), which plans each
 * message with delivery/plan, as the CLI's `mx show` does.
 */
import path from 'node:path';
import type { HMailItem, Next } from 'haraka-outbound-security/haraka/api';
import { registerOutboundMx, selectMx, shutdownOutboundMx, type OutboundMxPlugin } from 'haraka-outbound-security/haraka/outbound-mx';

export function register(this: OutboundMxPlugin): void {
  registerOutboundMx(this, path.join(__dirname, '..'));
  this.register_hook('get_mx', 'select_mx');
}

export function select_mx(this: OutboundMxPlugin, next: Next, hmail: HMailItem, domain: string): void {
  selectMx(this, next, hmail, domain);
}

export function shutdown(this: OutboundMxPlugin): void {
  shutdownOutboundMx(this);
}
