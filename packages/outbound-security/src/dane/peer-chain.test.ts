import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { chainFromDetailed, chainFromX509, MAX_PEER_CHAIN, type DetailedPeerCertificateLinks } from './peer-chain';

// Distinct real certificates without generating any: the roots bundled with Node. The walk reads
// only `raw` and `issuerCertificate`, so the links need not be real issuance (match.test.ts checks
// a real handshake's chain).
const certs = rootCertificates.slice(0, MAX_PEER_CHAIN + 5).map((pem) => new X509Certificate(pem));

/** Node's shape: `raw` + `issuerCertificate` links, the last one pointing at itself when `selfLinked`. */
function detailed(count: number, selfLinked: boolean): DetailedPeerCertificateLinks {
  const nodes: DetailedPeerCertificateLinks[] = certs.slice(0, count).map((c) => ({ raw: c.raw }));
  nodes.forEach((node, i) => {
    node.issuerCertificate = nodes[i + 1] ?? (selfLinked ? node : undefined);
  });
  return nodes[0] as DetailedPeerCertificateLinks;
}

const fingerprints = (list: X509Certificate[]): string[] => list.map((c) => c.fingerprint256);

test('DANE-4: a detailed peer certificate whose root links to itself gives the chain once, leaf first', () => {
  const chain = chainFromDetailed(detailed(3, true));
  assert.equal(chain.problem, undefined);
  assert.deepEqual(fingerprints(chain.certificates), fingerprints(certs.slice(0, 3)));
});

test('DANE-4: a chain without a self-linked root ends where the links end', () => {
  const chain = chainFromDetailed(detailed(2, false));
  assert.equal(chain.problem, undefined);
  assert.equal(chain.certificates.length, 2);
});

test('DANE-4: a chain longer than the cap is cut, and says so', () => {
  const chain = chainFromDetailed(detailed(MAX_PEER_CHAIN + 3, true));
  assert.equal(chain.certificates.length, MAX_PEER_CHAIN);
  assert.match(chain.problem ?? '', new RegExp(`longer than ${MAX_PEER_CHAIN} certificates`));
  assert.equal(chainFromDetailed(detailed(4, true), 2).certificates.length, 2);
  const exactly = chainFromDetailed(detailed(MAX_PEER_CHAIN, true));
  assert.deepEqual([exactly.certificates.length, exactly.problem], [MAX_PEER_CHAIN, undefined]);
});

test('DANE-4: a link back to an earlier object or to a certificate already read ends the walk', () => {
  const a: DetailedPeerCertificateLinks = { raw: certs[0]?.raw };
  const b: DetailedPeerCertificateLinks = { raw: certs[1]?.raw, issuerCertificate: a };
  a.issuerCertificate = b;
  assert.equal(chainFromDetailed(a).certificates.length, 2);
  const copy: DetailedPeerCertificateLinks = { raw: Buffer.from(certs[0]?.raw ?? '') };
  const again: DetailedPeerCertificateLinks = { raw: certs[1]?.raw, issuerCertificate: { raw: certs[0]?.raw, issuerCertificate: copy } };
  copy.issuerCertificate = again;
  const chain = chainFromDetailed(copy);
  assert.deepEqual(fingerprints(chain.certificates), fingerprints(certs.slice(0, 2)));
  assert.equal(chain.problem, undefined);
});

test('DANE-4: no certificate, a missing or malformed DER gives what was read before, never a throw', () => {
  assert.deepEqual(chainFromDetailed({}), { certificates: [] });
  assert.deepEqual(chainFromDetailed(undefined), { certificates: [] });
  assert.deepEqual(chainFromDetailed(null), { certificates: [] });
  const garbage = chainFromDetailed({ raw: certs[0]?.raw, issuerCertificate: { raw: Buffer.from('not DER') } });
  assert.equal(garbage.certificates.length, 1);
  assert.match(garbage.problem ?? '', /certificate 1 does not parse/);
  const notBytes = chainFromDetailed({ raw: 'MIIB…' });
  assert.equal(notBytes.certificates.length, 0);
  assert.match(notBytes.problem ?? '', /certificate 0 has no DER bytes/);
  const hostile = {
    raw: certs[0]?.raw,
    get issuerCertificate(): never {
      throw new Error('boom');
    },
  };
  const thrown = chainFromDetailed(hostile);
  assert.equal(thrown.certificates.length, 1);
  assert.match(thrown.problem ?? '', /reading certificate 1 failed: boom/);
});

test('DANE-4: an X509Certificate without issuer links is a chain of one; none is an empty chain', () => {
  assert.deepEqual(fingerprints(chainFromX509(certs[0]).certificates), fingerprints(certs.slice(0, 1)));
  assert.deepEqual(chainFromX509(undefined), { certificates: [] });
});

test('DANE-10: chains of at least 16 certificates are read, whichever way they are read', () => {
  assert.ok(MAX_PEER_CHAIN >= 17, `MAX_PEER_CHAIN is ${MAX_PEER_CHAIN}`);
  const seventeen = chainFromDetailed(detailed(17, true));
  assert.deepEqual([seventeen.certificates.length, seventeen.problem], [17, undefined]);
  const linked = certs.slice(0, 17).map((c) => new X509Certificate(c.raw));
  const leaf = linked.reduceRight<X509Certificate | undefined>((issuer, cert) => {
    if (issuer) Object.defineProperty(cert, 'issuerCertificate', { value: issuer });
    return cert;
  }, undefined);
  assert.equal(chainFromX509(leaf).certificates.length, 17);
});
