/**
 * DANE-4: does the certificate chain an SMTP server sent match its TLSA RRset
 * (RFC 7672 §3, RFC 7671 §5, RFC 6698 §2.1)?
 *
 * - Only usable records count (DANE-3, `classifyTlsaRrset`; DANE-10: a Full(0)
 *   record whose data is not DER is unusable); unusable ones are named in the
 *   reasons. With none usable the result is `unusable-only`: TLS is required,
 *   without authentication (RFC 7672 §3.1.3).
 * - DANE-10: at most `MAX_USABLE_TLSA_RECORDS` usable records are used, the
 *   first ones of the RRset; the rest are ignored, named and counted.
 * - DANE-EE(3), tried first: the leaf's SubjectPublicKeyInfo (selector 1) or
 *   whole certificate (0), as is (matching 0) or as its SHA-256 (1) or SHA-512
 *   (2) digest, equals the record's data. Names, dates and the rest of the chain
 *   are ignored (RFC 7672 §3.1.1): a self-signed or expired leaf matches.
 * - DANE-TA(2): the record matches a certificate the server sent other than the
 *   leaf (as OpenSSL, RFC 7671 §5.2: a trust anchor issues; a record for the leaf
 *   itself is DANE-EE's job), or, for a Full(0) record matching no certificate
 *   sent, the record's own certificate or public key is the trust anchor
 *   (RFC 7671 §5.2: a server may then leave the anchor out). Then (DANE-9) the
 *   path from that anchor to the leaf passes RFC 5280 path validation
 *   (`chain-path.ts`, `path-validation.ts`), within a budget of signature
 *   checks per connection (DANE-10), the leaf is inside its validity period at
 *   `now`, and one of the leaf's names matches one of the acceptable names: the
 *   TLSA base domain, the MX host, and any `extraNames` (RFC 7672 §3.2.2):
 *   DNS-ID subjectAltNames only, the subject CN only when there is none, a
 *   wildcard only as a whole first label matching exactly one label
 *   (RFC 7672 §3.2.3, RFC 6125 §6.4.3).
 *
 * Never throws: any failure is a mismatch with reasons that name each record.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import { readFullData } from './association-data';
import { CertificateCache } from './certificate-cache';
import { pathToAnchor, SignatureBudget, type PathSearch, type TrustAnchor } from './chain-path';
import { certLabel, validityProblem } from './path-validation';
import {
  associationName,
  classifyTlsaRrset,
  formatTlsa,
  MAX_USABLE_TLSA_RECORDS,
  shortHex,
  TlsaMatching,
  TlsaSelector,
  TlsaUsage,
  type TlsaRecord,
} from './tlsa';

export interface DaneContext {
  /** The MX host name, also the SNI name sent. */
  mxHost: string;
  /** Where the TLSA RRset was found, without `_25._tcp.`: the MX host, or the name its CNAMEs lead to. */
  tlsaBaseDomain: string;
  now: Date;
  /** DANE-11: more names the leaf may carry under DANE-TA (a CNAME'd MX host's expanded and original names). */
  extraNames?: readonly string[];
  /** Signature checks this connection may still make (DANE-10); a new budget per call without one. */
  budget?: SignatureBudget;
  /** Facts about certificates kept between connections; without one, nothing is kept. */
  cache?: CertificateCache;
}

/** A DANE match, or why not. */
export type DaneOutcome =
  | { kind: 'match'; via: 'dane-ee'; record: TlsaRecord; depth: 0 }
  /** `depth`: links from the leaf up to the trust anchor; `name`: the reference identifier the leaf matched. */
  | { kind: 'match'; via: 'dane-ta'; record: TlsaRecord; depth: number; name: string }
  | { kind: 'mismatch'; reasons: string[] }
  /** No usable record (DANE-3, DANE-10): TLS is required, without authentication. */
  | { kind: 'unusable-only'; reasons: string[] };

/** What the match cost (DANE-10). */
export interface DaneWork {
  /** Signatures checked by this call (results remembered from earlier calls not counted). */
  signatureChecks: number;
  /** Usable records beyond the first MAX_USABLE_TLSA_RECORDS, ignored. */
  ignoredRecords: number;
}

export type DaneMatch = DaneOutcome & DaneWork;

/** Node's names of the digests of matching types 1 and 2 (usable records have no other). */
const HASHES: Readonly<Record<number, string>> = { [TlsaMatching.SHA2_256]: 'sha256', [TlsaMatching.SHA2_512]: 'sha512' };

/** The subject CN only without DNS-ID subjectAltNames; wildcards only as a whole first label, matching one label. */
const NAME_CHECK = { subject: 'default', wildcards: true, partialWildcards: false, multiLabelWildcards: false } as const;

/**
 * Matches the chain the server sent (`peer`, leaf first, as `chainFromX509` or
 * `chainFromDetailed` give it) against a TLSA RRset.
 */
