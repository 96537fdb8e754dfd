import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { TestCa } from '../fixtures/test-ca';
import { makeAddressPolicy } from '#lib/mx/address-policy';
import type { DnsAnswer, DnsClient } from '#lib/mx/dns-client';
import { MtaStsResolver, type CacheEvent, type MtaStsSettings } from '#lib/mta-sts/resolver';
import { FilePolicyStore } from '#lib/mta-sts/file-store';

setFlagsFromString('--expose-gc'); // OPS-5 memory test: measure what stays on the heap

let ca: TestCa;
let server: PolicyServer;
let dir: string;
let clock: number;
let txt: Map<string, DnsAnswer<string>>;
let txtQueries: number;
let events: CacheEvent[];

const dns: DnsClient = {
  mx: async () => ({ kind: 'nodata' }),
  a: async (name) => (name.startsWith('mta-sts.') ? { kind: 'answer', records: ['127.0.0.1'] } : { kind: 'nxdomain' }),
  aaaa: async () => ({ kind: 'nodata' }),
  txt: async (name) => {
    txtQueries++;
    return txt.get(name) ?? { kind: 'nxdomain' };
  },
};

function settings(): MtaStsSettings {
  return {
    recheckMs: 60_000,
    negativeTtlMs: 300_000,
    refreshBeforeMs: 3_600_000,
    fetch: { timeoutMs: 2000, port: server.port, extraCa: [ca.caCert], addressPolicy: makeAddressPolicy([], []) },
  };
}

function resolver(store = new FilePolicyStore(dir)): MtaStsResolver {
  return new MtaStsResolver(dns, store, settings, { event: (e) => events.push(e), log: () => undefined }, () => clock);
}

async function publish(domain: string, id: string, mx: string[], maxAge = 86400): Promise<void> {
  txt.set(`_mta-sts.${domain}`, { kind: 'answer', records: [`v=STSv1; id=${id}`] });
  await server.set(domain, { kind: 'serve', body: policyText({ mode: 'enforce', maxAge, mx }) });
}

before(async () => {
  ca = await TestCa.create();
  server = await PolicyServer.start({ ca });
});
after(async () => {
  await server.stop();
  await ca.cleanup();
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-sts-test-'));
  clock = 1_000_000_000_000;
  txt = new Map();
  txtQueries = 0;
  events = [];
  server.clear();
  server.resetLog();
});

test('STS-5: a fresh cached policy is used without any network', async () => {
  await publish('a.test', '1', ['mx.a.test']);
  const r = resolver();
  const first = await r.policyFor('a.test');
  assert.equal(first.kind === 'policy' && first.source, 'fetched');
  clock += 30_000;
  const second = await r.policyFor('a.test');
  assert.equal(second.kind === 'policy' && second.source, 'cache');
  assert.equal(txtQueries, 1);
  assert.equal(server.requests('a.test').length, 1);
  // Another process (a new resolver on the same store) also uses the file without the network.
  const other = await resolver().policyFor('a.test');
  assert.equal(other.kind === 'policy' && other.source, 'cache');
  assert.equal(txtQueries, 1);
});

test('STS-5: after recheck the id is read again: same id keeps, new id refetches', async () => {
  await publish('b.test', '1', ['mx1.b.test']);
  const r = resolver();
  await r.policyFor('b.test');
  clock += 61_000;
  const same = await r.policyFor('b.test');
  assert.equal(same.kind === 'policy' && same.source, 'checked');
  assert.equal(server.requests('b.test').length, 1);
  await publish('b.test', '2', ['mx2.b.test']);
  clock += 61_000;
  const changed = await r.policyFor('b.test');
  assert.ok(changed.kind === 'policy');
  assert.equal(changed.id, '2');
  assert.deepEqual(
    changed.policy.mx.map((m) => m.text),
    ['mx2.b.test'],
  );
  assert.equal(server.requests('b.test').length, 2);
});

