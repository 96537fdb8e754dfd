/**
 * RedisRatchetStore (ST-3) against a real redis-server on loopback: the store
 * contract (ratchet-store.contract.ts) plus what only Redis can do wrong: the
 * server-side atomic raise, foreign or corrupt keys, and Redis going away.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { REDIS_CLI, TestRedis } from '../fixtures/redis-server';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import { assertUnreadable, levelOf, ratchetStoreContract, startWorker, type Worker } from '../support/ratchet-store.contract';
import type { RatchetRead, RatchetStore } from '#lib/ratchet/store';
import { SecLevel, levelName } from '#lib/sec-level';

/** ST-4: how long a store may take to fail while Redis is down (the store's command deadline is 1 s by default). */
const FAIL_FAST_MS = 3_000;
/** How long a store may take to work again after Redis is back. */
const RECOVERY_MS = 10_000;
/** How long a fresh store may take to connect. */
const CONNECT_MS = 5_000;

let redis: TestRedis;
before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  await redis?.stop();
});

interface FreshStore {
  prefix: string;
  url: string;
  store: RatchetStore;
}

/** A store on the shared server under a fresh random key prefix (or the given one), connected. */
async function openFresh(prefix = `t${randomBytes(6).toString('hex')}:`): Promise<FreshStore> {
  const url = `${redis.url}/?prefix=${encodeURIComponent(prefix)}`;
  const store = openRatchetStoreFromUrl(url);
  if (store.ready) assert.equal(await store.ready(CONNECT_MS), true, `${store.description} connects within ${CONNECT_MS} ms`);
  return { prefix, url, store };
}

/** Commands that are not a read or write of ratchet entries: connection set-up, pub/sub, and our own INFO. */
const NOT_ENTRY_COMMANDS = /^(info|ping|hello|client\|.*|select|auth|subscribe|unsubscribe|publish|quit|command\|.*)$/;

/** OPS-6: commands on entries the server has run so far (INFO commandstats), for every client. */
async function entryCommands(): Promise<number> {
  const stats = await redis.cli('INFO', 'commandstats');
  let calls = 0;
  for (const match of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!NOT_ENTRY_COMMANDS.test(match[1] as string)) calls += Number(match[2]);
  }
  return calls;
}

ratchetStoreContract('RedisRatchetStore', async () => {
  const { url, store } = await openFresh();
  return { url, store, cleanup: () => store.close(), backendReads: entryCommands, changesSeen: 'on-message' };
});

type Outcome<T> =
  { kind: 'resolved'; value: T; ms: number } | { kind: 'rejected'; error: Error; ms: number } | { kind: 'pending'; ms: number };

/** How `promise` settles within `limitMs`, and how long it took. */
async function settle<T>(promise: Promise<T>, limitMs: number): Promise<Outcome<T>> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), limitMs);
  });
  try {
    const outcome = await Promise.race([
      promise.then(
        (value) => ({ kind: 'resolved' as const, value }),
        (error: unknown) => ({ kind: 'rejected' as const, error: error instanceof Error ? error : new Error(String(error)) }),
      ),
      timeout,
    ]);
    const ms = Date.now() - started;
    return outcome === 'pending' ? { kind: 'pending', ms } : { ...outcome, ms };
  } finally {
    clearTimeout(timer);
  }
}

function describeOutcome(outcome: Outcome<unknown>): string {
  if (outcome.kind === 'pending') return `still pending after ${outcome.ms} ms`;
  if (outcome.kind === 'rejected') return `rejected after ${outcome.ms} ms: ${outcome.error.message}`;
  return `resolved after ${outcome.ms} ms with ${JSON.stringify(outcome.value)}`;
}

/** ST-4: a read while the store is unreachable must not say "none" or a level: it rejects or is unreadable, quickly. */
async function assertReadFailsFast(store: RatchetStore, domain: string): Promise<void> {
  const outcome = await settle(store.get(domain), FAIL_FAST_MS + 2_000);
  const ok =
    outcome.ms <= FAIL_FAST_MS && (outcome.kind === 'rejected' || (outcome.kind === 'resolved' && outcome.value.kind === 'unreadable'));
  assert.ok(ok, `get(${domain}) with Redis down: ${describeOutcome(outcome)}`);
}

