/**
 * What every TLS report store must do (RPT-1, RPT-3, ST-1 … ST-3), as one
 * suite run unchanged against each: memory, file and Redis. `setup` gives
 * each test a fresh, empty store and the URL another process opens the same
 * store with (null for a store other processes cannot share). Not a test file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { addDays, noPolicyFound, reportedPolicy, utcDay, type FailureDetails } from '#lib/tlsrpt/record';
import type { DeliveryState, DomainCounts, TlsReportStore } from '#lib/tlsrpt/store';
import { WORKER_POLICY } from './tlsrpt-store.worker';
import { withFresh } from './with-fresh';

export const TLSRPT_WORKER = path.join(__dirname, 'tlsrpt-store.worker.js');

export interface ContractStore {
  store: TlsReportStore;
  /** For other processes; null: this store lives in one process only. */
  url: string | null;
  cleanup(): Promise<void>;
}

/** Yesterday: Redis expires a day's keys some days after it, so the tests' days are recent ones. */
const DAY = addDays(utcDay(Date.now()), -1);
const NEXT_DAY = addDays(DAY, 1);
const STS = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: testing', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);
const STS_CHANGED = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: enforce', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);
const FULL_FAILURE: FailureDetails = {
  resultType: 'certificate-host-mismatch',
  sendingMtaIp: '192.0.2.25',
  receivingMxHostname: 'mx.example.com',
  receivingMxHelo: 'mx1.example.com "quoted"\\',
  receivingIp: '2001:db8::25',
  failureReasonCode: 'certificate not valid for mx.example.com',
  additionalInformation: 'https://sender.example/info?a=1&b=2',
};

/** `{policy id: [successes, failures by key]}`, order-free, for comparisons. */
export function summarise(counts: DomainCounts): Record<string, { successes: number; failures: Record<string, number> }> {
  const out: Record<string, { successes: number; failures: Record<string, number> }> = {};
  for (const p of counts.policies) {
    const failures: Record<string, number> = {};
    for (const f of p.failures) failures[JSON.stringify(f.failure)] = (failures[JSON.stringify(f.failure)] ?? 0) + f.count;
    out[p.policy.id] = { successes: p.successes, failures };
  }
  return out;
}

