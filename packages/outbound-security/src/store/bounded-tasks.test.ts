import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mapBounded } from './bounded-tasks';

test('OPS-5: mapBounded runs at most `limit` at once and keeps the order of the results', async () => {
  let running = 0;
  let most = 0;
  const results = await mapBounded([5, 1, 4, 2, 3], 2, async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, n));
    running--;
    return n * 10;
  });
  assert.deepEqual(results, [50, 10, 40, 20, 30]);
  assert.equal(most, 2);
  assert.deepEqual(await mapBounded([], 4, async () => 1), []);
});
