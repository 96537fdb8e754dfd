import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, type MtaStsPolicy } from '../mta-sts/policy';
import type { DnsClient } from '../mx/dns-client';
import { PlanMemo, recordingDns, reshuffleTies } from './plan-memo';
import type { DeliveryPlan, DomainPolicy, NoPolicy, PlannedMx, PolicyInEffect } from './plan';

const NOW = 1_000_000;
const INPUTS = [{ settings: 1 }, 'defer', { table: 1 }];

function policyOf(id: string, parsed: MtaStsPolicy): DomainPolicy {
  return { kind: 'policy', id, policy: parsed, source: 'cache' };
}

const PARSED = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n');
const ENFORCE = policyOf('id1', PARSED.ok ? PARSED.policy : (undefined as never));
const NONE: NoPolicy = { kind: 'none', reason: 'no MTA-STS record' };

function deliverPlan(overrides: Partial<Extract<DeliveryPlan, { kind: 'deliver' }>> = {}): DeliveryPlan<PolicyInEffect> {
  return {
    kind: 'deliver',
    destination: { kind: 'domain', aLabel: 'example.com', uLabel: 'example.com' },
    policy: ENFORCE,
    mxs: [
      { host: 'mx1.example.com', priority: 10, addresses: ['192.0.2.1'] },
      { host: 'mx2.example.com', priority: 20, addresses: ['192.0.2.2'] },
    ],
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state: { domain: 'example.com', sts: { mode: 'enforce', policyId: 'id1' } },
    ...overrides,
  };
}

/** When the first DNS answer of the plan leaves the cache (what recordingDns says). */
const UNTIL = NOW + 60_000;

function keptMemo(plan = deliverPlan()): PlanMemo<PolicyInEffect> {
  const memo = new PlanMemo<PolicyInEffect>();
  assert.equal(memo.keep('example.com', plan, INPUTS, UNTIL, false), true);
  return memo;
}

test('OPS-6: a kept plan answers again while its DNS answers are cached, with the policy as answered now', () => {
  const memo = keptMemo();
  const again = memo.get('example.com', INPUTS, NOW + 59_999, () => ({ ...ENFORCE, source: 'cache' }));
  assert.equal(again?.kind, 'deliver');
  assert.deepEqual(again.kind === 'deliver' && again.mxs.map((mx) => mx.host), ['mx1.example.com', 'mx2.example.com']);
  assert.equal(again?.policy?.kind === 'policy' && (again.policy as DomainPolicy).source, 'cache');
  // The earliest expiry of the answers used (the A record's 60 s) ends it.
  assert.equal(
    memo.get('example.com', INPUTS, NOW + 60_000, () => ENFORCE),
    undefined,
  );
  assert.equal(memo.size, 0, 'an expired plan is dropped');
});

test('OPS-6: a kept plan is not used once an input in force is another object (a reload, a status change)', () => {
  for (const changed of [
    [{ settings: 1 }, 'defer', INPUTS[2]],
    [INPUTS[0], 'send', INPUTS[2]],
    [INPUTS[0], 'defer', { table: 1 }],
    INPUTS.slice(0, 2),
  ]) {
    const memo = keptMemo();
    assert.equal(
      memo.get('example.com', changed, NOW, () => ENFORCE),
      undefined,
      JSON.stringify(changed),
    );
    assert.equal(
      memo.get('example.com', INPUTS, NOW, () => ENFORCE),
      undefined,
      'dropped, not kept for later',
    );
  }
  assert.ok(
    keptMemo().get('example.com', [...INPUTS], NOW, () => ENFORCE),
    'the same objects in a new array: still valid',
  );
});

