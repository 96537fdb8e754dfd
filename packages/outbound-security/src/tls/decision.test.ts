import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, type Requirement } from './decision';
import type { RatchetRead } from '../ratchet/store';
import { SecLevel } from '../sec-level';

const secure = { level: SecLevel.TLS_SECURE, reason: 'certificate valid', protocol: 'TLSv1.3' };
const insecure = { level: SecLevel.TLS_INSECURE, reason: 'self-signed', protocol: 'TLSv1.3' };
const plain = { level: SecLevel.PLAIN, reason: 'no TLS' };
const req: Requirement = { domain: 'example.test', ratchet: true };
const stored = (level: SecLevel): RatchetRead => ({ kind: 'level', entry: { domain: 'example.test', level } });

test('TLS-4: below the stored level abandons, naming domain, host, level and requirement', () => {
  const verdict = decide(plain, req, stored(SecLevel.TLS_SECURE), 'defer', 'mx.example.test [192.0.2.1]');
  assert.equal(verdict.kind, 'abandon');
  if (verdict.kind === 'abandon') {
    assert.equal(verdict.cause, 'ratchet');
    assert.match(
      verdict.reason,
      /example\.test: mx\.example\.test \[192\.0\.2\.1\] offers PLAIN \(no TLS\), required TLS_SECURE \(ratchet\)/,
    );
  }
});

test('TLS-4: equal passes without a raise; higher passes with a raise', () => {
  assert.deepEqual(decide(insecure, req, stored(SecLevel.TLS_INSECURE), 'defer', 'h'), { kind: 'pass', stored: SecLevel.TLS_INSECURE });
  assert.deepEqual(decide(secure, req, stored(SecLevel.TLS_INSECURE), 'defer', 'h'), {
    kind: 'pass',
    stored: SecLevel.TLS_INSECURE,
    raiseTo: SecLevel.TLS_SECURE,
  });
  assert.deepEqual(decide(plain, req, { kind: 'none' }, 'defer', 'h'), { kind: 'pass', stored: SecLevel.PLAIN });
});

test('ST-4: an unreadable entry defers by default, or counts as no level when configured to send', () => {
  const unreadable: RatchetRead = { kind: 'unreadable', reason: 'bad json' };
  const verdict = decide(secure, req, unreadable, 'defer', 'h');
  assert.equal(verdict.kind, 'abandon');
  if (verdict.kind === 'abandon') assert.equal(verdict.cause, 'store');
  assert.equal(decide(plain, req, unreadable, 'send', 'h').kind, 'pass');
});

test('TLS-5/STS-7: enforce requires TLS_SECURE with TLS 1.2+; the ratchet is checked first and may still rise', () => {
  const enforce: Requirement = { ...req, sts: { mode: 'enforce', policyId: 'abc' } };
  const refused = decide(insecure, enforce, stored(SecLevel.PLAIN), 'defer', 'h');
  assert.equal(refused.kind, 'abandon');
  if (refused.kind === 'abandon') {
    assert.equal(refused.cause, 'mta_sts');
    assert.equal(refused.raiseTo, SecLevel.TLS_INSECURE);
    assert.match(refused.reason, /MTA-STS requires TLS_SECURE.*policy id abc/);
  }
  const old = decide({ ...secure, protocol: 'TLSv1.1' }, enforce, { kind: 'none' }, 'defer', 'h');
  assert.equal(old.kind, 'abandon');
  assert.equal(decide(secure, enforce, stored(SecLevel.TLS_SECURE), 'defer', 'h').kind, 'pass');
  const ratchetFirst = decide(plain, enforce, stored(SecLevel.TLS_INSECURE), 'defer', 'h');
  assert.equal(ratchetFirst.kind === 'abandon' && ratchetFirst.cause, 'ratchet');
});

