/**
 * DANE-10: what the data of a Full(0) TLSA record holds, read as OpenSSL reads
 * it (`SSL_dane_tlsa_add`): a DER certificate with a readable public key for
 * selector Cert(0), a DER SubjectPublicKeyInfo for selector SPKI(1), each
 * taking up the data exactly. Anything else makes the record unusable
 * (RFC 6698 §4.1), not a record that matches nothing.
 *
 * Reading costs 100–300 µs (OpenSSL 3.0's decoders), so what was read is kept,
 * keyed by a SHA-256 of the selector and data, in a bounded map shared by the
 * lookup (which sorts records) and the match (which uses the anchor); an RRset
 * is read again only when its records change.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

export type FullData =
  | { kind: 'certificate'; cert: X509Certificate }
  | { kind: 'key'; key: KeyObject; fingerprint: string }
  | { kind: 'malformed'; reason: string };

/** Records' data kept read; the least recently used go first. */
export const MAX_READ_ASSOCIATIONS = 256;

const read = new Map<string, FullData>();

/** The data of a Full(0) record with selector `selector` (0 certificate, 1 public key), read once. */
export function readFullData(selector: number, data: Buffer): FullData {
  const id = `${selector} ${createHash('sha256').update(data).digest('base64')}`;
  const known = read.get(id);
  if (known) {
    read.delete(id);
    read.set(id, known);
    return known;
  }
  const value = parse(selector, data);
  read.set(id, value);
  for (const oldest of read.keys()) {
    if (read.size <= MAX_READ_ASSOCIATIONS) break;
    read.delete(oldest);
  }
  return value;
}

function parse(selector: number, data: Buffer): FullData {
  const what = selector === 0 ? 'a DER certificate' : 'a DER public key (SubjectPublicKeyInfo)';
  const outer = outerDerLength(data);
  if (outer !== data.length) {
    const why = outer === undefined ? 'it does not start with a DER SEQUENCE' : `its DER SEQUENCE is ${outer} bytes of ${data.length}`;
    return { kind: 'malformed', reason: `malformed: the data is not ${what} (${why}) (RFC 6698 §4.1)` };
  }
  try {
    if (selector === 0) {
      const cert = new X509Certificate(data);
      void cert.publicKey; // OpenSSL refuses a certificate whose key it cannot read
      return { kind: 'certificate', cert };
    }
    const key = createPublicKey({ key: data, format: 'der', type: 'spki' });
    return { kind: 'key', key, fingerprint: createHash('sha256').update(data).digest('hex') };
  } catch (err) {
    return { kind: 'malformed', reason: `malformed: the data is not ${what} (${(err as Error).message}) (RFC 6698 §4.1)` };
  }
}

/**
 * The length, header included, of the DER SEQUENCE `data` starts with, or
 * undefined when it does not start with one. Only the outer header is read
 * (OpenSSL does the rest): data that goes on after the SEQUENCE is refused,
 * as `d2i_X509` and `d2i_PUBKEY` callers in OpenSSL's DANE code refuse it.
 */
function outerDerLength(data: Buffer): number | undefined {
  if (data.length < 2 || data[0] !== 0x30) return undefined;
  const first = data[1] as number;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 3 || data.length < 2 + octets) return undefined;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + (data[2 + i] as number);
  return 2 + octets + length;
}
