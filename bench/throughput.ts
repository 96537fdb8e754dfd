/**
 * Throughput benchmark: what do outbound_tls + outbound_mx cost per message?
 *
 * Two real Haraka processes deliver the same batches to the same STARTTLS sinks
 * (certificates from a test CA, one loopback address per MX, all on one port):
 *
 *   A "bare":    Haraka with only the test plugin haraka-static-route, which answers
 *                get_mx from a fixed domain → sink map (no DNS at all);
 *   B "plugins": Haraka with outbound_tls and outbound_mx, which look every MX up in
 *                the test DNS server, classify every connection and keep the ratchet.
 *
 * Both deliver with STARTTLS to every sink, so the difference is the plugins' work:
 * MX + A lookups, address policy, certificate classification, ratchet reads (and,
 * in B's first batch, the ratchet raises: one file write per new domain).
 *
 * A batch is timed from the first SMTP submission to the moment the sinks together
 * hold all of its messages (the sinks' receive time of the last one). Batches run in
 * rounds, alternating the order (A,B  B,A  A,B …) so slow drift cancels out.
 *
 *   node dist/bench/throughput.js [--messages N] [--domains D] [--rounds R]
 *                                 [--sinks S] [--connections C]
 *
 * Only loopback addresses are used; Haraka never asks the system resolver.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import type { RatchetStore } from '#lib/ratchet/store';
import { TestRedis } from '../test/fixtures/redis-server';
import { TestDnsServer } from '../test/fixtures/dns-server';
import { HarakaInstance, sleep } from '../test/fixtures/haraka-instance';
import { startSinksOnCommonPort, type SmtpSink } from '../test/fixtures/smtp-sink';
import { TestCa } from '../test/fixtures/test-ca';
import { Cleanup, countRatchetLevels, fmt, lpad, median, positiveOption, readOptions, runBenchmark } from './common';

interface Options {
  messages: number;
  domains: number;
  rounds: number;
  sinks: number;
  connections: number;
  /** Where the plugins side keeps its state: the embedded file store or a local redis-server. */
  store: 'file' | 'redis';
}

type Side = 'bare' | 'plugins';

interface BatchResult {
  side: Side;
  round: number;
  /** 1 or 2: position of this batch inside its round */
  order: number;
  messages: number;
  /** first submission → last message received by a sink, seconds */
  seconds: number;
  /** first submission → last submission accepted by Haraka, seconds */
  submitSeconds: number;
  rate: number;
  secure: number;
  /** CPU time used by the Haraka process during the batch, ms */
  cpuMs: number;
}

const LOG_INI = '[main]\nlevel=warn\n';
const SINK_NET = '127.0.77.';
const WARMUP_DOMAIN = 'warmup.bench.test';
const WARMUP_MESSAGES = 16;

function usage(): string {
  return 'usage: node dist/bench/throughput.js [--messages N] [--domains D] [--rounds R] [--sinks S] [--connections C] [--store file|redis]';
}

const positive = (name: string, value: string | undefined, fallback: number, max: number): number =>
  positiveOption(name, value, fallback, max, usage());

function options(argv: string[]): Options {
  const values = readOptions(argv, ['messages', 'domains', 'rounds', 'sinks', 'connections', 'store'], usage());
  return {
    messages: positive('messages', values.messages, 300, 100_000),
    domains: positive('domains', values.domains, 50, 10_000),
    rounds: positive('rounds', values.rounds, 3, 100),
    sinks: positive('sinks', values.sinks, 8, 250),
    connections: positive('connections', values.connections, 8, 100),
    store:
      values.store === 'redis'
        ? 'redis'
        : values.store === undefined || values.store === 'file'
          ? 'file'
          : usageError(`--store ${values.store}: file or redis`),
  };
}

function usageError(message: string): never {
  console.error(`${message}\n${usage()}`);
  process.exit(2);
}

/** The plugins side's ratchet store, as the plugins open it. */
let ratchetUrl = '';

