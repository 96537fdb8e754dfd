import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, type MtaStsPolicy } from '../mta-sts/policy';
import { makeAddressPolicy, DEFAULT_REFUSED_RANGES } from '../mx/address-policy';
import type { DnsAnswer, DnsClient, MxRecord } from '../mx/dns-client';
import { MTA_STS_DISABLED, destinationName, planDelivery, type PlanDeps, type PlanSettings, type PolicyInEffect } from './plan';
import { parsePolicyTable } from '../policy-table/table';

/** A DNS client answering from a table; every question is recorded, in order. */
function fakeDns(zone: { mx?: Record<string, DnsAnswer<MxRecord>>; a?: Record<string, string[]> }): DnsClient & { asked: string[] } {
  const asked: string[] = [];
  const addresses = (name: string): DnsAnswer<string> => {
    const found = zone.a?.[name];
    return found ? { kind: 'answer', records: found } : { kind: 'nxdomain' };
  };
  return {
    asked,
    mx: async (name) => {
      asked.push(`MX ${name}`);
      return zone.mx?.[name] ?? { kind: 'nxdomain' };
    },
    a: async (name) => {
      asked.push(`A ${name}`);
      return addresses(name);
    },
    aaaa: async (name) => {
      asked.push(`AAAA ${name}`);
      return zone.a?.[name] ? { kind: 'nodata' } : { kind: 'nxdomain' };
    },
    txt: async (name) => {
      asked.push(`TXT ${name}`);
      return { kind: 'nodata' };
    },
  };
}

function mxAnswer(...records: Array<[number, string]>): DnsAnswer<MxRecord> {
  return { kind: 'answer', records: records.map(([priority, exchange]) => ({ priority, exchange })) };
}

function policy(mode: 'enforce' | 'testing' | 'none', ...mx: string[]): MtaStsPolicy {
  const parsed = parsePolicy(`version: STSv1\nmode: ${mode}\nmax_age: 86400\n${mx.map((m) => `mx: ${m}\n`).join('')}`);
  assert.ok(parsed.ok);
  return parsed.policy;
}

const SETTINGS: PlanSettings = {
  maxMx: 5,
  maxMxRecords: 50,
  maxAddressesPerMx: 4,
  // The documentation ranges are reserved: allowed here, as the ini's [addresses] allow would.
  addressPolicy: makeAddressPolicy(DEFAULT_REFUSED_RANGES, ['192.0.2.0/24', '2001:db8::/32']),
  mtaStsEnabled: true,
  onStoreError: 'defer',
};

const ZONE = {
  mx: {
    'example.com': mxAnswer([20, 'mx2.example.com'], [10, 'mx1.example.com']),
    'xn--bcher-kva.example': mxAnswer([10, 'mx1.example.com']),
    'xn--bcher-kva.shop.example': mxAnswer([10, 'mx1.example.com']),
    'implicit.example': { kind: 'nodata' } as const,
    'nullmx.example': mxAnswer([0, '.']),
    'servfail.example': { kind: 'failure', code: 'ESERVFAIL', message: 'queryMx ESERVFAIL' } as const,
  },
  a: {
    'mx1.example.com': ['192.0.2.11'],
    'mx2.example.com': ['192.0.2.12'],
    'implicit.example': ['192.0.2.20'],
  },
};

/** Deps with a fixed policy; `calls` records the policy lookups beside the DNS questions. */
function deps(answer: PolicyInEffect, guard: string | null = null): PlanDeps<PolicyInEffect> & { dns: ReturnType<typeof fakeDns> } {
  const dns = fakeDns(ZONE);
  return {
    dns,
    policyFor: async (aLabel) => {
      dns.asked.push(`policy ${aLabel}`);
      return answer;
    },
    guardProblem: () => guard,
    random: () => 0,
  };
}

const NONE: PolicyInEffect = { kind: 'none', reason: 'no policy record' };

test('MX-1, MX-3: the A-label is looked up (one MX query), every MX with its addresses in preference order', async () => {
  const d = deps(NONE);
  const plan = await planDelivery('Bücher.Example', d, SETTINGS);
  assert.equal(plan.kind, 'deliver');
  if (plan.kind !== 'deliver') return;
  assert.deepEqual(plan.destination, { kind: 'domain', aLabel: 'xn--bcher-kva.example', uLabel: 'bücher.example' });
  assert.equal(destinationName(plan.destination), 'xn--bcher-kva.example (bücher.example)');
  assert.deepEqual(plan.mxs, [{ host: 'mx1.example.com', priority: 10, addresses: ['192.0.2.11'] }]);
  assert.deepEqual(plan.state, { domain: 'xn--bcher-kva.example' });
  assert.deepEqual(plan.policy, NONE);
  assert.equal(d.dns.asked.filter((q) => q.startsWith('MX ')).length, 1);

  const ordered = await planDelivery('example.com', deps(NONE), SETTINGS);
  assert.deepEqual(ordered.kind === 'deliver' ? ordered.mxs.map((mx) => mx.host) : ordered, ['mx1.example.com', 'mx2.example.com']);
});

