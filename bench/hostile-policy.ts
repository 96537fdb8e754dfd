/**
 * OPS-5 benchmark: how long can a hostile domain hold the event loop?
 *
 * The domain publishes the largest enforce policy the fetch accepts (64 KiB:
 * about 2,800 `*.` patterns) and 1,500 MX records (served over DNS/TCP by the
 * tests' DNS server, in a child process), none of which match. Measured, in
 * this process:
 *
 *   1. `parsePolicy` of that body (synchronous);
 *   2. `lookupMx` with the policy's filter, through the real Node resolver:
 *      wall time and the longest event-loop block seen meanwhile (the
 *      longest gap between the ticks of a 1 ms interval timer);
 *   3. the same with a policy of 512 patterns (the most a valid policy has),
 *      and the plugin's own synchronous steps on that answer without DNS.
 *
 *   node dist/bench/hostile-policy.js [--hosts N] [--patterns P]
 *
 * Only loopback addresses are used; nothing asks the system resolver.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { makeAddressPolicy } from '#lib/mx/address-policy';
import { createDnsClient } from '#lib/mx/dns-client';
import { parsePolicy, policyFilter, type MtaStsPolicy } from '#lib/mta-sts/policy';
import { lookupMx } from '#lib/mx/lookup';
import { filterAndCap, orderMxRecords } from '#lib/mx/selection';
import { TestDnsServer } from '../test/fixtures/dns-server';
import { Cleanup, fmt, positiveOption, readOptions } from './common';

const USAGE = 'node dist/bench/hostile-policy.js [--hosts N] [--patterns P]';
const DOMAIN = 'hostile.test';

function policyBody(patterns: number): string {
  const lines = ['version: STSv1', 'mode: enforce', 'max_age: 86400'];
  for (let i = 0; i < patterns; i++) lines.push(`mx: *.p${i}.ex.org`);
  return `${lines.join('\r\n')}\r\n`;
}

async function measure(what: string, run: () => Promise<unknown>): Promise<void> {
  // A 1 ms ticker: the longest gap between two ticks is the longest time the loop was held.
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  const result = await run();
  const wall = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(ticker);
  console.log(`${what}: ${fmt(wall)} ms wall, longest event-loop block ${fmt(longest)} ms  (${String(result)})`);
}

/**
 * The DNS server runs in a child process, so that encoding its 1,500-record
 * answers does not count as this process's event-loop time.
 */
async function dnsChild(hosts: number): Promise<void> {
  const dns = await TestDnsServer.start();
  dns.set(
    DOMAIN,
    Array.from({ length: hosts }, (_, i) => ({ type: 'MX' as const, preference: 10, exchange: `m${i}.o.ex` })),
  );
  for (let i = 0; i < hosts; i++) dns.set(`m${i}.o.ex`, [{ type: 'A', address: '192.0.2.1' }]);
  process.send?.(dns.address);
  process.on('disconnect', () => void dns.stop().finally(() => process.exit(0)));
}

function startDnsChild(hosts: number): Promise<{ address: string; child: ChildProcess }> {
  const child = fork(__filename, ['--dns-child', String(hosts)], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (address) => resolve({ address: String(address), child }));
    child.once('exit', (code) => reject(new Error(`DNS server process exited (${code})`)));
  });
}

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2), ['hosts', 'patterns'], USAGE);
  const hosts = positiveOption('hosts', options.hosts, 1500, 10_000, USAGE);
  const patterns = positiveOption('patterns', options.patterns, 2800, 10_000, USAGE);
  const cleanup = new Cleanup();
  cleanup.onInterrupt();
  try {
    const dns = await startDnsChild(hosts);
    cleanup.add('DNS server', () => {
      dns.child.disconnect();
    });
    const client = createDnsClient({ servers: [dns.address], timeoutMs: 5000, tries: 1 });
    await lookupMx(DOMAIN, client, { maxMx: 5, addressPolicy: makeAddressPolicy([], []) }); // warm up c-ares and the DNS server
    const addressPolicy = makeAddressPolicy([], []);

    const hostile = policyBody(patterns);
    console.log(`policy: ${patterns} patterns, ${hostile.length} bytes; ${hosts} MX records (DNS over TCP)`);
    let parsed = parsePolicy(hostile);
    const parseStart = performance.now();
    parsed = parsePolicy(hostile);
    console.log(
      `parsePolicy (${patterns} patterns): ${fmt(performance.now() - parseStart)} ms synchronous → ${parsed.ok ? 'valid' : `invalid: ${parsed.error}`}`,
    );
    const run = (policy: MtaStsPolicy) => async (): Promise<string> => {
      const result = await lookupMx(DOMAIN, client, { maxMx: 5, addressPolicy, filter: policyFilter(DOMAIN, '1', policy) });
      return result.kind === 'transient' ? `transient: ${result.reason.slice(0, 70)}…` : result.kind;
    };
    if (parsed.ok) await measure(`lookupMx + filter, ${patterns} patterns × ${hosts} MX records`, run(parsed.policy));

    const capped = parsePolicy(policyBody(512));
    if (!capped.ok) throw new Error(`512-pattern policy refused: ${capped.error}`);
    const cappedStart = performance.now();
    parsePolicy(policyBody(512));
    console.log(`parsePolicy (512 patterns): ${fmt(performance.now() - cappedStart)} ms synchronous`);
    await measure(`lookupMx + filter, 512 patterns × ${hosts} MX records`, run(capped.policy));
    // The same answer without DNS: what outbound_mx's own synchronous steps cost (c-ares's parse of
    // the answer, native code on this thread, is the rest of the block above).
    const answer = await client.mx(DOMAIN);
    if (answer.kind !== 'answer') throw new Error(`no MX answer: ${answer.kind}`);
    const filter = policyFilter(DOMAIN, '1', capped.policy);
    const steps = Array.from({ length: 5 }, () => {
      const started = performance.now();
      const ordered = orderMxRecords(answer.records);
      if (ordered.kind === 'hosts') filterAndCap(ordered.hosts, 5, filter);
      return performance.now() - started;
    });
    console.log(
      `order + max_mx_records + filter + cap of ${answer.records.length} records: ${steps.map((t) => fmt(t, 2)).join(' / ')} ms (5 runs)`,
    );
  } finally {
    await cleanup.runAll();
  }
}

if (process.argv[2] === '--dns-child') {
  void dnsChild(Number(process.argv[3]));
} else {
  main().catch((err: unknown) => {
    console.error((err as Error).stack ?? String(err));
    process.exitCode = 1;
  });
}
