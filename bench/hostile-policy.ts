/**
 * OPS-5 benchmark: how long can a hostile domain hold the event loop?
 *
 * The domain publishes the largest enforce policy the fetch accepts (64 KiB:
 * about 2,800 `*.` patterns) and 1,500 MX records (served over DNS/TCP by the
 * tests' DNS server), none of which match. Measured, in this process:
 *
 *   1. `parsePolicy` of that body (synchronous);
 *   2. `lookupMx` with the policy's filter, through the real Node resolver:
 *      wall time and the longest event-loop block seen meanwhile (the
 *      longest gap between the ticks of a 1 ms interval timer);
 *   3. the same with a policy of 512 patterns (the most a valid policy has).
 *
 *   node dist/bench/hostile-policy.js [--hosts N] [--patterns P]
 *
 * Only loopback addresses are used; nothing asks the system resolver.
 */
import { performance } from 'node:perf_hooks';
import { makeAddressPolicy } from '../lib/address-policy';
import { createDnsClient } from '../lib/dns-client';
import { parsePolicy, policyFilter, type MtaStsPolicy } from '../lib/mta-sts-policy';
import { lookupMx } from '../lib/mx-lookup';
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

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2), ['hosts', 'patterns'], USAGE);
  const hosts = positiveOption('hosts', options.hosts, 1500, 10_000, USAGE);
  const patterns = positiveOption('patterns', options.patterns, 2800, 10_000, USAGE);
  const cleanup = new Cleanup();
  cleanup.onInterrupt();
  try {
    const dns = await TestDnsServer.start();
    cleanup.add('DNS server', () => dns.stop());
    dns.set(
      DOMAIN,
      Array.from({ length: hosts }, (_, i) => ({ type: 'MX' as const, preference: 10, exchange: `m${i}.o.ex` })),
    );
    for (let i = 0; i < hosts; i++) dns.set(`m${i}.o.ex`, [{ type: 'A', address: '192.0.2.1' }]);
    const client = createDnsClient({ servers: [dns.address], timeoutMs: 5000, tries: 1 });
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
  } finally {
    await cleanup.runAll();
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).stack ?? String(err));
  process.exitCode = 1;
});
