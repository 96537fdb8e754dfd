/**
 * End-to-end: RFC 8689 on delivery (RT-2 … RT-6; RT-7's send half) through a
 * real Haraka with inbound STARTTLS: each REQUIRETLS message is submitted over
 * TLS with `MAIL FROM:<…> REQUIRETLS`, delivered by outbound_tls and
 * outbound_mx to STARTTLS sinks that do or do not advertise REQUIRETLS, under
 * MTA-STS policies served by the tests' policy server. A second Haraka routes
 * to smart hosts (RT-4). Every test sits beside its control: the same message
 * without REQUIRETLS (or without `TLS-Required: No`), or the same domain
 * without the defect. DSNs are really sent (HARAKA_RECORDER_SEND_BOUNCES).
 * DANE's half of RT-2 (a DNSSEC-validated MX set) is in dane.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, freePort, type HarakaOptions, type RecordedEvent } from '../fixtures/haraka-instance';
import { PolicyServer } from '../fixtures/policy-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { inSession } from '../fixtures/smtp-session';
import { FFDHE2048_PEM, TestCa, type Pem } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.14.20';
const SENDER = 'sender@dsn.test';
/** Nothing listens here: a host that cannot be reached (transient). */
const DOWN = '127.0.14.9';

/** name → [address, advertises REQUIRETLS, certificate]. */
const SINKS = {
  yes: ['127.0.14.1', true, 'valid'],
  no: ['127.0.14.2', false, 'valid'],
  self: ['127.0.14.3', true, 'self-signed'],
  dsn: ['127.0.14.4', true, 'valid'],
  relayYes: ['127.0.14.5', true, 'valid'],
  relayNo: ['127.0.14.6', false, 'valid'],
  relayRelax: ['127.0.14.7', false, 'valid'],
} as const;
type SinkName = keyof typeof SINKS;

/** The MX host names each sink's certificate carries (the relays by their own names). */
const HOSTS: Record<SinkName, string[]> = {
  yes: ['mx.sts-ok.test', 'mx2.skip.test', 'mx.unauth.test', 'mx.stsfail.test'],
  no: ['mx.none.test', 'mx1.skip.test'],
  self: ['mx.badcert.test', 'mx.exempt.test', 'mx.sts-bad.test', 'mx.tablemin-self.test'],
  dsn: ['mx.dsn.test'],
  relayYes: ['relay-yes.isp.test'],
  relayNo: ['relay-no.isp.test'],
  relayRelax: ['relay-relax.isp.test'],
};

const TABLE = ['exempt.test may exempt=mta-sts', 'tablemin-self.test verify', 'relay:relay-relax.isp.test verify requiretls=relax'];

let ca: TestCa;
let harakaCert: Pem;
let dns: TestDnsServer;
let policies: PolicyServer;
let mxPort: number;
let metricsListen: string;
const sinks = new Map<SinkName, SmtpSink>();
let haraka: HarakaInstance;
let relayHaraka: HarakaInstance;
let routesDir: string;

function sink(name: SinkName): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

function mx(domain: string, ...targets: Array<[number, string, string]>): void {
  dns.set(
    domain,
    targets.map(([preference, exchange]) => ({ type: 'MX' as const, preference, exchange })),
  );
  for (const [, exchange, address] of targets) dns.set(exchange, [{ type: 'A', address }]);
}

async function publish(domain: string, mode: 'enforce' | 'testing', hosts: string[]): Promise<void> {
  await policies.publish(dns, domain, { id: '1', mode, mx: hosts });
}

function harakaOptions(extra: Partial<HarakaOptions>): HarakaOptions {
  return {
    dnsServer: dns.address,
    mxPort,
    extraCa: ca.caCertPath,
    mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=1'].join('\n'),
    ...extra,
    env: { HARAKA_RECORDER_SEND_BOUNCES: '1', ...extra.env },
    config: {
      'tls_key.pem': harakaCert.key,
      'tls_cert.pem': harakaCert.cert,
      'dhparams.pem': FFDHE2048_PEM,
      'outbound_tls.ini': '[requiretls]\nenabled=true\n',
      outbound_tls_policy: TABLE.join('\n'),
      ...extra.config,
    },
  };
}

