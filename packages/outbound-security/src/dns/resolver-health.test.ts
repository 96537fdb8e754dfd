import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResolverHealth } from './resolver-health';

function harness(): { health: ResolverHealth; lines: string[]; changes: string[]; clock: { now: number } } {
  const lines: string[] = [];
  const changes: string[] = [];
  const clock = { now: 0 };
  const health = new ResolverHealth(
    { info: (m) => lines.push(`INFO ${m}`), error: (m) => lines.push(`ERROR ${m}`) },
    (server, up) => changes.push(`${server} ${up ? 'up' : 'down'}`),
    3,
    () => clock.now,
  );
  return { health, lines, changes, clock };
}

test('OPS-7: a DNS resolver that stops answering is told once (naming it) after lookups of 3 names failed in a row, reminded at most once a minute, and told when it answers again', () => {
  const { health, lines, changes, clock } = harness();
  health.observe('127.0.0.1:53', true, undefined, 'a.test');
  health.observe('127.0.0.1:53', false, 'no answer from 127.0.0.1 in 1000 ms', 'a.test');
  health.observe('127.0.0.1:53', true, undefined, 'b.test');
  health.observe('127.0.0.1:53', false, 'x', 'c.test');
  health.observe('127.0.0.1:53', false, 'x', 'd.test');
  health.observe('127.0.0.1:53', true, undefined, 'b.test');
  for (let i = 0; i < 20; i++) health.observe('127.0.0.1:53', false, 'timeout', 'slow.test');
  assert.deepEqual(lines, [], 'a failure or two between answers, or one slow name asked again and again, is no outage');
  health.observe('127.0.0.1:53', true, undefined, 'e.test');
  for (let i = 0; i < 200; i++) {
    clock.now += 250; // four attempts a second for 50 s
    health.observe('127.0.0.1:53', false, 'connect ECONNREFUSED 127.0.0.1:53', `n${i % 5}.test`);
  }
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0] ?? '', /^ERROR DNS resolver 127\.0\.0\.1:53 unavailable: connect ECONNREFUSED 127\.0\.0\.1:53; .*mail is deferred/);
  clock.now += 15_000;
  health.observe('127.0.0.1:53', false, 'connect ECONNREFUSED 127.0.0.1:53', 'n0.test');
  assert.equal(lines.length, 2);
  assert.match(lines[1] ?? '', /^ERROR DNS resolver 127\.0\.0\.1:53 still unavailable after 1 min 4 s/);
  health.observe('127.0.0.1:53', true);
  assert.match(lines[2] ?? '', /^INFO DNS resolver 127\.0\.0\.1:53 is back after 1 min 4 s$/);
  assert.deepEqual(changes, [
    '127.0.0.1:53 up',
    '127.0.0.1:53 up',
    '127.0.0.1:53 up',
    '127.0.0.1:53 up',
    '127.0.0.1:53 down',
    '127.0.0.1:53 up',
  ]);
});

test('OPS-7: each resolver is followed on its own', () => {
  const { health, lines } = harness();
  for (let i = 0; i < 3; i++) health.observe('192.0.2.53', false, 'timeout', `n${i}.test`);
  health.observe('127.0.0.1:53', true);
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /DNS resolver 192\.0\.2\.53 unavailable/);
});
