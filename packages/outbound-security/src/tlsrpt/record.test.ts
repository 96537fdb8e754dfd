import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy } from '../mta-sts/policy';
import {
  MAX_FIELD_LENGTH,
  MAX_POLICY_STRINGS,
  RESULT_TYPES,
  addDays,
  dayStart,
  failureKey,
  isDay,
  noPolicyFound,
  normaliseFailure,
  parseFailureKey,
  reportedPolicy,
  stsPolicy,
  tlsaPolicy,
  utcDay,
} from './record';

test('RPT-2: the eleven result types of RFC 8460 §4.3', () => {
  assert.deepEqual([...RESULT_TYPES].sort(), [
    'certificate-expired',
    'certificate-host-mismatch',
    'certificate-not-trusted',
    'dane-required',
    'dnssec-invalid',
    'starttls-not-supported',
    'sts-policy-fetch-error',
    'sts-policy-invalid',
    'sts-webpki-invalid',
    'tlsa-invalid',
    'validation-failure',
  ]);
});

test('RPT-1: sessions are counted per UTC day, whatever the local time zone', () => {
  assert.equal(utcDay(Date.UTC(2025, 2, 14, 0, 0, 0)), '2025-03-14');
  assert.equal(utcDay(Date.UTC(2025, 2, 14, 23, 59, 59, 999)), '2025-03-14');
  assert.equal(utcDay(Date.UTC(2025, 2, 15)), '2025-03-15');
  assert.equal(utcDay(Date.UTC(2025, 2, 14, 12)), '2025-03-14', 'the cached day is not reused for another day');
  assert.equal(dayStart('2025-03-14'), Date.UTC(2025, 2, 14));
  assert.equal(addDays('2025-02-28', 1), '2025-03-01');
  assert.equal(addDays('2025-03-01', -1), '2025-02-28');
  for (const bad of ['2025-02-30', '2025-3-14', '20250314', '../etc', '2025-03-14 ']) assert.equal(isDay(bad), false, bad);
});

test('RPT-1: an MTA-STS policy is reported with its lines and mx patterns, and one parsed policy is one id', () => {
  const parsed = parsePolicy('version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n');
  assert.ok(parsed.ok);
  const policy = stsPolicy('example.com', parsed.policy);
  assert.equal(policy.type, 'sts');
  assert.equal(policy.domain, 'example.com');
  assert.deepEqual(policy.strings, ['version: STSv1', 'mode: testing', 'mx: mx1.example.com', 'mx: *.example.net', 'max_age: 86400']);
  assert.deepEqual(policy.mxHosts, ['mx1.example.com', '*.example.net']);
  assert.equal(stsPolicy('example.com', parsed.policy), policy, 'made once per parsed policy');
  const again = parsePolicy('version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n');
  assert.ok(again.ok);
  assert.equal(stsPolicy('example.com', again.policy).id, policy.id, 'equal policies, equal ids');
  const enforce = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n');
  assert.ok(enforce.ok);
  assert.notEqual(stsPolicy('example.com', enforce.policy).id, policy.id, 'a changed policy is another entry');
  assert.notEqual(stsPolicy('example.org', parsed.policy).id, policy.id, 'another domain, another policy');
});

test('RPT-1: TLSA policies carry the records in presentation form with the full data', () => {
  const policy = tlsaPolicy('mx.example.com', 'mx.example.com', [
    { usage: 3, selector: 1, matchingType: 1, data: Buffer.from('ab01', 'hex') },
  ]);
  assert.deepEqual(policy.strings, ['3 1 1 AB01']);
  assert.deepEqual(policy.mxHosts, ['mx.example.com']);
  assert.equal(policy.type, 'tlsa');
});

test('RPT-1: no-policy-found is one value per domain', () => {
  assert.equal(noPolicyFound('example.com'), noPolicyFound('example.com'));
  assert.deepEqual(noPolicyFound('example.com').strings, []);
  assert.notEqual(noPolicyFound('example.com').id, noPolicyFound('example.org').id);
  assert.notEqual(noPolicyFound('example.com').id, reportedPolicy('sts', 'example.com', [], []).id);
});

test('OPS-5: failure details from the network are bounded and printable', () => {
  const failure = normaliseFailure({
    resultType: 'starttls-not-supported',
    receivingMxHelo: `mx\r\nInjected: yes${'x'.repeat(1000)}`,
    failureReasonCode: '',
    receivingIp: '192.0.2.1',
  });
  assert.equal(failure.receivingMxHelo?.length, MAX_FIELD_LENGTH);
  assert.doesNotMatch(failure.receivingMxHelo ?? '', /[\r\n]/);
  assert.equal('failureReasonCode' in failure, false, 'empty fields are left out');
  assert.equal(failure.receivingIp, '192.0.2.1');
});

test('RPT-1: failure details survive their stored form', () => {
  const failure = normaliseFailure({
    resultType: 'certificate-host-mismatch',
    sendingMtaIp: '192.0.2.9',
    receivingMxHostname: 'mx.example.com',
    receivingMxHelo: 'mx "quoted" \\ name',
    receivingIp: '2001:db8::1',
    failureReasonCode: 'x',
    additionalInformation: 'https://example.com/info',
  });
  assert.deepEqual(parseFailureKey(failureKey(failure)), failure);
  assert.equal(parseFailureKey('["not-a-type","","","","","",""]'), null);
  assert.equal(parseFailureKey('{'), null);
});

test('RPT-8, OPS-8: a policy of 600 TLSA records never throws; it keeps MAX_POLICY_STRINGS strings and says how many it left out', () => {
  const records = Array.from({ length: 600 }, (_, i) => ({ usage: 3, selector: 1, matchingType: 0, data: Buffer.from([i % 256]) }));
  const policy = tlsaPolicy('mx.example.com', 'mx.example.com', records);
  assert.equal(policy.strings.length, MAX_POLICY_STRINGS);
  assert.equal(policy.omittedStrings, 600 - MAX_POLICY_STRINGS);
  assert.equal(policy.strings[0], '3 1 0 00');
  assert.equal(tlsaPolicy('mx.example.com', 'mx.example.com', records.slice(0, 2)).omittedStrings, 0);
});
