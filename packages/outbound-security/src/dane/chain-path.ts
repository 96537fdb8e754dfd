/**
 * DANE-TA (DANE-4, DANE-9, DANE-10; RFC 7671 §5.2, RFC 7672 §3.1.2): a path
 * from the leaf up to the trust anchor through the certificates the server
 * sent, each link checked with Node's crypto (OpenSSL), the path then
 * validated as RFC 5280 says (`path-validation.ts`).
 *
 * - Links: the issuer's subject (and key identifier, and keyCertSign) fits the
 *   child (`checkIssued`, no signature check), then the issuer's key verifies
 *   the child's signature (`verify`), only for a link the search follows.
 * - A bare public key (a `2 1 0` record) can only be tried by its signature:
 *   as OpenSSL does, it is tried on the top of the chain only (a certificate
 *   none of the others issued), never on every certificate.
 * - The certificates may come in any order (TLS 1.3 allows it); the search is
 *   breadth-first, so the path found first is the shortest.
 *
 * DANE-10, bounded cost: a connection spends at most `SIGNATURE_BUDGET` on
 * signature checks (8 with P-256 keys, 2 with P-521); every result is kept in the `CertificateCache` by the
 * fingerprints of the pair (certificate and issuer certificate, or certificate
 * and key), so no pair is ever checked twice while remembered, and a later
 * connection goes on where the budget stopped. Keys whose check could cost
 * more than a millisecond (RSA over 8192 bits or with a public exponent over
 * 32 bits, DSA, unusual curves) are refused without a check.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { CertificateCache } from './certificate-cache';
import { certLabel, oneLine, pathProblems } from './path-validation';

/**
 * Signature checks one connection may spend (DANE-10, OPS-5), in units of
 * about 100 µs of a current CPU: a check with an EC P-256, Ed25519 or RSA key
 * up to 2048 bits costs 1, P-384 or RSA up to 4096 bits 2, P-521, Ed448 or RSA
 * up to 8192 bits 4 (P-521 measured at 0.5 ms here unloaded, 2.5 ms on a
 * loaded 2-core test machine). Deterministic, unlike a clock: the same chain
 * gets the same verdict on a busy machine. A real chain needs one check per
 * link, remembered afterwards.
 */
export const SIGNATURE_BUDGET = 8;

/** RSA moduli and exponents above these make a signature check cost more than it should. */
const MAX_RSA_BITS = 8192;
const MAX_RSA_EXPONENT = 0xffffffffn;
const CURVE_COST: ReadonlyMap<string, number> = new Map([
  ['prime256v1', 1],
  ['secp384r1', 2],
  ['secp521r1', 4],
]);

/** The trust anchor a DANE-TA record names: a certificate of the chain, or one (or a bare key) the record holds. */
export interface TrustAnchor {
  /** For messages: `CN=Example CA`, or `the public key in the TLSA record`. */
  label: string;
  /** Its certificate, when there is one (sent by the server, or the data of a `2 0 0` record). */
  cert?: X509Certificate;
  /** Its key, when the record holds only that (`2 1 0`), with the SHA-256 of its DER as its name in the cache. */
  key?: { key: KeyObject; fingerprint: string };
  /** Its position in the chain, when the server sent it. */
  index?: number;
}

/** The signature checks one connection may still make. */
export class SignatureBudget {
  /** Checks made. */
  used = 0;
  private spent = 0;

  constructor(readonly limit: number = SIGNATURE_BUDGET) {}

  /** Runs one check costing `cost` units, or throws BudgetSpent when they are not left. */
  check<T>(cost: number, run: () => T): T {
    if (this.spent + cost > this.limit) throw new BudgetSpent(this.limit);
    this.spent += cost;
    this.used++;
    return run();
  }
}

export class BudgetSpent extends Error {
  constructor(limit: number) {
    super(
      `the budget of signature checks per connection (${limit} units) is spent (DANE-10); the next connection goes on from the checks made`,
    );
  }
}

/** One connection's search: the same chain for every anchor tried. */
export interface PathSearch {
  now: Date;
  cache: CertificateCache;
  budget: SignatureBudget;
  /** Per certificate of the chain, the others whose names say they issued it; filled as the search goes. */
  issuers: Map<number, number[]>;
}

/** `depth`: links from the leaf to the trust anchor (1 when the anchor issued the leaf). */
export type ChainPath = { kind: 'path'; depth: number } | { kind: 'none'; problems: string[] };

