/**
 * `mx show`'s view of the MTA-STS policy in effect (STS-5, ST-5), without
 * processes: the same answer as the plugin's resolver for every kind of
 * cached entry; and its REQUIRETLS lines (RT-6) for each kind of plan. The
 * command itself runs in test/integration/cli-mx.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveryPlan } from '../delivery/plan';
import { parsePolicy, type MtaStsPolicy } from '../mta-sts/policy';
import type { PolicyRead } from '../mta-sts/store';
import type { DeliveryState } from '../tls/delivery-state';
import type { LivePolicy } from './policy';
import { describeEffective, effectivePolicy, row } from './mx';
import { requireTlsLines } from './requiretls';

const NOW = Date.UTC(2026, 10, 24);
const TEXT = 'version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n';
const entry = (text: string, expiresAt: number): PolicyRead => ({
  kind: 'entry',
  entry: { domain: 'a.example', id: 'c1', text, fetchedAt: NOW - 1000, expiresAt, checkedAt: NOW - 1000, usedAt: NOW - 1000 },
});
const noRecord: LivePolicy = { kind: 'none', reason: 'no policy record (no TXT record)' };

test('ST-5: an unusable cached entry (unreadable, or an invalid policy even when expired) with no fresh policy defers under on_store_error=defer, not under send', () => {
  for (const cached of [
    { kind: 'unreadable', reason: '/d/a.example.json: Unexpected end of JSON input' } as PolicyRead,
    entry('version: STSv1\nmode: sometimes\n', NOW + 1000),
    entry('version: STSv1\nmode: sometimes\n', NOW - 1000),
  ]) {
    const deferred = effectivePolicy('a.example', cached, noRecord, 'defer', NOW);
    assert.equal(deferred.kind, 'store-unavailable', JSON.stringify(cached));
    assert.match(
      describeEffective(deferred),
      /^none usable: the cached entry (is unreadable|holds an invalid policy) .*outbound_mx defers mail to a\.example/,
    );
    const sent = effectivePolicy('a.example', cached, noRecord, 'send', NOW);
    assert.match(describeEffective(sent), /on_store_error=send: outbound_mx sends as if no policy were cached/);
  }
  // A usable entry that expired is simply replaced by the live answer.
  assert.deepEqual(effectivePolicy('a.example', entry(TEXT, NOW - 1000), noRecord, 'defer', NOW), {
    kind: 'none',
    reason: noRecord.reason,
  });
});

// ---------------------------------------------------------------------------
// RT-6: the REQUIRETLS lines

const destination = { kind: 'domain', aLabel: 'a.example', uLabel: 'a.example' } as const;
function deliverPlan(state: Omit<DeliveryState, 'domain'>, ...hosts: string[]): Extract<DeliveryPlan, { kind: 'deliver' }> {
  return {
    kind: 'deliver',
    destination,
    policy: null,
    mxs: hosts.map((host, i) => ({ host, priority: 10 * (i + 1), addresses: [`192.0.2.${i + 1}`] })),
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state: { domain: 'a.example', ...state },
  };
}
function stsPolicy(mode: 'enforce' | 'testing', mx: string): MtaStsPolicy {
  const parsed = parsePolicy(`version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: 86400\n`);
  assert.ok(parsed.ok);
  return parsed.policy;
}
const reqtls = (plan: DeliveryPlan): string[] => requireTlsLines(plan, row).map((line) => line.replace(/^reqtls {3}/, 'reqtls: '));

test('RT-6: mx show names each MX host an MTA-STS testing policy authenticates for a REQUIRETLS message, and the hosts left out', () => {
  const state = { sts: { mode: 'testing' as const, policyId: 't1', policy: stsPolicy('testing', 'mx1.a.example') } };
  assert.deepEqual(reqtls(deliverPlan(state, 'mx1.a.example', 'mx2.a.example')), [
    'reqtls: mx1.a.example: authenticated (MTA-STS policy t1 (testing) lists mx1.a.example)',
    'reqtls: mx2.a.example: not authenticated, left out (mx2.a.example is not listed by the MTA-STS policy (id t1, testing))',
    'reqtls: each must also be TLS_SECURE for its host name (PKIX or DANE) and advertise REQUIRETLS after STARTTLS (RT-2; probe checks both)',
  ]);
  // The lines come from the plugin's own check (RT-2 (a)): a policy listing both hosts authenticates both.
  const both = { sts: { mode: 'enforce' as const, policyId: 'e1', policy: stsPolicy('enforce', '*.a.example') } };
  assert.doesNotMatch(reqtls(deliverPlan(both, 'mx1.a.example', 'mx2.a.example')).join('\n'), /left out|returned/);
});

test('RT-6: a DNSSEC-validated MX RRset authenticates every host (one line); an MTA-STS policy in mode none does not', () => {
  const lines = reqtls(deliverPlan({ mxDnssec: true }, 'mx1.a.example', 'mx2.a.example'));
  assert.equal(lines[0], 'reqtls: every MX host authenticated (DNSSEC-validated MX RRset)');
  assert.equal(lines.length, 2);
  const none = { sts: { mode: 'none' as const, policyId: 'n1', policy: stsPolicy('enforce', 'mx1.a.example') } };
  assert.match(reqtls(deliverPlan(none, 'mx1.a.example')).join('\n'), /returned at once/);
});

test('RT-6: no authenticated MX host (no MTA-STS policy, no DNSSEC, or an address literal): a REQUIRETLS message would be returned at once (5.7.10)', () => {
  assert.deepEqual(reqtls(deliverPlan({}, 'mx1.a.example', 'mx2.a.example')), [
    'reqtls: MX set not authenticated (no DNSSEC-validated MX answer from a resolver DANE trusts, no MTA-STS policy in enforce or testing mode): ' +
      'a REQUIRETLS message would be returned at once (5.7.10, RT-3)',
  ]);
  const literal: DeliveryPlan = {
    ...deliverPlan({}),
    destination: { kind: 'literal', key: '[192.0.2.1]', address: '192.0.2.1' },
    mxs: [{ host: undefined, priority: 0, addresses: ['192.0.2.1'] }],
    state: { domain: '[192.0.2.1]' },
  };
  assert.deepEqual(reqtls(literal), [
    'reqtls: an address literal has no MX host name to authenticate: a REQUIRETLS message would be returned at once (5.7.10, RT-3)',
  ]);
});

test('RT-6: a plan that delivers nowhere: a REQUIRETLS message is deferred or bounced like any other', () => {
  assert.deepEqual(reqtls({ kind: 'transient', cause: 'mx', destination, policy: null, reason: 'MX lookup failed' }), [
    'reqtls: a REQUIRETLS message is deferred like any other (see the mx line)',
  ]);
  assert.deepEqual(reqtls({ kind: 'null-mx', destination, policy: { kind: 'none', reason: 'x' }, dsn: '5.1.10', reason: 'null MX' }), [
    'reqtls: a REQUIRETLS message is bounced at once like any other (5.1.10)',
  ]);
  assert.deepEqual(reqtls({ kind: 'permanent', cause: 'mx', destination, policy: null, dsn: '5.1.2', reason: 'NXDOMAIN' }), [
    'reqtls: a REQUIRETLS message is bounced like any other (5.1.2)',
  ]);
});
