/**
 * The sending loop (RPT-3): every `tickMs`, each ended day that may still be
 * sent (schedule.ts `daysToReport`) and each Policy Domain with counts that
 * day goes through `deliverDomain` (deliver.ts), at most `concurrency` at a
 * time. Every process of the cluster runs the loop; the store's due times,
 * locks and sent marks make one of them send each report once.
 *
 * - A domain waiting for its due time is not asked about again before then
 *   (remembered in memory, per day), so a pass reads little once all days are
 *   planned.
 * - Days past retention are pruned from the store.
 * - A store or lookup error for one domain is logged and retried at the next
 *   pass; it never stops the loop or other domains.
 * - `sendNow` (RPT-5, the CLI) runs the same path for one day, forced: no
 *   waiting for the due time, the current day included as it stands.
 */
import { addDays, utcDay } from './record';
import { deliverDomain, type DeliveryDeps, type DomainOutcome } from './deliver';
import { daysToReport } from './schedule';
import { DailyQuota } from './limits';
import { RETENTION_DAYS } from './store';
import { mapBounded } from '../store/bounded-tasks';

/** How often the loop looks for reports to send. */
export const DEFAULT_TICK_MS = 60_000;
/** Domains delivered at once. */
export const DEFAULT_CONCURRENCY = 4;

export interface SchedulerOptions {
  tickMs?: number;
  concurrency?: number;
}

export interface PassSummary {
  days: string[];
  outcomes: Array<{ day: string; policyDomain: string; outcome: DomainOutcome | { kind: 'error'; error: string } }>;
}

export class TlsReportScheduler {
  private readonly tickMs: number;
  private readonly concurrency: number;
  /** `day\ndomain` → not before this time. */
  private readonly waiting = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PassSummary> | null = null;
  private stopped = false;

  private readonly deps: DeliveryDeps;

  constructor(deps: DeliveryDeps, options: SchedulerOptions = {}) {
    // RPT-8: the Policy Domains this process reports per day are counted here unless the caller keeps the count.
    this.deps = deps.reportQuota ? deps : { ...deps, reportQuota: new DailyQuota() };
    this.tickMs = options.tickMs ?? DEFAULT_TICK_MS;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  }

  /** Starts the loop (the timer does not keep the process alive). */
  start(): void {
    this.stopped = false;
    this.schedule(Math.floor(this.deps.random() * this.tickMs));
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      // OPS-8: a pass that failed in a way nobody foresaw is logged; the loop goes on, the process too.
      void this.pass()
        .catch((err: unknown) => this.deps.log('error', `TLS reports: pass failed: ${String((err as Error)?.stack ?? err)}`))
        .finally(() => this.schedule(this.tickMs));
    }, delay);
    this.timer.unref();
  }

  /** One pass over the days and domains; resolves with what happened. One pass at a time. */
  pass(): Promise<PassSummary> {
    this.running ??= this.runPass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runPass(): Promise<PassSummary> {
    const { store, now, schedule, log } = this.deps;
    const summary: PassSummary = { days: [], outcomes: [] };
    let stored: string[];
    try {
      stored = await store.days();
      await store.prune(addDays(utcDay(now()), -RETENTION_DAYS - 1));
    } catch (err) {
      log('error', `TLS reports: store ${store.description} unavailable: ${(err as Error).message}`);
      return summary;
    }
    summary.days = daysToReport(stored, now(), schedule);
    for (const key of this.waiting.keys()) if (!summary.days.includes(key.split('\n')[0] as string)) this.waiting.delete(key);
    for (const day of summary.days) {
      const domains = await store.domains(day).catch((err: unknown) => {
        log('error', `TLS reports for ${day}: cannot list domains: ${(err as Error).message}`);
        return [] as string[];
      });
      const due = domains.filter((domain) => (this.waiting.get(`${day}\n${domain}`) ?? 0) <= now());
      await mapBounded(due, this.concurrency, async (policyDomain) => {
        const outcome = await this.deliver(day, policyDomain, false);
        summary.outcomes.push({ day, policyDomain, outcome });
      });
    }
    return summary;
  }

  private async deliver(day: string, policyDomain: string, force: boolean): Promise<DomainOutcome | { kind: 'error'; error: string }> {
    const key = `${day}\n${policyDomain}`;
    try {
      const outcome = await deliverDomain(this.deps, day, policyDomain, force);
      // A forced delivery (of a day not over, say) says nothing about when the loop's is due.
      if (force) this.waiting.delete(key);
      else if (outcome.kind === 'waiting') this.waiting.set(key, outcome.until);
      else if (outcome.kind === 'attempted' && !outcome.state.finished) this.waiting.set(key, outcome.state.nextAttemptAt);
      else if (outcome.kind === 'finished' || outcome.kind === 'attempted') this.waiting.set(key, Number.POSITIVE_INFINITY);
      return outcome;
    } catch (err) {
      const error = (err as Error).message;
      this.deps.log('error', `TLS report for ${policyDomain} (${day}): ${error}`);
      return { kind: 'error', error };
    }
  }

  /** RPT-5: sends `day`'s reports now (every domain with counts, or `domains`), through the same path. */
  async sendNow(day: string, domains?: readonly string[]): Promise<PassSummary> {
    const summary: PassSummary = { days: [day], outcomes: [] };
    const list = domains ?? (await this.deps.store.domains(day));
    await mapBounded(list, this.concurrency, async (policyDomain) => {
      summary.outcomes.push({ day, policyDomain, outcome: await this.deliver(day, policyDomain, true) });
    });
    return summary;
  }

  /** Stops the loop; resolves when a running pass has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}
