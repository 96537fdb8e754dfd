/**
 * RT-3: a REQUIRETLS message that no MX can take for a reason retrying will
 * not heal soon is returned to its sender at once, not retried for days.
 *
 * Lasting (RFC 8689 §4.2.1, §5): the MX set is not authenticated (neither a
 * DNSSEC-validated MX RRset nor an MTA-STS policy listing the host), a
 * connection below TLS_SECURE for the host name (a certificate that does not
 * validate, no STARTTLS), no REQUIRETLS in the EHLO reply after STARTTLS.
 * Everything else (a host that cannot be reached, a timeout, a failed
 * handshake, a store that cannot be read) defers as usual.
 *
 * How: the connection guard notes each attempt of a delivery round (Haraka's
 * `try_deliver` takes one MX off its list) and how each guarded connection
 * ended. When Haraka defers with "Tried all MXs", the round is judged: every
 * attempt ended for a lasting reason (or outbound_mx found no authenticated
 * MX host and answered with none, `noteUnauthenticatedMxSet`) →
 * each recipient gets 5.7.30 (no host advertises REQUIRETLS, RFC 8689 §6) or
 * 5.7.10 (encryption or authentication missing) and Haraka bounces the message.
 * The DSN goes out with REQUIRETLS itself (./requiretls-hooks.ts `bounce`).
 */
import DSN from 'haraka-dsn';
import type { RequireTlsMissing } from '../tls/decision';
import { returnStatus } from '../tls/requiretls';

export interface LastingReason {
  missing: RequireTlsMissing;
  reason: string;
}

interface Round {
  attempts: number;
  lasting: LastingReason[];
  /** Connections that passed, or ended for a reason that may heal (defer). */
  other: number;
}

const rounds = new WeakMap<object, Round>();
/** RT-2 (a): outbound_mx's get_mx found no authenticated MX host for the message and answered with none. */
const planned = new WeakMap<object, LastingReason>();

function round(hmail: object): Round {
  let current = rounds.get(hmail);
  if (!current) {
    current = { attempts: 0, lasting: [], other: 0 };
    rounds.set(hmail, current);
  }
  return current;
}

/** A new delivery round (get_mx) starts: nothing of the last one counts. */
export function startRound(hmail: object): void {
  rounds.delete(hmail);
  planned.delete(hmail);
}

/** RT-2 (a), RT-3: outbound_mx answers a REQUIRETLS message with no MX host: none of its hosts is authenticated. */
export function noteUnauthenticatedMxSet(hmail: object, reason: string): void {
  planned.set(hmail, { missing: 'mx-set', reason });
}

/** Haraka takes the next MX off its list (try_deliver). */
export function noteAttempt(hmail: object): void {
  round(hmail).attempts += 1;
}

/** How one guarded connection of a REQUIRETLS message ended: a lasting reason, or null (passed, or may heal). */
export function noteConnection(hmail: object, lasting: LastingReason | null): void {
  const current = round(hmail);
  if (lasting) current.lasting.push(lasting);
  else current.other += 1;
}

/** RT-3: the lasting reasons when the round failed only for them, else null (defer). */
export function lastingFailure(hmail: object): LastingReason[] | null {
  const current = rounds.get(hmail) ?? { attempts: 0, lasting: [], other: 0 };
  const plannedReason = planned.get(hmail);
  if (current.attempts === 0 && current.other === 0 && current.lasting.length === 0) return plannedReason ? [plannedReason] : null;
  if (current.other > 0 || current.lasting.length === 0 || current.lasting.length !== current.attempts) return null;
  return current.lasting;
}

export interface ReturnableHMail {
  todo: { domain: string; rcpt_to: object[] };
  extend_rcpt_with_dsn(rcpt: object, dsn: unknown): void;
  bounce(err: string, opts?: unknown): void;
}

/** RT-3: returns the message now: each recipient's DSN status, then Haraka's bounce (the `bounce` hook sends the DSN). */
export function returnMessage(hmail: ReturnableHMail, reasons: readonly LastingReason[]): string {
  const { subject, detail } = returnStatus(reasons.map((r) => r.missing));
  const unique = [...new Set(reasons.map((r) => r.reason))];
  const text = `REQUIRETLS message for ${hmail.todo.domain} returned: no MX host can take it (${unique.join('; ')})`;
  for (const rcpt of hmail.todo.rcpt_to) hmail.extend_rcpt_with_dsn(rcpt, DSN.create(550, text, subject, detail));
  hmail.bounce(text);
  return text;
}
