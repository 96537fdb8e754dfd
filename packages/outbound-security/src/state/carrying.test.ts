import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import { SecLevel } from '../sec-level';
import { CarryingRatchetStore } from './carrying';

function level(level: SecLevel): RatchetRead {
  return { kind: 'level', entry: { domain: 'example.test', level } };
}

/** A store that answers `peek` with `remembered` (undefined: it would have to read) and never reads. */
function remembering(remembered: RatchetRead | undefined, peek = true): RatchetStore {
  const never = (): Promise<never> => Promise.reject(new Error('not read in this test'));
  return {
    description: 'fake',
    get: never,
    raise: never,
    reset: never,
    list: never,
    close: () => Promise.resolve(),
    ...(peek ? { peek: () => remembered } : {}),
  };
}

test('ST-7, OPS-6: while a previous store is carried, peek is the higher of what each remembers, and nothing once one would have to read', () => {
  const carrying = (target: RatchetStore, ...previous: RatchetStore[]): CarryingRatchetStore =>
    new CarryingRatchetStore(() => ({ target, previous }));
  assert.deepEqual(carrying(remembering(level(SecLevel.PLAIN))).peek('example.test'), level(SecLevel.PLAIN));
  assert.deepEqual(
    carrying(remembering(level(SecLevel.PLAIN)), remembering(level(SecLevel.TLS_SECURE))).peek('example.test'),
    level(SecLevel.TLS_SECURE),
    'the level carried from the previous store counts',
  );
  assert.deepEqual(
    carrying(remembering({ kind: 'none' }), remembering(level(SecLevel.TLS_INSECURE))).peek('example.test'),
    level(SecLevel.TLS_INSECURE),
  );
  assert.equal(carrying(remembering(level(SecLevel.TLS_SECURE)), remembering(undefined)).peek('example.test'), undefined);
  assert.equal(carrying(remembering(undefined), remembering(level(SecLevel.PLAIN))).peek('example.test'), undefined);
  assert.equal(
    carrying(remembering(level(SecLevel.PLAIN)), remembering(undefined, false)).peek('example.test'),
    undefined,
    'a store without peek',
  );
  const unreadable: RatchetRead = { kind: 'unreadable', reason: 'x' };
  assert.deepEqual(carrying(remembering(level(SecLevel.TLS_SECURE)), remembering(unreadable)).peek('example.test'), unreadable);
});
