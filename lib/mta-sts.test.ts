import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { PolicyServer, policyText } from '../test/fixtures/policy-server';
import { TestCa } from '../test/fixtures/test-ca';
import { makeAddressPolicy } from './address-policy';
import type { DnsAnswer, DnsClient } from './dns-client';
import { MtaStsResolver, type CacheEvent, type MtaStsSettings } from './mta-sts';
import { FilePolicyStore } from './policy-store';

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
