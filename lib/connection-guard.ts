/**
 * The connection guard: hooks into Haraka's outbound delivery where no plugin
 * hook exists (design §7). It wraps HMailItem.prototype.try_deliver_host_on_socket
 * (called once per connection) and, on each connection's socket:
 *  - holds the first command other than EHLO/HELO/LHLO/STARTTLS/RSET/QUIT
 *    (MAIL FROM or AUTH), classifies the connection, decides, and then writes
 *    it or abandons the connection (QUIT, then an `error` so Haraka tries the
 *    next MX) — TLS-2;
 *  - on a refused STARTTLS or a failed handshake, queues one more connection to
 *    the same MX without STARTTLS — TLS-3;
 * and enriches Haraka's final "Tried all MXs" deferral with the reasons.
 */
import type { RatchetStore } from './ratchet-store';
import { decide, type Requirement, type StoreProblem, type Verdict } from './delivery-decision';
import { SecLevel, levelName } from './sec-level';
import { classifyConnection, type TlsObservation } from './tls-classify';
import type { X509Certificate } from 'node:crypto';
import net from 'node:net';

/** Commands that may pass before the decision: they carry nothing of the message or credentials. */
const HANDSHAKE_COMMANDS = new Set(['EHLO', 'HELO', 'LHLO', 'STARTTLS', 'RSET', 'QUIT']);

type Write = (data: unknown, encoding?: unknown, cb?: unknown) => boolean;

/** The parts of Haraka's outbound socket (tls_socket's pluggableStream) the guard uses. */
export interface GuardedSocket {
  write: Write;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  prependListener(event: string, listener: (...args: unknown[]) => void): unknown;
  isEncrypted?(): boolean;
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
}

export interface GuardedHMail {
  todo: { domain: string };
  mxlist?: GuardedMx[];
  loginfo(...args: unknown[]): void;
  logwarn(...args: unknown[]): void;
  logerror(...args: unknown[]): void;
}

export interface GuardEvents {
  connection(level: SecLevel): void;
  tlsFailure(kind: 'starttls_refused' | 'handshake'): void;
  plainRetry(): void;
  ratchet(result: 'pass' | 'raise' | 'fail' | 'store_error'): void;
  abandoned(cause: string): void;
  sts(mode: string, result: 'pass' | 'fail' | 'would_fail'): void;
}

export interface GuardDeps {
  store(): RatchetStore;
  /** The requirement for a message's connection; null = the guard does nothing (not ours to check). */
  requirement(hmail: GuardedHMail): Requirement | null;
  settings(): { plainRetry: boolean; onStoreError: 'defer' | 'send' };
  events: GuardEvents;
}

