/**
 * MTA-STS policy discovery and caching for one process (STS-1, STS-5, STS-6):
 * the cached policy when it is fresh (no network: a map lookup), a TXT id
 * re-check after `recheck`, a fetch when the id changed or nothing is cached.
 * A failed TXT lookup or fetch never removes or shortens an unexpired policy;
 * failures are negative-cached; concurrent deliveries to one domain share one
 * discovery (single flight). ST-5: a cache entry that cannot be read or parsed
 * may hide an enforce policy: the answer is `store-unavailable` (the plugin
 * defers under on_store_error=defer) until a fresh policy replaces the entry
 * or the operator purges it. OPS-5: what the process remembers is bounded in
 * entries and bytes (mta-sts-memory).
 */
import { toALabel } from '../domain';
import type { DnsClient } from '../mx/dns-client';
import { describeFailure } from '../mx/dns-client';
import { fetchPolicyText, type FetchSettings } from './fetch';
import { parsePolicy, parseStsTxtRecords, type MtaStsPolicy } from './policy';
import { BoundedMap } from '../store/bounded-map';
import { DEFAULT_MEMORY_BUDGET_MB, MEMORY_LIMIT, noteBytes, POLICY_SHARE, policyBytes } from './memory';
import type { CachedPolicy, PolicyRead, PolicyStore } from './store';

export { DEFAULT_MEMORY_BUDGET_MB, MEMORY_LIMIT };

export interface MtaStsSettings {
  /** Seconds after which a cached policy's TXT id is checked again. */
  recheckMs: number;
  /** How long a failed discovery is remembered before trying again. */
  negativeTtlMs: number;
  /** Background refresh: how long before expiry a policy is refetched. */
  refreshBeforeMs: number;
  fetch: FetchSettings;
  /** OPS-5: estimated bytes the in-memory maps may hold together (default DEFAULT_MEMORY_BUDGET_MB MiB). */
  memoryBudgetBytes?: number;
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
  /** `failed`: discovery failed (DNS, HTTPS, an invalid policy): a policy may exist; not the same as no record (RT-3). */
  | { kind: 'none'; reason: string; failed?: true }
  /** The cache store could not be asked (Redis down): a policy may exist that we cannot see (ST-4). */
  | { kind: 'store-unavailable'; reason: string };

export type CacheEvent = 'hit' | 'miss' | 'expired' | 'fetched' | 'fetch_error' | 'txt_error' | 'store_error' | 'refresh' | 'dropped';

export interface MtaStsHooks {
  event(e: CacheEvent): void;
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

interface Loaded {
  entry: CachedPolicy;
  policy: MtaStsPolicy;
}

export class MtaStsResolver {
  private readonly inflight = new Map<string, Promise<PolicyDecision>>();
  /** The store's purge generation when the memory was last known current (null: not looked yet). */
  private purges: string | undefined | null = null;
  private readonly negative: BoundedMap<string, { until: number; reason: string }>;
  private readonly absent: BoundedMap<string, number>;
  private readonly memory: BoundedMap<string, Loaded>;

  constructor(
    private readonly dns: DnsClient,
    private readonly store: PolicyStore,
    private readonly settings: () => MtaStsSettings,
    private readonly hooks: MtaStsHooks,
    private readonly now: () => number = Date.now,
    memoryLimit = MEMORY_LIMIT,
  ) {
    const budget = (): number => this.settings().memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_MB * 1024 * 1024;
    const noteShare = (1 - POLICY_SHARE) / 2;
    this.negative = new BoundedMap(
      memoryLimit,
      () => budget() * noteShare,
      (domain, failed) => noteBytes(domain, failed.reason),
    );
    this.absent = new BoundedMap(
      memoryLimit,
      () => budget() * noteShare,
      (domain) => noteBytes(domain),
    );
    this.memory = new BoundedMap(
      memoryLimit,
      () => budget() * POLICY_SHARE,
      (_, loaded) => policyBytes(loaded.entry, loaded.policy),
    );
  }

  /** How many domains each in-memory map holds, and their estimated bytes together (tests, diagnostics). */
  memorySizes(): { policies: number; absent: number; failed: number; bytes: number } {
    return {
      policies: this.memory.size,
      absent: this.absent.size,
      failed: this.negative.size,
      bytes: this.memory.bytes + this.absent.bytes + this.negative.bytes,
    };
  }

