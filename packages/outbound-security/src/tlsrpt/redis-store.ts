/**
 * The TLS report store in Redis (RPT-1, RPT-3, ST-3), shared by every Haraka
 * process on every machine. Keys, under the plugins' prefix `P`:
 *
 *     P tlsrpt:days                        sorted set: day → its start (ms)
 *     P tlsrpt:<day>:domains               set of Policy Domains with counts
 *     P tlsrpt:<day>:<domain>:counts       hash: "s\t<policy id>" and "f\t<policy id>\t<failure key>" → sessions
 *     P tlsrpt:<day>:<domain>:policies     hash: policy id → the policy as JSON
 *     P tlsrpt:<day>:<domain>:delivery     string: the delivery state (JSON)
 *     P tlsrpt:<day>:<domain>:lock         string: the send lock's holder, with a PX time to live
 *
 * - Counting is HINCRBY: additions from any number of processes sum up on the
 *   server. One (day, domain) group of a batch is one script run, so it is
 *   added whole or not at all; a failed `add` names the groups it did not add.
 * - Every key of a day expires RETENTION_DAYS after the day ends (EXPIREAT,
 *   set again at each write), so nothing needs pruning; `prune` only trims
 *   the days index (a few bytes per day, without a time to live). Redis 6 or
 *   later.
 * - The delivery state is created with SET NX (first writer wins); the lock is
 *   SET NX PX, released by a script that deletes it only for its holder.
 */
import { failureKey, isDay, parseFailureKey, reportedPolicy, dayStart, type ReportedPolicy } from './record';
import { CountsBuilder, PartialAddError, RETENTION_DAYS, checkKeys, isToken, parseDeliveryState } from './store';
import type { CountEntry, DeliveryState, DomainCounts, TlsReportStore } from './store';
import type { RedisConnection } from '../store/redis-connection';

const DAY_MS = 86_400_000;

/**
 * KEYS: counts, policies, domains, days. ARGV: expire-at (s), day, day start (ms), domain,
 * number of policies P, then P × (id, JSON), then (field, increment) pairs.
 */
const ADD_SCRIPT = `
local expireAt = ARGV[1]
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIREAT', KEYS[3], expireAt)
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIREAT', KEYS[2], expireAt)
while i <= #ARGV do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIREAT', KEYS[1], expireAt)
return 1
`;

/** KEYS[1] = the sorted set, or the set. Returns its members. */
const MEMBERS_SCRIPT = `
if redis.call('TYPE', KEYS[1])['ok'] == 'zset' then return redis.call('ZRANGE', KEYS[1], 0, -1) end
return redis.call('SMEMBERS', KEYS[1])
`;

/** KEYS[1] = delivery; ARGV = JSON, expire-at (s), 'NX' or 'ALWAYS'. Returns the stored JSON. */
const DELIVERY_SCRIPT = `
if ARGV[3] == 'NX' then
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return redis.call('GET', KEYS[1])
`;

/** KEYS[1] = lock; ARGV = holder, ttl (ms). 1 when taken or extended by its holder. */
const LOCK_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS[1] = lock; ARGV[1] = holder. Deletes it only for its holder. */
const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** KEYS[1] = days; ARGV[1] = the first day's start (ms) kept. */
const PRUNE_SCRIPT = `return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])`;

export class RedisTlsReportStore implements TlsReportStore {
  readonly description: string;
  private readonly base: string;

  constructor(
    private readonly connection: RedisConnection,
    prefix: string,
  ) {
    this.base = `${prefix}tlsrpt:`;
    this.description = `${connection.description} (keys ${this.base}*)`;
  }

  private key(day: string, policyDomain: string, kind: 'counts' | 'policies' | 'delivery' | 'lock'): string {
    checkKeys(day, policyDomain);
    return `${this.base}${day}:${policyDomain}:${kind}`;
  }

