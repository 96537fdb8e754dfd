/**
 * What a discovery that failed answers, with a stand-in DNS and store (the
 * resolver against a real HTTPS policy server: test/integration/mta-sts-resolver.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeAddressPolicy } from '../mx/address-policy';
import type { DnsAnswer, DnsClient } from '../mx/dns-client';
import type { PolicyStore } from './store';
import { MtaStsResolver, type MtaStsSettings, type PolicyDecision } from './resolver';

const EMPTY_STORE: PolicyStore = {
  description: 'fake',
  get: () => Promise.resolve({ kind: 'none' }),
  put: () => Promise.resolve(),
  delete: () => Promise.resolve(false),
  list: () => Promise.resolve([]),
  close: () => Promise.resolve(),
};

const SETTINGS: MtaStsSettings = {
  recheckMs: 60_000,
  negativeTtlMs: 300_000,
  refreshBeforeMs: 3_600_000,
  fetch: { timeoutMs: 2000, port: 443, extraCa: [], addressPolicy: makeAddressPolicy([], []) },
};

/** A resolver whose DNS answers TXT questions from `txt` and has no address for any policy host (a fetch fails before connecting). */
function resolver(txt: Record<string, DnsAnswer<string>>): MtaStsResolver {
  const dns: DnsClient = {
    mx: () => Promise.resolve({ kind: 'nodata' }),
    a: () => Promise.resolve({ kind: 'nxdomain' }),
    aaaa: () => Promise.resolve({ kind: 'nxdomain' }),
    txt: (name) => Promise.resolve(txt[name] ?? { kind: 'nxdomain' }),
  };
  return new MtaStsResolver(
    dns,
    EMPTY_STORE,
    () => SETTINGS,
    { event: () => undefined, log: () => undefined },
    () => 1_000_000,
  );
}

function failed(decision: PolicyDecision): boolean | undefined {
  return decision.kind === 'none' ? decision.failed : undefined;
}

test('RT-3: a failed discovery (TXT lookup, policy fetch) answers none marked failed, also while it is remembered; no record is plain none', async () => {
  const r = resolver({
    '_mta-sts.servfail.test': { kind: 'failure', code: 'ESERVFAIL', message: 'servfail' },
    '_mta-sts.unfetchable.test': { kind: 'answer', records: ['v=STSv1; id=1'] },
  });
  const txt = await r.policyFor('servfail.test');
  assert.equal(txt.kind, 'none');
  assert.equal(failed(txt), true);
  assert.match(txt.kind === 'none' ? txt.reason : '', /TXT lookup of _mta-sts\.servfail\.test failed/);
  const remembered = await r.policyFor('servfail.test');
  assert.equal(failed(remembered), true, 'negative-cached: still failed');
  assert.match(remembered.kind === 'none' ? remembered.reason : '', /failed recently/);
  const fetch = await r.policyFor('unfetchable.test');
  assert.equal(failed(fetch), true);
  assert.match(fetch.kind === 'none' ? fetch.reason : '', /^policy fetch failed: /);

  const absent = await r.policyFor('absent.test');
  assert.equal(absent.kind, 'none');
  assert.equal(failed(absent), undefined, 'no record: known to have no policy');
  assert.equal(failed(await r.policyFor('absent.test')), undefined, 'remembered absence too');
});
