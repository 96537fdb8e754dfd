/**
 * OPS-6 overhead benchmark: with a warm cache, what do outbound_tls + outbound_mx
 * cost Haraka in throughput and in CPU per message, workload by workload?
 *
 * For each workload two real Haraka processes (or cluster trees) with the same
 * configuration deliver the same batches to the same STARTTLS sinks (valid
 * certificates from a test CA, trusted through NODE_EXTRA_CA_CERTS):
 *
 *   bare:    Haraka as shipped; its own get_mx (haraka-net-utils: MX, then AAAA + A
 *            of each MX host) asks the test DNS server, through the test-only plugin
 *            haraka-dns-servers, exactly the lookups it makes in production;
 *   plugins: the same Haraka with outbound_tls and outbound_mx (same DNS server).
 *
 * Workloads (each side warmed up first with one unmeasured full batch over the same
 * domains, so ratchet levels, MTA-STS policies and JIT are warm):
 *   few      5 domains × 100 messages
 *   many     250 domains × 2 messages
 *   cluster  smtp.ini nodes=2, the few workload
 *   cluster-mta-sts  nodes=2 and MTA-STS enforce on every domain
 *   mta-sts  the few workload, an MTA-STS enforce policy on every domain (TXT in the
 *            test DNS server, policies over HTTPS from the tests' policy server)
 *   redis    the few workload, outbound_tls.ini store=redis (a local redis-server)
 *
 * A batch is timed from the first submission to the sinks' receive time of the last
 * message; the CPU of the Haraka process tree (workers included) is read from /proc
 * before and after. Rounds alternate the order (bare, plugins / plugins, bare / …);
 * with --concurrent both sides get their batch at the same time (submissions
 * interleaved) and their CPU is read over the same window. The verdict uses the
 * median of the per-round plugins/bare ratios, printed with their range.
 * --control runs bare Haraka on both sides (a check of the method: ratios ≈ 1).
 * --fresh: new Haraka processes for every round (the stores stay warm on disk, the
 * processes' memory does not; CPU counted from when the trees have settled after
 * startup), the admin's view of a restarted server; --outside: each side's batch starts
 * as soon as its new Haraka answers on its port, CPU counted from there (what a
 * measurement from outside sees: cluster workers may still be loading plugins);
 * --size B: messages of B bytes.
 * --pin (Linux, 2+ CPUs): both Haraka process trees on one CPU, this process (the
 * submission client, the sinks, the DNS and policy servers) on another, so the
 * measured processes compete only with each other: the round-to-round spread
 * drops and a few-percent difference can be resolved in one run.
 *
 *   node dist/bench/overhead.js [--rounds R] [--connections C] [--sinks S] [--scale F]
 *                               [--warmup N] [--concurrent] [--control] [--pin]
 *                               [--fresh [--outside]] [--size B] [--log-level L]
 *                               [--workloads few,many,cluster,cluster-mta-sts,mta-sts,redis]
 *
 * Sinks listen on port 25 of 127.0.88.x (DNS MX records carry no port and bare
 * Haraka always connects to 25): run as root, or lower
 * net.ipv4.ip_unprivileged_port_start. Loopback only.
 */
import fs from 'node:fs';
import os from 'node:os';

/** --pin: the CPU of this process (client, sinks, servers) and the CPU both Haraka process trees share. */
const CLIENT_CPU = 0;
const MEASURED_CPU = 1;
import path from 'node:path';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import type { RatchetStore } from '#lib/ratchet/store';
import { TestDnsServer } from '../test/fixtures/dns-server';
import { HarakaInstance, sleep } from '../test/fixtures/haraka-instance';
import { PolicyServer, policyText } from '../test/fixtures/policy-server';
import { TestRedis } from '../test/fixtures/redis-server';
import { SmtpSink } from '../test/fixtures/smtp-sink';
import { TestCa } from '../test/fixtures/test-ca';
import {
  Cleanup,
  countRatchetLevels,
  fmt,
  lpad,
  median,
  pinProcessTree,
  pinToCpu,
  positiveOption,
  processTreeCpuByRole,
  processTreeCpuMs,
  waitUntilSettled,
  type TreeCpu,
  readOptions,
  relativeRange,
  verdict,
  runBenchmark,
} from './common';

/** OPS-6 limits: plugins/bare. */
const MIN_THROUGHPUT_RATIO = 0.97;
const MAX_CPU_RATIO = 1.03;

/** Haraka's log levels (log.ini [main] level); the bench runs at warn unless --log-level says otherwise. */
const LOG_LEVELS = ['data', 'protocol', 'debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg'];
const logIni = (level: string): string => `[main]\nlevel=${level}\n`;
const SINK_NET = '127.0.88.';
const SMTP_PORT = 25;
const POLICY_HOST = '127.0.0.1';
const DEFAULT_ROUNDS = 5;
const RATCHET_PREFIX = 'bench:';

