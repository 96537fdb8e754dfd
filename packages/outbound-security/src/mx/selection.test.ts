import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MxRecord } from './dns-client';
import { DEFAULT_MAX_MX_RECORDS, filterAndCap, isNullMx, orderMxRecords } from './selection';

test('MX-5: a single MX of preference 0 and target "." is a null MX', () => {
  assert.equal(isNullMx([{ exchange: '', priority: 0 }]), true);
  assert.equal(isNullMx([{ exchange: '.', priority: 0 }]), true);
  assert.equal(isNullMx([{ exchange: '', priority: 10 }]), false);
  assert.deepEqual(orderMxRecords([{ exchange: '', priority: 0 }]), { kind: 'null-mx' });
});

test('MX-5: a null MX listed beside real MXs is ignored', () => {
  const result = orderMxRecords([
    { exchange: '', priority: 0 },
    { exchange: 'mx.example.com', priority: 10 },
  ]);
  assert.equal(result.kind, 'hosts');
  if (result.kind === 'hosts') {
    assert.deepEqual(result.hosts, [{ host: 'mx.example.com', priority: 10 }]);
    assert.equal(result.dropped.length, 1);
  }
});

test('MX-7: ordered by preference, duplicates removed, invalid targets dropped', () => {
  const result = orderMxRecords([
    { exchange: 'c.example', priority: 30 },
    { exchange: 'A.example.', priority: 10 },
    { exchange: 'bad_name.example', priority: 5 },
    { exchange: 'b.example', priority: 20 },
    { exchange: 'a.example', priority: 40 },
    { exchange: '192.0.2.1', priority: 1 },
  ]);
  assert.equal(result.kind, 'hosts');
  if (result.kind !== 'hosts') return;
  assert.deepEqual(
    result.hosts.map((h) => h.host),
    ['a.example', 'b.example', 'c.example'],
  );
  assert.deepEqual(result.dropped.map((d) => d.exchange).sort(), ['192.0.2.1', 'bad_name.example']);
});

test('MX-7: ties are shuffled, each order possible', () => {
  const records = [
    { exchange: 'a.example', priority: 10 },
    { exchange: 'b.example', priority: 10 },
    { exchange: 'c.example', priority: 20 },
  ];
  const firsts = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const result = orderMxRecords(records);
    if (result.kind !== 'hosts') throw new Error('unexpected');
    firsts.add(result.hosts[0]?.host ?? '');
    assert.equal(result.hosts[2]?.host, 'c.example');
  }
  assert.deepEqual([...firsts].sort(), ['a.example', 'b.example']);
});

test('MX-8: the filter runs before the cap; nothing left names the filter', () => {
  const hosts = Array.from({ length: 8 }, (_, i) => ({ host: `mx${i}.example`, priority: i }));
  const odd = { name: 'policy "odd"', accepts: (h: string) => Number(/\d/.exec(h)?.[0]) % 2 === 1 };
  const result = filterAndCap(hosts, 3, odd);
  assert.equal(result.kind, 'hosts');
  if (result.kind === 'hosts') {
    assert.deepEqual(
      result.hosts.map((h) => h.host),
      ['mx1.example', 'mx3.example', 'mx5.example'],
    );
    assert.deepEqual(result.capped, ['mx7.example']);
  }
  const none = filterAndCap(hosts, 3, { name: 'MTA-STS policy of example', accepts: () => false });
  assert.equal(none.kind, 'none-left');
  if (none.kind === 'none-left') assert.match(none.reason, /MTA-STS policy of example/);
});

test('MX-8: at most max_mx hosts', () => {
  const hosts = Array.from({ length: 7 }, (_, i) => ({ host: `mx${i}.example`, priority: i }));
  const result = filterAndCap(hosts, 5);
  assert.equal(result.kind === 'hosts' && result.hosts.length, 5);
});

test('MX-5: a null MX that the answer holds twice (the same record repeated) is still a null MX', () => {
  assert.deepEqual(
    orderMxRecords([
      { exchange: '.', priority: 0 },
      { exchange: '.', priority: 0 },
    ]),
    { kind: 'null-mx' },
  );
  assert.deepEqual(
    orderMxRecords([
      { exchange: '', priority: 0 },
      { exchange: '.', priority: 0 },
    ]),
    { kind: 'null-mx' },
  );
  // Two different records (another preference) are not "a single null MX": nothing usable, nothing bounced.
  const two = orderMxRecords([
    { exchange: '.', priority: 0 },
    { exchange: '.', priority: 10 },
  ]);
  assert.equal(two.kind === 'hosts' && two.hosts.length, 0);
});

test('MX-7: null or malformed entries in a resolver answer are dropped, never thrown on', () => {
  const hostile = [
    null,
    undefined,
    42,
    {},
    { exchange: null, priority: 10 },
    { exchange: 'mx.example.com' },
    { exchange: 'mx2.example.com', priority: 20 },
  ];
  const result = orderMxRecords(hostile as unknown as MxRecord[]);
  assert.equal(result.kind, 'hosts');
  if (result.kind !== 'hosts') return;
  assert.deepEqual(result.hosts, [{ host: 'mx2.example.com', priority: 20 }]);
  assert.equal(result.dropped.length, 6);
  assert.equal(isNullMx([null, { exchange: '.', priority: 0 }] as unknown as MxRecord[]), true);
});

test(`OPS-5: at most max_mx_records (default ${DEFAULT_MAX_MX_RECORDS}) MX records are considered, the most preferred ones`, () => {
  const records = Array.from({ length: 1500 }, (_, i) => ({ exchange: `mx${i}.example.com`, priority: 1500 - i }));
  const result = orderMxRecords(records);
  assert.equal(result.kind, 'hosts');
  if (result.kind !== 'hosts') return;
  assert.equal(result.hosts.length, DEFAULT_MAX_MX_RECORDS);
  assert.equal(result.hosts[0]?.host, 'mx1499.example.com');
  assert.equal(result.notConsidered, 1500 - DEFAULT_MAX_MX_RECORDS);
  const three = orderMxRecords(records, Math.random, 3);
  assert.deepEqual(three.kind === 'hosts' && three.hosts.map((h) => h.priority), [1, 2, 3]);
});