/** ST-4: a write while the store is unreachable must reject (it was not persisted), quickly. */
async function assertRejectsFast(what: string, promise: Promise<unknown>): Promise<void> {
  const outcome = await settle(promise, FAIL_FAST_MS + 2_000);
  assert.ok(outcome.kind === 'rejected' && outcome.ms <= FAIL_FAST_MS, `${what} with Redis down: ${describeOutcome(outcome)}`);
}

/** Polls `get` until it reads a level (the store reconnects by itself), or fails after RECOVERY_MS. */
async function waitForLevel(store: RatchetStore, domain: string): Promise<RatchetRead> {
  const deadline = Date.now() + RECOVERY_MS;
  let last = 'nothing yet';
  for (;;) {
    try {
      const read = await store.get(domain);
      if (read.kind === 'level') return read;
      last = JSON.stringify(read);
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) assert.fail(`${store.description} did not recover within ${RECOVERY_MS} ms: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A `redis-cli SUBSCRIBE channel` of its own: the messages published on `channel`, in order. */
async function subscribeWithCli(channel: string): Promise<{ messages(count: number): Promise<string[]>; stop(): void }> {
  const child = spawn(REDIS_CLI, ['-p', String(redis.port), '--no-raw', 'SUBSCRIBE', channel], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let partial = '';
  let changed: () => void = () => undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.map((line) => line.replace(/^\d+\) /, '').replace(/^"(.*)"$/, '$1')));
    changed();
  });
  const until = async (predicate: () => boolean): Promise<void> => {
    const deadline = Date.now() + 5_000;
    while (!predicate()) {
      if (Date.now() > deadline) assert.fail(`redis-cli SUBSCRIBE ${channel}: ${JSON.stringify(lines)}`);
      await new Promise<void>((resolve) => {
        changed = resolve;
        setTimeout(resolve, 50);
      });
    }
  };
  await until(() => lines.includes('subscribe'));
  const payloads = (): string[] =>
    lines.flatMap((line, i) => (line === 'message' && lines[i + 2] !== undefined ? [lines[i + 2] as string] : []));
  return {
    messages: async (count) => {
      await until(() => payloads().length >= count);
      return payloads();
    },
    stop: () => child.kill(),
  };
}

describe('RedisRatchetStore memory and change feed (OPS-6)', () => {
  test('OPS-6: a raise that changes a level and every reset publish the domain on <prefix>ratchet-changes', async () => {
    const { prefix, store } = await openFresh();
    const listener = await openFresh(prefix);
    try {
      const subscriber = await subscribeWithCli(`${prefix}ratchet-changes`);
      await store.raise('feed.example', SecLevel.TLS_INSECURE);
      await store.raise('feed.example', SecLevel.PLAIN); // no change: no message
      await store.reset('feed.example');
      await store.reset('never.example');
      await store.raise('relay:mx.feed.example', SecLevel.TLS_SECURE);
      assert.deepEqual(await subscriber.messages(4), ['feed.example', 'feed.example', 'never.example', 'relay:mx.feed.example']);
      subscriber.stop();
    } finally {
      await listener.store.close();
      await store.close();
    }
  });

  test('ST-3: while the subscriber is disconnected nothing is remembered: a change it could not hear of is seen', async () => {
    const { prefix, store } = await openFresh();
    try {
      await store.raise('unheard.example', SecLevel.PLAIN);
      for (let i = 0; i < 3; i++) await store.get('unheard.example');
      const before = await entryCommands();
      await store.get('unheard.example');
      assert.equal((await entryCommands()) - before, 0, 'remembered while subscribed');

      // Drop the subscriber's connection, then change the entry behind the store's back (no message).
      await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await redis.cli('HSET', `${prefix}ratchet:unheard.example`, 'level', String(SecLevel.TLS_SECURE));
      const deadline = Date.now() + 5_000;
      let read = await store.get('unheard.example');
      while (read.kind === 'level' && read.entry.level !== SecLevel.TLS_SECURE && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        read = await store.get('unheard.example');
      }
      assert.equal(levelOf(read), SecLevel.TLS_SECURE, 'the remembered PLAIN was forgotten when the subscriber went away');
      if (read.kind === 'level' && !(await store.ready?.(0))) {
        assert.equal(store.peek?.('unheard.example'), undefined, 'OPS-6: nothing answered from memory while unsubscribed');
      }

      // Once subscribed again, reads are remembered again.
      assert.equal(await store.ready?.(5_000), true);
      for (let i = 0; i < 3; i++) await store.get('unheard.example');
      const again = await entryCommands();
      await store.get('unheard.example');
      assert.equal((await entryCommands()) - again, 0, 'remembered again after resubscribing');
    } finally {
      await store.close();
    }
  });
});

describe('RedisRatchetStore on a real Redis', () => {
  test('ST-3: an entry is the hash <prefix>ratchet:<domain> with level, raisedAt and host', async () => {
    const { prefix, store } = await openFresh();
    try {
      await store.raise('layout.example', SecLevel.TLS_INSECURE, 'mx1.layout.example');
      await store.raise('layout.example', SecLevel.PLAIN, 'mx0.layout.example');
      const key = `${prefix}ratchet:layout.example`;
      assert.equal(await redis.cli('TYPE', key), 'hash');
      const [levelField, raisedAt, host] = (await redis.cli('HMGET', key, 'level', 'raisedAt', 'host')).split('\n');
      assert.equal(levelField, String(SecLevel.TLS_INSECURE));
      assert.ok(Math.abs(Number(raisedAt) - Date.now()) < 60_000, `raisedAt ${raisedAt}`);
      assert.equal(host, 'mx1.layout.example', 'a lower raise leaves the entry alone');
      assert.equal(await redis.cli('EXISTS', `${prefix}ratchet:other.example`), '0');
    } finally {
      await store.close();
    }
  });

  test('ST-3: a raise is atomic on the server: racing raises through separate connections end at the maximum', async () => {
    const first = await openFresh();
    const shared = first.prefix;
    const connections = [first.store, ...(await Promise.all([1, 2, 3].map(async () => (await openFresh(shared)).store)))];
    try {
      for (let round = 0; round < 10; round++) {
        const domain = `race${round}.example`;
        // Many low raises and, somewhere in the middle, exactly one TLS_SECURE.
        const secureAt = Math.floor(Math.random() * 80);
        const raises = Array.from({ length: 80 }, (_, i) => {
          const level = i === secureAt ? SecLevel.TLS_SECURE : ((i % 2) as SecLevel);
          const store = connections[i % connections.length] as RatchetStore;
          return store.raise(domain, level, `mx${i}.race.example`).then((stored) => {
            assert.ok(stored >= level, `raise to ${levelName(level)} resolved with ${levelName(stored)}`);
          });
        });
        await Promise.all(raises);
        for (const store of connections) assert.equal(levelOf(await store.get(domain)), SecLevel.TLS_SECURE, domain);
        assert.equal(await redis.cli('HGET', `${shared}ratchet:${domain}`, 'host'), `mx${secureAt}.race.example`);
      }
    } finally {
      await Promise.all(connections.map((store) => store.close()));
    }
  });

  test('ST-4: a foreign or corrupt entry reads as unreadable, naming the key; list reports it; raise refuses it; reset clears it', async () => {
    const { prefix, store } = await openFresh();
    try {
      await store.raise('good.example', SecLevel.TLS_SECURE);
      const key = (domain: string): string => `${prefix}ratchet:${domain}`;
      await redis.cli('SET', key('string.example'), 'TLS_SECURE');
      await redis.cli('RPUSH', key('list.example'), '2');
      await redis.cli('HSET', key('garbage.example'), 'level', 'TLS_SECURE', 'raisedAt', '1', 'host', 'mx.example');
      await redis.cli('HSET', key('high.example'), 'level', '7');
      await redis.cli('HSET', key('negative.example'), 'level', '-1');
      await redis.cli('HSET', key('fraction.example'), 'level', '1.5');
      await redis.cli('HSET', key('empty.example'), 'level', '');
      await redis.cli('HSET', key('no-level.example'), 'host', 'mx.example', 'raisedAt', '1');
      const corrupt = [
        'string.example',
        'list.example',
        'garbage.example',
        'high.example',
        'negative.example',
        'fraction.example',
        'empty.example',
        'no-level.example',
      ];

      for (const domain of corrupt) assertUnreadable(await store.get(domain), key(domain));
      const kinds = Object.fromEntries((await store.list()).map(({ domain, read }) => [domain, read.kind]));
      assert.deepEqual(kinds, { ...Object.fromEntries(corrupt.map((domain) => [domain, 'unreadable'])), 'good.example': 'level' });

      // An unreadable entry may hold any level: a raise must not replace it by what it was asked for.
      for (const domain of corrupt) {
        const before = await redis.cli('DUMP', key(domain));
        await assert.rejects(store.raise(domain, SecLevel.PLAIN), `raise(${domain}, PLAIN) on a corrupt entry`);
        assert.equal(await redis.cli('DUMP', key(domain)), before, `${domain} left as it was`);
      }
      for (const domain of corrupt) {
        assert.equal(await store.reset(domain), true, domain);
        assert.deepEqual(await store.get(domain), { kind: 'none' }, domain);
      }
      assert.equal(levelOf(await store.get('good.example')), SecLevel.TLS_SECURE);
    } finally {
      await store.close();
    }
  });

  test('ST-4: with Redis killed, reads and writes fail fast; after a restart the store recovers by itself and every confirmed raise survived', async () => {
    const { url, store } = await openFresh();
    const workers: Worker[] = [];
    try {
      await store.raise('secure.example', SecLevel.TLS_SECURE, 'mx.secure.example');
      await store.raise('insecure.example', SecLevel.TLS_INSECURE);
      await store.raise('[192.0.2.7]', SecLevel.PLAIN);
      // Two other processes raise as fast as they can while Redis is killed under them.
      workers.push(...[0, 1].map((i) => startWorker(['loop', url, String(500 + i), `crash${i}`])));
      await Promise.all(workers.map((w) => w.waitForLine((line) => line.startsWith('{'))));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await redis.kill('SIGKILL');

      await assertReadFailsFast(store, 'secure.example');
      await assertReadFailsFast(store, 'unknown.example');
      await assertRejectsFast('raise', store.raise('secure.example', SecLevel.TLS_SECURE));
      await assertRejectsFast('raise', store.raise('new.example', SecLevel.TLS_INSECURE));
      await assertRejectsFast('list', store.list());
      await assertRejectsFast('reset', store.reset('secure.example'));

      const confirmed = new Map<string, SecLevel>();
      for (const w of workers) {
        w.child.kill('SIGKILL');
        await w.exited;
        for (const line of w.lines) {
          if (!line.startsWith('{')) continue;
          const { domain, level } = JSON.parse(line) as { domain: string; level: SecLevel };
          if (level > (confirmed.get(domain) ?? -1)) confirmed.set(domain, level);
        }
      }
      assert.ok(confirmed.size >= 2, `the workers confirmed raises before the crash (${confirmed.size})`);

      await redis.restart();
      const secure = await waitForLevel(store, 'secure.example');
      assert.equal(levelOf(secure), SecLevel.TLS_SECURE);
      assert.equal((secure as Extract<RatchetRead, { kind: 'level' }>).entry.host, 'mx.secure.example');
      assert.equal(levelOf(await store.get('insecure.example')), SecLevel.TLS_INSECURE);
      assert.equal(levelOf(await store.get('[192.0.2.7]')), SecLevel.PLAIN);
      for (const [domain, level] of confirmed) {
        const read = await store.get(domain);
        assert.ok(levelOf(read) >= level, `${domain}: confirmed ${levelName(level)} before the crash, reads ${JSON.stringify(read)}`);
      }
      assert.deepEqual(await store.get('new.example'), { kind: 'none' }, 'the raise that failed wrote nothing');
      assert.equal(await store.raise('new.example', SecLevel.TLS_INSECURE), SecLevel.TLS_INSECURE);
      assert.equal(levelOf(await store.get('new.example')), SecLevel.TLS_INSECURE);
    } finally {
      for (const w of workers) w.child.kill('SIGKILL');
      if (!redis.isRunning) await redis.restart();
      await store.close();
    }
  });

  test('ST-4: a store opened while Redis is down fails fast, then works once Redis is up', async () => {
    const late = await TestRedis.start();
    try {
      await late.kill();
      const prefix = `t${randomBytes(6).toString('hex')}:`;
      const store = openRatchetStoreFromUrl(`${late.url}/?prefix=${encodeURIComponent(prefix)}`);
      try {
        if (store.ready) assert.equal(await store.ready(200), false, 'not ready while Redis is down');
        await assertReadFailsFast(store, 'example.com');
        await assertRejectsFast('raise', store.raise('example.com', SecLevel.TLS_SECURE));
        await late.restart();
        await late.cli('HSET', `${prefix}ratchet:example.com`, 'level', String(SecLevel.TLS_SECURE), 'raisedAt', String(Date.now()));
        assert.equal(levelOf(await waitForLevel(store, 'example.com')), SecLevel.TLS_SECURE);
        assert.equal(await store.raise('example.com', SecLevel.PLAIN), SecLevel.TLS_SECURE);
      } finally {
        await store.close();
      }
    } finally {
      await late.stop();
    }
  });
});
