import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RatchetMemory } from './memory';
import type { RatchetRead } from './store';
import { SecLevel } from '../sec-level';

const level = (domain: string, l: SecLevel): RatchetRead => ({ kind: 'level', entry: { domain, level: l } });

test('ST-4: an unreadable read is never remembered', () => {
  const memory = new RatchetMemory();
  memory.remember('a.example', { kind: 'unreadable', reason: 'torn' }, memory.token());
  assert.equal(memory.recall('a.example', 0), undefined);
});

test('OPS-6: a read that started before a change was learnt of is not remembered', () => {
  const memory = new RatchetMemory();
  const token = memory.token();
  memory.forget('other.example'); // any change learnt of in the meantime
  memory.remember('a.example', level('a.example', SecLevel.PLAIN), token);
  assert.equal(memory.recall('a.example', 0), undefined);
});

test('ST-2: an older, lower read finishing last never replaces a remembered higher one', () => {
  const memory = new RatchetMemory();
  const token = memory.token();
  memory.remember('a.example', level('a.example', SecLevel.TLS_SECURE), token);
  memory.remember('a.example', level('a.example', SecLevel.PLAIN), token);
  memory.remember('a.example', { kind: 'none' }, token);
  assert.deepEqual(memory.recall('a.example', 0), level('a.example', SecLevel.TLS_SECURE));
  memory.forget('a.example');
  memory.remember('a.example', { kind: 'none' }, memory.token());
  assert.deepEqual(memory.recall('a.example', 0), { kind: 'none' }, 'after a change is learnt of, none is remembered');
});

test('OPS-6: a read due for revalidation is not recalled', () => {
  const memory = new RatchetMemory();
  memory.remember('a.example', level('a.example', SecLevel.PLAIN), memory.token(), 1000);
  assert.ok(memory.recall('a.example', 999));
  assert.equal(memory.recall('a.example', 1000), undefined);
});

test('OPS-5: memory is bounded in entries and in estimated bytes', () => {
  const byEntries = new RatchetMemory({ entries: 2, bytes: 1 << 20 });
  for (const d of ['a.example', 'b.example', 'c.example']) byEntries.remember(d, level(d, SecLevel.PLAIN), byEntries.token());
  assert.equal(byEntries.size, 2);
  assert.equal(byEntries.recall('a.example', 0), undefined, 'the oldest went first');
  const byBytes = new RatchetMemory({ entries: 1000, bytes: 2000 });
  for (let i = 0; i < 100; i++) byBytes.remember(`d${i}.example`, level(`d${i}.example`, SecLevel.PLAIN), byBytes.token());
  assert.ok(byBytes.bytes <= 2000 && byBytes.size > 0 && byBytes.size < 100, `${byBytes.size} entries, ${byBytes.bytes} bytes`);
});
