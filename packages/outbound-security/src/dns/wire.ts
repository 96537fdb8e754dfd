/**
 * DNS queries as raw messages (`dns-packet`) over UDP, with TCP when the answer
 * is truncated: what the plugins need beyond Node's resolver, which exposes
 * neither TTLs for every type (the answer cache honours them, OPS-6) nor the
 * AD bit (DANE-1).
 *
 * A query goes to the configured servers in turn, `tries` rounds, each try
 * waiting `timeoutMs`. A reply is taken only when its id, its question and the
 * QR bit match what was asked (an off-path answer for another name is dropped,
 * not believed); each query uses a fresh socket, so its source port is the
 * kernel's random pick. The outcome is a response (any rcode) or a failure
 * with a c-ares-style code (ETIMEOUT, ECONNREFUSED…): callers never catch.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import dnsPacket from 'dns-packet';

/** EDNS0 payload size we advertise (the DNS Flag Day 2020 value: no IP fragmentation). */
export const EDNS_UDP_PAYLOAD = 1232;
/** OPS-5: a TCP answer larger than this is refused rather than buffered. */
export const MAX_TCP_MESSAGE_BYTES = 65535;

export type RecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'TLSA' | 'CNAME' | 'SOA';

export interface ResourceRecord {
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

export interface DnsResponse {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED… */
  rcode: string;
  /** The AD bit (meaningful only from a validating resolver one trusts: DANE-1). */
  authenticated: boolean;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  /** Size of the DNS message, for memory accounting (OPS-5). */
  bytes: number;
}

export type QueryOutcome = { kind: 'response'; response: DnsResponse } | { kind: 'failure'; code: string; message: string };

export interface QueryOptions {
  /** Set DO (and AD) in the query: ask a validating resolver for DNSSEC status (DANE-1). */
  dnssec?: boolean;
}

export interface WireSettings {
  /** `host`, `host:port` or `[v6]:port` entries (at least one). */
  servers: readonly string[];
  timeoutMs: number;
  tries: number;
  /**
   * OPS-7: told of every attempt's outcome per server (`server` as configured):
   * an answer of any kind (SERVFAIL included: the resolver is there), or a
   * failure to get one (timeout, refused, reset) with its reason.
   */
  health?: (server: string, answered: boolean, reason: string | undefined, name: string) => void;
}

export interface DnsTransport {
  query(name: string, type: RecordType, options?: QueryOptions): Promise<QueryOutcome>;
  /** A caching transport (dns/answer-cache.ts): until when this question's answer is kept, or undefined. */
  cachedUntil?(name: string, type: RecordType, options?: QueryOptions): number | undefined;
}

interface Server {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Parses `host`, `host:port`, `[v6]` and `[v6]:port`; a bare IPv6 address has no port. */
export function parseServer(entry: string): Server {
  const text = entry.trim();
  let host = text;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] as string;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (net.isIPv4(text.split(':')[0] ?? '') && text.includes(':')) {
    const [h, p] = text.split(':');
    host = h as string;
    port = Number(p);
  }
  const family = net.isIP(host);
  if (family === 0) throw new Error(`DNS server "${entry}": not an IP address (host, host:port or [v6]:port)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`DNS server "${entry}": bad port`);
  return { host, port, family: family as 4 | 6 };
}

function encodeQuery(id: number, name: string, type: RecordType, options: QueryOptions): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | (options.dnssec ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: [{ type, name, class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: EDNS_UDP_PAYLOAD,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: options.dnssec ? dnsPacket.DNSSEC_OK : 0,
        flag_do: options.dnssec === true,
        options: [],
      },
    ],
  });
}

type Decoded = { kind: 'reply'; response: DnsResponse; truncated: boolean } | { kind: 'ignore' };

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

function decodeReply(buf: Buffer, id: number, name: string, type: RecordType): Decoded {
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(buf);
  } catch {
    return { kind: 'ignore' };
  }
  const question = packet.questions?.[0];
  if (packet.id !== id || packet.type !== 'response' || !question || question.type !== type || !sameName(question.name, name)) {
    return { kind: 'ignore' };
  }
  const records = (list: dnsPacket.Answer[] | undefined): ResourceRecord[] =>
    (list ?? [])
      .filter((rr) => rr.type !== 'OPT')
      .map((rr) => ({ name: rr.name, type: rr.type, ttl: (rr as { ttl?: number }).ttl ?? 0, data: (rr as { data?: unknown }).data }));
  const flags = packet.flags ?? 0;
  return {
    kind: 'reply',
    truncated: (flags & dnsPacket.TRUNCATED_RESPONSE) !== 0,
    response: {
      rcode: (packet as { rcode?: string }).rcode ?? 'NOERROR',
      authenticated: (flags & dnsPacket.AUTHENTIC_DATA) !== 0,
      answers: records(packet.answers),
      authorities: records(packet.authorities),
      bytes: buf.length,
    },
  };
}

type Attempt = Extract<Decoded, { kind: 'reply' }> | { kind: 'failure'; code: string; message: string };

/**
 * One attempt with a deadline: `start` opens the socket and reports through
 * `finish`; the first report wins, the socket is closed and the timer cleared.
 */
function attempt(
  timeoutMs: number,
  timeoutMessage: string,
  start: (finish: (result: Attempt) => void) => { close(): void },
): Promise<Attempt> {
  return new Promise((resolve) => {
    let done = false;
    // The socket exists only once start() returns; a report made before then closes it there.
    const opened: { socket?: { close(): void } } = {};
    const finish = (result: Attempt): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opened.socket?.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ kind: 'failure', code: 'ETIMEOUT', message: timeoutMessage }), timeoutMs);
    opened.socket = start(finish);
    if (done) opened.socket.close();
  });
}

const socketFailure = (err: NodeJS.ErrnoException): Attempt => ({
  kind: 'failure',
  code: err.code ?? 'ECONNREFUSED',
  message: err.message,
});

function overUdp(server: Server, query: Buffer, id: number, name: string, type: RecordType, timeoutMs: number): Promise<Attempt> {
  return attempt(timeoutMs, `no answer from ${server.host} in ${timeoutMs} ms`, (finish) => {
    const socket = dgram.createSocket(server.family === 6 ? 'udp6' : 'udp4');
    socket.on('error', (err: NodeJS.ErrnoException) => finish(socketFailure(err)));
    socket.on('message', (msg) => {
      const reply = decodeReply(msg, id, name, type);
      if (reply.kind === 'reply') finish(reply);
    });
    // Connected: only the server's datagrams arrive, and an ICMP refusal is an error, not a timeout.
    socket.connect(server.port, server.host, () => socket.send(query));
    return socket;
  });
}

function overTcp(server: Server, query: Buffer, id: number, name: string, type: RecordType, timeoutMs: number): Promise<Attempt> {
  return attempt(timeoutMs, `no TCP answer from ${server.host} in ${timeoutMs} ms`, (finish) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    socket.on('error', (err: NodeJS.ErrnoException) => finish(socketFailure(err)));
    socket.on('close', () =>
      finish({ kind: 'failure', code: 'ECONNRESET', message: `${server.host} closed the TCP connection without an answer` }),
    );
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const size = received.readUInt16BE(0);
      if (received.length > MAX_TCP_MESSAGE_BYTES + 2) {
        finish({ kind: 'failure', code: 'EBADRESP', message: `TCP answer from ${server.host} too large` });
        return;
      }
      if (received.length < size + 2) return;
      const reply = decodeReply(received.subarray(2, size + 2), id, name, type);
      finish(reply.kind === 'reply' ? reply : { kind: 'failure', code: 'EBADRESP', message: `unusable TCP answer from ${server.host}` });
    });
    return { close: () => socket.destroy() };
  });
}

export function createDnsTransport(settings: WireSettings): DnsTransport {
  if (settings.servers.length === 0) throw new Error('no DNS servers configured');
  const servers = settings.servers.map((text) => ({ ...parseServer(text), text }));
  const health = settings.health;
  return {
    async query(name, type, options = {}) {
      const absolute = name.endsWith('.') ? name.slice(0, -1) : name;
      let failure = { code: 'ETIMEOUT', message: 'no DNS server answered' };
      for (let round = 0; round < settings.tries; round++) {
        // SERVFAIL or REFUSED is an answer: the next server is asked, the same one not again.
        let refusal: DnsResponse | undefined;
        for (const server of servers) {
          const id = randomInt(0, 65536);
          const query = encodeQuery(id, absolute, type, options);
          let attempt = await overUdp(server, query, id, absolute, type, settings.timeoutMs);
          if (attempt.kind === 'reply' && attempt.truncated) {
            attempt = await overTcp(server, query, id, absolute, type, settings.timeoutMs);
          }
          try {
            health?.(server.text, attempt.kind === 'reply', attempt.kind === 'failure' ? attempt.message : undefined, absolute);
          } catch {
            // OPS-8: telling the resolver's health (a log line, a metric) never costs the lookup its answer
          }
          if (attempt.kind === 'failure') {
            failure = attempt;
            continue;
          }
          if (attempt.response.rcode !== 'SERVFAIL' && attempt.response.rcode !== 'REFUSED') {
            return { kind: 'response', response: attempt.response };
          }
          refusal = attempt.response;
        }
        if (refusal) return { kind: 'response', response: refusal };
      }
      return { kind: 'failure', ...failure };
    },
  };
}
