import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OUTBOUND_TLS_SCHEMA, parseOutboundTlsConfig } from './outbound-tls';
import { unknownKeys } from '../ini';

test('RT-1, RT-5: [requiretls] defaults: REQUIRETLS off (Haraka unchanged), TLS-Required honoured', () => {
  assert.deepEqual(parseOutboundTlsConfig({}, '/haraka').requiretls, { enabled: false, tlsRequiredHeader: 'honour' });
});

test('RT-1, RT-5: [requiretls] enabled and tls_required_header are read; a bad value names section, key and value', () => {
  const ini = { requiretls: { enabled: 'true', tls_required_header: 'Ignore' } };
  assert.deepEqual(parseOutboundTlsConfig(ini, '/haraka').requiretls, { enabled: true, tlsRequiredHeader: 'ignore' });
  assert.equal(parseOutboundTlsConfig({ requiretls: { tls_required_header: 'honor' } }, '/h').requiretls.tlsRequiredHeader, 'honour');
  assert.throws(
    () => parseOutboundTlsConfig({ requiretls: { tls_required_header: 'sometimes' } }, '/h'),
    /\[requiretls\] tls_required_header=sometimes: expected honour or ignore/,
  );
  assert.throws(() => parseOutboundTlsConfig({ requiretls: { enabled: 'maybe' } }, '/h'), /\[requiretls\] enabled=maybe/);
  assert.deepEqual(unknownKeys('outbound_tls.ini', ini, OUTBOUND_TLS_SCHEMA), []);
});
