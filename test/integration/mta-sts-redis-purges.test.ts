/**
 * OPS-6 with the Redis policy store: a purge in one process (the CLI) reaches
 * every other process's resolver memory through the purge channel, and while a
 * process is not subscribed it trusts nothing it remembers. Against a real
 * redis-server.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RedisPolicyStore } from '#lib/mta-sts/redis-store';
import { RedisConnection } from '#lib/store/redis-connection';
import { TestRedis } from '../fixtures/redis-server';
import { sleep } from '../fixtures/haraka-instance';

let redis: TestRedis;
const stores: RedisPolicyStore[] = [];

function open(): RedisPolicyStore {
  const quiet = { info: () => undefined, error: () => undefined };
  const connection = new RedisConnection(
    { server: { host: '127.0.0.1', port: String(redis.port) }, opts: {}, plugin: {}, commandTimeoutMs: 1000 },
    quiet,
  );
  const store = new RedisPolicyStore(connection, 'purges-test:');
  stores.push(store);
  return store;
}

before(async () => {
  redis = await TestRedis.start();
});

after(async () => {
  for (const store of stores) await store.close();
  await redis?.stop();
});

test('OPS-6: a purge by another process changes this process’s purge generation; unsubscribed, the generation never repeats', async () => {
  const worker = open();
  const cli = open();
  assert.ok(await worker.ready(5000), 'subscribed');
  const before = worker.purgeGeneration();
  assert.equal(worker.purgeGeneration(), before, 'stable while nothing happens');
  await cli.delete('example.test');
  let after = worker.purgeGeneration();
  for (let i = 0; i < 100 && after === before; i++) {
    await sleep(20);
    after = worker.purgeGeneration();
  }
  assert.notEqual(after, before, 'the purge was heard');
  await redis.kill();
  await sleep(200);
  const first = worker.purgeGeneration();
  assert.notEqual(worker.purgeGeneration(), first, 'not subscribed: memory is never trusted');
  await redis.restart();
  // The client reconnects and resubscribes by itself; then the generation is stable again.
  let stable = false;
  for (let i = 0; i < 200 && !stable; i++) {
    await sleep(50);
    stable = worker.purgeGeneration() === worker.purgeGeneration();
  }
  assert.ok(stable, 'subscribed again after Redis came back');
});