type Side = 'bare' | 'plugins';
const BARE_PLUGINS = ['haraka-dns-servers'];
/** BENCH_PLUGINS=a,b (config/plugins of the plugins side): measure part of the layer, e.g. outbound_tls alone. */
const WITH_PLUGINS = process.env.BENCH_PLUGINS
  ? process.env.BENCH_PLUGINS.split(',').map((name) => name.trim())
  : ['haraka-dns-servers', 'outbound_tls', 'outbound_mx'];
const WORKLOAD_NAMES = ['few', 'many', 'cluster', 'cluster-mta-sts', 'mta-sts', 'redis'] as const;
/** The workloads run when --workloads is not given (cluster-mta-sts only on request). */
const DEFAULT_WORKLOADS: WorkloadName[] = ['few', 'many', 'cluster', 'mta-sts', 'redis'];
type WorkloadName = (typeof WORKLOAD_NAMES)[number];

interface Workload {
  name: WorkloadName;
  domains: number;
  perDomain: number;
  nodes?: number;
  mtaSts?: boolean;
  redis?: boolean;
  describe: string;
}

interface Options {
  rounds: number;
  connections: number;
  sinks: number;
  scale: number;
  /** messages per side in the unmeasured warm-up; 0: a full batch */
  warmup: number;
  /** both sides get their batch at the same time (submissions interleaved) */
  concurrent: boolean;
  /** control run: the "plugins" side runs bare Haraka too (the ratios should be 1) */
  control: boolean;
  /** both Haraka process trees on CPU 1, this process on CPU 0 */
  pin: boolean;
  /** new Haraka processes for every round (stores kept); --warmup is then per process, default none */
  fresh: boolean;
  /** --fresh as an outside measurement: each side's batch starts once its new Haraka's port answers (CPU counted from there) */
  outside: boolean;
  /** bytes per message (headers and body); 0: a one-line text message */
  size: number;
  /** log.ini [main] level of both Haraka (default warn; info: every decision logged, as config/log.ini ships) */
  logLevel: string;
  workloads: WorkloadName[];
}

interface BatchResult extends BatchOutcome {
  round: number;
  rate: number;
}

/** A series of per-round values: its median and range. */
interface Series {
  median: number;
  min: number;
  max: number;
}

interface WorkloadResult {
  workload: Workload;
  bareRate: number;
  pluginsRate: number;
  bareCpu: number;
  pluginsCpu: number;
  /** plugins/bare of each round (the two batches of a round are adjacent, or concurrent) */
  rateRatio: Series;
  cpuRatio: Series;
  /** (max − min) / median of each side's CPU ms/msg over the rounds */
  bareCpuSpread: number;
  pluginsCpuSpread: number;
}

const series = (xs: number[]): Series => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
const showSeries = (x: Series, digits = 3): string => `${fmt(x.median, digits)} [${fmt(x.min, digits)}–${fmt(x.max, digits)}]`;

function usage(): string {
  return (
    'usage: node dist/bench/overhead.js [--rounds R] [--connections C] [--sinks S] [--scale F] [--warmup N] [--concurrent] [--control] [--pin] ' +
    '[--fresh [--outside]] [--size B] [--log-level L] ' +
    `[--workloads ${WORKLOAD_NAMES.join(',')}]`
  );
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['rounds', 'connections', 'sinks', 'scale', 'warmup', 'size', 'log-level', 'workloads'], usage(), [
    'concurrent',
    'control',
    'pin',
    'fresh',
    'outside',
  ]);
  const workloads = (values.workloads ?? DEFAULT_WORKLOADS.join(','))
    .split(',')
    .map((w) => w.trim())
    .filter(Boolean);
  for (const w of workloads) {
    if (!(WORKLOAD_NAMES as readonly string[]).includes(w)) throw new Error(`--workloads: unknown workload ${w}\n${usage()}`);
  }
  return {
    rounds: positiveOption('rounds', values.rounds, DEFAULT_ROUNDS, 100, usage()),
    connections: positiveOption('connections', values.connections, 4, 100, usage()),
    sinks: positiveOption('sinks', values.sinks, 5, 250, usage()),
    scale: positiveOption('scale', values.scale, 1, 100, usage()),
    warmup: positiveOption('warmup', values.warmup, 0, 100_000, usage()),
    concurrent: values.concurrent === 'true',
    control: values.control === 'true',
    pin: values.pin === 'true',
    fresh: values.fresh === 'true' || values.outside === 'true',
    outside: values.outside === 'true',
    size: values.size === undefined ? 0 : positiveOption('size', values.size, 0, 10_000_000, usage()),
    logLevel: logLevelOption(values['log-level']),
    workloads: workloads as WorkloadName[],
  };
}

