/**
 * RT-1: the `REQUIRETLS` parameter of `MAIL FROM` as a receiving server sees
 * it (RFC 8689 §2, §4.1). Pure: the plugin hands over the parameters Haraka
 * parsed and the state of the session, and applies the verdict.
 *
 * RFC 8689 §2: the parameter takes no value, and the extension is advertised
 * (EHLO keyword `REQUIRETLS`) only on a TLS session. What a server answers to
 * a parameter it did not advertise, the RFC leaves to RFC 5321; the codes
 * below follow mox and smtp-server (nodemailer's), the two implementations at
 * hand:
 *
 * | session | reply |
 * |---|---|
 * | in clear | `530 5.7.10` (RFC 3207's "must issue STARTTLS first", "encryption needed") |
 * | TLS, REQUIRETLS not advertised (off) | `555 5.5.4` (RFC 5321 §4.1.1.11: parameter not recognized) |
 * | TLS, advertised, with a value (`REQUIRETLS=…`) | `501 5.5.4` (syntax error in parameters) |
 * | TLS, advertised, no value | accepted: the message requires TLS |
 *
 * A refusal is the point: accepting the parameter where it was not promised
 * would relay the message without it, losing the sender's request silently
 * (Haraka alone accepts any parameter and forgets it).
 */

/** The EHLO keyword and the MAIL FROM parameter (RFC 8689 §2). */
export const REQUIRETLS = 'REQUIRETLS';

/** `MAIL FROM` parameters as Haraka passes them to the `mail` hook: names upper-cased, `null` for a parameter without `=`. */
export type MailParameters = Readonly<Record<string, string | null | undefined>>;

/** What the session knows when MAIL FROM arrives. */
export interface ReceiveSession {
  /** The session is encrypted (STARTTLS done, or implicit TLS). */
  tls: boolean;
  /** This server advertised REQUIRETLS in its EHLO reply on this session. */
  advertised: boolean;
}

/** An SMTP refusal: basic code, enhanced status (class.subject.detail) and text. */
export interface Refusal {
  code: number;
  status: readonly [number, number, number];
  text: string;
}

export type ReceiveVerdict =
  /** No REQUIRETLS parameter: nothing to do. */
  | { kind: 'absent' }
  /** RT-1: accepted; the message must be delivered with REQUIRETLS, or returned. */
  | { kind: 'requested' }
  | ({ kind: 'refused' } & Refusal);

/** RT-1: whether to accept a `MAIL FROM` carrying REQUIRETLS on this session (table above). */
export function receiveVerdict(params: MailParameters, session: ReceiveSession): ReceiveVerdict {
  if (!Object.prototype.hasOwnProperty.call(params, REQUIRETLS)) return { kind: 'absent' };
  if (!session.tls) {
    return {
      kind: 'refused',
      code: 530,
      status: [5, 7, 10],
      text: 'REQUIRETLS is accepted only on a TLS session: issue STARTTLS first (RFC 8689)',
    };
  }
  if (!session.advertised) {
    return { kind: 'refused', code: 555, status: [5, 5, 4], text: 'REQUIRETLS is not offered by this server' };
  }
  const value = params[REQUIRETLS];
  if (value !== null && value !== undefined) {
    return { kind: 'refused', code: 501, status: [5, 5, 4], text: `REQUIRETLS takes no value (got REQUIRETLS=${printable(value)})` };
  }
  return { kind: 'requested' };
}

/** A client-supplied value for a reply or a log line: printable ASCII, at most 40 characters. */
function printable(value: string): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}
