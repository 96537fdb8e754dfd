import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResultType } from './record';
import {
  resultOfConnection,
  resultOfDaneCheck,
  resultOfStsDiscovery,
  resultOfStsShortfall,
  resultOfTlsaLookupFailure,
  type MappedResult,
} from './result-type';

const NOW = new Date(Date.UTC(2025, 2, 14));
const failure = (resultType: ResultType, failureReasonCode?: string): MappedResult =>
  failureReasonCode === undefined ? { kind: 'failure', resultType } : { kind: 'failure', resultType, failureReasonCode };

test('RPT-2: a certificate valid for the MX host is a success', () => {
  assert.deepEqual(resultOfConnection('certificate valid for mx.example.com', NOW), { kind: 'success' });
});

test('RPT-2: no STARTTLS, or STARTTLS refused, is starttls-not-supported', () => {
  assert.deepEqual(resultOfConnection('no TLS', NOW), failure('starttls-not-supported', 'starttls-not-offered'));
  assert.deepEqual(
    resultOfConnection('refused STARTTLS: 454 4.7.0 TLS not available', NOW),
    failure('starttls-not-supported', '454 4.7.0 TLS not available'),
  );
});

test('RPT-2: a failed handshake or bytes after the STARTTLS reply are validation-failure with the reason', () => {
  for (const reason of [
    'TLS handshake failed',
    'sent plaintext after the STARTTLS reply: 250 ok',
    'sent bytes after the STARTTLS reply: x',
  ]) {
    assert.deepEqual(resultOfConnection(reason, NOW), failure('validation-failure', reason));
  }
});

test('RPT-2: chain errors are certificate-not-trusted with the code, an expired chain is certificate-expired', () => {
  assert.deepEqual(
    resultOfConnection('certificate not trusted: SELF_SIGNED_CERT_IN_CHAIN', NOW),
    failure('certificate-not-trusted', 'SELF_SIGNED_CERT_IN_CHAIN'),
  );
  assert.deepEqual(
    resultOfConnection('certificate not trusted: CERT_HAS_EXPIRED', NOW),
    failure('certificate-expired', 'CERT_HAS_EXPIRED'),
  );
  assert.deepEqual(resultOfConnection('no peer certificate', NOW), failure('certificate-not-trusted', 'no-peer-certificate'));
});

test('RPT-2: outside the validity period: expired after it, not trusted before it', () => {
  const expired = resultOfConnection('certificate outside its validity period (Feb  1 00:00:00 2025 GMT – Mar  1 00:00:00 2025 GMT)', NOW);
  assert.deepEqual(expired, failure('certificate-expired', 'certificate-expired'));
  const early = resultOfConnection('certificate outside its validity period (Apr  1 00:00:00 2025 GMT – Apr  1 00:00:00 2026 GMT)', NOW);
  assert.deepEqual(early, failure('certificate-not-trusted', 'certificate-not-yet-valid'));
});

test('RPT-2: a certificate for other names is certificate-host-mismatch', () => {
  const result = resultOfConnection('certificate not valid for mx.example.com (subjectAltName: DNS:other.example.com)', NOW);
  assert.deepEqual(result, failure('certificate-host-mismatch'));
});

test('RPT-2: any other reason is validation-failure carrying the reason', () => {
  const reason = 'no host name to verify (address literal)';
  assert.deepEqual(resultOfConnection(reason, NOW), failure('validation-failure', reason));
});

test('RPT-2, STS-8: what an MTA-STS policy refuses maps through the connection reason it names', () => {
  assert.deepEqual(
    resultOfStsShortfall('mx.example.com is not an MX host the policy lists', NOW),
    failure('validation-failure', 'mx-not-in-sts-policy'),
  );
  assert.deepEqual(
    resultOfStsShortfall('mx.example.com negotiated TLSv1.1, MTA-STS requires TLS 1.2 or later', NOW),
    failure('validation-failure', 'tls-version-below-1.2'),
  );
  const untrusted = resultOfStsShortfall(
    'mx.example.com offers TLS_INSECURE (certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT), MTA-STS requires TLS_SECURE',
    NOW,
  );
  assert.deepEqual(untrusted, failure('certificate-not-trusted', 'DEPTH_ZERO_SELF_SIGNED_CERT'));
  assert.deepEqual(
    resultOfStsShortfall('mx.example.com offers PLAIN (no TLS), MTA-STS requires TLS_SECURE', NOW),
    failure('starttls-not-supported', 'starttls-not-offered'),
  );
});

test('RPT-2: MTA-STS discovery failures: certificate → sts-webpki-invalid, bad policy → sts-policy-invalid, else fetch error', () => {
  const type = (reason: string): string | undefined => {
    const result = resultOfStsDiscovery(reason);
    return result.kind === 'failure' ? result.resultType : undefined;
  };
  assert.equal(
    type(
      'policy fetch failed: https://mta-sts.example.com/.well-known/mta-sts.txt via 192.0.2.1: DEPTH_ZERO_SELF_SIGNED_CERT self-signed certificate',
    ),
    'sts-webpki-invalid',
  );
  assert.equal(type('policy fetch failed: ERR_TLS_CERT_ALTNAME_INVALID Hostname/IP does not match'), 'sts-webpki-invalid');
  assert.equal(
    type('policy at https://mta-sts.example.com/.well-known/mta-sts.txt is invalid: line 2: mode missing'),
    'sts-policy-invalid',
  );
  assert.equal(
    type('policy fetch failed: https://mta-sts.example.com/.well-known/mta-sts.txt: Content-Type is text/html, not text/plain'),
    'sts-policy-invalid',
  );
  assert.equal(type('policy fetch failed: https://mta-sts.example.com/.well-known/mta-sts.txt: HTTP status 404'), 'sts-policy-fetch-error');
  assert.equal(type('policy fetch failed: mta-sts.example.com has no such name (NXDOMAIN)'), 'sts-policy-fetch-error');
});

test("RPT-2: DANE: failed TLSA lookup → dnssec-invalid; the guard's check: match, unusable-only, no TLS, mismatch", () => {
  assert.deepEqual(
    resultOfTlsaLookupFailure('TLSA lookup for _25._tcp.mx.example.com: SERVFAIL'),
    failure('dnssec-invalid', 'TLSA lookup for _25._tcp.mx.example.com: SERVFAIL'),
  );
  assert.deepEqual(resultOfDaneCheck({ kind: 'authenticated', reason: 'matched' }), { kind: 'success' });
  assert.deepEqual(resultOfDaneCheck({ kind: 'encrypted', reason: 'only unusable' }), failure('tlsa-invalid', 'all-tlsa-records-unusable'));
  assert.deepEqual(
    resultOfDaneCheck({ kind: 'refused', result: 'no_tls', reason: 'no TLS' }),
    failure('starttls-not-supported', 'starttls-not-offered'),
  );
  assert.deepEqual(
    resultOfDaneCheck({ kind: 'refused', result: 'mismatch', reason: 'no match' }),
    failure('tlsa-invalid', 'tlsa-no-match'),
  );
});
