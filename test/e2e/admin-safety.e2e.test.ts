/**
 * An admin's mistake never weakens protection silently (design §4 TLS-9,
 * §10 POL-5), end to end through real Haraka instances: the tests' DNS server
 * points `secure.test` at an MX with a self-signed certificate while the
 * domain's stored level is TLS_SECURE, and `open.test` (nothing stored) at a
 * plain MX. Each mistake is made in a fresh instance; each case sits beside
 * the control that still flows.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CLI_PATH,
  HarakaInstance,
  describeOutcome,
  firstOutcome,
  freePort,
  type HarakaOptions,
  type RecordedEvent,
} from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const SELF = { address: '127.0.15.1', host: 'mx.secure.test' };
const OPEN = { address: '127.0.15.2', host: 'mx.open.test' };

let ca: TestCa;
let dns: TestDnsServer;
let selfSink: SmtpSink;
let openSink: SmtpSink;

function pointMx(domain: string, target: { address: string; host: string }): void {
  dns.set(domain, [{ type: 'MX', preference: 10, exchange: target.host }]);
  dns.set(target.host, [{ type: 'A', address: target.address }]);
}

function options(extra: Partial<HarakaOptions>): HarakaOptions {
  return { dnsServer: dns.address, mxPort: selfSink.port, extraCa: ca.caCertPath, ...extra };
}

async function withHaraka(o: HarakaOptions, body: (instance: HarakaInstance) => Promise<void>): Promise<void> {
  const instance = await HarakaInstance.start(o);
  try {
    await body(instance);
  } finally {
    await instance.stop();
  }
}

const cliRun = promisify(execFile);

/** `haraka-outbound check` on an instance, with the Haraka directory as --config: status and output. */
async function check(instance: HarakaInstance): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await cliRun(process.execPath, [CLI_PATH, '--config', instance.dir, 'check'], { timeout: 30000 });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Stores `domain` at `level` in the instance's file ratchet store (as an earlier delivery would have). */
async function storeLevel(instance: HarakaInstance, domain: string, level: SecLevel): Promise<void> {
  const store = new FileRatchetStore(path.join(instance.dir, 'data', 'ratchet'));
  await store.raise(domain, level, SELF.host);
  await store.close();
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  [selfSink, openSink] = (await startSinksOnCommonPort([
    { host: SELF.address, tls: await ca.selfSigned({ dnsNames: [SELF.host] }), name: SELF.host },
    { host: OPEN.address, tls: 'none', name: OPEN.host },
  ])) as [SmtpSink, SmtpSink];
  pointMx('secure.test', SELF);
  pointMx('open.test', OPEN);
});

