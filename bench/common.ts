/**
 * What the benchmark scripts share: option checking, cleanup that also runs on
 * Ctrl-C, and the few statistics and number formats they print.
 */
import type { RatchetStore } from '#lib/ratchet/store';
import { SecLevel } from '#lib/sec-level';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A whole number option from 1 to `max`; `fallback` when absent. */
export function positiveOption(name: string, value: string | undefined, fallback: number, max: number, usage: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}, got ${value}\n${usage}`);
  return n;
}

/** Cleanup steps, run last-in first-out, each one even if an earlier one failed. */
export class Cleanup {
  private readonly steps: Array<{ what: string; run: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;

  add(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  runAll(): Promise<void> {
    if (!this.running) {
      this.running = (async () => {
        while (this.steps.length > 0) {
          const step = this.steps.pop();
          if (!step) break;
          try {
            await step.run();
          } catch (err) {
            console.error(`cleanup: ${step.what} failed: ${(err as Error).message}`);
          }
        }
      })();
    }
    return this.running;
  }

  /** On SIGINT/SIGTERM: clean up, then exit 130. */
  onInterrupt(): void {
    const interrupted = (signal: NodeJS.Signals): void => {
      console.error(`\n${signal}: stopping servers and removing temporary directories`);
      this.runAll().finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
/** The q-quantile (0…1) of `xs`, linear interpolation between the sorted values. */
export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
};
/** (max − min) / median: how far the values of one series stray, as a fraction. */
export const relativeRange = (xs: number[]): number => (Math.max(...xs) - Math.min(...xs)) / median(xs);
export const fmt = (n: number, digits = 1): string => n.toFixed(digits);
export const lpad = (s: string, n: number): string => s.padStart(n);

/**
 * `--name value` options (all strings), `--flag` switches (value `'true'` when given)
 * and `-h/--help`, which prints `usage` and exits.
 */
export function readOptions(
  argv: string[],
  names: readonly string[],
  usage: string,
  flags: readonly string[] = [],
): Record<string, string | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
      ...Object.fromEntries(flags.map((name) => [name, { type: 'boolean' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const found = values as Record<string, string | boolean | undefined>;
  return Object.fromEntries([
    ...names.map((name) => [name, typeof found[name] === 'string' ? found[name] : undefined]),
    ...flags.map((name) => [name, found[name] === true ? 'true' : undefined]),
  ]);
}

/** USER_HZ: the unit of the CPU times in /proc/<pid>/stat (100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime of the process itself, clock ticks */
  ticks: number;
  /** cutime + cstime: children that exited and were waited for, clock ticks */
  childTicks: number;
}

function readProcStat(pid: number): ProcStat | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after "pid (comm) ": fields[0] is field 3 (state); ppid is field 4; utime, stime, cutime, cstime are fields 14-17
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
      childTicks: Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return undefined; // gone meanwhile, or not readable
  }
}

function commandLine(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/**
 * CPU time (user + system, ms) used so far by a Haraka instance's whole process tree
 * (Linux /proc): our child processes started with `-c <dir>` and all their
 * descendants (bin/haraka's server process, cluster workers), plus what their
 * exited and reaped children used. NaN when no such process is found.
 */
export function processTreeCpuMs(dir: string): number {
  const tree = processTree(dir);
  if (tree.length === 0) return NaN;
  const ticks = tree.reduce((sum, p) => sum + p.ticks + p.childTicks, 0);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time (ms, as processTreeCpuMs) of a Haraka tree by role: Haraka's main process (with reaped children) and each cluster worker by pid. */
export interface TreeCpu {
  main: number;
  workers: Map<number, number>;
}

export function processTreeCpuByRole(dir: string): TreeCpu {
  const tree = processTree(dir);
  const ms = (ticks: number): number => (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  const main = tree.find((p) => p.ppid === process.pid);
  const workers = new Map(tree.filter((p) => p !== main).map((p) => [p.pid, ms(p.ticks + p.childTicks)]));
  return { main: main ? ms(main.ticks + main.childTicks) : NaN, workers };
}

/**
 * Waits until a Haraka tree has `processes` processes that used at most 5% of a
 * CPU each over `quietMs` (startup done: plugins loaded, workers listening).
 * Returns the tree's CPU time so far (ms); throws after `timeoutMs`.
 */
export async function waitUntilSettled(dir: string, processes: number, quietMs = 500, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  for (;;) {
    const tree = processTree(dir);
    const now = processTreeCpuMs(dir);
    // at most 5% of a CPU per process: idle timers, a sampling profiler (BENCH_PROFILE_DIR)
    if (tree.length >= processes && now - last <= Math.max(1000 / CLOCK_TICKS_PER_SECOND, 0.05 * quietMs * tree.length)) return now;
    if (Date.now() > deadline) throw new Error(`Haraka in ${dir} did not settle: ${tree.length} of ${processes} processes`);
    last = tree.length >= processes ? now : NaN;
    await new Promise((resolve) => setTimeout(resolve, quietMs));
  }
}

/** The live processes of a Haraka instance started with `-c <dir>` by this process, and all their descendants. */
function processTree(dir: string): ProcStat[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const all = entries.map((e) => readProcStat(Number(e))).filter((p): p is ProcStat => p !== undefined);
  const roots = all.filter((p) => {
    if (p.ppid !== process.pid) return false;
    const args = commandLine(p.pid);
    const c = args.indexOf('-c');
    return c >= 0 && args[c + 1] === dir;
  });
  const inTree = new Set(roots.map((p) => p.pid));
  for (let more = true; more;) {
    more = false;
    for (const p of all) {
      if (inTree.has(p.ppid) && !inTree.has(p.pid)) {
        inTree.add(p.pid);
        more = true;
      }
    }
  }
  return all.filter((p) => inTree.has(p.pid));
}

/**
 * Pins every thread of `pid` to `cpu` (Linux `taskset`; children started later inherit it).
 * Used by `--pin`: the measured processes on one core, everything else on another.
 */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
}

/** Pins a Haraka instance's whole process tree (see processTreeCpuMs) to `cpu`; how many processes. */
export function pinProcessTree(dir: string, cpu: number): number {
  const tree = processTree(dir);
  for (const p of tree) pinToCpu(p.pid, cpu);
  return tree.length;
}

/** PASS or FAIL for a measured value against a limit. */
export const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

/**
 * Runs a benchmark's `body` with a Cleanup that also runs on Ctrl-C and after
 * an error, prints how long it took, and exits: 0 after a complete run (PASS or
 * FAIL alike), `failStatus` with the error when it could not run.
 */
export function runBenchmark(name: string, failStatus: number, body: (cleanup: Cleanup) => Promise<void>): void {
  const run = async (): Promise<void> => {
    const cleanup = new Cleanup();
    cleanup.onInterrupt();
    const t0 = Date.now();
    try {
      await body(cleanup);
    } finally {
      await cleanup.runAll();
    }
    console.log(`\ndone in ${fmt((Date.now() - t0) / 1000)} s`);
  };
  run().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`${name} benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(failStatus);
    },
  );
}

