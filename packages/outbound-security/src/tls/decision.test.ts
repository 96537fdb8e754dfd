import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, type Requirement } from './decision';
import type { RatchetRead } from '../ratchet/store';
import { SecLevel } from './sec-level';

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
