import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DaneConfig } from '../config/outbound-mx';
import type { DnsTransport, QueryOutcome } from '../dns/wire';
import { DaneStatus, type DaneStatusState } from './resolver-status';

const CONFIG: DaneConfig = { mode: 'on', trustedResolvers: [], probe: 'test.', checkIntervalMs: 60_000 };

/** A resolver whose next answers the test sets: AD on or off, or a failure. */
function resolver(): DnsTransport & { answer: 'ad' | 'no-ad' | 'timeout'; asked: string[] } {
  const fake = {
    answer: 'ad' as 'ad' | 'no-ad' | 'timeout',
    asked: [] as string[],
    query: async (name: string, type: string, options?: { dnssec?: boolean }): Promise<QueryOutcome> => {
      fake.asked.push(`${type} ${name}${options?.dnssec ? ' +do' : ''}`);
      if (fake.answer === 'timeout') return { kind: 'failure', code: 'ETIMEOUT', message: 'no answer' };
      return {
        kind: 'response',
        response: { rcode: 'NOERROR', authenticated: fake.answer === 'ad', answers: [], authorities: [], bytes: 100 },
      };
    },
  };
  return fake;
}

test('DANE-1: the resolver check puts DANE in effect, takes it out with the reason, and reports each change once', async () => {
  const dns = resolver();
  const reports: DaneStatusState[] = [];
  const status = new DaneStatus(dns, CONFIG, true, (state) => reports.push(state));
  assert.equal(status.current.kind, 'checking');
  await status.start();
  await status.ready();
  assert.equal(status.inEffect, true);
  assert.deepEqual(dns.asked, ['SOA test. +do']);
  await status.check(); // unchanged: not reported again
  dns.answer = 'no-ad';
  await status.check();
  assert.equal(status.inEffect, false);
  dns.answer = 'timeout';
  await status.check();
  dns.answer = 'ad';
  await status.check();
  status.stop();
  assert.deepEqual(
    reports.map((r) => (r.kind === 'not-in-effect' ? `${r.kind}: ${r.reason}` : r.kind)),
    [
      'in-effect',
      'not-in-effect: SOA test.: answered without the AD bit (the resolver does not validate)',
      'not-in-effect: SOA test.: ETIMEOUT (no answer)',
      'in-effect',
    ],
  );
});

test('DANE-1: AD from an untrusted resolver never puts DANE in effect; mode=off asks nothing', async () => {
  const dns = resolver();
  const untrusted = new DaneStatus(dns, CONFIG, false, () => undefined);
  await untrusted.start();
  untrusted.stop();
  assert.equal(untrusted.inEffect, false);
  assert.match(untrusted.current.kind === 'not-in-effect' ? untrusted.current.reason : '', /not believed/);

  const reports: DaneStatusState[] = [];
  const off = new DaneStatus(dns, { ...CONFIG, mode: 'off' }, true, (state) => reports.push(state));
  dns.asked.length = 0;
  await off.start();
  assert.equal(off.inEffect, false);
  assert.deepEqual(dns.asked, []);
  assert.deepEqual(reports, [{ kind: 'off' }]);
});
