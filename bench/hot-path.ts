/**
 * OPS-6 hot-path micro-benchmarks, in this process (no Haraka), warm caches:
 *
 *  (a) the per-connection decision, as outbound_tls's connection guard makes it:
 *      the message's requirement (delivery state: domain + MTA-STS mode), the
 *      classification of a real TLS observation (a certificate from the test CA,
 *      parsed once as X509Certificate), the ratchet read (`RatchetStore.get`, the
 *      store opened by `openRatchetStore` as the plugin opens it: file, Redis) and
 *      `decide()` (ratchet + MTA-STS). Limit: 10 µs per call.
 *  (b) the per-message plan, as outbound_mx's get_mx makes it: `planDelivery` with
 *      the MTA-STS policy cached in an `MtaStsResolver` (file policy store) and the
 *      DNS answered from memory. Limit: 50 µs per call. The real DNS client
 *      (`createDnsClient`, against the tests' DNS server) is measured beside it;
 *      the servers' query log says whether it answered from a cache.
 *  (c) both again with 100,000 domains stored (ratchet levels, cached policies,
 *      DNS answers; written straight into the stores' layouts and then read once
 *      so every cache holds them), timed on the same 10 domains. Limit: within 5%.
 *
 * Each figure: µs per call (sequential awaits), the median of each round's batches, then
 * the median of the rounds; rounds alternate the 10-domain and the many-domain stores.
 *
 *   node dist/bench/hot-path.js [--rounds R] [--calls N] [--batches B] [--stored D] [--plan-calls N]
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'redis';
import { parseOutboundMxConfig } from '#lib/config/outbound-mx';
import { getDeliveryState, setDeliveryState } from '#lib/haraka/delivery-state';
import { createDnsClient, type DnsAnswer, type DnsClient, type MxRecord } from '#lib/mx/dns-client';
import { planDelivery, planSettings, type PlanSettings } from '#lib/delivery/plan';
import { MtaStsResolver } from '#lib/mta-sts/resolver';
import type { CachedPolicy } from '#lib/mta-sts/store';
import { openPolicyStore, openRatchetStore, POLICY_SUBDIR, RATCHET_SUBDIR } from '#lib/state/open';
import type { RatchetStore } from '#lib/ratchet/store';
import { classifyConnection, type TlsObservation } from '#lib/tls/classify';
import { decide, type Requirement } from '#lib/tls/decision';
import { SecLevel, levelName } from '#lib/sec-level';
import { TestDnsServer } from '../test/fixtures/dns-server';
import { TestRedis } from '../test/fixtures/redis-server';
import { TestCa } from '../test/fixtures/test-ca';
import { Cleanup, fmt, lpad, median, positiveOption, readOptions, verdict, runBenchmark } from './common';

/** OPS-6 limits. */
const MAX_DECISION_US = 10;
const MAX_PLAN_US = 50;
const MAX_MANY_DOMAINS_RATIO = 1.05;

/** The domains every timed loop cycles over. */
const HOT_DOMAINS = 10;
const MX_HOST = 'mx.hot-path.test';
const MX_ADDRESS = '127.0.99.1';
const POLICY_ID = 'hotpath1';
const POLICY_TEXT = `version: STSv1\r\nmode: enforce\r\nmx: ${MX_HOST}\r\nmax_age: 604800\r\n`;
/** Concurrency when filling and warming the stores. */
const FILL_CONCURRENCY = 64;

interface Options {
  rounds: number;
  calls: number;
  planCalls: number;
  batches: number;
  stored: number;
}

function usage(): string {
  return 'usage: node dist/bench/hot-path.js [--rounds R] [--calls N] [--plan-calls N] [--batches B] [--stored D]';
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['rounds', 'calls', 'plan-calls', 'batches', 'stored'], usage());
  return {
    rounds: positiveOption('rounds', values.rounds, 3, 100, usage()),
    calls: positiveOption('calls', values.calls, 20_000, 10_000_000, usage()),
    planCalls: positiveOption('plan-calls', values['plan-calls'], 10_000, 10_000_000, usage()),
    batches: positiveOption('batches', values.batches, 5, 1000, usage()),
    stored: positiveOption('stored', values.stored, 100_000, 10_000_000, usage()),
  };
}

