import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OUTBOUND_TLS_SCHEMA, parseOutboundTlsConfig, weakeningSettings } from './outbound-tls';
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

test('TLS-9: weakeningSettings names each setting below its default, and none for the defaults', () => {
  const defaults = parseOutboundTlsConfig({}, '/srv/haraka');
  assert.deepEqual(weakeningSettings(defaults), []);
  const weak = parseOutboundTlsConfig(
    { main: { on_store_error: 'send', smart_host_ratchet: 'false', auth_min_level: 'PLAIN' } },
    '/srv/haraka',
  );
  assert.deepEqual(
    weakeningSettings(weak).map((w) => w.setting),
    ['on_store_error', 'smart_host_ratchet', 'auth_min_level'],
  );
  assert.match(weakeningSettings(weak)[2]?.text ?? '', /auth_min_level=PLAIN/);
});
