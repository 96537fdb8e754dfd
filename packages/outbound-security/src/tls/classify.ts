/**
 * Classification of an outbound connection (TLS-1): PLAIN, TLS_INSECURE or
 * TLS_SECURE. TLS_SECURE needs a chain to a trusted root (as the TLS stack
 * verified it), a dNSName subjectAltName matching the MX host name (no CN
 * fallback), and a certificate inside its validity period.
 */
import type { X509Certificate } from 'node:crypto';
import { SecLevel } from './sec-level';

/** What the TLS stack reports about a finished handshake. */
export interface TlsObservation {
  encrypted: boolean;
  /** Node's `authorizationError` (chain or identity error code), if any. */
  authorizationError?: string | Error | null;
  /** The peer's leaf certificate, when one was presented. */
  peerCertificate?: X509Certificate;
  /** `TLSv1.3`, `TLSv1.2` … */
  protocol?: string | null;
}

export interface Classification {
  level: SecLevel;
  /** Why the level is what it is, for logs: `certificate valid for mx.example.com`, `hostname mismatch`, … */
  reason: string;
  protocol?: string;
}

/**
 * Node checks the host name against the SNI name itself (with CN fallback) and
 * reports a mismatch as this code; we do our own stricter check instead, so
 * this code alone does not make a chain untrusted.
 */
const IDENTITY_ERRORS = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'Hostname/IP does not match certificate']);

function errorCode(error: string | Error | null | undefined): string | null {
  if (!error) return null;
  if (typeof error === 'string') return error;
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

/**
 * Classifies a connection. `mxHost` is the MX host name the certificate must
 * match, or undefined when there is none (an address literal, MX-2): such a
 * connection is at most TLS_INSECURE.
 */
export function classifyConnection(observed: TlsObservation, mxHost: string | undefined, now: Date = new Date()): Classification {
  if (!observed.encrypted) return { level: SecLevel.PLAIN, reason: 'no TLS' };
  const protocol = observed.protocol ?? undefined;
  const insecure = (reason: string): Classification => ({ level: SecLevel.TLS_INSECURE, reason, protocol });
  const cert = observed.peerCertificate;
  if (!cert) return insecure('no peer certificate');
  const chainError = errorCode(observed.authorizationError);
  if (chainError && !IDENTITY_ERRORS.has(chainError)) return insecure(`certificate not trusted: ${chainError}`);
  if (!mxHost) return insecure('no host name to verify (address literal)');
  const validFrom = Date.parse(cert.validFrom);
  const validTo = Date.parse(cert.validTo);
  if (!(validFrom <= now.getTime()) || !(now.getTime() <= validTo)) {
    return insecure(`certificate outside its validity period (${cert.validFrom} – ${cert.validTo})`);
  }
  const matched = cert.checkHost(mxHost, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false });
  if (matched === undefined) {
    return insecure(`certificate not valid for ${mxHost} (subjectAltName: ${cert.subjectAltName ?? 'none'})`);
  }
  return { level: SecLevel.TLS_SECURE, reason: `certificate valid for ${mxHost}`, protocol };
}

/** TLS 1.2 or later, as RFC 8461 §5 and STS-7 require. */
export function isModernTls(protocol: string | undefined): boolean {
  return protocol === 'TLSv1.2' || protocol === 'TLSv1.3';
}
