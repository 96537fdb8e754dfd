import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { CertificateCache } from './certificate-cache';
import { matchDane, type DaneContext, type DaneMatch } from './match';
import { chainFromDetailed, chainFromX509 } from './peer-chain';
import { parseTlsaText, type TlsaRecord } from './tlsa';

// Certificates are made here with the openssl CLI (`req -x509`, OpenSSL 3), in a temp dir:
// test/fixtures/test-ca.ts issues leaves straight from its root only, and DANE-TA needs
// intermediates, lookalike issuers and chosen extensions. Validity starts when a certificate
// is made; `days` sets its end, and tests move `now` instead of the certificates' dates.

const DAY = 24 * 60 * 60 * 1000;
const MX = 'mx.example.test';
const OPENSSL_CONFIG = `[ req ]
distinguished_name = dn
[ dn ]
[ ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_no_akid ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = none
authorityKeyIdentifier = none
[ not_ca ]
basicConstraints = critical,CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca_pathlen0 ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca_excludes_mx ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
nameConstraints = critical,excluded;DNS:example.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca_critical_unknown ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
1.3.6.1.4.1.55555.1 = critical,ASN1:NULL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_critical_unknown ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
1.3.6.1.4.1.55555.1 = critical,ASN1:NULL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_client_auth ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

interface Made {
  cert: X509Certificate;
  pem: string;
  key: string;
  certPath: string;
  keyPath: string;
}

interface MakeOptions {
  cn: string;
  dnsNames?: string[];
  /** signed by this one; self-signed without */
  issuer?: Made;
  profile?:
    | 'ca'
    | 'leaf'
    | 'leaf_no_akid'
    | 'not_ca'
    | 'ca_pathlen0'
    | 'ca_excludes_mx'
    | 'ca_critical_unknown'
    | 'leaf_critical_unknown'
    | 'leaf_client_auth';
  days?: number;
}

let dir = '';
let made = 0;

async function make(o: MakeOptions): Promise<Made> {
  const base = path.join(dir, `cert-${++made}`);
  const args = ['req', '-x509', '-config', path.join(dir, 'openssl.cnf'), '-extensions', o.profile ?? 'leaf', '-subj', `/CN=${o.cn}`];
  args.push('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.crt`);
  args.push('-days', String(o.days ?? 365));
  if (o.issuer) args.push('-CA', o.issuer.certPath, '-CAkey', o.issuer.keyPath);
  if (o.dnsNames?.length) args.push('-addext', `subjectAltName=${o.dnsNames.map((n) => `DNS:${n}`).join(',')}`);
  await new Promise<void>((resolve, reject) =>
    execFile('openssl', args, (err, _out, stderr) => (err ? reject(new Error(`openssl ${args.join(' ')}: ${stderr}`)) : resolve())),
  );
  const [pem, key] = await Promise.all([fs.readFile(`${base}.crt`, 'utf8'), fs.readFile(`${base}.key`, 'utf8')]);
  return { cert: new X509Certificate(pem), pem, key, certPath: `${base}.crt`, keyPath: `${base}.key` };
}

/** A TLSA record for `cert`, its data computed here from Node's crypto. */
function tlsa(usage: number, selector: number, matching: number, cert: X509Certificate): TlsaRecord {
  const selected = selector === 1 ? cert.publicKey.export({ type: 'spki', format: 'der' }) : cert.raw;
  const data =
    matching === 0
      ? selected
      : createHash(matching === 1 ? 'sha256' : 'sha512')
          .update(selected)
          .digest();
  return { usage, selector, matchingType: matching, data };
}

function record(text: string): TlsaRecord {
  const parsed = parseTlsaText(text);
  if (parsed.kind !== 'record') throw new Error(parsed.reason);
  return parsed.record;
}

const context = (o: Partial<DaneContext> = {}): DaneContext => ({ mxHost: MX, tlsaBaseDomain: MX, now: new Date(), ...o });
const inDays = (days: number): Date => new Date(Date.now() + days * DAY);
const certs = (...list: Made[]): X509Certificate[] => list.map((m) => m.cert);

function mismatch(result: DaneMatch): string {
  assert.equal(result.kind, 'mismatch', `expected a mismatch, got ${JSON.stringify(result)}`);
  return result.kind === 'mismatch' ? result.reasons.join('\n') : '';
}

