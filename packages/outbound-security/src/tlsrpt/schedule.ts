/**
 * When a day's reports go out (RPT-3, RFC 8460 §4.1, §5.5). Pure: the clock
 * and the random numbers are arguments.
 *
 * - A day's report is due once the day has ended and a settle time has passed
 *   (batches recorded just before midnight reach the store within a flush
 *   interval), plus a random delay of up to `delayWindowMs` (default four
 *   hours, §4.1 "after some delay, perhaps several hours"): senders do not all
 *   report at 00:00. The due time is drawn once per (day, domain) and kept in
 *   the store, so every process of the cluster waits for the same time.
 * - A failed attempt is retried with exponential backoff (`retryBaseMs`,
 *   doubling, at most `retryMaxMs`, each wait jittered to 50–100 %), for up to
 *   `giveUpAfterMs` (default 24 hours, §5.5) after the first attempt; then the
 *   domain's report for that day is given up.
 * - Days whose sessions all succeeded are sent or not per
 *   `sendDaysWithoutFailures`.
 */
import { dayStart, isDay } from './record';
import type { DeliveryState } from './store';

const HOUR = 3_600_000;

export interface ScheduleSettings {
  delayWindowMs: number;
  settleMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  giveUpAfterMs: number;
  sendDaysWithoutFailures: boolean;
}

export const DEFAULT_DELAY_WINDOW_MS = 4 * HOUR;
export const DEFAULT_SCHEDULE: ScheduleSettings = {
  delayWindowMs: DEFAULT_DELAY_WINDOW_MS,
  settleMs: 5 * 60_000,
  retryBaseMs: 15 * 60_000,
  retryMaxMs: 4 * HOUR,
  giveUpAfterMs: 24 * HOUR,
  sendDaysWithoutFailures: true,
};

/** The end of a UTC day (the start of the next), in ms. */
export function dayEnd(day: string): number {
  const start = dayStart(day);
  if (start === null) throw new Error(`tlsrpt: "${day}" is not a day (YYYY-MM-DD)`);
  return start + 24 * HOUR;
}

/** Whether `day` has ended at `now`, so its report may be planned. */
export function dayIsOver(day: string, now: number): boolean {
  return dayEnd(day) <= now;
}

/** The first attempt's time: the end of the day, the settle time, a random share of the window. */
export function firstAttemptAt(day: string, settings: ScheduleSettings, random: () => number): number {
  return dayEnd(day) + settings.settleMs + Math.floor(clampUnit(random()) * settings.delayWindowMs);
}

/** A fresh delivery state for a day's report. */
export function newDelivery(reportId: string, dueAt: number): DeliveryState {
  return { reportId, dueAt, attempts: 0, nextAttemptAt: dueAt, sent: {}, errors: {} };
}

export type Step = { kind: 'finished' } | { kind: 'wait'; until: number } | { kind: 'attempt' };

/** What to do with a domain's report now. `force`: do not wait for the due time (the CLI's "send now"). */
export function nextStep(state: DeliveryState, now: number, force = false): Step {
  if (state.finished) return { kind: 'finished' };
  if (!force && now < state.nextAttemptAt) return { kind: 'wait', until: state.nextAttemptAt };
  return { kind: 'attempt' };
}

/** What one attempt did: which report URIs took the report, which failed and why. */
export interface AttemptResult {
  sent: Record<string, number>;
  errors: Record<string, string>;
}

/** The state after an attempt: finished when every URI has the report or the retries ran out, else the next time. */
export function afterAttempt(
  state: DeliveryState,
  result: AttemptResult,
  uris: readonly string[],
  now: number,
  settings: ScheduleSettings,
  random: () => number,
): DeliveryState {
  const sent = { ...state.sent, ...result.sent };
  const missing = uris.filter((uri) => !(uri in sent));
  const errors: Record<string, string> = {};
  for (const uri of missing) errors[uri] = result.errors[uri] ?? state.errors[uri] ?? 'not attempted';
  const attempts = state.attempts + 1;
  const next = { ...state, attempts, sent, errors };
  if (missing.length === 0) return { ...next, finished: { at: now, outcome: 'sent', reason: `sent to ${uris.join(', ')}` } };
  const firstAttempt = state.attempts === 0 ? now : Math.min(state.dueAt, now);
  const wait = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** (attempts - 1)) * (0.5 + clampUnit(random()) / 2);
  const nextAttemptAt = now + Math.floor(wait);
  if (nextAttemptAt > firstAttempt + settings.giveUpAfterMs) {
    const reason = `gave up after ${attempts} attempt(s): ${missing.map((uri) => `${uri}: ${errors[uri] ?? 'not sent'}`).join('; ')}`;
    return { ...next, finished: { at: now, outcome: 'gave-up', reason } };
  }
  return { ...next, nextAttemptAt };
}

/** Finishes a delivery without sending (no reporting policy, nothing to report). */
export function finishWithout(state: DeliveryState, outcome: 'no-record' | 'not-sent', reason: string, now: number): DeliveryState {
  return { ...state, finished: { at: now, outcome, reason } };
}

/** What stands for the reporting policy lookup in `errors` when it failed (it is retried like a send). */
export const LOOKUP = '_smtp._tls lookup';

/** A delivery that could not even try (the TXT lookup failed): retried like a failed send. */
export function afterLookupFailure(
  state: DeliveryState,
  error: string,
  now: number,
  settings: ScheduleSettings,
  random: () => number,
): DeliveryState {
  return afterAttempt(state, { sent: {}, errors: { [LOOKUP]: error } }, [LOOKUP], now, settings, random);
}

/**
 * The days a scheduler pass looks at: those with counts that have ended and
 * may still be sent (the last day that may still be in retry), oldest first.
 */
export function daysToReport(storedDays: readonly string[], now: number, settings: ScheduleSettings): string[] {
  const sendingPeriod = settings.settleMs + settings.delayWindowMs + settings.giveUpAfterMs + settings.retryMaxMs;
  return storedDays.filter((day) => isDay(day) && dayEnd(day) <= now && dayEnd(day) + sendingPeriod >= now).sort();
}

function clampUnit(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 0.999999) : 0;
}