const domainName = (i: number): string => `d${i}.hot-path.test`;

/** µs per call: median over `batches` batches of `calls` sequential calls, after one unmeasured batch. */
async function timePerCall(
  calls: number,
  batches: number,
  call: (i: number) => Promise<unknown>,
): Promise<{ median: number; min: number; max: number }> {
  const perCall: number[] = [];
  for (let b = -1; b < batches; b++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await call(i);
    const us = Number(process.hrtime.bigint() - started) / 1000 / calls;
    if (b >= 0) perCall.push(us);
  }
  return { median: median(perCall), min: Math.min(...perCall), max: Math.max(...perCall) };
}

async function forEachBounded(count: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: FILL_CONCURRENCY }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

/** Ratchet levels written as FileRatchetStore.raise leaves them (<dir>/<domain>/TLS_SECURE), without its fsyncs. */
function fillFileRatchet(dir: string, from: number, to: number): void {
  const content = `${JSON.stringify({ raisedAt: Date.now(), host: MX_HOST })}\n`;
  for (let i = from; i < to; i++) {
    const domainDir = path.join(dir, domainName(i));
    fs.mkdirSync(domainDir, { recursive: true });
    fs.writeFileSync(path.join(domainDir, levelName(SecLevel.TLS_SECURE)), content);
  }
}

/** Ratchet levels as RedisRatchetStore.raise writes them (hash <prefix>ratchet:<domain>). */
async function fillRedisRatchet(url: string, prefix: string, from: number, to: number): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    const raisedAt = String(Date.now());
    await forEachBounded(to - from, (k) =>
      client.hSet(`${prefix}ratchet:${domainName(from + k)}`, { level: String(SecLevel.TLS_SECURE), raisedAt, host: MX_HOST }),
    );
  } finally {
    await client.quit();
  }
}

/** Cached policies as FilePolicyStore.put leaves them (<dir>/<domain>.json), without its fsyncs. */
function fillPolicyFiles(dir: string, from: number, to: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const now = Date.now();
  for (let i = from; i < to; i++) {
    const entry: CachedPolicy = {
      domain: domainName(i),
      id: POLICY_ID,
      text: POLICY_TEXT,
      fetchedAt: now,
      expiresAt: now + 604_800_000,
      checkedAt: now,
      usedAt: now,
    };
    fs.writeFileSync(path.join(dir, `${entry.domain}.json`), JSON.stringify(entry));
  }
}

/** DNS answered from memory: one MX per domain, one address per MX host (what a DNS cache holds). */
class MemoryDns implements DnsClient {
  private readonly mxs = new Map<string, DnsAnswer<MxRecord>>();
  private readonly addresses = new Map<string, DnsAnswer<string>>([[MX_HOST, { kind: 'answer', records: [MX_ADDRESS] }]]);
  add(domain: string): void {
    this.mxs.set(domain, { kind: 'answer', records: [{ exchange: MX_HOST, priority: 10 }] });
  }
  mx = (name: string): Promise<DnsAnswer<MxRecord>> => Promise.resolve(this.mxs.get(name) ?? { kind: 'nxdomain' });
  a = (name: string): Promise<DnsAnswer<string>> => Promise.resolve(this.addresses.get(name) ?? { kind: 'nxdomain' });
  aaaa = (name: string): Promise<DnsAnswer<string>> =>
    Promise.resolve(this.addresses.has(name) ? { kind: 'nodata' } : { kind: 'nxdomain' });
  txt = (): Promise<DnsAnswer<string>> => Promise.resolve({ kind: 'nodata' });
}

interface Figures {
  decisionFile: number;
  decisionRedis: number;
  plan: number;
}

