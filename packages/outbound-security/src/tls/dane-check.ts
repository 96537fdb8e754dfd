/**
 * DANE at TLS-2 (DANE-3, DANE-4, DANE-5): what a connection to an MX host
 * with TLSA records must show before MAIL FROM. Pure: the guard hands in what
 * the handshake showed.
 *
 * - No TLS: refused (TLSA records mean the host offers TLS; RFC 7672 §2.2).
 * - Only unusable records: TLS is enough (RFC 7672 §3.1.3); so too when the
 *   records the lookup kept turn out unusable at the match (DANE-10).
 * - DANE-10: records beyond the 16 a match uses, and the signatures checked,
 *   are counted (`outbound_tls_dane_ignored_records_total`,
 *   `outbound_tls_dane_signature_checks_total`) and the ignored ones named in
 *   the reason the guard logs.
 * - Usable records: the chain the server sent must match one (DANE-4); a
 *   match makes the connection TLS_SECURE whatever the WebPKI thinks (a
 *   self-signed certificate under DANE-EE included), a mismatch refuses it.
 */
import { CertificateCache } from '../dane/certificate-cache';
import { matchDane } from '../dane/match';
import { chainFromX509 } from '../dane/peer-chain';
import type { DaneHostRequirement } from '../dane/plan-step';
import { formatTlsa } from '../dane/tlsa';
import type { Classification, TlsObservation } from './classify';
import { SecLevel } from '../sec-level';

export type DaneCheck =
  | { kind: 'authenticated'; reason: string }
  | { kind: 'encrypted'; reason: string }
  | { kind: 'refused'; result: 'no_tls' | 'mismatch'; reason: string };

/** The outcome label of `outbound_tls_dane_total{result}`. */
export type DaneResult = 'match' | 'tls_only' | 'no_tls' | 'mismatch';

export function daneResult(check: DaneCheck): DaneResult {
  return check.kind === 'authenticated' ? 'match' : check.kind === 'encrypted' ? 'tls_only' : check.result;
}

/** DANE-10, OPS-6: the work one match did: signatures checked, usable records beyond the limit ignored (for the metrics). */
export interface DaneWork {
  signatureChecks: number;
  ignoredRecords: number;
}

/** Certificate facts kept between connections of this process (digests, signature checks): DANE checks stay cheap. */
const sharedCache = new CertificateCache();

export function checkDane(
  requirement: DaneHostRequirement,
  observed: TlsObservation,
  mxHost: string,
  now: Date = new Date(),
  cache: CertificateCache = sharedCache,
  counted?: (work: DaneWork) => void,
): DaneCheck {
  if (!observed.encrypted) {
    return { kind: 'refused', result: 'no_tls', reason: `${requirement.tlsaName} has TLSA records, but ${mxHost} offers no TLS` };
  }
  if (requirement.usable.length === 0) {
    return { kind: 'encrypted', reason: `${requirement.tlsaName}: only unusable TLSA records, TLS required without authentication` };
  }
  const chain = chainFromX509(observed.peerCertificate);
  if (chain.certificates.length === 0) {
    return {
      kind: 'refused',
      result: 'mismatch',
      reason: `${requirement.tlsaName}: no certificate to match (${chain.problem ?? 'none sent'})`,
    };
  }
  const match = matchDane(requirement.usable, chain.certificates, {
    mxHost,
    tlsaBaseDomain: requirement.tlsaName.replace(/^_\d+\._tcp\./, ''),
    ...(requirement.names ? { extraNames: requirement.names } : {}),
    now,
    cache,
  });
  counted?.({ signatureChecks: match.signatureChecks, ignoredRecords: match.ignoredRecords });
  const ignored = match.ignoredRecords > 0 ? ` (${match.ignoredRecords} usable TLSA records beyond the first 16 ignored (DANE-10))` : '';
  if (match.kind === 'match') {
    return {
      kind: 'authenticated',
      reason: `DANE: ${formatTlsa(match.record).slice(0, 24)}… matched (${match.via}) at ${requirement.tlsaName}${ignored}`,
    };
  }
  if (match.kind === 'unusable-only') {
    return {
      kind: 'encrypted',
      reason: `${requirement.tlsaName}: only unusable TLSA records, TLS required without authentication: ${match.reasons.join('; ')}`,
    };
  }
  return {
    kind: 'refused',
    result: 'mismatch',
    reason: `DANE: no TLSA record of ${requirement.tlsaName} matches${ignored}: ${match.reasons.join('; ')}`,
  };
}

/**
 * The DANE step of the decision, as the guard and the CLI's probe both make
 * it: `classification` upgraded to TLS_SECURE on a match; `refuse` with
 * mode=on when the connection must be abandoned; `note` for what observe
 * mode lets through or TLS-only passes.
 */
export interface DaneJudgement {
  check: DaneCheck;
  classification: Classification;
  refuse?: string;
  note?: string;
}

export function judgeDane(
  requirement: DaneHostRequirement & { mode: 'on' | 'observe' },
  observed: TlsObservation,
  mxHost: string,
  classification: Classification,
  counted?: (work: DaneWork) => void,
): DaneJudgement {
  const check = checkDane(requirement, observed, mxHost, new Date(), sharedCache, counted);
  if (check.kind === 'authenticated') {
    // DANE-4/DANE-5: a DANE match is TLS_SECURE, for the decision and the ratchet.
    return { check, classification: { ...classification, level: SecLevel.TLS_SECURE, reason: check.reason } };
  }
  if (check.kind === 'refused') {
    return requirement.mode === 'on'
      ? { check, classification, refuse: check.reason }
      : { check, classification, note: `DANE observe, dane=on would refuse ${mxHost} (${check.result}): ${check.reason}` };
  }
  return { check, classification, note: check.reason };
}
