import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DaneConfig } from '../config/outbound-mx';
import type { DnsTransport, QueryOutcome } from '../dns/wire';
import type { ResolverTrust } from '../dns/resolver-trust';
import { DaneStatus, type DaneStatusState } from './resolver-status';

const DECLARED: ResolverTrust = { kind: 'declared' };
const CONFIG: DaneConfig = { mode: 'on', trustedResolvers: ['127.0.0.1'], resolvers: DECLARED, probe: 'test.', checkIntervalMs: 60_000 };

type Answer = 'ad' | 'no-ad' | 'timeout' | 'servfail' | 'network';

/** A resolver whose next answers the test sets: AD on or off, or a failure. */
function resolver(): DnsTransport & { answer: Answer; asked: string[] } {
  const fake = {
    answer: 'ad' as Answer,
    asked: [] as string[],
    query: async (name: string, type: string, options?: { dnssec?: boolean }): Promise<QueryOutcome> => {
      fake.asked.push(`${type} ${name}${options?.dnssec ? ' +do' : ''}`);
      if (fake.answer === 'timeout') return { kind: 'failure', code: 'ETIMEOUT', message: 'no answer' };
      if (fake.answer === 'network') return { kind: 'failure', code: 'ECONNREFUSED', message: 'connection refused' };
      return {
        kind: 'response',
        response: {
          rcode: fake.answer === 'servfail' ? 'SERVFAIL' : 'NOERROR',
          authenticated: fake.answer === 'ad',
          answers: [],
          authorities: [],
          bytes: 100,
        },
      };
    },
  };
  return fake;
}

const summary = (r: DaneStatusState): string => ('reason' in r ? `${r.kind}: ${r.reason}` : r.kind);

test('DANE-1: the resolver check puts DANE in effect, takes it out with the reason, and reports each change once', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const status = new DaneStatus(dns, CONFIG, (state) => reports.push(state), { notValidatingAfter: 1 });
  assert.equal(status.current.kind, 'checking');
  await status.start();
  await status.ready();
  assert.equal(status.inEffect, true);
  assert.deepEqual(dns.asked, ['SOA test. +do']);
  await status.check(); // unchanged: not reported again
  dns.answer = 'no-ad';
  await status.check();
  assert.equal(status.inEffect, false);
  dns.answer = 'ad';
  await status.check();
  status.stop();
  assert.deepEqual(reports.map(summary), [
    'in-effect',
    'not-in-effect: SOA test.: answered without the AD bit (the resolver does not validate)',
    'in-effect',
  ]);
});

test('DANE-8: a failed check (timeout, SERVFAIL, network error) is unknown, never "not in effect"; back in effect at the first good answer; each change reported once', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const status = new DaneStatus(dns, CONFIG, (state) => reports.push(state));
  await status.start();
  assert.equal(status.current.kind, 'in-effect');
  for (const answer of ['timeout', 'servfail', 'network', 'timeout', 'servfail'] as const) {
    dns.answer = answer;
    await status.check();
    assert.equal(status.current.kind, 'unknown', `after ${answer}`);
    assert.equal(status.inEffect, false);
  }
  dns.answer = 'ad';
  await status.check();
  status.stop();
  assert.deepEqual(reports.map(summary), ['in-effect', 'unknown: SOA test.: ETIMEOUT (no answer)', 'in-effect']);
});

test('DANE-8: DANE goes out of effect only after 3 definite answers without AD in a row; failures in between change nothing', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const status = new DaneStatus(dns, CONFIG, (state) => reports.push(state));
  await status.start();
  const seen: string[] = [];
  for (const answer of ['no-ad', 'timeout', 'no-ad', 'servfail', 'no-ad', 'no-ad', 'timeout'] as const) {
    dns.answer = answer;
    await status.check();
    seen.push(status.current.kind);
  }
  assert.deepEqual(seen, ['unknown', 'unknown', 'unknown', 'unknown', 'not-in-effect', 'not-in-effect', 'not-in-effect']);
  // One good answer in between starts the count again.
  dns.answer = 'ad';
  await status.check();
  dns.answer = 'no-ad';
  await status.check();
  await status.check();
  assert.equal(status.current.kind, 'unknown');
  dns.answer = 'ad';
  await status.check();
  status.stop();
  assert.deepEqual(
    reports.map((r) => r.kind),
    ['in-effect', 'unknown', 'not-in-effect', 'in-effect', 'unknown', 'in-effect'],
  );
  const out = reports[2];
  assert.equal(out?.kind === 'not-in-effect' ? out.cause : '', 'not-validating');
});

test('DANE-8: while unknown the check is repeated sooner, backing off, and at check_interval once known', async () => {
  const dns = resolver();
  const status = new DaneStatus(dns, CONFIG, () => undefined);
  await status.start();
  assert.equal(status.nextCheckInMs, 60_000);
  dns.answer = 'timeout';
  const delays: Array<number | undefined> = [];
  for (let i = 0; i < 7; i++) {
    await status.check();
    delays.push(status.nextCheckInMs);
  }
  assert.deepEqual(delays, [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
  dns.answer = 'ad';
  await status.check();
  assert.equal(status.nextCheckInMs, 60_000);
  status.stop();
});

test('DANE-8: the AD bit of an undeclared resolver is never believed: not in effect, nothing asked, the reason said', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const reason = 'no validating resolver is declared ([dane] trusted_resolvers is empty)';
  const undeclared = new DaneStatus(dns, { ...CONFIG, trustedResolvers: [], resolvers: { kind: 'undeclared', reason } }, (state) =>
    reports.push(state),
  );
  await undeclared.start();
  await undeclared.check();
  undeclared.stop();
  assert.equal(undeclared.inEffect, false);
  assert.deepEqual(dns.asked, []);
  assert.deepEqual(reports, [{ kind: 'not-in-effect', cause: 'undeclared', reason }]);
});

test('DANE-1: mode=off asks nothing', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const off = new DaneStatus(dns, { ...CONFIG, mode: 'off' }, (state) => reports.push(state));
  dns.asked.length = 0;
  await off.start();
  assert.equal(off.inEffect, false);
  assert.deepEqual(dns.asked, []);
  assert.deepEqual(reports, [{ kind: 'off' }]);
});
