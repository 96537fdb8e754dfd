/**
 * DANE-9: RFC 5280 path validation (RFC 6698 §2.1.1) of a path from a DANE-TA
 * trust anchor down to the leaf, once its signatures are known to chain
 * (`chain-path.ts` finds the path and checks them with Node's crypto):
 *
 * - every certificate below the anchor: no unknown critical extension
 *   (RFC 5280 §4.2, §6.1.4(o), §6.1.5(f));
 * - intermediates: a CA (basicConstraints cA, §6.1.4(k)), keyCertSign when
 *   keyUsage is present (§6.1.4(n)), inside their validity period (§6.1.3(a)),
 *   within the path length constraints above them (§6.1.4(l), (m));
 * - each intermediate's name constraints over every certificate below it,
 *   self-issued intermediates aside (§6.1.3(b), (c); `name-constraints.ts`);
 * - the leaf's extended key usage, when present, includes serverAuth, and so
 *   does an intermediate's (as OpenSSL checks the chain for TLS servers); the
 *   leaf's key usage, when present, allows a TLS key exchange or signature.
 *
 * A trust anchor that is a certificate (sent by the server, or the data of a
 * `2 0 0` record) brings its constraints with it, as OpenSSL applies them:
 * its critical extensions, CA flag, key usage, extended key usage, path length
 * and name constraints count like an intermediate's (RFC 5937 §2: constraints
 * in a trust anchor's certificate may be enforced; the differential test
 * against OpenSSL showed all six). Its dates do not: the anchor is the TLSA
 * record's to vouch for (RFC 5280 §6.1.1(d); OpenSSL agrees). A bare key
 * (`2 1 0`) has no constraints. The leaf's dates and names are DANE-4's
 * (`match.ts`).
 */
import type { X509Certificate } from 'node:crypto';
import type { CertificateCache } from './certificate-cache';
import { certificateFacts, ID_KP_SERVER_AUTH, KeyUsageBit, type CertificateFacts } from './certificate-facts';
import { constrainedNames, nameConstraintProblem } from './name-constraints';

/** The leaf's keyUsage must allow one of these for TLS (as OpenSSL's ssl_server purpose). */
const TLS_KEY_USAGE = KeyUsageBit.digitalSignature | KeyUsageBit.keyEncipherment | KeyUsageBit.keyAgreement;

/** The subject, on one line, for messages. */
export function certLabel(cert: X509Certificate): string {
  return oneLine(cert.subject) || '(empty subject)';
}

/** A distinguished name as Node gives it (one attribute a line), on one line. */
export function oneLine(name: string | undefined): string {
  return name?.split('\n').join(', ') ?? '';
}

/** Why `cert` is outside its validity period at `now`, or undefined when it is inside. */
export function validityProblem(cert: X509Certificate, now: Date, cache: CertificateCache): string | undefined {
  const { from, to } = cache.remember(cert, 'validity', () => ({ from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) }));
  const at = now.toISOString();
  if (!(from <= now.getTime())) return `${certLabel(cert)} is not valid before ${cert.validFrom} (now ${at})`;
  if (!(now.getTime() <= to)) return `${certLabel(cert)} expired on ${cert.validTo} (now ${at})`;
  return undefined;
}

/** The decoded facts of a certificate, once per certificate while the cache remembers it. */
export function factsOf(cert: X509Certificate, cache: CertificateCache): CertificateFacts | string {
  try {
    return cache.remember(cert, 'rfc5280 facts', () => certificateFacts(cert.raw));
  } catch (err) {
    return `${certLabel(cert)} cannot be decoded: ${(err as Error).message}`;
  }
}

/**
 * Problems of the path `below` (leaf first; the last one issued by the trust
 * anchor) under `anchor`, the anchor's certificate when it has one; none
 * means it validates. All but the dates is worked out once per path and
 * anchor while the cache remembers the leaf.
 */
export function pathProblems(
  below: readonly X509Certificate[],
  anchor: X509Certificate | undefined,
  now: Date,
  cache: CertificateCache,
): string[] {
  const path = anchor ? [...below, anchor] : below;
  const id = path.map((cert) => cache.fingerprint(cert)).join(' ');
  const problems = [...cache.rememberLink(below[0] as X509Certificate, id, 'rfc5280', () => constraintProblems(path, cache))];
  for (const cert of below.slice(1)) {
    const dates = validityProblem(cert, now, cache);
    if (dates) problems.push(dates);
  }
  return problems;
}

/** What path validation finds besides the dates (which change with the time of the check). */
function constraintProblems(path: readonly X509Certificate[], cache: CertificateCache): string[] {
  const problems: string[] = [];
  const facts: CertificateFacts[] = [];
  for (const cert of path) {
    const f = factsOf(cert, cache);
    if (typeof f === 'string') return [f];
    facts.push(f);
  }
  path.forEach((cert, i) => {
    const f = facts[i] as CertificateFacts;
    const label = certLabel(cert);
    for (const oid of f.unknownCritical) problems.push(`${label} has an unknown critical extension ${oid}`);
    const eku = f.extKeyUsage;
    if (eku && !eku.includes(ID_KP_SERVER_AUTH))
      problems.push(`${label}: its extended key usage (${eku.join(', ')}) does not include serverAuth`);
    if (i === 0) {
      if (f.keyUsage !== undefined && (f.keyUsage & TLS_KEY_USAGE) === 0)
        problems.push(`${label}: its key usage allows neither digitalSignature, keyEncipherment nor keyAgreement`);
      return;
    }
    // Node's `ca` is OpenSSL's X509_check_ca (basicConstraints cA, or a v1 self-signed root).
    if (!cert.ca) problems.push(`${label} is not a CA certificate`);
    else if (f.keyUsage !== undefined && (f.keyUsage & KeyUsageBit.keyCertSign) === 0)
      problems.push(`${label}: its key usage lacks keyCertSign`);
  });
  problems.push(...pathLengthProblems(path, facts), ...nameProblems(path, facts));
  return problems;
}

/** RFC 5280 §6.1.4(l), (m), from the anchor down. */
function pathLengthProblems(path: readonly X509Certificate[], facts: readonly CertificateFacts[]): string[] {
  let max = path.length;
  let setBy = 'the path';
  for (let i = path.length - 1; i >= 1; i--) {
    const cert = path[i] as X509Certificate;
    if (!selfIssued(cert)) {
      if (max <= 0) return [`${certLabel(cert)}: the path length constraint of ${setBy} allows no CA below it`];
      max--;
    }
    const pathLen = (facts[i] as CertificateFacts).pathLen;
    if (pathLen !== undefined && pathLen < max) {
      max = pathLen;
      setBy = `${certLabel(cert)} (pathlen ${pathLen})`;
    }
  }
  return [];
}

/** RFC 5280 §6.1.3(b), (c): each intermediate's constraints over the certificates below it. */
function nameProblems(path: readonly X509Certificate[], facts: readonly CertificateFacts[]): string[] {
  const problems: string[] = [];
  for (let j = path.length - 1; j >= 1; j--) {
    const constraints = (facts[j] as CertificateFacts).nameConstraints;
    if (!constraints) continue;
    for (let i = j - 1; i >= 0; i--) {
      if (i > 0 && selfIssued(path[i] as X509Certificate)) continue;
      const problem = nameConstraintProblem(
        constraints,
        constrainedNames(facts[i] as CertificateFacts, i === 0),
        certLabel(path[j] as X509Certificate),
      );
      if (problem) problems.push(problem);
    }
  }
  return problems;
}

function selfIssued(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer;
}
