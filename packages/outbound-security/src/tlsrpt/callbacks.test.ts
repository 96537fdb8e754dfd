/**
 * OPS-8: the timer callbacks TLS reporting installs (the recorder's flush,
 * the scheduler's loop, the outbox look) never let an exception out, whatever
 * the store or the input does: each is fed the worst and the process sees no
 * uncaught exception or unhandled rejection. (The connection guard's socket
 * callbacks: haraka/connection-guard.test.ts.)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SCHEDULE } from './schedule';
import { DEFAULT_LOCK_TTL_MS } from './deliver';
import { MemoryTlsReportStore } from './memory-store';
import { OutboxPickup } from './outbox';
import { noPolicyFound } from './record';
import { TlsReportRecorder } from './recorder';
import { TlsReportScheduler } from './scheduler';
import type { TlsReportStore } from './store';

/**
 * Runs `body`, then waits until `done()` (at most 10 s: a loaded machine runs timers late) and `ms`
 * more; resolves with the unhandled rejections and uncaught exceptions seen meanwhile.
 */
async function escaped(body: () => Promise<void> | void, ms: number, done: () => boolean = () => true): Promise<unknown[]> {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onRejection);
  try {
    await body();
    for (const deadline = Date.now() + 10_000; !done() && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, ms));
  } finally {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onRejection);
  }
  return seen;
}

test('OPS-8: the scheduler’s loop survives a store that answers nonsense (a pass that throws): logged, the next pass comes', async () => {
  const store = new MemoryTlsReportStore(() => Date.now());
  let passes = 0;
  const hostile = Object.assign(Object.create(store) as TlsReportStore, {
    days: async () => (passes++, ['2025-03-14']),
    prune: async () => undefined,
    domains: async () => 'not a list' as unknown as string[],
  });
  const logs: string[] = [];
  const scheduler = new TlsReportScheduler(
    {
      store: hostile,
      txt: async () => ({ kind: 'nxdomain' }),
      post: async () => ({ ok: true, status: 200 }),
      queueMail: async () => undefined,
      identity: { organization: 'o', contact: 'c@example.test', sender: 's@example.test', submitter: 'example.test' },
      schedule: { ...DEFAULT_SCHEDULE, settleMs: 0, delayWindowMs: 0 },
      holder: 'p',
      lockTtlMs: DEFAULT_LOCK_TTL_MS,
      now: () => Date.UTC(2025, 2, 16),
      random: () => 0,
      log: (level, message) => logs.push(`${level} ${message}`),
    },
    { tickMs: 20 },
  );
  const seen = await escaped(
    () => scheduler.start(),
    50,
    () => passes >= 2,
  );
  await scheduler.stop();
  assert.deepEqual(seen, []);
  assert.ok(passes >= 2, `the loop went on (${passes} passes)`);
  assert.ok(
    logs.some((l) => /^error .*pass failed/.test(l)),
    logs.join('\n'),
  );
});

test('OPS-8: the recorder’s flush timer survives a store whose write throws at once (not even a promise) and odd sessions', async () => {
  let calls = 0;
  const recorder = new TlsReportRecorder({
    write: () => {
      calls++;
      throw new TypeError('write exploded');
    },
    flushIntervalMs: 10,
  });
  const seen = await escaped(
    () => {
      recorder.start();
      for (const domain of ['__proto__', 'constructor', 'example.com']) {
        recorder.record({
          policyDomain: domain,
          policy: noPolicyFound('example.com'),
          result: { resultType: 'starttls-not-supported', receivingIp: '192.0.2.1', receivingMxHostname: '__proto__' },
        });
      }
    },
    30,
    () => calls >= 2,
  );
  await recorder.close();
  assert.deepEqual(seen, []);
  assert.ok(calls >= 2, 'flushed again and again');
  assert.ok(recorder.stats().failedFlushes >= 2);
});

test('OPS-8: the outbox look survives a directory that cannot be read (a file where the outbox should be)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-ops8-'));
  const file = path.join(dir, 'tlsrpt-outbox');
  fs.writeFileSync(file, 'not a directory');
  const logs: string[] = [];
  const pickup = new OutboxPickup({ dir: file, queue: async () => undefined, log: (l, m) => logs.push(`${l} ${m}`), intervalMs: 10 });
  try {
    const seen = await escaped(
      () => pickup.start(),
      60,
      () => logs.length > 0,
    );
    assert.deepEqual(seen, []);
    assert.equal(logs.filter((l) => /not a directory/.test(l)).length, 1, 'said once');
  } finally {
    await pickup.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
