import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getServers } from 'node:dns';
import { adTrusted } from '../mx/dns-client';
import { parseOutboundMxConfig } from './outbound-mx';

test('OPS-1: defaults apply when the ini is empty', () => {
  const cfg = parseOutboundMxConfig({});
  assert.equal(cfg.maxMx, 5);
  assert.equal(cfg.mxPort, 25);
  const { trustAd, ...dns } = cfg.dns;
  assert.deepEqual(dns, { servers: [], timeoutMs: 5000, tries: 2, cacheBytes: 16 * 1024 * 1024, cacheMaxTtlS: 3600, dnssec: true });
  // The system's resolvers: their AD bit is believed only when every one is on loopback (DANE-1).
  assert.equal(trustAd, adTrusted(getServers()));
  assert.deepEqual(cfg.dane, { mode: 'on', trustedResolvers: [], probe: '.', checkIntervalMs: 600_000 });
  assert.ok(cfg.refusedRanges.includes('loopback'));
});

test('DANE-1/DANE-6: [dane] mode, trusted resolvers and the AD trust they give', () => {
  const loopback = parseOutboundMxConfig({ dns: { servers: '127.0.0.1:5353' } });
  assert.equal(loopback.dns.trustAd, true);
  const remote = parseOutboundMxConfig({ dns: { servers: '192.0.2.53' } });
  assert.equal(remote.dns.trustAd, false);
  const listed = parseOutboundMxConfig({ dns: { servers: '192.0.2.53' }, dane: { trusted_resolvers: '192.0.2.53', probe: 'example.', check_interval: '60' } });
  assert.equal(listed.dns.trustAd, true);
  assert.deepEqual(listed.dane, { mode: 'on', trustedResolvers: ['192.0.2.53'], probe: 'example.', checkIntervalMs: 60_000 });
  const off = parseOutboundMxConfig({ dns: { servers: '127.0.0.1' }, dane: { mode: 'off' } });
  assert.deepEqual([off.dns.dnssec, off.dns.trustAd], [false, false]);
  assert.equal(parseOutboundMxConfig({ dane: { mode: 'Observe' } }).dane.mode, 'observe');
  assert.throws(() => parseOutboundMxConfig({ dane: { mode: 'enforce' } }), /\[dane\] mode=enforce: expected on, observe or off/);
  assert.throws(() => parseOutboundMxConfig({ dane: { trusted_resolvers: 'resolver.example' } }), /trusted_resolvers=.*not an IP address/);
});

test('OPS-1: values are read and bad ones named', () => {
  const cfg = parseOutboundMxConfig({
    main: { max_mx: '3' },
    dns: { servers: '127.0.0.1:5353, [::1]:53', timeout: '0.5', tries: 1, cache_mb: '0', cache_max_ttl: '60' },
  });
  assert.equal(cfg.maxMx, 3);
  assert.deepEqual(cfg.dns, {
    servers: ['127.0.0.1:5353', '[::1]:53'],
    timeoutMs: 500,
    tries: 1,
    cacheBytes: 0,
    cacheMaxTtlS: 60,
    dnssec: true,
    trustAd: true,
  });
  assert.throws(() => parseOutboundMxConfig({ dns: { cache_mb: '-1' } }), /cache_mb=-1/);
  assert.throws(() => parseOutboundMxConfig({ dns: { servers: '127.0.0.1, resolver.example' } }), /\[dns\] servers=.*"resolver.example": not an IP address/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: 'five' } }), /max_mx=five/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: '0' } }), /between 1 and 100/);
  assert.throws(() => parseOutboundMxConfig({ addresses: { allow: 'nonsense' } }), /nonsense/);
});
