/**
 * End-to-end, ST-7 a store switch never lowers a level: a real Haraka learns
 * TLS_SECURE for a domain in the file store; `store=redis` is then set in
 * outbound_tls.ini while it runs (a reload), and later `store=file` with
 * another data_dir while it is stopped (a restart). After each switch a
 * self-signed MX for that domain is refused (deferred, nothing sent) while a
 * control domain with no level still delivers to the same MX.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance } from '../fixtures/haraka-instance';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const PREFIX = 'switch:';

let ca: TestCa;
let dns: TestDnsServer;
let redis: TestRedis;
let secure: SmtpSink;
let selfSigned: SmtpSink;
let mxPort: number;

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  redis = await TestRedis.start();
  [secure, selfSigned] = (await startSinksOnCommonPort([
    { host: '127.0.8.1', tls: await ca.issue({ dnsNames: ['mx.secure.test'] }), name: 'mx.secure.test' },
    { host: '127.0.8.2', tls: await ca.selfSigned({ dnsNames: ['mx.self.test'] }), name: 'mx.self.test' },
  ])) as [SmtpSink, SmtpSink];
  mxPort = secure.port;
  dns.set('mx.secure.test', [{ type: 'A', address: '127.0.8.1' }]);
  dns.set('mx.self.test', [{ type: 'A', address: '127.0.8.2' }]);
});

after(async () => {
  await secure?.stop();
  await selfSigned?.stop();
  await redis?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

function pointMx(domain: string, host: string): void {
  dns.set(domain, [{ type: 'MX', preference: 10, exchange: host }]);
}

const REDIS_INI = ['[main]', 'store=redis', `redis_prefix=${PREFIX}`, 'redis_timeout=500'];

function start(dir?: string, tlsIni: string[] = ['[main]']): Promise<HarakaInstance> {
  return HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    ...(dir ? { dir } : {}),
    config: { 'outbound_tls.ini': tlsIni.join('\n'), 'redis.ini': ['[server]', 'host=127.0.0.1', `port=${redis.port}`].join('\n') },
  });
}

async function reloadTlsIni(haraka: HarakaInstance, lines: string[]): Promise<void> {
  const reloaded = (): number => haraka.logLines.filter((l) => /outbound_tls\.ini.* reloaded/.test(l)).length;
  const before = reloaded();
  fs.writeFileSync(path.join(haraka.dir, 'config', 'outbound_tls.ini'), `${lines.join('\n')}\n`);
  const deadline = Date.now() + 20000;
  while (reloaded() <= before) {
    if (Date.now() > deadline) throw new Error(`no reload of outbound_tls.ini:\n${haraka.logLines.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends to held.test (stored TLS_SECURE) and control.test (no level), both at the self-signed MX. */
async function expectHeldAndControlDelivered(haraka: HarakaInstance, round: string): Promise<void> {
  const mailFrom = selfSigned.count('mailfrom');
  const since = Date.now();
  await haraka.send({ to: 'user@held.test', subject: `held ${round}` });
  const deferred = await haraka.waitForEvent(
    (e) => e.event === 'deferred' && e.domain === 'held.test' && e.at >= since,
    20000,
    `held.test deferred (${round})`,
  );
  assert.match(String(deferred.err), /required TLS_SECURE/, String(deferred.err));
  assert.equal(selfSigned.count('mailfrom'), mailFrom, `nothing sent to the self-signed MX for held.test (${round})`);
  await haraka.send({ to: 'user@control.test', subject: `control ${round}` });
  await haraka.waitForEvent(
    (e) => e.event === 'delivered' && e.domain === 'control.test' && e.at >= since,
    20000,
    `control.test delivered (${round})`,
  );
  assert.ok(!selfSigned.messages.some((m) => m.to.includes('user@held.test')), 'held.test never reached the self-signed MX');
}

test('ST-7: store=file switched to store=redis while Haraka runs, then to another data_dir while it is stopped: a TLS_SECURE domain is still refused a self-signed MX; a control domain delivers', async () => {
  let haraka = await start();
  const dir = haraka.dir;
  try {
    // Learned in the file store.
    pointMx('held.test', 'mx.secure.test');
    pointMx('control.test', 'mx.self.test');
    await haraka.send({ to: 'user@held.test', subject: 'learn' });
    await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'held.test', 20000, 'held.test learned');
    pointMx('held.test', 'mx.self.test');

    // Reload: store=redis.
    await reloadTlsIni(haraka, REDIS_INI);
    await expectHeldAndControlDelivered(haraka, 'after the reload');
    const carried = await haraka.waitForLog(
      /store switch \(ST-7\): carried from file:.* to redis:\/\/127\.0\.0\.1:\d+ \(prefix switch:\)/,
      20000,
    );
    assert.match(carried, /: 1 ratchet levels \(1 raised there/, carried);

    // Restart: store=file, another data_dir.
    await haraka.stop({ keepDir: true });
    haraka = await start(dir, ['[main]', 'data_dir=data-new', 'store=file']);
    await expectHeldAndControlDelivered(haraka, 'after the restart');
    await haraka.waitForLog(
      /store switch \(ST-7\): carried from redis:\/\/127\.0\.0\.1:\d+ \(prefix switch:\) to file:.*data-new: \d+ ratchet levels/,
      20000,
    );
  } finally {
    await haraka.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
