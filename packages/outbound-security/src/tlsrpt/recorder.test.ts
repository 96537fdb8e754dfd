import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTlsReportStore } from './memory-store';
import { noPolicyFound, reportedPolicy, type SessionRecord } from './record';
import { LeftOutTally } from './limits';
import { TlsReportRecorder } from './recorder';
import { PartialAddError, type CountEntry } from './store';

const DAY_MS = Date.UTC(2025, 2, 14, 12);
const STS = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: enforce', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);

const success = (policyDomain = 'example.com'): SessionRecord => ({ policyDomain, policy: STS, result: 'success' });
const failure = (ip = '192.0.2.1'): SessionRecord => ({
  policyDomain: 'example.com',
  policy: STS,
  result: { resultType: 'certificate-host-mismatch', receivingMxHostname: 'mx.example.com', receivingIp: ip },
});

test('RPT-1: sessions of one kind are counted together and written at the flush', async () => {
  const store = new MemoryTlsReportStore();
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), now: () => DAY_MS });
  for (let i = 0; i < 5; i++) recorder.record(success());
  recorder.record(failure());
  recorder.record(failure());
  recorder.record(failure('192.0.2.2'));
  recorder.record({ policyDomain: 'example.org', policy: noPolicyFound('example.org'), result: 'success' });
  assert.equal(recorder.stats().pending, 4);
  await recorder.flush();
  assert.equal(recorder.stats().pending, 0);
  const counts = await store.counts('2025-03-14', 'example.com');
  assert.equal(counts.policies.length, 1);
  assert.equal(counts.policies[0]?.successes, 5);
  assert.deepEqual(counts.policies[0]?.failures.map((f) => [f.failure.receivingIp, f.count]).sort(), [
    ['192.0.2.1', 2],
    ['192.0.2.2', 1],
  ]);
  assert.deepEqual(await store.domains('2025-03-14'), ['example.com', 'example.org']);
  assert.equal(recorder.stats().recorded, 9);
});

test('RPT-1: the UTC day is that of the record (or the clock), so a flush across midnight splits correctly', async () => {
  const store = new MemoryTlsReportStore();
  let now = Date.UTC(2025, 2, 14, 23, 59, 59);
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), now: () => now });
  recorder.record(success());
  now += 2000;
  recorder.record(success());
  recorder.record({ ...success(), day: '2025-03-13' });
  await recorder.flush();
  assert.deepEqual(await store.days(), ['2025-03-13', '2025-03-14', '2025-03-15']);
});

test('RPT-1: a batch the store refused is kept and written at the next flush, merged with newer counts', async () => {
  const store = new MemoryTlsReportStore();
  let fail = true;
  const errors: string[] = [];
  const recorder = new TlsReportRecorder({
    write: (entries) => (fail ? Promise.reject(new Error('store down')) : store.add(entries)),
    now: () => DAY_MS,
    onFlushError: (err) => errors.push(err.message),
  });
  recorder.record(success());
  recorder.record(failure());
  await recorder.flush();
  assert.deepEqual(errors, ['store down']);
  assert.equal(recorder.stats().failedFlushes, 1);
  recorder.record(success());
  fail = false;
  await recorder.flush();
  const counts = await store.counts('2025-03-14', 'example.com');
  assert.equal(counts.policies[0]?.successes, 2);
  assert.equal(counts.policies[0]?.failures[0]?.count, 1);
});

test('RPT-1: after a partial failure only what the store did not add is offered again', async () => {
  const store = new MemoryTlsReportStore();
  const offered: string[][] = [];
  let partial = true;
  const recorder = new TlsReportRecorder({
    write: async (entries) => {
      offered.push(entries.map((e) => e.policyDomain).sort());
      if (!partial) return store.add(entries);
      partial = false;
      const [stored, ...rest] = [...entries].sort((a, b) => a.policyDomain.localeCompare(b.policyDomain));
      await store.add([stored as CountEntry]);
      throw new PartialAddError('one group failed', rest);
    },
    now: () => DAY_MS,
  });
  recorder.record(success('a.example'));
  recorder.record(success('b.example'));
  recorder.record(success('c.example'));
  await recorder.flush();
  await recorder.flush();
  assert.deepEqual(offered, [
    ['a.example', 'b.example', 'c.example'],
    ['b.example', 'c.example'],
  ]);
  for (const domain of ['a.example', 'b.example', 'c.example']) {
    assert.equal((await store.counts('2025-03-14', domain)).policies[0]?.successes, 1, `${domain} counted once`);
  }
});