test('OPS-6: a kept plan is not used when the MTA-STS answer is not the same policy from memory', () => {
  const other = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n');
  const cases: Array<[string, () => PolicyInEffect | NoPolicy | undefined]> = [
    ['the resolver would have to ask (re-check due, expired, purged)', () => undefined],
    ['a new id', () => ({ ...ENFORCE, id: 'id2' })],
    ['another parsed policy with the same id', () => policyOf('id1', other.ok ? other.policy : (undefined as never))],
    ['no policy now', () => NONE],
    ['a store that cannot be read', () => ({ kind: 'store-unavailable', reason: 'down' })],
  ];
  for (const [what, now] of cases) assert.equal(keptMemo().get('example.com', INPUTS, NOW, now), undefined, what);
  // A plan made without a policy stays valid only while there is still none (and not a failed discovery).
  const none = keptMemo(deliverPlan({ policy: NONE, state: { domain: 'example.com' } }));
  assert.ok(none.get('example.com', INPUTS, NOW, () => ({ kind: 'none', reason: 'checked recently' })));
  assert.equal(
    none.get('example.com', INPUTS, NOW, () => ({ kind: 'none', reason: 'TXT lookup failed', failed: true })),
    undefined,
  );
  assert.equal(
    keptMemo(deliverPlan({ policy: NONE })).get('example.com', INPUTS, NOW, () => ENFORCE),
    undefined,
    'a new policy',
  );
});

test('OPS-6: only ordinary plans are kept', () => {
  const memo = new PlanMemo<PolicyInEffect>();
  const refused: Array<[string, DeliveryPlan<PolicyInEffect>, boolean, number | undefined]> = [
    ['something dropped on the way (a cap, a bad target)', deliverPlan({ notes: ['mx9.example.com left out: over max_mx'] }), false, UNTIL],
    ['DANE in play', deliverPlan(), true, UNTIL],
    ['DANE requirements', deliverPlan({ state: { domain: 'example.com', dane: { mode: 'on', hosts: {} } } }), false, UNTIL],
    ['a DANE exemption logged per message', deliverPlan({ daneExemptedBy: 'line 3' }), false, UNTIL],
    ['a failed MTA-STS discovery', deliverPlan({ policy: { kind: 'none', reason: 'fetch failed', failed: true } }), false, UNTIL],
    ['an unreadable policy store', deliverPlan({ policy: { kind: 'store-unavailable', reason: 'down' } }), false, UNTIL],
    ['an answer that was not cached (or a client without a cache)', deliverPlan(), false, undefined],
    [
      'an address literal',
      deliverPlan({ destination: { kind: 'literal', key: '[192.0.2.1]', address: '192.0.2.1' }, policy: null }),
      false,
      UNTIL,
    ],
    [
      'a transient failure',
      {
        kind: 'transient',
        cause: 'mx',
        destination: { kind: 'domain', aLabel: 'example.com', uLabel: 'example.com' },
        policy: null,
        reason: 'x',
      },
      false,
      UNTIL,
    ],
  ];
  for (const [what, plan, dane, until] of refused) assert.equal(memo.keep('example.com', plan, INPUTS, until, dane), false, what);
  assert.equal(memo.size, 0);
});

test('OPS-6, OPS-5: the memo keeps at most its limit of domains, the oldest kept goes first', () => {
  const memo = new PlanMemo<PolicyInEffect>(2);
  for (const domain of ['a.example', 'b.example', 'c.example']) memo.keep(domain, deliverPlan(), INPUTS, UNTIL, false);
  assert.equal(memo.size, 2);
  assert.equal(
    memo.get('a.example', INPUTS, NOW, () => ENFORCE),
    undefined,
  );
  assert.ok(memo.get('c.example', INPUTS, NOW, () => ENFORCE));
});

test('OPS-5: the memo is bounded in estimated bytes as well: long host names count, the oldest kept goes first', () => {
  const long = (n: number): PlannedMx[] =>
    Array.from({ length: 5 }, (_, i) => ({
      host: `mx${i}.${'x'.repeat(200)}${n}.example`,
      priority: i,
      addresses: ['192.0.2.1', '2001:db8::1'],
    }));
  const memo = new PlanMemo<PolicyInEffect>(100, 12_000);
  for (let n = 0; n < 5; n++) memo.keep(`d${n}.example`, deliverPlan({ mxs: long(n) }), INPUTS, UNTIL, false);
  assert.ok(memo.bytes <= 12_000, `${memo.bytes} bytes`);
  assert.ok(memo.size < 5 && memo.size > 0, `${memo.size} kept`);
  assert.equal(
    memo.get('d0.example', INPUTS, NOW, () => ENFORCE),
    undefined,
    'the oldest went first',
  );
  assert.ok(memo.get('d4.example', INPUTS, NOW, () => ENFORCE));
  const small = new PlanMemo<PolicyInEffect>();
  small.keep('example.com', deliverPlan(), INPUTS, UNTIL, false);
  assert.ok(small.bytes > 0 && small.bytes < 2_000, `an ordinary plan is counted at ${small.bytes} bytes`);
});

