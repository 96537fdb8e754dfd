import assert from 'node:assert/strict';
import { test } from 'node:test';
import tls from 'node:tls';
import { pinnedHttpsOptions, trustStoreWith } from './pinned';

/** Any PEM certificate will do as an "extra CA": one of the system's roots. */
const EXTRA = [tls.rootCertificates[0] as string];
const OTHER = [tls.rootCertificates[1] as string];

test('OPS-6: the trust store with an extra CA is built once and used by every request, until the extra CA changes', () => {
  const signal = new AbortController().signal;
  const first = pinnedHttpsOptions({ host: 'mta-sts.example.test', address: '127.0.0.1', port: 443, extraCa: EXTRA, signal });
  const second = pinnedHttpsOptions({ host: 'other.example.test', address: '127.0.0.2', port: 443, extraCa: [...EXTRA], signal });
  assert.ok(first.secureContext !== undefined && 'context' in first.secureContext, 'a TLS context');
  assert.equal(second.secureContext, first.secureContext, 'the same extra CA: the same context');
  assert.notEqual(trustStoreWith(OTHER), first.secureContext, 'another extra CA: another context');
  const plain = pinnedHttpsOptions({ host: 'mta-sts.example.test', address: '127.0.0.1', port: 443, signal });
  assert.equal(plain.secureContext, undefined, "no extra CA: Node's own trust store");
  assert.equal(plain.rejectUnauthorized, true);
});