const pad = (s: string, n: number): string => s.padEnd(n);

/**
 * HarakaInstance.start does not stop the child it spawned when startup fails (or when
 * we are interrupted meanwhile). bin/haraka runs the server as its own child
 * (haraka.js): find our descendants started with `-c <dir>` and kill them, by pid,
 * the server first.
 */
function killOwnHaraka(dir: string): void {
  for (const p of harakaProcesses(dir).reverse()) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  /** user + system CPU time, clock ticks */
  ticks: number;
  args: string[];
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after "pid (comm) ": field 3 (state) is fields[0]; ppid is field 4, utime and stime are fields 14 and 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return { pid, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]), args };
  } catch {
    return undefined; // gone meanwhile, or not readable
  }
}

/**
 * Our own Haraka processes for `dir` (Linux /proc; empty elsewhere): descendants of this
 * process whose command line has `-c <dir>`, parents before children.
 */
function harakaProcesses(dir: string): ProcInfo[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const candidates: ProcInfo[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProc(Number(entry));
    if (!info) continue;
    const c = info.args.indexOf('-c');
    if (c >= 0 && info.args[c + 1] === dir) candidates.push(info);
  }
  const found: ProcInfo[] = [];
  const parents = new Set([process.pid]);
  for (let more = true; more;) {
    more = false;
    for (const info of candidates) {
      if (parents.has(info.ppid) && !parents.has(info.pid)) {
        found.push(info);
        parents.add(info.pid);
        more = true;
      }
    }
  }
  return found;
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on Linux

/** CPU time (user + system, ms) used so far by the Haraka processes of `dir`; NaN when unknown. */
function harakaCpuMs(dir: string): number {
  const procs = harakaProcesses(dir);
  if (procs.length === 0) return NaN;
  return (procs.reduce((sum, p) => sum + p.ticks, 0) * 1000) / CLOCK_TICKS_PER_SECOND;
}

interface Setup {
  sinks: SmtpSink[];
  bare: HarakaInstance;
  plugins: HarakaInstance;
  domains: string[];
}

async function setUp(o: Options, cleanup: Cleanup): Promise<Setup> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'haraka-bench-'));
  cleanup.add(`remove ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));

  const ca = await TestCa.create();
  cleanup.add('remove the test CA', () => ca.cleanup());
  const names = Array.from({ length: o.sinks }, (_, i) => `mx${i + 1}.bench.test`);
  const addresses = Array.from({ length: o.sinks }, (_, i) => `${SINK_NET}${i + 1}`);
  const leaves = await Promise.all(names.map((name) => ca.issue({ dnsNames: [name] })));

  const sinks = await startSinksOnCommonPort(
    names.map((name, i) => {
      const leaf = leaves[i];
      if (!leaf) throw new Error(`no certificate for ${name}`);
      return { host: addresses[i] as string, tls: { key: leaf.key, cert: leaf.cert }, name };
    }),
  );
  cleanup.add('stop the sinks', async () => {
    await Promise.all(sinks.map((s) => s.stop()));
  });
  const mxPort = sinks[0]?.port ?? 0;

  // TTL 300 s, typical of MX and address records (the plugins cache answers for their TTL; bare Haraka does not cache).
  const dns = await TestDnsServer.start({ defaultTtl: 300 });
  cleanup.add('stop the DNS server', () => dns.stop());
  const domains = Array.from({ length: o.domains }, (_, j) => `d${j + 1}.test`);
  const routes: Record<string, { exchange: string; port: number; host: string }> = {};
  const route = (domain: string, i: number): void => {
    const host = names[i] as string;
    dns.add(domain, { type: 'MX', preference: 10, exchange: host });
    routes[domain] = { exchange: addresses[i] as string, port: mxPort, host };
  };
  names.forEach((name, i) => dns.add(name, { type: 'A', address: addresses[i] as string }));
  domains.forEach((domain, j) => route(domain, j % o.sinks));
  route(WARMUP_DOMAIN, 0);
  const routesFile = path.join(work, 'static-routes.json');
  fs.writeFileSync(routesFile, JSON.stringify(routes, null, 2));

  let storeConfig: Record<string, string> = {};
  if (o.store === 'redis') {
    const redis = await TestRedis.start();
    cleanup.add('stop redis-server', () => redis.stop());
    storeConfig = {
      'outbound_tls.ini': '[main]\nstore=redis\nredis_prefix=bench:\n',
      'redis.ini': `[server]\nhost=127.0.0.1\nport=${redis.port}\n`,
    };
    ratchetUrl = `${redis.url}/?prefix=bench:`;
  }
  const start = async (side: Side, plugins: string[], env: Record<string, string>): Promise<HarakaInstance> => {
    // Our own directory (HarakaInstance then leaves it to us), so that a failed start can be cleaned up too.
    const dir = path.join(work, side);
    fs.mkdirSync(dir);
    cleanup.add(`kill a ${side} Haraka left over`, () => killOwnHaraka(dir));
    const instance = await HarakaInstance.start({
      dir,
      dnsServer: dns.address,
      mxPort,
      plugins,
      extraCa: ca.caCertPath,
      config: { 'log.ini': LOG_INI, ...(side === 'plugins' ? storeConfig : {}) },
      env,
    });
    cleanup.add(`stop the ${side} Haraka`, () => instance.stop());
    return instance;
  };
  // allSettled: when one fails, the other has finished starting (and is in the cleanup list) before we go on.
  const [bare, withPlugins] = await Promise.allSettled([
    start('bare', ['haraka-static-route'], { HARAKA_STATIC_ROUTES: routesFile }),
    start(
      'plugins',
      ['outbound_tls', 'outbound_mx'],
      process.env.BENCH_PROFILE_DIR ? { HARAKA_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}` } : {},
    ),
  ]);
  if (bare.status === 'rejected') throw bare.reason;
  if (withPlugins.status === 'rejected') throw withPlugins.reason;
  return { sinks, bare: bare.value, plugins: withPlugins.value, domains };
}

