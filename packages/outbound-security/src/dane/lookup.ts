/**
 * The DNS side of DANE for SMTP (RFC 7672): the TLSA lookup of one MX host
 * (DANE-2, DANE-3) and the check that the resolver validates (DANE-1).
 *
 * - TLSA at `_25._tcp.<host>` (the port the MX is reached on), asked with DO
 *   and AD, through the same cached transport as every other lookup.
 * - Secure with records → DANE applies: usable records must match (DANE-4);
 *   only unusable ones still require TLS (RFC 7672 §3.1.3).
 * - Secure NXDOMAIN/NODATA, or an insecure answer → no DANE for this host.
 * - SERVFAIL (a validating resolver's answer to bogus data), any other error
 *   rcode, a timeout → the host is skipped (RFC 7672 §2.2: never used without
 *   DANE when its TLSA records cannot be known).
 * The caller asks only for hosts whose MX RRset and addresses were secure.
 */
import type { DnsTransport } from '../dns/wire';
import { classifyTlsaRrset, tlsaFromAnswer, type TlsaAnswerData, type TlsaRecord, type TlsaRrset } from './tlsa';

export type TlsaLookup =
  /** DANE applies to the host: `rrset` is usable or unusable-only; `malformed` says why records were not read. */
  | { kind: 'dane'; name: string; rrset: Exclude<TlsaRrset, { kind: 'empty' }>; malformed: string[] }
  /** No DANE for this host: secure denial, or an insecure answer. */
  | { kind: 'none'; name: string; reason: string }
  /** The host must not be used: the TLSA answer is bogus or could not be had. */
  | { kind: 'failed'; name: string; reason: string };

export function tlsaName(host: string, port = 25): string {
  return `_${port}._tcp.${host.replace(/\.$/, '').toLowerCase()}`;
}

export async function lookupTlsa(transport: DnsTransport, host: string, port = 25, trustAd = true): Promise<TlsaLookup> {
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
  if (!authenticated || !trustAd) return { kind: 'none', name, reason: `${name}: insecure answer (not DNSSEC-validated)` };
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

export type ResolverCheck = { kind: 'validating' } | { kind: 'not-validating'; reason: string };

/**
 * DANE-1: does the resolver validate? A validating resolver sets AD on the
 * answer for a signed name (`probe`, the root by default). Anything else —
 * no AD, an error, a timeout — means DANE is not in effect.
 */
export async function checkResolverValidates(
  transport: DnsTransport,
  probe = DEFAULT_DNSSEC_PROBE,
  trustAd = true,
): Promise<ResolverCheck> {
  if (!trustAd) {
    return {
      kind: 'not-validating',
      reason: 'the DNS servers are neither on loopback nor listed as trusted: their AD bit is not believed',
    };
  }
  const outcome = await transport.query(probe, 'SOA', { dnssec: true });
  if (outcome.kind === 'failure') return { kind: 'not-validating', reason: `SOA ${probe}: ${outcome.code} (${outcome.message})` };
  if (outcome.response.rcode !== 'NOERROR') return { kind: 'not-validating', reason: `SOA ${probe}: ${outcome.response.rcode}` };
  if (!outcome.response.authenticated)
    return { kind: 'not-validating', reason: `SOA ${probe}: answered without the AD bit (the resolver does not validate)` };
  return { kind: 'validating' };
}
