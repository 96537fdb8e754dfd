/**
 * An SMTP refusal as Haraka sends it: `next(DENY, reply)` in a hook answers
 * with the reply's own basic code and enhanced status when the reply is a
 * haraka-dsn object (connection.js `respond` checks for it); a plain string
 * would go out as 550.
 */
import DSN from 'haraka-dsn';
import type { Refusal } from '../requiretls/mail-parameter';

export function harakaReply(refusal: Refusal): unknown {
  const [, subject, detail] = refusal.status;
  return DSN.create(refusal.code, refusal.text, subject, detail);
}