test('MX-7: each reuse of a kept plan shuffles equal preferences again, never across preferences', () => {
  const mxs: PlannedMx[] = [
    { host: 'a', priority: 10, addresses: ['192.0.2.1'] },
    { host: 'b', priority: 10, addresses: ['192.0.2.2'] },
    { host: 'c', priority: 10, addresses: ['192.0.2.3'] },
    { host: 'd', priority: 20, addresses: ['192.0.2.4'] },
    { host: 'e', priority: 20, addresses: ['192.0.2.5'] },
  ];
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const order = reshuffleTies(mxs).map((mx) => mx.host);
    assert.deepEqual(order.slice(0, 3).sort(), ['a', 'b', 'c']);
    assert.deepEqual(order.slice(3).sort(), ['d', 'e']);
    seen.add(order.join(''));
  }
  assert.equal(seen.size, 12, 'every order of the ties (3! × 2!) comes up');
  assert.deepEqual(
    mxs.map((mx) => mx.host),
    ['a', 'b', 'c', 'd', 'e'],
    'the kept plan itself is not reordered',
  );
  const distinct = mxs.filter((_, i) => i === 0 || i === 3);
  assert.equal(reshuffleTies(distinct), distinct, 'no tie: the same array');
  const memo = keptMemo(deliverPlan({ mxs }));
  const firsts = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const plan = memo.get('example.com', INPUTS, NOW, () => ENFORCE);
    if (plan?.kind === 'deliver') firsts.add(plan.mxs[0]?.host ?? '');
  }
  assert.deepEqual([...firsts].sort(), ['a', 'b', 'c']);
});

test('OPS-6: the recording client answers as the client it wraps and says until when the answers it gave stay cached', async () => {
  const expiry = new Map<string, number>([
    ['MX example.com', NOW + 300_000],
    ['A mx1.example.com', NOW + 60_000],
    ['AAAA mx1.example.com', NOW + 120_000],
  ]);
  const inner: DnsClient = {
    mx: async () => ({ kind: 'answer', records: [{ exchange: 'mx1.example.com', priority: 10 }] }),
    a: async () => ({ kind: 'answer', records: ['192.0.2.1'] }),
    aaaa: async () => ({ kind: 'nodata' }),
    txt: async () => ({ kind: 'nxdomain' }),
    cachedUntil: (name, type) => expiry.get(`${type} ${name}`),
  };
  const dns = recordingDns(inner);
  assert.equal(dns.until(), undefined, 'nothing asked: nothing to rely on');
  assert.deepEqual(await dns.client.mx('example.com'), await inner.mx('example.com'));
  assert.deepEqual(await dns.client.a('mx1.example.com'), await inner.a('mx1.example.com'));
  await dns.client.aaaa('mx1.example.com');
  // An entry replaced after its answer was given (expired, asked again elsewhere) lends nothing to this plan.
  expiry.set('A mx1.example.com', NOW + 900_000);
  assert.equal(dns.until(), NOW + 60_000, 'the earliest expiry, as each answer arrived');
  await dns.client.txt('_mta-sts.example.com');
  assert.equal(dns.until(), undefined, 'one answer not cached: the plan is not kept');
  const { client: uncachedClient, until } = recordingDns({ ...inner, cachedUntil: undefined } as DnsClient);
  await uncachedClient.mx('example.com');
  assert.equal(until(), undefined, 'a client without a cache cannot say');
});
