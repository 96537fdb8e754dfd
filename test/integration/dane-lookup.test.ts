/**
 * DANE-1 … DANE-3, DANE-8, DANE-11, the DNS side, against the DNSSEC lab: a validating unbound
 * in front of nsd serving zones signed at setup.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DnssecLab } from '../fixtures/dnssec';
import { TestDnsServer } from '../fixtures/dns-server';
import { checkResolverValidates, lookupHostTlsa, lookupTlsa } from '#lib/dane/lookup';
import { resolverTrust } from '#lib/dns/resolver-trust';
import { createCachedTransport, createDnsClient } from '#lib/mx/dns-client';

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
          // DANE-11: CNAME'd host names: TLSA at the target, at the original name only, and a chain into an insecure zone.
          { name: 'mx.alias.secure.test', type: 'CNAME', target: 'mail.target.secure.test' },
          { name: 'mail.target.secure.test', type: 'A', address: '127.0.0.3' },
          { name: '_25._tcp.mail.target.secure.test', type: 'TLSA', usage: 3, selector: 1, matchingType: 1, certificate: DIGEST },
          { name: '_25._tcp.mx.alias.secure.test', type: 'TLSA', usage: 3, selector: 1, matchingType: 1, certificate: 'c'.repeat(64) },
          { name: 'mx.alias2.secure.test', type: 'CNAME', target: 'mail2.secure.test' },
          { name: 'mail2.secure.test', type: 'A', address: '127.0.0.4' },
          { name: '_25._tcp.mx.alias2.secure.test', type: 'TLSA', usage: 2, selector: 1, matchingType: 1, certificate: DIGEST },
          { name: 'mx.alias3.secure.test', type: 'CNAME', target: 'mx.insecure.test' },
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
          { name: 'mx.insecure.test', type: 'A', address: '127.0.0.5' },
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
  const client = createDnsClient({ servers: [lab.resolver], timeoutMs: 3000, tries: 1, dnssec: true, trustAd: true });
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

test('DANE-8: the AD bit is trusted only from the resolvers the admin declares, address and port', () => {
  assert.equal(resolverTrust(['127.0.0.1:53', '[::1]:5353'], []).kind, 'undeclared', 'loopback is not enough');
  assert.equal(resolverTrust(['127.0.0.1', '[::1]:5353'], ['127.0.0.1:53', '[::1]:5353']).kind, 'declared');
  assert.equal(resolverTrust(['127.0.0.1', '192.0.2.53'], ['127.0.0.1']).kind, 'undeclared');
  assert.equal(resolverTrust(['192.0.2.53'], ['192.0.2.53']).kind, 'declared');
  assert.equal(resolverTrust(['127.0.0.1:5353'], ['127.0.0.1']).kind, 'undeclared');
  assert.equal(resolverTrust([], ['127.0.0.1']).kind, 'undeclared');
});

test('DANE-1/DANE-8: the resolver check: "validating" with AD, "not validating" for an answer without AD, "unknown" without an answer', async () => {
  assert.deepEqual(await checkResolverValidates(transport(), 'test.'), { kind: 'validating' });
  const plainDns = await TestDnsServer.start();
  try {
    plainDns.add('test', { type: 'A', address: '192.0.2.1' });
    plainDns.behave('broken.test', '*', 'servfail');
    plainDns.behave('silent.test', '*', 'timeout');
    const nonValidating = createCachedTransport({ servers: [plainDns.address], timeoutMs: 300, tries: 1 });
    const check = await checkResolverValidates(nonValidating, 'test.');
    assert.equal(check.kind, 'not-validating');
    assert.match(check.kind === 'not-validating' ? check.reason : '', /SOA test\.: answered without the AD bit/);
    const servfail = await checkResolverValidates(nonValidating, 'broken.test.');
    assert.deepEqual(servfail, { kind: 'unknown', reason: 'SOA broken.test.: SERVFAIL' });
    const silent = await checkResolverValidates(nonValidating, 'silent.test.');
    assert.equal(silent.kind, 'unknown');
    assert.match(silent.kind === 'unknown' ? silent.reason : '', /ETIMEOUT/);
  } finally {
    await plainDns.stop();
  }
  // A validating resolver's SERVFAIL (a lame zone) is unknown too, not "does not validate".
  assert.equal((await checkResolverValidates(transport(), '_25._tcp.lame.secure.test.')).kind, 'unknown');
});

test('DANE-11: a secure CNAME: TLSA at the expanded name first, then at the original; both names carried, expanded first', async () => {
  const atTarget = await lookupHostTlsa(transport(), 'mx.alias.secure.test');
  assert.equal(atTarget.kind, 'dane');
  if (atTarget.kind !== 'dane' || atTarget.rrset.kind !== 'usable') throw new Error(JSON.stringify(atTarget));
  assert.equal(atTarget.name, '_25._tcp.mail.target.secure.test', 'the expanded name wins over the original');
  assert.equal(atTarget.rrset.usable[0]?.data.toString('hex'), DIGEST);
  assert.deepEqual(atTarget.names, ['mail.target.secure.test', 'mx.alias.secure.test']);

  const atOriginal = await lookupHostTlsa(transport(), 'mx.alias2.secure.test');
  assert.equal(atOriginal.kind, 'dane');
  if (atOriginal.kind !== 'dane') throw new Error(JSON.stringify(atOriginal));
  assert.equal(atOriginal.name, '_25._tcp.mx.alias2.secure.test');
  assert.deepEqual(atOriginal.names, ['mail2.secure.test', 'mx.alias2.secure.test']);

  // A chain into an insecure zone is not followed: only the original name is asked (and has nothing).
  const insecure = await lookupHostTlsa(transport(), 'mx.alias3.secure.test');
  assert.equal(insecure.kind, 'none');
  assert.equal(insecure.name, '_25._tcp.mx.alias3.secure.test');
  // Not a CNAME: the host's own name, no extra names.
  const plain = await lookupHostTlsa(transport(), 'mx.secure.test');
  assert.equal(plain.kind === 'dane' && plain.name, '_25._tcp.mx.secure.test');
  assert.equal('names' in plain, false);
});
