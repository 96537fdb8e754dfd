import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlsRequiredVerdict } from './tls-required-header';

const HONOUR = { requireTls: false, setting: 'honour' as const };

test('RT-5: TLS-Required: No waives the recipient policy (case and white space do not matter, folding unfolded)', () => {
  for (const value of ['No', 'no', ' NO ', 'No\r\n ', '\r\n No']) {
    assert.deepEqual(tlsRequiredVerdict([value], HONOUR), { kind: 'waive' }, JSON.stringify(value));
  }
  assert.deepEqual(tlsRequiredVerdict(['No', 'no'], HONOUR), { kind: 'waive' });
});

test('RT-5: no header: nothing to do', () => {
  assert.deepEqual(tlsRequiredVerdict([], HONOUR), { kind: 'keep', why: null });
});

test('RT-5: a value other than No, or fields that disagree, waive nothing', () => {
  for (const values of [['Yes'], ['No thanks'], [''], ['No', 'Yes']]) {
    const verdict = tlsRequiredVerdict(values, HONOUR);
    assert.equal(verdict.kind, 'keep', JSON.stringify(values));
    assert.match(String(verdict.kind === 'keep' && verdict.why), /not a waiver/);
  }
});

test('RT-5: with REQUIRETLS the header is ignored (RFC 8689 §4.1)', () => {
  const verdict = tlsRequiredVerdict(['No'], { requireTls: true, setting: 'honour' });
  assert.equal(verdict.kind, 'keep');
  assert.match(String(verdict.kind === 'keep' && verdict.why), /REQUIRETLS/);
});

test('RT-5: tls_required_header=ignore: the header marks nothing', () => {
  const verdict = tlsRequiredVerdict(['No'], { requireTls: false, setting: 'ignore' });
  assert.equal(verdict.kind, 'keep');
  assert.match(String(verdict.kind === 'keep' && verdict.why), /tls_required_header=ignore/);
});
