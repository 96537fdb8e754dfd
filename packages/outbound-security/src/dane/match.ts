/**
 * DANE-4: does the certificate chain an SMTP server sent match its TLSA RRset
 * (RFC 7672 §3, RFC 7671 §5, RFC 6698 §2.1)?
 *
 * - Only usable records count (DANE-3, `classifyTlsaRrset`); unusable ones are
 *   named in the reasons of a mismatch.
 * - DANE-EE(3), tried first: the leaf's SubjectPublicKeyInfo (selector 1) or
 *   whole certificate (0), as is (matching 0) or as its SHA-256 (1) or SHA-512
 *   (2) digest, equals the record's data. Names, dates and the rest of the chain
 *   are ignored (RFC 7672 §3.1.1): a self-signed or expired leaf matches.
 * - DANE-TA(2): the record matches a certificate the server sent other than the
 *   leaf (as OpenSSL, RFC 7671 §5.2: a trust anchor issues; a record for the leaf
 *   itself is DANE-EE's job), or, for a Full(0) record matching no certificate
 *   sent, the record's own certificate or public key is the trust anchor
 *   (RFC 7671 §5.2: a server may then leave the anchor out). Then: a chain of signatures from the leaf up to
 *   that anchor (`pathToAnchor`), the leaf inside its validity period at `now`,
 *   and one of the leaf's names matching the TLSA base domain or the MX host
 *   (RFC 7672 §3.2.2): DNS-ID subjectAltNames only, the subject CN only when
 *   there is none, a wildcard only as a whole first label matching exactly one
 *   label (RFC 7672 §3.2.3, RFC 6125 §6.4.3).
 *
 * Never throws: any failure is a mismatch with reasons that name each record.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { CertificateCache } from './certificate-cache';
import { certLabel, pathToAnchor, validityProblem, type TrustAnchor } from './chain-path';
import { associationName, classifyTlsaRrset, formatTlsa, shortHex, TlsaMatching, TlsaSelector, TlsaUsage, type TlsaRecord } from './tlsa';

export interface DaneContext {
  /** The MX host name, also the SNI name sent. */
  mxHost: string;
  /** Where the TLSA RRset was found, without `_25._tcp.`: the MX host, or the name its CNAMEs lead to. */
  tlsaBaseDomain: string;
  /** DANE-11: more names the leaf may carry (a CNAME'd MX host's expanded and original names). */
  names?: readonly string[];
  now: Date;
  /** Facts about certificates kept between connections; without one, nothing is kept. */
  cache?: CertificateCache;
}

export type DaneMatch =
  | { kind: 'match'; via: 'dane-ee'; record: TlsaRecord; depth: 0 }
  /** `depth`: links from the leaf up to the trust anchor; `name`: the reference identifier the leaf matched. */
  | { kind: 'match'; via: 'dane-ta'; record: TlsaRecord; depth: number; name: string }
  | { kind: 'mismatch'; reasons: string[] };

/** Node's names of the digests of matching types 1 and 2 (usable records have no other). */
const HASHES: Readonly<Record<number, string>> = { [TlsaMatching.SHA2_256]: 'sha256', [TlsaMatching.SHA2_512]: 'sha512' };

/** The subject CN only without DNS-ID subjectAltNames; wildcards only as a whole first label, matching one label. */
const NAME_CHECK = { subject: 'default', wildcards: true, partialWildcards: false, multiLabelWildcards: false } as const;

/**
 * Matches the chain the server sent (`peer`, leaf first, as `chainFromX509` or
 * `chainFromDetailed` give it) against a TLSA RRset.
 */
export function matchDane(records: readonly TlsaRecord[], peer: readonly X509Certificate[], context: DaneContext): DaneMatch {
  try {
    return matchRrset(records, peer, context);
  } catch (err) {
    return { kind: 'mismatch', reasons: [`DANE matching failed: ${(err as Error).message}`] };
  }
}

function matchRrset(records: readonly TlsaRecord[], peer: readonly X509Certificate[], context: DaneContext): DaneMatch {
  const rrset = classifyTlsaRrset(records);
  const reasons = rrset.kind === 'empty' ? ['no TLSA records'] : rrset.unusable.map((u) => `${formatTlsa(u.record)}: ${u.reason}`);
  const leaf = peer[0];
  if (!leaf) return { kind: 'mismatch', reasons: [...reasons, 'the server sent no certificate'] };
  if (rrset.kind !== 'usable') return { kind: 'mismatch', reasons: [...reasons, 'no usable TLSA record'] };
  const cache = context.cache ?? new CertificateCache();
  const ordered = [
    ...rrset.usable.filter((r) => r.usage === TlsaUsage.DANE_EE),
    ...rrset.usable.filter((r) => r.usage === TlsaUsage.DANE_TA),
  ];
  const ta = new TaChecks(peer, context, cache);
  for (const record of ordered) {
    const result = record.usage === TlsaUsage.DANE_EE ? matchEe(record, leaf, cache) : ta.match(record);
    if (typeof result !== 'string') return result;
    reasons.push(`${formatTlsa(record)}: ${result}`);
  }
  return { kind: 'mismatch', reasons };
}

/** DANE-EE(3): a match, or why not. */
function matchEe(record: TlsaRecord, leaf: X509Certificate, cache: CertificateCache): DaneMatch | string {
  const actual = associationOf(leaf, record, cache);
  if (typeof actual === 'string') return actual;
  if (actual.equals(record.data)) return { kind: 'match', via: 'dane-ee', record, depth: 0 };
  return `${associationName(record)} of the leaf (${certLabel(leaf)}) is ${shortHex(actual)}`;
}

