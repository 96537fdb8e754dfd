/**
 * The conversation watcher of one outbound connection (TLS-2, TLS-3, TLS-7,
 * TLS-8): a pure state machine, fed with every command Haraka writes, every
 * reply line and every chunk of bytes the server sends, that says what to do
 * with each until the decision is made:
 *
 *  - commands: EHLO/HELO/LHLO/STARTTLS/RSET/QUIT are written; the first other
 *    command (MAIL FROM, AUTH) is held and starts the decision (TLS-2); later
 *    ones are held behind it. After `decided(true)` everything is written.
 *  - replies: before the decision, nothing the server says may make Haraka
 *    defer or bounce the whole message (TLS-7): a 3xx/4xx/5xx (except a 5xx to
 *    EHLO, after which Haraka says HELO), a line that does not parse as a
 *    reply, a reply nobody asked for, bytes between the 220 to STARTTLS and the
 *    end of the handshake: each abandons this connection only (next MX).
 *  - a refused STARTTLS or a failed handshake asks for one plain retry of the
 *    same MX (TLS-3), never on a connection that carries credentials (TLS-8).
 *
 * No I/O here: lib/connection-guard.ts applies the answers to Haraka's socket.
 */

/** Commands that carry nothing of the message or of credentials. */
export const HANDSHAKE_COMMANDS: ReadonlySet<string> = new Set(['EHLO', 'HELO', 'LHLO', 'STARTTLS', 'RSET', 'QUIT']);

/** What Haraka accepts as a reply line (outbound/hmail.js smtp_regexp). */
const REPLY_LINE = /^([2345]\d\d)([ -])/;
/** RT-2 (c): an EHLO keyword line advertising REQUIRETLS (no parameters, RFC 8689 §3). */
const REQUIRETLS_KEYWORD = /^250[ -]REQUIRETLS\s*$/i;
/** An EHLO keyword line advertising STARTTLS. */
const STARTTLS_KEYWORD = /^(250[ -])STARTTLS(\s*)$/i;

export type TlsFailure = 'starttls_refused' | 'handshake';

export type CommandAction =
  /** Write it now. */
  | { kind: 'write' }
  /** Keep it until the decision; `decide` is true for the command that starts it. */
  | { kind: 'hold'; decide: boolean; verb: string }
  /** The connection is abandoned: write nothing. */
  | { kind: 'drop' };

export type ReplyAction =
  | { kind: 'pass' }
  /** Give Haraka this line instead (the TLS-3 retry hides STARTTLS). */
  | { kind: 'rewrite'; line: string }
  /** Haraka must not see it (the connection is being abandoned). */
  | { kind: 'drop' }
  /** End this connection only; `retryPlain` asks for the TLS-3 retry. */
  | { kind: 'abandon'; reason: string; tlsFailure?: TlsFailure; retryPlain: boolean };

export interface ConversationOptions {
  /** This is the TLS-3 retry: STARTTLS is hidden from Haraka. */
  plainOnly: boolean;
  /** The plain_retry setting. */
  plainRetry: boolean;
  /** The connection would send AUTH credentials (a smart host route): no plain retry (TLS-8). */
  credentials: boolean;
}

type Phase = 'open' | 'held' | 'decided' | 'abandoned';
type TlsState = 'none' | 'handshake' | 'secure';

function printableLine(line: string): string {
  return JSON.stringify(line.replace(/\r?\n$/, '').slice(0, 80));
}

/** The command's verb in upper case (leading blanks skipped, letters only). OPS-6: a scan, no regular expression. */
function verbOf(command: string): string {
  let start = 0;
  while (start < command.length && (command[start] === ' ' || command[start] === '\t')) start++;
  let end = start;
  for (; end < command.length; end++) {
    const code = command.charCodeAt(end) | 0x20; // lower-cases ASCII letters
    if (code < 0x61 || code > 0x7a) break;
  }
  return command.slice(start, end).toUpperCase();
}

export class Conversation {
  private phase: Phase = 'open';
  /** The command whose final reply is awaited (`CONNECT` for the greeting), or null. */
  private awaiting: string | null = 'CONNECT';
  private tls: TlsState = 'none';
  /** Inbound bytes after the last line end: what Haraka's line buffer holds. */
  private partial = '';
  private retryAsked = false;
  private requireTlsOffered = false;

  constructor(private readonly options: ConversationOptions) {}

  /** True once the decision let the held commands go. */
  get decided(): boolean {
    return this.phase === 'decided';
  }

  get abandoned(): boolean {
    return this.phase === 'abandoned';
  }

  /** RT-2 (c): the server's last EHLO reply inside TLS advertised REQUIRETLS (one before STARTTLS never counts). */
  get requireTlsAdvertised(): boolean {
    return this.requireTlsOffered;
  }