export interface HMailPrototype {
  try_deliver_host_on_socket?: (...args: unknown[]) => unknown;
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

function observe(socket: GuardedSocket): TlsObservation {
  const encrypted = typeof socket.isEncrypted === 'function' && socket.isEncrypted() === true;
  const tls = socket.cleartext;
  if (!encrypted || !tls) return { encrypted: false };
  return {
    encrypted: true,
    authorizationError: tls.authorizationError ?? null,
    ...(tls.getPeerX509Certificate ? { peerCertificate: tls.getPeerX509Certificate() } : {}),
    protocol: tls.getProtocol?.() ?? null,
  };
}

function commandOf(data: unknown): string {
  const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('latin1', 0, 16) : '';
  return (/^\s*([A-Za-z]+)/.exec(text)?.[1] ?? '').toUpperCase();
}

export function installConnectionGuard(proto: HMailPrototype, deps: GuardDeps): boolean {
  const marked = proto as HMailPrototype & { [INSTALLED]?: boolean };
  if (marked[INSTALLED]) return false;
  marked[INSTALLED] = true;
  const original = proto.try_deliver_host_on_socket as (this: GuardedHMail, ...a: unknown[]) => unknown;
  proto.try_deliver_host_on_socket = function (this: GuardedHMail, mx: unknown, host: unknown, port: unknown, socket: unknown) {
    const result = original.call(this, mx, host, port, socket);
    guardConnection(this, mx as GuardedMx, String(host), socket as GuardedSocket, deps);
    return result;
  };
  if (typeof proto.get_mx === 'function') {
    const originalGetMx = proto.get_mx;
    proto.get_mx = function (this: object, ...args: unknown[]) {
      abandonReasons.delete(this); // a new attempt starts
      return originalGetMx.apply(this, args);
    };
  }
  const originalTempFail = proto.temp_fail as (this: object, ...a: unknown[]) => unknown;
  proto.temp_fail = function (this: object, err: unknown, ...rest: unknown[]) {
    const reasons = abandonReasons.get(this);
    abandonReasons.delete(this);
    const text = reasons && /^Tried all MXs/.test(String(err)) ? `Tried all MXs; refused: ${reasons.join('; ')}` : err;
    return originalTempFail.call(this, text, ...rest);
  };
  return true;
}

/** Runs after Haraka set up its own listeners on the socket, so ours see everything first. */
function guardConnection(hmail: GuardedHMail, mx: GuardedMx, host: string, socket: GuardedSocket, deps: GuardDeps): void {
  const requirement = deps.requirement(hmail);
  if (!requirement) return;
  const mxHost = mxHostName(mx);
  const where = `${mxHost ?? host} [${host}]`;
  const plainOnly = plainOnlyMx.has(mx);
  const settings = deps.settings();
  let decided = false;
  let abandoned = false;
  let awaitingStarttlsReply = false;
  /** Between the 220 to STARTTLS and the end of the handshake the server must stay silent (RFC 3207 §4.2). */
  let handshakePending = false;
  let retryQueued = plainOnly;
  const held: Array<[unknown, unknown, unknown]> = [];
  const write = socket.write.bind(socket) as Write;
  const emit = socket.emit.bind(socket);

  const queuePlainRetry = (kind: 'starttls_refused' | 'handshake', why: string): void => {
    deps.events.tlsFailure(kind);
    if (retryQueued || !settings.plainRetry || !hmail.mxlist) return;
    retryQueued = true;
    const retry = Object.assign(Object.create(Object.getPrototypeOf(mx) as object) as object, mx);
    plainOnlyMx.add(retry);
    hmail.mxlist.unshift(retry as GuardedMx);
    deps.events.plainRetry();
    hmail.logwarn(`outbound_tls: ${where}: ${why}; retrying this MX once without STARTTLS (TLS-3)`);
  };

  const abandon = (reason: string): void => {
    if (abandoned) return;
    abandoned = true;
    const reasons = abandonReasons.get(hmail) ?? [];
    reasons.push(reason);
    abandonReasons.set(hmail, reasons);
    try {
      write('QUIT\r\n'); // a courtesy; the socket may already be gone
    } catch {
      // nothing to say goodbye to
    }
    emit('error', new Error(`outbound_tls abandoned the connection: ${reason}`));
  };

  socket.write = (data: unknown, encoding?: unknown, cb?: unknown): boolean => {
    if (abandoned) return false;
    if (decided) return write(data, encoding, cb);
    const command = commandOf(data);
    if (HANDSHAKE_COMMANDS.has(command) && held.length === 0) {
      if (command === 'STARTTLS') awaitingStarttlsReply = true;
      return write(data, encoding, cb);
    }
    held.push([data, encoding, cb]);
    if (held.length === 1) {
      decideAndRelease(hmail, socket, requirement, mxHost, where, deps).then(
        (verdict) => {
          if (abandoned) return;
          if (verdict.kind === 'abandon') return abandon(verdict.reason);
          decided = true;
          for (const [d, e, c] of held.splice(0)) write(d, e, c);
        },
        (err: unknown) => {
          hmail.logerror(`outbound_tls: ${where}: decision failed: ${String((err as Error)?.stack ?? err)}`);
          abandon(`${requirement.domain}: internal error checking ${where}`);
        },
      );
    }
    return true;
  };

  socket.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'secure') handshakePending = false;
    if (event === 'line' && typeof args[0] === 'string') {
      const line = args[0];
      if (handshakePending) {
        // Plaintext injected after "220" (CVE-2011-0411 style) or garbage instead of a handshake:
        // Haraka would take it as a reply (and bounce on garbage). Never let it through.
        if (!abandoned) {
          queuePlainRetry('handshake', `TLS handshake failed (plaintext after the STARTTLS reply: ${JSON.stringify(line.slice(0, 40))})`);
          abandon(`${requirement.domain}: ${where} sent plaintext after accepting STARTTLS`);
        }
        return true;
      }
      if (awaitingStarttlsReply && /^\d{3} /.test(line)) {
        awaitingStarttlsReply = false;
        if (line.startsWith('220')) handshakePending = true;
        else {
          queuePlainRetry('starttls_refused', `STARTTLS refused (${line.trim()})`);
          abandon(`${requirement.domain}: ${where} refused STARTTLS: ${line.trim()}`);
          return true; // Haraka must not see it: a 4xx/5xx there would defer or bounce the whole message
        }
      }
      if (plainOnly && /^250[ -]STARTTLS\s*$/i.test(line)) {
        return emit(event, line.replace(/STARTTLS/i, 'X-STARTTLS-SKIPPED'));
      }
    }
    return emit(event, ...args);
  };

  socket.prependListener('error', (err: unknown) => {
    if (err && typeof err === 'object' && (err as { source?: string }).source === 'tls' && !abandoned) {
      queuePlainRetry('handshake', `TLS handshake failed (${(err as Error).message})`);
    }
  });
}

