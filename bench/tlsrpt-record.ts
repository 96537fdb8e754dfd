/**
 * RPT-1 hot path (issue 13 item 7: recording adds at most 5 µs per
 * connection), in this process, no network: `TlsReportRecorder.record` as the
 * connection guard will call it once per connection, with the store write
 * batched (a memory store, flushed every `--flush-ms` by the recorder's own
 * timer while the calls run, as in Haraka).
 *
 * Cases, each over `--domains` recipient domains in turn:
 *  - success under an MTA-STS policy (the `stsPolicy` value looked up per
 *    call from the parsed policy, as the guard has it);
 *  - success without a policy (`noPolicyFound(domain)` per call);
 *  - a failure with details (MX host, address, reason code), mapped from the
 *    classification's reason by `resultOfConnection` in the same call;
 *  - the mix: 90 % successes, 10 % failures.
 *
 * Each figure: µs per call, the median of the batches after one unmeasured
 * batch, as CPU time of this process and as wall-clock time; the limit applies
 * to both. A full garbage collection runs before each batch.
 *
 *   node dist/bench/tlsrpt-record.js [--calls N] [--batches B] [--domains D] [--flush-ms MS]
 */
import os from 'node:os';
import { parsePolicy, type MtaStsPolicy } from '#lib/mta-sts/policy';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { noPolicyFound, stsPolicy, type SessionRecord } from '#lib/tlsrpt/record';
import { TlsReportRecorder } from '#lib/tlsrpt/recorder';
import { resultOfConnection } from '#lib/tlsrpt/result-type';
import { Cleanup, fmt, lpad, positiveOption, readOptions, runBenchmark, timeBatches, verdict, type PerCall } from './common';

/** Issue 13 item 7. */
const MAX_RECORD_US = 5;

interface Options {
  calls: number;
  batches: number;
  domains: number;
  flushMs: number;
}

function usage(): string {
  return 'usage: node dist/bench/tlsrpt-record.js [--calls N] [--batches B] [--domains D] [--flush-ms MS]';
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['calls', 'batches', 'domains', 'flush-ms'], usage());
  return {
    calls: positiveOption('calls', values.calls, 200_000, 10_000_000, usage()),
    batches: positiveOption('batches', values.batches, 7, 1000, usage()),
    domains: positiveOption('domains', values.domains, 1000, 1_000_000, usage()),
    flushMs: positiveOption('flush-ms', values['flush-ms'], 50, 60_000, usage()),
  };
}

/** µs per call of `call(i)`; the event loop runs between batches (a flush, off the clock). */
function timePerCall(o: Options, call: (i: number) => void): Promise<PerCall> {
  return timeBatches(
    o.batches,
    o.calls,
    () => new Promise((resolve) => setTimeout(resolve, o.flushMs * 2)),
    () => {
      for (let i = 0; i < o.calls; i++) call(i);
    },
  );
}

const show = (t: PerCall): string => `${fmt(t.cpu, 3)} µs CPU (${fmt(t.wall, 3)} wall)`;

function policyOf(domain: string): MtaStsPolicy {
  const parsed = parsePolicy(`version: STSv1\nmode: testing\nmx: mx1.${domain}\nmx: *.mx.${domain}\nmax_age: 604800\n`);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.policy;
}

async function main(cleanup: Cleanup): Promise<void> {
  const o = options(process.argv.slice(2));
  console.log(
    `TLS report recording: ${o.calls} calls per batch, ${o.batches} batches, ${o.domains} domains, flush every ${o.flushMs} ms; ` +
      `${os.cpus().length} CPU(s), Node ${process.version}`,
  );
  const store = new MemoryTlsReportStore();
  const recorder = new TlsReportRecorder({ write: (entries) => store.add(entries), flushIntervalMs: o.flushMs });
  recorder.start();
  cleanup.add('close the recorder', () => recorder.close());
  const domains = Array.from({ length: o.domains }, (_, i) => `d${i}.bench-tlsrpt.test`);
  const policies = domains.map(policyOf);
  const reasons = domains.map((d) => `certificate not valid for mx1.${d} (subjectAltName: DNS:other.example)`);

  const stsSuccess = (i: number): void => {
    const d = i % o.domains;
    const domain = domains[d] as string;
    recorder.record({ policyDomain: domain, policy: stsPolicy(domain, policies[d] as MtaStsPolicy), result: 'success' });
  };
  const plainSuccess = (i: number): void => {
    const domain = domains[i % o.domains] as string;
    recorder.record({ policyDomain: domain, policy: noPolicyFound(domain), result: 'success' });
  };
  const failure = (i: number): void => {
    const d = i % o.domains;
    const domain = domains[d] as string;
    const mapped = resultOfConnection(reasons[d] as string);
    const result: SessionRecord['result'] =
      mapped.kind === 'success'
        ? 'success'
        : {
            resultType: mapped.resultType,
            receivingMxHostname: `mx1.${domain}`,
            receivingIp: '192.0.2.25',
            ...(mapped.failureReasonCode ? { failureReasonCode: mapped.failureReasonCode } : {}),
          };
    recorder.record({ policyDomain: domain, policy: stsPolicy(domain, policies[d] as MtaStsPolicy), result });
  };
  const mix = (i: number): void => (i % 10 === 9 ? failure(i) : i % 2 ? stsSuccess(i) : plainSuccess(i));

  const rows: Array<[string, string, string]> = [];
  for (const [label, call] of [
    ['success, MTA-STS policy', stsSuccess],
    ['success, no policy found', plainSuccess],
    ['failure with details (+ result type mapping)', failure],
    ['mix: 90 % successes, 10 % failures', mix],
  ] as const) {
    const t = await timePerCall(o, call);
    console.log(`  ${label}: ${show(t)}`);
    rows.push([`${label} (≤ ${MAX_RECORD_US} µs)`, show(t), verdict(Math.max(t.cpu, t.wall) <= MAX_RECORD_US)]);
  }
  await recorder.flush();
  const stats = recorder.stats();
  if (stats.failedFlushes > 0 || stats.dropped > 0 || stats.rejected > 0) throw new Error(`recorder trouble: ${JSON.stringify(stats)}`);
  const counted = (await store.counts(await store.days().then((d) => d[0] as string), domains[0] as string)).policies.length;
  console.log(`  recorder: ${stats.recorded} sessions, ${stats.flushes} flushes; ${counted} policies counted for ${domains[0]}`);

  console.log('\nsummary (RPT-1, median µs per record call; the limit applies to both figures)');
  const width = Math.max(...rows.map(([what]) => what.length));
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(width)}  ${lpad(value, 30)}  ${note}`);
}

runBenchmark('tlsrpt-record', 2, main);