test('MX-1: an invalid recipient domain is a permanent failure (5.1.2) before any lookup', async () => {
  const d = deps(NONE);
  const plan = await planDelivery('xn--zz.test', d, SETTINGS);
  assert.deepEqual(
    { ...plan, reason: undefined },
    { kind: 'permanent', cause: 'invalid-domain', destination: null, policy: null, dsn: '5.1.2', reason: undefined },
  );
  assert.match(plan.kind === 'permanent' ? plan.reason : '', /^invalid recipient domain: "xn--zz\.test"/);
  assert.deepEqual(d.dns.asked, []);
});

test('MX-2: an address literal skips MX lookup and MTA-STS; its canonical key is the delivery state; a refused address defers', async () => {
  const d = deps({ kind: 'policy', id: 'x', policy: policy('enforce', 'mx1.example.com'), source: 'cache' });
  const v4 = await planDelivery('[192.0.2.1]', d, SETTINGS);
  assert.deepEqual(v4, {
    kind: 'deliver',
    destination: { kind: 'literal', key: '[192.0.2.1]', address: '192.0.2.1' },
    policy: null,
    mxs: [{ host: undefined, priority: 0, addresses: ['192.0.2.1'] }],
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state: { domain: '[192.0.2.1]' },
  });
  const v6 = await planDelivery('[IPv6:2001:DB8:0::1]', d, SETTINGS);
  assert.equal(v6.kind === 'deliver' ? v6.state.domain : v6.kind, '[2001:db8::1]', 'ST-6: one canonical key');
  assert.deepEqual(d.dns.asked, [], 'no DNS question, no policy lookup');

  const refused = await planDelivery('[127.0.0.1]', d, SETTINGS);
  assert.deepEqual(refused, {
    kind: 'transient',
    cause: 'literal-refused',
    destination: { kind: 'literal', key: '[127.0.0.1]', address: '127.0.0.1' },
    policy: null,
    reason: 'address literal refused: 127.0.0.1 is in the refused loopback range',
  });
  const invalid = await planDelivery('[2001:db8::1]', d, SETTINGS);
  assert.deepEqual(
    [invalid.kind, invalid.kind === 'permanent' ? [invalid.cause, invalid.reason] : null],
    ['permanent', ['invalid-literal', '"[2001:db8::1]" is not a valid address literal']],
  );
});

test('STS-9, MX-8: the policy is asked before the MX query, and an enforce policy filters an implicit MX too', async () => {
  const enforce: PolicyInEffect = { kind: 'policy', id: 'p9', policy: policy('enforce', 'mx1.example.com'), source: 'fetched' };
  const d = deps(enforce);
  const plan = await planDelivery('implicit.example', d, SETTINGS);
  assert.deepEqual(d.dns.asked.slice(0, 2), ['policy implicit.example', 'MX implicit.example']);
  assert.equal(plan.kind, 'transient');
  if (plan.kind !== 'transient') return;
  assert.equal(plan.cause, 'mx');
  assert.match(plan.reason, /^no MX host matches MTA-STS policy of implicit\.example \(id p9, mode enforce\)/);
  assert.equal(plan.policy, enforce);
});

test('STS-7, MX-8: enforce keeps only the matching MXs (a note names the others) and puts the mode and id in the delivery state', async () => {
  const enforce: PolicyInEffect = { kind: 'policy', id: 'e1', policy: policy('enforce', 'mx2.example.com'), source: 'cache' };
  const plan = await planDelivery('example.com', deps(enforce), SETTINGS);
  assert.equal(plan.kind, 'deliver');
  if (plan.kind !== 'deliver') return;
  assert.deepEqual(
    plan.mxs.map((mx) => mx.host),
    ['mx2.example.com'],
  );
  assert.deepEqual(plan.notes, ['MX hosts not matching MTA-STS policy of example.com (id e1, mode enforce): mx1.example.com']);
  assert.deepEqual(plan.state, { domain: 'example.com', sts: { mode: 'enforce', policyId: 'e1', policy: enforce.policy } });
  assert.deepEqual(plan.testingWouldNotUse, []);
});

