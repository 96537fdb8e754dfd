/**
 * MTA-STS policy discovery and caching for one process (STS-1, STS-5, STS-6):
 * the cached policy when it is fresh (no network: a map lookup), a TXT id
 * re-check after `recheck`, a fetch when the id changed or nothing is cached.
 * A failed TXT lookup or fetch never removes or shortens an unexpired policy;
 * failures are negative-cached; concurrent deliveries to one domain share one
 * discovery (single flight).
 */
import type { DnsClient } from './dns-client';
import { describeFailure } from './dns-client';
import { fetchPolicyText, type FetchSettings } from './mta-sts-fetch';
import { parsePolicy, parseStsTxtRecords, type MtaStsPolicy } from './mta-sts-policy';
import type { CachedPolicy, PolicyStore } from './policy-store';

export interface MtaStsSettings {
  /** Seconds after which a cached policy's TXT id is checked again. */
  recheckMs: number;
  /** How long a failed discovery is remembered before trying again. */
  negativeTtlMs: number;
  /** Background refresh: how long before expiry a policy is refetched. */
  refreshBeforeMs: number;
  fetch: FetchSettings;
}

export type PolicyDecision =
  | {
      kind: 'policy';
      domain: string;
      id: string;
      policy: MtaStsPolicy;
      expiresAt: number;
      source: 'cache' | 'checked' | 'fetched' | 'kept';
    }
  | { kind: 'none'; reason: string }
  /** The cache store could not be asked (Redis down): a policy may exist that we cannot see (ST-4). */
  | { kind: 'store-unavailable'; reason: string };

export type CacheEvent = 'hit' | 'miss' | 'expired' | 'fetched' | 'fetch_error' | 'txt_error' | 'store_error' | 'refresh' | 'dropped';

export interface MtaStsHooks {
  event(e: CacheEvent): void;
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

/** Domains remembered per process, for each of the in-memory maps; the oldest go first. */
export const MEMORY_LIMIT = 50_000;

/** A Map that forgets its oldest entries beyond `limit`, so memory stays bounded whatever the traffic. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }
  override set(key: K, value: V): this {
    if (this.has(key)) this.delete(key); // refreshed entries move to the young end
    super.set(key, value);
    while (this.size > this.limit) {
      const oldest = this.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    return this;
  }
}

interface Loaded {
  entry: CachedPolicy;
  policy: MtaStsPolicy;
}

export class MtaStsResolver {
  private readonly inflight = new Map<string, Promise<PolicyDecision>>();
  private readonly negative: Map<string, { until: number; reason: string }>;
  private readonly absent: Map<string, number>;
  private readonly memory: Map<string, Loaded>;

  constructor(
    private readonly dns: DnsClient,
    private readonly store: PolicyStore,
    private readonly settings: () => MtaStsSettings,
    private readonly hooks: MtaStsHooks,
    private readonly now: () => number = Date.now,
    memoryLimit = MEMORY_LIMIT,
  ) {
    this.negative = new BoundedMap(memoryLimit);
    this.absent = new BoundedMap(memoryLimit);
    this.memory = new BoundedMap(memoryLimit);
  }

  /** How many domains each in-memory map holds (tests, diagnostics). */
  memorySizes(): { policies: number; absent: number; failed: number } {
    return { policies: this.memory.size, absent: this.absent.size, failed: this.negative.size };
  }

