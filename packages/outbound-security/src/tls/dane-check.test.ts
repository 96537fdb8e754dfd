import assert from 'node:assert/strict';
import { test } from 'node:test';
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