/** Runs the worker to its end; resolves with its stdout lines. */
export function runWorker(args: string[], input?: Promise<string>): Promise<string[]> {
  const child = spawn(process.execPath, [TLSRPT_WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  void input?.then((line) => child.stdin.write(`${line}\n`));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code === 0) resolve(stdout.split('\n').filter((l) => l !== ''));
      else reject(new Error(`worker ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

const delivery = (reportId: string): DeliveryState => ({ reportId, dueAt: 1, attempts: 0, nextAttemptAt: 1, sent: {}, errors: {} });

export function tlsReportStoreContract(name: string, setup: () => Promise<ContractStore>): void {
  const withStore = (body: (fresh: ContractStore) => Promise<void>): Promise<void> => withFresh(setup, body);

  describe(name, () => {
    test('RPT-1: counts per policy and failure details, summed over batches, per day and domain', () =>
      withStore(async ({ store }) => {
        await store.add([
          { day: DAY, policyDomain: 'example.com', policy: STS, count: 3 },
          { day: DAY, policyDomain: 'example.com', policy: STS, failure: FULL_FAILURE, count: 2 },
          { day: DAY, policyDomain: 'example.org', policy: noPolicyFound('example.org'), count: 1 },
        ]);
        await store.add([
          { day: DAY, policyDomain: 'example.com', policy: STS, count: 4 },
          { day: DAY, policyDomain: 'example.com', policy: STS, failure: FULL_FAILURE, count: 1 },
          { day: DAY, policyDomain: 'example.com', policy: STS_CHANGED, count: 5 },
          { day: NEXT_DAY, policyDomain: 'example.com', policy: STS, count: 6 },
        ]);
        assert.deepEqual(await store.days(), [DAY, NEXT_DAY]);
        assert.deepEqual(await store.domains(DAY), ['example.com', 'example.org']);
        const counts = await store.counts(DAY, 'example.com');
        assert.deepEqual(counts.problems, []);
        assert.deepEqual(summarise(counts), {
          [STS.id]: { successes: 7, failures: { [JSON.stringify(FULL_FAILURE)]: 3 } },
          [STS_CHANGED.id]: { successes: 5, failures: {} },
        });
        const sts = counts.policies.find((p) => p.policy.id === STS.id);
        assert.deepEqual(sts?.policy, STS, 'the policy comes back whole');
        assert.deepEqual(sts?.failures[0]?.failure, FULL_FAILURE, 'every failure field comes back');
        assert.deepEqual((await store.counts(NEXT_DAY, 'example.com')).policies[0]?.successes, 6);
        assert.deepEqual((await store.counts(DAY, 'unknown.example')).policies, []);
      }));

    test('RPT-1: two processes recording the same day add up', () =>
      withStore(async ({ store, url }) => {
        if (url === null) return;
        const results = await Promise.all([
          runWorker(['record', url, DAY, 'shared.example', '3000']),
          runWorker(['record', url, DAY, 'shared.example', '2000']),
        ]);
        const expected = results
          .map((lines) => JSON.parse(lines[0] as string) as { successes: number; failures: number })
          .reduce((a, b) => ({ successes: a.successes + b.successes, failures: a.failures + b.failures }));
        const counts = await store.counts(DAY, 'shared.example');
        assert.deepEqual(counts.problems, []);
        const policy = counts.policies.find((p) => p.policy.id === WORKER_POLICY.id);
        assert.equal(policy?.successes, expected.successes);
        assert.equal(
          policy?.failures.reduce((sum, f) => sum + f.count, 0),
          expected.failures,
        );
        assert.equal(policy?.failures.length, 2, 'each process its own failure details');
      }));

    test('RPT-3: the first delivery state stored wins; the lock holder replaces it', () =>
      withStore(async ({ store }) => {
        assert.equal(await store.delivery(DAY, 'example.com'), null);
        const [a, b] = await Promise.all([
          store.startDelivery(DAY, 'example.com', delivery('first')),
          store.startDelivery(DAY, 'example.com', delivery('second')),
        ]);
        assert.equal(a.reportId, b.reportId, 'both see the same state');
        const saved: DeliveryState = {
          ...a,
          attempts: 1,
          sent: { 'mailto:a@example.com': 5 },
          errors: { 'https://r.example/': 'HTTP status 503' },
        };
        await store.saveDelivery(DAY, 'example.com', saved);
        assert.deepEqual(await store.delivery(DAY, 'example.com'), saved);
        const finished = { ...saved, finished: { at: 9, outcome: 'sent' as const, reason: 'sent to mailto:a@example.com' } };
        await store.saveDelivery(DAY, 'example.com', finished);
        assert.deepEqual(await store.startDelivery(DAY, 'example.com', delivery('late')), finished);
      }));

    test('RPT-3: one holder at a time; the holder extends and releases; others cannot release it; it expires', () =>
      withStore(async ({ store }) => {
        assert.equal(await store.lock(DAY, 'example.com', 'one', 300), true);
        assert.equal(await store.lock(DAY, 'example.com', 'two', 60_000), false);
        assert.equal(await store.lock(DAY, 'example.com', 'one', 60_000), true, 'the holder extends its lock');
        await store.unlock(DAY, 'example.com', 'two');
        assert.equal(await store.lock(DAY, 'example.com', 'two', 60_000), false, 'another holder cannot release it');
        await store.unlock(DAY, 'example.com', 'one');
        assert.equal(await store.lock(DAY, 'example.com', 'two', 200), true);
        assert.equal(await store.lock(DAY, 'example.org', 'one', 200), true, 'locks are per domain');
        await new Promise((resolve) => setTimeout(resolve, 400));
        assert.equal(await store.lock(DAY, 'example.com', 'one', 60_000), true, 'an expired lock can be taken');
      }));

    test('RPT-3: of several processes trying the lock at once, one takes it', () =>
      withStore(async ({ url }) => {
        if (url === null) return;
        let go: (line: string) => void = () => undefined;
        const start = new Promise<string>((resolve) => (go = resolve));
        const workers = Array.from({ length: 4 }, (_, i) => runWorker(['lock', url, DAY, 'race.example', `holder-${i}`, '60000'], start));
        await new Promise((resolve) => setTimeout(resolve, 1500)); // every worker connected and waiting
        go('go');
        const answers = (await Promise.all(workers)).map((lines) => lines[0]);
        assert.deepEqual(answers.sort(), ['busy', 'busy', 'busy', 'taken']);
      }));

    test('RPT-1: prune forgets the days before the one given', () =>
      withStore(async ({ store }) => {
        const days = [addDays(DAY, -2), addDays(DAY, -1), DAY];
        for (const day of days) await store.add([{ day, policyDomain: 'example.com', policy: STS, count: 1 }]);
        assert.equal(await store.prune(DAY), 2);
        assert.deepEqual(await store.days(), [DAY]);
      }));

    test('ST-6: keys that are not a day or a lowercase A-label are refused before any write', () =>
      withStore(async ({ store }) => {
        await assert.rejects(store.add([{ day: DAY, policyDomain: '../escape', policy: STS, count: 1 }]), /not a lowercase A-label/);
        await assert.rejects(store.add([{ day: '../2025', policyDomain: 'example.com', policy: STS, count: 1 }]), /not a day/);
        await assert.rejects(store.lock(DAY, 'Example.COM', 'one', 1000), /not a lowercase A-label/);
        await assert.rejects(store.lock(DAY, 'example.com', 'a holder', 1000), /invalid lock holder/);
        assert.deepEqual(await store.days(), []);
      }));
  });
}