function assertMatch(result: DaneMatch, via: 'dane-ee' | 'dane-ta', depth: number): void {
  assert.equal(result.kind, 'match', result.kind === 'mismatch' ? result.reasons.join('\n') : '');
  if (result.kind === 'match') assert.deepEqual([result.via, result.depth], [via, depth]);
}

const f = {} as Record<
  | 'root'
  | 'int'
  | 'leaf'
  | 'lookalikeInt'
  | 'leafNoAkid'
  | 'unrelatedInt'
  | 'shortLeaf'
  | 'shortInt'
  | 'leafUnderShortInt'
  | 'selfSigned'
  | 'otherName'
  | 'wildcard'
  | 'partialWildcard'
  | 'cnOnly'
  | 'cnAndOtherSan'
  | 'notCa'
  | 'leafUnderNotCa'
  | 'baseOnly'
  | 'pathlen0Int'
  | 'subCa'
  | 'leafUnderSubCa'
  | 'excludingInt'
  | 'leafUnderExcludingInt'
  | 'criticalInt'
  | 'leafUnderCriticalInt'
  | 'criticalLeaf'
  | 'clientAuthLeaf',
  Made
>;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dane-match-'));
  await fs.writeFile(path.join(dir, 'openssl.cnf'), OPENSSL_CONFIG);
  f.root = await make({ cn: 'Example Root', profile: 'ca', days: 3650 });
  [f.int, f.lookalikeInt, f.unrelatedInt, f.shortInt, f.selfSigned] = await Promise.all([
    make({ cn: 'Example Intermediate', profile: 'ca', issuer: f.root, days: 3650 }),
    make({ cn: 'Example Intermediate', profile: 'ca', issuer: f.root, days: 3650 }),
    make({ cn: 'Unrelated Intermediate', profile: 'ca', issuer: f.root, days: 3650 }),
    make({ cn: 'Short-lived Intermediate', profile: 'ca', issuer: f.root, days: 1 }),
    make({ cn: 'self-signed', dnsNames: ['other.example.test'], days: 1 }),
  ]);
  const leaf = (cn: string, o: Partial<MakeOptions> = {}): Promise<Made> => make({ cn, dnsNames: [cn], issuer: f.int, ...o });
  [f.leaf, f.leafNoAkid, f.shortLeaf, f.leafUnderShortInt, f.otherName, f.wildcard, f.partialWildcard, f.baseOnly] = await Promise.all([
    leaf(MX),
    leaf(MX, { profile: 'leaf_no_akid' }),
    leaf(MX, { days: 1 }),
    leaf(MX, { issuer: f.shortInt }),
    leaf('other.example.test'),
    leaf('*.example.test'),
    leaf('mx*.example.test'),
    leaf('tlsa.example.test'),
  ]);
  [f.cnOnly, f.cnAndOtherSan, f.notCa] = await Promise.all([
    make({ cn: MX, issuer: f.int }),
    make({ cn: MX, dnsNames: ['other.example.test'], issuer: f.int }),
    make({ cn: 'Not a CA', issuer: f.int, profile: 'not_ca' }),
  ]);
  f.leafUnderNotCa = await leaf(MX, { issuer: f.notCa });
  // DANE-9: what RFC 5280 path validation refuses and signatures alone do not.
  [f.pathlen0Int, f.excludingInt, f.criticalInt, f.criticalLeaf, f.clientAuthLeaf] = await Promise.all([
    make({ cn: 'Pathlen 0 Intermediate', profile: 'ca_pathlen0', issuer: f.root, days: 3650 }),
    make({ cn: 'Excluding Intermediate', profile: 'ca_excludes_mx', issuer: f.root, days: 3650 }),
    make({ cn: 'Critical Intermediate', profile: 'ca_critical_unknown', issuer: f.root, days: 3650 }),
    leaf(MX, { profile: 'leaf_critical_unknown' }),
    leaf(MX, { profile: 'leaf_client_auth' }),
  ]);
  [f.subCa, f.leafUnderExcludingInt, f.leafUnderCriticalInt] = await Promise.all([
    make({ cn: 'Sub CA', profile: 'ca', issuer: f.pathlen0Int, days: 3650 }),
    leaf(MX, { issuer: f.excludingInt }),
    leaf(MX, { issuer: f.criticalInt }),
  ]);
  f.leafUnderSubCa = await leaf(MX, { issuer: f.subCa });
});

