/**
 * End-to-end: a real Haraka with outbound_tls and outbound_mx, the tests' DNS
 * server, SMTP sinks with certificates from the tests' CA, a STARTTLS
 * stripper. Each test names the rule it proves (design §4, §5).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, CLI_PATH, sleep, type HarakaOptions } from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort, type SinkOptions } from '../fixtures/smtp-sink';
import { StarttlsStripper } from '../fixtures/starttls-stripper';
import { TestCa } from '../fixtures/test-ca';

let ca: TestCa;
let otherCa: TestCa;
let dns: TestDnsServer;
let haraka: HarakaInstance;
let sinks: Map<string, SmtpSink>;
let mxPort: number;
const stoppers: Array<() => Promise<void>> = [];

/** Sink name → address; each sink is the MX `mx.<name>.test`. */
const ADDRESSES: Record<string, string> = {
  secure: '127.0.2.1',
  selfsigned: '127.0.2.2',
  unknownca: '127.0.2.3',
  wrongname: '127.0.2.4',
  expired: '127.0.2.5',
  cnonly: '127.0.2.6',
  plain: '127.0.2.7',
  rsecure: '127.0.2.8',
  rplain: '127.0.2.9',
  rinsecure: '127.0.2.10',
  refuse: '127.0.2.11',
  broken: '127.0.2.12',
  mitm: '127.0.2.13',
  corrupt: '127.0.2.14',
  refusesecure: '127.0.2.15',
  inject: '127.0.2.16',
};
const STRIPPER_ADDRESS = '127.0.2.50';

function sink(name: string): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

function cli(...args: string[]): string {
  return execFileSync(process.execPath, [CLI_PATH, '--config', path.join(haraka.dir, 'config'), ...args], {
    encoding: 'utf8',
  });
}

/** The file ratchet store of an instance (the shared one by default). */
function store(instance: HarakaInstance = haraka): FileRatchetStore {
  return new FileRatchetStore(path.join(instance.dir, 'data', 'ratchet'));
}

/** Runs `body` with an extra Haraka (our DNS, sinks' port, the test CA; outbound_tls + outbound_mx unless said), always stopped. */
async function withHaraka(options: Partial<HarakaOptions>, body: (instance: HarakaInstance) => Promise<void>): Promise<void> {
  const instance = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    ...options,
  });
  try {
    await body(instance);
  } finally {
    await instance.stop();
  }
}

async function storedLevel(domain: string): Promise<string> {
  const read = await store().get(domain);
  return read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
}

function pointMx(domain: string, ...targets: Array<[number, string, string]>): void {
  dns.clear(domain);
  for (const [preference, host, address] of targets) {
    dns.add(domain, { type: 'MX', preference, exchange: host });
    dns.set(host, [{ type: 'A', address }]);
  }
}

before(async () => {
  ca = await TestCa.create();
  otherCa = await TestCa.create();
  const issue = (name: string) => ca.issue({ dnsNames: [`mx.${name}.test`] });
  const specs: Array<[string, SinkOptions['tls'], SinkOptions['starttls']?]> = [
    ['secure', await issue('secure')],
    ['selfsigned', await ca.selfSigned({ dnsNames: ['mx.selfsigned.test'] })],
    ['unknownca', await otherCa.issue({ dnsNames: ['mx.unknownca.test'] })],
    ['wrongname', await ca.issue({ dnsNames: ['mx.elsewhere.test'] })],
    ['expired', await ca.issue({ dnsNames: ['mx.expired.test'], expired: true })],
    ['cnonly', await ca.issue({ cn: 'mx.cnonly.test' })],
    ['plain', 'none'],
    ['rsecure', await issue('rsecure')],
    ['rplain', 'none'],
    ['rinsecure', await ca.selfSigned({ dnsNames: ['mx.rinsecure.test'] })],
    ['refuse', await issue('refuse'), 'refuse'],
    ['broken', await issue('broken'), 'broken'],
    ['mitm', await issue('mitm')],
    ['corrupt', 'none'],
    ['refusesecure', await issue('refusesecure'), 'refuse'],
    ['inject', await issue('inject'), 'inject'],
  ];
  const started = await startSinksOnCommonPort(
    specs.map(([name, tls, starttls]) => ({
      host: ADDRESSES[name] as string,
      tls,
      ...(starttls ? { starttls } : {}),
      name: `mx.${name}.test`,
    })),
  );
  sinks = new Map(specs.map(([name], i) => [name, started[i] as SmtpSink]));
  mxPort = started[0]?.port ?? 0;
  dns = await TestDnsServer.start();
  for (const name of Object.keys(ADDRESSES)) pointMx(`${name}.test`, [10, `mx.${name}.test`, ADDRESSES[name] as string]);
  haraka = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
  });
});

