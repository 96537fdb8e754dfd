import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { rootCertificates } from 'node:tls';
import {
  associationName,
  classifyTlsaRrset,
  describeTlsaParameters,
  formatTlsa,
  parseTlsaText,
  tlsaFromAnswer,
  unusableReason,
  type TlsaParse,
  type TlsaRecord,
} from './tlsa';

const SHA256 = 'ab'.repeat(32);
const SHA512 = 'cd'.repeat(64);
/** Real DER for Full(0) records: a public key made here, and a root certificate bundled with Node. */
const SPKI = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
const CERT = new X509Certificate(rootCertificates[0] ?? '').raw.toString('hex');

function record(text: string): TlsaRecord {
  const parsed = parseTlsaText(text);
  assert.equal(parsed.kind, 'record', `${text}: ${JSON.stringify(parsed)}`);
  return (parsed as Extract<TlsaParse, { kind: 'record' }>).record;
}

const reasonOf = (parsed: TlsaParse): string => (parsed.kind === 'invalid' ? parsed.reason : 'parsed');

test('DANE-4: a TLSA record from dns-packet data is copied, not a view of the message', () => {
  const message = Buffer.from(`00${SHA256}`, 'hex');
  const parsed = tlsaFromAnswer({ usage: 3, selector: 1, matchingType: 1, certificate: message.subarray(1) });
  assert.equal(parsed.kind, 'record');
  if (parsed.kind !== 'record') return;
  assert.deepEqual([parsed.record.usage, parsed.record.selector, parsed.record.matchingType], [3, 1, 1]);
  assert.equal(parsed.record.data.toString('hex'), SHA256);
  message.fill(0);
  assert.equal(parsed.record.data.toString('hex'), SHA256);
});

test('DANE-4: dns-packet data with parameters outside 0–255 or no bytes is invalid, with the field named', () => {
  assert.match(reasonOf(tlsaFromAnswer({ usage: 256, selector: 1, matchingType: 1, certificate: Buffer.alloc(32) })), /usage 256/);
  assert.match(reasonOf(tlsaFromAnswer({ usage: 3, selector: -1, matchingType: 1, certificate: Buffer.alloc(32) })), /selector -1/);
  assert.match(reasonOf(tlsaFromAnswer({ usage: 3, selector: 1, matchingType: 1.5, certificate: Buffer.alloc(32) })), /matching type 1.5/);
  const noBytes = { usage: 3, selector: 1, matchingType: 1, certificate: 'ab' } as unknown as Parameters<typeof tlsaFromAnswer>[0];
  assert.match(reasonOf(tlsaFromAnswer(noBytes)), /not bytes/);
});

test('DANE-4: presentation text as dig and zone files write it', () => {
  assert.equal(record(`3 1 1 ${SHA256}`).data.toString('hex'), SHA256);
  const split = record(`3 1 1 ${SHA256.slice(0, 20).toUpperCase()} ${SHA256.slice(20)}`);
  assert.equal(split.data.toString('hex'), SHA256);
  const zone = record(`_25._tcp.mx.example.test. 3600 IN TLSA 2 0 1 (\n  ${SHA256.slice(0, 32)}\n  ${SHA256.slice(32)} )`);
  assert.deepEqual([zone.usage, zone.selector, zone.matchingType], [2, 0, 1]);
  assert.equal(zone.data.toString('hex'), SHA256);
});

test('DANE-4: presentation text that is not a TLSA record is invalid, with the reason', () => {
  assert.match(reasonOf(parseTlsaText('')), /three numbers/);
  assert.match(reasonOf(parseTlsaText('3 1')), /three numbers/);
  assert.match(reasonOf(parseTlsaText(`DANE-EE SPKI SHA2-256 ${SHA256}`)), /three numbers/);
  assert.match(reasonOf(parseTlsaText(`3 1 256 ${SHA256}`)), /three numbers/);
  assert.match(reasonOf(parseTlsaText('3 1 1')), /no certificate association data/);
  assert.match(reasonOf(parseTlsaText('3 1 1 abc')), /even number of hex digits/);
  assert.match(reasonOf(parseTlsaText('3 1 1 zz')), /hex digits/);
});

test('DANE-4: records are shown with their data shortened', () => {
  assert.equal(formatTlsa(record(`3 1 1 ${SHA256}`)), '3 1 1 abababababababab…');
  assert.equal(formatTlsa(record('2 0 0 0102')), '2 0 0 0102');
  assert.equal(associationName(record(`3 1 1 ${SHA256}`)), 'the SHA2-256 of the public key (SPKI)');
  assert.equal(associationName(record(`2 0 2 ${SHA512}`)), 'the SHA2-512 of the certificate');
  assert.equal(associationName(record('3 0 0 0102')), 'the certificate');
  assert.equal(describeTlsaParameters(record(`3 1 1 ${SHA256}`)), 'DANE-EE SPKI SHA2-256');
  assert.equal(describeTlsaParameters(record('7 5 9 00')), 'usage 7 selector 5 matching type 9');
});

test('DANE-3: usages 2 and 3 with known selectors and matching types are usable', () => {
  for (const text of [
    `3 1 1 ${SHA256}`,
    `3 0 1 ${SHA256}`,
    `3 1 2 ${SHA512}`,
    `3 1 0 ${SPKI}`,
    `2 1 1 ${SHA256}`,
    `2 0 2 ${SHA512}`,
    `2 0 0 ${CERT}`,
  ]) {
    assert.equal(unusableReason(record(text)), undefined, text);
  }
});