after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('DANE-4: DANE-EE 3 1 1 matches the SHA-256 of the leaf public key', () => {
  assertMatch(matchDane([tlsa(3, 1, 1, f.leaf.cert)], certs(f.leaf, f.int, f.root), context()), 'dane-ee', 0);
});

test('DANE-4: DANE-EE 3 0 1 matches the SHA-256 of the whole leaf certificate', () => {
  assertMatch(matchDane([tlsa(3, 0, 1, f.leaf.cert)], certs(f.leaf), context()), 'dane-ee', 0);
});

test('DANE-4: DANE-EE 3 1 2 (SHA-512), 3 1 0 (the public key itself) and 3 0 0 (the certificate itself) match', () => {
  for (const r of [tlsa(3, 1, 2, f.leaf.cert), tlsa(3, 1, 0, f.leaf.cert), tlsa(3, 0, 0, f.leaf.cert)]) {
    assertMatch(matchDane([r], certs(f.leaf, f.int), context()), 'dane-ee', 0);
  }
});

test('DANE-4: a DANE-EE mismatch names the record and what the leaf has instead', () => {
  const wrong = tlsa(3, 1, 1, f.otherName.cert);
  const reasons = mismatch(matchDane([wrong], certs(f.leaf, f.int), context()));
  const actual = tlsa(3, 1, 1, f.leaf.cert).data.toString('hex').slice(0, 16);
  assert.match(
    reasons,
    new RegExp(`^3 1 1 ${wrong.data.toString('hex').slice(0, 16)}…: the SHA2-256 of the public key \\(SPKI\\) of the leaf`),
  );
  assert.match(reasons, new RegExp(`is ${actual}…`));
});

test('DANE-4: DANE-EE ignores names and dates: a self-signed, expired leaf for another name matches', () => {
  assertMatch(matchDane([tlsa(3, 1, 1, f.selfSigned.cert)], certs(f.selfSigned), context({ now: inDays(3) })), 'dane-ee', 0);
});

test('DANE-4: DANE-EE is about the leaf only: a usage 3 record for the intermediate does not match', () => {
  mismatch(matchDane([tlsa(3, 1, 1, f.int.cert)], certs(f.leaf, f.int, f.root), context()));
});

test('DANE-4: DANE-TA 2 1 1 matches the intermediate the server sent (depth 1)', () => {
  const result = matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.leaf, f.int, f.root), context());
  assertMatch(result, 'dane-ta', 1);
  if (result.kind === 'match' && result.via === 'dane-ta') assert.equal(result.name, MX);
});

test('DANE-4: DANE-TA 2 0 1 matches the root the server sent (depth 2); 2 1 1 on the root too', () => {
  assertMatch(matchDane([tlsa(2, 0, 1, f.root.cert)], certs(f.leaf, f.int, f.root), context()), 'dane-ta', 2);
  assertMatch(matchDane([tlsa(2, 1, 1, f.root.cert)], certs(f.leaf, f.int, f.root), context()), 'dane-ta', 2);
});

test('DANE-4: DANE-TA fails when the intermediate sent did not sign the leaf', () => {
  // The lookalike has the real intermediate's name; the leaf has no key identifier to tell them apart.
  const chain = certs(f.leafNoAkid, f.lookalikeInt, f.root);
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert), tlsa(2, 1, 1, f.lookalikeInt.cert)], chain, context()));
  assert.match(reasons, /^2 1 1 .*trust anchor CN=Example Root: CN=mx\.example\.test is not signed by the key of CN=Example Intermediate/m);
  assert.match(
    reasons,
    /^2 1 1 .*trust anchor CN=Example Intermediate: CN=mx\.example\.test is not signed by the key of CN=Example Intermediate/m,
  );
  assertMatch(matchDane([tlsa(2, 1, 1, f.root.cert)], certs(f.leafNoAkid, f.int, f.root), context()), 'dane-ta', 2);
});

