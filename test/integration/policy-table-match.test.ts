/**
 * POL-1 `match=`: the names a policy table rule pins are checked on real
 * certificates from the tests' CA with the same checks as the MX host name
 * (TLS-1): a trusted chain, the validity period, a dNSName (a `*.` wildcard
 * covers one label; never the CN).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import { classifyConnection, type TlsObservation } from '#lib/tls/classify';
import { SecLevel } from '#lib/sec-level';
import { TestCa } from '../fixtures/test-ca';

let ca: TestCa;
before(async () => {
  ca = await TestCa.create();
});
after(async () => {
  await ca.cleanup();
});

async function observed(opts: Parameters<TestCa['issue']>[0], authorizationError: string | null = null): Promise<TlsObservation> {
  return { encrypted: true, peerCertificate: new X509Certificate((await ca.issue(opts)).cert), authorizationError, protocol: 'TLSv1.3' };
}

test('POL-1: match= is checked beside the level: a certificate for a pinned name matches it even when the MX host name is another', async () => {
  const seen = await observed({ dnsNames: ['mx1.partner.test'] });
  const result = classifyConnection(seen, 'mx.elsewhere.test', new Date(), ['mx2.partner.test', 'mx1.partner.test']);
  assert.equal(result.level, SecLevel.TLS_INSECURE, 'TLS-1 still classifies against the MX host name');
  assert.deepEqual(result.match, { ok: true, name: 'mx1.partner.test' });
  assert.equal(classifyConnection(seen, 'mx1.partner.test').match, undefined, 'no names, no match field');
});

test('POL-1: a wildcard covers one label of a pinned name; a name the certificate does not carry is refused with its subjectAltName', async () => {
  const wildcard = await observed({ dnsNames: ['*.partner.test'] });
  assert.deepEqual(classifyConnection(wildcard, undefined, new Date(), ['mx.partner.test']).match, { ok: true, name: 'mx.partner.test' });
  const deeper = classifyConnection(wildcard, undefined, new Date(), ['a.mx.partner.test', 'partner.test']).match;
  assert.equal(deeper?.ok, false);
  assert.match(
    deeper && !deeper.ok ? deeper.reason : '',
    /^certificate carries none of a\.mx\.partner\.test, partner\.test \(subjectAltName: DNS:\*\.partner\.test\)$/,
  );
});

test('POL-1: match= never passes an untrusted, expired or CN-only certificate, nor a connection without TLS', async () => {
  const reason = (o: TlsObservation): string => {
    const match = classifyConnection(o, 'mx.partner.test', new Date(), ['mx.partner.test']).match;
    assert.equal(match?.ok, false);
    return match && !match.ok ? match.reason : '';
  };
  assert.match(
    reason(await observed({ dnsNames: ['mx.partner.test'] }, 'DEPTH_ZERO_SELF_SIGNED_CERT')),
    /not trusted: DEPTH_ZERO_SELF_SIGNED_CERT/,
  );
  assert.match(reason(await observed({ dnsNames: ['mx.partner.test'], expired: true })), /validity period/);
  assert.match(reason(await observed({ cn: 'mx.partner.test' })), /carries none of mx\.partner\.test/);
  assert.equal(reason({ encrypted: false }), 'no TLS');
});
