/**
 * MTA-STS benchmark: what does a policy decision cost once the policy is cached,
 * and how many network round trips does a stampede on a new domain cause?
 *
 * Everything is real except the clock: MtaStsResolver with the FilePolicyStore in a
 * temporary directory, the Node resolver (createDnsClient) asking the tests' DNS
 * server, and policy fetches over HTTPS from the tests' PolicyServer (certificates
 * from a test CA). Both servers log what they receive, so every measurement also
 * states how many TXT queries and HTTPS requests it caused.
 *
 *   1. cached decisions: after the first call (which fetches), N sequential
 *      `await resolver.policyFor(domain)` calls, in batches (median ns per call);
 *      the same round robin over D cached domains; for comparison, calls after the
 *      recheck interval has passed (recheckMs 0: store read + TXT id check + store
 *      write on every call, same id, no fetch).
 *   2. stampede: a fresh resolver, a never-seen domain, C concurrent policyFor calls.
 *
 *   node dist/bench/mta-sts.js [--calls N] [--batches B] [--domains D] [--rechecks R] [--concurrency C]
 *
 * Only loopback addresses are used; nothing asks the system resolver.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeAddressPolicy } from '#lib/mx/address-policy';
import { createDnsClient, type DnsClient } from '#lib/mx/dns-client';
import { metrics } from '#lib/metrics';
import { MtaStsResolver, type CacheEvent, type MtaStsHooks, type MtaStsSettings, type PolicyDecision } from '#lib/mta-sts/resolver';
import { FilePolicyStore } from '#lib/mta-sts/file-store';
import type { CachedPolicy } from '#lib/mta-sts/store';
import { TestDnsServer } from '../test/fixtures/dns-server';
import { PolicyServer, policyText } from '../test/fixtures/policy-server';
import https from 'node:https';
import tls from 'node:tls';
import { pinnedHttpsOptions } from '#lib/https/pinned';
import { TestCa } from '../test/fixtures/test-ca';
import { Cleanup, fmt, lpad, median, positiveOption, readOptions } from './common';

interface Options {
  calls: number;
  batches: number;
  domains: number;
  rechecks: number;
  concurrency: number;
}

const CACHED_DOMAIN = 'cached.bench.test';
const STAMPEDE_DOMAIN = 'stampede.bench.test';
const MAX_AGE = 604_800; // one week, as many published policies
const POLICY_ID = '20240101T000000';

function usage(): string {
  return 'usage: node dist/bench/mta-sts.js [--calls N] [--batches B] [--domains D] [--rechecks R] [--concurrency C]';
}

const positive = (name: string, value: string | undefined, fallback: number, max: number): number =>
  positiveOption(name, value, fallback, max, usage());

function options(argv: string[]): Options {
  const values = readOptions(argv, ['calls', 'batches', 'domains', 'rechecks', 'concurrency'], usage());
  const o = {
    calls: positive('calls', values.calls, 200_000, 100_000_000),
    batches: positive('batches', values.batches, 20, 1000),
    domains: positive('domains', values.domains, 1000, 100_000),
    rechecks: positive('rechecks', values.rechecks, 300, 100_000),
    concurrency: positive('concurrency', values.concurrency, 200, 100_000),
  };
  if (o.batches > o.calls) throw new Error(`--batches (${o.batches}) must not exceed --calls (${o.calls})\n${usage()}`);
  return o;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
};
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
/** A duration given in nanoseconds, in the unit that reads best. */
const dur = (ns: number): string => (ns < 10_000 ? `${fmt(ns, 0)} ns` : ns < 1_000_000 ? `${fmt(ns / 1000)} µs` : `${fmt(ns / 1e6)} ms`);
const nowNs = (): bigint => process.hrtime.bigint();
const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0);

interface Env {
  ca: TestCa;
  dns: TestDnsServer;
  policy: PolicyServer;
  client: DnsClient;
  storeDir: string;
}