function logLevelOption(value: string | undefined): string {
  const level = (value ?? 'warn').toLowerCase();
  if (!LOG_LEVELS.includes(level)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${value}\n${usage()}`);
  return level;
}

function workloads(o: Options): Workload[] {
  const all: Workload[] = [
    { name: 'few', domains: 5, perDomain: 100 * o.scale, describe: 'few domains, many messages' },
    { name: 'many', domains: 250, perDomain: 2 * o.scale, describe: 'many domains, few messages' },
    { name: 'cluster', domains: 5, perDomain: 100 * o.scale, nodes: 2, describe: 'cluster nodes=2, few domains' },
    {
      name: 'cluster-mta-sts',
      domains: 5,
      perDomain: 100 * o.scale,
      nodes: 2,
      mtaSts: true,
      describe: 'cluster nodes=2, MTA-STS enforce on every domain',
    },
    { name: 'mta-sts', domains: 5, perDomain: 100 * o.scale, mtaSts: true, describe: 'MTA-STS enforce on every domain' },
    { name: 'redis', domains: 5, perDomain: 100 * o.scale, redis: true, describe: 'Redis store (store=redis)' },
  ];
  return all.filter((w) => o.workloads.includes(w.name));
}

/** What every workload shares: the CA, the sinks (port 25), the DNS server, the policy server. */
interface Shared {
  work: string;
  ca: TestCa;
  sinks: SmtpSink[];
  mxNames: string[];
  dns: TestDnsServer;
  policies: PolicyServer;
}

async function setUpShared(o: Options, cleanup: Cleanup): Promise<Shared> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'haraka-overhead-'));
  cleanup.add(`remove ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));
  const ca = await TestCa.create();
  cleanup.add('remove the test CA', () => ca.cleanup());
  const mxNames = Array.from({ length: o.sinks }, (_, i) => `mx${i + 1}.overhead.test`);
  const sinks: SmtpSink[] = [];
  cleanup.add('stop the sinks', async () => {
    await Promise.all(sinks.map((s) => s.stop()));
  });
  for (const [i, name] of mxNames.entries()) {
    const leaf = await ca.issue({ dnsNames: [name] });
    try {
      sinks.push(await SmtpSink.start({ host: `${SINK_NET}${i + 1}`, port: SMTP_PORT, tls: { key: leaf.key, cert: leaf.cert }, name }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(
        `cannot listen on ${SINK_NET}${i + 1}:${SMTP_PORT} (${code ?? (err as Error).message}): bare Haraka delivers to port 25 ` +
          `(MX records carry no port); run as root or lower net.ipv4.ip_unprivileged_port_start`,
        { cause: err },
      );
    }
  }
  // TTL 300 s, typical of MX and address records (the plugins cache answers for their TTL; bare Haraka does not cache).
  const dns = await TestDnsServer.start({ defaultTtl: 300 });
  cleanup.add('stop the DNS server', () => dns.stop());
  mxNames.forEach((name, i) => dns.add(name, { type: 'A', address: `${SINK_NET}${i + 1}` }));
  const policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  cleanup.add('stop the policy server', () => policies.stop());
  return { work, ca, sinks, mxNames, dns, policies };
}

/** Our Haraka processes of `dir`, killed by pid when a start failed half-way (see throughput.ts). */
function killOwnHaraka(dir: string): void {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return;
  }
  for (const entry of entries) {
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const c = args.indexOf('-c');
      if (c >= 0 && args[c + 1] === dir) process.kill(Number(entry), 'SIGKILL');
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
}

interface WorkloadSetup {
  domains: string[];
  instances: Record<Side, HarakaInstance>;
  ratchetUrl: string;
  /** --fresh: stops Haraka (both by default) and starts new ones on the same directories (queue, stores and config kept) */
  restart: (sides?: readonly Side[]) => Promise<void>;
  stop: () => Promise<void>;
}

async function setUpWorkload(w: Workload, shared: Shared, control: boolean, logLevel: string): Promise<WorkloadSetup> {
  const local = new Cleanup();
  try {
    const { dns, policies, ca, mxNames } = shared;
    const domains = Array.from({ length: w.domains }, (_, j) => `d${j + 1}.${w.name}.test`);
    for (const [j, domain] of domains.entries()) {
      const mx = mxNames[j % mxNames.length] as string;
      dns.set(domain, [{ type: 'MX', preference: 10, exchange: mx }]);
      if (w.mtaSts) {
        dns.set(`_mta-sts.${domain}`, [{ type: 'TXT', data: `v=STSv1; id=overhead${j + 1}` }]);
        dns.set(`mta-sts.${domain}`, [{ type: 'A', address: POLICY_HOST }]);
        await policies.set(domain, { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: [mx] }) });
      }
    }
    let storeConfig: Record<string, string> = {};
    let ratchetUrl = '';
    if (w.redis) {
      const redis = await TestRedis.start();
      local.add('stop redis-server', () => redis.stop());
      storeConfig = {
        'outbound_tls.ini': `[main]\nstore=redis\nredis_prefix=${RATCHET_PREFIX}\n`,
        'redis.ini': `[server]\nhost=127.0.0.1\nport=${redis.port}\n`,
      };
      ratchetUrl = `${redis.url}/?prefix=${RATCHET_PREFIX}`;
    }
    const start = async (side: Side, plugins: string[]): Promise<HarakaInstance> => {
      const dir = path.join(shared.work, `${w.name}-${side}`);
      fs.mkdirSync(dir, { recursive: true });
      local.add(`kill a ${side} Haraka left over`, () => killOwnHaraka(dir));
      const instance = await HarakaInstance.start({
        dir,
        dnsServer: dns.address,
        mxPort: SMTP_PORT,
        plugins,
        extraCa: ca.caCertPath,
        ...(w.nodes ? { nodes: w.nodes } : {}),
        // The same files on both sides; bare Haraka does not read outbound_mx.ini or outbound_tls.ini.
        config: { 'log.ini': logIni(logLevel), ...storeConfig },
        mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`].join('\n'),
        env: {
          HARAKA_DNS_SERVERS: dns.address,
          // BENCH_PROFILE_DIR=/some/dir: a CPU profile of each Haraka (node --cpu-prof), to see where the time goes.
          ...(process.env.BENCH_PROFILE_DIR
            ? {
                HARAKA_NODE_ARGS:
                  `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}/${side}` +
                  // BENCH_PROFILE_INTERVAL: the sampling interval in µs (node's default: 1000).
                  (process.env.BENCH_PROFILE_INTERVAL ? ` --cpu-prof-interval=${process.env.BENCH_PROFILE_INTERVAL}` : ''),
              }
            : {}),
        },
      });
      local.add(`stop the ${side} Haraka`, () => instance.stop());
      return instance;
    };
    const startBoth = async (): Promise<Record<Side, HarakaInstance>> => {
      const [bare, plugins] = await Promise.allSettled([
        start('bare', BARE_PLUGINS),
        start('plugins', control ? BARE_PLUGINS : WITH_PLUGINS),
      ]);
      if (bare.status === 'rejected') throw bare.reason;
      if (plugins.status === 'rejected') throw plugins.reason;
      return { bare: bare.value, plugins: plugins.value };
    };
    const instances = await startBoth();
    if (!ratchetUrl) ratchetUrl = `file:${path.join(instances.plugins.dir, 'data', 'ratchet')}`;
    const restart = async (sides: readonly Side[] = ['bare', 'plugins']): Promise<void> => {
      await Promise.all(sides.map((side) => instances[side].stop()));
      if (sides.length === 2) Object.assign(instances, await startBoth());
      else for (const side of sides) instances[side] = await start(side, side === 'bare' || control ? BARE_PLUGINS : WITH_PLUGINS);
    };
    return { domains, instances, ratchetUrl, restart, stop: () => local.runAll() };
  } catch (err) {
    await local.runAll();
    throw err;
  }
}

function diagnostics(instance: HarakaInstance): string {
  const events = instance.events().filter((e) => e.event === 'deferred' || e.event === 'bounce');
  return [
    `queued: ${instance.queueFiles().length}`,
    `last deferrals/bounces: ${JSON.stringify(events.slice(-5))}`,
    `log tail:\n${instance.logLines.slice(-20).join('\n')}`,
  ].join('\n');
}

function countByType(dns: TestDnsServer): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const q of dns.queries()) counts[q.type] = (counts[q.type] ?? 0) + 1;
  return counts;
}

/** One side's share of a batch: `count` messages through `instance`, recipients tagged `tag`. */
interface BatchSpec {
  side: Side;
  instance: HarakaInstance;
  tag: string;
  count: number;
}

interface BatchOutcome {
  side: Side;
  messages: number;
  seconds: number;
  cpuMs: number;
  /** the CPU of Haraka's main process, and of each cluster worker (none without a cluster) */
  mainCpuMs: number;
  workerCpuMs: number[];
  /** messages delivered by each process (the recorder's pid), largest first */
  deliveredBy: number[];
  secure: number;
}

/**
 * A message of exactly `size` bytes (CRLF lines, headers and a body of 76-character
 * lines), as an admin's 2 KiB test mail; size 0: nodemailer's one-line text message.
 */
function message(from: string, to: string, subject: string, size: number): SendMailOptions {
  const text = `benchmark message ${subject}\n`;
  if (size === 0) return { from, to, subject, text };
  const head = [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${subject.replace(/\W/g, '.')}@client.test>`,
    '',
  ].join('\r\n');
  let body = '\r\n';
  const line = `${'x'.repeat(76)}\r\n`;
  while (head.length + body.length + line.length <= size) body += line;
  body += 'y'.repeat(Math.max(0, size - head.length - body.length - 2)) + '\r\n';
  return { envelope: { from, to: [to] }, raw: head + body };
}

/** The messages the sinks hold for `tag`, each with the sink's receive time. */
function receivedFor(sinks: SmtpSink[], tag: string): Array<{ at: number; secure: boolean }> {
  const marker = `.${tag}@`;
  const out: Array<{ at: number; secure: boolean }> = [];
  for (const sink of sinks) {
    // a sink records the `data` event and the message in the same callback: the n-th of each belong together
    const data = sink.events.filter((e) => e.kind === 'data');
    sink.messages.forEach((m, i) => {
      if (m.to.some((rcpt) => rcpt.includes(marker))) out.push({ at: data[i]?.at ?? NaN, secure: m.secure });
    });
  }
  return out;
}

/**
 * Submits each spec's messages (round robin over `domains`) through its own pool of
 * `connections` SMTP connections to its Haraka, all specs at the same time with the
 * submissions interleaved (one spec: a plain batch); waits until the sinks hold all of
 * them and every Haraka's queue is empty. The CPU of each Haraka tree is read over
 * the same window: from before the first submission until all specs are done.
 * Returns per spec the time to its last message and its CPU, and what the servers saw.
 */
async function runBatches(
  specs: BatchSpec[],
  shared: Shared,
  domains: string[],
  connections: number,
  size: number,
): Promise<{ outcomes: BatchOutcome[]; dns: Record<string, number>; https: number; connections: number }> {
  const { sinks, dns, policies } = shared;
  for (const s of sinks) s.reset();
  dns.resetLog();
  policies.resetLog();
  const cpuBefore = specs.map((s) => processTreeCpuByRole(s.instance.dir));
  const transports = specs.map((s) =>
    nodemailer.createTransport({
      pool: true,
      maxConnections: connections,
      maxMessages: Infinity,
      host: '127.0.0.1',
      port: s.instance.port,
      secure: false,
      ignoreTLS: true,
      name: 'client.test',
    }),
  );
  const total = specs.reduce((n, s) => n + s.count, 0);
  const started = Date.now();
  const eventsBefore = specs.map((s) => s.instance.events().length);
  try {
    const sends: Array<Promise<unknown>> = [];
    for (let k = 0; k < Math.max(...specs.map((s) => s.count)); k++) {
      specs.forEach((spec, i) => {
        if (k >= spec.count) return;
        sends.push(
          (transports[i] as (typeof transports)[number]).sendMail(
            message('sender@sender.test', `u${k}.${spec.tag}@${domains[k % domains.length] as string}`, `overhead ${spec.tag} ${k}`, size),
          ),
        );
      });
    }
    await Promise.all(sends);
  } finally {
    for (const t of transports) t.close();
  }
  const deadline = started + Math.max(60_000, total * 200);
  let lastCount = -1;
  let lastProgress = Date.now();
  for (;;) {
    const n = sinks.reduce((sum, s) => sum + s.messages.length, 0);
    if (n >= total) break;
    const now = Date.now();
    if (n !== lastCount) {
      lastCount = n;
      lastProgress = now;
    }
    if (now > deadline || now - lastProgress > 20_000) {
      const late = specs.find((s) => receivedFor(sinks, s.tag).length < s.count) ?? (specs[0] as BatchSpec);
      throw new Error(`batch ${late.tag}: only ${n} of ${total} messages reached the sinks\n${diagnostics(late.instance)}`);
    }
    await sleep(20);
  }
  const held = sinks.reduce((sum, s) => sum + s.messages.length, 0);
  const mine = specs.map((s) => receivedFor(sinks, s.tag));
  specs.forEach((s, i) => {
    const got = (mine[i] as unknown[]).length;
    if (got !== s.count || held !== total) {
      throw new Error(`batch ${s.tag}: the sinks hold ${held} messages, ${got} of this batch (expected ${s.count} of ${total})`);
    }
  });
  // Haraka's bookkeeping of the batch (queue files removed) belongs to the batch's CPU.
  const settle = Date.now() + 10_000;
  while (specs.some((s) => s.instance.queueFiles().length > 0) && Date.now() < settle) await sleep(20);
  const cpuAfter = specs.map((s) => processTreeCpuByRole(s.instance.dir));
  const outcomes = specs.map((s, i): BatchOutcome => {
    const got = mine[i] as Array<{ at: number; secure: boolean }>;
    const [before, after] = [cpuBefore[i] as TreeCpu, cpuAfter[i] as TreeCpu];
    // a worker started during the batch counts from 0
    const workerCpuMs = [...after.workers].map(([pid, ms]) => ms - (before.workers.get(pid) ?? 0));
    const mainCpuMs = after.main - before.main;
    const perPid = new Map<number, number>();
    for (const e of s.instance.events().slice(eventsBefore[i])) {
      if (e.event === 'delivered') perPid.set(e.pid, (perPid.get(e.pid) ?? 0) + 1);
    }
    return {
      side: s.side,
      messages: s.count,
      seconds: (Math.max(...got.map((m) => m.at)) - started) / 1000,
      cpuMs: mainCpuMs + workerCpuMs.reduce((a, b) => a + b, 0),
      mainCpuMs,
      workerCpuMs,
      deliveredBy: [...perPid.values()].sort((a, b) => b - a),
      secure: got.filter((m) => m.secure).length,
    };
  });
  // SMTP connections the sinks accepted (both sides' when concurrent)
  const accepted = sinks.reduce((n, sink) => n + sink.count('connect'), 0);
  const result = { outcomes, dns: countByType(dns), https: policies.requests().length, connections: accepted };
  await sleep(200);
  return result;
}

async function ratchetCounts(url: string, domains: string[]): Promise<string> {
  const store: RatchetStore = url.startsWith('file:') ? new FileRatchetStore(url.slice('file:'.length)) : openRatchetStoreFromUrl(url);
  const counts = await countRatchetLevels(store, domains);
  return (
    Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ') || 'none'
  );
}

function perMessage(dns: Record<string, number>, messages: number): string {
  const types = Object.keys(dns).sort();
  if (types.length === 0) return 'none';
  return types.map((t) => `${t} ${fmt((dns[t] ?? 0) / messages, 2)}`).join(', ');
}

/**
 * --fresh: new Haraka processes on the same directories, CPU counted from when
 * every process of both trees has settled after startup (printed: what startup
 * cost), then pinned, then --warmup N messages per side if asked.
 */
async function freshProcesses(
  setup: WorkloadSetup,
  w: Workload,
  o: Options,
  shared: Shared,
  round: number,
  pin: () => void,
): Promise<void> {
  const t0 = Date.now();
  await setup.restart();
  const sides = ['bare', 'plugins'] as const;
  // what an outside measurement sees first: the port answers (one worker is up; others may still be loading plugins)
  const answered = sides.map((side) => processTreeCpuMs(setup.instances[side].dir));
  const processes = 1 + (w.nodes ?? 0);
  const settled = await Promise.all(sides.map((side) => waitUntilSettled(setup.instances[side].dir, processes)));
  pin();
  let warm = '';
  if (o.warmup > 0) {
    for (const side of sides) {
      const spec = { side, instance: setup.instances[side], tag: `${w.name}r${round}w${side[0]}`, count: o.warmup };
      const r = await runBatches([spec], shared, setup.domains, o.connections, o.size);
      warm += `, warm-up ${side} ${fmt((r.outcomes[0]?.cpuMs ?? NaN) / o.warmup, 2)} CPU ms/msg`;
    }
  }
  const startup = (i: number): string => `${fmt(answered[i] ?? NaN, 0)} + ${fmt((settled[i] ?? NaN) - (answered[i] ?? NaN), 0)} ms`;
  console.log(
    `   fresh Haraka for round ${round} in ${fmt((Date.now() - t0) / 1000)} s; startup CPU until the port answered + until settled ` +
      `(${processes} process(es), not counted): bare ${startup(0)}, plugins ${startup(1)}${warm}`,
  );
}

async function runWorkload(w: Workload, o: Options, shared: Shared): Promise<WorkloadResult> {
  const messages = w.domains * w.perDomain;
  console.log(
    `\n== ${w.name}: ${w.describe}: ${w.domains} domains × ${w.perDomain} messages = ${messages} per batch` +
      `${w.nodes ? `, nodes=${w.nodes}` : ''}, ${o.rounds} round(s)${o.concurrent ? ', both sides at once' : ''}`,
  );
  const t0 = Date.now();
  const setup = await setUpWorkload(w, shared, o.control, o.logLevel);
  try {
    const { domains, instances } = setup;
    console.log(`   set up in ${fmt((Date.now() - t0) / 1000)} s: bare :${instances.bare.port}, plugins :${instances.plugins.port}`);
    // Warm-up over the same domains: ratchet raised, MTA-STS policies fetched, JIT and TLS contexts warm.
    // One side at a time, so the DNS queries of each side are its own.
    // --fresh: the stores are warmed once by a full batch; --warmup is each new process's own.
    const warmCount = Math.max((!o.fresh && o.warmup) || messages, w.domains);
    // --pin: again before every batch, for cluster workers started since.
    const pin = (): void => {
      if (o.pin) for (const side of ['bare', 'plugins'] as const) pinProcessTree(instances[side].dir, MEASURED_CPU);
    };
    pin();
    for (const side of ['bare', 'plugins'] as const) {
      const spec = { side, instance: instances[side], tag: `${w.name}w${side[0]}`, count: warmCount };
      const r = await runBatches([spec], shared, domains, o.connections, o.size);
      const bareDns = r.dns.MX ?? 0;
      console.log(
        `   warm-up ${lpad(side, 7)}: ${warmCount} messages, ${fmt((r.outcomes[0]?.cpuMs ?? NaN) / warmCount, 2)} CPU ms/msg, ` +
          `DNS queries per message: ${perMessage(r.dns, warmCount)}${r.https ? `; ${r.https} HTTPS policy fetch(es)` : ''}`,
      );
      if (side === 'bare' && bareDns === 0) {
        throw new Error('bare Haraka asked the test DNS server no MX query: haraka-dns-servers did not take effect');
      }
    }
    if (!o.control) {
      console.log(`   ratchet of the ${domains.length} domains after the warm-up: ${await ratchetCounts(setup.ratchetUrl, domains)}`);
    }

    const results: BatchResult[] = [];
    console.log(
      `   ${'round'.padEnd(5)} ${'side'.padEnd(7)} ${lpad('seconds', 7)} ${lpad('msg/s', 7)} ${lpad('CPU ms/msg', 10)} ${lpad('STARTTLS', 9)}  ` +
        `DNS queries per message${o.concurrent ? ' (both sides)' : ''}; HTTPS; SMTP connections the sinks accepted per message`,
    );
    const show = (r: BatchResult, dns: Record<string, number>, https: number, dnsMessages: number, connections: number): void => {
      // In a cluster: whose CPU (main process + each worker) and which worker delivered how many.
      const roles = w.nodes
        ? `; CPU ms/msg main ${fmt(r.mainCpuMs / r.messages, 2)} + workers ${r.workerCpuMs.map((ms) => fmt(ms / r.messages, 2)).join(' + ')}` +
          `, delivered ${r.deliveredBy.join('/')}`
        : '';
      console.log(
        `   ${String(r.round).padEnd(5)} ${r.side.padEnd(7)} ${lpad(fmt(r.seconds, 2), 7)} ${lpad(fmt(r.rate), 7)} ` +
          `${lpad(fmt(r.cpuMs / r.messages, 2), 10)} ${lpad(`${r.secure}/${r.messages}`, 9)}  ${perMessage(dns, dnsMessages)}; ${https}; ` +
          `SMTP connections per message ${fmt(connections / dnsMessages, 2)}${roles}`,
      );
    };
    const cpuRatios: number[] = [];
    const rateRatios: number[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      if (o.fresh && !o.outside) await freshProcesses(setup, w, o, shared, round, pin);
      // --outside: each batch right after its Haraka answered, as measured from outside (startup not over in every process)
      const outside = async (sides: Side[]): Promise<void> => {
        if (!o.outside) return;
        await setup.restart(sides);
        pin();
        const early = sides.map((side) => `${side} ${fmt(processTreeCpuMs(instances[side].dir), 0)} ms`).join(', ');
        console.log(`   fresh Haraka, CPU until the port answered (not counted): ${early}`);
      };
      if (o.concurrent) await outside(['bare', 'plugins']);
      pin();
      const order: Side[] = round % 2 === 1 ? ['bare', 'plugins'] : ['plugins', 'bare'];
      const spec = (side: Side): BatchSpec => ({ side, instance: instances[side], tag: `${w.name}r${round}${side[0]}`, count: messages });
      const pair: BatchResult[] = [];
      if (o.concurrent) {
        const r = await runBatches(order.map(spec), shared, domains, o.connections, o.size);
        for (const out of r.outcomes) {
          const result: BatchResult = { ...out, round, rate: out.messages / out.seconds };
          pair.push(result);
          show(result, r.dns, r.https, 2 * messages, r.connections);
        }
      } else {
        for (const side of order) {
          await outside([side]);
          const r = await runBatches([spec(side)], shared, domains, o.connections, o.size);
          const out = r.outcomes[0] as BatchOutcome;
          const result: BatchResult = { ...out, round, rate: out.messages / out.seconds };
          pair.push(result);
          show(result, r.dns, r.https, messages, r.connections);
        }
      }
      results.push(...pair);
      const of = (side: Side): BatchResult => pair.find((r) => r.side === side) as BatchResult;
      cpuRatios.push(of('plugins').cpuMs / of('plugins').messages / (of('bare').cpuMs / of('bare').messages));
      rateRatios.push(of('plugins').rate / of('bare').rate);
    }
    const sideValues = (side: Side, f: (r: BatchResult) => number): number[] => results.filter((r) => r.side === side).map(f);
    const cpuPerMsg = (r: BatchResult): number => r.cpuMs / r.messages;
    const result: WorkloadResult = {
      workload: w,
      bareRate: median(sideValues('bare', (r) => r.rate)),
      pluginsRate: median(sideValues('plugins', (r) => r.rate)),
      bareCpu: median(sideValues('bare', cpuPerMsg)),
      pluginsCpu: median(sideValues('plugins', cpuPerMsg)),
      rateRatio: series(rateRatios),
      cpuRatio: series(cpuRatios),
      bareCpuSpread: relativeRange(sideValues('bare', cpuPerMsg)),
      pluginsCpuSpread: relativeRange(sideValues('plugins', cpuPerMsg)),
    };
    console.log(
      `   medians: bare ${fmt(result.bareRate)} msg/s, ${fmt(result.bareCpu, 2)} CPU ms/msg (rounds spread ±${fmt(50 * result.bareCpuSpread, 1)}%); ` +
        `plugins ${fmt(result.pluginsRate)} msg/s, ${fmt(result.pluginsCpu, 2)} CPU ms/msg (±${fmt(50 * result.pluginsCpuSpread, 1)}%); ` +
        `ratio of the medians: throughput ${fmt(result.pluginsRate / result.bareRate, 3)}, CPU ${fmt(result.pluginsCpu / result.bareCpu, 3)}`,
    );
    console.log(
      `   paired plugins/bare per round: throughput ${rateRatios.map((x) => fmt(x, 3)).join(' ')} → ${showSeries(result.rateRatio)}; ` +
        `CPU per message ${cpuRatios.map((x) => fmt(x, 3)).join(' ')} → ${showSeries(result.cpuRatio)}`,
    );
    return result;
  } finally {
    await setup.stop();
  }
}

/**
 * PASS when the median of the paired ratios is within the limit, FAIL when not; a `?`
 * when the rounds' range straddles the limit (the verdict is within the noise).
 */
function judge(x: Series, ok: (v: number) => boolean): { pass: boolean; text: string } {
  const pass = ok(x.median);
  const sure = ok(x.min) === ok(x.max);
  return { pass, text: `${verdict(pass)}${sure ? '' : '?'}` };
}

function summary(results: WorkloadResult[], o: Options): boolean {
  console.log(
    `\nsummary: OPS-6, plugins/bare with a warm cache: median of the ${o.rounds} paired round ratios [min–max]` +
      `${o.concurrent ? ', both sides at once' : ''}; limits: throughput ≥ ${MIN_THROUGHPUT_RATIO}, Haraka CPU per message ≤ ${MAX_CPU_RATIO}` +
      ` (? = the range straddles the limit)`,
  );
  const header = [
    'workload'.padEnd(9),
    lpad('bare msg/s', 10),
    lpad('plugins', 8),
    lpad('throughput ratio', 22),
    '     ',
    lpad('bare CPU ms/msg', 15),
    lpad('plugins', 8),
    lpad('CPU ratio', 22),
    '     ',
  ];
  console.log(`  ${header.join(' ')}`);
  let allPass = true;
  for (const r of results) {
    const tput = judge(r.rateRatio, (v) => v >= MIN_THROUGHPUT_RATIO);
    const cpu = judge(r.cpuRatio, (v) => v <= MAX_CPU_RATIO);
    allPass &&= tput.pass && cpu.pass;
    console.log(
      `  ${[
        r.workload.name.padEnd(9),
        lpad(fmt(r.bareRate), 10),
        lpad(fmt(r.pluginsRate), 8),
        lpad(showSeries(r.rateRatio), 22),
        tput.text.padEnd(5),
        lpad(fmt(r.bareCpu, 2), 15),
        lpad(fmt(r.pluginsCpu, 2), 8),
        lpad(showSeries(r.cpuRatio), 22),
        cpu.text,
      ].join(' ')}`,
    );
  }
  return allPass;
}

/** Exit status 0 after a complete run, PASS or FAIL (the summary says which); 2 when the run failed. */
async function main(cleanup: Cleanup): Promise<void> {
  const o = options(process.argv.slice(2));
  if (o.pin) {
    if (os.cpus().length < 2) throw new Error('--pin needs at least 2 CPUs');
    pinToCpu(process.pid, CLIENT_CPU);
  }
  console.log(
    `overhead (OPS-6): ${o.workloads.join(', ')}; ${o.sinks} STARTTLS sinks on ${SINK_NET}1-${o.sinks}:${SMTP_PORT}, ` +
      `${o.connections} submission connections, ${o.rounds} round(s), warm-up ${o.warmup || 'a full batch'} per side` +
      `${o.concurrent ? ', both sides at once' : ', one side after the other'}` +
      `${o.control ? '; CONTROL RUN: the plugins side is bare Haraka too' : ''}` +
      `${o.fresh ? `; fresh Haraka processes every ${o.outside ? 'batch, measured from when the port answered' : 'round'}` : ''}${o.size ? `; ${o.size}-byte messages` : ''}${o.logLevel !== 'warn' ? `; log level ${o.logLevel}` : ''}` +
      `${o.pin ? `; pinned: both Haraka on CPU ${MEASURED_CPU}, client/sinks/DNS on CPU ${CLIENT_CPU}` : ''}; ${os.cpus().length} CPU(s), Node ${process.version}`,
  );
  const shared = await setUpShared(o, cleanup);
  const results: WorkloadResult[] = [];
  for (const w of workloads(o)) results.push(await runWorkload(w, o, shared));
  const pass = summary(results, o);
  console.log(`\nOPS-6 overhead: ${pass ? 'PASS on every workload' : 'FAIL (see the table)'}`);
}

runBenchmark('overhead', 2, main);
