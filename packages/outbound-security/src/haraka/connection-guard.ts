/**
 * The connection guard: hooks into Haraka's outbound delivery where no plugin
 * hook exists (design §7). It wraps HMailItem.prototype.try_deliver_host_on_socket
 * (called once per connection) and puts a thin layer over each connection's
 * socket that feeds the conversation watcher (lib/guard/conversation.ts) and
 * applies its answers:
 *  - the first command other than EHLO/HELO/LHLO/STARTTLS/RSET/QUIT (MAIL FROM
 *    or AUTH) is held; the connection is classified and decided (TLS-2, TLS-4,
 *    TLS-5, TLS-8, POL-2), then the command is written or the connection abandoned
 *    (QUIT, then an `error` so Haraka tries the next MX);
 *  - a reply that would fail the whole message before that is hidden from
 *    Haraka and ends this connection only (TLS-7);
 *  - a refused STARTTLS or a failed handshake queues one more connection to
 *    the same MX without STARTTLS (TLS-3), unless it carries credentials;
 * and enriches Haraka's final "Tried all MXs" deferral with the reasons.
 *
 * RPT-1: each connection's TLS outcome is handed to `recordSession` once, at
 * the decision or when its TLS negotiation ends it. RPT-4, RPT-7: a TLS report
 * message (tlsrpt/session.ts `isReportMessage`, a mark only the plugin sets)
 * is delivered without its recipient domain's TLS policy (MTA-STS, DANE, the
 * domain's ratchet: RFC 8460 §5.3 "despite any TLS-related failures", RFC 8689
 * `TLS-Required: No`) but is guarded like any other message for everything
 * else: TLS-7, TLS-8 (credentials), the relay's ratchet and rules (POL-4) and
 * the admin's table minimum. Its connections are not counted.
 *
 * OPS-8: nothing that comes from the network can throw out of the callbacks
 * installed here (socket writes and events, the TLS error listener, the
 * decision's promise, Haraka's delivery methods): every one catches, logs and
 * ends only this connection (the next MX is tried; mail is never sent below
 * the requirement because the guard failed).
 */