interface Bench {
  label: string;
  dirs: { ratchet: string; policies: string };
  redisPrefix: string;
  observation: TlsObservation;
  ratchet: { file: RatchetStore; redis: RatchetStore };
  resolver: MtaStsResolver;
  memoryDns: MemoryDns;
  settings: PlanSettings;
  /** One message object per hot domain, with its delivery state set (what outbound_mx leaves for outbound_tls). */
  messages: object[];
}

async function measureDecision(bench: Bench, store: RatchetStore, o: Options): Promise<number> {
  const { observation, messages } = bench;
  const once = async (i: number): Promise<void> => {
    const hmail = messages[i % HOT_DOMAINS] as object;
    const state = getDeliveryState(hmail);
    if (!state) throw new Error('no delivery state');
    const requirement: Requirement = { domain: state.domain, ratchet: true, ...(state.sts ? { sts: state.sts } : {}) };
    const classification = classifyConnection(observation, MX_HOST);
    const stored = await store.get(requirement.domain);
    const v = decide(classification, requirement, stored, 'defer', MX_HOST);
    if (v.kind !== 'pass' || v.raiseTo !== undefined) throw new Error(`unexpected verdict for ${state.domain}: ${JSON.stringify(v)}`);
  };
  await once(0);
  return (await timePerCall(o.calls, o.batches, once)).median;
}

async function measurePlan(bench: Bench, dns: DnsClient, calls: number, batches: number): Promise<number> {
  const once = async (i: number): Promise<void> => {
    const plan = await planDelivery(
      domainName(i % HOT_DOMAINS),
      { dns, policyFor: (aLabel) => bench.resolver.policyFor(aLabel), guardProblem: () => null },
      bench.settings,
    );
    if (plan.kind !== 'deliver' || plan.state.sts?.mode !== 'enforce' || plan.mxs[0]?.addresses[0] !== MX_ADDRESS) {
      throw new Error(`unexpected plan: ${JSON.stringify(plan)}`);
    }
  };
  await once(0);
  return (await timePerCall(calls, batches, once)).median;
}

async function measureAll(bench: Bench, o: Options, label: string): Promise<Figures> {
  const figures: Figures = {
    decisionFile: await measureDecision(bench, bench.ratchet.file, o),
    decisionRedis: await measureDecision(bench, bench.ratchet.redis, o),
    plan: await measurePlan(bench, bench.memoryDns, o.planCalls, o.batches),
  };
  console.log(
    `  ${label.padEnd(22)} decision: file ${lpad(fmt(figures.decisionFile, 2), 7)} µs, redis ${lpad(fmt(figures.decisionRedis, 2), 7)} µs;` +
      ` plan ${lpad(fmt(figures.plan, 2), 7)} µs`,
  );
  return figures;
}

/** Stores domains from..to in every store and reads each once, so whatever the stores and the resolver cache holds them. */
async function fill(bench: Bench, redisUrl: string, from: number, to: number): Promise<void> {
  fillFileRatchet(bench.dirs.ratchet, from, to);
  await fillRedisRatchet(redisUrl, bench.redisPrefix, from, to);
  fillPolicyFiles(bench.dirs.policies, from, to);
  for (let i = from; i < to; i++) bench.memoryDns.add(domainName(i));
  await forEachBounded(to - from, async (k) => {
    const domain = domainName(from + k);
    await bench.ratchet.file.get(domain);
    await bench.ratchet.redis.get(domain);
    await bench.resolver.policyFor(domain);
  });
}

interface Environment {
  work: string;
  observation: TlsObservation;
  redis: TestRedis;
  dnsServer: TestDnsServer;
  settings: PlanSettings;
}

/**
 * Stores as the plugins open them (outbound_tls.ini: data_dir, store=file | store=redis),
 * an MTA-STS resolver over the file policy store, and `count` domains stored in all of them.
 * Each bench has its own data_dir and Redis prefix.
 */
