/**
 * DANE-TA (DANE-4, RFC 7671 §5.2, RFC 7672 §3.1.2): is there a chain of
 * signatures from the leaf up to the trust anchor, through the certificates
 * the server sent?
 *
 * Each link is checked with Node's crypto, not a hand-written verifier: the
 * issuer's subject (and key identifier) fits the child (`checkIssued`) and the
 * issuer's key verifies the child's signature (`verify`). A certificate between
 * the leaf and the trust anchor must be a CA certificate and inside its validity
 * period (RFC 5280 §6.1.3, §6.1.4(k)); the trust anchor itself is the TLSA
 * record's to vouch for, so its own dates and constraints are not checked
 * (RFC 5280 §6.1.1(d): a trust anchor is an input of path validation, not a
 * certificate of the path). The leaf's dates and names are the caller's.
 *
 * The certificates may come in any order (TLS 1.3 allows it, and
 * `getPeerX509Certificate` keeps the order they were sent in): the search is
 * breadth-first over the chain, so the depth found is the shortest.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { CertificateCache } from './certificate-cache';

/** The trust anchor a DANE-TA record names: a certificate of the chain, or one (or a bare key) the record holds. */
export interface TrustAnchor {
  /** For messages: `CN=Example CA`, or `the public key in the TLSA record`. */
  label: string;
  /** Its certificate, when there is one (sent by the server, or the data of a `2 0 0` record). */
  cert?: X509Certificate;
  /** Its key, when the record holds only that (`2 1 0`). */
  key?: KeyObject;
  /** Its position in the chain, when the server sent it. */
  index?: number;
}

/** `depth`: links from the leaf to the trust anchor (1 when the anchor issued the leaf). */
export type ChainPath = { kind: 'path'; depth: number } | { kind: 'none'; problems: string[] };

/** The subject, on one line, for messages. */
export function certLabel(cert: X509Certificate): string {
  return oneLine(cert.subject) || '(empty subject)';
}

/** Why `cert` is outside its validity period at `now`, or undefined when it is inside. */
export function validityProblem(cert: X509Certificate, now: Date, cache: CertificateCache): string | undefined {
  const { from, to } = cache.remember(cert, 'validity', () => ({ from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) }));
  const at = now.toISOString();
  if (!(from <= now.getTime())) return `${certLabel(cert)} is not valid before ${cert.validFrom} (now ${at})`;
  if (!(now.getTime() <= to)) return `${certLabel(cert)} expired on ${cert.validTo} (now ${at})`;
  return undefined;
}

/** Searches the chain for signatures from the leaf (`chain[0]`) up to `anchor`. */
export function pathToAnchor(chain: readonly X509Certificate[], anchor: TrustAnchor, now: Date, cache: CertificateCache): ChainPath {
  const problems = new Set<string>();
  const visited = new Set<number>([0]);
  let level = [0];
  for (let depth = 1; level.length > 0; depth++) {
    const next: number[] = [];
    for (const i of level) {
      const child = chain[i] as X509Certificate;
      if (signedByAnchor(child, anchor, cache, problems)) return { kind: 'path', depth };
      chain.forEach((issuer, j) => {
        if (visited.has(j) || j === anchor.index || !isIssuer(child, issuer, cache, problems)) return;
        const isCa = cache.remember(issuer, 'ca', () => issuer.ca);
        const problem = isCa ? validityProblem(issuer, now, cache) : `${certLabel(issuer)} is not a CA certificate`;
        if (problem) problems.add(problem);
        else {
          visited.add(j);
          next.push(j);
        }
      });
    }
    level = next;
  }
  if (problems.size === 0)
    problems.add(`no certificate sent links the leaf (issuer ${oneLine(chain[0]?.issuer) || 'unknown'}) to ${anchor.label}`);
  return { kind: 'none', problems: [...problems] };
}

function signedByAnchor(child: X509Certificate, anchor: TrustAnchor, cache: CertificateCache, problems: Set<string>): boolean {
  if (anchor.cert) return isIssuer(child, anchor.cert, cache, problems);
  if (!anchor.key) return false;
  if (child.verify(anchor.key)) return true;
  problems.add(`${certLabel(child)} is not signed by ${anchor.label}`);
  return false;
}

/** `issuer` names itself as the child's issuer and signed it; a named issuer whose signature fails is a problem. */
function isIssuer(child: X509Certificate, issuer: X509Certificate, cache: CertificateCache, problems: Set<string>): boolean {
  if (child === issuer) return false;
  const link = cache.rememberPair(child, issuer, 'issuance', () => {
    if (!child.checkIssued(issuer)) return 'other issuer';
    return child.verify(issuer.publicKey) ? 'signed' : 'bad signature';
  });
  if (link === 'bad signature') problems.add(`${certLabel(child)} is not signed by the key of ${certLabel(issuer)}`);
  return link === 'signed';
}

/** A distinguished name as Node gives it (one attribute a line), on one line. */
function oneLine(name: string | undefined): string {
  return name?.split('\n').join(', ') ?? '';
}
