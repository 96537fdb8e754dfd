import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, type MtaStsPolicy, type StsMode } from '../mta-sts/policy';
import { SecLevel } from '../sec-level';
import type { Classification } from './classify';
import type { RequireTlsRequirement } from './decision';
import type { DeliveryState } from './delivery-state';
import { mxSetAuthentication, requireTlsShortfall } from './requiretls';

function policy(mode: StsMode, ...mx: string[]): MtaStsPolicy {
  const parsed = parsePolicy(`version: STSv1\nmode: ${mode}\nmax_age: 86400\n${mx.map((m) => `mx: ${m}\n`).join('')}`);
  assert.ok(parsed.ok);
  return parsed.policy;
}

/** The plan's state for example.test with an MTA-STS policy of `mode` listing `mx.example.test` and `*.backup.example.test`. */
function withPolicy(mode: StsMode, extra: Partial<DeliveryState> = {}): DeliveryState {
  return {
    domain: 'example.test',
    sts: { mode, policyId: 'p1', policy: policy(mode, 'mx.example.test', '*.backup.example.test') },
    ...extra,
  };
}

test('RT-2: the MX set is authenticated by a DNSSEC-validated MX answer, or by an MTA-STS policy in enforce or testing mode listing the host', () => {
  assert.deepEqual(mxSetAuthentication({ domain: 'example.test', mxDnssec: true }, 'mx.other.test'), {
    ok: true,
    by: 'DNSSEC-validated MX RRset',
  });
  assert.deepEqual(mxSetAuthentication(withPolicy('enforce'), 'mx.example.test'), {
    ok: true,
    by: 'MTA-STS policy p1 (enforce) lists mx.example.test',
  });
  assert.deepEqual(mxSetAuthentication(withPolicy('testing'), 'b1.backup.example.test'), {
    ok: true,
    by: 'MTA-STS policy p1 (testing) lists b1.backup.example.test',
  });
  // DNSSEC authenticates every host of the set, listed by a policy or not.
  assert.equal(mxSetAuthentication(withPolicy('enforce', { mxDnssec: true }), 'mx.unlisted.test').ok, true);
});