test('DANE-4: DANE-TA fails when no certificate sent issued the leaf', () => {
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], certs(f.leaf, f.unrelatedInt, f.root), context()));
  assert.match(reasons, /no certificate sent links the leaf \(issuer CN=Example Intermediate\) to CN=Example Root/);
});

test('DANE-4: DANE-TA fails for a leaf outside its validity period, and gives the dates', () => {
  const chain = certs(f.shortLeaf, f.int, f.root);
  assertMatch(matchDane([tlsa(2, 1, 1, f.int.cert)], chain, context()), 'dane-ta', 1);
  const expired = mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], chain, context({ now: inDays(3) })));
  assert.match(expired, new RegExp(`the leaf CN=mx\\.example\\.test expired on ${f.shortLeaf.cert.validTo} \\(now `));
  const early = mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], chain, context({ now: inDays(-1) })));
  assert.match(early, new RegExp(`the leaf CN=mx\\.example\\.test is not valid before ${f.shortLeaf.cert.validFrom}`));
});

test('DANE-4: DANE-TA checks the dates of the certificates below the trust anchor, not of the anchor itself', () => {
  const chain = certs(f.leafUnderShortInt, f.shortInt, f.root);
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], chain, context({ now: inDays(3) })));
  assert.match(reasons, /CN=Short-lived Intermediate expired on/);
  assertMatch(matchDane([tlsa(2, 1, 1, f.shortInt.cert)], chain, context({ now: inDays(3) })), 'dane-ta', 1);
});

test('DANE-4: DANE-TA fails for a leaf with another name, and names the names tried', () => {
  const reasons = mismatch(
    matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.otherName, f.int), context({ tlsaBaseDomain: 'mx.cname-target.test' })),
  );
  assert.match(reasons, /the leaf's names \(DNS:other\.example\.test\) match none of mx\.cname-target\.test, mx\.example\.test/);
});

test('DANE-4: under DANE-TA the leaf may carry the TLSA base domain or the MX host name', () => {
  const records = [tlsa(2, 1, 1, f.int.cert)];
  const viaBase = matchDane(records, certs(f.baseOnly, f.int), context({ tlsaBaseDomain: 'tlsa.example.test' }));
  assertMatch(viaBase, 'dane-ta', 1);
  if (viaBase.kind === 'match' && viaBase.via === 'dane-ta') assert.equal(viaBase.name, 'tlsa.example.test');
  const viaMx = matchDane(records, certs(f.leaf, f.int), context({ tlsaBaseDomain: 'TLSA.example.test.' }));
  assertMatch(viaMx, 'dane-ta', 1);
  if (viaMx.kind === 'match' && viaMx.via === 'dane-ta') assert.equal(viaMx.name, MX);
});

test('DANE-4: DANE-TA wildcards match exactly one whole first label (RFC 7672 §3.2.3)', () => {
  const records = [tlsa(2, 1, 1, f.int.cert)];
  const at = (host: string): DaneMatch => matchDane(records, certs(f.wildcard, f.int), context({ mxHost: host, tlsaBaseDomain: host }));
  assertMatch(at('mx.example.test'), 'dane-ta', 1);
  mismatch(at('a.mx.example.test'));
  mismatch(at('example.test'));
  const partial = matchDane(
    records,
    certs(f.partialWildcard, f.int),
    context({ mxHost: 'mx1.example.test', tlsaBaseDomain: 'mx1.example.test' }),
  );
  mismatch(partial);
});

test('DANE-4: under DANE-TA the subject CN counts only when the leaf has no DNS subjectAltName (RFC 7672 §3.2.2)', () => {
  assertMatch(matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.cnOnly, f.int), context()), 'dane-ta', 1);
  mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.cnAndOtherSan, f.int), context()));
});

test('DANE-4: a DANE-TA record that matches the leaf names no trust anchor', () => {
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.leaf.cert)], certs(f.leaf, f.int), context()));
  assert.match(reasons, /matches the leaf, not an issuer/);
});

test('DANE-4: under DANE-TA an issuer between the leaf and the anchor must be a CA certificate', () => {
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.leafUnderNotCa, f.notCa, f.int), context()));
  assert.match(reasons, /CN=Not a CA is not a CA certificate/);
});