test('STS-5: a failed TXT lookup or refetch never removes or shortens an unexpired policy; failures are negative-cached', async () => {
  await publish('c.test', '1', ['mx.c.test']);
  const r = resolver();
  const fetched = await r.policyFor('c.test');
  assert.ok(fetched.kind === 'policy');
  clock += 61_000;
  txt.set('_mta-sts.c.test', { kind: 'failure', code: 'ESERVFAIL', message: 'servfail' });
  const kept = await r.policyFor('c.test');
  assert.ok(kept.kind === 'policy');
  assert.equal(kept.expiresAt, fetched.expiresAt);
  // Negative cache: no new TXT query within negative_ttl.
  const queries = txtQueries;
  clock += 61_000;
  await r.policyFor('c.test');
  assert.equal(txtQueries, queries);
  // New id but the policy host is broken: still the old policy.
  clock += 300_001;
  txt.set('_mta-sts.c.test', { kind: 'answer', records: ['v=STSv1; id=2'] });
  await server.set('c.test', { kind: 'status', status: 500 });
  const stillOld = await r.policyFor('c.test');
  assert.ok(stillOld.kind === 'policy');
  assert.equal(stillOld.id, '1');
  assert.ok(events.includes('fetch_error'));
  const stored = await new FilePolicyStore(dir).get('c.test');
  assert.equal(stored.kind === 'entry' && stored.entry.id, '1');
});

test('STS-5: concurrent deliveries to one domain share one discovery', async () => {
  await publish('d.test', '1', ['mx.d.test']);
  const r = resolver();
  const all = await Promise.all(Array.from({ length: 50 }, () => r.policyFor('d.test')));
  assert.ok(all.every((d) => d.kind === 'policy'));
  assert.equal(txtQueries, 1);
  assert.equal(server.requests('d.test').length, 1);
});

test('STS-1: no record, several records or a bad id mean no policy; absence is remembered for recheck', async () => {
  const r = resolver();
  assert.equal((await r.policyFor('none.test')).kind, 'none');
  assert.equal((await r.policyFor('none.test')).kind, 'none');
  assert.equal(txtQueries, 1);
  txt.set('_mta-sts.two.test', { kind: 'answer', records: ['v=STSv1; id=1', 'v=STSv1; id=2'] });
  assert.equal((await r.policyFor('two.test')).kind, 'none');
  txt.set('_mta-sts.badid.test', { kind: 'answer', records: ['v=STSv1; id=not-alnum!'] });
  assert.equal((await r.policyFor('badid.test')).kind, 'none');
  assert.equal(server.requests().length, 0);
});

test('STS-6: refresh refetches policies near expiry and drops those unused for longer than max_age', async () => {
  await publish('near.test', '1', ['mx.near.test'], 7200);
  await publish('idle.test', '1', ['mx.idle.test'], 7200);
  const r = resolver();
  await r.policyFor('near.test');
  await r.policyFor('idle.test');
  // 1.5 h later: near.test (used just now) expires within refresh_before (1 h); idle.test unused.
  clock += 5_400_000;
  await r.policyFor('near.test').catch(() => undefined);
  clock += 10;
  const stats = await r.refreshAll(2);
  assert.equal(stats.refreshed >= 1, true, JSON.stringify(stats));
  const near = await new FilePolicyStore(dir).get('near.test');
  assert.ok(near.kind === 'entry' && near.entry.expiresAt > clock + 7_000_000, 'near.test fetched again');
  // 2 h 1 min after its last use, idle.test is unused for longer than its max_age.
  clock += 1_900_000;
  const later = await r.refreshAll(2);
  assert.ok(later.dropped >= 1, JSON.stringify(later));
  assert.equal((await new FilePolicyStore(dir).get('idle.test')).kind, 'none');
});

test('STS-5: what a process remembers stays bounded whatever the number of domains', async () => {
  const r = new MtaStsResolver(dns, new FilePolicyStore(dir), settings, { event: () => undefined, log: () => undefined }, () => clock, 100);
  for (let i = 0; i < 500; i++) await r.policyFor(`nopolicy${i}.test`);
  assert.ok(r.memorySizes().absent <= 100, JSON.stringify(r.memorySizes()));
  // The most recent are still remembered (no new TXT query), the oldest asked again.
  const before = txtQueries;
  await r.policyFor('nopolicy499.test');
  assert.equal(txtQueries, before);
  await r.policyFor('nopolicy0.test');
  assert.equal(txtQueries, before + 1);
});

