/**
 * `mx show`'s view of the MTA-STS policy in effect (STS-5, ST-5), without
 * processes: the same answer as the plugin's resolver for every kind of
 * cached entry. The command itself runs in test/integration/cli-mx.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PolicyRead } from '../mta-sts/store';
import type { LivePolicy } from './policy';
import { describeEffective, effectivePolicy } from './mx';

const NOW = Date.UTC(2026, 10, 24);
const TEXT = 'version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n';
const entry = (text: string, expiresAt: number): PolicyRead => ({
  kind: 'entry',
  entry: { domain: 'a.example', id: 'c1', text, fetchedAt: NOW - 1000, expiresAt, checkedAt: NOW - 1000, usedAt: NOW - 1000 },
});
const noRecord: LivePolicy = { kind: 'none', reason: 'no policy record (no TXT record)' };

test('ST-5: an unusable cached entry (unreadable, or an invalid policy even when expired) with no fresh policy defers under on_store_error=defer, not under send', () => {
  for (const cached of [
    { kind: 'unreadable', reason: '/d/a.example.json: Unexpected end of JSON input' } as PolicyRead,
    entry('version: STSv1\nmode: sometimes\n', NOW + 1000),
    entry('version: STSv1\nmode: sometimes\n', NOW - 1000),
  ]) {
    const deferred = effectivePolicy('a.example', cached, noRecord, 'defer', NOW);
    assert.equal(deferred.kind, 'store-unavailable', JSON.stringify(cached));
    assert.match(
      describeEffective(deferred),
      /^none usable: the cached entry (is unreadable|holds an invalid policy) .*outbound_mx defers mail to a\.example/,
    );
    const sent = effectivePolicy('a.example', cached, noRecord, 'send', NOW);
    assert.match(describeEffective(sent), /on_store_error=send: outbound_mx sends as if no policy were cached/);
  }
  // A usable entry that expired is simply replaced by the live answer.
  assert.deepEqual(effectivePolicy('a.example', entry(TEXT, NOW - 1000), noRecord, 'defer', NOW), {
    kind: 'none',
    reason: noRecord.reason,
  });
});
