/**
 * DANE-1: whether DANE is in effect in this process. DANE needs a resolver
 * that validates DNSSEC and whose AD bit can be believed; the check runs at
 * startup and every `check_interval`. While it fails, DANE is "not in effect":
 * the reason is logged once per change, exported as a metric, shown by the
 * CLI, and no delivery is deferred because of DANE.
 */
import type { DaneConfig } from '../config/outbound-mx';
import type { DnsTransport } from '../dns/wire';
import { checkResolverValidates, type ResolverCheck } from './lookup';

export type DaneStatusState = { kind: 'off' } | { kind: 'checking' } | { kind: 'in-effect' } | { kind: 'not-in-effect'; reason: string };

export class DaneStatus {
  private state: DaneStatusState;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private first: Promise<void> | undefined;

  constructor(
    private readonly transport: DnsTransport,
    private readonly config: DaneConfig,
    private readonly trustAd: boolean,
    private readonly report: (state: DaneStatusState, previous: DaneStatusState) => void,
  ) {
    this.state = config.mode === 'off' ? { kind: 'off' } : { kind: 'checking' };
  }

  get current(): DaneStatusState {
    return this.state;
  }

  get inEffect(): boolean {
    return this.state.kind === 'in-effect';
  }

  /** Runs the first check now and schedules the next ones; resolves after the first. */
  start(): Promise<void> {
    if (this.config.mode === 'off') {
      this.report(this.state, this.state);
      this.first = Promise.resolve();
    } else {
      this.first = this.check().then(() => undefined);
    }
    return this.first;
  }

  /** Resolves once the first check is done: deliveries wait for it rather than go out before DANE is known. */
  ready(): Promise<void> {
    return this.first ?? Promise.resolve();
  }

  async check(): Promise<ResolverCheck | undefined> {
    if (this.stopped || this.config.mode === 'off') return undefined;
    let result: ResolverCheck;
    try {
      result = await checkResolverValidates(this.transport, this.config.probe, this.trustAd);
    } catch (err) {
      result = { kind: 'not-validating', reason: `resolver check failed: ${(err as Error).message}` };
    }
    if (this.stopped) return result;
    const next: DaneStatusState = result.kind === 'validating' ? { kind: 'in-effect' } : { kind: 'not-in-effect', reason: result.reason };
    const previous = this.state;
    this.state = next;
    if (
      previous.kind !== next.kind ||
      (previous.kind === 'not-in-effect' && next.kind === 'not-in-effect' && previous.reason !== next.reason)
    ) {
      this.report(next, previous);
    }
    this.timer = setTimeout(() => void this.check(), this.config.checkIntervalMs);
    this.timer.unref();
    return result;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