  private run<T>(what: string, script: string, keys: string[], args: string[]): Promise<T> {
    return this.connection.run(what, (c) => c.eval(script, { keys, arguments: args }) as Promise<T>);
  }

  async add(entries: readonly CountEntry[]): Promise<void> {
    const groups = new Map<string, CountEntry[]>();
    for (const entry of entries) {
      checkKeys(entry.day, entry.policyDomain);
      const group = `${entry.day} ${entry.policyDomain}`;
      groups.set(group, [...(groups.get(group) ?? []), entry]);
    }
    const list = [...groups.values()];
    const results = await Promise.allSettled(list.map((group) => this.addGroup(group)));
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ group: list[i] as CountEntry[], reason: r.reason as Error }] : [],
    );
    if (failed.length === 0) return;
    const first = failed[0]?.reason;
    const message = `${failed.length} of ${list.length} (day, domain) groups not added: ${first?.message ?? 'unknown error'}`;
    throw new PartialAddError(
      message,
      failed.flatMap((f) => f.group),
      { cause: first },
    );
  }

  private addGroup(group: CountEntry[]): Promise<unknown> {
    const { day, policyDomain } = group[0] as CountEntry;
    const start = dayStart(day) as number;
    const expireAt = Math.ceil((start + (1 + RETENTION_DAYS) * DAY_MS) / 1000);
    const policies = new Map<string, ReportedPolicy>();
    const increments = new Map<string, number>();
    for (const { policy, failure, count } of group) {
      policies.set(policy.id, policy);
      const field = failure ? `f\t${policy.id}\t${failureKey(failure)}` : `s\t${policy.id}`;
      increments.set(field, (increments.get(field) ?? 0) + count);
    }
    const args = [String(expireAt), day, String(start), policyDomain, String(policies.size)];
    for (const policy of policies.values())
      args.push(policy.id, JSON.stringify([policy.type, policy.domain, policy.strings, policy.mxHosts]));
    for (const [field, n] of increments) args.push(field, String(n));
    const keys = [
      this.key(day, policyDomain, 'counts'),
      this.key(day, policyDomain, 'policies'),
      `${this.base}${day}:domains`,
      `${this.base}days`,
    ];
    return this.run(`add ${keys[0]}`, ADD_SCRIPT, keys, args);
  }

  async days(): Promise<string[]> {
    const days = await this.run<string[]>('days', MEMBERS_SCRIPT, [`${this.base}days`], []);
    return days.filter(isDay).sort();
  }

  async domains(day: string): Promise<string[]> {
    if (!isDay(day)) throw new Error(`tlsrpt store: "${day.slice(0, 40)}" is not a day`);
    const domains = await this.run<string[]>(`domains ${day}`, MEMBERS_SCRIPT, [`${this.base}${day}:domains`], []);
    return domains.sort();
  }

  async counts(day: string, policyDomain: string): Promise<DomainCounts> {
    const countsKey = this.key(day, policyDomain, 'counts');
    const policiesKey = this.key(day, policyDomain, 'policies');
    const [counts, policies] = await Promise.all([
      this.connection.run(`HGETALL ${countsKey}`, (c) => c.hGetAll(countsKey)),
      this.connection.run(`HGETALL ${policiesKey}`, (c) => c.hGetAll(policiesKey)),
    ]);
    const builder = new CountsBuilder(day, policyDomain);
    const byStoredId = new Map<string, ReportedPolicy>();
    for (const [id, json] of Object.entries(policies)) {
      const policy = parsePolicy(json);
      if (policy) {
        byStoredId.set(id, policy);
        builder.addPolicy(policy);
      } else builder.problems.push(`${policiesKey} ${id}: unreadable policy`);
    }
    for (const [field, value] of Object.entries(counts)) {
      const [kind, id, key] = splitField(field);
      const policy = byStoredId.get(id);
      const count = Number(value);
      const failure = kind === 'f' ? parseFailureKey(key) : undefined;
      if (!policy || !Number.isSafeInteger(count) || count <= 0 || (kind !== 's' && kind !== 'f') || failure === null) {
        builder.problems.push(`${countsKey} ${field.slice(0, 80)}: unreadable count`);
        continue;
      }
      builder.addCount(policy.id, count, failure ? { key: failureKey(failure), details: failure } : undefined);
    }
    return builder.build();
  }

  async delivery(day: string, policyDomain: string): Promise<DeliveryState | null> {
    const key = this.key(day, policyDomain, 'delivery');
    const text = await this.connection.run(`GET ${key}`, (c) => c.get(key));
    return text === null ? null : readState(key, text);
  }

  startDelivery(day: string, policyDomain: string, initial: DeliveryState): Promise<DeliveryState> {
    return this.writeDelivery(day, policyDomain, initial, 'NX');
  }

  async saveDelivery(day: string, policyDomain: string, state: DeliveryState): Promise<void> {
    await this.writeDelivery(day, policyDomain, state, 'ALWAYS');
  }

  private async writeDelivery(day: string, policyDomain: string, state: DeliveryState, mode: 'NX' | 'ALWAYS'): Promise<DeliveryState> {
    const key = this.key(day, policyDomain, 'delivery');
    const expireAt = Math.ceil(((dayStart(day) as number) + (1 + RETENTION_DAYS) * DAY_MS) / 1000);
    const stored = await this.run<string | null>(`SET ${key}`, DELIVERY_SCRIPT, [key], [JSON.stringify(state), String(expireAt), mode]);
    if (stored === null) throw new Error(`tlsrpt: ${key}: the day is past retention (${RETENTION_DAYS} days), nothing is kept for it`);
    return readState(key, stored);
  }

  async lock(day: string, policyDomain: string, holder: string, ttlMs: number): Promise<boolean> {
    if (!isToken(holder)) throw new Error(`tlsrpt store: invalid lock holder "${holder.slice(0, 40)}"`);
    const key = this.key(day, policyDomain, 'lock');
    return Number(await this.run(`lock ${key}`, LOCK_SCRIPT, [key], [holder, String(Math.max(1, Math.round(ttlMs)))])) === 1;
  }

  async unlock(day: string, policyDomain: string, holder: string): Promise<void> {
    const key = this.key(day, policyDomain, 'lock');
    await this.run(`unlock ${key}`, UNLOCK_SCRIPT, [key], [holder]);
  }

  async prune(beforeDay: string): Promise<number> {
    const start = dayStart(beforeDay);
    if (start === null) throw new Error(`tlsrpt store: "${beforeDay.slice(0, 40)}" is not a day`);
    return Number(await this.run('prune', PRUNE_SCRIPT, [`${this.base}days`], [String(start)]));
  }

  ready(timeoutMs: number): Promise<boolean> {
    return this.connection.ready(timeoutMs);
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

/** `s\t<id>` or `f\t<id>\t<failure key>`. */
function splitField(field: string): [string, string, string] {
  const first = field.indexOf('\t');
  const second = field.indexOf('\t', first + 1);
  if (first < 0) return ['', '', ''];
  if (second < 0) return [field.slice(0, first), field.slice(first + 1), ''];
  return [field.slice(0, first), field.slice(first + 1, second), field.slice(second + 1)];
}

function parsePolicy(json: string): ReportedPolicy | null {
  try {
    const [type, domain, strings, mxHosts] = JSON.parse(json) as unknown[];
    const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
    if ((type !== 'sts' && type !== 'tlsa' && type !== 'no-policy-found') || typeof domain !== 'string') return null;
    if (!isStrings(strings) || !isStrings(mxHosts)) return null;
    return reportedPolicy(type, domain, strings, mxHosts);
  } catch {
    return null;
  }
}

function readState(key: string, text: string): DeliveryState {
  const state = parseDeliveryState(text);
  if (typeof state === 'string') throw new Error(`tlsrpt: ${key}: ${state}`);
  return state;
}