test('STS-8: testing filters nothing; the hosts enforce would not use are named for the log', async () => {
  const testing: PolicyInEffect = { kind: 'policy', id: 't1', policy: policy('testing', 'mx2.example.com'), source: 'cache' };
  const plan = await planDelivery('example.com', deps(testing, 'guard missing'), SETTINGS);
  assert.equal(plan.kind, 'deliver', 'TLS-6 concerns enforce only');
  if (plan.kind !== 'deliver') return;
  assert.deepEqual(
    plan.mxs.map((mx) => mx.host),
    ['mx1.example.com', 'mx2.example.com'],
  );
  assert.deepEqual(plan.testingWouldNotUse, ['mx1.example.com']);
  assert.deepEqual(plan.state, { domain: 'example.com', sts: { mode: 'testing', policyId: 't1', policy: testing.policy } });
});

test('TLS-6: an enforce policy while the connection guard is missing defers, naming why', async () => {
  const enforce: PolicyInEffect = { kind: 'policy', id: 'g1', policy: policy('enforce', 'mx1.example.com'), source: 'fetched' };
  const plan = await planDelivery('example.com', deps(enforce, 'HMailItem changed'), SETTINGS);
  assert.deepEqual(plan, {
    kind: 'transient',
    cause: 'unguarded',
    destination: { kind: 'domain', aLabel: 'example.com', uLabel: 'example.com' },
    policy: enforce,
    reason: 'outbound_tls cannot guard connections (HMailItem changed); example.com has an MTA-STS enforce policy (id g1)',
  });
  assert.equal(
    (await planDelivery('example.com', deps(NONE, 'HMailItem changed'), SETTINGS)).kind,
    'deliver',
    'no policy: no guard needed here',
  );
});

test('ST-4, ST-5: a policy store that cannot be read defers under on_store_error=defer; under send the MXs are used unfiltered', async () => {
  const unavailable: PolicyInEffect = { kind: 'store-unavailable', reason: 'MTA-STS cache (redis) unavailable: ECONNREFUSED' };
  const d = deps(unavailable);
  const deferred = await planDelivery('example.com', d, SETTINGS);
  assert.deepEqual(deferred, {
    kind: 'transient',
    cause: 'store-unavailable',
    destination: { kind: 'domain', aLabel: 'example.com', uLabel: 'example.com' },
    policy: unavailable,
    reason: unavailable.reason,
  });
  assert.deepEqual(d.dns.asked, ['policy example.com'], 'no MX query');
  const sent = await planDelivery('example.com', deps(unavailable), { ...SETTINGS, onStoreError: 'send' });
  assert.equal(sent.kind, 'deliver');
  if (sent.kind !== 'deliver') return;
  assert.equal(sent.mxs.length, 2);
  assert.equal(sent.policy, unavailable);
  // RT-3: a policy may hide behind the store: a REQUIRETLS message waits rather than being returned.
  assert.deepEqual(sent.state, { domain: 'example.com', mxAuthUnknown: unavailable.reason });
});

test('STS-9: with MTA-STS disabled the policy source is never asked', async () => {
  const d = deps({ kind: 'policy', id: 'x', policy: policy('enforce', 'nothing.example'), source: 'cache' });
  const plan = await planDelivery('example.com', d, { ...SETTINGS, mtaStsEnabled: false });
  assert.equal(plan.kind, 'deliver');
  assert.equal(plan.policy, MTA_STS_DISABLED);
  assert.ok(!d.dns.asked.some((q) => q.startsWith('policy ')));
});

test('MX-5, MX-4, MX-6: null MX, NXDOMAIN and SERVFAIL are null-mx (5.1.10), permanent (5.1.2) and transient, with the policy that was used', async () => {
  const nullMx = await planDelivery('nullmx.example', deps(NONE), SETTINGS);
  assert.deepEqual(nullMx, {
    kind: 'null-mx',
    destination: { kind: 'domain', aLabel: 'nullmx.example', uLabel: 'nullmx.example' },
    policy: NONE,
    dsn: '5.1.10',
    reason: 'nullmx.example accepts no mail (null MX, RFC 7505)',
  });
  const nx = await planDelivery('missing.example', deps(NONE), SETTINGS);
  assert.deepEqual(nx.kind === 'permanent' ? [nx.cause, nx.dsn, nx.reason] : nx, [
    'mx',
    '5.1.2',
    'no such domain: missing.example (NXDOMAIN)',
  ]);
  const servfail = await planDelivery('servfail.example', deps(NONE), SETTINGS);
  assert.deepEqual(servfail.kind === 'transient' ? [servfail.cause, servfail.reason] : servfail, [
    'mx',
    'MX lookup for servfail.example failed: ESERVFAIL (queryMx ESERVFAIL)',
  ]);
});