function received(sinks: SmtpSink[]): number {
  return sinks.reduce((n, s) => n + s.messages.length, 0);
}

function diagnostics(instance: HarakaInstance): string {
  const events = instance.events().filter((e) => e.event === 'deferred' || e.event === 'bounce');
  return [
    `queued: ${instance.queueFiles().length}`,
    `last deferrals/bounces: ${JSON.stringify(events.slice(-5))}`,
    `log tail:\n${instance.logLines.slice(-20).join('\n')}`,
  ].join('\n');
}

/**
 * Submits `count` messages (round robin over `domains`) through `connections` pooled
 * SMTP connections and waits until the sinks hold all of them. Returns the timings.
 */
async function runBatch(
  instance: HarakaInstance,
  sinks: SmtpSink[],
  domains: string[],
  count: number,
  connections: number,
  tag: string,
): Promise<{ seconds: number; submitSeconds: number; secure: number; cpuMs: number }> {
  for (const s of sinks) s.reset();
  const cpuBefore = harakaCpuMs(instance.dir);
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: connections,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port: instance.port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
  });
  const started = Date.now();
  let submitted: number;
  try {
    await Promise.all(
      Array.from({ length: count }, (_, k) =>
        transport.sendMail({
          from: 'sender@sender.test',
          to: `u${k}.${tag}@${domains[k % domains.length] as string}`,
          subject: `bench ${tag} ${k}`,
          text: `benchmark message ${k} of batch ${tag}\n`,
        }),
      ),
    );
    submitted = Date.now();
  } finally {
    transport.close();
  }

  const deadline = started + Math.max(60_000, count * 200);
  let lastCount = -1;
  let lastProgress = Date.now();
  for (;;) {
    const n = received(sinks);
    if (n >= count) break;
    const now = Date.now();
    if (n !== lastCount) {
      lastCount = n;
      lastProgress = now;
    }
    if (now > deadline || now - lastProgress > 20_000) {
      throw new Error(`batch ${tag}: only ${n} of ${count} messages reached the sinks\n${diagnostics(instance)}`);
    }
    await sleep(20);
  }

  const messages = sinks.flatMap((s) => s.messages);
  const ours = messages.filter((m) => m.to.some((rcpt) => rcpt.includes(`.${tag}@`)));
  if (ours.length !== count || messages.length !== count) {
    throw new Error(`batch ${tag}: the sinks hold ${messages.length} messages, ${ours.length} of this batch (expected ${count})`);
  }
  const last = Math.max(...sinks.flatMap((s) => s.events.filter((e) => e.kind === 'data').map((e) => e.at)));
  // Let Haraka finish the bookkeeping of the batch (queue files removed) before the next one starts.
  const settle = Date.now() + 10_000;
  while (instance.queueFiles().length > 0 && Date.now() < settle) await sleep(20);
  const cpuMs = harakaCpuMs(instance.dir) - cpuBefore;
  await sleep(200);
  return {
    seconds: (last - started) / 1000,
    submitSeconds: (submitted - started) / 1000,
    secure: ours.filter((m) => m.secure).length,
    cpuMs,
  };
}

