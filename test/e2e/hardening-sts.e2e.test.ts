/**
 * End-to-end hardening of MX selection and the MTA-STS cache (issue "Hardening"):
 * each attack seen, replayed against a real Haraka (or the real stores) on loopback.
 * - ST-5: an emptied or corrupt cache entry must not let a spoofed MX through, in the
 *   file store (Haraka restarted on the same directory) and in Redis.
 * - OPS-5: a host with many addresses and a domain with many MX records cost a bounded
 *   number of connection attempts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeAddressPolicy } from '#lib/mx/address-policy';
import { createDnsClient } from '#lib/mx/dns-client';
import { MtaStsResolver, type CacheEvent, type MtaStsSettings } from '#lib/mta-sts/resolver';
import { openPolicyStore } from '#lib/state/open';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance } from '../fixtures/haraka-instance';
import { PolicyServer } from '../fixtures/policy-server';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.9.1';

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let sinks: Map<string, SmtpSink>;
let mxPort: number;

/** Sink name → [address, host name its certificate is for]; every certificate is valid for its own name. */
const SINKS: Record<string, [string, string]> = {
  good: ['127.0.9.11', 'mx.st5.test'],
  spoof: ['127.0.9.12', 'mx.spoof.test'],
  many: ['127.0.9.21', 'mx.many.test'],
};

function sink(name: string): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

async function publish(domain: string, id: string, mx: string[]): Promise<void> {
  await policies.publish(dns, domain, { id, mode: 'enforce', mx });
}

function mxRecords(domain: string, ...targets: Array<[number, string]>): void {
  dns.set(
    domain,
    targets.map(([preference, exchange]) => ({ type: 'MX' as const, preference, exchange })),
  );
}

function startHaraka(options: { dir?: string; mxIni?: string } = {}): Promise<HarakaInstance> {
  return HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    allow: '127.0.0.0/16',
    ...(options.dir ? { dir: options.dir } : {}),
    mxIniExtra: [
      options.mxIni ?? '',
      '[mta_sts]',
      `https_port=${policies.port}`,
      `ca_file=${ca.caCertPath}`,
      'fetch_timeout=1',
      'recheck=1',
      'negative_ttl=1',
    ].join('\n'),
  });
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const specs = [];
  for (const [address, host] of Object.values(SINKS)) {
    specs.push({ host: address, tls: await ca.issue({ dnsNames: [host] }), name: host });
    dns.set(host, [{ type: 'A' as const, address }]);
  }
  const started = await startSinksOnCommonPort(specs);
  sinks = new Map(Object.keys(SINKS).map((name, i) => [name, started[i] as SmtpSink]));
  mxPort = started[0]?.port ?? 0;
});

