/**
 * TLS-1, OPS-6: does a certificate carry a dNSName subjectAltName for a host,
 * read from the `subjectaltname` text Node's TLS stack already made during
 * the handshake (its own identity check gets it), instead of asking OpenSSL
 * again through an X509Certificate (`checkHost`) on every connection?
 *
 * Conservative by design: it answers `match` only for the plain cases whose
 * answer is certain (a name equal to the host, or a `*.` wildcard that is the
 * whole leftmost label and stands for exactly one label of a host whose
 * remaining labels are two or more), and `unknown` for everything else (no
 * match, escaped or unusual names, trailing dots, IDNA labels with a
 * wildcard, addresses), where the caller asks OpenSSL as before. So this can only make
 * a valid certificate cheaper to recognise, never make one valid.
 */

export type SanMatch = 'match' | 'unknown';

/** A host name as a certificate check sees it: lowercase LDH labels separated by dots, no trailing dot. */
const HOST = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/;
/** A last label of digits only: an address, not a host name. */
const NUMERIC_TLD = /\.\d+$/;

/**
 * `subjectAltName` is Node's text form (`DNS:a.example, DNS:*.b.example,
 * IP Address:192.0.2.1`); entries Node had to escape are quoted and never match.
 */
export function matchDnsSan(subjectAltName: string | undefined, host: string): SanMatch {
  // A quote means Node escaped an entry (one holding ", " among others): splitting is not safe.
  if (!subjectAltName || subjectAltName.includes('"')) return 'unknown';
  const name = host.toLowerCase();
  if (!HOST.test(name) || NUMERIC_TLD.test(name)) return 'unknown';
  const parent = name.slice(name.indexOf('.') + 1);
  const wildcard = parent.includes('.') && !name.includes('xn--') ? `*.${parent}` : null;
  for (const entry of subjectAltName.split(', ')) {
    if (!entry.startsWith('DNS:')) continue;
    const san = entry.slice(4).toLowerCase();
    if (san === name || san === wildcard) return 'match';
  }
  return 'unknown';
}