/** What the servers have received so far. */
interface Traffic {
  /** TXT queries (`_mta-sts.<domain>`) */
  txt: number;
  /** A and AAAA queries (`mta-sts.<domain>`, before a fetch) */
  address: number;
  /** HTTPS requests to the policy server */
  https: number;
}

function traffic(env: Env, domain?: string): Traffic {
  const q = (type: string, name?: string): number => env.dns.queries(name === undefined ? { type } : { type, name }).length;
  const host = domain === undefined ? undefined : `mta-sts.${domain}`;
  return {
    txt: q('TXT', domain === undefined ? undefined : `_mta-sts.${domain}`),
    address: q('A', host) + q('AAAA', host),
    https: env.policy.requests(domain).length,
  };
}

function minus(a: Traffic, b: Traffic): Traffic {
  return { txt: a.txt - b.txt, address: a.address - b.address, https: a.https - b.https };
}

function plus(a: Traffic, b: Traffic): Traffic {
  return { txt: a.txt + b.txt, address: a.address + b.address, https: a.https + b.https };
}

const describeTraffic = (t: Traffic): string => `${t.txt} TXT, ${t.address} A/AAAA, ${t.https} HTTPS`;
const quiet = (t: Traffic): boolean => t.txt === 0 && t.address === 0 && t.https === 0;

function settings(env: Env, recheckMs: number): MtaStsSettings {
  // outbound_mx.ini defaults, except recheck where a measurement asks for another one
  return {
    recheckMs,
    negativeTtlMs: 300_000,
    refreshBeforeMs: 86_400_000,
    fetch: { timeoutMs: 20_000, port: env.policy.port, extraCa: [env.ca.caCert], addressPolicy: makeAddressPolicy([], []) },
  };
}

/** Counts events per kind (a Map increment, about what a plain counter costs); keeps warnings and errors. */
function countingHooks(): { hooks: MtaStsHooks; events: Map<CacheEvent, number>; problems: string[] } {
  const events = new Map<CacheEvent, number>();
  const problems: string[] = [];
  return {
    events,
    problems,
    hooks: {
      event: (e) => events.set(e, (events.get(e) ?? 0) + 1),
      log: (level, message) => {
        if (level !== 'info') problems.push(`${level}: ${message}`);
      },
    },
  };
}

/** The hooks outbound_mx installs: each event increments the Prometheus counter. */
const pluginHooks: MtaStsHooks = {
  event: (e) => metrics.stsCache.inc({ event: e }),
  log: () => undefined,
};

function resolverFor(env: Env, recheckMs: number, hooks: MtaStsHooks): MtaStsResolver {
  const fixed = settings(env, recheckMs);
  return new MtaStsResolver(env.client, new FilePolicyStore(env.storeDir), () => fixed, hooks);
}

/** TXT record and policy host address in DNS; the policy on the policy server (issues its certificate). */
async function publish(env: Env, domain: string): Promise<void> {
  env.dns.add(`_mta-sts.${domain}`, { type: 'TXT', data: `v=STSv1; id=${POLICY_ID}` });
  env.dns.add(`mta-sts.${domain}`, { type: 'A', address: env.policy.host });
  await env.policy.set(domain, { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: MAX_AGE, mx: [`mx.${domain}`] }) });
}

function expectPolicy(d: PolicyDecision, source: string, what: string): void {
  if (d.kind !== 'policy' || d.source !== source) {
    throw new Error(`${what}: expected a policy from "${source}", got ${JSON.stringify(d.kind === 'policy' ? { source: d.source } : d)}`);
  }
}

interface CachedLoop {
  /** ns per call, one value per batch */
  perBatch: number[];
  calls: number;
  warmupCalls: number;
  /** decisions that were not a policy from the in-memory cache */
  other: number;
  traffic: Traffic;
}

/**
 * `calls` sequential awaited policyFor calls round robin over `names`, timed in
 * `batches` batches, after an unmeasured warm-up (JIT) of a tenth as many calls.
 */
