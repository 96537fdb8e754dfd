/**
 * TLS reporting in one process (RPT-1, RPT-3): the recorder counting
 * sessions into the shared store and the scheduler sending reports from it,
 * following the settings (`[tlsrpt]` of outbound_tls.ini) and the store
 * settings (data_dir or Redis), both hot-reloaded.
 *
 * - Off (the default) or misconfigured: nothing is recorded or sent and no
 *   store is opened.
 * - On: one recorder and one scheduler per process; every process of the
 *   cluster runs both, the store's send lock makes one of them send each
 *   report (RPT-3).
 * - RPT-8, RPT-9: the limits of the settings bound the recorder and the
 *   scheduler; what they leave out is logged (warn) and counted in `stats`.
 * - A change of the settings or of the store closes what runs (the recorder
 *   writes what it holds first) and starts again with the new ones.
 */
import { openTlsReportStore, processHolder } from './open';
import { TlsReportRecorder, type RecorderStats } from './recorder';
import { LeftOutTally, type LeftOutKind } from './limits';
import { TlsReportScheduler, type SchedulerOptions } from './scheduler';
import { signingQueueMail } from './dkim';
import { DEFAULT_SCHEDULE } from './schedule';
import { DEFAULT_LOCK_TTL_MS, type DeliveryDeps } from './deliver';
import type { SessionRecord } from './record';
import type { TlsReportStore } from './store';
import type { TlsReportingConfig, TlsReportingSettings } from './settings';
import type { StoreSettings } from '../store/settings';

/** What the process gives reporting: DNS, HTTPS, the MTA's queue, the log. */
export type ReportingIo = Pick<DeliveryDeps, 'txt' | 'post' | 'queueMail' | 'log'> & {
  now?: () => number;
  random?: () => number;
  /** Opens the store (tests: a memory store). */
  openStore?: (settings: StoreSettings) => TlsReportStore;
  scheduler?: SchedulerOptions;
};

interface Running {
  key: string;
  sender: string;
  store: TlsReportStore;
  recorder: TlsReportRecorder;
  scheduler: TlsReportScheduler;
}

export class TlsReporting {
  private running: Running | null = null;
  private closing: Promise<void> = Promise.resolve();
  /** RPT-8, RPT-9: what the limits left out, over restarts of the recorder and scheduler. */
  private readonly leftOut: LeftOutTally;

  constructor(private readonly io: ReportingIo) {
    this.leftOut = new LeftOutTally((message) => io.log('warn', message));
  }

  /** Starts, restarts or stops reporting for these settings; returns what it did, for the log. */
  apply(config: TlsReportingConfig, storeSettings: StoreSettings): 'started' | 'restarted' | 'stopped' | 'unchanged' {
    const settings = config.kind === 'on' ? config.settings : null;
    const key = settings ? JSON.stringify([settings, storeSettings.dataDir, storeSettings.store, storeSettings.redisIni]) : '';
    if ((this.running?.key ?? '') === key) return 'unchanged';
    const had = this.running !== null;
    this.stop();
    if (!settings) return had ? 'stopped' : 'unchanged';
    this.running = this.start(key, settings, storeSettings);
    return had ? 'restarted' : 'started';
  }

  private start(key: string, settings: TlsReportingSettings, storeSettings: StoreSettings): Running {
    const { io } = this;
    const now = io.now ?? Date.now;
    const store = (io.openStore ?? openTlsReportStore)(storeSettings);
    const recorder = new TlsReportRecorder({
      write: (entries) => store.add(entries),
      flushIntervalMs: settings.flushIntervalMs,
      maxEntries: settings.maxPending,
      maxPolicyStrings: settings.limits.maxPolicyStrings,
      maxDomainsPerDay: settings.limits.maxDomainsRecordedPerDay,
      leftOut: this.leftOut,
      now,
      onFlushError: (err) =>
        io.log('warn', `TLS reports: counts not written to ${store.description} (kept for the next flush): ${err.message}`),
    });
    const scheduler = new TlsReportScheduler(
      {
        store,
        txt: io.txt,
        post: io.post,
        queueMail: signingQueueMail(io.queueMail, settings.dkim),
        identity: settings.identity,
        schedule: { ...DEFAULT_SCHEDULE, delayWindowMs: settings.delayWindowMs, sendDaysWithoutFailures: settings.sendDaysWithoutFailures },
        holder: processHolder(),
        lockTtlMs: DEFAULT_LOCK_TTL_MS,
        now,
        random: io.random ?? Math.random,
        log: io.log,
        limits: settings.limits,
        leftOut: this.leftOut,
      },
      io.scheduler,
    );
    recorder.start();
    scheduler.start();
    return { key, sender: settings.identity.sender, store, recorder, scheduler };
  }

  private stop(): void {
    const running = this.running;
    this.running = null;
    if (!running) return;
    const previous = this.closing;
    this.closing = (async () => {
      await previous;
      await running.scheduler.stop();
      await running.recorder.close();
      await running.store.close();
    })().catch((err: unknown) => this.io.log('warn', `TLS reports: closing ${running.store.description}: ${(err as Error).message}`));
  }

  /** RPT-1: counts one session (synchronous; nothing when reporting is off). */
  record(session: SessionRecord): void {
    this.running?.recorder.record(session);
  }

  get enabled(): boolean {
    return this.running !== null;
  }

  /** The report sender address in force, or null when off. */
  get sender(): string | null {
    return this.running?.sender ?? null;
  }

  /** The recorder's counters and what the limits left out (metrics), or null when off. */
  stats(): (RecorderStats & { leftOut: Record<LeftOutKind, number> }) | null {
    const recorder = this.running?.recorder.stats();
    return recorder ? { ...recorder, leftOut: this.leftOut.totals() } : null;
  }

  /** Writes pending counts now (tests, shutdown). */
  async flush(): Promise<void> {
    await this.running?.recorder.flush();
  }

  /** Stops reporting: the recorder writes what it holds, the store closes. */
  async close(): Promise<void> {
    this.stop();
    await this.closing;
  }
}
