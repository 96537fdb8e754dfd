import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOutboundMxConfig } from './outbound-mx';

test('OPS-1: defaults apply when the ini is empty', () => {
  const cfg = parseOutboundMxConfig({});
  assert.equal(cfg.maxMx, 5);
  assert.equal(cfg.mxPort, 25);
  const { trustAd, ...dns } = cfg.dns;
  assert.deepEqual(dns, { servers: [], timeoutMs: 5000, tries: 2, cacheBytes: 16 * 1024 * 1024, cacheMaxTtlS: 3600, dnssec: true });
  // The system's resolvers: none is declared, so their AD bit is not believed (DANE-8).
  assert.equal(trustAd, false);
  const { resolvers, ...dane } = cfg.dane;
  assert.deepEqual(dane, { mode: 'on', trustedResolvers: [], probe: '.', checkIntervalMs: 600_000 });
  assert.match(resolvers.kind === 'undeclared' ? resolvers.reason : '', /no validating resolver is declared/);
  assert.ok(cfg.refusedRanges.includes('loopback'));
});

test('DANE-8: the AD bit is believed only from declared resolvers: loopback is not enough, and the port counts', () => {
  const loopback = parseOutboundMxConfig({ dns: { servers: '127.0.0.1:5353' } });
  assert.equal(loopback.dns.trustAd, false, 'an undeclared stub on loopback (systemd-resolved, dnsmasq proxy-dnssec) is not believed');
  const remote = parseOutboundMxConfig({ dns: { servers: '192.0.2.53' } });
  assert.equal(remote.dns.trustAd, false);
  const listed = parseOutboundMxConfig({ dns: { servers: '192.0.2.53' }, dane: { trusted_resolvers: '192.0.2.53', probe: 'example.', check_interval: '60' } });
  assert.equal(listed.dns.trustAd, true);
  const { resolvers, ...dane } = listed.dane;
  assert.deepEqual(dane, { mode: 'on', trustedResolvers: ['192.0.2.53'], probe: 'example.', checkIntervalMs: 60_000 });
  assert.deepEqual(resolvers, { kind: 'declared' });
  const declaredLoopback = parseOutboundMxConfig({ dns: { servers: '127.0.0.1' }, dane: { trusted_resolvers: '127.0.0.1:53' } });
  assert.equal(declaredLoopback.dns.trustAd, true);
  const otherPort = parseOutboundMxConfig({ dns: { servers: '127.0.0.1:5353' }, dane: { trusted_resolvers: '127.0.0.1' } });
  assert.equal(otherPort.dns.trustAd, false, 'a validating unbound on port 53 does not vouch for a stub on 5353');
  assert.match(otherPort.dane.resolvers.kind === 'undeclared' ? otherPort.dane.resolvers.reason : '', /127\.0\.0\.1:5353.*not declared/);
  const partly = parseOutboundMxConfig({ dns: { servers: '127.0.0.1, 192.0.2.53' }, dane: { trusted_resolvers: '127.0.0.1' } });
  assert.equal(partly.dns.trustAd, false, 'every server asked must be declared');
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
    trustAd: false,
  });
  assert.throws(() => parseOutboundMxConfig({ dns: { cache_mb: '-1' } }), /cache_mb=-1/);
  assert.throws(() => parseOutboundMxConfig({ dns: { servers: '127.0.0.1, resolver.example' } }), /\[dns\] servers=.*"resolver.example": not an IP address/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: 'five' } }), /max_mx=five/);
  assert.throws(() => parseOutboundMxConfig({ main: { max_mx: '0' } }), /between 1 and 100/);
  assert.throws(() => parseOutboundMxConfig({ addresses: { allow: 'nonsense' } }), /nonsense/);
});
