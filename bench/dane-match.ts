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
 * Hostile case (issue 19 row 1; DANE-10, OPS-5: no synchronous step over
 * 10 ms): 370 `2 1 0` records, each a P-521 public key, against a chain of 10
 * linked P-521 certificates whose top none of the keys signed. Each step is
 * one synchronous call, timed alone (`--hostile-batches` of them, median):
 * the lookup's sorting of the RRset (`classifyTlsaRrset`, which reads Full(0)
 * data) on records it has not seen, and the match on a new cache (the first
 * connection) and on the cache the earlier connections left (each connection
 * spends its own budget of signature checks).
 *
 *   node dist/bench/dane-match.js [--calls N] [--batches B] [--hostile-batches H]
 */
import { createHash, X509Certificate } from 'node:crypto';
import os from 'node:os';
import { generateKeyPairSync } from 'node:crypto';
import { CertificateCache } from '#lib/dane/certificate-cache';
import { matchDane, type DaneContext } from '#lib/dane/match';
import { chainFromDetailed } from '#lib/dane/peer-chain';
import { classifyTlsaRrset, type TlsaRecord } from '#lib/dane/tlsa';
import { ChainLab, type Made } from '../test/fixtures/dane-chains';
import { TestCa } from '../test/fixtures/test-ca';
import { Cleanup, fmt, lpad, positiveOption, readOptions, runBenchmark, timeBatches, verdict, type PerCall } from './common';

/** Issue 12 item 6. */
const MAX_MATCH_US = 100;
/** OPS-5, DANE-10: the longest synchronous step allowed. */
const MAX_STEP_US = 10_000;
/** Issue 19 row 1. */
const HOSTILE_RECORDS = 370;
const HOSTILE_CHAIN = 10;
const MX_HOST = 'mx.dane-bench.test';

interface Options {
  calls: number;
  batches: number;
  hostileBatches: number;
}

function usage(): string {
  return 'usage: node dist/bench/dane-match.js [--calls N] [--batches B] [--hostile-batches H]';
}

function options(argv: string[]): Options {
  const values = readOptions(argv, ['calls', 'batches', 'hostile-batches'], usage());
  return {
    calls: positiveOption('calls', values.calls, 2000, 1_000_000, usage()),
    batches: positiveOption('batches', values.batches, 5, 1000, usage()),
    hostileBatches: positiveOption('hostile-batches', values['hostile-batches'], 3, 100, usage()),
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

  rows.push(...(await hostileRows(o, cleanup)));

  console.log('\nsummary (DANE-4, DANE-10; median µs per call; the limit applies to both figures)');
  const width = Math.max(...rows.map(([what]) => what.length));
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(width)}  ${lpad(value, 28)}  ${note}`);
}

/** Issue 19 row 1: the hostile RRset and chain, one synchronous call at a time. */
async function hostileRows(o: Options, cleanup: Cleanup): Promise<Array<[string, string, string]>> {
  const lab = await ChainLab.create();
  cleanup.add('remove the hostile chain', () => lab.cleanup());
  let issuer: Made = await lab.make({ cn: 'Hostile Root', profile: 'ca', key: 'p521', days: 3650 });
  const linked: Made[] = [];
  for (let i = 1; i < HOSTILE_CHAIN; i++) {
    issuer = await lab.make({ cn: `Hostile ${i}`, profile: 'ca', key: 'p521', issuer, days: 3650 });
    linked.unshift(issuer);
  }
  linked.unshift(await lab.make({ cn: MX_HOST, dnsNames: [MX_HOST], key: 'p521', issuer }));
  const ders = linked.map((m) => m.cert.raw);
  const fresh = (): X509Certificate[] => ders.map((der) => new X509Certificate(der));
  /** New keys for each batch: the lookup keeps what it read, and a first sight is what is timed. */
  const records = (): TlsaRecord[] =>
    Array.from({ length: HOSTILE_RECORDS }, () => ({
      usage: 2,
      selector: 1,
      matchingType: 0,
      data: generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey.export({ type: 'spki', format: 'der' }),
    }));
  const context: DaneContext = { mxHost: MX_HOST, tlsaBaseDomain: MX_HOST, now: new Date() };
  const batches = o.hostileBatches;
  const classify = await timeBatches(batches, 1, records, (rrset) => {
    classifyTlsaRrset(rrset);
  });
  const firstMatch = await timeBatches(
    batches,
    1,
    () => {
      // The lookup has sorted (and read) the records before a connection is made.
      const rrset = records();
      classifyTlsaRrset(rrset);
      return { rrset, chain: fresh() };
    },
    ({ rrset, chain }) => {
      if (matchDane(rrset, chain, { ...context, cache: new CertificateCache() }).kind === 'match') throw new Error('hostile chain matched');
    },
  );
  const shared = { rrset: records(), cache: new CertificateCache() };
  classifyTlsaRrset(shared.rrset);
  const laterMatch = await timeBatches(
    batches,
    1,
    () => fresh(),
    (chain) => {
      if (matchDane(shared.rrset, chain, { ...context, cache: shared.cache }).kind === 'match') throw new Error('hostile chain matched');
    },
  );
  const label = `hostile: ${HOSTILE_RECORDS} × 2 1 0 (P-521) vs ${HOSTILE_CHAIN} linked P-521 certificates`;
  const ms = (t: PerCall): string => `${fmt(t.cpu / 1000, 1)} ms CPU (${fmt(t.wall / 1000, 1)} wall)`;
  const within = (t: PerCall): string => verdict(Math.max(t.cpu, t.wall) <= MAX_STEP_US);
  for (const [what, t] of [
    ['lookup sort', classify],
    ['first match', firstMatch],
    ['later match', laterMatch],
  ] as const)
    console.log(`  ${label}, ${what}: ${ms(t)}`);
  return [
    [`${label}: lookup sort, first sight (≤ 10 ms)`, ms(classify), within(classify)],
    [`${label}: match, new cache (≤ 10 ms)`, ms(firstMatch), within(firstMatch)],
    [`${label}: match, later connections (≤ 10 ms)`, ms(laterMatch), within(laterMatch)],
  ];
}

runBenchmark('dane-match', 2, main);
