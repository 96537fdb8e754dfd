/**
 * Classification of an outbound connection (TLS-1): PLAIN, TLS_INSECURE or
 * TLS_SECURE. TLS_SECURE needs a chain to a trusted root (as the TLS stack
 * verified it), a dNSName subjectAltName matching the MX host name (no CN
 * fallback), and a certificate inside its validity period. With a policy
 * table rule's `match=` names (POL-1), also whether the certificate carries
 * one of them, by the same checks.
 */
import type { X509Certificate } from 'node:crypto';
import { SecLevel } from '../sec-level';

/** What the TLS stack reports about a finished handshake. */
export interface TlsObservation {
  encrypted: boolean;
  /** Node's `authorizationError` (chain or identity error code), if any. */
  authorizationError?: string | Error | null;
  /** The peer's leaf certificate, when one was presented. */
  peerCertificate?: X509Certificate;
  /** `TLSv1.3`, `TLSv1.2` … */
  protocol?: string | null;
  /**
   * OPS-6: the observation comes from a real handshake, whose chain
   * verification (OpenSSL's) covers the validity period of every certificate:
   * an expired chain shows as `CERT_HAS_EXPIRED` in `authorizationError`, so
   * the dates need no second check (each costs a native call and a date parse
   * per connection). Observations made up by tests leave it unset.
   */
  datesVerified?: boolean;
  /**
   * OPS-6: the host name the handshake's own identity check found among the
   * certificate's dNSName subjectAltNames (haraka/identity-capture.ts,
   * tls/san-match.ts), with the chain verified: then the certificate itself
   * need not be read again (`peerCertificate` may be absent). Only from real
   * handshakes, whose chain verification covered the dates.
   */
  nameMatchedFor?: string;
}

export interface Classification {
  level: SecLevel;
  /** Why the level is what it is, for logs: `certificate valid for mx.example.com`, `hostname mismatch`, … */
  reason: string;
  protocol?: string;
  /**
   * POL-1 `match=`: whether the certificate (trusted, in date) carries one of
   * the names the policy table lists; present only when names were given.
   */
  match?: NameMatch;
}

export type NameMatch = { ok: true; name: string } | { ok: false; reason: string };

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
 * connection is at most TLS_INSECURE. `matchNames` (a policy table's `match=`)
 * are checked too, apart from the level.
 */
export function classifyConnection(
  observed: TlsObservation,
  mxHost: string | undefined,
  now: Date = new Date(),
  matchNames?: readonly string[],
): Classification {
  const classification = classifyFor(observed, mxHost, now);
  if (!matchNames || matchNames.length === 0) return classification;
  return { ...classification, match: matchAny(observed, matchNames, now) };
}

function classifyFor(observed: TlsObservation, mxHost: string | undefined, now: Date): Classification {
  if (!observed.encrypted) return { level: SecLevel.PLAIN, reason: 'no TLS' };
  const protocol = observed.protocol ?? undefined;
  const insecure = (reason: string): Classification => ({ level: SecLevel.TLS_INSECURE, reason, protocol });
  const untrusted = chainProblem(observed);
  if (untrusted) return insecure(untrusted);
  if (!mxHost) return insecure('no host name to verify (address literal)');
  if (observed.nameMatchedFor !== undefined && observed.nameMatchedFor === mxHost) {
    return { level: SecLevel.TLS_SECURE, reason: `certificate valid for ${mxHost}`, protocol };
  }
  const cert = observed.peerCertificate;
  if (!cert) return insecure('no peer certificate');
  const expired = observed.datesVerified ? null : dateProblem(cert, now);
  if (expired) return insecure(expired);
  if (!carries(cert, mxHost)) return insecure(`certificate not valid for ${mxHost} (subjectAltName: ${cert.subjectAltName ?? 'none'})`);
  return { level: SecLevel.TLS_SECURE, reason: `certificate valid for ${mxHost}`, protocol };
}

/** No certificate, or one that does not chain to a trusted root. */
function chainProblem(observed: TlsObservation): string | null {
  if (!observed.peerCertificate && observed.nameMatchedFor === undefined) return 'no peer certificate';
  const chainError = errorCode(observed.authorizationError);
  return chainError && !IDENTITY_ERRORS.has(chainError) ? `certificate not trusted: ${chainError}` : null;
}

function dateProblem(cert: X509Certificate, now: Date): string | null {
  const validFrom = Date.parse(cert.validFrom);
  const validTo = Date.parse(cert.validTo);
  if (validFrom <= now.getTime() && now.getTime() <= validTo) return null;
  return `certificate outside its validity period (${cert.validFrom} – ${cert.validTo})`;
}

/** A dNSName subjectAltName matching `host` (a `*.` wildcard covers one label); never the CN. */
function carries(cert: X509Certificate, host: string): boolean {
  return cert.checkHost(host, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false }) !== undefined;
}

/** POL-1 `match=`: a trusted certificate in its validity period that carries one of `names`. */
function matchAny(observed: TlsObservation, names: readonly string[], now: Date): NameMatch {
  if (!observed.encrypted) return { ok: false, reason: 'no TLS' };
  const cert = observed.peerCertificate;
  if (!cert) return { ok: false, reason: 'no peer certificate' };
  const problem = chainProblem(observed) ?? (observed.datesVerified ? null : dateProblem(cert, now));
  if (problem) return { ok: false, reason: problem };
  const name = names.find((candidate) => carries(cert, candidate));
  if (name !== undefined) return { ok: true, name };
  return { ok: false, reason: `certificate carries none of ${names.join(', ')} (subjectAltName: ${cert.subjectAltName ?? 'none'})` };
}

/** TLS 1.2 or later, as RFC 8461 §5 and STS-7 require. */
export function isModernTls(protocol: string | undefined): boolean {
  return protocol === 'TLSv1.2' || protocol === 'TLSv1.3';
}