async function createBench(env: Environment, label: string, count: number, cleanup: Cleanup): Promise<Bench> {
  const dataDir = path.join(env.work, label);
  const redisPrefix = `hotpath-${label}:`;
  const redisBackend = { backend: 'redis' as const, prefix: redisPrefix, commandTimeoutMs: 1000, plugin: {} };
  const redisIni = { server: { host: '127.0.0.1', port: String(env.redis.port) }, opts: {} };
  const ratchet = {
    file: openRatchetStore({ dataDir }),
    redis: openRatchetStore({ dataDir, store: redisBackend, redisIni }),
  };
  cleanup.add(`close the ${label} stores`, async () => {
    await ratchet.file.close();
    await ratchet.redis.close();
  });
  if (!(await ratchet.redis.ready?.(5000))) throw new Error(`Redis on ${env.redis.url} did not come up`);
  const policyStore = openPolicyStore({ dataDir });
  const resolver = new MtaStsResolver(
    createDnsClient({ servers: [env.dnsServer.address], timeoutMs: 1000, tries: 1 }),
    policyStore,
    () => ({
      recheckMs: 60_000,
      negativeTtlMs: 300_000,
      refreshBeforeMs: 3_600_000,
      fetch: { timeoutMs: 1000, port: 443, extraCa: [], addressPolicy: env.settings.addressPolicy },
    }),
    { event: () => undefined, log: () => undefined },
  );
  const messages = Array.from({ length: HOT_DOMAINS }, (_, i) => {
    const hmail = {};
    setDeliveryState(hmail, { domain: domainName(i), sts: { mode: 'enforce', policyId: POLICY_ID } });
    return hmail;
  });
  const bench: Bench = {
    label,
    dirs: { ratchet: path.join(dataDir, RATCHET_SUBDIR), policies: path.join(dataDir, POLICY_SUBDIR) },
    redisPrefix,
    observation: env.observation,
    ratchet,
    resolver,
    memoryDns: new MemoryDns(),
    settings: env.settings,
    messages,
  };
  const t = Date.now();
  await fill(bench, env.redis.url, 0, count);
  console.log(
    `  ${label}: ${count} domains stored and read once in ${fmt((Date.now() - t) / 1000)} s ` +
      `(${ratchet.file.description}; ${ratchet.redis.description}; policies ${policyStore.description})`,
  );
  return bench;
}

