/**
 * A TLS report store in this process's memory: for one Haraka process
 * without `data_dir` sharing, and for tests of the recorder and the
 * scheduler. Same contract as the file and Redis stores (store.ts); nothing
 * survives a restart.
 */
import { failureKey, isDay } from './record';
import { CountsBuilder, checkKeys, isToken, type CountEntry, type DeliveryState, type DomainCounts, type TlsReportStore } from './store';
import type { ReportedPolicy } from './record';

interface DomainDay {
  policies: Map<string, ReportedPolicy>;
  /** `policyId\n` for successes, `policyId\nfailureKey` for failures → count. */
  counts: Map<string, { policyId: string; failure?: CountEntry['failure']; count: number }>;
  delivery?: DeliveryState;
  lock?: { holder: string; expiresAt: number };
}

export class MemoryTlsReportStore implements TlsReportStore {
  readonly description = 'memory';
  private readonly days_ = new Map<string, Map<string, DomainDay>>();

  constructor(private readonly now: () => number = Date.now) {}

  private slot(day: string, policyDomain: string, create: true): DomainDay;
  private slot(day: string, policyDomain: string, create: false): DomainDay | undefined;
  private slot(day: string, policyDomain: string, create: boolean): DomainDay | undefined {
    checkKeys(day, policyDomain);
    let domains = this.days_.get(day);
    if (!domains) {
      if (!create) return undefined;
      domains = new Map();
      this.days_.set(day, domains);
    }
    let slot = domains.get(policyDomain);
    if (!slot && create) {
      slot = { policies: new Map(), counts: new Map() };
      domains.set(policyDomain, slot);
    }
    return slot;
  }

  async add(entries: readonly CountEntry[]): Promise<void> {
    for (const entry of entries) checkKeys(entry.day, entry.policyDomain);
    for (const { day, policyDomain, policy, failure, count } of entries) {
      const slot = this.slot(day, policyDomain, true);
      if (!slot.policies.has(policy.id)) slot.policies.set(policy.id, policy);
      const key = `${policy.id}\n${failure ? failureKey(failure) : ''}`;
      const known = slot.counts.get(key);
      if (known) known.count += count;
      else slot.counts.set(key, { policyId: policy.id, ...(failure ? { failure } : {}), count });
    }
  }

  async days(): Promise<string[]> {
    return [...this.days_.keys()].filter(isDay).sort();
  }

  async domains(day: string): Promise<string[]> {
    return [...(this.days_.get(day)?.keys() ?? [])].sort();
  }

  async counts(day: string, policyDomain: string): Promise<DomainCounts> {
    const slot = this.slot(day, policyDomain, false);
    const builder = new CountsBuilder(day, policyDomain);
    for (const policy of slot?.policies.values() ?? []) builder.addPolicy(policy);
    for (const { policyId, failure, count } of slot?.counts.values() ?? []) {
      builder.addCount(policyId, count, failure ? { key: failureKey(failure), details: failure } : undefined);
    }
    return builder.build();
  }

  async delivery(day: string, policyDomain: string): Promise<DeliveryState | null> {
    const state = this.slot(day, policyDomain, false)?.delivery;
    return state ? structuredClone(state) : null;
  }

  async startDelivery(day: string, policyDomain: string, initial: DeliveryState): Promise<DeliveryState> {
    const slot = this.slot(day, policyDomain, true);
    slot.delivery ??= structuredClone(initial);
    return structuredClone(slot.delivery);
  }

  async saveDelivery(day: string, policyDomain: string, state: DeliveryState): Promise<void> {
    this.slot(day, policyDomain, true).delivery = structuredClone(state);
  }

  async lock(day: string, policyDomain: string, holder: string, ttlMs: number): Promise<boolean> {
    if (!isToken(holder)) throw new Error(`tlsrpt store: invalid lock holder "${holder.slice(0, 40)}"`);
    const slot = this.slot(day, policyDomain, true);
    const now = this.now();
    if (slot.lock && slot.lock.expiresAt > now && slot.lock.holder !== holder) return false;
    slot.lock = { holder, expiresAt: now + ttlMs };
    return true;
  }

  async unlock(day: string, policyDomain: string, holder: string): Promise<void> {
    const slot = this.slot(day, policyDomain, false);
    if (slot?.lock?.holder === holder) delete slot.lock;
  }

  async prune(beforeDay: string): Promise<number> {
    let removed = 0;
    for (const day of [...this.days_.keys()]) {
      if (day < beforeDay) {
        this.days_.delete(day);
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {}
}