test('DANE-4: DANE-TA 2 0 0 and 2 1 0 name a trust anchor the server did not send (RFC 7671 §5.2)', () => {
  assertMatch(matchDane([tlsa(2, 0, 0, f.root.cert)], certs(f.leaf, f.int), context()), 'dane-ta', 2);
  assertMatch(matchDane([tlsa(2, 1, 0, f.int.cert)], certs(f.leaf), context()), 'dane-ta', 1);
  const reasons = mismatch(matchDane([tlsa(2, 1, 0, f.unrelatedInt.cert), record('2 0 0 3003020100')], certs(f.leaf), context()));
  assert.match(
    reasons,
    /trust anchor the public key in the TLSA record: CN=mx\.example\.test is not signed by the public key in the TLSA record/,
  );
  assert.match(reasons, /^2 0 0 3003020100: malformed: the data is not a DER certificate/m);
});

test('DANE-4: a DANE-TA digest of a trust anchor the server did not send does not match (RFC 7672 §3.1.2)', () => {
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], certs(f.leaf, f.int), context()));
  assert.match(reasons, /matches none of the 2 certificates the server sent \(CN=mx\.example\.test \| CN=Example Intermediate\)/);
});

test('DANE-4: malformed and unusable records are named; with none usable, TLS is required without authentication; a usable one still matches', () => {
  const short = record(`3 1 1 ${tlsa(3, 1, 1, f.leaf.cert).data.toString('hex').slice(2)}`);
  const pkix = tlsa(1, 1, 1, f.leaf.cert);
  const result = matchDane([short, pkix, record(`3 1 7 ${'00'.repeat(32)}`)], certs(f.leaf), context());
  assert.equal(result.kind, 'unusable-only');
  const reasons = result.kind === 'unusable-only' ? result.reasons.join('\n') : '';
  assert.match(reasons, /^3 1 1 .*malformed: SHA2-256 data is 31 bytes, not 32$/m);
  assert.match(reasons, /^1 1 1 .*usage 1 \(PKIX-EE\) is not usable for SMTP/m);
  assert.match(reasons, /^3 1 7 .*unknown matching type 7$/m);
  assert.match(reasons, /no usable TLSA record/);
  assertMatch(matchDane([short, pkix, tlsa(3, 1, 1, f.leaf.cert)], certs(f.leaf), context()), 'dane-ee', 0);
});

test('DANE-4: with digest agility a wrong SHA2-512 record sets aside a right SHA2-256 one (RFC 7671 §9)', () => {
  const reasons = mismatch(matchDane([tlsa(3, 1, 1, f.leaf.cert), tlsa(3, 1, 2, f.int.cert)], certs(f.leaf), context()));
  assert.match(reasons, /ignored: SHA2-512 records for DANE-EE SPKI take precedence/);
});

test('DANE-4: no certificate, or no records, is a mismatch; a broken certificate object too, never a throw', () => {
  assert.match(mismatch(matchDane([tlsa(3, 1, 1, f.leaf.cert)], [], context())), /the server sent no certificate/);
  assert.match(mismatch(matchDane([], certs(f.leaf), context())), /no TLSA records/);
  const broken = {
    get publicKey(): never {
      throw new Error('no key');
    },
    get fingerprint256(): string {
      return 'broken';
    },
    subject: 'CN=broken',
  } as unknown as X509Certificate;
  assert.match(mismatch(matchDane([tlsa(3, 1, 1, f.leaf.cert)], [broken], context())), /cannot compute .* of CN=broken: no key/);
  assert.match(mismatch(matchDane([tlsa(3, 1, 1, f.leaf.cert)], [{} as X509Certificate], context())), /cannot compute/);
  assert.match(mismatch(matchDane(null as unknown as TlsaRecord[], certs(f.leaf), context())), /DANE matching failed/);
});

test('DANE-4: a certificate cache gives the same answers across calls and stays within its bound', () => {
  const cache = new CertificateCache(2);
  const records = [tlsa(2, 1, 1, f.root.cert), tlsa(3, 1, 1, f.otherName.cert)];
  for (let i = 0; i < 3; i++) {
    assertMatch(matchDane(records, certs(f.leaf, f.int, f.root), context({ cache })), 'dane-ta', 2);
    mismatch(matchDane(records, certs(f.leafNoAkid, f.lookalikeInt, f.root), context({ cache })));
  }
  assert.deepEqual(cache.size, { certificates: 2, pairs: 2 });
});

