import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { countDaneWork, exposition } from '../metrics';
import { parseTlsaText } from '../dane/tlsa';
import type { TlsaRecord } from '../dane/tlsa';
import { checkDane, daneResult } from './dane-check';

const RECORD: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 1) };

test('DANE-3: a host with TLSA records that offers no TLS is refused', () => {
  const check = checkDane({ tlsaName: '_25._tcp.mx.test', usable: [RECORD] }, { encrypted: false }, 'mx.test');
  assert.equal(check.kind, 'refused');
  assert.equal(daneResult(check), 'no_tls');
  assert.match(check.reason, /_25\._tcp\.mx\.test has TLSA records, but mx\.test offers no TLS/);
});

test('DANE-3: only unusable records: any TLS is enough, unauthenticated', () => {
  const check = checkDane({ tlsaName: '_25._tcp.mx.test', usable: [] }, { encrypted: true }, 'mx.test');
  assert.equal(check.kind, 'encrypted');
  assert.equal(daneResult(check), 'tls_only');
});

test('DANE-4: TLS without a certificate to match is a mismatch, never a pass', () => {
  const check = checkDane({ tlsaName: '_25._tcp.mx.test', usable: [RECORD] }, { encrypted: true }, 'mx.test');
  assert.equal(check.kind, 'refused');
  assert.equal(daneResult(check), 'mismatch');
  assert.match(check.reason, /no certificate to match/);
});

const SENT = new X509Certificate(rootCertificates[0] ?? '');

function parsed(text: string): TlsaRecord {
  const result = parseTlsaText(text);
  if (result.kind !== 'record') throw new Error(result.reason);
  return result.record;
}

test('DANE-10: records whose Full(0) data is not DER are unusable: TLS is required without authentication', () => {
  for (const text of ['3 0 0 3003020100', '3 1 0 0102', '2 0 0 3003020100', '2 1 0 deadbeef']) {
    const check = checkDane(
      { tlsaName: '_25._tcp.mx.test', usable: [parsed(text)] },
      { encrypted: true, peerCertificate: SENT },
      'mx.test',
    );
    assert.equal(check.kind, 'encrypted', `${text}: ${check.reason}`);
    assert.equal(daneResult(check), 'tls_only');
    assert.match(check.reason, /only unusable TLSA records/);
  }
});

test('DANE-10: usable records beyond the 16th are ignored, named in the reason and counted in outbound_tls_dane_ignored_records_total', async () => {
  const count = async (): Promise<number> =>
    Number(/^outbound_tls_dane_ignored_records_total (\d+)$/m.exec(await exposition())?.[1] ?? NaN);
  const before = await count();
  const usable = Array.from({ length: 20 }, (_, i): TlsaRecord => ({ ...RECORD, data: Buffer.alloc(32, i + 2) }));
  const check = checkDane(
    { tlsaName: '_25._tcp.mx.test', usable },
    { encrypted: true, peerCertificate: SENT },
    'mx.test',
    new Date(),
    undefined,
    countDaneWork,
  );
  assert.equal(check.kind, 'refused');
  assert.match(check.reason, /4 usable TLSA records beyond the first 16 ignored \(DANE-10\)/);
  assert.equal((await count()) - before, 4);
});