test('OPS-5: past max entries, new kinds are dropped and counted, known kinds keep counting; a full batch flushes early', async () => {
  const writes: Array<readonly CountEntry[]> = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const recorder = new TlsReportRecorder({
    write: (entries) => {
      writes.push(entries);
      return writes.length === 1 ? held : Promise.resolve();
    },
    maxEntries: 3,
    now: () => DAY_MS,
  });
  recorder.record(failure('192.0.2.1'));
  recorder.record(failure('192.0.2.2'));
  recorder.record(failure('192.0.2.3')); // full: flushes
  assert.equal(writes.length, 1);
  for (let i = 4; i < 10; i++) recorder.record(failure(`192.0.2.${i}`));
  assert.equal(recorder.stats().pending, 3, 'the batch never grows past the bound');
  assert.equal(recorder.stats().dropped, 3);
  recorder.record(failure('192.0.2.4'));
  assert.equal(recorder.stats().dropped, 3, 'a kind held already keeps counting');
  release();
  await recorder.close();
  assert.equal(writes.length, 2);
  assert.equal(writes[1]?.find((e) => e.failure?.receivingIp === '192.0.2.4')?.count, 2);
});

test('RPT-1: records with an invalid Policy Domain or day never reach the store', async () => {
  const store = new MemoryTlsReportStore();
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), now: () => DAY_MS });
  recorder.record(success('Example.COM'));
  recorder.record(success('../etc'));
  recorder.record({ ...success(), day: '2025-02-30' });
  recorder.record(success());
  await recorder.flush();
  assert.equal(recorder.stats().rejected, 3);
  assert.deepEqual(await store.domains('2025-03-14'), ['example.com']);
});

test('RPT-1: close writes what is pending and stops the timer', async () => {
  const store = new MemoryTlsReportStore();
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), flushIntervalMs: 10, now: () => DAY_MS });
  recorder.start();
  recorder.record(success());
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal((await store.counts('2025-03-14', 'example.com')).policies[0]?.successes, 1, 'the timer flushed');
  recorder.record(success());
  await recorder.close();
  assert.equal((await store.counts('2025-03-14', 'example.com')).policies[0]?.successes, 2);
});

test('RPT-8: a policy with more strings than max_policy_strings is recorded cut to the limit, logged once and counted', async () => {
  const store = new MemoryTlsReportStore();
  const logs: string[] = [];
  const leftOut = new LeftOutTally((message) => logs.push(message));
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), now: () => DAY_MS, maxPolicyStrings: 3, leftOut });
  const strings = Array.from({ length: 8 }, (_, i) => `3 1 1 ${String(i).repeat(4)}`);
  const tlsa = reportedPolicy('tlsa', 'mx.example.com', strings, ['mx.example.com']);
  for (let i = 0; i < 4; i++) recorder.record({ policyDomain: 'example.com', policy: tlsa, result: 'success' });
  await recorder.flush();
  const counts = await store.counts('2025-03-14', 'example.com');
  assert.equal(counts.policies.length, 1);
  assert.deepEqual(counts.policies[0]?.policy.strings, strings.slice(0, 3));
  assert.equal(counts.policies[0]?.successes, 4, 'every session still counts');
  assert.equal(leftOut.totals().policy_strings, 5, 'counted once per policy, not per session');
  assert.equal(logs.length, 1);
  assert.match(logs[0] as string, /example\.com.*8 strings.*max_policy_strings=3/);
});

test('RPT-8: past max_domains_recorded_per_day, a new Policy Domain is not recorded that day; logged once and counted', async () => {
  const store = new MemoryTlsReportStore();
  const logs: string[] = [];
  const leftOut = new LeftOutTally((message) => logs.push(message));
  const recorder = new TlsReportRecorder({ write: (e) => store.add(e), now: () => DAY_MS, maxDomainsPerDay: 3, leftOut });
  for (let i = 0; i < 10; i++) recorder.record(success(`d${i}.wild.example`));
  await recorder.flush();
  for (let i = 0; i < 10; i++) recorder.record(success(`d${i}.wild.example`));
  recorder.record(success('d0.wild.example'));
  await recorder.flush();
  assert.deepEqual(await store.domains('2025-03-14'), ['d0.wild.example', 'd1.wild.example', 'd2.wild.example']);
  assert.equal((await store.counts('2025-03-14', 'd0.wild.example')).policies[0]?.successes, 3, 'known domains keep counting');
  assert.equal(leftOut.totals().domains_recorded, 14, 'every session left out is counted');
  assert.equal(logs.length, 1, 'one line for the day');
  assert.match(logs[0] as string, /2025-03-14.*max_domains_recorded_per_day=3/);
  recorder.record({ ...success('d9.wild.example'), day: '2025-03-15' });
  await recorder.flush();
  assert.deepEqual(await store.domains('2025-03-15'), ['d9.wild.example'], 'a new day starts again');
});