/** The server's chain as a client reads it: `getPeerCertificate(true)` first, as `getPeerX509Certificate()` empties it in Node 20. */
async function handshake(certPem: string): Promise<{ detailed: X509Certificate[]; sent: X509Certificate[] }> {
  const server = tls.createServer({ key: f.leaf.key, cert: certPem });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as { port: number }).port;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: MX, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const detailed = chainFromDetailed(socket.getPeerCertificate(true)).certificates;
    const sent = chainFromX509(socket.getPeerX509Certificate()).certificates;
    socket.destroy();
    return { detailed, sent };
  } finally {
    server.close();
  }
}

test('DANE-4: the chain of a real handshake matches DANE-TA and DANE-EE through either reading of it', async () => {
  const { detailed, sent } = await handshake(f.leaf.pem + f.int.pem + f.root.pem);
  for (const chain of [sent, detailed]) {
    assert.deepEqual(
      chain.map((c) => c.subject),
      ['CN=mx.example.test', 'CN=Example Intermediate', 'CN=Example Root'],
    );
    assertMatch(matchDane([tlsa(2, 1, 1, f.int.cert)], chain, context()), 'dane-ta', 1);
    assertMatch(matchDane([tlsa(2, 0, 1, f.root.cert)], chain, context()), 'dane-ta', 2);
    assertMatch(matchDane([tlsa(3, 1, 1, f.leaf.cert)], chain, context()), 'dane-ee', 0);
  }
});

test('DANE-4: a chain sent out of order (root before intermediate) still verifies up to the root', async () => {
  const { sent } = await handshake(f.leaf.pem + f.root.pem + f.int.pem);
  assert.deepEqual(
    sent.map((c) => c.subject),
    ['CN=mx.example.test', 'CN=Example Root', 'CN=Example Intermediate'],
  );
  assertMatch(matchDane([tlsa(2, 0, 1, f.root.cert)], sent, context()), 'dane-ta', 2);
  assertMatch(matchDane([tlsa(2, 1, 1, f.int.cert)], sent, context()), 'dane-ta', 1);
});

// DANE-9: DANE-TA is RFC 5280 path validation from the trust anchor to the leaf (RFC 6698 §2.1.1).

test('DANE-9: a sub-CA below an intermediate with pathlen:0 is refused (RFC 5280 §6.1.4(l), (m))', () => {
  const chain = certs(f.leafUnderSubCa, f.subCa, f.pathlen0Int, f.root);
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], chain, context()));
  assert.match(reasons, /CN=Sub CA: the path length constraint of CN=Pathlen 0 Intermediate \(pathlen 0\) allows no CA below it/);
  // The anchor's own certificate constrains the path below it too (as OpenSSL; RFC 5937 §2)…
  const anchored = mismatch(matchDane([tlsa(2, 1, 1, f.pathlen0Int.cert)], chain, context()));
  assert.match(anchored, /CN=Sub CA: the path length constraint of CN=Pathlen 0 Intermediate \(pathlen 0\) allows no CA below it/);
  // …and with the sub-CA as anchor nothing above it constrains the path.
  assertMatch(matchDane([tlsa(2, 1, 1, f.subCa.cert)], chain, context()), 'dane-ta', 1);
});

test('DANE-9: an intermediate whose name constraints exclude the MX host is refused (RFC 5280 §6.1.3(b))', () => {
  const chain = certs(f.leafUnderExcludingInt, f.excludingInt, f.root);
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], chain, context()));
  assert.match(reasons, /DNS:mx\.example\.test is excluded by the name constraints of CN=Excluding Intermediate/);
});

test('DANE-9: an unknown critical extension is refused, in an intermediate and in the leaf (RFC 5280 §4.2, §6.1.4(o), §6.1.5(f))', () => {
  const inIntermediate = mismatch(matchDane([tlsa(2, 1, 1, f.root.cert)], certs(f.leafUnderCriticalInt, f.criticalInt, f.root), context()));
  assert.match(inIntermediate, /CN=Critical Intermediate has an unknown critical extension 1\.3\.6\.1\.4\.1\.55555\.1/);
  const inLeaf = mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.criticalLeaf, f.int), context()));
  assert.match(inLeaf, /CN=mx\.example\.test has an unknown critical extension 1\.3\.6\.1\.4\.1\.55555\.1/);
});