/** DANE-TA(2) matching; what does not depend on the record (the leaf's names and dates) is worked out once. */
class TaChecks {
  private leaf: { problems: string[]; name: string } | undefined;

  constructor(
    private readonly chain: readonly X509Certificate[],
    private readonly context: DaneContext,
    private readonly cache: CertificateCache,
  ) {}

  match(record: TlsaRecord): DaneMatch | string {
    const anchors = this.anchorsFor(record);
    if (typeof anchors === 'string') return anchors;
    const failures: string[] = [];
    for (const anchor of anchors) {
      const path = pathToAnchor(this.chain, anchor, this.context.now, this.cache);
      const leaf = this.leafChecks();
      const problems = [...(path.kind === 'none' ? path.problems : []), ...leaf.problems];
      if (path.kind === 'path' && problems.length === 0)
        return { kind: 'match', via: 'dane-ta', record, depth: path.depth, name: leaf.name };
      failures.push(`trust anchor ${anchor.label}: ${problems.join('; ')}`);
    }
    return failures.join(' | ');
  }

  /** The certificates the record names as trust anchor, or why there is none. */
  private anchorsFor(record: TlsaRecord): TrustAnchor[] | string {
    const unreadable: string[] = [];
    const matches = (cert: X509Certificate): boolean => {
      const actual = associationOf(cert, record, this.cache);
      if (typeof actual === 'string') unreadable.push(actual);
      return typeof actual !== 'string' && actual.equals(record.data);
    };
    const anchors = this.chain.flatMap((cert, index) => (index > 0 && matches(cert) ? [{ label: certLabel(cert), cert, index }] : []));
    if (anchors.length > 0) return anchors;
    const leaf = this.chain[0] as X509Certificate;
    if (matches(leaf)) return 'matches the leaf, not an issuer: a DANE-TA record names a trust anchor (publish 3 x x for the leaf)';
    if (record.matchingType === TlsaMatching.FULL && unreadable.length === 0) return anchorFromRecord(record);
    const sent = `${associationName(record)} matches none of the ${this.chain.length} certificates the server sent (${this.chain.map(certLabel).join(' | ')})`;
    return [sent, ...unreadable].join('; ');
  }

  /** Problems with the leaf's dates and names, the same for every DANE-TA record. */
  private leafChecks(): { problems: string[]; name: string } {
    if (this.leaf) return this.leaf;
    const leaf = this.chain[0] as X509Certificate;
    const problems: string[] = [];
    const dates = validityProblem(leaf, this.context.now, this.cache);
    if (dates) problems.push(`the leaf ${dates}`);
    const names = referenceNames(this.context);
    const name = names.find((n) => this.cache.remember(leaf, `name ${n}`, () => hasName(leaf, n)));
    if (name === undefined) problems.push(`the leaf's names (${leaf.subjectAltName ?? certLabel(leaf)}) match none of ${names.join(', ')}`);
    this.leaf = { problems, name: name ?? '' };
    return this.leaf;
  }
}

/** A Full(0) record's data as the trust anchor itself: a certificate (`2 0 0`) or a public key (`2 1 0`). */
function anchorFromRecord(record: TlsaRecord): TrustAnchor[] | string {
  try {
    if (record.selector === TlsaSelector.CERT) {
      const cert = new X509Certificate(record.data);
      return [{ label: `${certLabel(cert)} (from the TLSA record)`, cert }];
    }
    return [{ label: 'the public key in the TLSA record', key: createPublicKey({ key: record.data, format: 'der', type: 'spki' }) }];
  } catch (err) {
    const what = record.selector === TlsaSelector.CERT ? 'a certificate' : 'a public key';
    return `matches no certificate sent, and its data is not ${what}: ${(err as Error).message}`;
  }
}

/** The names the leaf may carry under DANE-TA: the TLSA base domain, a CNAME'd host's names (DANE-11) and the MX host (RFC 7672 §3.2.2). */
function referenceNames(context: DaneContext): string[] {
  const names = [context.tlsaBaseDomain, ...(context.names ?? []), context.mxHost]
    .map((n) => n.trim().toLowerCase().replace(/\.$/, ''))
    .filter((n) => n !== '');
  return [...new Set(names)];
}

/** `checkHost` for RFC 7672 §3.2.2/§3.2.3; a name OpenSSL refuses to compare is no match. */
function hasName(leaf: X509Certificate, name: string): boolean {
  try {
    return leaf.checkHost(name, NAME_CHECK) !== undefined;
  } catch {
    return false;
  }
}

/** The certificate's data for the record's selector and matching type, or why it cannot be had. */
function associationOf(cert: X509Certificate, record: TlsaRecord, cache: CertificateCache): Buffer | string {
  const { selector, matchingType } = record;
  try {
    if (selector === TlsaSelector.CERT && matchingType === TlsaMatching.FULL) return cert.raw;
    return cache.remember(cert, `tlsa ${selector} ${matchingType}`, () => {
      const selected = selector === TlsaSelector.SPKI ? cert.publicKey.export({ type: 'spki', format: 'der' }) : cert.raw;
      return matchingType === TlsaMatching.FULL
        ? selected
        : createHash(HASHES[matchingType] ?? '')
            .update(selected)
            .digest();
    });
  } catch (err) {
    return `cannot compute ${associationName(record)} of ${certLabel(cert)}: ${(err as Error).message}`;
  }
}
