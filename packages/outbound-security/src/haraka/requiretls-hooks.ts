/**
 * RFC 8689 on receipt (RT-1, RT-5): outbound_tls's inbound hooks (its entry
 * file re-exports them under these names; `registerOutboundTls` registers them).
 *
 * - `capabilities`: REQUIRETLS is advertised after STARTTLS (Haraka's
 *   `connection.tls.enabled`), when `[requiretls] enabled=true`.
 * - `mail`: MAIL FROM with REQUIRETLS is accepted only where it was
 *   advertised, refused otherwise (requiretls/mail-parameter.ts says with which
 *   code), and recorded in `transaction.notes`: Haraka writes those notes into
 *   the queue file, so the request survives a restart and applies to every
 *   recipient (requiretls/notes.ts). Authenticated clients (submission) ask
 *   the same way.
 * - `data_post`: `TLS-Required: No` (without REQUIRETLS) is recorded the same
 *   way, unless `tls_required_header=ignore`.
 *
 * This release records the request; delivery honours it from RT-2 on.
 */
import type { OutboundTlsConfig } from '../config/outbound-tls';
import { CONT, DENY, OK, type HarakaPlugin, type Next } from './api';
import { harakaReply } from './smtp-reply';
import { metrics } from '../metrics';
import { requiresTls } from '../requiretls/notes';
import { REQUIRETLS, receiveVerdict, type MailParameters } from '../requiretls/mail-parameter';
import { REQUIRETLS_NOTE, TLS_REQUIRED_NO_NOTE, type RequireTlsNote, type TlsRequiredNoNote } from '../requiretls/notes';
import { TLS_REQUIRED_HEADER, tlsRequiredVerdict } from '../requiretls/tls-required-header';

export interface RequireTlsPlugin extends HarakaPlugin {
  tlsConfig: OutboundTlsConfig;
}

/** The part of Haraka's inbound Connection these hooks read and write. */
interface InboundConnection {
  tls: { enabled: boolean };
  capabilities: string[] | null;
  notes: { auth_user?: unknown };
  transaction?: {
    notes: Record<string, unknown>;
    header: { get_all(name: string): string[] };
  } | null;
}

/** Connections whose current EHLO reply offered REQUIRETLS (a reload between EHLO and MAIL changes nothing for them). */
const advertisedOn = new WeakSet<object>();

export function registerRequireTls(plugin: RequireTlsPlugin): void {
  plugin.register_hook('capabilities', 'requiretls_advertise');
  // Early, so the refusal comes before other plugins act on a MAIL FROM that will not stand.
  plugin.register_hook('mail', 'requiretls_mail', -50);
  plugin.register_hook('data_post', 'requiretls_data_post');
  // RT-3: the DSN of a REQUIRETLS message goes out with REQUIRETLS (whatever [requiretls] says now: the message asked).
  plugin.register_hook('bounce', 'requiretls_bounce');
  if (plugin.tlsConfig.requiretls.enabled) {
    plugin.lognotice(
      'outbound_tls: REQUIRETLS is advertised after STARTTLS; a message that asks for it goes only to authenticated MX hosts ' +
        'over TLS_SECURE connections that advertise it, or is returned (RT-1 … RT-3)',
    );
  }
}

/** RT-1: REQUIRETLS in the EHLO reply on a TLS session only. */
export function requiretls_advertise(this: RequireTlsPlugin, next: Next, connection: InboundConnection): void {
  advertisedOn.delete(connection);
  if (this.tlsConfig.requiretls.enabled && connection.tls.enabled && connection.capabilities) {
    connection.capabilities.push(REQUIRETLS);
    advertisedOn.add(connection);
  }
  next(CONT);
}

/** RT-1: accept or refuse MAIL FROM … REQUIRETLS, and record the request with the message. */
export function requiretls_mail(
  this: RequireTlsPlugin,
  next: Next,
  connection: InboundConnection,
  [, params]: [unknown, MailParameters | undefined],
): void {
  const verdict = receiveVerdict(params ?? {}, { tls: connection.tls.enabled, advertised: advertisedOn.has(connection) });
  if (verdict.kind === 'absent') return next(CONT);
  if (verdict.kind === 'refused') {
    this.lognotice(
      `outbound_tls: MAIL FROM with REQUIRETLS refused: ${verdict.code} ${verdict.status.join('.')} ${verdict.text}`,
      connection,
    );
    return next(DENY, harakaReply(verdict));
  }
  const authenticated = typeof connection.notes.auth_user === 'string' && connection.notes.auth_user !== '';
  const note: RequireTlsNote = { requested: true, at: new Date().toISOString(), authenticated };
  if (connection.transaction) connection.transaction.notes[REQUIRETLS_NOTE] = note;
  metrics.requireTlsReceived.inc();
  this.loginfo(
    `outbound_tls: REQUIRETLS requested${authenticated ? ' (authenticated submission)' : ''}: recorded with the message (RT-1)`,
    connection,
  );
  next(CONT);
}

