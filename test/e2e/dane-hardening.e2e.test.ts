/**
 * DANE-9 and DANE-10 through a real Haraka (issue 19, rows 1–4), with the
 * DNSSEC lab (a validating unbound in front of nsd, zones signed at setup) as
 * Haraka's only DNS server and SMTP sinks on loopback presenting chains made
 * with the openssl CLI (`../fixtures/dane-chains.ts`):
 *
 * - row 1: a TLSA RRset of 40 `2 1 0` records against a chain of 10 linked
 *   P-521 certificates: at most 16 records used (the rest counted in
 *   `outbound_tls_dane_ignored_records_total`), a budget of signature checks
 *   a connection (8 units: 2 checks with P-521 keys;
 *   `outbound_tls_dane_signature_checks_total`);
 * - row 2: a sub-CA below a `pathlen:0` intermediate is refused under 2 1 1;
 * - row 3: a lone `2 1 0` whose data is not DER is unusable: the delivery
 *   goes through with TLS, unauthenticated;
 * - row 4: a chain of 15 certificates with the trust anchor sent last matches.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { ChainLab, tlsaText, type Made } from '../fixtures/dane-chains';
import { DnssecLab, type LabRecord } from '../fixtures/dnssec';
import { mxRecords } from '../fixtures/dnssec/dane-records';
import { HarakaInstance, describeOutcome, firstOutcome } from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';

const SINK = { hostile: '127.0.19.1', pathlen: '127.0.19.2', malformed: '127.0.19.3', long: '127.0.19.4' } as const;
const HOST = {
  hostile: 'mx.hostile.hard.test',
  pathlen: 'mx.pathlen.hard.test',
  malformed: 'mx.malformed.hard.test',
  long: 'mx.long.hard.test',
} as const;
const HOSTILE_RECORDS = 40;
/** Of those, the lookup reads 32 (MAX_FULL_DATA_READS) and the match uses 16 (MAX_USABLE_TLSA_RECORDS). */
const HOSTILE_IGNORED_AT_MATCH = 32 - 16;

let chains: ChainLab;
let lab: DnssecLab;
let haraka: HarakaInstance;
let sinks: SmtpSink[];
let metricsPort = 0;

function sink(address: string): SmtpSink {
  const found = sinks.find((s) => s.host === address);
  if (!found) throw new Error(`no sink on ${address}`);
  return found;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A counter's value (its samples summed) from the plugin's /metrics. */
async function counter(name: string, labels = ''): Promise<number> {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  const line = new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(body);
  return Number(line?.[1] ?? 0);
}

/** The sink's TLS settings: the first certificate's key, the certificates in the order given. */
async function served(sent: readonly Made[]): Promise<{ key: string; cert: string }> {
  const leaf = sent[0] as Made;
  return { key: await fs.readFile(leaf.keyPath, 'utf8'), cert: sent.map((c) => c.pem).join('') };
}

/** A TLSA record in the lab from presentation text (`2 1 0 <hex>`). */
function tlsa(port: number, host: string, text: string): LabRecord {
  const [usage, selector, matchingType, hex] = text.split(' ');
  return {
    name: `_${port}._tcp.${host}`,
    type: 'TLSA',
    usage: Number(usage),
    selector: Number(selector),
    matchingType: Number(matchingType),
    certificate: hex ?? '',
  };
}

before(async () => {
  chains = await ChainLab.create();
  // Row 1: ten linked P-521 certificates, the last one's issuer not sent.
  const hostileChain: Made[] = [];
  let issuer = await chains.make({ cn: 'Hostile Root', profile: 'ca', key: 'p521', days: 3650 });
  for (let i = 1; i <= 9; i++) {
    issuer = await chains.make({ cn: `Hostile ${i}`, profile: 'ca', key: 'p521', issuer, days: 3650 });
    hostileChain.unshift(issuer);
  }
  hostileChain.unshift(await chains.make({ cn: HOST.hostile, dnsNames: [HOST.hostile], key: 'p521', issuer }));
  // Row 2: root → pathlen:0 intermediate → sub-CA → leaf.
  const root = await chains.make({ cn: 'Hardening Root', profile: 'ca', days: 3650 });
  const pathlen0 = await chains.make({ cn: 'Pathlen 0', profile: 'ca_pathlen0', issuer: root, days: 3650 });
  const subCa = await chains.make({ cn: 'Sub CA', profile: 'ca', issuer: pathlen0, days: 3650 });
  const pathlenLeaf = await chains.make({ cn: HOST.pathlen, dnsNames: [HOST.pathlen], issuer: subCa });
  // Row 3: a self-signed certificate (only TLS is asked of it).
  const malformedLeaf = await chains.make({ cn: HOST.malformed, dnsNames: [HOST.malformed], profile: 'leaf' });
  // Row 4: leaf, 12 unrelated certificates, the intermediate, the root (the anchor) 15th.
  const int = await chains.make({ cn: 'Hardening Intermediate', profile: 'ca', issuer: root, days: 3650 });
  const longLeaf = await chains.make({ cn: HOST.long, dnsNames: [HOST.long], issuer: int });
  const junk = await Promise.all(Array.from({ length: 12 }, (_, i) => chains.make({ cn: `Junk ${i}`, profile: 'ca', days: 30 })));

  sinks = await startSinksOnCommonPort([
    { host: SINK.hostile, tls: await served(hostileChain) },
    { host: SINK.pathlen, tls: await served([pathlenLeaf, subCa, pathlen0, root]) },
    { host: SINK.malformed, tls: await served([malformedLeaf]) },
    { host: SINK.long, tls: await served([longLeaf, ...junk, int, root]) },
  ]);
  const port = sinks[0]?.port ?? 0;
  const keys = Array.from({ length: HOSTILE_RECORDS }, () =>
    generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
  );
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'hard.test',
        records: [
          ...mxRecords('hostile.hard.test', HOST.hostile, SINK.hostile),
          ...keys.map((hex) => tlsa(port, HOST.hostile, `2 1 0 ${hex}`)),
          ...mxRecords('pathlen.hard.test', HOST.pathlen, SINK.pathlen),
          tlsa(port, HOST.pathlen, tlsaText(2, 1, 1, root.cert)),
          ...mxRecords('malformed.hard.test', HOST.malformed, SINK.malformed),
          tlsa(port, HOST.malformed, '2 1 0 deadbeef'),
          ...mxRecords('long.hard.test', HOST.long, SINK.long),
          tlsa(port, HOST.long, tlsaText(2, 1, 1, root.cert)),
        ],
      },
    ],
  });
  metricsPort = await freePort();
  haraka = await HarakaInstance.start({
    plugins: ['outbound_tls', 'outbound_mx'],
    dnsServer: lab.resolver,
    mxPort: port,
    mxIniExtra: ['[dane]', 'mode=on', 'probe=test.', `trusted_resolvers=${lab.resolver}`].join('\n'),
    config: { 'outbound_tls.ini': ['[metrics]', `listen=127.0.0.1:${metricsPort}`].join('\n') },
  });
  await haraka.waitForLog(/DANE in effect \(mode=on\)/);
});