test('ST-5: an unreadable or corrupt cached policy defers (store-unavailable) until a fresh policy replaces it', async () => {
  await publish('corrupt.test', '1', ['mx.corrupt.test']);
  await resolver().policyFor('corrupt.test');
  const file = path.join(dir, 'corrupt.test.json');
  // Outage: TXT fails, the policy host answers 500. What the cache held can no longer be read.
  txt.set('_mta-sts.corrupt.test', { kind: 'failure', code: 'ESERVFAIL', message: 'servfail' });
  await server.set('corrupt.test', { kind: 'status', status: 500 });
  for (const damage of ['', '{"domain":"corrupt.test"', JSON.stringify({ domain: 'corrupt.test', id: '1', text: 'garbage' })]) {
    fs.writeFileSync(file, damage);
    events = [];
    const fresh = resolver(); // a restarted process: nothing in memory
    const decided = await fresh.policyFor('corrupt.test');
    assert.equal(decided.kind, 'store-unavailable', JSON.stringify(damage));
    if (decided.kind === 'store-unavailable') assert.match(decided.reason, /corrupt\.test.*(unreadable|invalid).*policy purge/);
    assert.ok(events.includes('store_error'), events.join(','));
    // No record at all does not clear it either: the hidden policy may still be in force (RFC 8461 §3.3).
    txt.set('_mta-sts.corrupt.test', { kind: 'nxdomain' });
    clock += 400_000;
    assert.equal((await fresh.policyFor('corrupt.test')).kind, 'store-unavailable');
    txt.set('_mta-sts.corrupt.test', { kind: 'failure', code: 'ESERVFAIL', message: 'servfail' });
  }
  // The policy host is back: the fresh policy replaces the entry, and the store holds it again.
  await publish('corrupt.test', '2', ['mx.corrupt.test']);
  clock += 400_000;
  const replaced = await resolver().policyFor('corrupt.test');
  assert.equal(replaced.kind === 'policy' && replaced.source, 'fetched');
  const stored = await new FilePolicyStore(dir).get('corrupt.test');
  assert.equal(stored.kind === 'entry' && stored.entry.id, '2');
  // Purged by the operator (the file removed): an ordinary first discovery.
  fs.writeFileSync(file, '');
  assert.equal(await new FilePolicyStore(dir).delete('corrupt.test'), true);
  assert.equal((await resolver().policyFor('corrupt.test')).kind, 'policy');
});

test('ST-5/STS-6: the background refresh refetches a domain whose cached entry is unreadable or invalid and replaces it; without a fresh policy the entry stays', async () => {
  await publish('repair.test', '1', ['mx.repair.test']);
  await publish('invalid.test', '1', ['mx.invalid.test']);
  await resolver().policyFor('repair.test');
  await resolver().policyFor('invalid.test');
  const repairFile = path.join(dir, 'repair.test.json');
  const invalidFile = path.join(dir, 'invalid.test.json');
  fs.writeFileSync(repairFile, '{"domain":"repair.test"');
  fs.writeFileSync(invalidFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(invalidFile, 'utf8')), text: 'garbage' }));
  fs.writeFileSync(path.join(dir, 'not a domain.json'), '');
  // The policy hosts are down: the refresh tries, fails, and leaves the entries (they may hide an enforce policy).
  txt.set('_mta-sts.repair.test', { kind: 'failure', code: 'ESERVFAIL', message: 'servfail' });
  await server.set('invalid.test', { kind: 'status', status: 500 });
  clock += 1000;
  const failed = await resolver().refreshAll(2);
  assert.equal(failed.refreshed, 0, JSON.stringify(failed));
  assert.equal(failed.dropped, 0, JSON.stringify(failed));
  assert.equal(
    (await new FilePolicyStore(dir).get('repair.test')).kind,
    'unreadable',
    'an unreadable entry is never dropped by the refresh',
  );
  assert.ok(fs.existsSync(invalidFile));

  // Back: one refresh pass of a restarted process (nothing in memory) replaces both entries.
  await publish('repair.test', '2', ['mx.repair.test']);
  await publish('invalid.test', '2', ['mx.invalid.test']);
  clock += 1000;
  events = [];
  const r = resolver();
  const repaired = await r.refreshAll(2);
  assert.equal(repaired.refreshed, 2, JSON.stringify(repaired));
  assert.ok(events.includes('refresh'), events.join(','));
  for (const domain of ['repair.test', 'invalid.test']) {
    const stored = await new FilePolicyStore(dir).get(domain);
    assert.equal(stored.kind === 'entry' && stored.entry.id, '2', `${domain}: ${JSON.stringify(stored)}`);
  }
  // The next delivery uses the repaired entry from memory, without the network.
  const requests = server.requests().length;
  const used = await r.policyFor('repair.test');
  assert.equal(used.kind === 'policy' && used.source, 'cache');
  assert.equal(server.requests().length, requests);
  assert.equal(server.requests().filter((req) => /not a domain/.test(JSON.stringify(req))).length, 0, 'a bad file name is never fetched');
});

