/**
 * A minimal SMTP client that looks at an MX without sending mail (OPS-4
 * probe): banner, EHLO, STARTTLS when offered, the TLS handshake with the MX
 * host name as SNI, the classification outbound_tls would make (TLS-1), EHLO
 * again (whose reply says whether the server offers REQUIRETLS, RT-2 (c),
 * RT-6), QUIT. Never MAIL FROM. Every step under one deadline.
 */
import net from 'node:net';
import tls from 'node:tls';
import { classifyConnection, type Classification, type TlsObservation } from '../tls/classify';

export interface SmtpReply {
  code: number;
  /** The text of each line, without the code and separator. */
  lines: string[];
}

const MAX_REPLY_BYTES = 64 * 1024;

/** Collects SMTP replies from a stream; `detach` hands the stream over (STARTTLS). */
class ReplyReader {
  private text = '';
  private partial: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private waiter: { resolve: (reply: SmtpReply) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;
  private stream: net.Socket | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.text += chunk.toString('latin1');
    if (this.text.length > MAX_REPLY_BYTES) this.fail(new Error('reply longer than 64 KiB'));
    else this.pump();
  };
  private readonly onClose = (): void => this.fail(new Error('connection closed by the server'));
  private readonly onError = (err: Error): void => this.fail(err);

  attach(stream: net.Socket): void {
    this.stream = stream;
    stream.on('data', this.onData);
    stream.on('end', this.onClose);
    stream.on('close', this.onClose);
    stream.on('error', this.onError);
  }

  /** Stops reading; returns whatever arrived beyond the replies already taken. */
  detach(): string {
    const stream = this.stream;
    if (stream) {
      stream.off('data', this.onData);
      stream.off('end', this.onClose);
      stream.off('close', this.onClose);
      stream.off('error', this.onError);
    }
    this.stream = null;
    const rest =
      this.replies.map((r) => r.lines.map((line) => `${r.code} ${line}`).join('\n')).join('\n') + this.partial.join('\n') + this.text;
    this.replies.length = 0;
    this.partial = [];
    this.text = '';
    return rest;
  }

  next(): Promise<SmtpReply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
  }

  private pump(): void {
    let nl: number;
    while ((nl = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, nl).replace(/\r$/, '');
      this.text = this.text.slice(nl + 1);
      const match = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!match) return this.fail(new Error(`malformed reply line "${printableLine(line)}"`));
      this.partial.push(match[3] ?? '');
      if (match[2] === '-') continue;
      const reply = { code: Number(match[1]), lines: this.partial };
      this.partial = [];
      const waiter = this.waiter;
      this.waiter = null;
      if (waiter) waiter.resolve(reply);
      else this.replies.push(reply);
    }
  }
}

function printableLine(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f-\xff]/g, '?');
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}

/** Whether an EHLO reply lists `keyword` (the lines after the first, as RFC 5321 §4.1.1.1 lays them out). */
function offers(reply: SmtpReply, keyword: RegExp): boolean {
  return reply.lines.slice(1).some((line) => keyword.test(line.trim()));
}

/** RT-2 (c): the EHLO keyword of RFC 8689, which takes no parameters. */
const REQUIRETLS_KEYWORD = /^REQUIRETLS$/i;

/**
 * RT-2 (c), RT-6: where the server advertised REQUIRETLS: in its EHLO reply
 * after STARTTLS (the only one that counts), only in the clear-text one before
 * (never believed: anyone on the path can add it), or nowhere.
 */
export type RequireTlsAdvertisement = 'after-starttls' | 'before-starttls-only' | 'none';

function replyText(reply: SmtpReply): string {
  return printableLine(`${reply.code} ${reply.lines[0] ?? ''}`);
}

export interface ProbeTarget {
  /** The MX host name a certificate must match (SNI too); undefined for an address literal. */
  host: string | undefined;
  address: string;
  port: number;
  /** POL-1: a policy table rule's `match=` names, checked beside the MX host name. */
  match?: readonly string[];
}

export type ProbeOutcome =
  /**
   * The connection's level as outbound_tls would see it at MAIL FROM, and what
   * the handshake showed (the peer's certificate chain for DANE, DANE-4).
   */
  | {
      kind: 'classified';
      classification: Classification;
      observation: TlsObservation;
      requireTls: RequireTlsAdvertisement;
      note?: string;
    }
  /** STARTTLS was offered but refused or failed: Haraka's next connection to this MX is the TLS-3 plain retry. */
  | { kind: 'starttls-failed'; reason: string }
  | { kind: 'error'; reason: string };

/**
 * One connection: banner, EHLO (HELO if EHLO is refused), STARTTLS when
 * offered, TLS with `servername: host` and `rejectUnauthorized: false` over the
 * default trust store (Node's roots plus NODE_EXTRA_CA_CERTS, as Haraka), the
 * classification, EHLO again, QUIT. Never MAIL FROM. Never rejects.
 */
