/**
 * TLS-1, OPS-6: what Node's own server-identity check saw during the
 * handshake of one outbound connection. When the chain verified and the
 * session is new, Node calls the connection's `checkServerIdentity` with the
 * host name (Haraka's `servername`: the MX host) and the peer certificate it
 * already decoded; recording those two there spares the guard a second
 * decoding of the certificate (an X509Certificate, then OpenSSL's
 * `checkHost`) on every connection when the name plainly matches
 * (tls/san-match.ts). Anything else (no record: a reused session, a chain
 * error; an unusual name) leaves the guard to read the certificate as before.
 *
 * The guard opens a slot per connection, keyed on Haraka's MX object, which
 * Haraka hands both to `try_deliver_host_on_socket` and to outbound/tls's
 * `get_tls_options` for the STARTTLS of that connection; outbound_tls's
 * wrapper of `get_tls_options` routes the check through the slot.
 */
import tls, { type PeerCertificate } from 'node:tls';

export interface CapturedIdentity {
  /** The name Node checked the certificate for. */
  host: string;
  /** The certificate's subjectAltName in Node's text form, if it has one. */
  subjectAltName: string | undefined;
}

export interface IdentitySlot {
  captured?: CapturedIdentity;
}

type CheckServerIdentity = (host: string, cert: PeerCertificate) => Error | undefined;

const slots = new WeakMap<object, IdentitySlot>();

/** The guard: an empty slot for the connection about to be made with `mx` (replacing an earlier one). */
export function openIdentitySlot(mx: object): IdentitySlot {
  const slot: IdentitySlot = {};
  slots.set(mx, slot);
  return slot;
}

/**
 * The TLS options of the STARTTLS for `mx`, given an identity check that
 * records what it is given in the connection's slot and then answers as the
 * check it replaces (the options' own, else Node's): Haraka's force_tls and
 * everything else see the same verdicts as before. Unchanged without a slot.
 * `options` is the caller's own copy (OPS-6: changed in place, not copied again).
 */
export function capturingIdentity<T extends object>(mx: object, options: T): T & { checkServerIdentity?: CheckServerIdentity } {
  const slot = slots.get(mx);
  if (!slot) return options;
  const withCheck = options as T & { checkServerIdentity?: CheckServerIdentity };
  const own: unknown = withCheck.checkServerIdentity;
  const check = typeof own === 'function' ? (own as CheckServerIdentity) : tls.checkServerIdentity;
  withCheck.checkServerIdentity = (host: string, cert: PeerCertificate) => {
    slot.captured = { host, subjectAltName: cert?.subjectaltname };
    return check(host, cert);
  };
  return withCheck;
}
