/**
 * The certificate chain a server sent, leaf first, as DANE matching (DANE-4)
 * reads it, from what Node's TLS socket gives:
 *
 * - `chainFromX509(socket.getPeerX509Certificate())`: the certificates in the
 *   order the server sent them, linked by `issuerCertificate`, nothing added.
 *   Cheapest (no parsing: the guard already holds this object), and what
 *   RFC 7672 §3.1.2 means by the server's chain.
 * - `chainFromDetailed(socket.getPeerCertificate(true))`: Node's plain objects
 *   (`raw` DER, `issuerCertificate` links), reordered by issuer names, possibly
 *   completed with issuers from the local trust store, and ending in a root
 *   that links to itself. Node 20 drops a certificate sent before its child
 *   (a root sent ahead of the intermediate), and each certificate is parsed
 *   again here (~140 µs each with OpenSSL 3.0).
 *
 * In Node 20 `getPeerX509Certificate()` takes the certificates out of the
 * connection's peer chain: a second call, or `getPeerCertificate(true)` after
 * it, sees no chain. Read the chain once, from the first call.
 *
 * Both walks stop at a link back to a certificate already seen (by object or
 * by fingerprint), at a missing or malformed certificate, and after
 * `MAX_PEER_CHAIN` certificates; they never throw.
 */
import { X509Certificate } from 'node:crypto';

/** Certificates read from a peer chain, duplicates included; a longer chain is cut (real ones have 2–4; DANE-10: at least 16 are read, as OpenSSL reads them). */
export const MAX_PEER_CHAIN = 20;

export interface PeerChain {
  /** Leaf first. */
  certificates: X509Certificate[];
  /** Why the walk stopped before the chain's natural end, for logs. */
  problem?: string;
}

/** The fields of Node's detailed peer certificate that the walk reads. */
export interface DetailedPeerCertificateLinks {
  raw?: unknown;
  issuerCertificate?: unknown;
}

/** The chain from `getPeerCertificate(true)`; `{}` (no certificate) gives an empty chain. */
export function chainFromDetailed(detailed: DetailedPeerCertificateLinks | null | undefined, max = MAX_PEER_CHAIN): PeerChain {
  return walk<DetailedPeerCertificateLinks>(detailed ?? undefined, max, {
    next: (node) => (isObject(node.issuerCertificate) ? node.issuerCertificate : undefined),
    read: (node) => {
      if (node.raw === undefined) return undefined;
      if (!Buffer.isBuffer(node.raw)) return { problem: 'has no DER bytes (raw is not a Buffer)' };
      try {
        return { cert: new X509Certificate(node.raw) };
      } catch (err) {
        return { problem: `does not parse: ${(err as Error).message}` };
      }
    },
  });
}

/** The chain from `getPeerX509Certificate()`, through its `issuerCertificate` links. */
export function chainFromX509(leaf: X509Certificate | null | undefined, max = MAX_PEER_CHAIN): PeerChain {
  return walk<X509Certificate>(leaf ?? undefined, max, {
    next: (cert) => cert.issuerCertificate,
    read: (cert) => ({ cert }),
  });
}

interface Walker<N> {
  next: (node: N) => N | undefined;
  /** The node's certificate; undefined when there is none (the end of the chain). */
  read: (node: N) => { cert: X509Certificate } | { problem: string } | undefined;
}

function walk<N extends object>(first: N | undefined, max: number, walker: Walker<N>): PeerChain {
  const certificates: X509Certificate[] = [];
  const seenNodes = new Set<object>();
  const seenFingerprints = new Set<string>();
  try {
    for (let node = first; node !== undefined && !seenNodes.has(node); node = walker.next(node)) {
      if (seenNodes.size === max) {
        return { certificates, problem: `the chain is longer than ${max} certificates; the rest was not read` };
      }
      seenNodes.add(node);
      const read = walker.read(node);
      if (read === undefined) break;
      if ('problem' in read) return { certificates, problem: `certificate ${certificates.length} ${read.problem}` };
      if (seenFingerprints.has(read.cert.fingerprint256)) continue; // sent twice
      seenFingerprints.add(read.cert.fingerprint256);
      certificates.push(read.cert);
    }
  } catch (err) {
    return { certificates, problem: `reading certificate ${certificates.length} failed: ${(err as Error).message}` };
  }
  return { certificates };
}

function isObject(value: unknown): value is DetailedPeerCertificateLinks {
  return typeof value === 'object' && value !== null;
}