async function ratchetLevels(instance: HarakaInstance, domains: string[]): Promise<Record<string, number>> {
  const store: RatchetStore = ratchetUrl
    ? openRatchetStoreFromUrl(ratchetUrl)
    : new FileRatchetStore(path.join(instance.dir, 'data', 'ratchet'));
  return countRatchetLevels(store, domains);
}

function describeCounts(counts: Record<string, number>): string {
  return (
    Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ') || 'none'
  );
}

function printRound(round: number, results: BatchResult[]): void {
  console.log(`\nround ${round}`);
  console.log(
    `  ${pad('side', 8)} ${lpad('order', 5)} ${lpad('messages', 8)} ${lpad('seconds', 8)} ${lpad('msg/s', 8)} ${lpad('submit s', 9)} ${lpad('STARTTLS', 9)} ${lpad('Haraka CPU ms/msg', 17)}`,
  );
  for (const r of results) {
    console.log(
      `  ${pad(r.side, 8)} ${lpad(String(r.order), 5)} ${lpad(String(r.messages), 8)} ${lpad(fmt(r.seconds, 2), 8)} ` +
        `${lpad(fmt(r.rate), 8)} ${lpad(fmt(r.submitSeconds, 2), 9)} ${lpad(`${r.secure}/${r.messages}`, 9)} ${lpad(fmt(r.cpuMs / r.messages, 2), 17)}`,
    );
  }
}

