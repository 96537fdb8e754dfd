import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOutboundMxConfig } from './outbound-mx';

test('OPS-1: defaults apply when the ini is empty', () => {
  const cfg = parseOutboundMxConfig({});
  assert.equal(cfg.maxMx, 5);
  assert.equal(cfg.mxPort, 25);
  assert.deepEqual(cfg.dns, { servers: [], timeoutMs: 5000, tries: 2, cacheBytes: 16 * 1024 * 1024, cacheMaxTtlS: 3600 });
  assert.ok(cfg.refusedRanges.includes('loopback'));
});

test('OPS-1: values are read and bad ones named', () => {
  const cfg = parseOutboundMxConfig({
    main: { max_mx: '3' },
    dns: { servers: '127.0.0.1:5353, [::1]:53', timeout: '0.5', tries: 1, cache_mb: '0', cache_max_ttl: '60' },
  });
  assert.equal(cfg.maxMx, 3);
  assert.deepEqual(cfg.dns, { servers: ['127.0.0.1:5353', '[::1]:53'], timeoutMs: 500, tries: 1, cacheBytes: 0, cacheMaxTtlS: 60 });
  assert.throws(() => parseOutboundMxConfig({ dns: { cache_mb: '-1' } }), /cache_mb=-1/);
  assert.throws(() => parseOutboundMxConfig({ dns: { servers: '127.0.0.1, resolver.example' } }), /\[dns\] servers=.*"resolver.example": not an IP address/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: 'five' } }), /max_mx=five/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: '0' } }), /between 1 and 100/);
  assert.throws(() => parseOutboundMxConfig({ addresses: { allow: 'nonsense' } }), /nonsense/);
});