test('MX-4: a domain without MX records is its own implicit MX', async () => {
  const plan = await planDelivery('implicit.example', deps(NONE), SETTINGS);
  assert.equal(plan.kind, 'deliver');
  if (plan.kind !== 'deliver') return;
  assert.equal(plan.implicit, true);
  assert.deepEqual(plan.mxs, [{ host: 'implicit.example', priority: 0, addresses: ['192.0.2.20'] }]);
});

const TABLE = parsePolicyTable(
  ['example.com may exempt=mta-sts', '.shop.example verify', 'implicit.example encrypt'].join('\n'),
  'config/outbound_tls_policy',
);

test('POL-2: exempt=mta-sts keeps an enforce policy from filtering the MXs; the hosts enforce would not use go to the delivery state with the rule', async () => {
  const enforce: PolicyInEffect = { kind: 'policy', id: 'e1', policy: policy('enforce', 'mx2.example.com'), source: 'cache' };
  const plan = await planDelivery('example.com', { ...deps(enforce), policyTable: TABLE }, SETTINGS);
  assert.equal(plan.kind, 'deliver');
  if (plan.kind !== 'deliver') return;
  assert.deepEqual(
    plan.mxs.map((mx) => mx.host),
    ['mx1.example.com', 'mx2.example.com'],
  );
  assert.deepEqual(plan.notes, [], 'nothing filtered');
  assert.deepEqual(plan.exemptedWouldNotUse, ['mx1.example.com']);
  assert.deepEqual(
    { ...plan.state.sts, policy: undefined },
    { mode: 'enforce', policyId: 'e1', policy: undefined, exempted: { outsidePolicy: ['mx1.example.com'] } },
  );
  assert.equal(plan.state.rule?.name, 'example.com');
  assert.equal(plan.state.rule?.line, 1);
  // Without the table the same policy filters.
  const filtered = await planDelivery('example.com', deps(enforce), SETTINGS);
  assert.deepEqual(filtered.kind === 'deliver' ? filtered.mxs.map((mx) => mx.host) : filtered, ['mx2.example.com']);
});

test("POL-1: the domain's rule (exact or the nearest parent) rides in the delivery state; address literals have none", async () => {
  const sub = await planDelivery('xn--bcher-kva.shop.example', { ...deps(NONE), policyTable: TABLE }, SETTINGS);
  assert.equal(sub.kind === 'deliver' ? sub.state.rule?.name : sub.kind, '.shop.example');
  const literal = await planDelivery('[192.0.2.1]', { ...deps(NONE), policyTable: TABLE }, SETTINGS);
  assert.deepEqual(literal.kind === 'deliver' ? literal.state : literal.kind, { domain: '[192.0.2.1]' });
});

test('TLS-6/POL-1: a table minimum while the connection guard is missing defers, naming the rule; an exempted enforce policy does not', async () => {
  const plan = await planDelivery('implicit.example', { ...deps(NONE, 'HMailItem changed'), policyTable: TABLE }, SETTINGS);
  assert.equal(plan.kind, 'transient');
  assert.equal(
    plan.kind === 'transient' ? plan.reason : '',
    'outbound_tls cannot guard connections (HMailItem changed); implicit.example requires encrypt (policy table rule implicit.example (config/outbound_tls_policy line 3))',
  );
  const enforce: PolicyInEffect = { kind: 'policy', id: 'g1', policy: policy('enforce', 'mx1.example.com'), source: 'fetched' };
  const exempted = await planDelivery('example.com', { ...deps(enforce, 'HMailItem changed'), policyTable: TABLE }, SETTINGS);
  assert.equal(exempted.kind, 'deliver');
});