/** Submits one message over inbound TLS; `requireTls` adds the MAIL FROM parameter. */
async function submit(
  instance: HarakaInstance,
  to: string,
  o: { requireTls: boolean; headers?: string[]; from?: string } = { requireTls: true },
): Promise<void> {
  await inSession(instance, { tls: true, ca: ca.caCert }, async (s) => {
    const reply = await s.transaction({
      mail: `MAIL FROM:<${o.from ?? SENDER}>${o.requireTls ? ' REQUIRETLS' : ''}`,
      to,
      ...(o.headers ? { headers: o.headers } : {}),
    });
    assert.match(reply, /^250 /);
  });
}

/** The first delivered/deferred/bounce event of the message to `to` (its recipient, so each test has its own). */
function outcome(instance: HarakaInstance, to: string, timeoutMs = 15000): Promise<RecordedEvent> {
  return instance.waitForEvent(
    (e) => ['delivered', 'deferred', 'bounce'].includes(e.event) && (e.rcpts ?? []).some((r) => r.original === `<${to}>`),
    timeoutMs,
    `an outcome for ${to}`,
  );
}

function delivery(instance: HarakaInstance, domain: string, since: number): Promise<RecordedEvent> {
  return instance.waitForEvent((e) => e.at >= since && e.domain === domain && e.event !== 'started', 15000, `an outcome for ${domain}`);
}

/** What the sink received for `to`: whether MAIL FROM carried REQUIRETLS, or undefined when it got nothing. */
function received(name: SinkName, to: string): { requireTls: boolean; body: string; from: string } | undefined {
  return sink(name).messages.find((m) => m.to.includes(to));
}

before(async () => {
  ca = await TestCa.create();
  harakaCert = await ca.issue({ dnsNames: ['haraka.test'], ipAddresses: ['127.0.0.1'] });
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const specs = [];
  for (const [name, [host, requireTlsExtension, kind]] of Object.entries(SINKS) as Array<[SinkName, (typeof SINKS)[SinkName]]>) {
    const dnsNames = HOSTS[name];
    const tls = kind === 'valid' ? await ca.issue({ dnsNames }) : await ca.selfSigned({ dnsNames });
    specs.push({ host, tls, name: dnsNames[0] as string, requireTlsExtension });
  }
  const started = await startSinksOnCommonPort(specs);
  (Object.keys(SINKS) as SinkName[]).forEach((name, i) => sinks.set(name, started[i] as SmtpSink));
  mxPort = (started[0] as SmtpSink).port;

  const [yes, no, self, dsnSink] = [SINKS.yes[0], SINKS.no[0], SINKS.self[0], SINKS.dsn[0]];
  mx('sts-ok.test', [10, 'mx.sts-ok.test', yes]);
  await publish('sts-ok.test', 'enforce', ['mx.sts-ok.test']);
  mx('skip.test', [10, 'mx1.skip.test', no], [20, 'mx2.skip.test', yes]);
  await publish('skip.test', 'testing', ['mx1.skip.test', 'mx2.skip.test']);
  mx('none.test', [10, 'mx.none.test', no]);
  await publish('none.test', 'enforce', ['mx.none.test']);
  mx('unauth.test', [10, 'mx.unauth.test', yes]);
  mx('badcert.test', [10, 'mx.badcert.test', self]);
  await publish('badcert.test', 'testing', ['mx.badcert.test']);
  mx('down.test', [10, 'mx.down.test', DOWN]);
  await publish('down.test', 'testing', ['mx.down.test']);
  mx('exempt.test', [10, 'mx.exempt.test', self]);
  await publish('exempt.test', 'enforce', ['mx.exempt.test']);
  mx('sts-bad.test', [10, 'mx.sts-bad.test', self]);
  await publish('sts-bad.test', 'enforce', ['mx.sts-bad.test']);
  mx('tablemin-self.test', [10, 'mx.tablemin-self.test', self]);
  mx('stsfail.test', [10, 'mx.stsfail.test', yes]);
  dns.set('_mta-sts.stsfail.test', [{ type: 'TXT', data: 'v=STSv1; id=1' }]);
  dns.set('mta-sts.stsfail.test', [{ type: 'A', address: POLICY_HOST }]);
  await policies.set('stsfail.test', { kind: 'status', status: 500 });
  mx('dsn.test', [10, 'mx.dsn.test', dsnSink]);
  await publish('dsn.test', 'enforce', ['mx.dsn.test']);

  routesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'requiretls-routes-'));
  const routesFile = path.join(routesDir, 'routes.json');
  const route = (name: 'relayYes' | 'relayNo' | 'relayRelax'): object => ({
    exchange: SINKS[name][0],
    port: mxPort,
    host: HOSTS[name][0],
  });
  fs.writeFileSync(
    routesFile,
    JSON.stringify({
      'relayed-yes.test': route('relayYes'),
      'relayed-no.test': route('relayNo'),
      'relayed-relax.test': route('relayRelax'),
    }),
  );
  metricsListen = `127.0.0.1:${await freePort()}`;
  [haraka, relayHaraka] = await Promise.all([
    HarakaInstance.start(
      harakaOptions({
        plugins: ['tls', 'outbound_tls', 'outbound_mx'],
        config: { 'outbound_tls.ini': `[requiretls]\nenabled=true\n[metrics]\nlisten=${metricsListen}\n` },
      }),
    ),
    HarakaInstance.start(
      harakaOptions({ plugins: ['tls', 'outbound_tls', 'haraka-static-route'], env: { HARAKA_STATIC_ROUTES: routesFile } }),
    ),
  ]);
});

