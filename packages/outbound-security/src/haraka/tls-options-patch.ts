/**
 * The patch of Haraka's outbound/tls that outbound_tls relies on (TLS-6,
 * OPS-6, design §7), beside the connection guard that needs it: outbound
 * handshakes always complete, so that the guard classifies every certificate,
 * and the handshake's own identity check is captured for the guard
 * (./identity-capture.ts).
 */
import type { IniFile } from '../ini';
import type { HarakaPlugin } from './api';
import { capturingIdentity } from './identity-capture';

interface OutboundTlsSingleton {
  get_tls_options?: (mx: unknown) => Record<string, unknown>;
}

const CLASSIFIABLE = Symbol.for('haraka-outbound-security.classifiable');

/**
 * TLS-6: `rejectUnauthorized=true` in tls.ini would make an invalid certificate
 * fail the outbound handshake, and the TLS-3 retry would then send in clear
 * with nothing recorded. Outbound connections always complete the handshake;
 * outbound_tls classifies the certificate and the requirement decides.
 * (Haraka's own force_tls sets it again after this, as it should.)
 * The same wrapper lets the guard see what the handshake's identity check saw
 * (haraka/identity-capture.ts).
 */
export function keepOutboundCertificatesClassifiable(plugin: HarakaPlugin): void {
  const tls = plugin.config.get('tls.ini', { booleans: ['main.rejectUnauthorized', 'outbound.rejectUnauthorized'] }) as IniFile;
  const configured = ['main', 'outbound'].filter((section) => String(tls[section]?.rejectUnauthorized) === 'true');
  let obtls: OutboundTlsSingleton | undefined;
  try {
    obtls = plugin.haraka_require('outbound/tls') as OutboundTlsSingleton;
  } catch {
    obtls = undefined;
  }
  const original = obtls?.get_tls_options;
  if (!obtls || typeof original !== 'function') {
    if (configured.length > 0) {
      plugin.logcrit(
        `outbound_tls: tls.ini rejectUnauthorized=true ([${configured.join('], [')}]) cannot be overridden for outbound ` +
          `connections (Haraka's outbound/tls changed): an invalid certificate fails the handshake; turn it off`,
      );
    }
    return;
  }
  const marked = obtls as OutboundTlsSingleton & { [CLASSIFIABLE]?: boolean };
  if (!marked[CLASSIFIABLE]) {
    marked[CLASSIFIABLE] = true;
    obtls.get_tls_options = function (this: unknown, mx: unknown) {
      const options = { ...original.call(this, mx), rejectUnauthorized: false };
      // OPS-6: the guard reads what the handshake's identity check saw instead of decoding the certificate again.
      return mx && typeof mx === 'object' ? capturingIdentity(mx, options) : options;
    };
  }
  if (configured.length > 0) {
    plugin.logwarn(
      `outbound_tls: tls.ini [${configured.join('], [')}] rejectUnauthorized=true is overridden for outbound connections: ` +
        `an invalid certificate would fail the handshake and the plain retry would send in clear; outbound_tls ` +
        `classifies every certificate and the requirement decides (TLS-6)`,
    );
  }
}