test('DANE-5, MX-8: with DANE in effect but no TLSA records, an enforce policy filters the MXs; the MX query and each address lookup are asked once', async () => {
  const dns = fakeDns({
    mx: {
      'example.com': {
        kind: 'answer',
        records: [
          { priority: 10, exchange: 'mx1.example.com' },
          { priority: 20, exchange: 'other.example.net' },
        ],
        secure: true,
      },
    },
    a: { 'mx1.example.com': ['192.0.2.10'], 'other.example.net': ['192.0.2.20'] },
  });
  const secureDns: DnsClient = {
    ...dns,
    a: async (name) => ({ ...(await dns.a(name)), secure: true }) as DnsAnswer<string>,
    aaaa: async (name) => ({ ...(await dns.aaaa(name)), secure: true }) as DnsAnswer<string>,
  };
  const tlsa: string[] = [];
  const plan = await planDelivery(
    'example.com',
    {
      dns: secureDns,
      policyFor: async () => ({ kind: 'policy', id: 'p1', policy: policy('enforce', 'mx1.example.com'), source: 'cache' }),
      dane: {
        mode: 'on',
        lookupTlsa: async (host) => {
          tlsa.push(host);
          return { kind: 'none', name: `_25._tcp.${host}`, reason: 'no TLSA records (secure denial)' };
        },
      },
    },
    SETTINGS,
  );
  assert.equal(plan.kind, 'deliver');
  assert.deepEqual(
    plan.kind === 'deliver' ? plan.mxs.map((mx) => mx.host) : [],
    ['mx1.example.com'],
    'the enforce policy filtered the MXs',
  );
  assert.deepEqual(tlsa.sort(), ['mx1.example.com', 'other.example.net']);
  assert.equal(dns.asked.filter((q) => q === 'MX example.com').length, 1, 'one MX query');
  assert.equal(dns.asked.filter((q) => q === 'A mx1.example.com').length, 1, 'one address lookup per host');
});

/** The plan for example.com whose MX answer is DNSSEC-validated or not, with DANE's deps (`dane`) as given. */
async function planned(options: { secure: boolean; dane?: PlanDeps<PolicyInEffect>['dane']; policy?: PolicyInEffect }) {
  const records = [{ priority: 10, exchange: 'mx1.example.com' }];
  const answer: DnsAnswer<MxRecord> = { kind: 'answer', records, ...(options.secure ? { secure: true as const } : {}) };
  const dns = fakeDns({ mx: { 'example.com': answer }, a: ZONE.a });
  const plan = await planDelivery(
    'example.com',
    { dns, policyFor: async () => options.policy ?? NONE, ...(options.dane ? { dane: options.dane } : {}) },
    { ...SETTINGS, onStoreError: 'send' },
  );
  assert.equal(plan.kind, 'deliver', JSON.stringify(plan));
  return plan.kind === 'deliver' ? plan.state : (undefined as never);
}

/** DANE in effect; no host has DNSSEC-validated addresses here, so no TLSA question is asked. */
const DANE = { mode: 'on' as const, lookupTlsa: () => Promise.reject(new Error('not asked')) };

test('RT-2: the MX set counts as DNSSEC-validated only when DANE is in effect (its resolver trusted) and the MX answer is secure', async () => {
  assert.equal((await planned({ secure: true, dane: DANE })).mxDnssec, true);
  assert.equal((await planned({ secure: false, dane: DANE })).mxDnssec, undefined, 'an answer that is not secure');
  assert.equal((await planned({ secure: true })).mxDnssec, undefined, 'no DANE: the AD bit of an untrusted resolver');
  const unknown = await planned({ secure: true, dane: { ...DANE, unknown: 'resolver check timed out' } });
  assert.equal(unknown.mxDnssec, undefined, 'a resolver check that is unknown');
  assert.equal(unknown.mxAuthUnknown, 'DNSSEC validation unknown: resolver check timed out');
  const unknownInsecure = await planned({ secure: false, dane: { ...DANE, unknown: 'resolver check timed out' } });
  assert.equal(unknownInsecure.mxAuthUnknown, undefined, 'nothing to validate: the status does not matter');
});

test('RT-3: an MTA-STS discovery that failed leaves the MX set’s authentication unknown for now; no policy record does not', async () => {
  const failed: PolicyInEffect = { kind: 'none', reason: 'TXT lookup of _mta-sts.example.com failed: ESERVFAIL', failed: true };
  assert.equal((await planned({ secure: false, policy: failed })).mxAuthUnknown, failed.reason);
  assert.equal((await planned({ secure: false, policy: NONE })).mxAuthUnknown, undefined, 'the control');
  const validated = await planned({ secure: true, dane: DANE, policy: failed });
  assert.deepEqual([validated.mxDnssec, validated.mxAuthUnknown], [true, undefined], 'DNSSEC authenticates it anyway');
});

test('RT-3: a policy store that cannot be read (on_store_error=send) leaves the MX set’s authentication unknown for now, not missing', async () => {
  const unavailable: PolicyInEffect = { kind: 'store-unavailable', reason: 'MTA-STS cache (redis) unavailable: ECONNREFUSED' };
  assert.equal((await planned({ secure: false, policy: unavailable })).mxAuthUnknown, unavailable.reason);
});
