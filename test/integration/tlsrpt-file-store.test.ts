/**
 * The TLS report stores that need no server (RPT-1, RPT-3, ST-2): the store
 * contract (tlsrpt-store.contract.ts) against the memory and file stores,
 * and what only files can get wrong: a process killed while appending, torn
 * and incomplete batches, stale lock files, a corrupt delivery state.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FileTlsReportStore } from '#lib/tlsrpt/file-store';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { reportedPolicy } from '#lib/tlsrpt/record';
import { TLSRPT_WORKER, tlsReportStoreContract } from '../support/tlsrpt-store.contract';
import { WORKER_POLICY } from '../support/tlsrpt-store.worker';

const DAY = '2025-03-14';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrpt-store-'));
}

/** Runs `body` with a file store in a fresh directory; closes it and removes the directory afterwards. */
async function withFileStore(body: (store: FileTlsReportStore, dir: string) => Promise<void>, now?: () => number): Promise<void> {
  const dir = tempDir();
  const store = new FileTlsReportStore(dir, now ? { now } : {});
  try {
    await body(store, dir);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

tlsReportStoreContract('MemoryTlsReportStore', async () => ({
  store: new MemoryTlsReportStore(),
  url: null,
  cleanup: async () => undefined,
}));

tlsReportStoreContract('FileTlsReportStore', async () => {
  const dir = tempDir();
  const store = new FileTlsReportStore(path.join(dir, 'tlsrpt'));
  return {
    store,
    url: `file:${path.join(dir, 'tlsrpt')}`,
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

test('RPT-1, ST-2: the layout: one count file per process and day, delivery state and lock per domain', () =>
  withFileStore(async (store, dir) => {
    await store.add([{ day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 1 }]);
    await store.add([{ day: DAY, policyDomain: 'example.org', policy: WORKER_POLICY, count: 1 }]);
    await store.startDelivery(DAY, 'example.com', { reportId: 'r', dueAt: 1, attempts: 0, nextAttemptAt: 1, sent: {}, errors: {} });
    assert.equal(await store.lock(DAY, 'example.com', 'me', 60_000), true);
    const files = fs.readdirSync(path.join(dir, DAY)).sort();
    assert.equal(files.length, 2);
    assert.match(files[0] as string, /^counts-[a-z0-9-]+-\d+-[0-9a-f]{12}\.jsonl$/);
    assert.equal(files[1], 'send');
    assert.deepEqual(fs.readdirSync(path.join(dir, DAY, 'send')).sort(), ['example.com.json', 'example.com.lock']);
    const lines = fs
      .readFileSync(path.join(dir, DAY, files[0] as string), 'utf8')
      .trim()
      .split('\n');
    assert.equal(lines.length, 2, 'one line per batch');
    assert.equal((JSON.parse(lines[1] as string) as { policies: unknown[] }).policies.length, 0, 'a policy is defined once per file');
  }));

test('RPT-1, ST-2: a process killed while adding leaves whole batches only, at least every one it was told of', () =>
  withFileStore(async (store, dir) => {
    const child = spawn(process.execPath, [TLSRPT_WORKER, 'loop', `file:${dir}`, DAY, 'example.com'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acknowledged = 0;
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const totals = chunk.split('\n').filter((l) => /^\d+$/.test(l));
        if (totals.length > 0) acknowledged = Number(totals[totals.length - 1]);
        if (acknowledged >= 700) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    const counts = await store.counts(DAY, 'example.com');
    const total = counts.policies[0]?.successes ?? 0;
    assert.ok(total >= acknowledged, `${total} counted, ${acknowledged} acknowledged`);
    assert.equal(total % 7, 0, 'no part of a batch counts');
    assert.ok(total <= acknowledged + 7 * 5, 'at most the batches in flight beyond what was acknowledged');
    assert.ok(counts.problems.length <= 1, counts.problems.join('; '));
  }));

test('RPT-1: a torn last line and an incomplete batch count not at all, and are named', () =>
  withFileStore(async (store, dir) => {
    await store.add([{ day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 5 }]);
    const [file] = fs.readdirSync(path.join(dir, DAY)).filter((f) => f.startsWith('counts-'));
    const counts = JSON.stringify({ batch: 'b2', part: 1, parts: 2, policies: [], counts: [['example.com', WORKER_POLICY.id, '', 100]] });
    fs.appendFileSync(path.join(dir, DAY, file as string), `${counts}\n{"batch":"b3","part":1,"par`);
    const read = await store.counts(DAY, 'example.com');
    assert.equal(read.policies[0]?.successes, 5);
    assert.equal(read.problems.length, 2, read.problems.join('; '));
    assert.ok(read.problems.some((p) => /incomplete last line/.test(p)));
    assert.ok(read.problems.some((p) => /batch b2 is incomplete/.test(p)));
  }));

test("RPT-1: another process's file with a policy of its own is read with its policy", () =>
  withFileStore(async (one, dir) => {
    const two = new FileTlsReportStore(dir);
    const other = reportedPolicy('no-policy-found', 'example.com', [], []);
    await one.add([{ day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 2 }]);
    await two.add([
      { day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 3 },
      { day: DAY, policyDomain: 'example.com', policy: other, count: 4 },
    ]);
    await two.close();
    const counts = await one.counts(DAY, 'example.com');
    assert.deepEqual(
      counts.policies.map((p) => [p.policy.type, p.successes]),
      [
        ['no-policy-found', 4],
        ['sts', 5],
      ],
    );
    await one.add([{ day: DAY, policyDomain: 'example.com', policy: WORKER_POLICY, count: 1 }]);
    assert.equal((await one.counts(DAY, 'example.com')).policies[1]?.successes, 6, 'a day read again once its files changed');
  }));

test('RPT-3: a stale lock file is taken over; a fresh one is respected', () => {
  let now = Date.UTC(2025, 2, 15, 1);
  return withFileStore(
    async (store, dir) => {
      const lockFile = path.join(dir, DAY, 'send', 'example.com.lock');
      fs.mkdirSync(path.dirname(lockFile), { recursive: true });
      fs.writeFileSync(lockFile, JSON.stringify({ holder: 'crashed', expiresAt: now - 1 }));
      assert.equal(await store.lock(DAY, 'example.com', 'me', 60_000), true, 'past its expiry');
      assert.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).holder, 'me');
      fs.writeFileSync(lockFile, '{"holder":"cut sh');
      now = Date.now();
      assert.equal(await store.lock(DAY, 'example.com', 'other', 60_000), false, 'a cut-short lock younger than the time to live');
      now = Date.now() + 120_000;
      assert.equal(await store.lock(DAY, 'example.com', 'other', 60_000), true, 'a cut-short lock older than the time to live');
      const leftovers = fs.readdirSync(path.dirname(lockFile)).filter((f) => f.startsWith('.'));
      assert.deepEqual(leftovers, [], 'nothing left behind');
    },
    () => now,
  );
});

test('RPT-3: a corrupt delivery state is an error naming the file, never "not planned"', () =>
  withFileStore(async (store, dir) => {
    fs.mkdirSync(path.join(dir, DAY, 'send'), { recursive: true });
    fs.writeFileSync(path.join(dir, DAY, 'send', 'example.com.json'), '{"reportId":');
    await assert.rejects(store.delivery(DAY, 'example.com'), /example\.com\.json: not JSON/);
  }));
