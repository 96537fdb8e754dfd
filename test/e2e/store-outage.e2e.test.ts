/**
 * End-to-end, OPS-7 outages are told once, clearly: a real Haraka with
 * store=redis; Redis stops: one error line naming the Redis store and its
 * address (not one per reconnect attempt), mail deferred (ST-4), the
 * availability metric at 0; Redis starts again: one line saying it is back,
 * the metric at 1, the deferred mail delivered.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, sleep } from '../fixtures/haraka-instance';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

/** How long the log is watched while Redis is down. */
const OUTAGE_WATCH_MS = 6_000;

let ca: TestCa;
let dns: TestDnsServer;
let redis: TestRedis;
let sink: SmtpSink;

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  redis = await TestRedis.start();
  [sink] = (await startSinksOnCommonPort([
    { host: '127.0.9.1', tls: await ca.issue({ dnsNames: ['mx.outage.test'] }), name: 'mx.outage.test' },
  ])) as [SmtpSink];
  dns.set('mx.outage.test', [{ type: 'A', address: '127.0.9.1' }]);
  dns.set('outage.test', [{ type: 'MX', preference: 10, exchange: 'mx.outage.test' }]);
});

after(async () => {
  await sink?.stop();
  await redis?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function storeUp(port: number): Promise<string | undefined> {
  const text = await scrape(port);
  return new RegExp(`^outbound_security_store_up\\{store="redis",address="redis://127\\.0\\.0\\.1:${redis.port}"\\} (\\d)$`, 'm').exec(
    text,
  )?.[1];
}

/** Lines of the server itself (no message context) that speak of this Redis. */
function redisLines(haraka: HarakaInstance, from: number): string[] {
  return haraka.logLines.slice(from).filter((l) => / \[-\] /.test(l) && (l.includes(`127.0.0.1:${redis.port}`) || /ECONNREFUSED/.test(l)));
}

test('OPS-7: Redis stopped and started again: one line naming the Redis store when it goes, one when it is back; deferred meanwhile, delivered after; store_up 0 then 1', async () => {
  const metricsPort = await freePort();
  const haraka = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort: sink.port,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    config: {
      'outbound_tls.ini': [
        '[main]',
        'store=redis',
        'redis_prefix=outage:',
        'redis_timeout=500',
        '[metrics]',
        `listen=127.0.0.1:${metricsPort}`,
      ].join('\n'),
      'redis.ini': ['[server]', 'host=127.0.0.1', `port=${redis.port}`].join('\n'),
    },
  });
  try {
    await haraka.send({ to: 'user@outage.test', subject: 'before' });
    await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'outage.test', 20000, 'delivered before the outage');
    const upBefore = await storeUp(metricsPort);

    const from = haraka.logLines.length;
    await redis.kill('SIGKILL');
    const since = Date.now();
    await haraka.send({ to: 'user@outage.test', subject: 'during' });
    const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'outage.test' && e.at >= since, 20000);
    assert.match(String(deferred.err), /unavailable/);
    await sleep(Math.max(0, OUTAGE_WATCH_MS - (Date.now() - since)));
    const during = redisLines(haraka, from);
    assert.equal(during.length, 1, `one line for the outage, not one per attempt:\n${during.join('\n')}`);
    assert.match(
      during[0] ?? '',
      new RegExp(
        `\\[ERROR\\] .*Redis store redis://127\\.0\\.0\\.1:${redis.port} unavailable: .+; mail that needs stored state is deferred \\(on_store_error=defer\\)`,
      ),
    );
    assert.equal(upBefore, '1', 'outbound_security_store_up 1 before the outage');
    assert.equal(await storeUp(metricsPort), '0', 'outbound_security_store_up 0 during the outage');

    const restartedAt = haraka.logLines.length;
    await redis.restart();
    const back = await haraka.waitForLog(new RegExp(`Redis store redis://127\\.0\\.0\\.1:${redis.port} is back after \\d+`), 45000);
    assert.match(back, /\[INFO\]/);
    await haraka.waitForEvent(
      (e) => e.event === 'delivered' && e.domain === 'outage.test' && e.at >= since,
      30000,
      'the deferred message delivered once Redis is back',
    );
    await sleep(1000);
    const after = redisLines(haraka, restartedAt);
    assert.equal(after.filter((l) => / is back after /.test(l)).length, 1, `one line when it is back:\n${after.join('\n')}`);
    assert.equal(after.filter((l) => /\[ERROR\]/.test(l)).length, 0, `no error once back:\n${after.join('\n')}`);
    assert.equal(await storeUp(metricsPort), '1');
  } finally {
    await haraka.stop();
  }
});
