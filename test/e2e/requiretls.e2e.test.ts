/**
 * End-to-end: RFC 8689 on receipt (RT-1, RT-5; RT-7's receive half) through a
 * real Haraka with inbound STARTTLS (Haraka's tls plugin, a certificate from
 * the tests' CA), outbound_tls and outbound_mx, the tests' DNS server and an
 * SMTP sink. Each test sits beside its control: the same session or message
 * without the request, or a Haraka with `[requiretls]` off.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import { REQUIRETLS_NOTE, TLS_REQUIRED_NO_NOTE } from '#lib/requiretls/notes';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, type HarakaOptions, type RecordedEvent } from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa, type Pem } from '../fixtures/test-ca';

const SINK_ADDRESS = '127.0.12.1';
/** Nothing listens here until the restart test starts a sink: mail for queued.test stays queued. */
const LATE_SINK_ADDRESS = '127.0.12.9';
const SUBMITTER = { user: 'submitter', pass: 'secret' };

let ca: TestCa;
let harakaCert: Pem;
let mxCert: Pem;
let dns: TestDnsServer;
let sink: SmtpSink;
let mxPort: number;
/** `[requiretls] enabled=true`, AUTH offered (flat_file) after STARTTLS. */
let enabled: HarakaInstance;
/** `[requiretls] enabled=false`, `tls_required_header=ignore`: the controls. */
let disabled: HarakaInstance;

/** A Haraka with inbound STARTTLS (tls plugin, certificate for haraka.test from the tests' CA). */
function harakaOptions(outboundTlsIni: string, extra: Partial<HarakaOptions> = {}): HarakaOptions {
  return {
    dnsServer: dns.address,
    mxPort,
    plugins: ['tls', 'auth/flat_file', 'outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    config: {
      'tls_key.pem': harakaCert.key,
      'tls_cert.pem': harakaCert.cert,
      'outbound_tls.ini': outboundTlsIni,
      'auth_flat_file.ini': `[core]\nmethods=PLAIN\n[users]\n${SUBMITTER.user}=${SUBMITTER.pass}\n`,
    },
    ...extra,
  };
}

function pointMx(domain: string, address: string): void {
  dns.clear(domain);
  dns.add(domain, { type: 'MX', preference: 10, exchange: `mx.${domain}` });
  dns.set(`mx.${domain}`, [{ type: 'A', address }]);
}

