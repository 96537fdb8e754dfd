import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { TestDnsServer } from '../fixtures/dns-server';
import { CachingTransport } from '#lib/dns/answer-cache';
import { createDnsTransport } from '#lib/dns/wire';
import { createDnsClient, dnsClientOver } from '#lib/mx/dns-client';

let dns: TestDnsServer;
before(async () => {
  dns = await TestDnsServer.start({ defaultTtl: 300 });
});
after(async () => {
  await dns.stop();
});

/** A client over the real wire transport and a cache whose clock the test moves. */
function clientWithClock(maxBytes = 1024 * 1024, maxTtlS = 3600) {
  const clock = { now: 1_000_000 };
  const cache = new CachingTransport(
    createDnsTransport({ servers: [dns.address], timeoutMs: 500, tries: 1 }),
    { maxBytes, maxTtlS },
    () => clock.now,
  );
  return { client: dnsClientOver(cache), cache, clock };
}

function asked(name: string, type: string): number {
  return dns.queries({ name, type }).length;
}

test('OPS-6: a positive answer is kept for its TTL, then asked again', async () => {
  dns.set('ttl.cache.test', [{ type: 'MX', preference: 10, exchange: 'mx.ttl.cache.test' }], 120);
  dns.resetLog();
  const { client, clock } = clientWithClock();
  const first = await client.mx('ttl.cache.test');
  assert.deepEqual(first, { kind: 'answer', records: [{ exchange: 'mx.ttl.cache.test', priority: 10 }] });
  clock.now += 119_000;
  assert.deepEqual(await client.mx('TTL.cache.test.'), first);
  assert.equal(asked('ttl.cache.test', 'MX'), 1, 'the second lookup within the TTL is answered from the cache');
  clock.now += 2_000;
  await client.mx('ttl.cache.test');
  assert.equal(asked('ttl.cache.test', 'MX'), 2, 'after the TTL the server is asked again');
});

test('OPS-6: the smallest TTL of the RRset counts, a TTL of 0 is never kept, and cache_max_ttl caps long TTLs', async () => {
  dns.set('mixed.cache.test', [{ type: 'A', address: '192.0.2.1' }], 600);
  dns.add('mixed.cache.test', { type: 'A', address: '192.0.2.2' }, 30);
  dns.set('zero.cache.test', [{ type: 'A', address: '192.0.2.3' }], 0);
  dns.set('long.cache.test', [{ type: 'A', address: '192.0.2.4' }], 86400);
  dns.resetLog();
  const { client, clock } = clientWithClock(1024 * 1024, 100);
  for (const name of ['mixed.cache.test', 'zero.cache.test', 'long.cache.test']) await client.a(name);
  clock.now += 29_000;
  for (const name of ['mixed.cache.test', 'zero.cache.test', 'long.cache.test']) await client.a(name);
  assert.deepEqual(
    ['mixed.cache.test', 'zero.cache.test', 'long.cache.test'].map((n) => asked(n, 'A')),
    [1, 2, 1],
  );
  clock.now += 2_000; // 31 s: past the smallest TTL of mixed
  await client.a('mixed.cache.test');
  assert.equal(asked('mixed.cache.test', 'A'), 2);
  clock.now += 70_000; // 101 s: past the cap for long
  await client.a('long.cache.test');
  assert.equal(asked('long.cache.test', 'A'), 2);
});

