/**
 * RPT-8, the hostile case of issue 18 row 4: a receiving domain whose MX
 * hosts publish a different TLSA RRset at every session (600 usable `3 1 0`
 * records of a P-256 SPKI's size each), 50 sessions in a day, and a
 * `_smtp._tls` record listing 10 report addresses. In this process, no
 * network: the sessions are recorded (TlsReportRecorder into a memory store),
 * then the day's report is built, gzipped and queued to every address used
 * (deliverDomain, the messages captured).
 *
 * Two rows: without the bounds (520 strings per policy, every policy, 10
 * addresses, the old 10 MB POST cap), and with `[tlsrpt]`'s defaults. Each:
 * the report's JSON and gzip size, the message per address, the addresses,
 * the bytes sent for that one Policy Domain that day, and the time to record
 * and deliver (median of the runs).
 *
 *   node dist/bench/tlsrpt-hostile.js [--sessions N] [--records R] [--runs K]
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { deliverDomain } from '#lib/tlsrpt/deliver';
import { MAX_REPORT_BYTES } from '#lib/tlsrpt/https';
import { DEFAULT_REPORT_LIMITS, LeftOutTally, type ReportLimits } from '#lib/tlsrpt/limits';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { MAX_POLICY_STRINGS, tlsaPolicy } from '#lib/tlsrpt/record';
import { TlsReportRecorder } from '#lib/tlsrpt/recorder';
import { DEFAULT_SCHEDULE } from '#lib/tlsrpt/schedule';
import { fmt, lpad, positiveOption, readOptions, runBenchmark } from './common';

const DAY = '2025-03-14';
const AFTER_DAY = Date.UTC(2025, 2, 15, 6);
const DOMAIN = 'hostile.example';
/** A P-256 SubjectPublicKeyInfo is 91 bytes. */
const SPKI_BYTES = 91;

const UNBOUNDED: ReportLimits = {
  maxPolicyStrings: MAX_POLICY_STRINGS,
  maxDomainsRecordedPerDay: 10_000_000,
  maxPoliciesPerReport: 10_000,
  maxReportBytes: MAX_REPORT_BYTES,
  maxReportAddresses: 10,
  maxDomainsReportedPerDay: 10_000_000,
  httpsPorts: [443],
};

interface Options {
  sessions: number;
  records: number;
  runs: number;
}

function usage(): string {
  return 'usage: node dist/bench/tlsrpt-hostile.js [--sessions N] [--records R] [--runs K]';
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['sessions', 'records', 'runs'], usage());
  return {
    sessions: positiveOption('sessions', values.sessions, 50, 10_000, usage()),
    records: positiveOption('records', values.records, 600, 10_000, usage()),
    runs: positiveOption('runs', values.runs, 5, 100, usage()),
  };
}

interface Outcome {
  jsonBytes: number;
  gzipBytes: number;
  mailBytes: number;
  addresses: number;
  sentBytes: number;
  ms: number;
  outcome: string;
}

/** One day of the hostile domain under `limits`: record, then deliver. */
async function run(o: Options, limits: ReportLimits): Promise<Outcome> {
  const started = process.hrtime.bigint();
  const store = new MemoryTlsReportStore(() => AFTER_DAY);
  const leftOut = new LeftOutTally();
  const recorder = new TlsReportRecorder({
    write: (entries) => store.add(entries),
    maxPolicyStrings: limits.maxPolicyStrings,
    maxDomainsPerDay: limits.maxDomainsRecordedPerDay,
    leftOut,
  });
  for (let s = 0; s < o.sessions; s++) {
    const mx = `mx${s % 4}.${DOMAIN}`;
    const records = Array.from({ length: o.records }, () => ({ usage: 3, selector: 1, matchingType: 0, data: randomBytes(SPKI_BYTES) }));
    recorder.record({
      policyDomain: DOMAIN,
      day: DAY,
      policy: tlsaPolicy(mx, mx, records),
      result: { resultType: 'validation-failure', sendingMtaIp: '192.0.2.1', receivingMxHostname: mx, receivingIp: '198.51.100.25' },
    });
  }
  await recorder.close();
  const mails: Buffer[] = [];
  const addresses = Array.from({ length: 10 }, (_, i) => `mailto:rua${i}@${DOMAIN}`).join(',');
  const delivered = await deliverDomain(
    {
      store,
      txt: async () => ({ kind: 'answer', records: [`v=TLSRPTv1; rua=${addresses}`] }),
      queueMail: async (_from, _to, message) => {
        mails.push(message);
      },
      post: async () => ({ ok: false, error: 'not used' }),
      identity: { organization: 'Bench', contact: 'tlsrpt@sender.example', sender: 'tlsrpt@sender.example', submitter: 'sender.example' },
      schedule: { ...DEFAULT_SCHEDULE, delayWindowMs: 0 },
      holder: 'bench',
      lockTtlMs: 60_000,
      now: () => AFTER_DAY,
      random: () => 0,
      log: () => undefined,
      limits,
      leftOut,
    },
    DAY,
    DOMAIN,
  );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const counts = await store.counts(DAY, DOMAIN);
  const json = JSON.stringify(counts.policies.map((p) => p.policy.strings));
  const state = delivered.kind === 'attempted' ? delivered.state.finished : undefined;
  const mailBytes = mails[0]?.length ?? 0;
  // The attachment is base64 in the message: its gzip size is about 3/4 of the base64 part.
  return {
    jsonBytes: json.length,
    gzipBytes: Math.round((mailBytes * 3) / 4),
    mailBytes,
    addresses: mails.length,
    sentBytes: mails.reduce((sum, m) => sum + m.length, 0),
    ms,
    outcome: state ? state.outcome : delivered.kind,
  };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const kb = (bytes: number): string => `${fmt(bytes / 1024, 0)} KiB`;

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  console.log(
    `TLS reports under attack (RPT-8): ${o.sessions} sessions, each a distinct RRset of ${o.records} TLSA 3 1 0 records ` +
      `(${SPKI_BYTES} bytes), a record with 10 report addresses; ${o.runs} runs; ${os.cpus().length} CPU(s), Node ${process.version}`,
  );
  const rows: string[][] = [['limits', 'strings (JSON)', 'message / address', 'addresses', 'sent / day', 'record + deliver', 'outcome']];
  for (const [label, limits] of [
    ['unbounded (before RPT-8)', UNBOUNDED],
    ['[tlsrpt] defaults', DEFAULT_REPORT_LIMITS],
  ] as const) {
    const results: Outcome[] = [];
    for (let r = 0; r < o.runs; r++) results.push(await run(o, limits));
    const last = results[results.length - 1] as Outcome;
    rows.push([
      label,
      kb(last.jsonBytes),
      kb(last.mailBytes),
      String(last.addresses),
      kb(last.sentBytes),
      `${fmt(median(results.map((x) => x.ms)), 0)} ms`,
      last.outcome,
    ]);
  }
  console.log('\nsummary (one Policy Domain, one day; median time of the runs)');
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((row) => (row[c] as string).length)));
  for (const row of rows)
    console.log(
      `  ${row.map((cell, c) => (c === 0 || c === 6 ? cell.padEnd(widths[c] as number) : lpad(cell, widths[c] as number))).join('  ')}`,
    );
}

runBenchmark('tlsrpt-hostile', 2, main);