/** A scripted SMTP client session: one command at a time, the whole (multi-line) reply back; STARTTLS on demand. */
class Session {
  private socket: net.Socket;
  private buffer = '';
  private waiter: { resolve: (reply: string) => void; reject: (err: Error) => void } | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffer += chunk.toString('latin1');
    const complete = /(?:^|\r\n)\d{3} [^\r\n]*\r\n$/.exec(this.buffer);
    if (complete && this.waiter) {
      const reply = this.buffer.trimEnd();
      this.buffer = '';
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve(reply);
    }
  };
  private readonly onError = (err: Error): void => {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  };

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
  }

  static async open(haraka: HarakaInstance): Promise<Session> {
    const socket = net.connect(haraka.port, '127.0.0.1');
    socket.setTimeout(10_000, () => socket.destroy(new Error('SMTP session timed out')));
    const session = new Session(socket);
    await session.reply();
    return session;
  }

  private reply(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async command(line: string): Promise<string> {
    const reply = this.reply();
    this.socket.write(`${line}\r\n`);
    return reply;
  }

  /** STARTTLS, then a handshake that verifies Haraka's certificate for haraka.test. */
  async starttls(): Promise<void> {
    assert.match(await this.command('STARTTLS'), /^220 /);
    this.socket.off('data', this.onData);
    const secured = tls.connect({ socket: this.socket, ca: ca.caCert, servername: 'haraka.test' });
    await new Promise<void>((resolve, reject) => {
      secured.once('secureConnect', resolve);
      secured.once('error', reject);
    });
    secured.on('data', this.onData);
    secured.on('error', this.onError);
    this.socket = secured;
  }

  /** One whole transaction; returns the reply to MAIL FROM (the rest is only sent when it was accepted). */
  async transaction(o: { mail: string; to: string; headers?: string[] }): Promise<string> {
    const mail = await this.command(o.mail);
    if (!mail.startsWith('250')) return mail;
    assert.match(await this.command(`RCPT TO:<${o.to}>`), /^250 /);
    assert.match(await this.command('DATA'), /^354 /);
    const head = [...(o.headers ?? []), `Subject: ${o.to}`, 'From: <sender@sender.test>', `To: <${o.to}>`].join('\r\n');
    assert.match(await this.command(`${head}\r\n\r\nhello\r\n.`), /^250 /);
    return mail;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs `body` in a session: EHLO, and STARTTLS plus a second EHLO when `tls`. */
async function inSession(
  haraka: HarakaInstance,
  options: { tls: boolean },
  body: (s: Session, ehlo: string) => Promise<void>,
): Promise<void> {
  const session = await Session.open(haraka);
  try {
    let ehlo = await session.command('EHLO client.test');
    if (options.tls) {
      await session.starttls();
      ehlo = await session.command('EHLO client.test');
    }
    await body(session, ehlo);
    await session.command('QUIT');
  } finally {
    session.close();
  }
}

/** The one delivery to `domain` (each test has its own), with the notes Haraka kept with the message. */
function delivered(haraka: HarakaInstance, domain: string): Promise<RecordedEvent> {
  return haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === domain, 15000, `delivery to ${domain}`);
}

/** The `todo` header of each queued message (Haraka's queue file: 4-byte length, JSON, message). */
function queuedTodos(haraka: HarakaInstance): Array<{ rcpt_to: Array<{ original: string }>; notes: Record<string, unknown> }> {
  return haraka.queueFiles().map((name) => {
    const file = fs.readFileSync(path.join(haraka.dir, 'queue', name));
    return JSON.parse(file.subarray(4, 4 + file.readUInt32BE(0)).toString('utf8')) as {
      rcpt_to: Array<{ original: string }>;
      notes: Record<string, unknown>;
    };
  });
}

before(async () => {
  ca = await TestCa.create();
  harakaCert = await ca.issue({ dnsNames: ['haraka.test'], ipAddresses: ['127.0.0.1'] });
  mxCert = await ca.issue({ dnsNames: ['mx.rt.test', 'mx.interop.test', 'mx.marked.test', 'mx.queued.test'] });
  [sink] = (await startSinksOnCommonPort([{ host: SINK_ADDRESS, tls: mxCert, name: 'mx.rt.test', requireTlsExtension: true }])) as [
    SmtpSink,
  ];
  mxPort = sink.port;
  dns = await TestDnsServer.start();
  for (const domain of ['rt.test', 'interop.test', 'marked.test', 'unmarked.test', 'ignored.test', 'both.test', 'submit.test']) {
    pointMx(domain, SINK_ADDRESS);
  }
  pointMx('queued.test', LATE_SINK_ADDRESS);
  [enabled, disabled] = await Promise.all([
    HarakaInstance.start(harakaOptions('[requiretls]\nenabled=true\n')),
    HarakaInstance.start(harakaOptions('[requiretls]\nenabled=false\ntls_required_header=ignore\n')),
  ]);
});

after(async () => {
  await enabled?.stop();
  await disabled?.stop();
  await sink?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('RT-1: REQUIRETLS is advertised after STARTTLS only (enabled), never when [requiretls] is off', async () => {
  await inSession(enabled, { tls: false }, async (_s, ehlo) => {
    assert.match(ehlo, /STARTTLS/);
    assert.doesNotMatch(ehlo, /REQUIRETLS/, 'not in clear');
  });
  await inSession(enabled, { tls: true }, async (_s, ehlo) => {
    assert.match(ehlo, /^250[- ]REQUIRETLS$/m, 'inside TLS');
    assert.doesNotMatch(ehlo, /STARTTLS/);
  });
  // Control: the same sessions with [requiretls] off.
  for (const useTls of [false, true]) {
    await inSession(disabled, { tls: useTls }, async (_s, ehlo) => assert.doesNotMatch(ehlo, /REQUIRETLS/));
  }
});

test('RT-1: MAIL FROM … REQUIRETLS in clear is refused 530 5.7.10; over TLS it is accepted; with a value 501; where not offered 555', async () => {
  await inSession(enabled, { tls: false }, async (s) => {
    assert.match(await s.command('MAIL FROM:<sender@sender.test> REQUIRETLS'), /^530 5\.7\.10 .*STARTTLS/);
    // Control: the same MAIL FROM without the parameter.
    assert.match(await s.command('MAIL FROM:<sender@sender.test>'), /^250 /);
  });
  await inSession(enabled, { tls: true }, async (s) => {
    assert.match(await s.command('MAIL FROM:<sender@sender.test> REQUIRETLS=YES'), /^501 5\.5\.4 REQUIRETLS takes no value/);
    assert.match(await s.command('MAIL FROM:<sender@sender.test> REQUIRETLS'), /^250 /);
  });
  await inSession(disabled, { tls: true }, async (s) => {
    assert.match(await s.command('MAIL FROM:<sender@sender.test> REQUIRETLS'), /^555 5\.5\.4 /, 'not accepted and forgotten');
    assert.match(await s.command('MAIL FROM:<sender@sender.test>'), /^250 /);
  });
  assert.ok(enabled.logLines.some((l) => /MAIL FROM with REQUIRETLS refused: 530 5\.7\.10/.test(l)));
});

test('RT-1: the request is recorded with the message and applies to it; the same message without it carries no note', async () => {
  await inSession(enabled, { tls: true }, async (s) => {
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test> REQUIRETLS', to: 'user@rt.test' });
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test>', to: 'user@unmarked.test' });
  });
  const requested = await delivered(enabled, 'rt.test');
  assert.deepEqual(Object.keys(requested.notes ?? {}), [REQUIRETLS_NOTE]);
  assert.equal((requested.notes?.[REQUIRETLS_NOTE] as { requested?: unknown }).requested, true);
  assert.equal((requested.notes?.[REQUIRETLS_NOTE] as { authenticated?: unknown }).authenticated, false);
  assert.deepEqual((await delivered(enabled, 'unmarked.test')).notes, {});
});

test('RT-1: an authenticated client (submission) requests REQUIRETLS the same way', async () => {
  await inSession(enabled, { tls: true }, async (s) => {
    const plain = Buffer.from(`\0${SUBMITTER.user}\0${SUBMITTER.pass}`).toString('base64');
    assert.match(await s.command(`AUTH PLAIN ${plain}`), /^235 /);
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test> REQUIRETLS', to: 'user@submit.test' });
  });
  const event = await delivered(enabled, 'submit.test');
  assert.equal((event.notes?.[REQUIRETLS_NOTE] as { authenticated?: unknown }).authenticated, true);
});

test('RT-1, RT-7: the request survives a Haraka restart between receipt and delivery (queue file → hmail.todo.notes)', async () => {
  const first = await HarakaInstance.start(harakaOptions('[requiretls]\nenabled=true\n'));
  let dir = first.dir;
  let late: SmtpSink | undefined;
  let second: HarakaInstance | undefined;
  try {
    await inSession(first, { tls: true }, async (s) => {
      await s.transaction({ mail: 'MAIL FROM:<sender@sender.test> REQUIRETLS', to: 'required@queued.test' });
      await s.transaction({ mail: 'MAIL FROM:<sender@sender.test>', to: 'control@queued.test' });
    });
    // The MX does not answer yet: both stay queued, their notes in the queue files.
    await first.waitForEvent((e) => e.event === 'deferred' && e.domain === 'queued.test', 15000, 'a deferral');
    const todos = queuedTodos(first);
    const noteOf = (rcpt: string): unknown => todos.find((t) => t.rcpt_to[0]?.original === `<${rcpt}>`)?.notes[REQUIRETLS_NOTE];
    assert.equal(todos.length, 2, JSON.stringify(todos));
    assert.equal((noteOf('required@queued.test') as { requested?: unknown }).requested, true);
    assert.equal(noteOf('control@queued.test'), undefined);
    const firstPid = first.events().find((e) => e.event === 'started')?.pid;
    await first.stop({ keepDir: true });

    late = await SmtpSink.start({ host: LATE_SINK_ADDRESS, port: mxPort, tls: mxCert, name: 'mx.queued.test' });
    second = await HarakaInstance.start(harakaOptions('[requiretls]\nenabled=true\n', { dir }));
    dir = second.dir;
    await second.waitForEvent((e) => e.event === 'delivered' && e.domain === 'queued.test', 20000, 'delivery after the restart');
    await late.waitFor(() => late?.messages.length === 2, 20000);
    const restored = await second.waitForEvent(
      (e) => e.event === 'delivered' && e.domain === 'queued.test' && e.notes?.[REQUIRETLS_NOTE] !== undefined,
      20000,
      'the REQUIRETLS message delivered with its note restored',
    );
    assert.notEqual(restored.pid, firstPid, 'delivered by the restarted Haraka');
    const deliveries = second.events().filter((e) => e.event === 'delivered' && e.domain === 'queued.test');
    assert.equal(deliveries.length, 2);
    assert.equal(deliveries.filter((e) => e.notes?.[REQUIRETLS_NOTE] === undefined).length, 1, 'the control has none');
  } finally {
    await second?.stop();
    await late?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("RT-1, RT-7: interoperability: nodemailer's client sends MAIL FROM … REQUIRETLS only where Haraka advertises it", async () => {
  const send = async (haraka: HarakaInstance, to: string): Promise<void> => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: haraka.port,
      secure: false,
      requireTLS: true,
      name: 'client.test',
      tls: { ca: ca.caCert, servername: 'haraka.test' },
    });
    try {
      const message = { from: 'sender@sender.test', to, subject: 'interop', text: 'hello', requireTLSExtensionEnabled: true };
      await transport.sendMail(message as Parameters<typeof transport.sendMail>[0]);
    } finally {
      transport.close();
    }
  };
  await send(enabled, 'user@interop.test');
  const event = await delivered(enabled, 'interop.test');
  assert.equal((event.notes?.[REQUIRETLS_NOTE] as { requested?: unknown }).requested, true);
  // Control: where REQUIRETLS is not advertised the client refuses to send at all (RFC 8689 §4.2.1).
  await assert.rejects(send(disabled, 'user@interop.test'), /REQUIRETLS/);
  assert.equal(disabled.events().filter((e) => e.domain === 'interop.test').length, 0);
});

test('RT-5: TLS-Required: No is recorded with the message (honour); the same message without the header is not', async () => {
  await inSession(enabled, { tls: false }, async (s) => {
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test>', to: 'user@marked.test', headers: ['TLS-Required: No'] });
  });
  const marked = await delivered(enabled, 'marked.test');
  assert.deepEqual(Object.keys(marked.notes ?? {}), [TLS_REQUIRED_NO_NOTE]);
  assert.equal((marked.notes?.[TLS_REQUIRED_NO_NOTE] as { waive?: unknown }).waive, true);
  // Control (earlier test): user@unmarked.test, no header, no note.
  assert.deepEqual((await delivered(enabled, 'unmarked.test')).notes, {});
});

test('RT-5: tls_required_header=ignore records nothing; with REQUIRETLS the header is ignored (RFC 8689 §4.1)', async () => {
  await inSession(disabled, { tls: false }, async (s) => {
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test>', to: 'user@ignored.test', headers: ['TLS-Required: No'] });
  });
  assert.deepEqual((await delivered(disabled, 'ignored.test')).notes, {});
  assert.ok(disabled.logLines.some((l) => /TLS-Required header ignored: tls_required_header=ignore/.test(l)));

  await inSession(enabled, { tls: true }, async (s) => {
    await s.transaction({ mail: 'MAIL FROM:<sender@sender.test> REQUIRETLS', to: 'user@both.test', headers: ['TLS-Required: No'] });
  });
  const both = await delivered(enabled, 'both.test');
  assert.deepEqual(Object.keys(both.notes ?? {}), [REQUIRETLS_NOTE]);
  assert.ok(enabled.logLines.some((l) => /TLS-Required header ignored: the message was received with REQUIRETLS/.test(l)));
});
