import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, type MtaStsPolicy } from '../mta-sts/policy';
import type { Classification } from '../tls/classify';
import type { Requirement } from '../tls/decision';
import { SecLevel } from '../sec-level';
import { isReportMessage, REPORT_NOTE, sessionOfConnection, type ConnectionFacts } from './session';

function policy(mode: 'enforce' | 'testing' | 'none'): MtaStsPolicy {
  const parsed = parsePolicy(`version: STSv1\r\nmode: ${mode}\r\nmx: mx.example.com\r\nmax_age: 86400\r\n`);
  assert.ok(parsed.ok);
  return parsed.policy;
}

const SECURE: Classification = { level: SecLevel.TLS_SECURE, reason: 'certificate valid for mx.example.com', protocol: 'TLSv1.3' };
const SELF_SIGNED: Classification = {
  level: SecLevel.TLS_INSECURE,
  reason: 'certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT',
  protocol: 'TLSv1.3',
};
const PLAIN: Classification = { level: SecLevel.PLAIN, reason: 'no TLS' };

function facts(requirement: Partial<Requirement>, extra: Partial<ConnectionFacts> = {}): ConnectionFacts {
  return {
    requirement: { domain: 'example.com', ratchet: true, ...requirement },
    mxHost: 'mx.example.com',
    receivingIp: '192.0.2.1',
    sendingIp: '192.0.2.100',
    ...extra,
  };
}

test('RPT-1, STS-8: an MTA-STS domain counts under its sts policy; testing mode is judged like enforce', () => {
  for (const mode of ['enforce', 'testing'] as const) {
    const sts = { stsPolicy: policy(mode) };
    const ok = sessionOfConnection(facts({ sts: { mode, policyId: 'p1' } }, sts), { kind: 'decided', classification: SECURE });
    assert.equal(ok?.policyDomain, 'example.com');
    assert.equal(ok?.policy.type, 'sts');
    assert.deepEqual(ok?.policy.strings, ['version: STSv1', `mode: ${mode}`, 'mx: mx.example.com', 'max_age: 86400']);
    assert.equal(ok?.result, 'success');
    const bad = sessionOfConnection(facts({ sts: { mode, policyId: 'p1' } }, sts), { kind: 'decided', classification: SELF_SIGNED });
    assert.deepEqual(bad?.result, {
      resultType: 'certificate-not-trusted',
      receivingIp: '192.0.2.1',
      receivingMxHostname: 'mx.example.com',
      sendingMtaIp: '192.0.2.100',
      failureReasonCode: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  }
});

test('RPT-2: MTA-STS: an MX host the policy does not list, TLS below 1.2', () => {
  const sts = { sts: { mode: 'testing' as const, policyId: 'p1' } };
  const other = sessionOfConnection(facts(sts, { stsPolicy: policy('testing'), mxHost: 'mx.other.com' }), {
    kind: 'decided',
    classification: { ...SECURE, reason: 'certificate valid for mx.other.com' },
  });
  assert.equal(typeof other?.result === 'object' && other.result.failureReasonCode, 'mx-not-in-sts-policy');
  const old = sessionOfConnection(facts(sts, { stsPolicy: policy('testing') }), {
    kind: 'decided',
    classification: { ...SECURE, protocol: 'TLSv1.1' },
  });
  assert.equal(typeof old?.result === 'object' && old.result.failureReasonCode, 'tls-version-below-1.2');
});

test('RPT-1: a none policy is no-policy-found; without a policy only a session without TLS is a failure', () => {
  const none = sessionOfConnection(facts({ sts: { mode: 'none', policyId: 'p1' } }, { stsPolicy: policy('none') }), {
    kind: 'decided',
    classification: SELF_SIGNED,
  });
  assert.equal(none?.policy.type, 'no-policy-found');
  assert.equal(none?.result, 'success', 'nothing asks a certificate to be valid');
  const plain = sessionOfConnection(facts({}), { kind: 'decided', classification: PLAIN });
  assert.equal(typeof plain?.result === 'object' && plain.result.resultType, 'starttls-not-supported');
});

test('RPT-2: DANE: the tlsa policy under the MX host, the DANE check decides', () => {
  const dane = {
    tlsaName: '_25._tcp.mx.example.com',
    usable: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 1) }],
    mode: 'on' as const,
  };
  const stsPolicy = policy('enforce');
  const matched = sessionOfConnection(facts({ dane, sts: { mode: 'enforce', policyId: 'p1' } }, { stsPolicy }), {
    kind: 'decided',
    classification: SELF_SIGNED,
    dane: { kind: 'authenticated', reason: 'matched' },
  });
  assert.equal(matched?.policy.type, 'tlsa', 'DANE-5: DANE before MTA-STS');
  assert.equal(matched?.policy.domain, 'mx.example.com');
  assert.deepEqual(matched?.policy.strings, [`3 1 1 ${'01'.repeat(32)}`]);
  assert.equal(matched?.result, 'success');
  const mismatch = sessionOfConnection(facts({ dane }), {
    kind: 'decided',
    classification: SELF_SIGNED,
    dane: { kind: 'refused', result: 'mismatch', reason: 'no match' },
  });
  assert.equal(typeof mismatch?.result === 'object' && mismatch.result.resultType, 'tlsa-invalid');
});

test('RPT-2: a connection ended in its TLS negotiation fails whatever the policy', () => {
  const refused = sessionOfConnection(facts({}), { kind: 'tls-ended', reason: 'refused STARTTLS: "454 no"' });
  assert.equal(typeof refused?.result === 'object' && refused.result.resultType, 'starttls-not-supported');
  const handshake = sessionOfConnection(facts({ sts: { mode: 'enforce', policyId: 'p1' } }, { stsPolicy: policy('enforce') }), {
    kind: 'tls-ended',
    reason: 'TLS handshake failed (wrong version number)',
  });
  assert.equal(typeof handshake?.result === 'object' && handshake.result.resultType, 'validation-failure');
});

test('RPT-1: relay hops and address literals are not counted (no Policy Domain)', () => {
  assert.equal(sessionOfConnection(facts({ relayKey: 'relay:smarthost.example' }), { kind: 'decided', classification: SECURE }), null);
  assert.equal(sessionOfConnection(facts({ domain: '[192.0.2.1]' }), { kind: 'decided', classification: SECURE }), null);
});

test('RPT-4: report messages are known by their note', () => {
  assert.equal(isReportMessage({ todo: { notes: { [REPORT_NOTE]: 'example.com' } } }), true);
  assert.equal(isReportMessage({ todo: { notes: {} } }), false);
  assert.equal(isReportMessage({ todo: {} }), false);
});

test('RPT-10: a failure without TLS carries sending-mta-ip, receiving-ip and receiving-mx-hostname (the address when no host name is known)', () => {
  const plain = sessionOfConnection(facts({}), { kind: 'decided', classification: PLAIN });
  assert.deepEqual(plain?.result, {
    resultType: 'starttls-not-supported',
    sendingMtaIp: '192.0.2.100',
    receivingIp: '192.0.2.1',
    receivingMxHostname: 'mx.example.com',
    failureReasonCode: 'starttls-not-offered',
  });
  const bare = sessionOfConnection(facts({}, { mxHost: undefined }), { kind: 'tls-ended', reason: 'STARTTLS refused (454)' });
  assert.equal(typeof bare?.result === 'object' && bare.result.receivingMxHostname, '192.0.2.1');
});
