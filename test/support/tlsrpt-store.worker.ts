/**
 * Test helper for the TLS report store contract (tlsrpt-store.contract.ts,
 * RPT-1, RPT-3): another process using the same store, opened from a URL
 * (`file:/abs/dir` or `redis://127.0.0.1:PORT/?prefix=P`). Not a test file.
 *
 *   node tlsrpt-store.worker.js record URL DAY DOMAIN SESSIONS
 *     records SESSIONS sessions through a TlsReportRecorder (flushing every
 *     few ms, as a Haraka worker would): every third one a failure from
 *     `198.51.100.<pid % 250>`, the rest successes; closes; prints
 *     `{"successes":…,"failures":…}`.
 *
 *   node tlsrpt-store.worker.js lock URL DAY DOMAIN HOLDER TTL_MS
 *     waits for a line on stdin, tries the send lock once, prints `taken` or `busy`.
 *
 *   node tlsrpt-store.worker.js loop URL DAY DOMAIN
 *     adds batches of 7 sessions forever, printing the running total after
 *     each add has resolved; meant to be killed with SIGKILL.
 */
import { once } from 'node:events';
import readline from 'node:readline';
import { RedisConnection } from '#lib/store/redis-connection';
import { FileTlsReportStore } from '#lib/tlsrpt/file-store';
import { RedisTlsReportStore } from '#lib/tlsrpt/redis-store';
import { TlsReportRecorder } from '#lib/tlsrpt/recorder';
import { reportedPolicy } from '#lib/tlsrpt/record';
import type { TlsReportStore } from '#lib/tlsrpt/store';

/** How long a Redis store may take to connect. */
const CONNECT_TIMEOUT_MS = 5_000;

/** The policy every test session is counted under. */
export const WORKER_POLICY = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: testing', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);

/** `file:/abs/dir` or `redis://host:port/?prefix=P&timeout=MS`. */
export function openTlsReportStore(url: string): TlsReportStore {
  if (url.startsWith('file:')) return new FileTlsReportStore(url.slice('file:'.length));
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:') throw new Error(`unsupported store URL ${url}`);
  const connection = new RedisConnection(
    {
      server: { host: parsed.hostname, port: parsed.port || '6379' },
      opts: {},
      plugin: {},
      commandTimeoutMs: Number(parsed.searchParams.get('timeout') ?? 2000),
    },
    { info: () => undefined, error: () => undefined },
  );
  return new RedisTlsReportStore(connection, parsed.searchParams.get('prefix') ?? 'haraka-outbound:');
}

async function open(url: string): Promise<TlsReportStore> {
  const store = openTlsReportStore(url);
  if (store.ready && !(await store.ready(CONNECT_TIMEOUT_MS))) throw new Error(`${store.description} did not connect`);
  return store;
}

async function record(store: TlsReportStore, day: string, policyDomain: string, sessions: number): Promise<void> {
  const recorder = new TlsReportRecorder({ write: (entries) => store.add(entries), flushIntervalMs: 5 });
  recorder.start();
  let failures = 0;
  for (let i = 0; i < sessions; i++) {
    if (i % 3 === 2) {
      failures++;
      recorder.record({
        policyDomain,
        day,
        policy: WORKER_POLICY,
        result: { resultType: 'starttls-not-supported', receivingIp: `198.51.100.${process.pid % 250}` },
      });
    } else recorder.record({ policyDomain, day, policy: WORKER_POLICY, result: 'success' });
    if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await recorder.close();
  if (recorder.stats().pending > 0) throw new Error('the recorder could not write everything');
  console.log(JSON.stringify({ successes: sessions - failures, failures }));
}

async function lock(store: TlsReportStore, day: string, policyDomain: string, holder: string, ttlMs: number): Promise<void> {
  const input = readline.createInterface({ input: process.stdin });
  await once(input, 'line');
  input.close();
  console.log((await store.lock(day, policyDomain, holder, ttlMs)) ? 'taken' : 'busy');
}

async function loop(store: TlsReportStore, day: string, policyDomain: string): Promise<never> {
  for (let total = 0; ;) {
    await store.add([{ day, policyDomain, policy: WORKER_POLICY, count: 7 }]);
    total += 7;
    console.log(total);
  }
}

async function main(args: string[]): Promise<void> {
  const [command, url, day, domain, ...rest] = args;
  if (!command || !url || !day || !domain) throw new Error('usage: record|lock|loop URL DAY DOMAIN …');
  const store = await open(url);
  try {
    if (command === 'record') await record(store, day, domain, Number(rest[0]));
    else if (command === 'lock') await lock(store, day, domain, rest[0] as string, Number(rest[1]));
    else if (command === 'loop') await loop(store, day, domain);
    else throw new Error(`unknown command ${command}`);
  } finally {
    await store.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : String(err));
      process.exit(1);
    },
  );
}
