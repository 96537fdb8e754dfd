/**
 * RT-1, RT-5: how a message carries the sender's TLS request from receipt to
 * delivery. outbound_tls writes it into Haraka's `transaction.notes`; Haraka
 * copies those notes into the outbound queue file's header (outbound/todo.js,
 * saved by outbound/index.js build_todo) and reads them back as
 * `hmail.todo.notes` (outbound/hmail.js read_todo), after a restart too. The
 * request applies to every recipient: Haraka splits a message per domain, and
 * every part gets the same notes.
 *
 * Read the notes from `hmail.todo.notes`, never `hmail.notes`: the latter is
 * the live transaction's object only until Haraka restarts.
 */

/** RT-1: set when MAIL FROM carried REQUIRETLS on a TLS session. */
export const REQUIRETLS_NOTE = 'outbound_security_requiretls';
/** RT-5: set when the message carried `TLS-Required: No` (without REQUIRETLS) and the header is honoured. */
export const TLS_REQUIRED_NO_NOTE = 'outbound_security_tls_required_no';

/** What the REQUIRETLS note holds (JSON: it lives in the queue file). */
export interface RequireTlsNote {
  requested: true;
  /** When MAIL FROM was accepted (ISO 8601). */
  at: string;
  /** The client had authenticated (submission). */
  authenticated: boolean;
}

/** What the TLS-Required note holds. */
export interface TlsRequiredNoNote {
  waive: true;
  /** When the header was read (ISO 8601). */
  at: string;
}

type WithNotes = { todo?: { notes?: unknown } | null } | null | undefined;

function noteOf(notes: unknown, key: string): Record<string, unknown> | undefined {
  if (!notes || typeof notes !== 'object') return undefined;
  const value = (notes as Record<string, unknown>)[key];
  return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

/** RT-1: whether a queued message (Haraka's HMailItem) was received with REQUIRETLS. */
export function requiresTls(hmail: WithNotes): boolean {
  return noteOf(hmail?.todo?.notes, REQUIRETLS_NOTE)?.requested === true;
}

/** RT-5: whether a queued message waives its recipient's TLS policy (`TLS-Required: No`). Never with REQUIRETLS. */
export function waivesRecipientPolicy(hmail: WithNotes): boolean {
  return !requiresTls(hmail) && noteOf(hmail?.todo?.notes, TLS_REQUIRED_NO_NOTE)?.waive === true;
}