async function cachedLoop(
  env: Env,
  resolver: MtaStsResolver,
  names: readonly string[],
  calls: number,
  batches: number,
): Promise<CachedLoop> {
  const n = names.length;
  const per = Math.floor(calls / batches);
  const warmupCalls = Math.min(50_000, Math.ceil(calls / 10));
  const before = traffic(env);
  let other = 0;
  let k = 0;
  for (let i = 0; i < warmupCalls; i++) {
    const d = await resolver.policyFor(names[k++ % n] as string);
    if (d.kind !== 'policy' || d.source !== 'cache') other++;
  }
  const perBatch: number[] = [];
  for (let b = 0; b < batches; b++) {
    // Cached calls never leave the microtask queue; let timers and signals (Ctrl-C) run between batches.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const t0 = nowNs();
    for (let i = 0; i < per; i++) {
      const d = await resolver.policyFor(names[k++ % n] as string);
      if (d.kind !== 'policy' || d.source !== 'cache') other++;
    }
    perBatch.push(since(t0) / per);
  }
  return { perBatch, calls: per * batches, warmupCalls, other, traffic: minus(traffic(env), before) };
}

function printLoop(label: string, r: CachedLoop): void {
  const m = median(r.perBatch);
  console.log(
    `  ${label.padEnd(34)} ${lpad(fmt(m, 0), 6)} ns/call  ${lpad(int(1e9 / m), 11)} calls/s   ` +
      `batches ${fmt(Math.min(...r.perBatch), 0)}…${fmt(Math.max(...r.perBatch), 0)} ns   ` +
      `network during ${int(r.calls + r.warmupCalls)} calls: ${describeTraffic(r.traffic)}` +
      `${r.other ? `   (${r.other} decisions not from the cache!)` : ''}`,
  );
}