test('DANE-9: a leaf whose extended key usage excludes serverAuth is refused (RFC 5280 §4.2.1.12)', () => {
  const reasons = mismatch(matchDane([tlsa(2, 1, 1, f.int.cert)], certs(f.clientAuthLeaf, f.int), context()));
  assert.match(reasons, /CN=mx\.example\.test: its extended key usage \(1\.3\.6\.1\.5\.5\.7\.3\.2\) does not include serverAuth/);
});

test('DANE-9: the DANE-TA name check takes a list of acceptable names (extra TLSA base domains)', () => {
  const records = [tlsa(2, 1, 1, f.int.cert)];
  const result = matchDane(records, certs(f.baseOnly, f.int), context({ extraNames: ['tlsa.example.test'] }));
  assertMatch(result, 'dane-ta', 1);
  if (result.kind === 'match' && result.via === 'dane-ta') assert.equal(result.name, 'tlsa.example.test');
});

// DANE-10: bounded and robust.

test('DANE-10: at most 16 usable records of an RRset are used; the rest are ignored and counted', () => {
  const decoys = Array.from({ length: 16 }, (_, i): TlsaRecord => ({
    usage: 3,
    selector: 1,
    matchingType: 1,
    data: Buffer.alloc(32, i + 1),
  }));
  const late = matchDane([...decoys, tlsa(3, 1, 1, f.leaf.cert)], certs(f.leaf), context());
  assert.match(mismatch(late), /^3 1 1 .*: ignored: more than 16 usable TLSA records \(DANE-10\)$/m);
  assert.equal(late.ignoredRecords, 1);
  const inTime = matchDane([...decoys.slice(1), tlsa(3, 1, 1, f.leaf.cert)], certs(f.leaf), context());
  assertMatch(inTime, 'dane-ee', 0);
  assert.equal(inTime.ignoredRecords, 0);
});

test('DANE-10: Full(0) data that is not DER (3 0 0, 3 1 0, 2 0 0, 2 1 0) makes the record unusable (RFC 6698 §4.1)', () => {
  for (const text of [
    '3 0 0 3003020100',
    '3 1 0 0102',
    '2 0 0 3003020100',
    '2 1 0 deadbeef',
    `2 1 0 ${tlsa(2, 1, 0, f.int.cert).data.toString('hex')}00`,
  ]) {
    const result = matchDane([record(text)], certs(f.leaf, f.int), context());
    assert.equal(result.kind, 'unusable-only', `${text}: ${JSON.stringify(result)}`);
  }
  // Beside a usable record the malformed one is only named.
  const mixed = matchDane([record('2 1 0 deadbeef'), tlsa(2, 1, 0, f.int.cert)], certs(f.leaf), context());
  assertMatch(mixed, 'dane-ta', 1);
});

test('DANE-10: signature checks per connection are bounded, and a certificate/key pair is never verified twice', () => {
  // Each `2 1 0` record is a bare key that may have signed the top of the chain: only a signature check tells.
  const keys = Array.from({ length: 40 }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const records = keys.map((key): TlsaRecord => ({
    usage: 2,
    selector: 1,
    matchingType: 0,
    data: key.export({ type: 'spki', format: 'der' }),
  }));
  const cache = new CertificateCache();
  const fresh = (): X509Certificate[] => [f.leafUnderSubCa, f.subCa, f.pathlen0Int].map((m) => new X509Certificate(m.cert.raw));
  let total = 0;
  // Each connection goes on from the checks the earlier ones made, until one has nothing left to check.
  for (let connection = 0, checks = -1; checks !== 0; connection++) {
    assert.ok(connection < 30, 'the checks never end');
    const result = matchDane(records, fresh(), context({ cache }));
    mismatch(result);
    checks = result.signatureChecks;
    assert.ok(checks <= 8, `connection ${connection}: ${checks} signature checks`);
    total += checks;
  }
  // The two links of the chain, then 16 records used against one top certificate (the chain's last): 18 pairs, each checked once.
  assert.equal(total, 18);
  const again = matchDane(records, fresh(), context({ cache }));
  assert.equal(again.signatureChecks, 0);
});
