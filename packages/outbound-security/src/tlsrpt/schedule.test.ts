import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_SCHEDULE,
  LOOKUP,
  afterAttempt,
  afterLookupFailure,
  dayEnd,
  dayIsOver,
  daysToReport,
  firstAttemptAt,
  newDelivery,
  nextStep,
} from './schedule';

const HOUR = 3_600_000;
const DAY = '2025-03-14';
const END = Date.UTC(2025, 2, 15);
const settings = DEFAULT_SCHEDULE;
const URIS = ['mailto:a@example.com', 'https://r.example.com/'];

test('RPT-3: a day is over at 24:00 UTC', () => {
  assert.equal(dayEnd(DAY), END);
  assert.equal(dayIsOver(DAY, END - 1), false);
  assert.equal(dayIsOver(DAY, END), true);
});

test('RPT-3: the first attempt comes after the day, the settle time and a random delay within the window', () => {
  assert.equal(
    firstAttemptAt(DAY, settings, () => 0),
    END + settings.settleMs,
  );
  const late = firstAttemptAt(DAY, settings, () => 0.999999);
  assert.ok(late < END + settings.settleMs + 4 * HOUR && late > END + settings.settleMs + 4 * HOUR - 1000);
  assert.equal(
    firstAttemptAt(DAY, settings, () => 0.5),
    END + settings.settleMs + 2 * HOUR,
  );
  assert.equal(
    firstAttemptAt(DAY, { ...settings, delayWindowMs: 0 }, () => 0.7),
    END + settings.settleMs,
  );
  assert.equal(
    firstAttemptAt(DAY, settings, () => Number.NaN),
    END + settings.settleMs,
    'a broken random source means no delay, never NaN',
  );
});

test('RPT-3: nothing happens before the due time unless forced, nothing once finished', () => {
  const state = newDelivery('id', END + HOUR);
  assert.deepEqual(nextStep(state, END), { kind: 'wait', until: END + HOUR });
  assert.deepEqual(nextStep(state, END, true), { kind: 'attempt' });
  assert.deepEqual(nextStep(state, END + HOUR), { kind: 'attempt' });
  const done = afterAttempt(
    state,
    { sent: { [URIS[0] as string]: 1, [URIS[1] as string]: 2 }, errors: {} },
    URIS,
    END + HOUR,
    settings,
    () => 0.5,
  );
  assert.equal(done.finished?.outcome, 'sent');
  assert.deepEqual(nextStep(done, END + 10 * HOUR, true), { kind: 'finished' });
});

test('RPT-3: a failed URI is retried with exponential backoff; the URIs that took the report keep it', () => {
  const start = END + HOUR;
  let state = newDelivery('id', start);
  state = afterAttempt(
    state,
    { sent: { [URIS[0] as string]: start }, errors: { [URIS[1] as string]: 'HTTP status 503' } },
    URIS,
    start,
    settings,
    () => 1,
  );
  assert.equal(state.finished, undefined);
  assert.equal(state.attempts, 1);
  assert.deepEqual(Object.keys(state.sent), [URIS[0]]);
  assert.deepEqual(state.errors, { [URIS[1] as string]: 'HTTP status 503' });
  const waits = [state.nextAttemptAt - start];
  let now = state.nextAttemptAt;
  for (let i = 0; i < 3; i++) {
    state = afterAttempt(state, { sent: {}, errors: { [URIS[1] as string]: 'HTTP status 503' } }, URIS, now, settings, () => 1);
    waits.push(state.nextAttemptAt - now);
    now = state.nextAttemptAt;
  }
  const full = waits.map((w) => Math.round(w / 60_000));
  assert.deepEqual(full, [15, 30, 60, 120], 'doubling from retry_base (random 1 = the full wait)');
  const jittered = afterAttempt(newDelivery('id', start), { sent: {}, errors: {} }, URIS, start, settings, () => 0);
  assert.equal(jittered.nextAttemptAt - start, settings.retryBaseMs / 2, 'jitter takes at most half of the wait');
  const capped = afterAttempt(
    { ...state, attempts: 20 },
    { sent: {}, errors: {} },
    URIS,
    now,
    { ...settings, giveUpAfterMs: 1000 * HOUR },
    () => 1,
  );
  assert.ok(settings.retryMaxMs - (capped.nextAttemptAt - now) < 100, 'at most retry_max');
  const done = afterAttempt(state, { sent: { [URIS[1] as string]: now }, errors: {} }, URIS, now, settings, () => 1);
  assert.equal(done.finished?.outcome, 'sent');
  assert.deepEqual(done.errors, {});
});

test('RPT-3: retries stop 24 hours after the first attempt (RFC 8460 §5.5)', () => {
  const start = END + HOUR;
  let state = newDelivery('id', start);
  let now = start;
  while (!state.finished) {
    state = afterAttempt(state, { sent: {}, errors: { [URIS[0] as string]: 'refused' } }, URIS, now, settings, () => 1);
    if (!state.finished) {
      assert.ok(state.nextAttemptAt <= start + settings.giveUpAfterMs);
      now = state.nextAttemptAt;
    }
  }
  assert.equal(state.finished.outcome, 'gave-up');
  assert.match(state.finished.reason, /mailto:a@example\.com: refused; https:\/\/r\.example\.com\/: not attempted/);
  assert.ok(state.attempts >= 5 && state.attempts <= 12, `${state.attempts} attempts`);
});

test('RPT-3: a failed reporting policy lookup is retried like a failed send', () => {
  const state = afterLookupFailure(newDelivery('id', END), 'SERVFAIL', END, settings, () => 1);
  assert.equal(state.finished, undefined);
  assert.deepEqual(state.errors, { [LOOKUP]: 'SERVFAIL' });
  const sent = afterAttempt(
    state,
    { sent: { [URIS[0] as string]: END + HOUR }, errors: {} },
    [URIS[0] as string],
    END + HOUR,
    settings,
    () => 1,
  );
  assert.equal(sent.finished?.outcome, 'sent');
  assert.deepEqual(sent.errors, {}, 'the lookup error does not outlive a later success');
});

test('RPT-3: the days considered are those over and still within the sending period', () => {
  const now = Date.UTC(2025, 2, 16, 3);
  const stored = ['2025-03-10', '2025-03-13', '2025-03-14', '2025-03-15', '2025-03-16'];
  assert.deepEqual(daysToReport(stored, now, settings), ['2025-03-14', '2025-03-15']);
});
