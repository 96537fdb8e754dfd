/**
 * RedisTlsReportStore (RPT-1, RPT-3, ST-3) against a real redis-server on
 * loopback: the store contract (tlsrpt-store.contract.ts), the key layout and
 * its expiry, and Redis going away while the recorder writes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { TestRedis } from '../fixtures/redis-server';
import { addDays, dayStart, utcDay } from '#lib/tlsrpt/record';
import { TlsReportRecorder } from '#lib/tlsrpt/recorder';
import { openTlsReportStore as openFromSettings } from '#lib/tlsrpt/open';
import { RETENTION_DAYS, type TlsReportStore } from '#lib/tlsrpt/store';
import { tlsReportStoreContract } from '../support/tlsrpt-store.contract';
import { WORKER_POLICY, openTlsReportStore } from '../support/tlsrpt-store.worker';

/** How long a fresh store may take to connect, and to work again after Redis is back. */
const CONNECT_MS = 10_000;
/** Yesterday: a day's keys expire some days after it. */
const DAY = addDays(utcDay(Date.now()), -1);

let redis: TestRedis;
before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  await redis?.stop();
});

async function openFresh(): Promise<{ prefix: string; url: string; store: TlsReportStore }> {
  const prefix = `t${randomBytes(6).toString('hex')}:`;
  const url = `${redis.url}/?prefix=${encodeURIComponent(prefix)}`;
  const store = openTlsReportStore(url);
  assert.equal(await store.ready?.(CONNECT_MS), true, `${store.description} connects`);
  return { prefix, url, store };
}

tlsReportStoreContract('RedisTlsReportStore', async () => {
  const { url, store } = await openFresh();
  return { store, url, cleanup: () => store.close() };
});

test('RPT-1, ST-3: the key layout, every key of a day expiring RETENTION_DAYS after it', async () => {
  const old = await openFresh();
  await old.store.add([{ day: addDays(DAY, -RETENTION_DAYS - 2), policyDomain: 'example.com', policy: WORKER_POLICY, count: 1 }]);
  assert.deepEqual(await old.store.domains(addDays(DAY, -RETENTION_DAYS - 2)), [], 'a day past retention is not kept');
  await old.store.close();
  const { prefix, store } = await openFresh();
  try {
    await store.add([
      { day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 3 },
      { day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, failure: { resultType: 'certificate-expired' }, count: 1 },
    ]);
    await store.startDelivery(DAY, 'example.com', { reportId: 'r', dueAt: 1, attempts: 0, nextAttemptAt: 1, sent: {}, errors: {} });
    const keys = (await redis.cli('--scan', '--pattern', `${prefix}*`)).trim().split('\n').sort();
    const base = `${prefix}tlsrpt:`;
    assert.deepEqual(keys, [
      `${base}${DAY}:domains`,
      `${base}${DAY}:example.com:counts`,
      `${base}${DAY}:example.com:delivery`,
      `${base}${DAY}:example.com:policies`,
      `${base}days`,
    ]);
    const expected = Math.ceil(((dayStart(DAY) as number) + (1 + RETENTION_DAYS) * 86_400_000) / 1000);
    for (const key of keys.filter((k) => !k.endsWith('days'))) {
      assert.equal(Number((await redis.cli('EXPIRETIME', key)).trim()), expected, key);
    }
    const fields = (await redis.cli('HGETALL', `${base}${DAY}:example.com:counts`)).trim().split('\n');
    const hash = Object.fromEntries(fields.flatMap((field, i) => (i % 2 === 0 ? [[field, fields[i + 1]]] : [])));
    assert.deepEqual(hash, { [`s\t${WORKER_POLICY.id}`]: '3', [`f\t${WORKER_POLICY.id}\t["certificate-expired","","","","","",""]`]: '1' });
  } finally {
    await store.close();
  }
});

test('RPT-1, ST-4: while Redis is down the recorder keeps its batch, and writes it once Redis is back', async () => {
  const { store } = await openFresh();
  const errors: string[] = [];
  const recorder = new TlsReportRecorder({ write: (entries) => store.add(entries), onFlushError: (err) => errors.push(err.message) });
  try {
    await redis.kill();
    for (let i = 0; i < 10; i++) recorder.record({ policyDomain: 'example.com', day: DAY, policy: WORKER_POLICY, result: 'success' });
    const started = Date.now();
    await recorder.flush();
    assert.ok(Date.now() - started < 5_000, 'a flush fails fast');
    assert.equal(errors.length, 1);
    assert.equal(recorder.stats().pending, 1, 'the batch is kept');
    await redis.restart();
    const deadline = Date.now() + CONNECT_MS;
    while (recorder.stats().pending > 0 && Date.now() < deadline) {
      await recorder.flush();
      if (recorder.stats().pending > 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal((await store.counts(DAY, 'example.com')).policies[0]?.successes, 10);
  } finally {
    await recorder.close();
    await store.close();
  }
});

test("RPT-1, ST-1: with store=redis the TLS report store is in Redis under the plugins' prefix", async () => {
  const prefix = `t${randomBytes(6).toString('hex')}:`;
  const store = openFromSettings({
    dataDir: '/nonexistent',
    store: { backend: 'redis', prefix, commandTimeoutMs: 2000, plugin: {} },
    redisIni: { server: { host: '127.0.0.1', port: String(redis.port) }, opts: {} },
  });
  try {
    assert.equal(await store.ready?.(CONNECT_MS), true);
    await store.add([{ day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 2 }]);
    assert.equal(Number((await redis.cli('HGET', `${prefix}tlsrpt:${DAY}:example.com:counts`, `s\t${WORKER_POLICY.id}`)).trim()), 2);
  } finally {
    await store.close();
  }
});
