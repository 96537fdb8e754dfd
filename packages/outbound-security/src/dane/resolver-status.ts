/**
 * DANE-1, DANE-8: whether DANE is in effect in this process. DANE needs a
 * resolver the admin declares validating (`[dane] trusted_resolvers`) that
 * answers a signed name with the AD bit; the check runs at startup (deliveries
 * wait for it) and every `check_interval`.
 *
 * - No declared resolver (or a server asked that is not declared): "not in
 *   effect" at once, without a query: an undeclared AD bit is never believed.
 * - AD on the probe's answer: in effect, at the first such answer.
 * - A check that gets no usable answer (timeout, network error, SERVFAIL):
 *   *unknown*. Nothing is learnt about validation: DANE candidate hosts are
 *   skipped (transient), never used without DANE, and the check is repeated
 *   sooner (backing off from UNKNOWN_RECHECK_FIRST_MS up to
 *   UNKNOWN_RECHECK_MAX_MS, never later than check_interval).
 * - An answer without AD: unknown too, until NOT_VALIDATING_AFTER such answers
 *   in a row (failures in between neither count nor reset); then "not in
 *   effect", and nothing is deferred because of DANE.
 * Each change of state is reported once (a new reason for "not in effect" too).
 */
import type { ResolverTrust } from '../dns/resolver-trust';
import type { DnsTransport } from '../dns/wire';
import { checkResolverValidates, type ResolverCheck } from './lookup';

/** DANE-1, DANE-6, DANE-8: `[dane]` of outbound_mx.ini. */
export interface DaneConfig {
  mode: 'on' | 'observe' | 'off';
  /** DANE-8: the resolvers the admin declares validating: the only ones whose AD bit is believed. */
  trustedResolvers: string[];
  /** DANE-8: whether every server asked (`[dns] servers`, else the system's) is declared, and if not why. */
  resolvers: ResolverTrust;
  /** The signed name the resolver check asks for (SOA, DO): the root by default. */
  probe: string;
  checkIntervalMs: number;
}

/** Definite answers without AD in a row that take DANE out of effect. */
export const NOT_VALIDATING_AFTER = 3;
/** The first recheck while the status is unknown; each next one waits twice as long. */
export const UNKNOWN_RECHECK_FIRST_MS = 2_000;
export const UNKNOWN_RECHECK_MAX_MS = 60_000;

export type DaneStatusState =
  | { kind: 'off' }
  | { kind: 'checking' }
  | { kind: 'in-effect' }
  /** DANE-8: whether the resolver validates is not known now: DANE candidate hosts are skipped. */
  | { kind: 'unknown'; reason: string }
  /** `undeclared`: no resolver's AD bit is believed (configuration); `not-validating`: the declared resolver answers without AD. */
  | { kind: 'not-in-effect'; cause: 'undeclared' | 'not-validating'; reason: string };

export interface DaneStatusOptions {
  /** Default NOT_VALIDATING_AFTER; the CLI's one-shot check uses 1. */
  notValidatingAfter?: number;
  unknownRecheckFirstMs?: number;
  unknownRecheckMaxMs?: number;
  /** Sees the result of each check made (metrics). */
  onCheck?(result: ResolverCheck['kind']): void;
}

export class DaneStatus {
  private state: DaneStatusState;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private first: Promise<void> | undefined;
  /** Definite answers without AD since the last one with AD. */
  private withoutAd = 0;
  /** Checks in a row that left the status unknown (the backoff exponent). */
  private unknownChecks = 0;
  private nextDelayMs: number | undefined;

  constructor(
    private readonly transport: DnsTransport,
    private readonly config: DaneConfig,
    private readonly report: (state: DaneStatusState, previous: DaneStatusState) => void,
    private readonly options: DaneStatusOptions = {},
  ) {
    this.state = config.mode === 'off' ? { kind: 'off' } : { kind: 'checking' };
  }

  get current(): DaneStatusState {
    return this.state;
  }

  get inEffect(): boolean {
    return this.state.kind === 'in-effect';
  }

  /** Milliseconds until the scheduled check, as scheduled; undefined when none is. */
  get nextCheckInMs(): number | undefined {
    return this.nextDelayMs;
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
    const trust = this.config.resolvers;
    if (trust.kind === 'undeclared') {
      // Configuration, not the resolver: asking would teach nothing; a reload builds a new status.
      this.move({ kind: 'not-in-effect', cause: 'undeclared', reason: trust.reason });
      return undefined;
    }
    let result: ResolverCheck;
    try {
      result = await checkResolverValidates(this.transport, this.config.probe);
    } catch (err) {
      result = { kind: 'unknown', reason: `resolver check failed: ${(err as Error).message}` };
    }
    if (this.stopped) return result;
    this.options.onCheck?.(result.kind);
    this.move(this.after(result));
    this.schedule();
    return result;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.nextDelayMs = undefined;
  }

  /** The state a check's result leads to from the current one. */
  private after(result: ResolverCheck): DaneStatusState {
    const threshold = this.options.notValidatingAfter ?? NOT_VALIDATING_AFTER;
    switch (result.kind) {
      case 'validating':
        this.withoutAd = 0;
        return { kind: 'in-effect' };
      case 'unknown':
        // Out of effect stays out: a failed check is no reason to believe the resolver again.
        return this.state.kind === 'not-in-effect' ? this.state : { kind: 'unknown', reason: result.reason };
      case 'not-validating':
        this.withoutAd++;
        if (this.withoutAd >= threshold) {
          const reason = threshold > 1 ? `${result.reason}, ${threshold} times in a row` : result.reason;
          return { kind: 'not-in-effect', cause: 'not-validating', reason };
        }
        return {
          kind: 'unknown',
          reason: `${result.reason} (${this.withoutAd} of ${threshold} such answers in a row before DANE goes out of effect)`,
        };
    }
  }

  private move(next: DaneStatusState): void {
    const previous = this.state;
    this.state = next;
    const changed =
      previous.kind !== next.kind ||
      (previous.kind === 'not-in-effect' && next.kind === 'not-in-effect' && previous.reason !== next.reason);
    if (changed) this.report(next, previous);
  }

  private schedule(): void {
    if (this.stopped) return;
    let delay = this.config.checkIntervalMs;
    if (this.state.kind === 'unknown') {
      const first = this.options.unknownRecheckFirstMs ?? UNKNOWN_RECHECK_FIRST_MS;
      const max = this.options.unknownRecheckMaxMs ?? UNKNOWN_RECHECK_MAX_MS;
      delay = Math.min(first * 2 ** this.unknownChecks, max, this.config.checkIntervalMs);
      this.unknownChecks++;
    } else {
      this.unknownChecks = 0;
    }
    if (this.timer) clearTimeout(this.timer);
    this.nextDelayMs = delay;
    this.timer = setTimeout(() => void this.check(), delay);
    this.timer.unref();
  }
}