export function matchDane(records: readonly TlsaRecord[], peer: readonly X509Certificate[], context: DaneContext): DaneMatch {
  const budget = context.budget ?? new SignatureBudget();
  const before = budget.used;
  const work = { ignoredRecords: 0 };
  let outcome: DaneOutcome;
  try {
    outcome = matchRrset(records, peer, { ...context, budget }, work);
  } catch (err) {
    outcome = { kind: 'mismatch', reasons: [`DANE matching failed: ${(err as Error).message}`] };
  }
  return { ...outcome, signatureChecks: budget.used - before, ignoredRecords: work.ignoredRecords };
}

function matchRrset(
  records: readonly TlsaRecord[],
  peer: readonly X509Certificate[],
  context: DaneContext & { budget: SignatureBudget },
  work: { ignoredRecords: number },
): DaneOutcome {
  const rrset = classifyTlsaRrset(records);
  const reasons = rrset.kind === 'empty' ? ['no TLSA records'] : rrset.unusable.map((u) => `${formatTlsa(u.record)}: ${u.reason}`);
  if (rrset.kind === 'unusable-only') return { kind: 'unusable-only', reasons: [...reasons, 'no usable TLSA record'] };
  const leaf = peer[0];
  if (!leaf) return { kind: 'mismatch', reasons: [...reasons, 'the server sent no certificate'] };
  if (rrset.kind !== 'usable') return { kind: 'mismatch', reasons: [...reasons, 'no usable TLSA record'] };
  const used = rrset.usable.slice(0, MAX_USABLE_TLSA_RECORDS);
  const ignored = rrset.usable.slice(MAX_USABLE_TLSA_RECORDS);
  work.ignoredRecords = ignored.length;
  reasons.push(...ignored.map((r) => `${formatTlsa(r)}: ignored: more than ${MAX_USABLE_TLSA_RECORDS} usable TLSA records (DANE-10)`));
  const cache = context.cache ?? new CertificateCache();
  const ordered = [...used.filter((r) => r.usage === TlsaUsage.DANE_EE), ...used.filter((r) => r.usage === TlsaUsage.DANE_TA)];
  const ta = new TaChecks(peer, context, { now: context.now, cache, budget: context.budget, issuers: new Map() });
  for (const record of ordered) {
    const result = record.usage === TlsaUsage.DANE_EE ? matchEe(record, leaf, cache) : ta.match(record);
    if (typeof result !== 'string') return result;
    reasons.push(`${formatTlsa(record)}: ${result}`);
  }
  return { kind: 'mismatch', reasons };
}

/** DANE-EE(3): a match, or why not. */
function matchEe(record: TlsaRecord, leaf: X509Certificate, cache: CertificateCache): DaneOutcome | string {
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
    private readonly search: PathSearch,
  ) {}

  match(record: TlsaRecord): DaneOutcome | string {
    const anchors = this.anchorsFor(record);
    if (typeof anchors === 'string') return anchors;
    const failures: string[] = [];
    for (const anchor of anchors) {
      const leaf = this.leafChecks();
      const path = pathToAnchor(this.chain, anchor, this.search);
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
      const actual = associationOf(cert, record, this.search.cache);
      if (typeof actual === 'string') unreadable.push(actual);
      return typeof actual !== 'string' && actual.equals(record.data);
    };
    const anchors = this.chain.flatMap((cert, index): TrustAnchor[] =>
      // The label is for messages only: Node builds the subject string at each read.
      index > 0 && matches(cert)
        ? [
            {
              get label() {
                return certLabel(cert);
              },
              cert,
              index,
            },
          ]
        : [],
    );
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
    const cache = this.search.cache;
    const problems: string[] = [];
    const dates = validityProblem(leaf, this.context.now, cache);
    if (dates) problems.push(`the leaf ${dates}`);
    const names = acceptableNames(this.context);
    const name = names.find((n) => cache.remember(leaf, `name ${n}`, () => hasName(leaf, n)));
    if (name === undefined) problems.push(`the leaf's names (${leaf.subjectAltName ?? certLabel(leaf)}) match none of ${names.join(', ')}`);
    this.leaf = { problems, name: name ?? '' };
    return this.leaf;
  }
}

/** A Full(0) record's data as the trust anchor itself: a certificate (`2 0 0`) or a public key (`2 1 0`). */
function anchorFromRecord(record: TlsaRecord): TrustAnchor[] | string {
  const data = readFullData(record.selector, record.data);
  if (data.kind === 'certificate') return [{ label: `${certLabel(data.cert)} (from the TLSA record)`, cert: data.cert }];
  if (data.kind === 'key') return [{ label: 'the public key in the TLSA record', key: { key: data.key, fingerprint: data.fingerprint } }];
  return `matches no certificate sent, and its data is ${data.reason}`;
}

/**
 * The names the leaf may carry under DANE-TA (RFC 7672 §3.2.2): the TLSA base
 * domain, the MX host and the context's extra names, normalised, each once.
 */
export function acceptableNames(context: Pick<DaneContext, 'tlsaBaseDomain' | 'mxHost' | 'extraNames'>): string[] {
  const names = [context.tlsaBaseDomain, context.mxHost, ...(context.extraNames ?? [])]
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