/** How many of `domains` the store holds at each level (`TLS_SECURE`, …, `none`, `unreadable`); the store is closed after. */
export async function countRatchetLevels(store: RatchetStore, domains: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  try {
    await store.ready?.(5000);
    for (const domain of domains) {
      const read = await store.get(domain);
      const key = read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  } finally {
    await store.close();
  }
  return counts;
}

/** µs per call, wall clock and CPU (user + system). */
export interface PerCall {
  wall: number;
  cpu: number;
}

let collectGarbage: (() => void) | undefined;
/** A full garbage collection (V8's `gc`, exposed on first use), so one batch's garbage is not freed on the next one's clock. */
function fullGc(): void {
  if (!collectGarbage) {
    setFlagsFromString('--expose-gc');
    collectGarbage = runInNewContext('gc') as () => void;
  }
  collectGarbage();
}

/**
 * µs per call: the medians over `batches` batches of `calls` calls, after one
 * unmeasured batch. Before each batch, off the clock, `prepare` runs (its
 * value is handed to `run`) and a full garbage collection; `run` makes the
 * batch's calls.
 */
export async function timeBatches<T>(
  batches: number,
  calls: number,
  prepare: () => T | Promise<T>,
  run: (prepared: T) => void,
): Promise<PerCall> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let b = -1; b < batches; b++) {
    const prepared = await prepare();
    fullGc();
    const cpuStart = process.cpuUsage();
    const started = process.hrtime.bigint();
    run(prepared);
    const elapsed = Number(process.hrtime.bigint() - started) / 1000;
    const used = process.cpuUsage(cpuStart);
    if (b >= 0) {
      wall.push(elapsed / calls);
      cpu.push((used.user + used.system) / calls);
    }
  }
  return { wall: median(wall), cpu: median(cpu) };
}
