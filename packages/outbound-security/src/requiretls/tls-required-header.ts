/**
 * RT-5: the `TLS-Required` header field (RFC 8689 §3, §4.1). A message
 * carrying `TLS-Required: No` asks to be delivered even where the recipient's
 * TLS policy (MTA-STS, DANE) cannot be met; with REQUIRETLS on its MAIL FROM
 * the header is ignored (§4.1). Pure: the plugin passes the header values.
 *
 * `No` is the only value the RFC defines; field value comparison ignores
 * case and surrounding white space (RFC 5234 quoted strings are
 * case-insensitive, RFC 5322 folding). Any other value, or a message with
 * several fields that disagree, is not a waiver: a sender whose request we
 * cannot read gets no less protection than one who made none.
 */

/** The header field name (RFC 8689 §3). */
export const TLS_REQUIRED_HEADER = 'TLS-Required';

/** How outbound_tls.ini `[requiretls] tls_required_header` treats the header. */
export type TlsRequiredHeaderSetting = 'honour' | 'ignore';

export type TlsRequiredVerdict =
  /** RT-5: the message is marked: deliver without the recipient-derived requirements. */
  | { kind: 'waive' }
  /** No header, or one that does not waive anything. `why` is for the log; null when there was no header. */
  | { kind: 'keep'; why: string | null };

/**
 * RT-5: what `TLS-Required` fields (their values, in order) mean for a
 * message, given whether it was received with REQUIRETLS and the admin's
 * `tls_required_header` setting.
 */
export function tlsRequiredVerdict(
  values: readonly string[],
  context: { requireTls: boolean; setting: TlsRequiredHeaderSetting },
): TlsRequiredVerdict {
  if (values.length === 0) return { kind: 'keep', why: null };
  if (context.requireTls) return { kind: 'keep', why: 'ignored: the message was received with REQUIRETLS (RFC 8689 §4.1)' };
  if (context.setting === 'ignore') return { kind: 'keep', why: 'ignored: tls_required_header=ignore' };
  const other = values.map(unfold).find((v) => v.toLowerCase() !== 'no');
  if (other !== undefined) return { kind: 'keep', why: `not a waiver: value ${JSON.stringify(other.slice(0, 40))} (only "No" is defined)` };
  return { kind: 'waive' };
}

/** A header value without folding and surrounding white space. */
function unfold(value: string): string {
  return value.replace(/\r?\n[ \t]+/g, ' ').trim();
}