  /** The policy to apply to a delivery to `domain` (a lowercase A-label). Never rejects. */
  policyFor(domain: string): Promise<PolicyDecision> {
    const now = this.now();
    const loaded = this.memory.get(domain);
    if (loaded && loaded.entry.expiresAt > now && now - loaded.entry.checkedAt < this.settings().recheckMs) {
      this.hooks.event('hit');
      return Promise.resolve(decision(loaded, 'cache'));
    }
    const absentUntil = this.absent.get(domain);
    if (absentUntil !== undefined && absentUntil > now && !loaded) {
      return Promise.resolve({ kind: 'none', reason: `no MTA-STS record for ${domain} (checked recently)` });
    }
    const running = this.inflight.get(domain);
    if (running) return running;
    const started = this.resolve(domain).catch((err: unknown): PolicyDecision => {
      this.hooks.log('error', `MTA-STS for ${domain}: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
      return { kind: 'none', reason: `internal error discovering the policy of ${domain}` };
    });
    this.inflight.set(domain, started);
    void started.finally(() => this.inflight.delete(domain));
    return started;
  }

  /** Forgets what this process remembers of a domain (after a CLI purge, tests). */
  forget(domain?: string): void {
    for (const map of [this.memory, this.negative, this.absent]) {
      if (domain === undefined) map.clear();
      else map.delete(domain);
    }
  }

  /** The cached policy (null: none or corrupt). Rejects when the store cannot be asked at all. */
  private async load(domain: string): Promise<Loaded | null> {
    const read = await this.store.get(domain);
    if (read.kind === 'none') return null;
    if (read.kind === 'unreadable') {
      this.hooks.event('store_error');
      this.hooks.log('error', `MTA-STS cache entry for ${domain} unreadable, ignoring it: ${read.reason}`);
      return this.memory.get(domain) ?? null;
    }
    const parsed = parsePolicy(read.entry.text);
    if (!parsed.ok) {
      this.hooks.event('store_error');
      this.hooks.log('error', `MTA-STS cache entry for ${domain} holds an invalid policy, ignoring it: ${parsed.error}`);
      return null;
    }
    return { entry: read.entry, policy: parsed.policy };
  }

  private async save(loaded: Loaded): Promise<void> {
    this.memory.set(loaded.entry.domain, loaded);
    try {
      await this.store.put(loaded.entry);
    } catch (err) {
      this.hooks.event('store_error');
      this.hooks.log('error', `MTA-STS cache for ${loaded.entry.domain} not saved: ${(err as Error).message}`);
    }
  }

  private async resolve(domain: string): Promise<PolicyDecision> {
    const now = this.now();
    const settings = this.settings();
    let cached: Loaded | null;
    try {
      cached = await this.load(domain);
    } catch (err) {
      this.hooks.event('store_error');
      const remembered = this.memory.get(domain);
      if (remembered && remembered.entry.expiresAt > now) return decision(remembered, 'kept');
      return { kind: 'store-unavailable', reason: `MTA-STS cache (${this.store.description}) unavailable: ${(err as Error).message}` };
    }
    const live = cached && cached.entry.expiresAt > now ? cached : null;
    if (cached && !live) this.hooks.event('expired');
    if (!live) this.memory.delete(domain);
    if (live && now - live.entry.checkedAt < settings.recheckMs) {
      this.memory.set(domain, live);
      this.hooks.event('hit');
      return decision(live, 'cache');
    }
    const failed = this.negative.get(domain);
    if (failed && failed.until > now) {
      return live ? decision(live, 'kept') : { kind: 'none', reason: `MTA-STS discovery for ${domain} failed recently: ${failed.reason}` };
    }
    return this.discover(domain, live, now, settings);
  }

  /**
   * TXT check, then a fetch when needed. `live` is the unexpired cached policy,
   * if any. `refresh` (STS-6) forces a fetch when `forceFetch` and does not
   * count as a use of the policy.
   */
  private async discover(
    domain: string,
    live: Loaded | null,
    now: number,
    settings: MtaStsSettings,
    refresh: { forceFetch: boolean } | null = null,
  ): Promise<PolicyDecision> {
    const usedAt = refresh && live ? live.entry.usedAt : now;
    const forceFetch = refresh?.forceFetch === true;
    const fail = (reason: string, event: CacheEvent): PolicyDecision => {
      this.hooks.event(event);
      this.negative.set(domain, { until: now + settings.negativeTtlMs, reason });
      this.hooks.log('warn', `MTA-STS for ${domain}: ${reason}${live ? `; keeping the cached policy (id ${live.entry.id})` : ''}`);
      return live ? decision(live, 'kept') : { kind: 'none', reason };
    };
    const txt = await this.dns.txt(`_mta-sts.${domain}`);
    if (txt.kind === 'failure') return fail(`TXT lookup of _mta-sts.${domain} failed: ${describeFailure(txt)}`, 'txt_error');
    const record = txt.kind === 'answer' ? parseStsTxtRecords(txt.records) : { kind: 'none' as const, reason: 'no TXT record' };
    if (record.kind === 'none') {
      if (live) {
        // RFC 8461 §3.3: a cached policy stays in force until it expires, record or not.
        await this.save({ ...live, entry: { ...live.entry, checkedAt: now, usedAt } });
        return decision(live, 'kept');
      }
      this.hooks.event('miss');
      this.absent.set(domain, now + settings.recheckMs);
      return { kind: 'none', reason: `no MTA-STS policy record for ${domain} (${record.reason})` };
    }
    if (live && live.entry.id === record.id && !forceFetch) {
      const checked = { ...live, entry: { ...live.entry, checkedAt: now, usedAt } };
      await this.save(checked);
      this.hooks.event('hit');
      return decision(checked, 'checked');
    }
    if (!live) this.hooks.event('miss');
    const fetched = await fetchPolicyText(domain, this.dns, settings.fetch);
    if (!fetched.ok) return fail(`policy fetch failed: ${fetched.error}`, 'fetch_error');
    const parsed = parsePolicy(fetched.text);
    if (!parsed.ok) return fail(`policy at https://mta-sts.${domain}/.well-known/mta-sts.txt is invalid: ${parsed.error}`, 'fetch_error');
    for (const warning of parsed.warnings) this.hooks.log('warn', `MTA-STS policy of ${domain}: ${warning}`);
    this.negative.delete(domain);
    this.absent.delete(domain);
    const entry: CachedPolicy = {
      domain,
      id: record.id,
      text: fetched.text,
      fetchedAt: now,
      expiresAt: now + parsed.policy.maxAge * 1000,
      checkedAt: now,
      usedAt,
    };
    const loaded = { entry, policy: parsed.policy };
    await this.save(loaded);
    this.hooks.event('fetched');
    this.hooks.log(
      'info',
      `MTA-STS policy of ${domain} fetched: id ${record.id}, mode ${parsed.policy.mode}, max_age ${parsed.policy.maxAge}, mx ${parsed.policy.mx.map((m) => m.text).join(' ')}`,
    );
    return decision(loaded, 'fetched');
  }

  /**
   * STS-6: one background pass over the cache. Drops entries unused for longer
   * than their max_age; re-checks the id of the others and refetches when the
   * id changed or expiry is near. `concurrency` bounds parallel domains.
   */
  async refreshAll(concurrency = 4): Promise<{ checked: number; refreshed: number; dropped: number }> {
    const settings = this.settings();
    const entries = await this.store.list();
    const stats = { checked: 0, refreshed: 0, dropped: 0 };
    let index = 0;
    const work = async (): Promise<void> => {
      for (;;) {
        const item = entries[index++];
        if (!item) return;
        if (item.read.kind !== 'entry') continue;
        const entry = item.read.entry;
        const now = this.now();
        const maxAgeMs = entry.expiresAt - entry.fetchedAt;
        if (now - entry.usedAt > maxAgeMs || entry.expiresAt <= now) {
          await this.store.delete(item.domain).catch(() => undefined);
          this.memory.delete(item.domain);
          this.hooks.event('dropped');
          stats.dropped++;
          continue;
        }
        // Near expiry: within refresh_before, or past half the lifetime of a short-lived policy.
        const nearExpiry = entry.expiresAt - now <= Math.min(settings.refreshBeforeMs, maxAgeMs / 2);
        if (!nearExpiry && now - entry.checkedAt < settings.recheckMs) continue;
        stats.checked++;
        const before = entry.fetchedAt;
        const loaded = await this.load(item.domain).catch(() => null);
        if (!loaded) continue;
        this.negative.delete(item.domain);
        // Near expiry the policy is fetched again even when its id did not change.
        await this.discover(item.domain, loaded, now, settings, { forceFetch: nearExpiry });
        const after = this.memory.get(item.domain);
        if (after && after.entry.fetchedAt !== before) {
          stats.refreshed++;
          this.hooks.event('refresh');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, () => work()));
    return stats;
  }
}

function decision(loaded: Loaded, source: 'cache' | 'checked' | 'fetched' | 'kept'): PolicyDecision {
  return {
    kind: 'policy',
    domain: loaded.entry.domain,
    id: loaded.entry.id,
    policy: loaded.policy,
    expiresAt: loaded.entry.expiresAt,
    source,
  };
}
