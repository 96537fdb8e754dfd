import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { createDnsClient } from '#lib/mx/dns-client';

let dns: TestDnsServer;
before(async () => {
  dns = await TestDnsServer.start();
});
after(async () => {
  await dns.stop();
});

test('MX-3: one MX query for the name as given, to the configured server, nothing else asked', async () => {
  dns.add('mx3.test', { type: 'MX', preference: 10, exchange: 'mx.mx3.test' });
  dns.resetLog();
  const client = createDnsClient({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  assert.deepEqual(await client.mx('mx3.test'), { kind: 'answer', records: [{ exchange: 'mx.mx3.test', priority: 10 }] });
  assert.deepEqual(
    dns.queries().map((q) => `${q.type} ${q.name}`),
    ['MX mx3.test'],
  );
});

test("MX-3: the ini's tries and timeout apply: a silent server is asked `tries` times, then the lookup fails", async () => {
  dns.add('silent.test', { type: 'MX', preference: 10, exchange: 'mx.silent.test' });
  dns.behave('silent.test', '*', 'timeout');
  dns.resetLog();
  const client = createDnsClient({ servers: [dns.address], timeoutMs: 200, tries: 2 });
  const answer = await client.mx('silent.test');
  assert.equal(answer.kind, 'failure');
  if (answer.kind === 'failure') assert.equal(answer.code, 'ETIMEOUT');
  assert.equal(dns.queries({ name: 'silent.test', type: 'MX' }).length, 2);
});

test('MX-4/MX-6: NODATA, NXDOMAIN and resolver failures are told apart', async () => {
  dns.add('nodata.test', { type: 'A', address: '192.0.2.1' });
  dns.add('broken.test', { type: 'A', address: '192.0.2.1' });
  dns.behave('broken.test', 'MX', 'servfail');
  const client = createDnsClient({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  assert.deepEqual(await client.mx('nodata.test'), { kind: 'nodata' });
  assert.deepEqual(await client.mx('missing.test'), { kind: 'nxdomain' });
  const failed = await client.mx('broken.test');
  assert.equal(failed.kind === 'failure' && failed.code, 'ESERVFAIL');
});