async function main(cleanup: Cleanup): Promise<void> {
  const o = options(process.argv.slice(2));
  console.log(
    `hot path (OPS-6): ${o.calls} calls per decision batch, ${o.planCalls} per plan batch, ${o.batches} batches per round, ` +
      `${o.rounds} rounds (median of the rounds' medians), ${HOT_DOMAINS} domains timed; ${os.cpus().length} CPU(s), Node ${process.version}`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-hot-path-'));
  cleanup.add(`remove ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));
  const ca = await TestCa.create();
  cleanup.add('remove the test CA', () => ca.cleanup());
  const leaf = await ca.issue({ dnsNames: [MX_HOST] });
  const observation: TlsObservation = {
    encrypted: true,
    authorizationError: null,
    peerCertificate: new X509Certificate(leaf.cert),
    protocol: 'TLSv1.3',
  };
  const redis = await TestRedis.start();
  cleanup.add('stop redis-server', () => redis.stop());
  const dnsServer = await TestDnsServer.start({ defaultTtl: 300 });
  cleanup.add('stop the DNS server', () => dnsServer.stop());
  const settings = planSettings(parseOutboundMxConfig({ addresses: { allow: '127.0.0.0/8' } }), 'defer');
  const env: Environment = { work, observation, redis, dnsServer, settings };

  const small = await createBench(env, 'few', HOT_DOMAINS, cleanup);
  const large = await createBench(env, 'many', o.stored, cleanup);
  const sizes = large.resolver.memorySizes();
  console.log(
    `  MTA-STS resolver of the ${o.stored}: ${sizes.policies} policies in memory, ${fmt(sizes.bytes / 1024 / 1024)} MiB (estimated)`,
  );

  // Rounds alternate the two, so JIT warm-up and drift do not favour one.
  const runs: Record<'few' | 'many', Figures[]> = { few: [], many: [] };
  for (let round = 1; round <= o.rounds; round++) {
    const order = round % 2 === 1 ? [small, large] : [large, small];
    for (const bench of order) {
      runs[bench === small ? 'few' : 'many'].push(
        await measureAll(bench, o, `round ${round}, ${bench === small ? HOT_DOMAINS : o.stored} stored:`),
      );
    }
  }
  const medianOf = (list: Figures[]): Figures => ({
    decisionFile: median(list.map((f) => f.decisionFile)),
    decisionRedis: median(list.map((f) => f.decisionRedis)),
    plan: median(list.map((f) => f.plan)),
  });
  const few = medianOf(runs.few);
  const many = medianOf(runs.many);

  // The real DNS client against the tests' DNS server: cached, or a loopback round trip per lookup?
  // TTL 300, as typical MX and address records have: the client's answer cache keeps them (OPS-6).
  for (let i = 0; i < HOT_DOMAINS; i++) dnsServer.set(domainName(i), [{ type: 'MX', preference: 10, exchange: MX_HOST }], 300);
  dnsServer.set(MX_HOST, [{ type: 'A', address: MX_ADDRESS }], 300);
  const realDns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 1000, tries: 1 });
  const realCalls = Math.max(1, Math.min(o.planCalls, 500));
  const realBatches = Math.min(o.batches, 5);
  await measurePlan(small, realDns, HOT_DOMAINS, 1); // fills a cache, if the client has one
  dnsServer.resetLog();
  const realPlan = await measurePlan(small, realDns, realCalls, realBatches);
  const queriesPerPlan = dnsServer.queries().length / (realCalls * (realBatches + 1));
  console.log(
    `  plan with the real DNS client (createDnsClient → test DNS server): ${fmt(realPlan, 2)} µs per call, ` +
      `${fmt(queriesPerPlan, 2)} DNS queries per plan (${queriesPerPlan === 0 ? 'answered from its cache' : 'no cache: loopback round trips'})`,
  );

  const planForLimit = queriesPerPlan === 0 ? Math.min(realPlan, few.plan) : few.plan;
  const planSource = queriesPerPlan === 0 ? 'real DNS client, cached' : 'DNS answered by an in-memory fake (the DNS client has no cache)';
  const rows: Array<[string, string, boolean]> = [
    [`decision, file store (≤ ${MAX_DECISION_US} µs)`, `${fmt(few.decisionFile, 2)} µs`, few.decisionFile <= MAX_DECISION_US],
    [`decision, Redis store (≤ ${MAX_DECISION_US} µs)`, `${fmt(few.decisionRedis, 2)} µs`, few.decisionRedis <= MAX_DECISION_US],
    [`plan (≤ ${MAX_PLAN_US} µs; ${planSource})`, `${fmt(planForLimit, 2)} µs`, planForLimit <= MAX_PLAN_US],
  ];
  for (const [what, a, b] of [
    ['decision, file store', few.decisionFile, many.decisionFile],
    ['decision, Redis store', few.decisionRedis, many.decisionRedis],
    ['plan', few.plan, many.plan],
  ] as const) {
    const ratio = b / a;
    rows.push([
      `${what}: ${o.stored} / ${HOT_DOMAINS} domains (≤ ${MAX_MANY_DOMAINS_RATIO})`,
      `×${fmt(ratio, 3)}`,
      ratio <= MAX_MANY_DOMAINS_RATIO,
    ]);
  }
  console.log('\nsummary (OPS-6 hot path, median µs per call)');
  const width = Math.max(...rows.map(([what]) => what.length));
  for (const [what, value, ok] of rows) console.log(`  ${what.padEnd(width)}  ${lpad(value, 10)}  ${verdict(ok)}`);
}

runBenchmark('hot-path', 2, main);