  /** A command Haraka is writing (one line, with or without CRLF). */
  command(text: string): CommandAction {
    switch (this.phase) {
      case 'abandoned':
        return { kind: 'drop' };
      case 'decided':
        return { kind: 'write' };
      case 'held':
        return { kind: 'hold', decide: false, verb: verbOf(text) };
      case 'open': {
        const verb = verbOf(text);
        if (HANDSHAKE_COMMANDS.has(verb)) {
          this.awaiting = verb;
          if (verb === 'EHLO' || verb === 'HELO' || verb === 'LHLO') this.requireTlsOffered = false;
          return { kind: 'write' };
        }
        this.phase = 'held';
        return { kind: 'hold', decide: true, verb };
      }
    }
  }

  /** A chunk of bytes the server sent, before Haraka splits it into lines. */
  data(chunk: string): void {
    const text = this.partial + chunk;
    const end = text.lastIndexOf('\n');
    this.partial = end < 0 ? text : text.slice(end + 1);
  }

  /** After Haraka split a chunk into lines: bytes left behind the 220 to STARTTLS would be glued to the first TLS reply. */
  afterData(): ReplyAction {
    if (this.phase !== 'open' && this.phase !== 'held') return { kind: 'pass' };
    if (this.tls === 'handshake' && this.partial !== '') {
      return this.abandon(`sent bytes after the STARTTLS reply: ${printableLine(this.partial)}`, 'handshake');
    }
    return { kind: 'pass' };
  }

  /** One reply line as Haraka is about to see it. */
  reply(line: string): ReplyAction {
    if (this.phase === 'abandoned') return { kind: 'drop' };
    if (this.phase === 'decided') return { kind: 'pass' };
    if (this.tls === 'handshake') {
      return this.abandon(`sent plaintext after the STARTTLS reply: ${printableLine(line)}`, 'handshake');
    }
    if (this.phase === 'held') return this.abandon(`sent ${printableLine(line)} before MAIL FROM was written`);
    const match = REPLY_LINE.exec(line);
    if (!match) return this.abandon(`sent a line that is not an SMTP reply: ${printableLine(line)}`);
    const awaited = this.awaiting;
    if (awaited === null) return this.abandon(`sent ${printableLine(line)} unasked`);
    if (awaited === 'EHLO' && this.tls === 'secure' && match[1] === '250' && REQUIRETLS_KEYWORD.test(line.replace(/\r?\n$/, ''))) {
      this.requireTlsOffered = true;
    }
    const rewritten = this.options.plainOnly ? this.hideStarttls(line) : null;
    if (match[2] === '-') return rewritten ?? { kind: 'pass' };
    this.awaiting = null;
    const code = match[1] as string;
    const what = awaited === 'CONNECT' ? 'greeted with' : `answered ${awaited} with`;
    if (code.startsWith('2')) {
      if (awaited === 'STARTTLS') this.tls = 'handshake';
      return rewritten ?? { kind: 'pass' };
    }
    if (awaited === 'STARTTLS') return this.abandon(`refused STARTTLS: ${printableLine(line)}`, 'starttls_refused');
    // Haraka falls back to HELO after a 5xx to EHLO; everything else would end the whole message.
    if (awaited === 'EHLO' && code.startsWith('5')) return { kind: 'pass' };
    if (awaited === 'QUIT') return { kind: 'pass' };
    return this.abandon(`${what} ${printableLine(line)}`);
  }

  /** The TLS handshake completed. */
  secured(): ReplyAction {
    if (this.phase === 'abandoned') return { kind: 'drop' };
    this.tls = 'secure';
    if (this.phase === 'decided') return { kind: 'pass' };
    if (this.partial !== '') {
      return this.abandon(`sent bytes after the STARTTLS reply: ${printableLine(this.partial)}`, 'handshake');
    }
    return { kind: 'pass' };
  }

  /** The TLS handshake failed (Haraka itself ends the connection and moves on). */
  tlsError(): ReplyAction {
    if (this.phase !== 'open' && this.phase !== 'held') return { kind: 'pass' };
    return { kind: 'abandon', reason: 'TLS handshake failed', tlsFailure: 'handshake', retryPlain: this.mayRetryPlain() };
  }

  /** The decision about the held commands: release them, or abandon the connection. */
  decide(pass: boolean): void {
    if (this.phase === 'abandoned') return;
    this.phase = pass ? 'decided' : 'abandoned';
  }

  /** The connection is being abandoned for a reason outside the conversation. */
  abandonNow(): void {
    this.phase = 'abandoned';
  }

  private abandon(reason: string, tlsFailure?: TlsFailure): ReplyAction {
    const retryPlain = tlsFailure !== undefined && this.mayRetryPlain();
    this.phase = 'abandoned';
    return { kind: 'abandon', reason, retryPlain, ...(tlsFailure ? { tlsFailure } : {}) };
  }

  private mayRetryPlain(): boolean {
    if (this.retryAsked || this.options.plainOnly || !this.options.plainRetry || this.options.credentials) return false;
    this.retryAsked = true;
    return true;
  }

  private hideStarttls(line: string): ReplyAction | null {
    const match = STARTTLS_KEYWORD.exec(line.replace(/\r?\n$/, ''));
    if (!match) return null;
    return { kind: 'rewrite', line: `${match[1]}X-STARTTLS-SKIPPED${line.endsWith('\n') ? '\r\n' : ''}` };
  }
}