import type { RatchetStore } from '../ratchet/store';
import type { Requirement, Verdict } from '../tls/decision';
import { Conversation, type ReplyAction } from '../tls/conversation';
import type { TlsObservation } from '../tls/classify';
import { decideConnection, type ConnectionEvents, type ConnectionLog } from '../delivery/connection';
import { isReportMessage, type ConnectionFacts, type ConnectionOutcome } from '../tlsrpt/session';
import { waiveForTlsRequiredNo, waiveRecipientPolicy } from '../tls/requirement';
import { requiresTls, waivesRecipientPolicy } from '../requiretls/notes';
import { lastingFailure, noteAttempt, noteConnection, returnMessage, startRound, type ReturnableHMail } from './requiretls-return';
import type { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { matchDnsSan } from '../tls/san-match';
import { openIdentitySlot, type IdentitySlot } from './identity-capture';

type Write = (data: unknown, encoding?: unknown, cb?: unknown) => boolean;

/** The parts of Haraka's outbound socket (tls_socket's pluggableStream) the guard uses. */
export interface GuardedSocket {
  write: Write;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  prependListener(event: string, listener: (...args: unknown[]) => void): unknown;
  isEncrypted?(): boolean;
  /** The local address of the connection (RPT-1 `sending-mta-ip`); set by Haraka only once TLS is up. */
  localAddress?: string;
  /** Haraka's pluggableStream: the TCP (or TLS) socket below, which knows its local address from the connect on. */
  targetsocket?: { localAddress?: string };
  cleartext?: {
    authorizationError?: string | Error | null;
    getPeerX509Certificate?(): X509Certificate | undefined;
    getProtocol?(): string | null;
  };
}

export interface GuardedMx {
  exchange?: string;
  from_dns?: string;
  port?: number;
  auth_user?: string;
  auth_pass?: string;
}

export interface GuardedHMail {
  todo: { domain: string; notes?: unknown };
  mxlist?: GuardedMx[];
  loginfo(...args: unknown[]): void;
  logwarn(...args: unknown[]): void;
  logerror(...args: unknown[]): void;
}

/** What the guard counts: the connection path's events (delivery/connection.ts) and the TLS negotiation's. */
export interface GuardEvents extends ConnectionEvents {
  tlsFailure(kind: 'starttls_refused' | 'handshake'): void;
  plainRetry(): void;
}

export interface GuardDeps {
  store(): RatchetStore;
  /** RT-3: a REQUIRETLS message was returned (the reason, for the log and the count). */
  requireTlsReturned?(hmail: GuardedHMail, reasons: string, missing: string[]): void;
  /** RT-5: a connection of a `TLS-Required: No` message went without its recipient domain's policy. */
  tlsRequiredNoUsed?(): void;
  /** OPS-6: whether INFO lines are written now (haraka/log-level.ts); absent: always built. */
  infoLogged?(): boolean;
  /** The requirement for a message's connection; null = the guard does nothing (not ours to check). */
  requirement(hmail: GuardedHMail, mx: GuardedMx): Requirement | null;
  settings(): { plainRetry: boolean; onStoreError: 'defer' | 'send' };
  events: GuardEvents;
  /** RPT-1: called once per guarded connection with what decided or ended it (TLS reporting; absent: nothing recorded). */
  recordSession?(hmail: GuardedHMail, facts: ConnectionFacts, outcome: ConnectionOutcome): void;
  /** OPS-6: whether connections are counted now (TLS reporting on); absent: they are. One that starts uncounted stays so. */
  recordsSessions?(): boolean;
}

export interface HMailPrototype {
  try_deliver_host_on_socket?: (...args: unknown[]) => unknown;
  try_deliver?: (...args: unknown[]) => unknown;
  temp_fail?: (...args: unknown[]) => unknown;
  get_mx?: (...args: unknown[]) => unknown;
}

/** Why Haraka's internals cannot be guarded, or null when they can (startup check, design §7). */
export function checkHarakaInternals(proto: HMailPrototype | undefined): string | null {
  if (!proto) return 'outbound/hmail did not load';
  if (typeof proto.try_deliver_host_on_socket !== 'function') return 'HMailItem.try_deliver_host_on_socket is missing';
  if (proto.try_deliver_host_on_socket.length !== 4) {
    return `HMailItem.try_deliver_host_on_socket takes ${proto.try_deliver_host_on_socket.length} arguments, expected 4 (mx, host, port, socket)`;
  }
  if (typeof proto.temp_fail !== 'function') return 'HMailItem.temp_fail is missing';
  return null;
}

const INSTALLED = Symbol.for('haraka-outbound-security.guard');
const plainOnlyMx = new WeakSet<object>();
const abandonReasons = new WeakMap<object, string[]>();

/** The MX host name a certificate must match, or undefined for a bare address. */
export function mxHostName(mx: GuardedMx): string | undefined {
  if (mx.from_dns && !net.isIP(mx.from_dns)) return mx.from_dns;
  if (mx.exchange && !net.isIP(mx.exchange)) return mx.exchange;
  return undefined;
}

/**
 * What the TLS stack says about the connection. OPS-6: when the handshake's
 * own identity check plainly matched the MX host name (identity-capture.ts)
 * and nothing else needs the certificate (DANE, a table rule's `match=`),
 * the certificate is not decoded a second time.
 */
function observe(socket: GuardedSocket, identity: IdentitySlot, mxHost: string | undefined, requirement: Requirement): TlsObservation {
  const encrypted = typeof socket.isEncrypted === 'function' && socket.isEncrypted() === true;
  const tls = socket.cleartext;
  if (!encrypted || !tls) return { encrypted: false };
  const observed: TlsObservation = {
    encrypted: true,
    authorizationError: tls.authorizationError ?? null,
    protocol: tls.getProtocol?.() ?? null,
    datesVerified: true,
  };
  const captured = identity.captured;
  if (mxHost !== undefined && captured?.host === mxHost && matchDnsSan(captured.subjectAltName, mxHost) === 'match') {
    observed.nameMatchedFor = mxHost;
    if (!requirement.dane && !requirement.minimum?.match) return observed;
  }
  if (tls.getPeerX509Certificate) observed.peerCertificate = tls.getPeerX509Certificate();
  return observed;
}

export function installConnectionGuard(proto: HMailPrototype, deps: GuardDeps): boolean {
  const marked = proto as HMailPrototype & { [INSTALLED]?: boolean };
  if (marked[INSTALLED]) return false;
  marked[INSTALLED] = true;
  const original = proto.try_deliver_host_on_socket as (this: GuardedHMail, ...a: unknown[]) => unknown;
  proto.try_deliver_host_on_socket = function (this: GuardedHMail, mx: unknown, host: unknown, port: unknown, socket: unknown) {
    const result = original.call(this, mx, host, port, socket);
    try {
      guardConnection(this, mx as GuardedMx, String(host), socket as GuardedSocket, deps);
    } catch (err) {
      // OPS-8: a guard that could not be set up never lets the connection go on unguarded.
      failUnguarded(this, String(host), socket as GuardedSocket, err);
    }
    return result;
  };
  if (typeof proto.get_mx === 'function') {
    const originalGetMx = proto.get_mx;
    proto.get_mx = function (this: object, ...args: unknown[]) {
      abandonReasons.delete(this); // a new attempt starts
      startRound(this); // RT-3
      return originalGetMx.apply(this, args);
    };
  }
  if (typeof proto.try_deliver === 'function') {
    // RT-3: each call with an MX left takes one off the list: one attempt of the round.
    const originalTryDeliver = proto.try_deliver;
    proto.try_deliver = function (this: GuardedHMail, ...args: unknown[]) {
      try {
        if (requiresTls(this) && (this.mxlist?.length ?? 0) > 0) noteAttempt(this);
      } catch {
        // OPS-8: an attempt not counted can only defer the message (never a return)
      }
      return originalTryDeliver.apply(this, args);
    };
  }
  const originalTempFail = proto.temp_fail as (this: object, ...a: unknown[]) => unknown;
  proto.temp_fail = function (this: object, err: unknown, ...rest: unknown[]) {
    const reasons = abandonReasons.get(this);
    abandonReasons.delete(this);
    let text = err;
    try {
      if (/^Tried all MXs/.test(String(err)) && returnedForRequireTls(this as GuardedHMail & ReturnableHMail, deps)) return undefined;
    } catch (caught) {
      // OPS-8: a return that failed defers the message instead
      (this as GuardedHMail).logerror(`outbound_tls: REQUIRETLS return failed, deferring: ${errorLine(caught)}`);
    }
    try {
      if (reasons && /^Tried all MXs/.test(String(err))) text = `Tried all MXs; refused: ${reasons.join('; ')}`;
    } catch {
      text = err; // OPS-8: the reasons are a courtesy; the deferral itself must happen
    }
    return originalTempFail.call(this, text, ...rest);
  };
  return true;
}

/** RT-3: a REQUIRETLS message whose round failed only for lasting reasons is returned now; true when it was. */
function returnedForRequireTls(hmail: GuardedHMail & ReturnableHMail, deps: GuardDeps): boolean {
  if (!requiresTls(hmail)) return false;
  const lasting = lastingFailure(hmail);
  if (!lasting) return false;
  const text = returnMessage(hmail, lasting);
  hmail.logwarn(`outbound_tls: ${text} (RT-3)`);
  deps.requireTlsReturned?.(hmail, text, [...new Set(lasting.map((l) => l.missing))]);
  return true;
}

/** An exception as one log line (its stack when it has one). */
function errorLine(err: unknown): string {
  return String((err as Error | undefined)?.stack ?? err);
}

/** OPS-8: the guard could not be set up on this connection: it ends (the next MX is tried), nothing is sent. */
function failUnguarded(hmail: GuardedHMail, host: string, socket: GuardedSocket, err: unknown): void {
  const reason = `outbound_tls could not guard the connection to ${host} (internal error)`;
  try {
    hmail.logerror(`outbound_tls: ${host}: cannot guard the connection, ending it: ${errorLine(err)}`);
    const reasons = abandonReasons.get(hmail) ?? [];
    reasons.push(reason);
    abandonReasons.set(hmail, reasons);
    socket.write = () => false; // not one more byte of this message on this connection
    socket.emit('error', new Error(reason));
  } catch {
    // the socket is already gone: nothing was sent on it
  }
}

/** The text of a command Haraka writes (one SMTP line). */
function commandText(data: unknown): string {
  return typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('latin1', 0, 64) : '';
}

/**
 * What the watcher needs of a chunk the server sent: only what follows its last
 * line end counts (the bytes Haraka's line buffer keeps). OPS-6: a Buffer is
 * not decoded whole for that; `\n` + the tail stands for it.
 */
function chunkEnd(chunk: unknown): string {
  if (!Buffer.isBuffer(chunk)) return String(chunk);
  const end = chunk.lastIndexOf(0x0a);
  return end < 0 ? chunk.toString() : `\n${chunk.toString('utf8', end + 1)}`;
}

/** A copy of `mx` that the TLS-3 retry connects to without STARTTLS. */
function plainRetryOf(mx: GuardedMx): GuardedMx {
  const retry = Object.assign(Object.create(Object.getPrototypeOf(mx) as object) as object, mx) as GuardedMx;
  plainOnlyMx.add(retry);
  return retry;
}

/**
 * The thin layer over Haraka's socket: every command written and every reply
 * line, byte chunk, `secure` and TLS error goes through the conversation
 * watcher (lib/guard/conversation.ts), whose answers are applied here. Runs
 * after Haraka set up its own listeners, so ours see everything first.
 */
function guardConnection(hmail: GuardedHMail, mx: GuardedMx, host: string, socket: GuardedSocket, deps: GuardDeps): void {
  const report = isReportMessage(hmail);
  const requireTls = requiresTls(hmail);
  // RT-5: never with REQUIRETLS (waivesRecipientPolicy says no then); never for a report (it waives more).
  const tlsRequiredNo = !report && waivesRecipientPolicy(hmail);
  const planned = deps.requirement(hmail, mx);
  // RPT-7: a report waives its recipient domain's policy, nothing else.
  const requirement =
    planned && report ? waiveRecipientPolicy(planned) : planned && tlsRequiredNo ? waiveForTlsRequiredNo(planned) : planned;
  if (!requirement) {
    // RT-2: a REQUIRETLS message never goes over a connection nobody checks (the requirement always exists for one).
    if (requireTls) failUnguarded(hmail, host, socket, new Error('no requirement for a REQUIRETLS message'));
    return;
  }
  if (tlsRequiredNo) {
    deps.tlsRequiredNoUsed?.();
    // Weakening is always visible (as POL-2's exemptions): WARN, and counted.
    hmail.logwarn(
      `outbound_tls: TLS-Required: No: ${requirement.domain}'s MTA-STS, DANE and ratchet enforcement waived for this message ` +
        `(RT-5, RFC 8689 §4.1); TLS still attempted, levels still raised; table rules and credentials still guarded`,
    );
  }
  if (report) {
    hmail.loginfo(
      `outbound_tls: TLS report message: ${requirement.domain}'s MTA-STS, DANE and ratchet waived (RPT-4, RFC 8460 §5.3); ` +
        `connection rules and credentials still guarded (RPT-7); not counted`,
    );
  }
  const mxHost = mxHostName(mx);
  const identity = openIdentitySlot(mx);
  const where = `${mxHost ?? host} [${host}]`;
  // RPT-4: a report's own connections are not counted; nor any while TLS reporting is off.
  let recorded = report || !deps.recordSession || deps.recordsSessions?.() === false;
  // RPT-10: the local address, known to the socket below from the connect on (Haraka copies it up only after STARTTLS).
  // OPS-6: asked of the kernel only when the connection is counted.
  const sendingIp = recorded ? undefined : (socket.localAddress ?? socket.targetsocket?.localAddress);
  /** RPT-1: this connection's outcome, once. OPS-8: counting never ends a connection or the process. */
  const record = (outcome: ConnectionOutcome): void => {
    if (recorded || !deps.recordSession) return;
    recorded = true;
    try {
      const facts: ConnectionFacts = { requirement, mxHost, receivingIp: host };
      if (sendingIp) facts.sendingIp = sendingIp;
      deps.recordSession(hmail, facts, outcome);
    } catch (err) {
      hmail.logerror(`outbound_tls: ${where}: TLS report counting failed, session not counted: ${errorLine(err)}`);
    }
  };
  const settings = deps.settings();
  const conversation = new Conversation({
    plainOnly: plainOnlyMx.has(mx),
    // DANE-3: a host with TLSA records is never tried without TLS.
    // RT-2: a REQUIRETLS message is never retried without TLS.
    plainRetry: settings.plainRetry && !(requirement.dane && requirement.dane.mode === 'on') && !requirement.requireTls,
    credentials: hasCredentials(mx),
  });
  const held: Array<[unknown, unknown, unknown]> = [];
  const originalWrite = socket.write;
  const originalEmit = socket.emit;
  const write = socket.write.bind(socket) as Write;
  const emit = socket.emit.bind(socket);
  /**
   * OPS-6: once the connection passed, the rest of it (the message body above all) goes through
   * Haraka's socket untouched. Assigned, not deleted: deleting properties would turn the socket
   * into a slow dictionary-mode object for the rest of the connection.
   */
  const unwrap = (): void => {
    socket.write = originalWrite;
    socket.emit = originalEmit;
  };

  let ended = false;

  /** Ends this connection only: QUIT, then an `error` without source=tls, so Haraka tries the next MX. */
  const abandon = (reason: string, options: { noted?: boolean } = {}): void => {
    conversation.abandonNow();
    if (ended) return;
    ended = true;
    if (!options.noted) {
      const reasons = abandonReasons.get(hmail) ?? [];
      reasons.push(reason);
      abandonReasons.set(hmail, reasons);
    }
    try {
      write('QUIT\r\n'); // a courtesy; the socket may already be gone
    } catch {
      // nothing to say goodbye to
    }
    emit('error', new Error(`outbound_tls abandoned the connection: ${reason}`));
  };

  /**
   * Why this connection ends (named again in the final deferral), with the TLS-3 retry when the
   * watcher allows it: shared by the failures seen in the conversation and the TLS errors Haraka handles.
   */
  const noteEnd = (reason: string, action: Extract<ReplyAction, { kind: 'abandon' }>, tlsReason = action.reason): void => {
    if (action.tlsFailure) {
      deps.events.tlsFailure(action.tlsFailure);
      record({ kind: 'tls-ended', reason: tlsReason });
    }
    if (action.retryPlain && hmail.mxlist) {
      hmail.mxlist.unshift(plainRetryOf(mx));
      deps.events.plainRetry();
      hmail.logwarn(`outbound_tls: ${reason}; retrying this MX once without STARTTLS (TLS-3)`);
    } else {
      deps.events.abandoned(action.tlsFailure ? 'tls' : 'protocol');
      const why = action.tlsFailure && hasCredentials(mx) ? ', no plain retry: the connection carries credentials (TLS-8)' : '';
      hmail.logwarn(`outbound_tls: ${reason}; connection abandoned${why}, the next MX is tried (TLS-7)`);
    }
    const reasons = abandonReasons.get(hmail) ?? [];
    reasons.push(reason);
    abandonReasons.set(hmail, reasons);
  };

  /** Applies the watcher's answer about something the server did; true when Haraka may see it. */
  const apply = (action: ReplyAction): boolean => {
    if (action.kind === 'pass' || action.kind === 'rewrite') return true;
    if (action.kind === 'drop') return false;
    const reason = `${requirement.domain}: ${where} ${action.reason}`;
    noteEnd(reason, action);
    abandon(reason, { noted: true });
    return false;
  };

  /** OPS-8: an exception of ours in a socket callback ends this connection, never the process. */
  const internalError = (what: string, err: unknown): void => {
    hmail.logerror(`outbound_tls: ${where}: ${what} failed: ${errorLine(err)}`);
    try {
      abandon(`${requirement.domain}: internal error checking ${where}`);
    } catch {
      ended = true; // the socket is gone: nothing more can be written on it
    }
  };

  /** After the decision: the held command goes out, or the connection ends. */
  const decided = (verdict: Verdict): void => {
    if (requireTls) {
      const lasting = verdict.kind === 'abandon' && verdict.requireTls ? { missing: verdict.requireTls, reason: verdict.reason } : null;
      noteConnection(hmail, lasting);
    }
    if (conversation.abandoned) return;
    if (verdict.kind === 'abandon') return abandon(verdict.reason);
    conversation.decide(true);
    // RT-2: MAIL FROM carries REQUIRETLS where the server advertised it (a requiretls=relax relay did not: RFC 5321 §2.2.2).
    if (requirement.requireTls && conversation.requireTlsAdvertised) return releaseWithRequireTls();
    unwrap();
    for (const [d, e, c] of held.splice(0)) write(d, e, c);
  };

  /**
   * RT-2: MAIL FROM carries REQUIRETLS (Haraka writes `MAIL FROM:<rp>[ SMTPUTF8]` in one write);
   * AUTH, when held first, goes out as it is and the MAIL FROM after it is rewritten. The socket is
   * Haraka's own again once MAIL FROM went out.
   */
  const releaseWithRequireTls = (): void => {
    let mailFromSent = false;
    const rewrite = (data: unknown): unknown => {
      if (mailFromSent || typeof data !== 'string' || !/^MAIL FROM:/i.test(data)) return data;
      mailFromSent = true;
      return data.replace(/\r?\n$/, '') + ' REQUIRETLS\r\n';
    };
    socket.emit = originalEmit;
    socket.write = (data: unknown, encoding?: unknown, cb?: unknown): boolean => {
      const out = rewrite(data);
      if (mailFromSent) socket.write = originalWrite;
      return write(out, encoding, cb);
    };
    for (const [d, e, c] of held.splice(0)) socket.write(d, e, c);
  };

  socket.write = (data: unknown, encoding?: unknown, cb?: unknown): boolean => {
    let action: ReturnType<Conversation['command']>;
    try {
      action = conversation.command(commandText(data));
    } catch (err) {
      internalError('reading a command', err);
      return false;
    }
    if (action.kind === 'write') return write(data, encoding, cb);
    if (action.kind === 'drop') return false;
    held.push([data, encoding, cb]);
    if (action.decide) {
      const log: ConnectionLog = {
        info: (line) => hmail.loginfo(line),
        warn: (line) => hmail.logwarn(line),
        error: (line) => hmail.logerror(line),
        ...(deps.infoLogged ? { infoLogged: deps.infoLogged } : {}),
      };
      let decision: Promise<{ verdict: Verdict }>;
      try {
        decision = decideConnection(
          {
            requirement,
            observed: observe(socket, identity, mxHost, requirement),
            mxHost,
            where,
            requireTlsAdvertised: conversation.requireTlsAdvertised,
          },
          { ratchet: deps.store(), onStoreError: deps.settings().onStoreError, report: { log, events: deps.events, record } },
        );
      } catch (err) {
        decision = Promise.reject(err as Error);
      }
      // Decided after this write returns (Haraka sees the command as written), never inside it.
      decision.then(({ verdict }) => decided(verdict)).catch((err: unknown) => internalError('the decision', err));
    }
    return true;
  };

  /** What the watcher says of an event: Haraka sees `args` (or nothing, when null). */
  const watch = (event: string | symbol, args: unknown[]): unknown[] | null => {
    switch (event) {
      case 'line': {
        const action = conversation.reply(String(args[0]));
        if (!apply(action)) return null;
        return action.kind === 'rewrite' ? [action.line] : args;
      }
      case 'secure':
        return apply(conversation.secured()) ? args : null;
      default:
        return args;
    }
  };

  socket.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'data') {
      if (conversation.abandoned) return true;
      try {
        conversation.data(chunkEnd(args[0]));
      } catch (err) {
        internalError('reading a reply', err);
        return true;
      }
      const result = emit(event, ...args);
      try {
        apply(conversation.afterData());
      } catch (err) {
        internalError('reading a reply', err);
      }
      return result;
    }
    let passed: unknown[] | null;
    try {
      passed = watch(event, args);
    } catch (err) {
      internalError(`handling "${String(event)}"`, err);
      return true;
    }
    return passed === null ? true : emit(event, ...passed);
  };

  socket.prependListener('error', (err: unknown) => {
    try {
      if (ended || !err || typeof err !== 'object' || (err as { source?: string }).source !== 'tls') return;
      const action = conversation.tlsError();
      if (action.kind !== 'abandon') return;
      // Haraka ends the connection itself and moves on; only the reason and the retry are ours to add.
      ended = true;
      conversation.abandonNow();
      const reason = `TLS handshake failed (${String((err as Error).message)})`;
      noteEnd(`${requirement.domain}: ${where} ${reason}`, action, reason);
    } catch (caught) {
      // Haraka handles the error itself (the next MX); only our note of it is lost.
      hmail.logerror(`outbound_tls: ${where}: handling a TLS error failed: ${errorLine(caught)}`);
    }
  });
}

/** TLS-8: Haraka sends AUTH on this connection when the route carries credentials. */
export function hasCredentials(mx: GuardedMx): boolean {
  return Boolean(mx.auth_user && mx.auth_pass);
}