  /** The policy to apply to a delivery to `domain` (a lowercase A-label). Never rejects. */
  policyFor(domain: string): Promise<PolicyDecision> {
    const known = this.peek(domain);
    if (known) return Promise.resolve(known);
    const running = this.inflight.get(domain);
    if (running) return running;
    const started = this.resolve(domain).catch((err: unknown): PolicyDecision => {
      this.hooks.log('error', `MTA-STS for ${domain}: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
      return { kind: 'none', reason: `internal error discovering the policy of ${domain}`, failed: true };
    });
    this.inflight.set(domain, started);
    void started.finally(() => this.inflight.delete(domain));
    return started;
  }

  /**
   * What `policyFor` answers from memory alone, without a lookup, a store read
   * or a wait (OPS-6): a cached policy that needs no TXT re-check yet (counted
   * as a hit), or no record found recently; undefined when `policyFor` would
   * have to ask. Synchronous, so a delivery planned from memory needs no await.
   */
  peek(domain: string): PolicyDecision | undefined {
    const now = this.now();
    this.followPurges();
    const loaded = this.memory.get(domain);
    if (loaded && loaded.entry.expiresAt > now && now - loaded.entry.checkedAt < this.settings().recheckMs) {
      this.hooks.event('hit');
      return decision(loaded, 'cache');
    }
    const absentUntil = this.absent.get(domain);
    if (absentUntil !== undefined && absentUntil > now && !loaded) {
      return { kind: 'none', reason: `no MTA-STS record for ${domain} (checked recently)` };
    }
    return undefined;
  }

  /** OPS-6: a purge by any process (the CLI) empties what this process remembers: one cheap check per delivery. */
  private followPurges(): void {
    let generation: string | undefined;
    try {
      generation = this.store.purgeGeneration?.();
    } catch {
      generation = undefined; // the store's own reads will say what is wrong
    }
    if (generation === this.purges) return;
    if (this.purges !== null) this.memory.clear();
    this.purges = generation;
  }

  /** Forgets what this process remembers of a domain (after a CLI purge, tests). */
  forget(domain?: string): void {
    for (const map of [this.memory, this.negative, this.absent]) {
      if (domain === undefined) map.clear();
      else map.delete(domain);
    }
  }

  /**
   * The cached policy, or that there is none, or why the entry that is there
   * cannot be used (ST-5). Rejects when the store cannot be asked at all.
   */
  private async load(domain: string): Promise<CacheRead> {
    const read = await this.store.get(domain);
    if (read.kind === 'none') return { kind: 'none' };
    const usable = usableEntry(read);
    if (usable.ok) return { kind: 'loaded', loaded: { entry: usable.entry, policy: usable.policy } };
    const why = usable.why;
    this.hooks.event('store_error');
    this.hooks.log('error', `MTA-STS cache entry for ${domain} ${why}`);
    return { kind: 'corrupt', why };
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
    let read: CacheRead;
    try {
      read = await this.load(domain);
    } catch (err) {
      this.hooks.event('store_error');
      const remembered = this.memory.get(domain);
      if (remembered && remembered.entry.expiresAt > now) return decision(remembered, 'kept');
      return { kind: 'store-unavailable', reason: `MTA-STS cache (${this.store.description}) unavailable: ${(err as Error).message}` };
    }
    // ST-5: an entry we cannot read may hide an enforce policy. What this process still
    // remembers of it stands in; without that, only a fresh policy (or a purge) clears it.
    let hidden: string | null = null;
    let cached: Loaded | null = read.kind === 'loaded' ? read.loaded : null;
    if (read.kind === 'corrupt') {
      cached = this.memory.get(domain) ?? null;
      if (!cached) hidden = hiddenPolicyReason(domain, read.why);
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
      if (hidden) return { kind: 'store-unavailable', reason: `${hidden}; discovery failed recently: ${failed.reason}` };
      return live
        ? decision(live, 'kept')
        : { kind: 'none', reason: `MTA-STS discovery for ${domain} failed recently: ${failed.reason}`, failed: true };
    }
    return this.discover(domain, live, now, settings, null, hidden);
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
    hidden: string | null = null,
  ): Promise<PolicyDecision> {
    const usedAt = refresh && live ? live.entry.usedAt : now;
    const forceFetch = refresh?.forceFetch === true;
    const fail = (reason: string, event: CacheEvent): PolicyDecision => {
      this.hooks.event(event);
      this.negative.set(domain, { until: now + settings.negativeTtlMs, reason });
      this.hooks.log('warn', `MTA-STS for ${domain}: ${reason}${live ? `; keeping the cached policy (id ${live.entry.id})` : ''}`);
      if (hidden) return { kind: 'store-unavailable', reason: `${hidden}; ${reason}` };
      return live ? decision(live, 'kept') : { kind: 'none', reason, failed: true };
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
      // RFC 8461 §3.3 again: a policy hidden by an unreadable entry may still be in force.
      if (hidden) return { kind: 'store-unavailable', reason: `${hidden}; no policy record to fetch a fresh one (${record.reason})` };
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
    if (hidden) this.hooks.log('info', `MTA-STS cache entry for ${domain} replaced by a fresh policy (it was ${hidden.split(': ')[0]})`);
    this.hooks.log(
      'info',
      `MTA-STS policy of ${domain} fetched: id ${record.id}, mode ${parsed.policy.mode}, max_age ${parsed.policy.maxAge}, mx ${parsed.policy.mx.map((m) => m.text).join(' ')}`,
    );
    return decision(loaded, 'fetched');
  }

  /**
   * STS-6: one background pass over the cache. Drops entries unused for longer
   * than their max_age; re-checks the id of the others and refetches when the
   * id changed or expiry is near. ST-5: an entry that is unreadable or holds an
   * invalid policy is refetched and replaced (never dropped: it may hide an
   * enforce policy). `concurrency` bounds parallel domains.
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
        if (item.read.kind === 'none') continue;
        const now = this.now();
        const usable = usableEntry(item.read);
        if (item.read.kind === 'entry') {
          const entry = item.read.entry;
          const maxAgeMs = entry.expiresAt - entry.fetchedAt;
          if (now - entry.usedAt > maxAgeMs || entry.expiresAt <= now) {
            await this.store.delete(item.domain).catch(() => undefined);
            this.memory.delete(item.domain);
            this.hooks.event('dropped');
            stats.dropped++;
            continue;
          }
        }
        if (!usable.ok) {
          stats.checked++;
          if (await this.repair(item.domain, usable.why, now, settings)) {
            stats.refreshed++;
            this.hooks.event('refresh');
          }
          continue;
        }
        const entry = usable.entry;
        const maxAgeMs = entry.expiresAt - entry.fetchedAt;
        // Near expiry: within refresh_before, or past half the lifetime of a short-lived policy.
        const nearExpiry = entry.expiresAt - now <= Math.min(settings.refreshBeforeMs, maxAgeMs / 2);
        if (!nearExpiry && now - entry.checkedAt < settings.recheckMs) continue;
        stats.checked++;
        const before = entry.fetchedAt;
        const read = await this.load(item.domain).catch(() => null);
        if (read?.kind !== 'loaded') continue;
        const loaded = read.loaded;
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

  /**
   * ST-5 in the background: fetches a fresh policy for a domain whose cached
   * entry cannot be used (`why`), so the entry is replaced before a delivery
   * has to wait for it. True when it was replaced. A file name that is not a
   * domain is never fetched; a recent failure is not retried before its time.
   */
  private async repair(domain: string, why: string, now: number, settings: MtaStsSettings): Promise<boolean> {
    const name = toALabel(domain);
    if (!name.ok || name.aLabel !== domain) return false;
    const failed = this.negative.get(domain);
    if (failed && failed.until > now) return false;
    const remembered = this.memory.get(domain);
    const live = remembered && remembered.entry.expiresAt > now ? remembered : null;
    const hidden = live ? null : hiddenPolicyReason(domain, why);
    const decided = await this.discover(domain, live, now, settings, { forceFetch: true }, hidden);
    return decided.kind === 'policy' && decided.source === 'fetched';
  }
}

type CacheRead = { kind: 'none' } | { kind: 'loaded'; loaded: Loaded } | { kind: 'corrupt'; why: string };

/**
 * ST-5: a cached entry with its parsed policy, or why it cannot be used: it is
 * unreadable, or holds a policy that does not parse (`why`, as the log says it).
 */
export function usableEntry(
  read: Exclude<PolicyRead, { kind: 'none' }>,
): { ok: true; entry: CachedPolicy; policy: MtaStsPolicy } | { ok: false; problem: 'unreadable' | 'invalid'; why: string } {
  if (read.kind === 'unreadable') return { ok: false, problem: 'unreadable', why: `unreadable: ${read.reason}` };
  const parsed = parsePolicy(read.entry.text);
  if (!parsed.ok) return { ok: false, problem: 'invalid', why: `holds an invalid policy: ${parsed.error}` };
  return { ok: true, entry: read.entry, policy: parsed.policy };
}

/** ST-5: why a delivery waits, and how it stops waiting. */
export function hiddenPolicyReason(domain: string, why: string): string {
  return (
    `MTA-STS cache entry for ${domain} ${why}: it may hide an enforce policy, so delivery waits until a fresh policy ` +
    `is fetched or the entry is purged (haraka-outbound policy purge ${domain})`
  );
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
