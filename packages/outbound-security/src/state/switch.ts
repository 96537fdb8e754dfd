/**
 * ST-7 a store switch never lowers a level. When `store` or `data_dir`
 * changes (a reload, or a restart: the record of the store in use,
 * state/in-use.ts), the previous stores stay open and everything they hold is
 * carried into the store in force (state/carry.ts: the higher level wins,
 * `raised` times kept, unexpired policies). Until that has succeeded a read
 * asks the previous stores too (state/carrying.ts); a carry that fails (a
 * previous Redis that is down, say) is retried with backoff and said in the
 * log. Once everything is carried, the previous stores are closed and the
 * record names the store in force.
 */
import type { PolicyStore } from '../mta-sts/store';
import type { RatchetStore } from '../ratchet/store';
import { carryStores, type CarryReport, type StorePair } from './carry';
import { describeStore, readStoreRecord, sameStore, writeStoreRecord, type StoreInUse } from './in-use';

/** First pause before a failed carry is tried again; it doubles up to CARRY_RETRY_MAX_MS. */
export const CARRY_RETRY_FIRST_MS = 1_000;
export const CARRY_RETRY_MAX_MS = 60_000;
/** How long a carry waits for a store that connects in the background (Redis). */
export const CARRY_CONNECT_TIMEOUT_MS = 10_000;
/** At most this many lines name what was not carried; the rest are counted. */
export const MAX_SKIPPED_LINES = 20;

/** Stores opened for one setting of `store` and `data_dir`. */
export interface OpenedStores extends StorePair {
  inUse: StoreInUse;
}

export interface SwitchLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const PREFIX = 'outbound_tls: store switch (ST-7):';

export class StoreSwitch {
  private previous: OpenedStores[] = [];
  private running: Promise<void> | null = null;
  private closed = false;
  private recorded: StoreInUse | null = null;
  private wake: (() => void) | null = null;

  constructor(
    /** The stores in force (opened on demand). */
    private readonly target: () => OpenedStores,
    private readonly log: SwitchLog,
    /** The record of the store in use; none: only switches this process sees are carried. */
    private readonly recordFile?: string,
  ) {}

  /** The previous stores still being carried over, oldest first (empty once all is carried). */
  get pending(): readonly OpenedStores[] {
    return this.previous;
  }

  /**
   * At startup: compares the record with the store in force and carries from
   * the recorded one when they differ. With no record, `unrecorded` (if any) is
   * carried: a store this process may have used before the record existed.
   * Synchronous, so it is in force before the first delivery.
   */
  start(open: (inUse: StoreInUse) => OpenedStores, unrecorded?: StoreInUse): void {
    if (!this.recordFile) return;
    const current = this.target().inUse;
    const record = readStoreRecord(this.recordFile);
    if (record.kind === 'store') {
      this.recorded = record.store;
      if (sameStore(record.store, current)) return;
      this.log.warn(
        `${PREFIX} ${this.recordFile} says the stores were in ${describeStore(record.store)} when Haraka last ran, now ` +
          `${describeStore(current)}: carrying the levels and cached policies over`,
      );
      this.add(open(record.store));
      return;
    }
    if (record.kind === 'unreadable') {
      this.log.error(`${PREFIX} ${record.reason}: the store in use before this start is unknown; it is recorded anew`);
    } else if (unrecorded && !sameStore(unrecorded, current)) {
      this.log.info(`${PREFIX} no ${this.recordFile} yet: carrying what ${describeStore(unrecorded)} holds, in case it was used before`);
      this.add(open(unrecorded));
      return;
    }
    this.kick();
  }

  /** The stores that were in force before a switch: carried into the new ones, then closed. */
  add(source: OpenedStores): void {
    const current = this.target().inUse;
    // Back to a store still being carried from: it is in force again, nothing to carry from it.
    for (const stale of this.previous.filter((p) => sameStore(p.inUse, current))) void closePair(stale);
    this.previous = this.previous.filter((p) => !sameStore(p.inUse, current));
    if (sameStore(source.inUse, current) || this.previous.some((p) => sameStore(p.inUse, source.inUse))) {
      void closePair(source);
    } else {
      this.previous.push(source);
    }
    this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    const previous = this.previous;
    this.previous = [];
    await Promise.all(previous.map(closePair));
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.run().finally(() => {
      this.running = null;
      if (this.previous.length > 0) this.kick();
    });
  }

  private async run(): Promise<void> {
    let delay = CARRY_RETRY_FIRST_MS;
    for (let source = this.previous[0]; source && !this.closed; source = this.previous[0]) {
      const target = this.target();
      try {
        await connected([source.ratchet, source.policy, target.ratchet, target.policy]);
        const report = await carryStores(source, target);
        if (this.closed) return;
        this.report(source, target, report);
        this.previous = this.previous.filter((p) => p !== source);
        await closePair(source);
        delay = CARRY_RETRY_FIRST_MS;
      } catch (err) {
        if (this.closed) return;
        this.log.error(
          `${PREFIX} cannot carry from ${describeStore(source.inUse)} to ${describeStore(target.inUse)} yet: ` +
            `${(err as Error).message}; until then every read asks both and the higher level counts ` +
            `(next try in ${Math.round(delay / 1000)} s)`,
        );
        await this.sleep(delay);
        delay = Math.min(delay * 2, CARRY_RETRY_MAX_MS);
      }
    }
    if (!this.closed && this.previous.length === 0) await this.record();
  }

  private report(source: OpenedStores, target: OpenedStores, report: CarryReport): void {
    this.log.info(
      `${PREFIX} carried from ${describeStore(source.inUse)} to ${describeStore(target.inUse)}: ` +
        `${report.levels} ratchet levels (${report.raised} raised there, the others were as high already) and ` +
        `${report.policies} MTA-STS policies; ${report.skipped.length} entries not carried`,
    );
    for (const line of report.skipped.slice(0, MAX_SKIPPED_LINES)) this.log.warn(`${PREFIX} not carried: ${line}`);
    if (report.skipped.length > MAX_SKIPPED_LINES) {
      this.log.warn(`${PREFIX} … and ${report.skipped.length - MAX_SKIPPED_LINES} more entries not carried`);
    }
  }

  private async record(): Promise<void> {
    if (!this.recordFile) return;
    const current = this.target().inUse;
    if (this.recorded && sameStore(this.recorded, current)) return;
    this.recorded = current;
    try {
      await writeStoreRecord(this.recordFile, current);
    } catch (err) {
      this.log.warn(
        `${PREFIX} cannot write ${this.recordFile}: ${(err as Error).message}: a change of store or data_dir made ` +
          `while Haraka is stopped will not be noticed at the next start (a change by reload still is)`,
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** Waits for the stores that connect in the background; throws naming the first that does not. */
async function connected(stores: Array<RatchetStore | PolicyStore>): Promise<void> {
  for (const store of stores) {
    if (store.ready && !(await store.ready(CARRY_CONNECT_TIMEOUT_MS))) {
      throw new Error(`${store.description}: not connected within ${CARRY_CONNECT_TIMEOUT_MS / 1000} s`);
    }
  }
}

async function closePair(pair: StorePair): Promise<void> {
  await Promise.all([pair.ratchet.close().catch(() => undefined), pair.policy.close().catch(() => undefined)]);
}
