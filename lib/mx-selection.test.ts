import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterAndCap, isNullMx, orderMxRecords } from './mx-selection';

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