after(async () => {
  for (const s of [selfSink, openSink]) await s?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

/** The mistake's instance: secure.test (stored TLS_SECURE, self-signed MX) waits, open.test (nothing stored) flows. */
async function assertFailsClosed(instance: HarakaInstance, reason: RegExp): Promise<void> {
  await storeLevel(instance, 'secure.test', SecLevel.TLS_SECURE);
  const since = Date.now();
  const mailFromBefore = selfSink.count('mailfrom');
  await instance.send({ to: 'user@secure.test' });
  const outcome = await firstOutcome(instance, 'secure.test', since);
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  // Haraka records a get_mx deferral as "Temporary MX lookup error"; the reason is in the log.
  const logged = await instance.waitForLog(/outbound connections are not guarded \(.*secure\.test requires TLS_SECURE/);
  assert.match(logged, reason);
  assert.equal(selfSink.count('mailfrom'), mailFromBefore, 'nothing reached the self-signed MX');

  await instance.send({ to: 'user@open.test' });
  const control = await firstOutcome(instance, 'open.test', since);
  assert.equal(control.event, 'delivered', `control: ${describeOutcome(control)}`);
}

test('TLS-9: outbound_tls left out of config/plugins: mail to a domain stored at TLS_SECURE waits (no delivery over a self-signed certificate), said at startup with the fix; a domain with nothing stored flows', async () => {
  await withHaraka(options({ plugins: ['outbound_mx'] }), async (instance) => {
    const startup = await instance.waitForLog(/outbound connections are not guarded/);
    assert.match(
      startup,
      /outbound_tls is not listed in config\/plugins \(list outbound_tls in config\/plugins, on a line above outbound_mx\)/,
    );
    assert.equal(instance.logLines.filter((l) => /outbound connections are not guarded: /.test(l)).length, 1, 'said once');
    await assertFailsClosed(instance, /not guarded \(outbound_tls is not listed in config\/plugins/);
    const health = await check(instance);
    assert.equal(health.code, 8, health.out);
    assert.match(health.out, /^FAIL plugins: outbound_tls is not listed in config\/plugins: mail with a requirement is deferred/m);
  });
});

test('TLS-9: outbound_tls listed after outbound_mx: the same, with the fix named', async () => {
  await withHaraka(options({ plugins: ['outbound_mx', 'outbound_tls'] }), async (instance) => {
    await instance.waitForLog(/outbound_tls is listed after outbound_mx/);
    await assertFailsClosed(instance, /outbound_tls is listed after outbound_mx in config\/plugins/);
  });
});

/**
 * secure.test stored at TLS_SECURE, its only MX self-signed: the guard refuses it and the message
 * waits with the ratchet's reason (the guard works). The outcome, and when the message was sent.
 */
async function refusedBelowStoredLevel(instance: HarakaInstance): Promise<{ since: number; outcome: RecordedEvent }> {
  await storeLevel(instance, 'secure.test', SecLevel.TLS_SECURE);
  const since = Date.now();
  await instance.send({ to: 'user@secure.test' });
  const outcome = await firstOutcome(instance, 'secure.test', since);
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.match(String(outcome.err), /required TLS_SECURE/);
  return { since, outcome };
}

test('TLS-9: control: with outbound_tls listed first, the self-signed MX is refused by the guard and the plain one used', async () => {
  await withHaraka(options({ plugins: ['outbound_tls', 'outbound_mx'] }), async (instance) => {
    const { since, outcome } = await refusedBelowStoredLevel(instance);
    assert.doesNotMatch(String(outcome.err), /not guarded/);
    assert.ok(!instance.logLines.some((l) => /outbound connections are not guarded/.test(l)));
    await instance.send({ to: 'user@open.test' });
    assert.equal((await firstOutcome(instance, 'open.test', since)).event, 'delivered');
    const health = await check(instance);
    assert.equal(health.code, 0, health.out);
    assert.match(health.out, /^ok {3}plugins: outbound_tls, then outbound_mx$/m);
    assert.match(health.out, /^ok {3}guard: installed \(Haraka pid \d+/m);
    assert.match(health.out, /^ok {3}ratchet store: .* readable$/m);
    assert.match(health.out, /^warn DANE: /m);
    assert.match(health.out, /^ok {3}TLS reporting: off/m);
  });
});

test('TLS-9: settings that lower protection below the defaults are WARN lines and a gauge; the defaults are 0', async () => {
  const listen = `127.0.0.1:${await freePort()}`;
  const ini = `[main]\non_store_error=send\nsmart_host_ratchet=false\n[metrics]\nlisten=${listen}\n`;
  await withHaraka(options({ plugins: ['outbound_tls', 'outbound_mx'], config: { 'outbound_tls.ini': ini } }), async (instance) => {
    await instance.waitForLog(/metrics on http:/);
    assert.ok(instance.logLines.some((l) => /\[WARN\].*outbound_tls\.ini: on_store_error=send: /.test(l)));
    assert.ok(instance.logLines.some((l) => /\[WARN\].*outbound_tls\.ini: smart_host_ratchet=false: /.test(l)));
    const text = await (await fetch(`http://${listen}/metrics`)).text();
    assert.match(text, /^outbound_tls_weakening_setting\{setting="on_store_error"\} 1$/m);
    assert.match(text, /^outbound_tls_weakening_setting\{setting="smart_host_ratchet"\} 1$/m);
    assert.match(text, /^outbound_tls_weakening_setting\{setting="auth_min_level"\} 0$/m, 'control: the default');
  });
});

test('TLS-9: the metric says the guard is missing', async () => {
  const listen = `127.0.0.1:${await freePort()}`;
  await withHaraka(
    options({ plugins: ['outbound_mx'], config: { 'outbound_tls.ini': `[metrics]\nlisten=${listen}\n` } }),
    async (instance) => {
      await instance.waitForLog(/metrics on http:/);
      const text = await (await fetch(`http://${listen}/metrics`)).text();
      assert.match(text, /^outbound_tls_guard_installed 0$/m);
    },
  );
});

test('POL-5: a tightening rule with a typo (secure.test verfy) makes secure.test wait with the file and line, where it was dropped and the mail sent over a self-signed certificate; the rest of the table applies', async () => {
  const table = ['open.test may', 'secure.test verfy'].join('\n');
  await withHaraka(options({ plugins: ['outbound_tls', 'outbound_mx'], config: { outbound_tls_policy: table } }), async (instance) => {
    const since = Date.now();
    const mailFromBefore = selfSink.count('mailfrom');
    await instance.send({ to: 'user@secure.test' });
    const outcome = await firstOutcome(instance, 'secure.test', since);
    assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
    await instance.waitForLog(
      /policy table config\/outbound_tls_policy line 2 cannot be read \(secure\.test: expected a level .*"verfy"\): mail to secure\.test waits until the line is fixed \(POL-5\)/,
    );
    assert.equal(selfSink.count('mailfrom'), mailFromBefore, 'nothing reached the self-signed MX');
    await instance.send({ to: 'user@open.test' });
    assert.equal((await firstOutcome(instance, 'open.test', since)).event, 'delivered', 'the rest of the table applies');
    const health = await check(instance);
    assert.equal(health.code, 8, health.out);
    assert.match(
      health.out,
      /^FAIL policy table: line 2: secure\.test: expected a level .*: mail to secure\.test waits until it is fixed$/m,
    );
  });
});

test('POL-5: a parent rule on a public suffix (.test may exempt=ratchet) is refused with an error: it exempts nobody, the stored level holds', async () => {
  const table = '.test may exempt=ratchet,mta-sts,dane\n';
  await withHaraka(options({ plugins: ['outbound_tls', 'outbound_mx'], config: { outbound_tls_policy: table } }), async (instance) => {
    await instance.waitForLog(/config\/outbound_tls_policy line 1: \.test: test is a public suffix/);
    await refusedBelowStoredLevel(instance);
    assert.ok(!instance.logLines.some((l) => /passed only by exempt=ratchet/.test(l)), 'no exemption used');
  });
});

test('OPS-7: a DNS resolver that stops answering is told once, naming it, while mail waits; once when it answers again, and the mail goes', async () => {
  const own = await TestDnsServer.start();
  const port = own.port;
  await own.stop();
  const domains = ['dns1.test', 'dns2.test', 'dns3.test', 'dns4.test'];
  let restarted: TestDnsServer | undefined;
  try {
    await withHaraka({ ...options({ plugins: ['outbound_tls', 'outbound_mx'] }), dnsServer: own.address }, async (instance) => {
      const since = Date.now();
      for (const domain of domains) await instance.send({ to: `user@${domain}` });
      for (const domain of domains) assert.equal((await firstOutcome(instance, domain, since)).event, 'deferred');
      // Retried every second: lookups go on failing for a while.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      const down = instance.logLines.filter((l) => /DNS resolver 127\.0\.0\.1:\d+ unavailable: /.test(l));
      assert.equal(down.length, 1, down.join('\n'));
      assert.match(
        down[0] ?? '',
        new RegExp(`DNS resolver 127\\.0\\.0\\.1:${port} unavailable: .*mail is deferred until a resolver answers`),
      );

      restarted = await TestDnsServer.start({ port });
      for (const domain of domains) pointMxOn(restarted, domain, OPEN);
      await instance.waitForLog(new RegExp(`DNS resolver 127\\.0\\.0\\.1:${port} is back after`), 20000);
      for (const domain of domains) {
        await instance.waitForEvent((e) => e.domain === domain && e.event === 'delivered', 20000, `${domain} delivered`);
      }
      assert.equal(instance.logLines.filter((l) => /DNS resolver .* unavailable: /.test(l)).length, 1);
    });
  } finally {
    await restarted?.stop();
  }
});

function pointMxOn(server: TestDnsServer, domain: string, target: { address: string; host: string }): void {
  server.set(domain, [{ type: 'MX', preference: 10, exchange: target.host }]);
  server.set(target.host, [{ type: 'A', address: target.address }]);
}
