import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { toASCII, toUnicode } from 'tr46';
import { literalKey, normaliseHostName, parseDomainLiteral, parseLiteralKey, toALabel, toULabel } from './domain';
import { isValidStoreKey } from './store/keys';

test('MX-1: a Unicode domain becomes its lowercase A-label', () => {
  assert.deepEqual(toALabel('Bücher.Example'), { ok: true, aLabel: 'xn--bcher-kva.example' });
  assert.deepEqual(toALabel('EXAMPLE.com.'), { ok: true, aLabel: 'example.com' });
  assert.deepEqual(toALabel('xn--bcher-kva.example'), { ok: true, aLabel: 'xn--bcher-kva.example' });
  assert.equal(toULabel('xn--bcher-kva.example'), 'bücher.example');
});

test('MX-1: non-transitional processing keeps ß distinct', () => {
  assert.deepEqual(toALabel('faß.de'), { ok: true, aLabel: 'xn--fa-hia.de' });
});

test('MX-1: invalid domains are refused with a reason', () => {
  for (const bad of [
    '',
    'a'.repeat(64) + '.com',
    `${'a.'.repeat(127)}com`,
    'exa mple.com',
    'a_b.com',
    '-ab.com',
    'ab-.com',
    'xn--zz.com',
    'a..b',
    'ex\u0000ample.com',
  ]) {
    const result = toALabel(bad);
    assert.equal(result.ok, false, `accepted ${JSON.stringify(bad)}`);
    if (!result.ok) assert.ok(result.reason.length > 0);
  }
});

test('MX-1: labels with inner double hyphens are valid host names', () => {
  assert.deepEqual(toALabel('r3--sn.example.com'), { ok: true, aLabel: 'r3--sn.example.com' });
});

test('MX-7: MX targets are normalised host names, IP addresses are not', () => {
  assert.equal(normaliseHostName('MX1.Example.COM.'), 'mx1.example.com');
  assert.equal(normaliseHostName('192.0.2.1'), null);
  assert.equal(normaliseHostName('bad_host.example'), null);
  assert.equal(normaliseHostName(''), null);
});

test('MX-2: domain literals are parsed', () => {
  assert.deepEqual(parseDomainLiteral('[192.0.2.1]'), { address: '192.0.2.1', family: 4 });
  assert.deepEqual(parseDomainLiteral('[IPv6:2001:DB8::1]'), { address: '2001:db8::1', family: 6 });
  assert.equal(parseDomainLiteral('[2001:db8::1]'), null);
  assert.equal(parseDomainLiteral('[300.1.1.1]'), null);
  assert.equal(parseDomainLiteral('example.com'), null);
});

test('MX-2: address literals have one store key form, which the stores accept', () => {
  const v6 = parseDomainLiteral('[IPv6:2001:DB8::1]');
  const v4 = parseDomainLiteral('[192.0.2.1]');
  assert.ok(v6 && v4);
  assert.equal(literalKey(v6), '[2001:db8::1]');
  assert.equal(literalKey(v4), '[192.0.2.1]');
  assert.equal(isValidStoreKey(literalKey(v6)), true);
  assert.equal(isValidStoreKey(literalKey(v4)), true);
});

test('MX-1/OPS-5: the plain-ASCII fast path of toALabel accepts and gives exactly what tr46 does', () => {
  const labelArb = fc.stringMatching(/^[A-Za-z0-9-]{0,12}$/);
  const nameArb = fc.oneof(
    fc.array(labelArb, { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.')),
    fc.string({ unit: fc.constantFrom('a', 'X', '0', '-', '.', 'n', '_', 'ü'), maxLength: 20 }),
    fc.constantFrom('xn--bcher-kva.example', 'XN--zz.com', 'a.xn--p1ai', 'ab--c.example', '192.0.2.1', `${'a'.repeat(64)}.com`),
  );
  fc.assert(
    fc.property(nameArb, (name) => {
      const result = toALabel(name);
      const reference = tr46ALabel(name);
      assert.equal(result.ok ? result.aLabel : null, reference, name);
    }),
    { numRuns: 2000 },
  );
});

/** What toALabel accepts, tr46 on every input: the A-label, or null when refused. */
function tr46ALabel(domain: string): string | null {
  const input = domain.trim().replace(/\.$/, '');
  if (input === '' || input.length > 1024) return null;
  const aLabel = toASCII(input, {
    checkBidi: true,
    checkJoiners: true,
    checkHyphens: false,
    useSTD3ASCIIRules: true,
    transitionalProcessing: false,
    verifyDNSLength: true,
  });
  if (aLabel === null || aLabel.length > 253) return null;
  return aLabel.split('.').every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) ? aLabel : null;
}

test('ST-6: every spelling of one address is one literal key (ipaddr.js canonical form, IPv4-mapped as IPv4)', () => {
  const key = (text: string): string | null => {
    const literal = parseDomainLiteral(text);
    return literal ? literalKey(literal) : null;
  };
  for (const spelling of ['[IPv6:2001:db8::1]', '[IPv6:2001:0db8::0001]', '[ipv6:2001:DB8:0:0:0:0:0:1]', '[IPv6:2001:db8:0::1]']) {
    assert.equal(key(spelling), '[2001:db8::1]', spelling);
  }
  for (const spelling of ['[192.0.2.1]', '[IPv6:::ffff:192.0.2.1]', '[IPv6:::FFFF:c000:0201]', '[IPv6:0:0:0:0:0:ffff:192.0.2.1]']) {
    assert.equal(key(spelling), '[192.0.2.1]', spelling);
  }
  // The address Haraka connects to is the canonical one too.
  assert.deepEqual(parseDomainLiteral('[IPv6:::ffff:192.0.2.1]'), { address: '192.0.2.1', family: 4 });
  // Zone ids and the IPv4 form with an IPv6 tag are not address literals.
  assert.equal(parseDomainLiteral('[IPv6:fe80::1%eth0]'), null);
  assert.equal(parseDomainLiteral('[IPv6:192.0.2.1]'), null);
  // The CLI also takes the key form it prints.
  assert.equal(literalKey(parseLiteralKey('[2001:0DB8::0001]') ?? { address: '?', family: 4 }), '[2001:db8::1]');
  assert.equal(literalKey(parseLiteralKey('[::ffff:192.0.2.1]') ?? { address: '?', family: 4 }), '[192.0.2.1]');
  assert.equal(parseLiteralKey('[example.com]'), null);
});

test('MX-1/OPS-6: toULabel skips tr46 for names without a punycode label and gives exactly what tr46 gives', () => {
  const label = fc.stringMatching(/^(?:xn--)?[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
  fc.assert(
    fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), (labels) => {
      const name = labels.join('.');
      const expected = toUnicode(name, {
        checkBidi: true,
        checkJoiners: true,
        checkHyphens: false,
        useSTD3ASCIIRules: true,
        transitionalProcessing: false,
      });
      assert.equal(toULabel(name), expected.error ? name : expected.domain);
    }),
    { numRuns: 2000 },
  );
});
