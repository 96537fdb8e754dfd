/**
 * End-to-end: RFC 8689 on receipt (RT-1, RT-5; RT-7's receive half) through a
 * real Haraka with inbound STARTTLS (Haraka's tls plugin, a certificate from
 * the tests' CA), outbound_tls and outbound_mx, the tests' DNS server and an
 * SMTP sink. Each test sits beside its control: the same session or message
 * without the request, or a Haraka with `[requiretls]` off. The domains a
 * REQUIRETLS message goes to publish an MTA-STS policy in testing mode listing
 * their MX host, and the sink advertises REQUIRETLS after STARTTLS: what RT-2
 * asks before such a message is delivered (requiretls-send.e2e.test.ts tests
 * the rest of the send side).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import { REQUIRETLS_NOTE, TLS_REQUIRED_NO_NOTE } from '#lib/requiretls/notes';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, type HarakaOptions, type RecordedEvent } from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { inSession as inSessionWith, type Session } from '../fixtures/smtp-session';
import { FFDHE2048_PEM, TestCa, type Pem } from '../fixtures/test-ca';
import { PolicyServer } from '../fixtures/policy-server';

const SINK_ADDRESS = '127.0.12.1';
/** Nothing listens here until the restart test starts a sink: mail for queued.test stays queued. */
const LATE_SINK_ADDRESS = '127.0.12.9';
const SUBMITTER = { user: 'submitter', pass: 'secret' };
const POLICY_HOST = '127.0.12.20';

let ca: TestCa;
let harakaCert: Pem;
let mxCert: Pem;
let dns: TestDnsServer;
let sink: SmtpSink;
let mxPort: number;
let policies: PolicyServer;
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
    mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=1'].join('\n'),
    config: {
      'tls_key.pem': harakaCert.key,
      'tls_cert.pem': harakaCert.cert,
      'dhparams.pem': FFDHE2048_PEM,
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

/** RT-2 (a): an MTA-STS policy (testing) listing the domain's MX host authenticates it for REQUIRETLS messages. */
async function publishPolicy(domain: string): Promise<void> {
  await policies.publish(dns, domain, { id: '1', mode: 'testing', mx: [`mx.${domain}`] });
}

/** Runs `body` in a session: EHLO, and STARTTLS plus a second EHLO when `tls`. */
function inSession(haraka: HarakaInstance, options: { tls: boolean }, body: (s: Session, ehlo: string) => Promise<void>): Promise<void> {
  return inSessionWith(haraka, { ...options, ca: ca.caCert }, body);
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
  const requested = ['rt.test', 'interop.test', 'submit.test', 'both.test', 'queued.test'];
  mxCert = await ca.issue({ dnsNames: [...requested, 'marked.test'].map((domain) => `mx.${domain}`) });
  [sink] = (await startSinksOnCommonPort([{ host: SINK_ADDRESS, tls: mxCert, name: 'mx.rt.test', requireTlsExtension: true }])) as [
    SmtpSink,
  ];
  mxPort = sink.port;
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  for (const domain of requested) await publishPolicy(domain);
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
  await policies?.stop();
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
  // RT-2: the MAIL FROM the sink saw carried REQUIRETLS for the request only.
  const seen = (to: string): boolean | undefined => sink.messages.find((m) => m.to.includes(to))?.requireTls;
  assert.equal(seen('user@rt.test'), true);
  assert.equal(seen('user@unmarked.test'), false);
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

    late = await SmtpSink.start({ host: LATE_SINK_ADDRESS, port: mxPort, tls: mxCert, name: 'mx.queued.test', requireTlsExtension: true });
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
    // RT-2: after the restart the request still reaches the wire; the control's MAIL FROM has no parameter.
    const wire = (to: string): boolean | undefined => late?.messages.find((m) => m.to.includes(to))?.requireTls;
    assert.equal(wire('required@queued.test'), true);
    assert.equal(wire('control@queued.test'), false);
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
