import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_REFUSED_RANGES, checkAddress, makeAddressPolicy } from './address-policy';

test('MX-9: loopback, unspecified, link-local, multicast and reserved are refused by default', () => {
  const policy = makeAddressPolicy([...DEFAULT_REFUSED_RANGES], []);
  for (const address of [
    '127.0.0.1',
    '0.0.0.0',
    '169.254.1.1',
    '224.0.0.1',
    '240.0.0.1',
    '::1',
    '::',
    'fe80::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '192.0.2.1',
  ]) {
    assert.equal(checkAddress(policy, address).allowed, false, address);
  }
  for (const address of ['8.8.8.8', '10.1.2.3', '2a00:1450::1']) {
    assert.equal(checkAddress(policy, address).allowed, true, address);
  }
});

test('MX-9: an allow CIDR overrides a refused range', () => {
  const policy = makeAddressPolicy([...DEFAULT_REFUSED_RANGES], ['127.0.0.0/24', '::1']);
  assert.equal(checkAddress(policy, '127.0.0.9').allowed, true);
  assert.equal(checkAddress(policy, '::1').allowed, true);
  const refused = checkAddress(policy, '127.0.1.9');
  assert.equal(refused.allowed, false);
  if (!refused.allowed) assert.match(refused.reason, /loopback/);
});

test('MX-9: a malformed allow entry is reported with its value', () => {
  assert.throws(() => makeAddressPolicy([], ['127.0.0.0/99']), /127\.0\.0\.0\/99/);
});
