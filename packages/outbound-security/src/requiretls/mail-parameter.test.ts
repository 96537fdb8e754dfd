import assert from 'node:assert/strict';
import { test } from 'node:test';
import { receiveVerdict, type ReceiveSession } from './mail-parameter';

const TLS: ReceiveSession = { tls: true, advertised: true };

test('RT-1: MAIL FROM without REQUIRETLS is left alone, in clear and over TLS', () => {
  assert.deepEqual(receiveVerdict({}, TLS), { kind: 'absent' });
  assert.deepEqual(receiveVerdict({ SIZE: '100', BODY: '8BITMIME' }, { tls: false, advertised: false }), { kind: 'absent' });
});

test('RT-1: REQUIRETLS without a value on a TLS session that advertised it is a request', () => {
  assert.deepEqual(receiveVerdict({ REQUIRETLS: null }, TLS), { kind: 'requested' });
  assert.deepEqual(receiveVerdict({ SIZE: '10', REQUIRETLS: null, SMTPUTF8: null }, TLS), { kind: 'requested' });
});

test('RT-1: REQUIRETLS in clear is refused 530 5.7.10 (advertised or not)', () => {
  for (const advertised of [true, false]) {
    const verdict = receiveVerdict({ REQUIRETLS: null }, { tls: false, advertised });
    assert.equal(verdict.kind, 'refused');
    assert.ok(verdict.kind === 'refused');
    assert.equal(verdict.code, 530);
    assert.deepEqual(verdict.status, [5, 7, 10]);
    assert.match(verdict.text, /STARTTLS/);
  }
});

test('RT-1: REQUIRETLS over TLS where it was not advertised (off) is refused 555 5.5.4, not accepted and forgotten', () => {
  const verdict = receiveVerdict({ REQUIRETLS: null }, { tls: true, advertised: false });
  assert.ok(verdict.kind === 'refused');
  assert.equal(verdict.code, 555);
  assert.deepEqual(verdict.status, [5, 5, 4]);
});

test('RT-1: REQUIRETLS takes no value: REQUIRETLS=… is a 501 5.5.4 syntax error, the value shown printable and cut', () => {
  const verdict = receiveVerdict({ REQUIRETLS: 'YES' }, TLS);
  assert.ok(verdict.kind === 'refused');
  assert.equal(verdict.code, 501);
  assert.deepEqual(verdict.status, [5, 5, 4]);
  assert.match(verdict.text, /REQUIRETLS=YES/);
  const long = receiveVerdict({ REQUIRETLS: `${'x'.repeat(100)}\u0001` }, TLS);
  assert.ok(long.kind === 'refused');
  assert.ok(long.text.length < 120, long.text);
  assert.doesNotMatch(long.text, /\u0001/);
});

test('RT-1: only an own property counts (no prototype look-up)', () => {
  const params = Object.create({ REQUIRETLS: null }) as Record<string, string | null>;
  assert.deepEqual(receiveVerdict(params, TLS), { kind: 'absent' });
});