after(async () => {
  await haraka?.stop();
  for (const s of sinks?.values() ?? []) await s.stop();
  for (const stop of stoppers) await stop();
  await dns?.stop();
  await ca?.cleanup();
  await otherCa?.cleanup();
});

test('TLS-1: certificate matrix: valid → TLS_SECURE; self-signed, unknown CA, wrong name, expired, CN-only → TLS_INSECURE; no STARTTLS → PLAIN', async () => {
  const expected: Record<string, string> = {
    secure: 'TLS_SECURE',
    selfsigned: 'TLS_INSECURE',
    unknownca: 'TLS_INSECURE',
    wrongname: 'TLS_INSECURE',
    expired: 'TLS_INSECURE',
    cnonly: 'TLS_INSECURE',
    plain: 'PLAIN',
  };
  for (const name of Object.keys(expected)) await haraka.send({ to: `user@${name}.test` });
  for (const [name, level] of Object.entries(expected)) {
    await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === `${name}.test`, 15000, `delivery to ${name}`);
    assert.equal(sink(name).messages.length, 1, name);
    assert.equal(sink(name).messages[0]?.secure, level !== 'PLAIN', `${name} secure flag`);
    assert.ok(
      haraka.logLines.some((l) => l.includes(`outbound_tls: ${name}.test via mx.${name}.test [${ADDRESSES[name]}]: ${level} (`)),
      `log line for ${name} at ${level}`,
    );
    // TLS-4: the first delivery raises the (absent) ratchet to the level seen; PLAIN stores nothing.
    assert.equal(await storedLevel(`${name}.test`), level === 'PLAIN' ? 'none' : level, `stored level of ${name}`);
  }
  assert.ok(
    haraka.logLines.some((l) => /cnonly\.test.*TLS_INSECURE \(certificate not valid for mx\.cnonly\.test \(subjectAltName: none\)/.test(l)),
  );
  assert.ok(haraka.logLines.some((l) => /expired\.test.*TLS_INSECURE \(certificate not trusted: CERT_HAS_EXPIRED/.test(l)));
});

test('TLS-4: after a TLS_SECURE delivery, PLAIN and TLS_INSECURE MXs never receive MAIL FROM; the CLI reset releases the message', async () => {
  pointMx('ratchet.test', [10, 'mx.rsecure.test', ADDRESSES.rsecure as string]);
  await haraka.send({ to: 'user@ratchet.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'ratchet.test');
  assert.equal(await storedLevel('ratchet.test'), 'TLS_SECURE');

  pointMx('ratchet.test', [10, 'mx.rplain.test', ADDRESSES.rplain as string], [20, 'mx.rinsecure.test', ADDRESSES.rinsecure as string]);
  await haraka.send({ to: 'user@ratchet.test', subject: 'second' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'ratchet.test');
  assert.match(String(deferred.err), /ratchet\.test: mx\.rplain\.test \[127\.0\.2\.9\] offers PLAIN \(no TLS\), required TLS_SECURE/);
  assert.match(String(deferred.err), /ratchet\.test: mx\.rinsecure\.test \[127\.0\.2\.10\] offers TLS_INSECURE .*required TLS_SECURE/);
  await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'ratchet.test' && (e.attempts ?? 0) >= 2);
  assert.ok(sink('rplain').count('connect') >= 2, 'the plain MX was tried');
  assert.ok(sink('rinsecure').count('connect') >= 2, 'the insecure MX was tried');
  assert.equal(sink('rplain').count('mailfrom'), 0);
  assert.equal(sink('rinsecure').count('mailfrom'), 0);
  assert.ok(haraka.queueFiles().length >= 1, 'the message stays queued');
  assert.equal(await storedLevel('ratchet.test'), 'TLS_SECURE', 'never lowered by delivery');

  assert.match(cli('ratchet', 'show', 'ratchet.test'), /ratchet\.test TLS_SECURE/);
  assert.match(cli('ratchet', 'reset', 'ratchet.test'), /ratchet\.test: reset \(was TLS_SECURE\)/);
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'ratchet.test' && e.ip === ADDRESSES.rplain);
  assert.equal(sink('rplain').messages.length, 1);
});

test('TLS-2: a STARTTLS-stripping man in the middle in front of a TLS_SECURE domain gets no MAIL FROM', async () => {
  await haraka.send({ to: 'user@mitm.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'mitm.test');
  assert.equal(await storedLevel('mitm.test'), 'TLS_SECURE');
  const stripper = await StarttlsStripper.start({
    host: STRIPPER_ADDRESS,
    port: mxPort,
    upstreamHost: ADDRESSES.mitm as string,
    upstreamPort: mxPort,
  });
  stoppers.push(() => stripper.stop());
  dns.set('mx.mitm.test', [{ type: 'A', address: STRIPPER_ADDRESS }]);
  const mailFromBefore = sink('mitm').count('mailfrom');
  await haraka.send({ to: 'user@mitm.test', subject: 'attacked' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'mitm.test');
  assert.match(String(deferred.err), /offers PLAIN \(no TLS\), required TLS_SECURE/);
  await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'mitm.test' && (e.attempts ?? 0) >= 2);
  assert.ok(stripper.connections >= 2);
  assert.ok(stripper.stripped >= 2, 'the stripper removed STARTTLS');
  assert.equal(sink('mitm').count('mailfrom'), mailFromBefore, 'the sink behind the stripper never gets MAIL FROM');
  assert.ok(haraka.queueFiles().length >= 1);
});

test('TLS-3: STARTTLS refused → exactly one more connection to the same MX, plain, delivered when the ratchet allows', async () => {
  await haraka.send({ to: 'user@refuse.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'refuse.test');
  const s = sink('refuse');
  assert.equal(s.count('connect'), 2);
  assert.equal(s.count('starttls'), 1);
  assert.equal(s.messages.length, 1);
  assert.equal(s.messages[0]?.secure, false);
  assert.ok(haraka.logLines.some((l) => /refuse\.test.*refused STARTTLS.*retrying this MX once without STARTTLS \(TLS-3\)/.test(l)));
});

test('TLS-3: broken TLS handshake → exactly one more connection, plain, delivered', async () => {
  await haraka.send({ to: 'user@broken.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'broken.test');
  const s = sink('broken');
  assert.equal(s.count('connect'), 2);
  assert.equal(s.count('starttls'), 1);
  assert.equal(s.messages[0]?.secure, false);
  assert.ok(haraka.logLines.some((l) => /TLS handshake failed .*retrying this MX once without STARTTLS/.test(l)));
});

test('TLS-3: plaintext injected after the STARTTLS 220 is never taken as a reply: one plain retry, delivered, no bounce', async () => {
  await haraka.send({ to: 'user@inject.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'inject.test');
  const s = sink('inject');
  assert.equal(s.count('connect'), 2);
  assert.equal(s.count('starttls'), 1);
  assert.equal(s.messages[0]?.secure, false);
  assert.equal(haraka.events().filter((e) => e.event === 'bounce' && e.domain === 'inject.test').length, 0);
  assert.ok(haraka.logLines.some((l) => /inject\.test.*plaintext after the STARTTLS reply/.test(l)));
});

test('TLS-3: STARTTLS refused for a domain whose ratchet is TLS_SECURE → two connections per attempt, deferred, no MAIL FROM', async () => {
  await store().raise('refusesecure.test', SecLevel.TLS_SECURE, 'mx.refusesecure.test');
  await haraka.send({ to: 'user@refusesecure.test' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'refusesecure.test');
  assert.match(String(deferred.err), /refused STARTTLS/);
  assert.match(String(deferred.err), /offers PLAIN \(no TLS\), required TLS_SECURE/);
  const s = sink('refusesecure');
  // The first attempt (retries follow every second): the STARTTLS connection and the plain one.
  assert.equal(s.events.filter((e) => e.kind === 'connect' && e.at <= deferred.at).length, 2);
  assert.equal(s.count('mailfrom'), 0);
  assert.ok(haraka.queueFiles().length >= 1);
});

test('ST-4: a corrupt store entry is reported, the delivery deferred, Haraka keeps running', async () => {
  const dir = path.join(haraka.dir, 'data', 'ratchet', 'corrupt.test');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'TLS_SECURE'), '{not json');
  await haraka.send({ to: 'user@corrupt.test' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'corrupt.test');
  assert.match(String(deferred.err), /ratchet state unavailable/);
  assert.ok(haraka.logLines.some((l) => /ratchet store problem for corrupt\.test/.test(l)));
  assert.equal(sink('corrupt').count('mailfrom'), 0);
  assert.ok(haraka.running);
  // The operator repairs it; delivery resumes by itself.
  cli('ratchet', 'reset', 'corrupt.test');
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'corrupt.test');
});

test('TLS-6: with the guard missing (changed Haraka internals) the plugin fails closed', async () => {
  await withHaraka({ plugins: ['haraka-breaker', 'outbound_tls', 'outbound_mx'] }, async (local) => {
    await local.waitForLog(/cannot guard outbound connections: HMailItem\.try_deliver_host_on_socket takes \d+ arguments, expected 4/);
    const ratchet = store(local);
    await ratchet.raise('secure.test', SecLevel.TLS_SECURE);
    const before = sink('secure').count('connect');
    await local.send({ to: 'user@secure.test' });
    const deferred = await local.waitForEvent((e) => e.event === 'deferred' && e.domain === 'secure.test');
    assert.match(String(deferred.err), /Temporary MX lookup error/);
    assert.ok(local.logLines.some((l) => /outbound_tls cannot guard connections .*secure\.test requires TLS_SECURE/.test(l)));
    assert.equal(sink('secure').count('connect'), before, 'nothing connected');
    // A domain without a requirement is delivered as usual.
    await local.send({ to: 'user@plain.test' });
    await local.waitForEvent((e) => e.event === 'delivered' && e.domain === 'plain.test');
  });
});

test("TLS-6: Haraka's disable_for_failed_hosts (plaintext after a TLS failure) is warned about at startup", async () => {
  await withHaraka({ config: { 'tls.ini': '[redis]\ndisable_for_failed_hosts=true\n' } }, async (local) => {
    await local.waitForLog(/disable_for_failed_hosts=true makes Haraka send in plaintext/);
  });
});

test("TLS-5: when another plugin chose the route (smart host), the recipient domain's ratchet still applies", async () => {
  const routes = path.join(haraka.dir, 'static-routes.json');
  fs.writeFileSync(
    routes,
    JSON.stringify({
      'routed.test': { exchange: ADDRESSES.rplain, port: mxPort, host: 'relay.routed.test' },
      'open.test': { exchange: ADDRESSES.rplain, port: mxPort, host: 'relay.routed.test' },
    }),
  );
  await withHaraka({ plugins: ['outbound_tls', 'haraka-static-route'], env: { HARAKA_STATIC_ROUTES: routes } }, async (local) => {
    await store(local).raise('routed.test', SecLevel.TLS_SECURE);
    const mailFrom = sink('rplain').count('mailfrom');
    await local.send({ to: 'user@routed.test' });
    const deferred = await local.waitForEvent((e) => e.event === 'deferred' && e.domain === 'routed.test');
    assert.match(
      String(deferred.err),
      /routed\.test: relay\.routed\.test \[127\.0\.2\.9\] offers PLAIN \(no TLS\), required TLS_SECURE \(ratchet\)/,
    );
    assert.equal(sink('rplain').count('mailfrom'), mailFrom);
    // A domain without a level goes through the same relay.
    await local.send({ to: 'user@open.test' });
    await local.waitForEvent((e) => e.event === 'delivered' && e.domain === 'open.test');
  });
});

test('TLS-2/TLS-8: smart-host credentials are never sent below the requirement nor to a PLAIN relay; the relay has its own ratchet key', async () => {
  const relay = await SmtpSink.start({ host: '127.0.2.60', port: mxPort, tls: 'none', auth: true, name: 'relay.auth.test' });
  stoppers.push(() => relay.stop());
  const routes = path.join(haraka.dir, 'auth-routes.json');
  const route = {
    exchange: '127.0.2.60',
    port: mxPort,
    host: 'relay.auth.test',
    auth_user: 'smarthost-user',
    auth_pass: 'secret-password',
  };
  fs.writeFileSync(routes, JSON.stringify({ 'authlevel.test': route, 'authopen.test': route }));
  await withHaraka({ plugins: ['outbound_tls', 'haraka-static-route'], env: { HARAKA_STATIC_ROUTES: routes } }, async (local) => {
    await store(local).raise('authlevel.test', SecLevel.TLS_SECURE);
    await local.send({ to: 'user@authlevel.test' });
    const deferred = await local.waitForEvent((e) => e.event === 'deferred' && e.domain === 'authlevel.test');
    assert.match(String(deferred.err), /offers PLAIN \(no TLS\), required TLS_SECURE/);
    assert.ok(relay.count('connect') >= 1);
    assert.equal(relay.count('auth'), 0, 'no AUTH (no credentials) below the requirement');
    assert.equal(relay.count('mailfrom'), 0);
    // A domain without a level: the relay is PLAIN, below auth_min_level (TLS_SECURE by default): still no AUTH.
    await local.send({ to: 'user@authopen.test' });
    const held = await local.waitForEvent((e) => e.event === 'deferred' && e.domain === 'authopen.test');
    assert.match(String(held.err), /credentials require TLS_SECURE \(auth_min_level\)/);
    assert.equal(relay.count('auth'), 0);
    assert.equal(relay.count('mailfrom'), 0);
    const relayLevel = await store(local).get('relay:relay.auth.test');
    assert.equal(relayLevel.kind, 'none', 'a PLAIN relay raises nothing');
  });
});

test('ST-2: Haraka in cluster mode (nodes=2): a raise by one worker is enforced by the other; metrics are summed over workers', async () => {
  await withHaraka({ nodes: 2, config: { 'outbound_tls.ini': '[metrics]\nlisten=127.0.0.1:0\n' } }, async (cluster) => {
    pointMx('cluster.test', [10, 'mx.rsecure.test', ADDRESSES.rsecure as string]);
    await cluster.send({ to: 'user@cluster.test' });
    const first = await cluster.waitForEvent((e) => e.event === 'delivered' && e.domain === 'cluster.test');
    pointMx('cluster.test', [10, 'mx.rplain.test', ADDRESSES.rplain as string]);
    const plainMailFrom = sink('rplain').count('mailfrom');
    const pids = new Set<number>();
    for (let i = 0; i < 12 && ![...pids].some((p) => p !== first.pid); i++) {
      await cluster.send({ to: 'user@cluster.test', subject: `after raise ${i}` });
      await sleep(200);
      for (const e of cluster.events()) if (e.event === 'deferred' && e.domain === 'cluster.test') pids.add(e.pid);
    }
    await cluster.waitForEvent(
      (e) => e.event === 'deferred' && e.domain === 'cluster.test' && e.pid !== first.pid,
      15000,
      'a deferral by the other worker',
    );
    assert.equal(sink('rplain').count('mailfrom'), plainMailFrom, 'no worker sent below the raised level');

    const line = await cluster.waitForLog(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const url = /http:\/\/127\.0\.0\.1:\d+\/metrics/.exec(line)?.[0] as string;
    // Every deferral so far is one refused PLAIN connection, made by either worker.
    const deferrals = cluster.events().filter((e) => e.event === 'deferred' && e.domain === 'cluster.test').length;
    const text = await (await fetch(url)).text();
    const secure = Number(/outbound_tls_connections_total\{level="TLS_SECURE"\} (\d+)/.exec(text)?.[1]);
    const plain = Number(/outbound_tls_connections_total\{level="PLAIN"\} (\d+)/.exec(text)?.[1]);
    const fails = Number(/outbound_tls_ratchet_checks_total\{result="fail"\} (\d+)/.exec(text)?.[1]);
    assert.ok(secure >= 1, `TLS_SECURE connections counted: ${secure}`);
    assert.ok(plain >= deferrals, `PLAIN connections counted across workers: ${plain}, deferrals seen: ${deferrals}`);
    assert.ok(fails >= deferrals, `ratchet failures counted across workers: ${fails}, deferrals seen: ${deferrals}`);
  });
});