test('RT-2: a host the policy does not list, a policy in mode none, or no policy at all: not authenticated, and lasting (RT-3)', () => {
  const unlisted = mxSetAuthentication(withPolicy('enforce'), 'mx.unlisted.test');
  assert.deepEqual(unlisted, {
    ok: false,
    reason: 'example.test: mx.unlisted.test is not listed by the MTA-STS policy (id p1, enforce)',
  });
  const none = mxSetAuthentication(withPolicy('none'), 'mx.example.test');
  assert.equal(none.ok, false);
  assert.match(none.ok ? '' : none.reason, /^example\.test: MX set not authenticated \(no DNSSEC-validated MX answer/);
  assert.equal(none.ok ? undefined : none.transient, undefined);
  const nothing = mxSetAuthentication({ domain: 'example.test' }, 'mx.example.test');
  assert.deepEqual(nothing, none, 'no policy reads as a policy in mode none');
});

test('RT-3: an MX set whose authentication could not be learnt now (mxAuthUnknown) is transient; what is known still decides', () => {
  const unknown = mxSetAuthentication({ domain: 'example.test', mxAuthUnknown: 'TXT lookup failed' }, 'mx.example.test');
  assert.deepEqual(unknown, {
    ok: false,
    reason: 'example.test: MX set authentication unknown for now (TXT lookup failed)',
    transient: true,
  });
  assert.equal(mxSetAuthentication(withPolicy('testing', { mxAuthUnknown: 'x' }), 'mx.example.test').ok, true);
});

test('RT-2: an address literal has no MX host name to authenticate, even with a DNSSEC-validated state: lasting', () => {
  const literal = mxSetAuthentication({ domain: '[192.0.2.1]', mxDnssec: true, mxAuthUnknown: 'x' }, undefined);
  assert.deepEqual(literal, { ok: false, reason: '[192.0.2.1]: an address literal has no MX host name to authenticate' });
});

const SECURE: Classification = { level: SecLevel.TLS_SECURE, reason: 'certificate valid for mx.example.test', protocol: 'TLSv1.3' };
const INSECURE: Classification = { level: SecLevel.TLS_INSECURE, reason: 'self-signed', protocol: 'TLSv1.3' };
const AUTHENTICATED: RequireTlsRequirement = { mxSet: { ok: true, by: 'DNSSEC-validated MX RRset' } };
const WHERE = 'mx.example.test [192.0.2.1]';

test('RT-2: a hop meeting (a), (b) and (c) falls short of nothing; each missing part is named, in that order', () => {
  assert.equal(requireTlsShortfall(AUTHENTICATED, SECURE, true, WHERE), null);
  assert.deepEqual(requireTlsShortfall(AUTHENTICATED, SECURE, false, WHERE), {
    missing: 'requiretls',
    reason: 'REQUIRETLS: mx.example.test [192.0.2.1] does not advertise REQUIRETLS after STARTTLS',
  });
  assert.deepEqual(requireTlsShortfall(AUTHENTICATED, INSECURE, true, WHERE), {
    missing: 'certificate',
    reason:
      'REQUIRETLS: mx.example.test [192.0.2.1] offers TLS_INSECURE (self-signed), required TLS_SECURE for the host name (PKIX or DANE)',
  });
  assert.equal(requireTlsShortfall(AUTHENTICATED, { level: SecLevel.PLAIN, reason: 'no TLS' }, false, WHERE)?.missing, 'certificate');
  const unauthenticated: RequireTlsRequirement = { mxSet: { ok: false, reason: 'example.test: MX set not authenticated' } };
  assert.deepEqual(requireTlsShortfall(unauthenticated, INSECURE, false, WHERE), {
    missing: 'mx-set',
    reason: 'REQUIRETLS: example.test: MX set not authenticated',
  });
});

test('RT-3: an MX set not known now is a transient shortfall; one known to be missing is not', () => {
  const unknown: RequireTlsRequirement = { mxSet: { ok: false, reason: 'unknown for now', transient: true } };
  assert.equal(requireTlsShortfall(unknown, SECURE, true, WHERE)?.transient, true);
  const missing: RequireTlsRequirement = { mxSet: { ok: false, reason: 'not authenticated' } };
  assert.equal(requireTlsShortfall(missing, SECURE, true, WHERE)?.transient, undefined);
});

test('RT-4: requiretls=relax lets a relay that does not advertise REQUIRETLS pass, and nothing else of RT-2', () => {
  const relaxed: RequireTlsRequirement = {
    mxSet: { ok: true, by: 'relay route to relay:relay.test (configured by the admin)' },
    relaxedBy: 'relay:relay.test (config/outbound_tls_policy line 1)',
  };
  assert.equal(requireTlsShortfall(relaxed, SECURE, false, WHERE), null);
  assert.equal(requireTlsShortfall({ mxSet: relaxed.mxSet }, SECURE, false, WHERE)?.missing, 'requiretls', 'the control');
  assert.equal(requireTlsShortfall(relaxed, INSECURE, false, WHERE)?.missing, 'certificate');
  assert.equal(requireTlsShortfall({ ...relaxed, mxSet: { ok: false, reason: 'r' } }, SECURE, false, WHERE)?.missing, 'mx-set');
});

test('RT-3: a host the MTA-STS policy does not list, while DNSSEC could still authenticate the set (mxAuthUnknown), waits: transient', () => {
  // The plan's state when the resolver check is unknown and the MX answer came DNSSEC-validated (delivery/plan.ts).
  const state = withPolicy('testing', { mxAuthUnknown: 'DNSSEC validation unknown: resolver check timed out' });
  const unlisted = mxSetAuthentication(state, 'mx.unlisted.test');
  assert.equal(unlisted.ok, false);
  assert.equal(unlisted.ok ? undefined : unlisted.transient, true);
  assert.match(unlisted.ok ? '' : unlisted.reason, /unknown for now \(DNSSEC validation unknown: resolver check timed out\)/);
  // The control: without the unknown, the same host is known not to be authenticated.
  const known = mxSetAuthentication(withPolicy('testing'), 'mx.unlisted.test');
  assert.equal(known.ok ? undefined : known.transient, undefined);
});