test('OPS-6: NXDOMAIN and NODATA are kept for the SOA negative TTL (RFC 2308); SERVFAIL and timeouts are not kept', async () => {
  const negative = await TestDnsServer.start({ defaultTtl: 45 });
  try {
    negative.add('nodata.neg.test', { type: 'A', address: '192.0.2.9' });
    negative.add('servfail.neg.test', { type: 'A', address: '192.0.2.9' });
    negative.behave('servfail.neg.test', 'MX', 'servfail');
    negative.add('silent.neg.test', { type: 'A', address: '192.0.2.9' });
    negative.behave('silent.neg.test', 'MX', 'timeout');
    const clock = { now: 0 };
    const cache = new CachingTransport(
      createDnsTransport({ servers: [negative.address], timeoutMs: 150, tries: 1 }),
      { maxBytes: 1 << 20, maxTtlS: 3600 },
      () => clock.now,
    );
    const client = dnsClientOver(cache);
    const names = ['nodata.neg.test', 'missing.neg.test', 'servfail.neg.test', 'silent.neg.test'];
    const first = await Promise.all(names.map((n) => client.mx(n)));
    assert.deepEqual(
      first.map((a) => (a.kind === 'failure' ? a.code : a.kind)),
      ['nodata', 'nxdomain', 'ESERVFAIL', 'ETIMEOUT'],
    );
    clock.now += 44_000;
    for (const n of names) await client.mx(n);
    assert.deepEqual(
      names.map((n) => negative.queries({ name: n, type: 'MX' }).length),
      [1, 1, 2, 2],
    );
    clock.now += 2_000;
    await client.mx('nodata.neg.test');
    assert.equal(negative.queries({ name: 'nodata.neg.test', type: 'MX' }).length, 2);
  } finally {
    await negative.stop();
  }
});

test('OPS-6: 50 concurrent lookups of one name make one query', async () => {
  dns.set('burst.cache.test', [{ type: 'A', address: '192.0.2.10' }]);
  dns.resetLog();
  const { client } = clientWithClock();
  const answers = await Promise.all(Array.from({ length: 50 }, () => client.a('burst.cache.test')));
  assert.ok(answers.every((a) => a.kind === 'answer' && a.records[0] === '192.0.2.10'));
  assert.equal(asked('burst.cache.test', 'A'), 1);
});

test('OPS-5: the cache stays within its memory budget, dropping the oldest answers first', async () => {
  for (let i = 0; i < 40; i++) dns.set(`n${i}.budget.test`, [{ type: 'A', address: `192.0.2.${i + 1}` }]);
  const { client, cache } = clientWithClock(8 * 1024);
  for (let i = 0; i < 40; i++) await client.a(`n${i}.budget.test`);
  const stats = cache.stats();
  assert.ok(stats.bytes <= 8 * 1024, `${stats.bytes} bytes kept`);
  assert.ok(stats.entries > 0 && stats.entries < 40, `${stats.entries} entries kept`);
  dns.resetLog();
  await client.a('n39.budget.test');
  await client.a('n0.budget.test');
  assert.equal(asked('n39.budget.test', 'A'), 0, 'the newest answer is still cached');
  assert.equal(asked('n0.budget.test', 'A'), 1, 'the oldest answer was dropped');
});

test('MX-3: an answer too large for UDP is asked again over TCP', async () => {
  const txt = 'v=STSv1; id=' + 'x'.repeat(900);
  dns.set('big.cache.test', [{ type: 'TXT', data: txt }]);
  dns.resetLog();
  const client = createDnsClient({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  assert.deepEqual(await client.txt('big.cache.test'), { kind: 'answer', records: [txt] });
  assert.deepEqual(
    dns.queries({ name: 'big.cache.test' }).map((q) => q.transport),
    ['udp', 'tcp'],
  );
});

test('MX-6: a reply for another question or another id is ignored; the real reply is taken', async () => {
  dns.set('spoof.cache.test', [{ type: 'A', address: '192.0.2.77' }]);
  // A server that first sends two forged replies (wrong id, wrong name), then the real one.
  const forger = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => forger.bind(0, '127.0.0.1', resolve));
  forger.on('message', (msg, rinfo) => {
    const query = dnsPacket.decode(msg);
    const reply = (id: number, name: string, address: string): Buffer =>
      dnsPacket.encode({
        type: 'response',
        id,
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: [{ type: 'A', name, class: 'IN' }],
        answers: [{ type: 'A', name, ttl: 300, class: 'IN', data: address }],
      });
    const q = query.questions?.[0];
    if (!q) return;
    forger.send(reply(((query.id ?? 0) + 1) % 65536, q.name, '198.51.100.1'), rinfo.port, rinfo.address);
    forger.send(reply(query.id ?? 0, 'other.cache.test', '198.51.100.2'), rinfo.port, rinfo.address);
    forger.send(reply(query.id ?? 0, q.name, '192.0.2.77'), rinfo.port, rinfo.address);
  });
  try {
    const client = createDnsClient({ servers: [`127.0.0.1:${forger.address().port}`], timeoutMs: 1000, tries: 1 });
    assert.deepEqual(await client.a('spoof.cache.test'), { kind: 'answer', records: ['192.0.2.77'] });
  } finally {
    forger.close();
  }
});

test('MX-6: a server that is not listening fails the lookup at once (ECONNREFUSED), and the next server answers', async () => {
  const closed = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => closed.bind(0, '127.0.0.1', resolve));
  const deadPort = closed.address().port;
  closed.close();
  dns.set('next.cache.test', [{ type: 'A', address: '192.0.2.5' }]);
  const onlyDead = createDnsClient({ servers: [`127.0.0.1:${deadPort}`], timeoutMs: 5000, tries: 1 });
  const started = Date.now();
  const failed = await onlyDead.a('next.cache.test');
  assert.equal(failed.kind === 'failure' && failed.code, 'ECONNREFUSED');
  assert.ok(Date.now() - started < 4000, 'refused, not timed out');
  const withNext = createDnsClient({ servers: [`127.0.0.1:${deadPort}`, dns.address], timeoutMs: 5000, tries: 1 });
  assert.deepEqual(await withNext.a('next.cache.test'), { kind: 'answer', records: ['192.0.2.5'] });
});

