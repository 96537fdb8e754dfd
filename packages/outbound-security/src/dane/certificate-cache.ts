/**
 * What DANE matching (DANE-4) works out about certificates, kept between
 * connections so that a check costs microseconds (issue 12: at most 100 µs per
 * connection). With OpenSSL 3.0 (Node 20) exporting a public key as
 * SubjectPublicKeyInfo DER takes 100–200 µs, verifying an ECDSA P-256 signature
 * about 60 µs, and the first look at a certificate's extensions or dates some
 * more; each connection brings new certificate objects, but an MX host presents
 * the same certificates for months.
 *
 * Facts are keyed by SHA-256 fingerprints: one fingerprint is one DER encoding,
 * so a fact remembered is a fact about the certificate at hand. Both maps are
 * bounded; the least recently used certificates (or pairs) go first. A fact
 * whose computation throws is not remembered.
 */
import type { X509Certificate } from 'node:crypto';

/** Certificates, and issuer/child pairs, remembered by default. */
export const DEFAULT_CACHED_CERTIFICATES = 1000;

export class CertificateCache {
  /** fingerprint → fact key → value */
  private readonly certificates = new Map<string, Map<string, unknown>>();
  /** `child fingerprint parent fingerprint` → fact key → value */
  private readonly pairs = new Map<string, Map<string, unknown>>();

  /** Fingerprints by certificate object: Node computes `fingerprint256` again at each read (a native call). */
  private readonly fingerprints = new WeakMap<X509Certificate, string>();

  constructor(readonly maxEntries: number = DEFAULT_CACHED_CERTIFICATES) {}

  /** The certificate's SHA-256 fingerprint, read once per certificate object. */
  fingerprint(cert: X509Certificate): string {
    let known = this.fingerprints.get(cert);
    if (known === undefined) {
      known = cert.fingerprint256;
      this.fingerprints.set(cert, known);
    }
    return known;
  }

  /** The value of `compute` for this certificate; `key` names one fact, always of the same type. */
  remember<T>(cert: X509Certificate, key: string, compute: () => T): T {
    return this.lookup(this.certificates, this.fingerprint(cert), key, compute);
  }

  /** The same for a pair of certificates (a child and a possible issuer). */
  rememberPair<T>(child: X509Certificate, parent: X509Certificate, key: string, compute: () => T): T {
    return this.lookup(this.pairs, `${this.fingerprint(child)} ${this.fingerprint(parent)}`, key, compute);
  }

  /** The same for a certificate and something else named by `parentId` (a bare public key's fingerprint). */
  rememberLink<T>(child: X509Certificate, parentId: string, key: string, compute: () => T): T {
    return this.lookup(this.pairs, `${this.fingerprint(child)} ${parentId}`, key, compute);
  }

  /** How many certificates and pairs are remembered. */
  get size(): { certificates: number; pairs: number } {
    return { certificates: this.certificates.size, pairs: this.pairs.size };
  }

  private lookup<T>(map: Map<string, Map<string, unknown>>, id: string, key: string, compute: () => T): T {
    let facts = map.get(id);
    if (facts) {
      map.delete(id); // most recently used last
      map.set(id, facts);
      if (facts.has(key)) return facts.get(key) as T;
    }
    const value = compute();
    if (!facts) {
      facts = new Map<string, unknown>();
      map.set(id, facts);
      for (const oldest of map.keys()) {
        if (map.size <= this.maxEntries) break;
        map.delete(oldest);
      }
    }
    facts.set(key, value);
    return value;
  }
}
