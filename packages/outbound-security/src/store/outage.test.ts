import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outage, REMINDER_INTERVAL_MS, duration } from './outage';

function fixture(): { outage: Outage; lines: string[]; changes: Array<boolean | null>; clock: { t: number } } {
  const lines: string[] = [];
  const changes: Array<boolean | null> = [];
  const clock = { t: 1_000_000 };
  const outage = new Outage({
    service: 'Redis store redis://127.0.0.1:6379',
    consequence: 'mail that needs stored state is deferred (on_store_error=defer)',
    log: { info: (m) => lines.push(`INFO ${m}`), error: (m) => lines.push(`ERROR ${m}`) },
    onChange: (up) => changes.push(up),
    now: () => clock.t,
  });
  return { outage, lines, changes, clock };
}

test('OPS-7: an outage is told once when it starts, naming the service, its address, the cause and what mail meets', () => {
  const { outage, lines, changes, clock } = fixture();
  const store = outage.member();
  const feed = outage.member();
  // Four failures a second from two connections for ten seconds.
  for (let i = 0; i < 40; i++) {
    (i % 2 ? store : feed).down('connect ECONNREFUSED 127.0.0.1:6379');
    clock.t += 250;
  }
  assert.deepEqual(lines, [
    'ERROR Redis store redis://127.0.0.1:6379 unavailable: connect ECONNREFUSED 127.0.0.1:6379; mail that needs stored state is deferred (on_store_error=defer)',
  ]);
  assert.deepEqual(changes, [false]);
  assert.equal(outage.isDown, true);
});

test('OPS-7: while an outage lasts it is reminded at most once a minute', () => {
  const { outage, lines, clock } = fixture();
  const member = outage.member();
  const start = clock.t;
  // A failure every 100 ms for ten minutes.
  for (; clock.t - start < 10 * 60_000; clock.t += 100) member.down('connect ECONNREFUSED 127.0.0.1:6379');
  const reminders = lines.filter((l) => / still unavailable after /.test(l));
  assert.equal(lines.length, 1 + reminders.length);
  assert.ok(reminders.length <= 10 && reminders.length >= 9, `${reminders.length} reminders in ten minutes`);
  assert.match(reminders[0] ?? '', /Redis store redis:\/\/127\.0\.0\.1:6379 still unavailable after 1 min: connect ECONNREFUSED/);
  assert.equal(REMINDER_INTERVAL_MS, 60_000);
});

test('OPS-7: the end of an outage is told once, with how long it lasted, when every connection is back', () => {
  const { outage, lines, changes, clock } = fixture();
  const store = outage.member();
  const feed = outage.member();
  store.up();
  feed.up();
  assert.deepEqual(lines, [], 'the first connection is not news');
  store.down('connect ECONNREFUSED 127.0.0.1:6379');
  feed.down('connect ECONNREFUSED 127.0.0.1:6379');
  clock.t += 95_000;
  store.up();
  assert.equal(outage.isDown, true, 'one connection still down');
  feed.up();
  store.up();
  assert.deepEqual(lines.slice(1), ['INFO Redis store redis://127.0.0.1:6379 is back after 1 min 35 s']);
  assert.deepEqual(changes, [true, true, false, true, true]);
  // A new outage is told again.
  store.down('socket closed unexpectedly');
  assert.match(lines.at(-1) ?? '', /^ERROR .* unavailable: socket closed unexpectedly;/);
  // Its connections closing (a store switch away from Redis): no longer counted.
  store.leave();
  feed.leave();
  assert.equal(outage.isDown, false);
  assert.equal(changes.at(-1), null);
});

test('OPS-7: durations read as an admin says them', () => {
  assert.equal(duration(450), '450 ms');
  assert.equal(duration(12_300), '12 s');
  assert.equal(duration(200_000), '3 min 20 s');
  assert.equal(duration(7_500_000), '2 h 5 min');
});