test('MX-3: servers are given as host, host:port or [v6]:port; anything else is refused with the entry named', async () => {
  assert.throws(() => createDnsTransport({ servers: ['dns.example'], timeoutMs: 100, tries: 1 }), /"dns.example": not an IP address/);
  assert.throws(() => createDnsTransport({ servers: ['127.0.0.1:99999'], timeoutMs: 100, tries: 1 }), /bad port/);
  const v6 = await TestDnsServer.start({ host: '::1', defaultTtl: 0 });
  try {
    v6.add('v6.cache.test', { type: 'AAAA', address: '2001:db8::1' });
    const client = createDnsClient({ servers: [v6.address], timeoutMs: 1000, tries: 1 });
    assert.deepEqual(await client.aaaa('v6.cache.test'), { kind: 'answer', records: ['2001:db8::1'] });
  } finally {
    await v6.stop();
  }
});

test('OPS-6: the client says until when an answer stays cached (what a kept plan may rely on), and nothing for one not kept', async () => {
  dns.set('until.cache.test', [{ type: 'MX', preference: 10, exchange: 'mx.until.cache.test' }], 120);
  dns.add('until.cache.test', { type: 'A', address: '192.0.2.9' }, 30);
  dns.set('zero-until.cache.test', [{ type: 'A', address: '192.0.2.10' }], 0);
  const { client, cache, clock } = clientWithClock();
  assert.equal(client.cachedUntil?.('until.cache.test', 'MX'), undefined, 'not asked yet');
  await client.mx('until.cache.test');
  await client.a('until.cache.test');
  await client.a('zero-until.cache.test');
  assert.equal(client.cachedUntil?.('until.cache.test', 'MX'), 1_000_000 + 120_000);
  assert.equal(client.cachedUntil?.('UNTIL.cache.test.', 'A'), 1_000_000 + 30_000, 'case and the root dot do not matter');
  assert.equal(client.cachedUntil?.('until.cache.test', 'AAAA'), undefined, 'another type is another question');
  assert.equal(client.cachedUntil?.('zero-until.cache.test', 'A'), undefined, 'a TTL of 0 is not kept');
  assert.equal(dnsClientOver(cache, true).cachedUntil?.('until.cache.test', 'MX'), undefined, 'DNSSEC questions are kept apart');
  clock.now += 30_000;
  assert.equal(client.cachedUntil?.('until.cache.test', 'A'), undefined, 'expired');
  assert.equal(client.cachedUntil?.('until.cache.test', 'MX'), 1_000_000 + 120_000);
  const uncached = dnsClientOver(createDnsTransport({ servers: [dns.address], timeoutMs: 500, tries: 1 }));
  assert.equal(uncached.cachedUntil, undefined, 'a client without a cache cannot say');
});