function summary(results: BatchResult[], rounds: number): void {
  const rates = (side: Side, from = 1): number[] => results.filter((r) => r.side === side && r.round >= from).map((r) => r.rate);
  const bare = rates('bare');
  const plugins = rates('plugins');
  const mBare = median(bare);
  const mPlugins = median(plugins);
  const spread = (xs: number[]): string => {
    const m = median(xs);
    return `${fmt(Math.min(...xs))} … ${fmt(Math.max(...xs))}, spread ±${fmt(((Math.max(...xs) - Math.min(...xs)) / 2 / m) * 100, 0)}%`;
  };
  console.log('\nsummary (messages per second)');
  console.log(`  bare     median ${lpad(fmt(mBare), 7)}   runs: ${bare.map((x) => fmt(x)).join(', ')}   (${spread(bare)})`);
  console.log(`  plugins  median ${lpad(fmt(mPlugins), 7)}   runs: ${plugins.map((x) => fmt(x)).join(', ')}   (${spread(plugins)})`);
  if (rounds > 1) {
    const firstB = plugins[0] as number;
    const laterB = median(rates('plugins', 2));
    const firstA = bare[0] as number;
    const laterA = median(rates('bare', 2));
    const change = (first: number, later: number): string => `${first <= later ? '' : '+'}${fmt(((first - later) / later) * 100, 0)}%`;
    console.log(
      `  plugins  first round ${fmt(firstB)} (ratchet raised: file writes), later rounds median ${fmt(laterB)} ` +
        `(first vs later ${change(firstB, laterB)})`,
    );
    console.log(
      `  bare     first round ${fmt(firstA)}, later rounds median ${fmt(laterA)} (first vs later ${change(firstA, laterA)}; ` +
        `no ratchet: warm-up effects only)`,
    );
    const laterRatio = laterB / laterA;
    console.log(`  later rounds only: plugins/bare ${fmt(laterRatio, 2)}`);
  }
  const cpu = (side: Side): number => median(results.filter((r) => r.side === side).map((r) => r.cpuMs / r.messages));
  const [cpuBare, cpuPlugins] = [cpu('bare'), cpu('plugins')];
  if (Number.isFinite(cpuBare) && Number.isFinite(cpuPlugins)) {
    console.log(
      `  Haraka CPU per message (median): bare ${fmt(cpuBare, 2)} ms, plugins ${fmt(cpuPlugins, 2)} ms ` +
        `(plugins/bare ${fmt(cpuPlugins / cpuBare, 2)})`,
    );
  }
  const ratio = mPlugins / mBare;
  const cost = (1 - ratio) * 100;
  console.log(
    `\nplugins/bare throughput ratio: ${fmt(ratio, 2)} (cost ${fmt(cost, 0).replace(/^-0$/, '0')}%)` +
      `   [bare ${fmt(mBare)} msg/s, plugins ${fmt(mPlugins)} msg/s, medians of ${rounds} round(s)]`,
  );
}

async function main(cleanup: Cleanup): Promise<void> {
  const o = options(process.argv.slice(2));
  const t0 = Date.now();
  console.log(
    `throughput: ${o.messages} messages per batch over ${o.domains} domains, ${o.sinks} STARTTLS sinks, ` +
      `${o.connections} submission connections, ${o.rounds} round(s); ${os.cpus().length} CPU(s), Node ${process.version}`,
  );
  const { sinks, bare, plugins, domains } = await setUp(o, cleanup);
  console.log(
    `set up in ${fmt((Date.now() - t0) / 1000)} s: sinks on ${SINK_NET}1-${o.sinks}:${sinks[0]?.port}, ` +
      `bare Haraka :${bare.port} (haraka-static-route), plugins Haraka :${plugins.port} (outbound_tls, outbound_mx; ${o.store} store)`,
  );
  const instances: Record<Side, HarakaInstance> = { bare, plugins };

  // Warm-up (not measured): JIT, TLS contexts, first connections; a domain outside the batches,
  // so the ratchet of the benchmark domains is still empty when round 1 starts.
  for (const side of ['bare', 'plugins'] as const) {
    await runBatch(instances[side], sinks, [WARMUP_DOMAIN], WARMUP_MESSAGES, o.connections, `w${side[0]}`);
  }
  const before = await ratchetLevels(plugins, domains);

  const results: BatchResult[] = [];
  let afterFirst: Record<string, number> | undefined;
  for (let round = 1; round <= o.rounds; round++) {
    const order: Side[] = round % 2 === 1 ? ['bare', 'plugins'] : ['plugins', 'bare'];
    const roundResults: BatchResult[] = [];
    for (const [i, side] of order.entries()) {
      const tag = `r${round}${side[0]}`;
      const r = await runBatch(instances[side], sinks, domains, o.messages, o.connections, tag);
      roundResults.push({ side, round, order: i + 1, messages: o.messages, ...r, rate: o.messages / r.seconds });
      if (side === 'plugins' && !afterFirst) afterFirst = await ratchetLevels(plugins, domains);
    }
    results.push(...roundResults);
    printRound(round, roundResults);
  }
  console.log(
    `\nratchet of the ${domains.length} benchmark domains (plugins Haraka): before round 1: ${describeCounts(before)}; ` +
      `after its first batch: ${describeCounts(afterFirst ?? {})}`,
  );
  summary(results, o.rounds);
}

runBenchmark('throughput', 1, main);