after(async () => {
  await haraka?.stop();
  await relayHaraka?.stop();
  for (const s of sinks.values()) await s.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
  if (routesDir) fs.rmSync(routesDir, { recursive: true, force: true });
});

test('RT-2: under MTA-STS enforce a REQUIRETLS message is delivered with MAIL FROM … REQUIRETLS; without the request, without it', async () => {
  await submit(haraka, 'user@sts-ok.test');
  await submit(haraka, 'control@sts-ok.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'user@sts-ok.test')).event, 'delivered');
  assert.equal((await outcome(haraka, 'control@sts-ok.test')).event, 'delivered');
  assert.equal(received('yes', 'user@sts-ok.test')?.requireTls, true);
  assert.equal(received('yes', 'control@sts-ok.test')?.requireTls, false);
  assert.ok(haraka.logLines.some((l) => /sts-ok\.test via mx\.sts-ok\.test .*REQUIRETLS: MTA-STS policy 1 \(enforce\) lists/.test(l)));
});

test('RT-2: an MX that does not advertise REQUIRETLS is abandoned before MAIL FROM and the next one is used; the control goes to the first', async () => {
  await submit(haraka, 'user@skip.test');
  assert.equal((await outcome(haraka, 'user@skip.test')).event, 'delivered');
  assert.equal(received('yes', 'user@skip.test')?.requireTls, true, 'delivered by mx2 with the parameter');
  assert.equal(received('no', 'user@skip.test'), undefined, 'mx1 received nothing');
  assert.ok(haraka.logLines.some((l) => /skip\.test: REQUIRETLS: mx1\.skip\.test \[127\.0\.14\.2\] does not advertise REQUIRETLS/.test(l)));
  await submit(haraka, 'control@skip.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'control@skip.test')).event, 'delivered');
  assert.equal(received('no', 'control@skip.test')?.requireTls, false, 'the control went to the preferred MX');
});

test('RT-3: no MX advertises REQUIRETLS: returned at once with 5.7.30; the DSN goes out with REQUIRETLS and the headers only', async () => {
  await submit(haraka, 'user@none.test');
  const bounced = await outcome(haraka, 'user@none.test');
  assert.equal(bounced.event, 'bounce', JSON.stringify(bounced));
  assert.equal(bounced.rcpts?.[0]?.dsn_status, '5.7.30');
  assert.match(String(bounced.err), /REQUIRETLS message for none\.test returned: .*mx\.none\.test .*does not advertise REQUIRETLS/);
  assert.equal(haraka.events().filter((e) => e.event === 'deferred' && e.domain === 'none.test').length, 0, 'not deferred first');
  assert.equal(received('no', 'user@none.test'), undefined);
  // The DSN: to the sender's domain (MTA-STS enforce, a sink advertising REQUIRETLS), with REQUIRETLS, headers only.
  await sink('dsn').waitFor(() => received('dsn', SENDER) !== undefined, 15000);
  const dsn = received('dsn', SENDER);
  assert.equal(dsn?.requireTls, true);
  assert.equal(dsn?.from, '');
  assert.match(dsn?.body ?? '', /Subject: user@none\.test/, "the original's headers");
  assert.doesNotMatch(dsn?.body ?? '', /^hello$/m, "not the original's body");
  assert.equal(sink('dsn').messages.filter((m) => /Subject: user@none\.test/.test(m.body)).length, 1, 'one DSN, not Haraka’s as well');
  // Control: the same domain without the request is delivered to the same MX.
  await submit(haraka, 'control@none.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'control@none.test')).event, 'delivered');
});

test('RT-3: an MX set that is not authenticated (no DNSSEC, no MTA-STS): returned at once with 5.7.10, no connection made', async () => {
  const connectsBefore = sink('yes').events.filter((e) => e.kind === 'ehlo').length;
  await submit(haraka, 'user@unauth.test');
  const bounced = await outcome(haraka, 'user@unauth.test');
  assert.equal(bounced.event, 'bounce');
  assert.equal(bounced.rcpts?.[0]?.dsn_status, '5.7.10');
  assert.match(String(bounced.err), /unauth\.test: MX set not authenticated/);
  assert.equal(sink('yes').events.filter((e) => e.kind === 'ehlo').length, connectsBefore, 'the MX was not even greeted');
  await submit(haraka, 'control@unauth.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'control@unauth.test')).event, 'delivered');
});

test('RT-3: a certificate that does not validate (MTA-STS testing lists the host): returned with 5.7.10; the control is delivered', async () => {
  await submit(haraka, 'user@badcert.test');
  const bounced = await outcome(haraka, 'user@badcert.test');
  assert.equal(bounced.event, 'bounce');
  assert.equal(bounced.rcpts?.[0]?.dsn_status, '5.7.10');
  assert.match(String(bounced.err), /offers TLS_INSECURE .*required TLS_SECURE/);
  await submit(haraka, 'control@badcert.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'control@badcert.test')).event, 'delivered');
});

test('RT-3: a host that cannot be reached defers a REQUIRETLS message as usual (not returned)', async () => {
  await submit(haraka, 'user@down.test');
  const first = await outcome(haraka, 'user@down.test');
  assert.equal(first.event, 'deferred', JSON.stringify(first));
  assert.equal(haraka.events().filter((e) => e.event === 'bounce' && e.domain === 'down.test').length, 0);
});

test('RT-3: an MTA-STS policy that cannot be fetched now is not a policy known to be missing: deferred, not returned', async () => {
  await submit(haraka, 'user@stsfail.test');
  const first = await outcome(haraka, 'user@stsfail.test');
  assert.equal(first.event, 'deferred', JSON.stringify(first));
  assert.ok(
    haraka.logLines.some((l) =>
      /REQUIRETLS message for stsfail\.test: .*MX set authentication unknown for now \(policy fetch failed: .*\); deferred/.test(l),
    ),
  );
  assert.equal(haraka.events().filter((e) => e.event === 'bounce' && e.domain === 'stsfail.test').length, 0);
  // Control: unauth.test (no policy record at all) is returned at once (above).
});

test('RT-2: a policy-table exemption does not lower REQUIRETLS: exempt=mta-sts delivers the control, the request is returned', async () => {
  await submit(haraka, 'control@exempt.test', { requireTls: false });
  assert.equal((await outcome(haraka, 'control@exempt.test')).event, 'delivered');
  await submit(haraka, 'user@exempt.test');
  const bounced = await outcome(haraka, 'user@exempt.test');
  assert.equal(bounced.event, 'bounce');
  assert.equal(bounced.rcpts?.[0]?.dsn_status, '5.7.10');
  assert.equal(received('self', 'user@exempt.test'), undefined);
});

test('RT-5: TLS-Required: No delivers where MTA-STS enforce alone refuses; the level is still raised; the control waits', async () => {
  const since = Date.now();
  await submit(haraka, 'control@sts-bad.test', { requireTls: false });
  assert.equal((await delivery(haraka, 'sts-bad.test', since)).event, 'deferred');
  await submit(haraka, 'user@sts-bad.test', { requireTls: false, headers: ['TLS-Required: No'] });
  assert.equal((await outcome(haraka, 'user@sts-bad.test')).event, 'delivered');
  assert.ok(received('self', 'user@sts-bad.test'));
  assert.ok(haraka.logLines.some((l) => /TLS-Required: No: sts-bad\.test's MTA-STS, DANE and ratchet enforcement waived/.test(l)));
  assert.ok(
    haraka.logLines.some((l) => /sts-bad\.test: ratchet raised to TLS_INSECURE/.test(l)),
    'levels still raised',
  );
});

test("RT-5: TLS-Required: No does not lower the admin's table rule (verify): the message waits", async () => {
  await submit(haraka, 'user@tablemin-self.test', { requireTls: false, headers: ['TLS-Required: No'] });
  const first = await outcome(haraka, 'user@tablemin-self.test');
  assert.equal(first.event, 'deferred');
  assert.match(String(first.err), /policy table rule tablemin-self\.test/);
  assert.equal(received('self', 'user@tablemin-self.test'), undefined);
});

test('RT-6: counters for REQUIRETLS received, connections sent and refused, returns by reason, TLS-Required: No', async () => {
  await outcome(haraka, 'user@none.test');
  await outcome(haraka, 'user@sts-bad.test');
  const text = await (await fetch(`http://${metricsListen}/metrics`)).text();
  const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? 0);
  assert.ok(value(/outbound_tls_requiretls_received_total (\d+)/) >= 5, text);
  assert.ok(value(/outbound_tls_requiretls_connections_total\{result="sent"\} (\d+)/) >= 2);
  assert.ok(value(/outbound_tls_requiretls_connections_total\{result="refused_requiretls"\} (\d+)/) >= 2);
  assert.ok(value(/outbound_tls_requiretls_returned_total\{reason="requiretls"\} (\d+)/) >= 1);
  assert.ok(value(/outbound_tls_requiretls_returned_total\{reason="mx_set"\} (\d+)/) >= 1);
  assert.ok(value(/outbound_tls_tls_required_no_total\{event="received"\} (\d+)/) >= 1);
  assert.ok(value(/outbound_tls_tls_required_no_total\{event="used"\} (\d+)/) >= 1);
});

test('RT-4: a smart-host route carries REQUIRETLS to a relay that advertises it; one that does not returns the message', async () => {
  await submit(relayHaraka, 'user@relayed-yes.test');
  assert.equal((await outcome(relayHaraka, 'user@relayed-yes.test')).event, 'delivered');
  assert.equal(received('relayYes', 'user@relayed-yes.test')?.requireTls, true);
  await submit(relayHaraka, 'user@relayed-no.test');
  const bounced = await outcome(relayHaraka, 'user@relayed-no.test');
  assert.equal(bounced.event, 'bounce');
  assert.equal(bounced.rcpts?.[0]?.dsn_status, '5.7.30');
  // Control: the same route without the request.
  await submit(relayHaraka, 'control@relayed-no.test', { requireTls: false });
  assert.equal((await outcome(relayHaraka, 'control@relayed-no.test')).event, 'delivered');
});

test('RT-4: requiretls=relax lets a REQUIRETLS message go to an internal relay that does not advertise it, logged at each use', async () => {
  await submit(relayHaraka, 'user@relayed-relax.test');
  assert.equal((await outcome(relayHaraka, 'user@relayed-relax.test')).event, 'delivered');
  const got = received('relayRelax', 'user@relayed-relax.test');
  assert.ok(got);
  assert.equal(got.requireTls, false, 'no parameter the relay did not advertise');
  assert.ok(
    relayHaraka.logLines.some((l) =>
      /relay that does not advertise REQUIRETLS, allowed by requiretls=relax of policy table rule relay:relay-relax\.isp\.test/.test(l),
    ),
  );
});