/** RT-5: mark a message carrying `TLS-Required: No` (not with REQUIRETLS; not with tls_required_header=ignore). */
export function requiretls_data_post(this: RequireTlsPlugin, next: Next, connection: InboundConnection): void {
  const transaction = connection.transaction;
  if (!transaction) return next(CONT);
  const verdict = tlsRequiredVerdict(transaction.header.get_all(TLS_REQUIRED_HEADER), {
    requireTls: transaction.notes[REQUIRETLS_NOTE] !== undefined,
    setting: this.tlsConfig.requiretls.tlsRequiredHeader,
  });
  if (verdict.kind === 'waive') {
    const note: TlsRequiredNoNote = { waive: true, at: new Date().toISOString() };
    transaction.notes[TLS_REQUIRED_NO_NOTE] = note;
    metrics.tlsRequiredNo.inc({ event: 'received' });
    this.loginfo(`outbound_tls: ${TLS_REQUIRED_HEADER}: No: recorded with the message (RT-5)`, connection);
  } else if (verdict.why) {
    this.loginfo(`outbound_tls: ${TLS_REQUIRED_HEADER} header ${verdict.why}`, connection);
  }
  next(CONT);
}

/** The parts of Haraka's HMailItem and outbound the RT-3 bounce uses (outbound/hmail.js bounce_respond does the same). */
interface BouncingHMail {
  todo: { mail_from: { user?: string | null; host?: string | null }; notes?: unknown };
  populate_bounce_message(from: unknown, to: unknown, reason: unknown, cb: (err: unknown, lines?: string[]) => void): void;
  logerror(...args: unknown[]): void;
  loginfo(...args: unknown[]): void;
}

interface HarakaOutbound {
  send_email(
    from: unknown,
    to: unknown,
    contents: string,
    next: (code: number) => void,
    options?: { notes?: object; origin?: object },
  ): void;
}

/**
 * RT-3 (RFC 8689 §5): the DSN of a REQUIRETLS message is sent with REQUIRETLS
 * and carries the original's headers only (Haraka's bounce message already
 * does: populate_bounce_message reads the header). Built as Haraka builds it,
 * queued with the REQUIRETLS note so the guard holds the DSN to RT-2, then
 * OK: Haraka discards the original without sending its own bounce. A message
 * without a sender (`<>`) goes to Haraka's double-bounce handling.
 */
export function requiretls_bounce(this: RequireTlsPlugin, next: Next, hmail: BouncingHMail): void {
  if (!requiresTls(hmail) || !hmail.todo.mail_from.user) return next(CONT);
  let answered = false;
  /** Once: OK when our DSN is queued; else Haraka's own bounce (without REQUIRETLS), said loudly and counted. */
  const answer = (queued: boolean, why = ''): void => {
    if (answered) return;
    answered = true;
    metrics.requireTlsDsn.inc({ result: queued ? 'queued' : 'fallback' });
    if (queued) {
      hmail.loginfo('outbound_tls: REQUIRETLS DSN queued with REQUIRETLS, headers only (RT-3)');
      return next(OK);
    }
    hmail.logerror(
      `outbound_tls: the REQUIRETLS DSN could not be queued (${why}); Haraka's own bounce is sent instead, ` +
        'without REQUIRETLS (headers only)',
    );
    next(CONT);
  };
  // OPS-8: the callbacks run from Haraka's queue-file stream and outbound: nothing may throw out of them.
  const guarded =
    <A extends unknown[]>(body: (...args: A) => void) =>
    (...args: A): void => {
      try {
        body(...args);
      } catch (err) {
        answer(false, `internal error: ${(err as Error)?.message ?? String(err)}`);
      }
    };
  guarded(() => {
    const outbound = this.haraka_require('outbound') as HarakaOutbound;
    // Haraka's send_email parses address strings itself; the sender's envelope form is its own format().
    const from = '<>';
    const to = String(hmail.todo.mail_from);
    const reason = (hmail as { bounce_error?: unknown }).bounce_error ?? 'REQUIRETLS message returned';
    hmail.populate_bounce_message(
      from,
      to,
      reason,
      guarded((err: unknown, lines?: string[]) => {
        if (err || !lines) return answer(false, `cannot build it: ${String(err)}`);
        const note: RequireTlsNote = { requested: true, at: new Date().toISOString(), authenticated: false };
        outbound.send_email(
          from,
          to,
          lines.join(''),
          guarded((code: number) => answer(code === OK, `queueing answered ${code}`)),
          { notes: { [REQUIRETLS_NOTE]: note } },
        );
      }),
    );
  })();
}