test('STS-8: testing enforces nothing but says what enforce would refuse', () => {
  const testing: Requirement = { ...req, sts: { mode: 'testing', policyId: 'abc' } };
  const verdict = decide(plain, testing, { kind: 'none' }, 'defer', 'h');
  assert.equal(verdict.kind, 'pass');
  if (verdict.kind === 'pass') assert.match(verdict.stsWouldRefuse ?? '', /MTA-STS requires TLS_SECURE/);
});

test('TLS-5: with the ratchet off (smart host setting) only MTA-STS applies', () => {
  assert.equal(decide(plain, { domain: 'example.test', ratchet: false }, stored(SecLevel.TLS_SECURE), 'defer', 'h').kind, 'pass');
});

test('TLS-8: a connection that carries credentials must reach auth_min_level; the ratchet may still be raised', () => {
  const auth: Requirement = { ...req, authMinLevel: SecLevel.TLS_SECURE };
  const verdict = decide(insecure, auth, { kind: 'none' }, 'defer', 'relay.example.test [192.0.2.9]');
  assert.equal(verdict.kind, 'abandon');
  if (verdict.kind === 'abandon') {
    assert.equal(verdict.cause, 'auth');
    assert.equal(verdict.raiseTo, SecLevel.TLS_INSECURE);
    assert.match(verdict.reason, /offers TLS_INSECURE \(self-signed\), credentials require TLS_SECURE \(auth_min_level\)/);
  }
  assert.equal(decide(secure, auth, { kind: 'none' }, 'defer', 'h').kind, 'pass');
  assert.equal(decide(insecure, { ...req, authMinLevel: SecLevel.TLS_INSECURE }, { kind: 'none' }, 'defer', 'h').kind, 'pass');
});

test('TLS-8: a relay key alone makes the ratchet apply (smart_host_ratchet=false still checks the relay)', () => {
  const relay: Requirement = { domain: 'example.test', ratchet: false, relayKey: 'relay:relay.example.test' };
  assert.equal(decide(plain, relay, stored(SecLevel.TLS_SECURE), 'defer', 'h').kind, 'abandon');
  assert.deepEqual(decide(secure, relay, { kind: 'none' }, 'defer', 'h'), {
    kind: 'pass',
    stored: SecLevel.PLAIN,
    raiseTo: SecLevel.TLS_SECURE,
  });
});

const RULE = 'partner.test (config/outbound_tls_policy line 3)';

test('POL-2: the table minimum is required whatever the automatic requirement; below it the connection is abandoned naming the rule', () => {
  const verify: Requirement = { ...req, minimum: { level: SecLevel.TLS_SECURE, rule: RULE } };
  const refused = decide(insecure, verify, { kind: 'none' }, 'defer', 'mx.partner.test [192.0.2.1]');
  assert.equal(refused.kind, 'abandon');
  if (refused.kind === 'abandon') {
    assert.equal(refused.cause, 'policy_table');
    assert.equal(refused.raiseTo, SecLevel.TLS_INSECURE, 'the ratchet still records what was seen');
    assert.equal(
      refused.reason,
      `example.test: mx.partner.test [192.0.2.1] offers TLS_INSECURE (self-signed), required TLS_SECURE (policy table rule ${RULE})`,
    );
  }
  assert.equal(decide(secure, verify, { kind: 'none' }, 'defer', 'h').kind, 'pass');
  const encrypt: Requirement = { ...req, minimum: { level: SecLevel.TLS_INSECURE, rule: RULE } };
  assert.equal(decide(insecure, encrypt, { kind: 'none' }, 'defer', 'h').kind, 'pass');
  assert.equal(decide(plain, encrypt, { kind: 'none' }, 'defer', 'h').kind, 'abandon');
  // max(table, automatic): a stored level above the table minimum still applies.
  const ratchet = decide(insecure, encrypt, stored(SecLevel.TLS_SECURE), 'defer', 'h');
  assert.equal(ratchet.kind === 'abandon' && ratchet.cause, 'ratchet');
});

