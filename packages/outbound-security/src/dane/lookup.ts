/**
 * The DNS side of DANE for SMTP (RFC 7672): the TLSA lookup of one MX host
 * (DANE-2, DANE-3, DANE-11) and the check that the resolver validates
 * (DANE-1, DANE-8).
 *
 * - TLSA at `_25._tcp.<host>` (the port the MX is reached on), asked with DO
 *   and AD, through the same cached transport as every other lookup.
 * - Secure with records → DANE applies: usable records must match (DANE-4);
 *   only unusable ones still require TLS (RFC 7672 §3.1.3).
 * - Secure NXDOMAIN/NODATA, or an insecure answer → no DANE for this host.
 * - SERVFAIL (a validating resolver's answer to bogus data), any other error
 *   rcode, a timeout → the host is skipped (RFC 7672 §2.2: never used without
 *   DANE when its TLSA records cannot be known).
 * - DANE-11 (RFC 7672 §2.2.3): when the host name is a secure CNAME, the TLSA
 *   RRset is asked for at the fully expanded name first, then, when that has
 *   no secure TLSA records, at the original name; either name may then be the
 *   certificate's (`names`, expanded first).
 * The caller asks only for hosts whose MX RRset and addresses were secure.
 */
import { secureCnameTarget } from '../dns/cname';
import type { DnsTransport } from '../dns/wire';
import { classifyTlsaRrset, tlsaFromAnswer, type TlsaAnswerData, type TlsaRecord, type TlsaRrset } from './tlsa';

export type TlsaLookup =
  /** DANE applies to the host: `rrset` is usable or unusable-only; `malformed` says why records were not read. */
  | {
      kind: 'dane';
      name: string;
      rrset: Exclude<TlsaRrset, { kind: 'empty' }>;
      malformed: string[];
      /** DANE-11: the host is a secure CNAME: its expanded name, then its original name (the names the certificate may carry). */
      names?: string[];
    }
  /** No DANE for this host: secure denial, or an insecure answer. */
  | { kind: 'none'; name: string; reason: string }
  /** The host must not be used: the TLSA answer is bogus or could not be had. */
  | { kind: 'failed'; name: string; reason: string };

export function tlsaName(host: string, port = 25): string {
  return `_${port}._tcp.${host.replace(/\.$/, '').toLowerCase()}`;
}

/**
 * DANE-11: the TLSA lookup of an MX host, following a secure CNAME of its
 * name (RFC 7672 §2.2.3). The host's address answer is asked for again (the
 * plan's lookup left it in the cache) to see the CNAME chain it carried.
 */
export async function lookupHostTlsa(transport: DnsTransport, host: string, port = 25): Promise<TlsaLookup> {
  const original = host.replace(/\.$/, '').toLowerCase();
  const expanded = await secureCnameTarget(transport, original);
  if (expanded === undefined) return lookupTlsa(transport, original, port);
  const names = [expanded, original];
  const atTarget = await lookupTlsa(transport, expanded, port);
  if (atTarget.kind === 'dane') return { ...atTarget, names };
  // A failed lookup at the expanded name leaves the host's TLSA records unknown: skipped, never used without DANE.
  if (atTarget.kind === 'failed') return atTarget;
  const atOriginal = await lookupTlsa(transport, original, port);
  if (atOriginal.kind === 'dane') return { ...atOriginal, names };
  if (atOriginal.kind === 'failed') return atOriginal;
  return { kind: 'none', name: atOriginal.name, reason: `${atTarget.reason}; ${atOriginal.reason}` };
}

export async function lookupTlsa(transport: DnsTransport, host: string, port = 25): Promise<TlsaLookup> {
  const name = tlsaName(host, port);
  const outcome = await transport.query(name, 'TLSA', { dnssec: true });
  if (outcome.kind === 'failure') {
    return { kind: 'failed', name, reason: `TLSA lookup for ${name} failed: ${outcome.code} (${outcome.message})` };
  }
  const { rcode, authenticated, answers } = outcome.response;
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
    const why = rcode === 'SERVFAIL' ? 'SERVFAIL (DNSSEC validation failed, or the zone cannot be reached)' : rcode;
    return { kind: 'failed', name, reason: `TLSA lookup for ${name}: ${why}` };
  }
  if (!authenticated) return { kind: 'none', name, reason: `${name}: insecure answer (not DNSSEC-validated)` };
  const records: TlsaRecord[] = [];
  const malformed: string[] = [];
  for (const rr of answers) {
    if (rr.type !== 'TLSA') continue;
    const parsed = tlsaFromAnswer(rr.data as TlsaAnswerData);
    if (parsed.kind === 'record') records.push(parsed.record);
    else malformed.push(parsed.reason);
  }
  if (records.length === 0 && malformed.length === 0) {
    return { kind: 'none', name, reason: `${name}: no TLSA records (${rcode === 'NXDOMAIN' ? 'NXDOMAIN' : 'NODATA'}, DNSSEC-validated)` };
  }
  // Records that cannot even be read still say "this host uses DANE": TLS stays required.
  const rrset = classifyTlsaRrset(records);
  return { kind: 'dane', name, rrset: rrset.kind === 'empty' ? { kind: 'unusable-only', unusable: [] } : rrset, malformed };
}

/** DEFAULT probe for the resolver check: the root zone, signed since 2010. */
export const DEFAULT_DNSSEC_PROBE = '.';

/**
 * A definite `not-validating` is an answer without AD for the signed probe;
 * `unknown` is no usable answer at all (timeout, network error, SERVFAIL or
 * another error rcode): it says nothing about validation (DANE-8).
 */
export type ResolverCheck = { kind: 'validating' } | { kind: 'not-validating'; reason: string } | { kind: 'unknown'; reason: string };

/**
 * DANE-1, DANE-8: does the resolver validate? A validating resolver sets AD
 * on the answer for a signed name (`probe`, the root by default). Whether its
 * AD bit may be believed at all (a declared resolver) is the caller's check.
 */
export async function checkResolverValidates(transport: DnsTransport, probe = DEFAULT_DNSSEC_PROBE): Promise<ResolverCheck> {
  const outcome = await transport.query(probe, 'SOA', { dnssec: true });
  if (outcome.kind === 'failure') return { kind: 'unknown', reason: `SOA ${probe}: ${outcome.code} (${outcome.message})` };
  const { rcode, authenticated } = outcome.response;
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') return { kind: 'unknown', reason: `SOA ${probe}: ${rcode}` };
  if (!authenticated)
    return { kind: 'not-validating', reason: `SOA ${probe}: answered without the AD bit (the resolver does not validate)` };
  return { kind: 'validating' };
}