test('OPS-5: the policies a process remembers are bounded in bytes as well as in entries', async () => {
  const budget = 32 * 1024 * 1024;
  // The largest policies there are: 500 patterns and unknown fields up to about 64 KiB, cached for 300 domains.
  const store = new FilePolicyStore(dir);
  const domains = Array.from({ length: 300 }, (_, i) => `big${i}.test`);
  for (const domain of domains) {
    const mx = Array.from({ length: 500 }, (_, i) => `*.p${i}.${domain}`);
    const text = policyText({ mode: 'enforce', maxAge: 86400, mx });
    const padded = text + `ext: ${'x'.repeat(990)}\r\n`.repeat(Math.floor((64 * 1024 - text.length) / 1000));
    await store.put({ domain, id: '1', text: padded, fetchedAt: clock, expiresAt: clock + 86_400_000, checkedAt: clock, usedAt: clock });
  }
  const withBudget = (bytes: number) => (): MtaStsSettings => Object.assign(settings(), { memoryBudgetBytes: bytes });
  const quiet = { event: () => undefined, log: () => undefined };
  const gc = runInNewContext('gc') as () => void;
  // A first process remembering nothing reads and parses every policy (warming JIT and the store) ...
  const nothing = new MtaStsResolver(dns, store, withBudget(1), quiet, () => clock);
  for (const domain of domains) assert.equal((await nothing.policyFor(domain)).kind, 'policy');
  assert.equal(nothing.memorySizes().policies, 0);
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  // ... then one with a budget does the same: what it keeps is what its memory holds.
  const r = new MtaStsResolver(dns, store, withBudget(budget), quiet, () => clock);
  for (const domain of domains) assert.equal((await r.policyFor(domain)).kind, 'policy');
  gc();
  const retained = process.memoryUsage().heapUsed - heapBefore;
  const sizes = r.memorySizes();
  assert.ok(
    sizes.policies > 0 && sizes.policies < domains.length,
    `all ${domains.length} policies of 64 KiB kept: ${JSON.stringify(sizes)}`,
  );
  assert.ok(sizes.bytes <= budget, JSON.stringify(sizes));
  // The estimate is an upper bound of what the heap really holds (the policies stay in the cache files).
  assert.ok(retained <= sizes.bytes, `retained ${retained} bytes, estimated ${sizes.bytes}`);
  // The most recent policy is still in memory: no store read, no network.
  assert.equal((await r.policyFor(domains[domains.length - 1] as string)).kind === 'policy' && txtQueries, 0);
  const perPolicy = (n: number): string => `${(n / sizes.policies / 1024).toFixed(0)} KiB`;
  console.log(
    `OPS-5 memory: budget ${budget / 1048576} MiB: ${sizes.policies} of ${domains.length} policies of 64 KiB kept, ` +
      `estimated ${perPolicy(sizes.bytes)} and measured ${perPolicy(retained)} of heap per policy`,
  );
});

test('OPS-6: peek answers from memory only, as policyFor would, and never looks anything up', async () => {
  const r = resolver();
  assert.equal(r.peek('p.test'), undefined, 'nothing known: policyFor would have to ask');
  assert.equal(txtQueries, 0);
  await publish('p.test', '1', ['mx.p.test']);
  const fetched = await r.policyFor('p.test');
  events = [];
  clock += 30_000;
  const peeked = r.peek('p.test');
  assert.ok(peeked?.kind === 'policy' && fetched.kind === 'policy');
  assert.equal(peeked.source, 'cache');
  assert.equal(peeked.policy, fetched.policy, 'the same parsed policy, not a copy');
  assert.deepEqual(events, ['hit'], 'counted as policyFor counts a hit');
  clock += 31_000; // the TXT id re-check is due
  assert.equal(r.peek('p.test'), undefined);
  assert.equal(txtQueries, 1, 'peek itself asked nothing');
  assert.equal((await r.policyFor('none.test')).kind, 'none');
  assert.equal(r.peek('none.test')?.kind, 'none', 'no record, checked recently');
  clock += 300_001;
  assert.equal(r.peek('none.test'), undefined, 'absence remembered only until its re-check');
  r.forget();
  assert.equal(r.peek('p.test'), undefined, 'a purge empties memory');
  assert.equal(server.requests('p.test').length, 1);
});