export async function probeAddress(target: ProbeTarget, ehloName: string, timeoutMs: number): Promise<ProbeOutcome> {
  let active: net.Socket | null = null;
  let stage = 'connecting';
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    active?.destroy(new Error(`no answer within ${timeoutMs / 1000} s (${stage})`));
  }, timeoutMs);
  const reader = new ReplyReader();
  const send = async (command: string): Promise<SmtpReply> => {
    stage = `waiting for the reply to ${command.split(' ')[0]}`;
    active?.write(`${command}\r\n`);
    return reader.next();
  };
  try {
    const socket = net.connect({ host: target.address, port: target.port });
    active = socket;
    reader.attach(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    stage = 'waiting for the banner';
    const banner = await reader.next();
    if (banner.code !== 220) return { kind: 'error', reason: `banner ${replyText(banner)}` };
    let ehlo = await send(`EHLO ${ehloName}`);
    if (ehlo.code !== 250) {
      const helo = await send(`HELO ${ehloName}`);
      if (helo.code !== 250) return { kind: 'error', reason: `EHLO and HELO refused: ${replyText(ehlo)}; ${replyText(helo)}` };
      ehlo = { code: 250, lines: [] };
    }
    const inClear: RequireTlsAdvertisement = offers(ehlo, REQUIRETLS_KEYWORD) ? 'before-starttls-only' : 'none';
    if (!offers(ehlo, /^STARTTLS\b/i)) {
      await quit(send);
      const observation: TlsObservation = { encrypted: false };
      const classification = classifyConnection(observation, target.host, new Date(), target.match);
      return { kind: 'classified', classification, observation, requireTls: inClear, note: 'STARTTLS not offered' };
    }
    const started = await send('STARTTLS');
    if (started.code !== 220) {
      await quit(send);
      return { kind: 'starttls-failed', reason: `STARTTLS refused: ${replyText(started)}` };
    }
    const injected = reader.detach();
    // From here the TLS socket reports errors; the raw one must not crash the process.
    socket.on('error', () => undefined);
    if (injected !== '') {
      return { kind: 'starttls-failed', reason: `plaintext after the 220 to STARTTLS (command injection): "${printableLine(injected)}"` };
    }
    stage = 'TLS handshake';
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const upgraded = tls.connect({
        socket,
        ...(target.host !== undefined ? { servername: target.host } : {}),
        rejectUnauthorized: false,
      });
      active = upgraded;
      upgraded.once('secureConnect', () => {
        upgraded.off('error', reject);
        resolve(upgraded);
      });
      upgraded.once('error', reject);
      upgraded.once('close', () => reject(new Error('connection closed during the TLS handshake')));
    }).catch((err: Error) => {
      throw Object.assign(new Error(`TLS handshake failed: ${timedOut ? `no answer within ${timeoutMs / 1000} s` : describeError(err)}`), {
        handshake: true,
      });
    });
    // Node 20 hands the peer chain out once: this one object carries it, linked by issuerCertificate (dane/peer-chain).
    const peer = secure.getPeerX509Certificate();
    const observation: TlsObservation = {
      encrypted: true,
      authorizationError: secure.authorizationError ?? null,
      ...(peer ? { peerCertificate: peer } : {}),
      protocol: secure.getProtocol(),
    };
    const classification = classifyConnection(observation, target.host, new Date(), target.match);
    reader.attach(secure);
    const again = await send(`EHLO ${ehloName}`);
    await quit(send);
    return {
      kind: 'classified',
      classification,
      observation,
      requireTls: again.code === 250 && offers(again, REQUIRETLS_KEYWORD) ? 'after-starttls' : inClear,
      ...(again.code !== 250 ? { note: `EHLO after STARTTLS answered ${replyText(again)}` } : {}),
    };
  } catch (err) {
    const error = err as Error & { handshake?: boolean };
    if (error.handshake) return { kind: 'starttls-failed', reason: error.message };
    return { kind: 'error', reason: timedOut ? `no answer within ${timeoutMs / 1000} s (${stage})` : `${describeError(error)} (${stage})` };
  } finally {
    clearTimeout(timer);
    active?.destroy();
  }
}

/** One line for a socket or OpenSSL error: OpenSSL's reason and code rather than its multi-line message. */
function describeError(err: Error): string {
  const { code, reason } = err as Error & { code?: unknown; reason?: unknown };
  if (typeof reason === 'string' && reason !== '') return `${reason}${typeof code === 'string' ? ` (${code})` : ''}`;
  return printableLine((err.message.split('\n')[0] ?? '').trim());
}

/** QUIT; a server that closes instead of answering 221 is fine. */
async function quit(send: (command: string) => Promise<SmtpReply>): Promise<void> {
  await send('QUIT').catch(() => undefined);
}