after(async () => {
  await haraka?.stop();
  for (const s of sinks ?? []) await s.stop();
  await lab?.stop();
  await chains?.cleanup();
});

test('DANE-10: a hostile TLSA RRset and chain cost at most 16 records and 8 signature checks a connection (issue 19 row 1)', async () => {
  const checked = (): Promise<number> => counter('outbound_tls_dane_total', '{result="mismatch",mode="on"}');
  const [connectionsBefore, ignoredBefore, signaturesBefore] = await Promise.all([
    checked(),
    counter('outbound_tls_dane_ignored_records_total'),
    counter('outbound_tls_dane_signature_checks_total'),
  ]);
  await haraka.send({ to: 'user@hostile.hard.test' });
  const outcome = await firstOutcome(haraka, 'hostile.hard.test');
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.equal(sink(SINK.hostile).count('mailfrom'), 0, 'no MAIL FROM to the hostile MX');
  const connections = (await checked()) - connectionsBefore;
  const ignored = (await counter('outbound_tls_dane_ignored_records_total')) - ignoredBefore;
  const signatures = (await counter('outbound_tls_dane_signature_checks_total')) - signaturesBefore;
  assert.ok(connections >= 1, 'the hostile MX was checked');
  assert.equal(ignored, HOSTILE_IGNORED_AT_MATCH * connections, `${ignored} records ignored over ${connections} connections`);
  assert.ok(signatures <= 8 * connections, `${signatures} signature checks over ${connections} connections`);
  assert.ok(signatures >= 1);
  assert.ok(
    haraka.logLines.some((l) => /mx\.hostile\.hard\.test .*16 usable TLSA records beyond the first 16 ignored \(DANE-10\)/.test(l)),
  );
  assert.ok(haraka.logLines.some((l) => /budget of signature checks per connection \(8 units\) is spent/.test(l)));
});

test('DANE-9: a sub-CA below a pathlen:0 intermediate is refused under DANE-TA 2 1 1 (issue 19 row 2)', async () => {
  await haraka.send({ to: 'user@pathlen.hard.test' });
  const outcome = await firstOutcome(haraka, 'pathlen.hard.test');
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.equal(sink(SINK.pathlen).count('mailfrom'), 0);
  assert.ok(
    haraka.logLines.some((l) =>
      /mx\.pathlen\.hard\.test .*abandoned before MAIL FROM: DANE: .*CN=Sub CA: the path length constraint of CN=Pathlen 0 \(pathlen 0\) allows no CA below it/.test(
        l,
      ),
    ),
  );
});

test('DANE-10: a lone 2 1 0 whose data is not DER is unusable: TLS required, no authentication, delivered (issue 19 row 3)', async () => {
  await haraka.send({ to: 'user@malformed.hard.test' });
  const outcome = await firstOutcome(haraka, 'malformed.hard.test');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(sink(SINK.malformed).messages.length, 1);
  const lines = haraka.logLines.filter((l) => /malformed\.hard\.test/.test(l));
  assert.ok(
    lines.some((l) => /malformed\.hard\.test via mx\.malformed\.hard\.test .*TLS_INSECURE/.test(l)),
    lines.join('\n'),
  );
});

test('DANE-10: a chain of 15 certificates with the trust anchor sent last matches (issue 19 row 4)', async () => {
  await haraka.send({ to: 'user@long.hard.test' });
  const outcome = await firstOutcome(haraka, 'long.hard.test');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(sink(SINK.long).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /long\.hard\.test via mx\.long\.hard\.test .*TLS_SECURE \(DANE: 2 1 1 .*dane-ta/.test(l)));
});