test('POL-1: verify with match= needs a certificate carrying one of the names, whatever the MX host name', () => {
  const pinned: Requirement = { ...req, minimum: { level: SecLevel.TLS_SECURE, match: ['mx.partner.test'], rule: RULE } };
  const matched = { ...insecure, match: { ok: true as const, name: 'mx.partner.test' } };
  assert.equal(decide(matched, pinned, { kind: 'none' }, 'defer', 'h').kind, 'pass');
  const missed = { ...secure, match: { ok: false as const, reason: 'certificate carries none of mx.partner.test' } };
  const refused = decide(missed, pinned, { kind: 'none' }, 'defer', 'h');
  assert.equal(refused.kind === 'abandon' && refused.cause, 'policy_table');
  if (refused.kind === 'abandon')
    assert.match(refused.reason, /required a certificate for mx\.partner\.test \(match=\): certificate carries none/);
  assert.equal(
    decide(secure, pinned, { kind: 'none' }, 'defer', 'h').kind,
    'abandon',
    'a classification without the names checked never passes',
  );
});

test('POL-2: exempt=ratchet skips the stored level (counted as an exemption use) and never lowers it: a better connection still raises it', () => {
  const exempted: Requirement = { ...req, ratchetExempt: { domain: RULE } };
  const exempt = { level: SecLevel.TLS_SECURE, key: 'example.test', rule: RULE };
  const verdict = decide(plain, exempted, undefined, 'defer', 'h', exempt);
  assert.deepEqual(verdict, {
    kind: 'pass',
    stored: SecLevel.PLAIN,
    exemptions: [{ exemption: 'ratchet', rule: RULE, waived: 'stored level TLS_SECURE of example.test' }],
  });
  assert.deepEqual(decide(secure, exempted, undefined, 'defer', 'h', exempt), { kind: 'pass', stored: SecLevel.PLAIN }, 'no use, no raise');
  assert.deepEqual(decide(secure, exempted, undefined, 'defer', 'h', { ...exempt, level: SecLevel.TLS_INSECURE }), {
    kind: 'pass',
    stored: SecLevel.PLAIN,
    raiseTo: SecLevel.TLS_SECURE,
  });
  // An exemption that a refusal for another reason makes moot is no use.
  const alsoVerify: Requirement = { ...exempted, minimum: { level: SecLevel.TLS_INSECURE, rule: RULE } };
  assert.equal(decide(plain, alsoVerify, undefined, 'defer', 'h', exempt).kind, 'abandon');
});

test('POL-2: exempt=mta-sts: an enforce policy is not enforced; a connection it would refuse (level, TLS version, host outside the policy) is an exemption use', () => {
  const sts = { mode: 'enforce' as const, policyId: 'abc', exemptBy: RULE };
  const low = decide(insecure, { ...req, sts }, { kind: 'none' }, 'defer', 'mx.other.test');
  assert.equal(low.kind, 'pass');
  if (low.kind === 'pass') {
    assert.equal(low.exemptions?.[0]?.exemption, 'mta-sts');
    assert.match(low.exemptions?.[0]?.waived ?? '', /MTA-STS enforce \(policy id abc, mode enforce\): mx\.other\.test offers TLS_INSECURE/);
  }
  const outside = decide(secure, { ...req, sts: { ...sts, outsidePolicy: true } }, { kind: 'none' }, 'defer', 'mx.other.test');
  assert.equal(
    outside.kind === 'pass' && outside.exemptions?.[0]?.waived.includes('mx.other.test is not an MX host the policy lists'),
    true,
  );
  assert.deepEqual(decide(secure, { ...req, sts }, stored(SecLevel.TLS_SECURE), 'defer', 'h'), {
    kind: 'pass',
    stored: SecLevel.TLS_SECURE,
  });
  // The table minimum still holds when MTA-STS is exempted.
  const both: Requirement = { ...req, sts, minimum: { level: SecLevel.TLS_SECURE, rule: RULE } };
  assert.equal(decide(insecure, both, { kind: 'none' }, 'defer', 'h').kind, 'abandon');
});