/** Searches the chain for a validated path from the leaf (`chain[0]`) up to `anchor`. */
export function pathToAnchor(chain: readonly X509Certificate[], anchor: TrustAnchor, search: PathSearch): ChainPath {
  const problems = new Set<string>();
  try {
    const below = new Map<number, number>([[0, -1]]); // certificate → the one it issued on the path
    const queue = [0];
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const child = chain[i] as X509Certificate;
      const issuers = namedIssuers(chain, i, search).filter((j) => j !== anchor.index);
      if (signedByAnchor(child, anchor, issuers.length === 0, search, problems)) {
        const path = pathFrom(chain, below, i);
        const found = pathProblems(path, anchor.cert, search.now, search.cache);
        if (found.length === 0) return { kind: 'path', depth: path.length };
        for (const p of found) problems.add(p);
      }
      for (const j of issuers) {
        if (below.has(j)) continue;
        const issuer = chain[j] as X509Certificate;
        if (!search.cache.remember(issuer, 'ca', () => issuer.ca)) {
          problems.add(`${certLabel(issuer)} is not a CA certificate`);
          continue;
        }
        if (!signedBy(child, issuer, search, problems)) continue;
        below.set(j, i);
        queue.push(j);
      }
    }
  } catch (err) {
    if (!(err instanceof BudgetSpent)) throw err;
    problems.add(err.message);
  }
  if (problems.size === 0)
    problems.add(`no certificate sent links the leaf (issuer ${oneLine(chain[0]?.issuer) || 'unknown'}) to ${anchor.label}`);
  return { kind: 'none', problems: [...problems] };
}

/** The path from the leaf to certificate `top`, leaf first. */
function pathFrom(chain: readonly X509Certificate[], below: ReadonlyMap<number, number>, top: number): X509Certificate[] {
  const path: X509Certificate[] = [];
  for (let i = top; i >= 0; i = below.get(i) ?? -1) path.unshift(chain[i] as X509Certificate);
  return path;
}

/** The certificates of the chain whose names (and key identifiers) say they issued certificate `i`. */
function namedIssuers(chain: readonly X509Certificate[], i: number, search: PathSearch): number[] {
  let found = search.issuers.get(i);
  if (!found) {
    const child = chain[i] as X509Certificate;
    found = chain.flatMap((issuer, j) => (j !== i && named(child, issuer, search.cache) ? [j] : []));
    search.issuers.set(i, found);
  }
  return found;
}

function named(child: X509Certificate, issuer: X509Certificate, cache: CertificateCache): boolean {
  return child !== issuer && cache.rememberPair(child, issuer, 'named', () => child.checkIssued(issuer));
}

function signedByAnchor(child: X509Certificate, anchor: TrustAnchor, top: boolean, search: PathSearch, problems: Set<string>): boolean {
  if (anchor.cert) return named(child, anchor.cert, search.cache) && signedBy(child, anchor.cert, search, problems);
  if (!anchor.key || !top) return false;
  const { key, fingerprint } = anchor.key;
  const result = search.cache.rememberLink(child, fingerprint, 'signed', () => check(child, key, search.budget));
  if (result === 'signed') return true;
  problems.add(`${certLabel(child)} is not signed by ${anchor.label}${result === 'bad signature' ? '' : ` (${result})`}`);
  return false;
}

/** `issuer` signed `child` (names already fit); a failed check is a problem. */
function signedBy(child: X509Certificate, issuer: X509Certificate, search: PathSearch, problems: Set<string>): boolean {
  const result = search.cache.rememberPair(child, issuer, 'signed', () => check(child, issuer.publicKey, search.budget));
  if (result === 'signed') return true;
  problems.add(`${certLabel(child)} is not signed by the key of ${certLabel(issuer)}${result === 'bad signature' ? '' : ` (${result})`}`);
  return false;
}

/** One signature check, from the budget; a key that would cost too much is refused unchecked. */
function check(child: X509Certificate, key: KeyObject, budget: SignatureBudget): string {
  const cost = checkCost(key);
  if (typeof cost === 'string') return cost;
  return budget.check(cost, () => (child.verify(key) ? 'signed' : 'bad signature'));
}

/** What checking a signature with `key` costs in budget units, or why it is refused (DANE-10). */
function checkCost(key: KeyObject): number | string {
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ed25519') return 1;
  if (type === 'ed448') return 4;
  if (type === 'ec') return CURVE_COST.get(details.namedCurve ?? '') ?? `EC curve ${details.namedCurve ?? 'unknown'} not accepted`;
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = details.modulusLength ?? Infinity;
    if (bits > MAX_RSA_BITS) return `RSA key over ${MAX_RSA_BITS} bits not accepted`;
    if ((details.publicExponent ?? 0n) > MAX_RSA_EXPONENT) return 'RSA public exponent over 32 bits not accepted';
    return bits <= 2048 ? 1 : bits <= 4096 ? 2 : 4;
  }
  return `${type} keys not accepted`;
}