async function decideAndRelease(
  hmail: GuardedHMail,
  socket: GuardedSocket,
  requirement: Requirement,
  mxHost: string | undefined,
  where: string,
  deps: GuardDeps,
): Promise<Verdict> {
  const classification = classifyConnection(observe(socket), mxHost);
  const { events } = deps;
  const settings = deps.settings();
  events.connection(classification.level);
  const store = deps.store();
  let stored: Awaited<ReturnType<RatchetStore['get']>> | StoreProblem | undefined;
  if (requirement.ratchet) {
    try {
      stored = await store.get(requirement.domain);
    } catch (err) {
      stored = { kind: 'unreadable', reason: `${store.description}: ${(err as Error).message}` };
    }
    if (stored.kind === 'unreadable') {
      events.ratchet('store_error');
      hmail.logerror(`outbound_tls: ratchet store problem for ${requirement.domain}: ${stored.reason}`);
    }
  }
  const verdict = decide(classification, requirement, stored, settings.onStoreError, where);
  const seen = `${levelName(classification.level)} (${classification.reason}${classification.protocol ? `, ${classification.protocol}` : ''})`;
  if (verdict.raiseTo !== undefined) {
    try {
      const now = await store.raise(requirement.domain, verdict.raiseTo, mxHost);
      events.ratchet('raise');
      hmail.loginfo(`outbound_tls: ${requirement.domain}: ratchet raised to ${levelName(now)} by ${where}`);
    } catch (err) {
      events.ratchet('store_error');
      const reason = `${requirement.domain}: could not record level ${levelName(verdict.raiseTo)} (${(err as Error).message})`;
      hmail.logerror(`outbound_tls: ${reason}`);
      if (settings.onStoreError === 'defer' && verdict.kind === 'pass') {
        events.abandoned('store');
        hmail.logwarn(`outbound_tls: ${where}: ${seen}: abandoned: ${reason}`);
        return { kind: 'abandon', cause: 'store', reason };
      }
    }
  } else if (requirement.ratchet && verdict.kind === 'pass') {
    events.ratchet('pass');
  }
  if (verdict.kind === 'abandon') {
    if (verdict.cause === 'ratchet') events.ratchet('fail');
    if (verdict.cause === 'mta_sts' && requirement.sts) events.sts(requirement.sts.mode, 'fail');
    events.abandoned(verdict.cause);
    hmail.logwarn(`outbound_tls: ${where}: ${seen}: abandoned before MAIL FROM: ${verdict.reason}`);
    return verdict;
  }
  if (requirement.sts && requirement.sts.mode !== 'none') {
    events.sts(requirement.sts.mode, verdict.stsWouldRefuse ? 'would_fail' : 'pass');
    if (verdict.stsWouldRefuse) hmail.logwarn(`outbound_tls: MTA-STS testing, enforce would refuse: ${verdict.stsWouldRefuse}`);
  }
  hmail.loginfo(
    `outbound_tls: ${requirement.domain} via ${where}: ${seen}; stored ${levelName(verdict.stored)}` +
      `${requirement.sts ? `; MTA-STS ${requirement.sts.mode}` : ''}: pass`,
  );
  return verdict;
}
