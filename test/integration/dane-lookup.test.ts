/**
 * DANE-1 … DANE-3, the DNS side, against the DNSSEC lab: a validating unbound
 * in front of nsd serving zones signed at setup.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DnssecLab } from '../fixtures/dnssec';
import { TestDnsServer } from '../fixtures/dns-server';
import { checkResolverValidates, lookupTlsa } from 'haraka-outbound-security/dane/lookup';
import { adTrusted, createCachedTransport, createDnsClient } from 'haraka-outbound-security/mx/dns-client';

const DIGEST = 'a'.repeat(64);
let lab: DnssecLab;

before(async () => {
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'secure.test',
        records: [
          { name: 'secure.test', type: 'MX', preference: 10, exchange: 'mx.secure.test' },
          { name: 'mx.secure.test', type: 'A', address: '127.0.0.1' },
          { name: '_25._tcp.mx.secure.test', type: 'TLSA', usage: 3, selector: 1, matchingType: 1, certificate: DIGEST },
          { name: '_25._tcp.mx.secure.test', type: 'TLSA', usage: 2, selector: 1, matchingType: 1, certificate: 'b'.repeat(64) },
          { name: 'plain.secure.test', type: 'A', address: '127.0.0.2' },
          { name: '_25._tcp.pkix.secure.test', type: 'TLSA', usage: 1, selector: 1, matchingType: 1, certificate: DIGEST },
          { name: '_25._tcp.pkix.secure.test', type: 'TLSA', usage: 0, selector: 0, matchingType: 1, certificate: DIGEST },
          {
            name: '_25._tcp.broken.secure.test',
            type: 'TLSA',
            usage: 3,
            selector: 1,
            matchingType: 1,
            certificate: DIGEST,
            badSignature: true,
          },
        ],
      },
      { name: '_25._tcp.lame.secure.test', security: 'lame' },
      {
        name: 'insecure.test',
        security: 'insecure',
        records: [
          { name: 'insecure.test', type: 'MX', preference: 10, exchange: 'mx.insecure.test' },
          { name: '_25._tcp.mx.insecure.test', type: 'TLSA', usage: 3, selector: 1, matchingType: 1, certificate: DIGEST },
        ],
      },
      {
        name: 'bogus.test',
        security: 'bad-signature',
        records: [{ name: 'bogus.test', type: 'MX', preference: 10, exchange: 'mx.bogus.test' }],
      },
    ],
  });
});
after(async () => {
  await lab?.stop();
});

function transport() {
  return createCachedTransport({ servers: [lab.resolver], timeoutMs: 3000, tries: 1 });
}

test('DANE-3: a secure TLSA RRset with usable records makes DANE apply to the host', async () => {
  const found = await lookupTlsa(transport(), 'mx.secure.test');
  assert.equal(found.kind, 'dane');
  if (found.kind !== 'dane' || found.rrset.kind !== 'usable') throw new Error(`unexpected ${JSON.stringify(found)}`);
  assert.equal(found.name, '_25._tcp.mx.secure.test');
  assert.deepEqual(found.rrset.usable.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`).sort(), [
    `2 1 1 ${'b'.repeat(64)}`,
    `3 1 1 ${DIGEST}`,
  ]);
});

test('DANE-3: only unusable records (usages 0 and 1) still make DANE apply: TLS required, nothing to match', async () => {
  const found = await lookupTlsa(transport(), 'pkix.secure.test');
  assert.equal(found.kind === 'dane' && found.rrset.kind, 'unusable-only');
});

test('DANE-3: a secure denial of TLSA and an insecure TLSA answer mean no DANE for the host', async () => {
  const denied = await lookupTlsa(transport(), 'plain.secure.test');
  assert.equal(denied.kind, 'none');
  assert.match(denied.kind === 'none' ? denied.reason : '', /no TLSA records \((NXDOMAIN|NODATA), DNSSEC-validated\)/);
  const insecure = await lookupTlsa(transport(), 'mx.insecure.test');
  assert.equal(insecure.kind, 'none');
  assert.match(insecure.kind === 'none' ? insecure.reason : '', /insecure answer/);
});

test('DANE-3: a bogus TLSA RRset and a TLSA SERVFAIL make the host unusable, never used without DANE', async () => {
  for (const host of ['broken.secure.test', 'lame.secure.test']) {
    const found = await lookupTlsa(transport(), host);
    assert.equal(found.kind, 'failed', host);
    assert.match(found.kind === 'failed' ? found.reason : '', /SERVFAIL/);
  }
});

test('DANE-1: with a resolver on loopback, validated answers are secure; insecure ones are not; bogus ones fail', async () => {
  const client = createDnsClient({ servers: [lab.resolver], timeoutMs: 3000, tries: 1, dnssec: true, trustAd: adTrusted([lab.resolver]) });
  const secure = await client.mx('secure.test');
  assert.deepEqual(secure, { kind: 'answer', records: [{ exchange: 'mx.secure.test', priority: 10 }], secure: true });
  assert.deepEqual(await client.a('nothing-here.secure.test'), { kind: 'nxdomain', secure: true });
  const insecure = await client.mx('insecure.test');
  assert.deepEqual(insecure, { kind: 'answer', records: [{ exchange: 'mx.insecure.test', priority: 10 }] });
  const bogus = await client.mx('bogus.test');
  assert.equal(bogus.kind === 'failure' && bogus.code, 'ESERVFAIL');
  // Without dnssec, or with AD not trusted, nothing is called secure.
  const plain = createDnsClient({ servers: [lab.resolver], timeoutMs: 3000, tries: 1 });
  assert.equal('secure' in (await plain.mx('secure.test')), false);
  const untrusted = createDnsClient({ servers: [lab.resolver], timeoutMs: 3000, tries: 1, dnssec: true, trustAd: false });
  assert.equal('secure' in (await untrusted.mx('secure.test')), false);
});

test('DANE-1: the AD bit is trusted only from loopback resolvers or those the admin lists', () => {
  assert.equal(adTrusted(['127.0.0.1:53', '[::1]:5353']), true);
  assert.equal(adTrusted(['127.0.0.1', '192.0.2.53']), false);
  assert.equal(adTrusted(['192.0.2.53'], ['192.0.2.53']), true);
  assert.equal(adTrusted([]), false);
});

test('DANE-1: the resolver check says "validating" for a validating resolver and "not validating" otherwise, with the reason', async () => {
  assert.deepEqual(await checkResolverValidates(transport(), 'test.'), { kind: 'validating' });
  const plainDns = await TestDnsServer.start();
  try {
    plainDns.add('test', { type: 'A', address: '192.0.2.1' });
    const nonValidating = createCachedTransport({ servers: [plainDns.address], timeoutMs: 1000, tries: 1 });
    const check = await checkResolverValidates(nonValidating, 'test.');
    assert.equal(check.kind, 'not-validating');
    assert.match(check.kind === 'not-validating' ? check.reason : '', /without the AD bit|NOERROR|NODATA|SOA test\./);
  } finally {
    await plainDns.stop();
  }
  const untrusted = await checkResolverValidates(transport(), 'test.', false);
  assert.match(untrusted.kind === 'not-validating' ? untrusted.reason : '', /not believed/);
});
