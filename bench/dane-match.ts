/**
 * DANE-4 matching cost (issue 12: with warm DNS answers, a DANE check adds at
 * most 100 µs per connection), in this process, no network:
 *
 *  - `3 1 1` (DANE-EE, SHA-256 of the leaf's public key) and `2 1 1` (DANE-TA,
 *    SHA-256 of the issuing CA's public key; the chain verified from the leaf up
 *    to it, dates and names checked) against a chain from the test CA (EC P-256:
 *    leaf + CA, as the server sends it).
 *  - Each call gets certificate objects it has not seen, as each connection
 *    does (`getPeerX509Certificate()` makes new ones); they are parsed before
 *    the clock starts, since the connection guard holds them anyway.
 *  - Warm: one `CertificateCache` kept across calls, as the plugin keeps it, so
 *    a server's certificates seen before cost no public key export and no
 *    signature check. First sight: a new cache per call, what the first
 *    connection after a certificate change pays (no limit: once per certificate).
 *  - For comparison, `chainFromDetailed` on `getPeerCertificate(true)`-shaped
 *    objects, which parses every certificate again.
 *
 * Each figure: µs per call, the median of the batches after one unmeasured batch, as
 * CPU time of this process (V8's background threads included) and as wall-clock
 * time (which on a busy machine also counts time spent waiting for a CPU); the
 * limit applies to both. A full garbage collection runs before each batch.
 *
 *   node dist/bench/dane-match.js [--calls N] [--batches B]
 */
import { createHash, X509Certificate } from 'node:crypto';
import os from 'node:os';
import { CertificateCache } from 'haraka-outbound-security/dane/certificate-cache';
import { matchDane, type DaneContext } from 'haraka-outbound-security/dane/match';
import { chainFromDetailed } from 'haraka-outbound-security/dane/peer-chain';
import type { TlsaRecord } from 'haraka-outbound-security/dane/tlsa';
import { TestCa } from '../test/fixtures/test-ca';
import { Cleanup, fmt, lpad, positiveOption, readOptions, runBenchmark, timeBatches, verdict, type PerCall } from './common';

/** Issue 12 item 6. */
const MAX_MATCH_US = 100;
const MX_HOST = 'mx.dane-bench.test';

interface Options {
  calls: number;
  batches: number;
}

function usage(): string {
  return 'usage: node dist/bench/dane-match.js [--calls N] [--batches B]';
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['calls', 'batches'], usage());
  return {
    calls: positiveOption('calls', values.calls, 2000, 1_000_000, usage()),
    batches: positiveOption('batches', values.batches, 5, 1000, usage()),
  };
}

function spkiSha256(cert: X509Certificate): Buffer {
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

/** µs per call on chains parsed for each batch beforehand (fresh objects, as each connection has). */
function timePerCall(o: Options, fresh: () => X509Certificate[], call: (chain: X509Certificate[]) => void): Promise<PerCall> {
  return timeBatches(
    o.batches,
    o.calls,
    () => Array.from({ length: o.calls }, fresh),
    (chains) => {
      for (const chain of chains) call(chain);
    },
  );
}

const show = (t: PerCall): string => `${fmt(t.cpu, 2)} µs CPU (${fmt(t.wall, 2)} wall)`;

async function main(cleanup: Cleanup): Promise<void> {
  const o = options(process.argv.slice(2));
  console.log(
    `DANE-4 matching: ${o.calls} calls per batch, ${o.batches} batches; ${os.cpus().length} CPU(s), Node ${process.version}, OpenSSL ${process.versions.openssl}`,
  );
  const ca = await TestCa.create();
  cleanup.add('remove the test CA', () => ca.cleanup());
  const issued = await ca.issue({ dnsNames: [MX_HOST] });
  const ders = [new X509Certificate(issued.cert).raw, new X509Certificate(ca.caCert).raw];
  const fresh = (): X509Certificate[] => ders.map((der) => new X509Certificate(der));
  const [leaf, caCert] = fresh() as [X509Certificate, X509Certificate];
  const cases: Array<{ label: string; record: TlsaRecord; via: string }> = [
    { label: '3 1 1 (DANE-EE)', record: { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(leaf) }, via: 'dane-ee' },
    { label: '2 1 1 (DANE-TA)', record: { usage: 2, selector: 1, matchingType: 1, data: spkiSha256(caCert) }, via: 'dane-ta' },
  ];
  const context: DaneContext = { mxHost: MX_HOST, tlsaBaseDomain: MX_HOST, now: new Date() };
  const check = (record: TlsaRecord, via: string, chain: X509Certificate[], cache: CertificateCache): void => {
    const result = matchDane([record], chain, { ...context, cache });
    if (result.kind !== 'match' || result.via !== via) throw new Error(`unexpected result: ${JSON.stringify(result)}`);
  };

  const rows: Array<[string, string, string]> = [];
  for (const { label, record, via } of cases) {
    const cache = new CertificateCache();
    const warm = await timePerCall(o, fresh, (chain) => check(record, via, chain, cache));
    const first = await timePerCall(o, fresh, (chain) => check(record, via, chain, new CertificateCache()));
    console.log(`  ${label}: warm ${show(warm)}, first sight ${show(first)}`);
    rows.push([`${label}, warm cache (≤ ${MAX_MATCH_US} µs)`, show(warm), verdict(Math.max(warm.cpu, warm.wall) <= MAX_MATCH_US)]);
    rows.push([`${label}, first sight of the certificates`, show(first), 'info']);
  }
  const detailed = (): { raw: Buffer; issuerCertificate?: object } => {
    const root: { raw: Buffer; issuerCertificate?: object } = { raw: ders[1] as Buffer };
    root.issuerCertificate = root;
    return { raw: ders[0] as Buffer, issuerCertificate: root };
  };
  const parse = await timePerCall(o, fresh, () => {
    if (chainFromDetailed(detailed()).certificates.length !== 2) throw new Error('chainFromDetailed lost a certificate');
  });
  rows.push(['chainFromDetailed, 2 certificates (chainFromX509 parses none)', show(parse), 'info']);

  console.log('\nsummary (DANE-4, median µs per call; the limit applies to both figures)');
  const width = Math.max(...rows.map(([what]) => what.length));
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(width)}  ${lpad(value, 28)}  ${note}`);
}

runBenchmark('dane-match', 2, main);