after(async () => {
  for (const s of sinks?.values() ?? []) await s.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('ST-5: an emptied cache file after a restart defers (never the spoofed MX) until a fresh policy replaces the entry', async () => {
  await publish('st5.test', '1', ['mx.st5.test']);
  mxRecords('st5.test', [10, 'mx.st5.test']);
  const first = await startHaraka();
  let dir = first.dir;
  try {
    await first.send({ to: 'user@st5.test' });
    await first.waitForEvent((e) => e.event === 'delivered' && e.domain === 'st5.test');
  } finally {
    await first.stop({ keepDir: true });
  }
  const cacheFile = path.join(dir, 'data', 'mta-sts', 'st5.test.json');
  assert.ok(fs.statSync(cacheFile).size > 0, 'the policy was cached');

  // The attack: the cache emptied, a spoofed MX (valid certificate for its own name) first,
  // the TXT lookup failing and the policy host answering 500.
  fs.writeFileSync(cacheFile, '');
  mxRecords('st5.test', [1, 'mx.spoof.test'], [10, 'mx.st5.test']);
  dns.behave('_mta-sts.st5.test', 'TXT', 'servfail');
  await policies.set('st5.test', { kind: 'status', status: 500 });
  const goodBefore = sink('good').messages.length;

  const restartedAt = Date.now(); // the recorder file in `dir` still holds the first instance's events
  const second = await startHaraka({ dir });
  try {
    await second.send({ to: 'user@st5.test', subject: 'after restart' });
    const deferred = await second.waitForEvent((e) => e.event === 'deferred' && e.domain === 'st5.test');
    assert.match(String(deferred.err), /Temporary MX lookup error/);
    assert.ok(
      second.logLines.some((l) =>
        /temporary failure for st5\.test: MTA-STS cache entry for st5\.test unreadable: .*may hide an enforce policy.*policy purge st5\.test/.test(
          l,
        ),
      ),
      second.logLines.filter((l) => l.includes('st5.test')).join('\n'),
    );
    assert.equal(sink('spoof').count('connect'), 0, 'the spoofed MX is never connected');
    assert.equal(sink('good').messages.length, goodBefore);

    // The policy host and TXT are back (a new id): the fresh policy replaces the entry, the message goes out.
    dns.behave('_mta-sts.st5.test', 'TXT', null);
    await publish('st5.test', '2', ['mx.st5.test']);
    await second.waitForEvent((e) => e.event === 'delivered' && e.domain === 'st5.test' && e.at >= restartedAt, 30000);
    assert.equal(sink('good').messages.length, goodBefore + 1);
    assert.equal(sink('spoof').count('connect'), 0, 'the spoofed MX is never connected');
    const stored = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { id: string };
    assert.equal(stored.id, '2', 'the entry was replaced');
    assert.ok(second.logLines.some((l) => /MTA-STS cache entry for st5\.test replaced by a fresh policy/.test(l)));
  } finally {
    await second.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    dir = '';
  }
});

test('ST-5: corrupt JSON in the Redis policy store defers (store-unavailable) and counts store_error until a fresh policy replaces it', async () => {
  const redis = await TestRedis.start();
  const store = openPolicyStore({
    dataDir: '/nonexistent',
    store: { backend: 'redis', prefix: 'st5:', commandTimeoutMs: 1000, plugin: {} },
    redisIni: { server: { host: '127.0.0.1', port: String(redis.port) } },
  });
  try {
    assert.equal(await store.ready?.(5000), true);
    const settings = (): MtaStsSettings => ({
      recheckMs: 1000,
      negativeTtlMs: 0,
      refreshBeforeMs: 3_600_000,
      fetch: { timeoutMs: 2000, port: policies.port, extraCa: [ca.caCert], addressPolicy: makeAddressPolicy([], []) },
    });
    const client = createDnsClient({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
    const events: CacheEvent[] = [];
    const resolver = (): MtaStsResolver =>
      new MtaStsResolver(client, store, settings, { event: (e) => events.push(e), log: () => undefined });

    await publish('redis-st5.test', '1', ['mx.st5.test']);
    assert.equal((await resolver().policyFor('redis-st5.test')).kind, 'policy');
    assert.match(await redis.cli('GET', 'st5:mta-sts:redis-st5.test'), /"id":"1"/);

    // Corrupt the entry; the policy host and TXT fail.
    await redis.cli('SET', 'st5:mta-sts:redis-st5.test', '{"domain":"redis-st5.test","id":');
    dns.behave('_mta-sts.redis-st5.test', 'TXT', 'servfail');
    await policies.set('redis-st5.test', { kind: 'status', status: 500 });
    const decided = await resolver().policyFor('redis-st5.test');
    assert.equal(decided.kind, 'store-unavailable');
    if (decided.kind === 'store-unavailable') {
      assert.match(decided.reason, /st5:mta-sts:redis-st5\.test.*may hide an enforce policy.*TXT lookup .* failed/);
    }
    assert.ok(events.includes('store_error'));

    // Back: a fresh policy replaces the corrupt value.
    dns.behave('_mta-sts.redis-st5.test', 'TXT', null);
    await publish('redis-st5.test', '2', ['mx.st5.test']);
    const fresh = await resolver().policyFor('redis-st5.test');
    assert.equal(fresh.kind === 'policy' && fresh.source, 'fetched');
    assert.match(await redis.cli('GET', 'st5:mta-sts:redis-st5.test'), /"id":"2"/);
  } finally {
    await store.close();
    await redis.stop();
  }
});

test('OPS-5: at most max_addresses_per_mx addresses per MX host and max_mx_records MX records are used', async () => {
  // 40 A records for one host: only the first 3 are used (the sink listens on the first).
  const addresses = Array.from({ length: 40 }, (_, i) => `127.0.9.${21 + i}`);
  dns.set(
    'mx.many.test',
    addresses.map((address) => ({ type: 'A' as const, address })),
  );
  // 300 MX records, the most preferred one the host above; the rest never looked at.
  mxRecords(
    'many.test',
    [1, 'mx.many.test'],
    ...Array.from({ length: 299 }, (_, i): [number, string] => [100 + i, `mx${i}.elsewhere.test`]),
  );
  const haraka = await startHaraka({ mxIni: '[main]\nmax_addresses_per_mx=3\nmax_mx_records=20' });
  try {
    dns.resetLog();
    await haraka.send({ to: 'user@many.test' });
    const delivered = await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'many.test');
    assert.equal(delivered.ip, '127.0.9.21');
    const mxLine = haraka.logLines.find((l) => /MX for many\.test: /.test(l)) ?? '';
    assert.match(mxLine, /1 mx\.many\.test \[127\.0\.9\.21 127\.0\.9\.22 127\.0\.9\.23\]/);
    assert.ok(haraka.logLines.some((l) => /MX mx\.many\.test: 37 more addresses not used \(max_addresses_per_mx=3\)/.test(l)));
    assert.ok(haraka.logLines.some((l) => /300 MX records, only the 20 most preferred considered \(max_mx_records\)/.test(l)));
    // Only the hosts kept (max_mx=5 of the 20 considered) are resolved: never 300 address lookups.
    const lookedUp = new Set(dns.queries({ type: 'A' }).map((q) => q.name));
    assert.ok(lookedUp.size <= 5, [...lookedUp].join(', '));
  } finally {
    await haraka.stop();
  }
});