async function setUp(cleanup: Cleanup): Promise<Env> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'haraka-bench-sts-'));
  cleanup.add(`remove ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));
  const ca = await TestCa.create(path.join(work, 'ca'));
  cleanup.add('remove the test CA', () => ca.cleanup());
  const dns = await TestDnsServer.start();
  cleanup.add('stop the DNS server', () => dns.stop());
  const policy = await PolicyServer.start({ ca });
  cleanup.add('stop the policy server', () => policy.stop());
  const client = createDnsClient({ servers: [dns.address], timeoutMs: 2000, tries: 2 });
  return { ca, dns, policy, client, storeDir: path.join(work, 'mta-sts') };
}

interface Summary {
  firstCallNs: number;
  single: CachedLoop;
  singlePlugin: CachedLoop;
  many: CachedLoop;
  manyCount: number;
  recheck: { medianNs: number; p90Ns: number; meanNs: number; calls: number; traffic: Traffic };
  stampede: { ms: number; calls: number; promises: number; traffic: Traffic };
}

async function cachedDecisions(env: Env, o: Options): Promise<Omit<Summary, 'stampede'>> {
  console.log(`\n1. cached decisions (sequential awaited policyFor calls; ${o.batches} batches, median)`);
  await publish(env, CACHED_DOMAIN);
  const counted = countingHooks();
  const resolver = resolverFor(env, 60_000, counted.hooks);

  // The first call discovers the policy: TXT, A/AAAA of the policy host, HTTPS GET, store write.
  const t0 = nowNs();
  const first = await resolver.policyFor(CACHED_DOMAIN);
  const firstCallNs = since(t0);
  expectPolicy(first, 'fetched', `first call for ${CACHED_DOMAIN}`);
  console.log(`  first call (discovery and fetch): ${dur(firstCallNs)}, network: ${describeTraffic(traffic(env, CACHED_DOMAIN))}`);

  const single = await cachedLoop(env, resolver, [CACHED_DOMAIN], o.calls, o.batches);
  printLoop('1 domain', single);

  // The same with the hooks outbound_mx installs (a prom-client counter increment per decision).
  const pluginResolver = resolverFor(env, 60_000, pluginHooks);
  expectPolicy(await pluginResolver.policyFor(CACHED_DOMAIN), 'cache', `${CACHED_DOMAIN} from the store`);
  const singlePlugin = await cachedLoop(env, pluginResolver, [CACHED_DOMAIN], o.calls, o.batches);
  printLoop('1 domain, plugin metrics hook', singlePlugin);

  // D more cached domains. Fetching them would need D certificates from the test CA (openssl runs),
  // so the entries are written into the policy store, as another Haraka worker's fetches would have
  // left them (the fetched entry with another domain and mx); the resolver loads each from its file
  // once, then holds it in memory exactly as after a fetch. Their TXT records are published too.
  const fetched = await new FilePolicyStore(env.storeDir).get(CACHED_DOMAIN);
  if (fetched.kind !== 'entry') throw new Error(`the store holds no entry for ${CACHED_DOMAIN} after the fetch (${fetched.kind})`);
  const names = Array.from({ length: o.domains }, (_, i) => `d${i + 1}.bench.test`);
  const store = new FilePolicyStore(env.storeDir);
  const now = Date.now();
  for (const domain of names) {
    env.dns.add(`_mta-sts.${domain}`, { type: 'TXT', data: `v=STSv1; id=${POLICY_ID}` });
    const entry: CachedPolicy = {
      ...fetched.entry,
      domain,
      text: policyText({ mode: 'enforce', maxAge: MAX_AGE, mx: [`mx.${domain}`] }),
      fetchedAt: now,
      expiresAt: now + MAX_AGE * 1000,
      checkedAt: now,
      usedAt: now,
    };
    await store.put(entry);
  }
  const beforeLoad = traffic(env);
  const tLoad = nowNs();
  for (const domain of names) expectPolicy(await resolver.policyFor(domain), 'cache', `${domain} from the store`);
  const loadNs = since(tLoad);
  console.log(
    `  ${int(o.domains)} more domains: first use each loads its store file: ${dur(loadNs / o.domains)}/call, ` +
      `network: ${describeTraffic(minus(traffic(env), beforeLoad))}`,
  );
  const many = await cachedLoop(env, resolver, names, o.calls, o.batches);
  printLoop(`${int(o.domains)} domains round robin`, many);

  // After the recheck interval: every call reads the store file, asks the TXT record (same id),
  // and writes the file with the new checkedAt. recheckMs 0 makes every call a recheck.
  const recheckHooks = countingHooks();
  const rechecking = resolverFor(env, 0, recheckHooks.hooks);
  for (let i = 0; i < Math.min(20, o.rechecks); i++) expectPolicy(await rechecking.policyFor(CACHED_DOMAIN), 'checked', 'recheck warm-up');
  const beforeRecheck = traffic(env);
  const each: number[] = [];
  for (let i = 0; i < o.rechecks; i++) {
    const t = nowNs();
    const d = await rechecking.policyFor(CACHED_DOMAIN);
    each.push(since(t));
    expectPolicy(d, 'checked', `recheck ${i + 1}`);
  }
  const recheckTraffic = minus(traffic(env), beforeRecheck);
  const recheck = {
    medianNs: median(each),
    p90Ns: quantile(each, 0.9),
    meanNs: each.reduce((a, b) => a + b, 0) / each.length,
    calls: o.rechecks,
    traffic: recheckTraffic,
  };
  console.log(
    `  after the recheck interval (recheckMs 0, same id): median ${dur(recheck.medianNs)}, p90 ${dur(recheck.p90Ns)}, ` +
      `mean ${dur(recheck.meanNs)} per call (${int(1e9 / recheck.meanNs)} calls/s); ` +
      `network during ${int(o.rechecks)} calls: ${describeTraffic(recheckTraffic)}`,
  );

  const problems = [...counted.problems, ...recheckHooks.problems];
  if (problems.length) console.log(`  resolver warnings/errors:\n    ${problems.slice(0, 10).join('\n    ')}`);
  return { firstCallNs, single, singlePlugin, many, manyCount: o.domains, recheck };
}

async function stampede(env: Env, o: Options): Promise<Summary['stampede']> {
  console.log(`\n2. stampede: a fresh resolver, a never-seen domain, ${int(o.concurrency)} concurrent policyFor calls`);
  await publish(env, STAMPEDE_DOMAIN); // before the clock starts: issuing the certificate runs openssl
  const counted = countingHooks();
  const resolver = resolverFor(env, 60_000, counted.hooks);
  const before = traffic(env, STAMPEDE_DOMAIN);
  const t0 = nowNs();
  const promises = Array.from({ length: o.concurrency }, () => resolver.policyFor(STAMPEDE_DOMAIN));
  const decisions = await Promise.all(promises);
  const ns = since(t0);
  const seen = minus(traffic(env, STAMPEDE_DOMAIN), before);
  const fetched = decisions.filter((d) => d.kind === 'policy' && d.source === 'fetched').length;
  const distinct = new Set(promises).size;
  console.log(
    `  total ${fmt(ns / 1e6)} ms for ${int(o.concurrency)} calls; ${fetched}/${o.concurrency} got the fetched policy; ` +
      `${distinct} distinct promise(s)`,
  );
  console.log(
    `  seen by the servers: ${seen.txt} TXT query (_mta-sts.${STAMPEDE_DOMAIN}), ${seen.address} A/AAAA (mta-sts.${STAMPEDE_DOMAIN}), ` +
      `${seen.https} HTTPS request(s)`,
  );
  if (counted.problems.length) console.log(`  resolver warnings/errors:\n    ${counted.problems.slice(0, 10).join('\n    ')}`);
  if (fetched !== o.concurrency) throw new Error(`stampede: only ${fetched} of ${o.concurrency} calls got the fetched policy`);
  return { ms: ns / 1e6, calls: o.concurrency, promises: distinct, traffic: seen };
}

/**
 * 3. OPS-6: CPU per policy fetch with an extra CA (`ca_file`): the shared trust
 * store (pinnedHttpsOptions) beside a trust store built for each request (as
 * before: Node's ~140 roots parsed again), same server, alternating.
 */
async function trustStoreCost(env: Env, fetches: number): Promise<{ shared: number; perRequest: number }> {
  console.log(`\n3. CPU per HTTPS policy fetch with an extra CA, ${fetches} fetches each way (client and server in this process)`);
  const get = (options: https.RequestOptions): Promise<void> =>
    new Promise((resolve, reject) => {
      const request = https.request(
        { ...options, path: '/.well-known/mta-sts.txt', headers: { Host: `mta-sts.${CACHED_DOMAIN}` } },
        (response) => {
          response.resume();
          response.on('end', resolve);
        },
      );
      request.on('error', reject);
      request.end();
    });
  const target = { host: `mta-sts.${CACHED_DOMAIN}`, address: env.policy.host, port: env.policy.port, extraCa: [env.ca.caCert] };
  const cpu = { shared: 0, perRequest: 0 };
  for (let i = 0; i < fetches * 2; i++) {
    const way = i % 2 === 0 ? 'shared' : 'perRequest';
    const { secureContext, ...rest } = pinnedHttpsOptions({ ...target, signal: new AbortController().signal });
    const options = way === 'shared' ? { ...rest, secureContext } : { ...rest, ca: [...tls.rootCertificates, env.ca.caCert] };
    const before = process.cpuUsage();
    await get(options);
    const used = process.cpuUsage(before);
    cpu[way] += (used.user + used.system) / 1000;
  }
  const result = { shared: cpu.shared / fetches, perRequest: cpu.perRequest / fetches };
  console.log(`  shared trust store ${fmt(result.shared, 2)} ms, built per request ${fmt(result.perRequest, 2)} ms of CPU per fetch`);
  return result;
}

function printSummary(s: Summary, o: Options): void {
  const single = median(s.single.perBatch);
  const plugin = median(s.singlePlugin.perBatch);
  const many = median(s.many.perBatch);
  const st = s.stampede;
  const cachedTraffic = plus(plus(s.single.traffic, s.singlePlugin.traffic), s.many.traffic);
  const cachedCalls = [s.single, s.singlePlugin, s.many].reduce((n, r) => n + r.calls + r.warmupCalls, 0);
  const label = (text: string): string => text.padEnd(46);
  const perCall = (ns: number): string => `${lpad(fmt(ns / 1000, 2), 6)} µs/call (${int(1e9 / ns)} calls/s)`;
  const lines = [
    `${label('cached decision, 1 domain:')}${perCall(single)}`,
    `${label("  with the plugin's metrics hook:")}${perCall(plugin)}`,
    `${label(`cached decision, ${int(s.manyCount)} domains round robin:`)}${perCall(many)}`,
    `${label(`  network during all ${int(cachedCalls)} cached calls:`)}${quiet(cachedTraffic) ? 'none (0 TXT queries, 0 HTTPS requests)' : describeTraffic(cachedTraffic)}`,
    `${label('recheck due (TXT id check, same id):')}${lpad(fmt(s.recheck.medianNs / 1000, 0), 6)} µs/call median, ` +
      `about ${int(Number((s.recheck.medianNs / single).toPrecision(2)))}× a cached decision (${s.recheck.traffic.txt} TXT, ${s.recheck.traffic.https} HTTPS in ${s.recheck.calls} calls)`,
    `${label('first call (discovery + HTTPS fetch):')}${lpad(fmt(s.firstCallNs / 1e6, 1), 6)} ms`,
    `${label(`stampede, ${st.calls} concurrent calls, new domain:`)}${lpad(fmt(st.ms, 1), 6)} ms total, ${st.traffic.txt} TXT query, ` +
      `${st.traffic.https} HTTPS request${st.traffic.https === 1 ? '' : 's'} (${st.promises === 1 ? 'one shared discovery' : `${st.promises} discoveries`})`,
  ];
  console.log(`\nsummary (${os.cpus().length} CPU(s), Node ${process.version}, ${int(o.calls)} calls per loop)`);
  for (const line of lines) console.log(`  ${line}`);
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const cleanup = new Cleanup();
  cleanup.onInterrupt();

  const t0 = Date.now();
  let failed: string[] = [];
  try {
    console.log(
      `mta-sts: ${int(o.calls)} calls per cached loop in ${o.batches} batches, ${int(o.domains)} domains, ` +
        `${int(o.rechecks)} rechecks, stampede of ${int(o.concurrency)}; ${os.cpus().length} CPU(s), Node ${process.version}`,
    );
    const env = await setUp(cleanup);
    console.log(
      `set up in ${fmt((Date.now() - t0) / 1000)} s: DNS server ${env.dns.address}, policy server ${env.policy.host}:${env.policy.port}, ` +
        `policy store ${env.storeDir}`,
    );
    const cached = await cachedDecisions(env, o);
    const st = await stampede(env, o);
    const trust = await trustStoreCost(env, 20);
    const summary: Summary = { ...cached, stampede: st };
    printSummary(summary, o);
    console.log(
      `  ${'HTTPS fetch with an extra CA (CPU):'.padEnd(46)}${fmt(trust.shared, 2)} ms shared trust store, ${fmt(trust.perRequest, 2)} ms built per request`,
    );

    failed = [
      ...(quiet(cached.single.traffic) && quiet(cached.singlePlugin.traffic) && quiet(cached.many.traffic)
        ? []
        : ['the cached loops caused network traffic']),
      ...(cached.single.other + cached.singlePlugin.other + cached.many.other > 0
        ? ['some cached calls were not answered from the cache']
        : []),
      ...(st.traffic.txt === 1 && st.traffic.https === 1
        ? []
        : [`the stampede caused ${describeTraffic(st.traffic)} (expected 1 TXT, 1 HTTPS)`]),
    ];
  } finally {
    await cleanup.runAll();
  }
  console.log(`\ndone in ${fmt((Date.now() - t0) / 1000)} s`);
  if (failed.length) throw new Error(failed.join('; '));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`mta-sts benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
