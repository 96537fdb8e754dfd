/**
 * End-to-end: the ratchet and the policy cache in a real `redis-server`
 * shared by two real Haraka instances (design §5, ST-3, ST-4), the CLI against
 * Redis and the file ↔ Redis migration.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, CLI_PATH, sleep } from '../fixtures/haraka-instance';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

let ca: TestCa;
let dns: TestDnsServer;
let redis: TestRedis;
let sinks: Map<string, SmtpSink>;
let mxPort: number;
const PREFIX = 'e2e:';

const SINKS: Record<string, [string, string, boolean]> = {
  secure: ['127.0.6.1', 'mx.secure.test', true],
  plain: ['127.0.6.2', 'mx.plain.test', false],
};

function sink(name: string): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

function redisConfig(): Record<string, string> {
  return {
    'outbound_tls.ini': ['[main]', 'store=redis', `redis_prefix=${PREFIX}`, 'redis_timeout=500'].join('\n'),
    'redis.ini': ['[server]', 'host=127.0.0.1', `port=${redis.port}`].join('\n'),
  };
}

function startHaraka(): Promise<HarakaInstance> {
  return HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    config: redisConfig(),
  });
}

function mx(domain: string, ...targets: Array<[number, string]>): void {
  dns.set(
    domain,
    targets.map(([preference, exchange]) => ({ type: 'MX' as const, preference, exchange })),
  );
}

async function cli(dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI_PATH, '--config', path.join(dir, 'config'), ...args]);
  return stdout;
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  redis = await TestRedis.start();
  const specs = [];
  for (const [address, host, secure] of Object.values(SINKS)) {
    specs.push({ host: address, tls: secure ? await ca.issue({ dnsNames: [host] }) : ('none' as const), name: host });
    dns.set(host, [{ type: 'A', address }]);
  }
  const started = await startSinksOnCommonPort(specs);
  sinks = new Map(Object.keys(SINKS).map((name, i) => [name, started[i] as SmtpSink]));
  mxPort = started[0]?.port ?? 0;
});

after(async () => {
  for (const s of sinks?.values() ?? []) await s.stop();
  await redis?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('ST-3: two Haraka instances sharing one Redis: a raise learned by one is enforced by the other; the CLI reads it', async () => {
  const first = await startHaraka();
  const second = await startHaraka();
  try {
    mx('shared.test', [10, 'mx.secure.test']);
    await first.send({ to: 'user@shared.test' });
    await first.waitForEvent((e) => e.event === 'delivered' && e.domain === 'shared.test');
    assert.match(await cli(second.dir, 'ratchet', 'show', 'shared.test'), /shared\.test TLS_SECURE \(raised .* by mx\.secure\.test\)/);

    mx('shared.test', [10, 'mx.plain.test']);
    const mailFrom = sink('plain').count('mailfrom');
    await second.send({ to: 'user@shared.test', subject: 'via the other instance' });
    const deferred = await second.waitForEvent((e) => e.event === 'deferred' && e.domain === 'shared.test');
    assert.match(String(deferred.err), /offers PLAIN \(no TLS\), required TLS_SECURE \(ratchet\)/);
    assert.equal(sink('plain').count('mailfrom'), mailFrom);
    // The admin resets through the CLI (Redis store); the other instance delivers on its next try.
    assert.match(await cli(first.dir, 'ratchet', 'reset', 'shared.test'), /shared\.test: reset \(was TLS_SECURE\)/);
    await second.waitForEvent((e) => e.event === 'delivered' && e.domain === 'shared.test');
  } finally {
    await first.stop();
    await second.stop();
  }
});

test('ST-4: Redis killed during a stream of deliveries: nothing below the stored level, everything delivered after Redis returns, nothing bounced or lost', async () => {
  const haraka = await startHaraka();
  try {
    mx('stream.test', [10, 'mx.secure.test']);
    await haraka.send({ to: 'user@stream.test', subject: 'first' });
    await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'stream.test');
    // A plain MX now comes first: only the ratchet (in Redis) keeps mail away from it.
    mx('stream.test', [5, 'mx.plain.test'], [10, 'mx.secure.test']);
    mx('fresh.test', [10, 'mx.plain.test']);
    const plainMailFrom = sink('plain').count('mailfrom');
    const secureBefore = sink('secure').messages.length;

    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 10; i++) sends.push(haraka.send({ to: 'user@stream.test', subject: `before ${i}` }));
    await Promise.all(sends);
    await redis.kill('SIGKILL');
    for (let i = 0; i < 10; i++) await haraka.send({ to: i % 2 ? 'user@stream.test' : 'user@fresh.test', subject: `during ${i}` });
    await haraka.waitForEvent(
      (e) => e.event === 'deferred' && /ratchet state unavailable/.test(String(e.err)),
      15000,
      'a deferral while Redis is down',
    );
    await sleep(1500);
    assert.equal(sink('plain').count('mailfrom'), plainMailFrom, 'nothing sent to the plain MX while Redis is down');

    await redis.restart();
    // 10 before + 5 during for stream.test go to the secure MX; 5 for fresh.test (no level) to the plain MX.
    await sink('secure').waitFor(() => sink('secure').messages.length >= secureBefore + 15, 30000);
    await sink('plain').waitFor(() => sink('plain').messages.filter((m) => m.to.includes('user@fresh.test')).length >= 5, 30000);
    assert.equal(sink('plain').messages.filter((m) => m.to.includes('user@stream.test')).length, 0, 'stream.test never went plain');
    assert.equal(haraka.events().filter((e) => e.event === 'bounce').length, 0, 'nothing bounced');
    await sleep(500);
    assert.equal(haraka.queueFiles().length, 0, 'nothing left in the queue');
  } finally {
    await haraka.stop();
  }
});

test('ST-3: Redis restarted with its data keeps the levels', async () => {
  const store = openRatchetStoreFromUrl(`${redis.url}/?prefix=${PREFIX}`);
  try {
    assert.equal(await store.ready?.(5000), true);
    await store.raise('kept.test', SecLevel.TLS_INSECURE, 'mx.kept.test');
    await redis.restart();
    await store.ready?.(5000);
    let read = await store.get('kept.test').catch(() => null);
    for (let i = 0; i < 40 && !read; i++) {
      await sleep(100);
      read = await store.get('kept.test').catch(() => null);
    }
    assert.equal(read?.kind === 'level' && read.entry.level, SecLevel.TLS_INSECURE);
  } finally {
    await store.close();
  }
});

test('ST-1: migrate copies file-store state into Redis and back', async () => {
  const haraka = await startHaraka();
  try {
    const file = new FileRatchetStore(path.join(haraka.dir, 'data', 'ratchet'));
    await file.raise('migrated.test', SecLevel.TLS_SECURE, 'mx.migrated.test');
    await file.raise('other-migrated.test', SecLevel.TLS_INSECURE);
    assert.match(await cli(haraka.dir, 'migrate', 'file-to-redis'), /file-to-redis: 2 ratchet levels and 0 policies copied/);
    assert.match(await cli(haraka.dir, 'ratchet', 'show', 'migrated.test'), /migrated\.test TLS_SECURE/);
    // The running Haraka (store=redis) enforces the migrated level.
    mx('migrated.test', [10, 'mx.plain.test']);
    const mailFrom = sink('plain').count('mailfrom');
    await haraka.send({ to: 'user@migrated.test' });
    await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'migrated.test');
    assert.equal(sink('plain').count('mailfrom'), mailFrom);
    // And back: a level raised in Redis appears in the file store.
    const viaRedis = openRatchetStoreFromUrl(`${redis.url}/?prefix=${PREFIX}`);
    await viaRedis.ready?.(5000);
    await viaRedis.raise('redis-only.test', SecLevel.TLS_SECURE);
    await viaRedis.close();
    assert.match(await cli(haraka.dir, 'migrate', 'redis-to-file'), /redis-to-file: \d+ ratchet levels/);
    const back = await file.get('redis-only.test');
    assert.equal(back.kind === 'level' && back.entry.level, SecLevel.TLS_SECURE);
  } finally {
    await haraka.stop();
  }
});
