/**
 * RPT-2 against the real classification (TLS-1): certificates made by the
 * tests' CA, classified by `classifyConnection` as the guard does, and the
 * reasons it gives mapped to RFC 8460 §4.3 result types. Keeps the mapping
 * true when the classification's wording changes.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import { classifyConnection, type TlsObservation } from '#lib/tls/classify';
import { decide } from '#lib/tls/decision';
import { resultOfConnection, resultOfStsShortfall, type MappedResult } from '#lib/tlsrpt/result-type';
import { TestCa } from '../fixtures/test-ca';

const MX = 'mx.tlsrpt.test';
let ca: TestCa;

before(async () => {
  ca = await TestCa.create();
});
after(async () => {
  await ca.cleanup();
});

async function observe(opts: Parameters<TestCa['issue']>[0], authorizationError: string | null = null): Promise<TlsObservation> {
  const peerCertificate = new X509Certificate((await ca.issue(opts)).cert);
  return { encrypted: true, peerCertificate, authorizationError, protocol: 'TLSv1.3' };
}

function mapped(observed: TlsObservation): MappedResult {
  return resultOfConnection(classifyConnection(observed, MX).reason);
}

const typeOf = (result: MappedResult): string => (result.kind === 'success' ? 'success' : result.resultType);

test('RPT-2: a valid certificate for the MX host is a success', async () => {
  assert.equal(typeOf(mapped(await observe({ dnsNames: [MX] }))), 'success');
});

test('RPT-2: no TLS is starttls-not-supported', () => {
  assert.equal(typeOf(mapped({ encrypted: false })), 'starttls-not-supported');
});

test('RPT-2: a certificate for another name, or with the name only in the CN, is certificate-host-mismatch', async () => {
  assert.equal(typeOf(mapped(await observe({ dnsNames: ['other.tlsrpt.test'] }))), 'certificate-host-mismatch');
  assert.equal(typeOf(mapped(await observe({ cn: MX }))), 'certificate-host-mismatch');
});

test('RPT-2: expired certificates are certificate-expired, whether the dates or the chain check says so', async () => {
  assert.equal(typeOf(mapped(await observe({ dnsNames: [MX], expired: true }))), 'certificate-expired');
  assert.equal(typeOf(mapped(await observe({ dnsNames: [MX], expired: true }, 'CERT_HAS_EXPIRED'))), 'certificate-expired');
});

test('RPT-2: a certificate not valid yet is certificate-not-trusted', async () => {
  const result = mapped(await observe({ dnsNames: [MX], notYetValid: true }));
  assert.deepEqual(result, { kind: 'failure', resultType: 'certificate-not-trusted', failureReasonCode: 'certificate-not-yet-valid' });
});

test('RPT-2: an untrusted chain is certificate-not-trusted with the chain error as the reason code', async () => {
  const result = mapped(await observe({ dnsNames: [MX] }, 'DEPTH_ZERO_SELF_SIGNED_CERT'));
  assert.deepEqual(result, { kind: 'failure', resultType: 'certificate-not-trusted', failureReasonCode: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
});

test("RPT-2, STS-8: what a testing policy would refuse, as the decision says it, maps to the connection's result type", async () => {
  const requirement = { domain: 'tlsrpt.test', ratchet: false, sts: { mode: 'testing' as const, policyId: 'p1' } };
  const cases: Array<[TlsObservation, string]> = [
    [await observe({ dnsNames: ['other.tlsrpt.test'] }), 'certificate-host-mismatch'],
    [await observe({ dnsNames: [MX] }, 'DEPTH_ZERO_SELF_SIGNED_CERT'), 'certificate-not-trusted'],
    [{ encrypted: false }, 'starttls-not-supported'],
    [{ ...(await observe({ dnsNames: [MX] })), protocol: 'TLSv1.1' }, 'validation-failure'],
  ];
  for (const [observed, expected] of cases) {
    const verdict = decide(classifyConnection(observed, MX), requirement, undefined, 'defer', MX);
    assert.equal(verdict.kind, 'pass');
    const wouldRefuse = verdict.kind === 'pass' ? verdict.stsWouldRefuse : undefined;
    assert.ok(wouldRefuse, 'testing mode notes what enforce would refuse');
    assert.equal(typeOf(resultOfStsShortfall(wouldRefuse)), expected, wouldRefuse);
  }
  const enforce = decide(
    classifyConnection({ encrypted: false }, MX),
    { ...requirement, sts: { mode: 'enforce', policyId: 'p1' } },
    undefined,
    'defer',
    MX,
  );
  assert.equal(enforce.kind, 'abandon');
  assert.equal(typeOf(resultOfStsShortfall(enforce.kind === 'abandon' ? enforce.reason : '')), 'starttls-not-supported');
});
