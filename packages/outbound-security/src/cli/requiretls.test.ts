/**
 * RT-3, RT-6: `probe`'s last line for a REQUIRETLS message, without
 * processes: how many MX hosts could take one now and, when none could,
 * whether it would be returned at once (and with which status) or wait. The
 * command itself runs in test/integration/cli-mx and cli-dane.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PlannedMx } from '../delivery/plan';
import type { RequireTlsMissing } from '../tls/decision';
import { judgeRequireTls, requireTlsLines, requireTlsSummary, type RequireTlsProbe } from './requiretls';

const mx1: PlannedMx = { host: 'mx1.a.example', priority: 10, addresses: ['192.0.2.1'] };
const mx2: PlannedMx = { host: 'mx2.a.example', priority: 20, addresses: ['192.0.2.2'] };
const probe = (mx: PlannedMx, ok: boolean, lasting?: RequireTlsMissing): { mx: PlannedMx; requireTls: RequireTlsProbe } => ({
  mx,
  requireTls: { advertised: 'none', ok, verdict: '', ...(lasting ? { lasting } : {}) },
});

test('RT-6: one MX host that could take a REQUIRETLS message is enough; nothing is said of a return', () => {
  assert.equal(
    requireTlsSummary([mx1, mx2], [probe(mx1, false, 'requiretls'), probe(mx2, true)]),
    '1 of 2 MX hosts can take a REQUIRETLS message now',
  );
});

test('RT-3/RT-6: every attempted host lacks REQUIRETLS itself: returned with 5.7.30; hosts left out (not authenticated) are not attempts', () => {
  assert.equal(
    requireTlsSummary([mx1, mx2], [probe(mx1, false, 'mx-set'), probe(mx2, false, 'requiretls')]),
    '0 of 2 MX hosts can take a REQUIRETLS message now: it would be returned at once (5.7.30, RT-3)',
  );
  assert.equal(
    requireTlsSummary([mx1, mx2], [probe(mx1, false, 'certificate'), probe(mx2, false, 'requiretls')]),
    '0 of 2 MX hosts can take a REQUIRETLS message now: it would be returned at once (5.7.10, RT-3)',
  );
  assert.equal(
    requireTlsSummary([mx1, mx2], [probe(mx1, false, 'mx-set'), probe(mx2, false, 'mx-set')]),
    '0 of 2 MX hosts can take a REQUIRETLS message now: it would be returned at once (5.7.10, RT-3)',
  );
});

test('RT-3/RT-6: a host that failed for a reason that may heal (unreachable, STARTTLS failed) makes the message wait, not return', () => {
  assert.equal(
    requireTlsSummary([mx1, mx2], [probe(mx1, false, 'requiretls'), probe(mx2, false)]),
    '0 of 2 MX hosts can take a REQUIRETLS message now: it would wait in the queue (deferred) until one can',
  );
});

test('RT-3/RT-6: an MX set whose authentication is unknown for now (a failed MTA-STS discovery) is deferred, as outbound_mx does, not returned', async () => {
  const state = { domain: 'a.example', mxAuthUnknown: 'policy fetch failed: HTTP 500' };
  const plan = {
    kind: 'deliver' as const,
    destination: { kind: 'domain' as const, aLabel: 'a.example', uLabel: 'a.example' },
    policy: null,
    mxs: [mx1],
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state,
  };
  const [line] = requireTlsLines(plan, (label, value) => `${label} ${value}`);
  assert.match(line ?? '', /authentication unknown for now .*: a REQUIRETLS message would be deferred until it is known$/);
  // Control: no policy at all and no DNSSEC: known to be missing, returned.
  const [missing] = requireTlsLines({ ...plan, state: { domain: 'a.example' } }, (label, value) => `${label} ${value}`);
  assert.match(missing ?? '', /returned at once \(5\.7\.10, RT-3\)$/);

  const outcome = { kind: 'error' as const, reason: 'unused' };
  const judged = await judgeRequireTls(
    { state, connection: {} as never, mx: mx1, host: 'mx1.a.example', outcome: outcome as never },
    { ratchet: { description: 'none', get: () => Promise.resolve({ kind: 'none' }) }, onStoreError: 'defer' },
  );
  assert.equal(judged.ok, false);
  assert.equal(judged.lasting, undefined, 'not a lasting reason');
  assert.match(requireTlsSummary([mx1], [{ mx: mx1, requireTls: judged }]), /it would wait in the queue/);
});