test('DANE-3: usages 0 and 1, unknown parameters and malformed data are unusable, each with its reason', () => {
  const cases: Array<[string, RegExp]> = [
    [`0 0 1 ${SHA256}`, /usage 0 \(PKIX-TA\) is not usable for SMTP/],
    [`1 1 1 ${SHA256}`, /usage 1 \(PKIX-EE\) is not usable for SMTP/],
    [`4 1 1 ${SHA256}`, /unknown usage 4/],
    [`3 2 1 ${SHA256}`, /unknown selector 2/],
    [`3 1 3 ${SHA256}`, /unknown matching type 3/],
    [`3 1 255 ${SHA256}`, /unknown matching type 255/],
    [`3 1 1 ${SHA256.slice(2)}`, /malformed: SHA2-256 data is 31 bytes, not 32/],
    [`3 1 2 ${SHA256}`, /malformed: SHA2-512 data is 32 bytes, not 64/],
  ];
  for (const [text, reason] of cases) assert.match(unusableReason(record(text)) ?? 'usable', reason, text);
  const empty = tlsaFromAnswer({ usage: 3, selector: 1, matchingType: 0, certificate: Buffer.alloc(0) });
  assert.equal(empty.kind, 'record');
  if (empty.kind === 'record') assert.match(unusableReason(empty.record) ?? 'usable', /no certificate association data/);
});

test('DANE-3: an RRset of only unusable records is unusable-only (TLS still required), not empty', () => {
  const rrset = classifyTlsaRrset([record(`1 1 1 ${SHA256}`), record(`0 0 1 ${SHA256}`), record(`3 9 1 ${SHA256}`), record('3 1 1 abcd')]);
  assert.equal(rrset.kind, 'unusable-only');
  if (rrset.kind !== 'unusable-only') return;
  assert.equal(rrset.unusable.length, 4);
  assert.deepEqual(classifyTlsaRrset([]), { kind: 'empty' });
});

test('DANE-3: a mixed RRset keeps its usable records and names the others', () => {
  const good = record(`3 1 1 ${SHA256}`);
  const rrset = classifyTlsaRrset([record(`1 1 1 ${SHA256}`), good]);
  assert.equal(rrset.kind, 'usable');
  if (rrset.kind !== 'usable') return;
  assert.deepEqual(rrset.usable, [good]);
  assert.match(rrset.unusable[0]?.reason ?? '', /PKIX-EE/);
});

test('DANE-4: digest agility (RFC 7671 §9): SHA2-512 records set aside SHA2-256 ones of the same usage and selector', () => {
  const ee256 = record(`3 1 1 ${SHA256}`);
  const ee512 = record(`3 1 2 ${SHA512}`);
  const eeCert256 = record(`3 0 1 ${SHA256}`);
  const ta256 = record(`2 1 1 ${SHA256}`);
  const eeFull = record(`3 1 0 ${SPKI}`);
  const rrset = classifyTlsaRrset([ee256, ee512, eeCert256, ta256, eeFull]);
  assert.equal(rrset.kind, 'usable');
  if (rrset.kind !== 'usable') return;
  assert.deepEqual(rrset.usable, [ee512, eeCert256, ta256, eeFull]);
  assert.equal(rrset.unusable.length, 1);
  assert.equal(rrset.unusable[0]?.record, ee256);
  assert.match(rrset.unusable[0]?.reason ?? '', /ignored: SHA2-512 records for DANE-EE SPKI take precedence/);
});

test('DANE-4: a malformed SHA2-512 record does not set aside a good SHA2-256 one', () => {
  const ee256 = record(`3 1 1 ${SHA256}`);
  const rrset = classifyTlsaRrset([ee256, record(`3 1 2 ${SHA256}`)]);
  assert.equal(rrset.kind, 'usable');
  if (rrset.kind === 'usable') assert.deepEqual(rrset.usable, [ee256]);
});

test('DANE-10: Full(0) data that is not a DER certificate (selector 0) or public key (selector 1) is unusable (RFC 6698 §4.1)', () => {
  const cases: Array<[string, RegExp]> = [
    ['3 0 0 3003020100', /malformed: the data is not a DER certificate \(.*\) \(RFC 6698 §4\.1\)/],
    ['3 1 0 0102', /malformed: the data is not a DER public key \(SubjectPublicKeyInfo\) \(it does not start with a DER SEQUENCE\)/],
    ['2 0 0 3059', /malformed: the data is not a DER certificate/],
    ['2 1 0 deadbeef', /malformed: the data is not a DER public key/],
    [`2 1 0 ${SPKI}00`, /its DER SEQUENCE is \d+ bytes of \d+/],
    [`2 0 0 ${CERT}00`, /its DER SEQUENCE is \d+ bytes of \d+/],
    [`3 0 0 ${Buffer.from(`-----BEGIN CERTIFICATE-----`).toString('hex')}`, /not a DER certificate/],
  ];
  for (const [text, reason] of cases) assert.match(unusableReason(record(text)) ?? 'usable', reason, text);
  const rrset = classifyTlsaRrset(cases.map(([text]) => record(text)));
  assert.equal(rrset.kind, 'unusable-only');
  // A cert where a key is expected (and the reverse) is malformed too.
  assert.match(unusableReason(record(`2 1 0 ${CERT}`)) ?? 'usable', /not a DER public key/);
  assert.match(unusableReason(record(`2 0 0 ${SPKI}`)) ?? 'usable', /not a DER certificate/);
});
