/**
 * DANE-9, DANE-10: the project's DANE verdicts beside OpenSSL's own DANE
 * verification, over chains made here with the openssl CLI.
 *
 * Each chain is served by `openssl s_server` on loopback, exactly as given.
 * OpenSSL's verdict: `openssl s_client -dane_tlsa_domain HOST
 * -dane_tlsa_rrdata … -verify_return_error -attime T` (usage 3 records with
 * `-dane_ee_no_namechecks`, as RFC 7672 §3.1.1 says; usages 0 and 1 withheld,
 * as SMTP has no use for them). The project's: the chain read from a Node TLS
 * connection to the same server (`getPeerX509Certificate`), the records
 * sorted as the lookup sorts them (`classifyTlsaRrset`), then `checkDane` at
 * the same time T, with one certificate cache kept across connections: when
 * the signature budget of a connection (DANE-10) is spent, the verdict is the
 * one a later connection reaches, and the number of connections is shown.
 *
 * Verdicts: `ok` (authenticated), `fail`, `unusable` (no usable record: TLS
 * without authentication; OpenSSL: "Failed to import any TLSA records").
 * Every case must agree, or be listed in ALLOWED with the RFC text that
 * favours the project's verdict.
 */
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { CertificateCache } from '#lib/dane/certificate-cache';
import { classifyTlsaRrset, parseTlsaText, type TlsaRecord } from '#lib/dane/tlsa';
import { checkDane } from '#lib/tls/dane-check';
import { ChainLab, opensslDaneVerdict, opensslServer, tlsaText, type Made, type Verdict, type KeyKind } from '../fixtures/dane-chains';

const MX = 'mx.example.test';
const DAY = 24 * 60 * 60 * 1000;
/** s_client runs at once (the machine may have 2 cores). */
const PARALLEL = 4;
/** Connections the project may take to reach a verdict (DANE-10: the signature budget of one may be spent). */
const MAX_CONNECTIONS = 20;

interface Case {
  name: string;
  /** The chain key in `chains`. */
  chain: string;
  records: string[];
  /** Days from now at which both verify. */
  atDays?: number;
  host?: string;
}

/**
 * Disagreements accepted, by case name, with the RFC text that favours the project. Empty means
 * every verdict agrees.
 */
const ALLOWED: ReadonlyMap<string, string> = new Map<string, string>([]);

let lab: ChainLab;
const chains = new Map<string, Made[]>();
const cases: Case[] = [];

async function makeChains(): Promise<void> {
  const m = (o: Parameters<ChainLab['make']>[0]): Promise<Made> => lab.make(o);
  for (const key of ['p256', 'p521', 'rsa', 'ed25519'] as KeyKind[]) {
    const root = await m({ cn: `Root ${key}`, profile: 'ca', key, days: 3650 });
    const int = await m({ cn: `Intermediate ${key}`, profile: 'ca', key, issuer: root, days: 3650 });
    const leaf = await m({ cn: MX, dnsNames: [MX], key, issuer: int });
    chains.set(key, [leaf, int, root]);
    const t = (u: number, s: number, mt: number, c: Made): string => tlsaText(u, s, mt, c.cert);
    cases.push(
      { name: `${key}: 2 1 1 intermediate`, chain: key, records: [t(2, 1, 1, int)] },
      { name: `${key}: 2 0 1 intermediate`, chain: key, records: [t(2, 0, 1, int)] },
      { name: `${key}: 2 1 0 intermediate`, chain: key, records: [t(2, 1, 0, int)] },
      { name: `${key}: 2 0 0 intermediate`, chain: key, records: [t(2, 0, 0, int)] },
      { name: `${key}: 2 1 1 root`, chain: key, records: [t(2, 1, 1, root)] },
      { name: `${key}: 2 0 2 root`, chain: key, records: [t(2, 0, 2, root)] },
      { name: `${key}: 3 1 1 leaf`, chain: key, records: [t(3, 1, 1, leaf)] },
      { name: `${key}: 3 0 0 leaf`, chain: key, records: [t(3, 0, 0, leaf)] },
      { name: `${key}: 2 1 1 leaf (a DANE-TA record for the leaf)`, chain: key, records: [t(2, 1, 1, leaf)] },
      { name: `${key}: 3 1 1 intermediate (a DANE-EE record for an issuer)`, chain: key, records: [t(3, 1, 1, int)] },
    );
  }
  const [leaf, int, root] = chains.get('p256') as [Made, Made, Made];
  const r = (u: number, s: number, mt: number, c: Made): string => tlsaText(u, s, mt, c.cert);
  const leafUnder = (issuer: Made, o: Partial<Parameters<ChainLab['make']>[0]> = {}): Promise<Made> =>
    m({ cn: MX, dnsNames: [MX], issuer, ...o });
  const ca = (cn: string, profile: Parameters<ChainLab['make']>[0]['profile'], issuer: Made, days = 3650): Promise<Made> =>
    m({ cn, profile, issuer, days });

  // RFC 5280 constraints.
  const pathlen0 = await ca('Pathlen 0', 'ca_pathlen0', root);
  const sub = await ca('Sub CA', 'ca', pathlen0);
  chains.set('pathlen', [await leafUnder(sub), sub, pathlen0, root]);
  cases.push(
    { name: 'sub-CA below a pathlen:0 intermediate, anchor root', chain: 'pathlen', records: [r(2, 1, 1, root)] },
    { name: 'sub-CA below a pathlen:0 intermediate, anchor the pathlen:0 intermediate', chain: 'pathlen', records: [r(2, 1, 1, pathlen0)] },
    { name: 'sub-CA below a pathlen:0 intermediate, anchor the sub-CA', chain: 'pathlen', records: [r(2, 1, 1, sub)] },
  );
  for (const [profile, label] of [
    ['ca_excludes', 'name constraints exclude the MX host'],
    ['ca_permits_other', 'name constraints permit another domain only'],
    ['ca_permits_mx', 'name constraints permit the MX host'],
    ['ca_critical_unknown', 'unknown critical extension in the intermediate'],
    ['ca_eku_client', 'intermediate EKU clientAuth only'],
    ['not_ca', 'intermediate not a CA'],
    ['ca_bad_constraints', 'intermediate with malformed basicConstraints'],
  ] as const) {
    const i = await ca(label, profile, root);
    chains.set(profile, [await leafUnder(i), i, root]);
    cases.push(
      { name: `${label}, anchor root`, chain: profile, records: [r(2, 1, 1, root)] },
      { name: `${label}, anchor the intermediate`, chain: profile, records: [r(2, 1, 1, i)] },
    );
  }
  for (const [profile, label] of [
    ['leaf_critical_unknown', 'unknown critical extension in the leaf'],
    ['leaf_client_auth', 'leaf EKU clientAuth only'],
    ['leaf_any_eku', 'leaf EKU anyExtendedKeyUsage only'],
    ['leaf_no_ext', 'leaf without extensions (v3, no basicConstraints)'],
  ] as const) {
    chains.set(profile, [await leafUnder(int, { profile }), int, root]);
    cases.push(
      { name: `${label}, 2 1 1 intermediate`, chain: profile, records: [r(2, 1, 1, int)] },
      { name: `${label}, 3 1 1 leaf`, chain: profile, records: [r(3, 1, 1, (chains.get(profile) as Made[])[0] as Made)] },
    );
  }

  // Dates.
  const shortInt = await ca('Short-lived Intermediate', 'ca', root, 1);
  chains.set('short-leaf', [await leafUnder(int, { days: 1 }), int, root]);
  chains.set('short-int', [await leafUnder(shortInt), shortInt, root]);
  cases.push(
    { name: 'expired leaf', chain: 'short-leaf', records: [r(2, 1, 1, int)], atDays: 3 },
    {
      name: 'expired leaf under DANE-EE',
      chain: 'short-leaf',
      records: [r(3, 1, 1, (chains.get('short-leaf') as Made[])[0] as Made)],
      atDays: 3,
    },
    { name: 'not yet valid chain (leaf, intermediate and root)', chain: 'p256', records: [r(2, 1, 1, root)], atDays: -1 / 24 },
    { name: 'not yet valid leaf, anchor the intermediate', chain: 'p256', records: [r(2, 1, 1, int)], atDays: -1 / 24 },
    { name: 'expired intermediate, anchor root', chain: 'short-int', records: [r(2, 1, 1, root)], atDays: 3 },
    { name: 'expired intermediate that is the anchor', chain: 'short-int', records: [r(2, 1, 1, shortInt)], atDays: 3 },
  );

  // Names.
  chains.set('other-name', [await m({ cn: 'other.example.test', dnsNames: ['other.example.test'], issuer: int }), int, root]);
  chains.set('wildcard', [await m({ cn: '*.example.test', dnsNames: ['*.example.test'], issuer: int }), int, root]);
  chains.set('cn-only', [await m({ cn: MX, issuer: int }), int, root]);
  cases.push(
    { name: 'wrong name', chain: 'other-name', records: [r(2, 1, 1, int)] },
    { name: 'wrong name under DANE-EE', chain: 'other-name', records: [r(3, 1, 1, (chains.get('other-name') as Made[])[0] as Made)] },
    { name: 'wildcard *.example.test for mx.example.test', chain: 'wildcard', records: [r(2, 1, 1, int)] },
    { name: 'wildcard *.example.test for a.mx.example.test', chain: 'wildcard', records: [r(2, 1, 1, int)], host: 'a.mx.example.test' },
    { name: 'wildcard *.example.test for example.test', chain: 'wildcard', records: [r(2, 1, 1, int)], host: 'example.test' },
    { name: 'subject CN only, no subjectAltName', chain: 'cn-only', records: [r(2, 1, 1, int)] },
  );

  // Order and completeness.
  chains.set('reordered', [leaf, root, int]);
  chains.set('leaf-only', [leaf]);
  chains.set('no-root', [leaf, int]);
  cases.push(
    { name: 'reordered (root before intermediate), anchor root', chain: 'reordered', records: [r(2, 1, 1, root)] },
    { name: 'reordered, anchor intermediate', chain: 'reordered', records: [r(2, 1, 1, int)] },
    { name: 'partial: leaf only, 2 1 0 intermediate', chain: 'leaf-only', records: [r(2, 1, 0, int)] },
    { name: 'partial: leaf only, 2 0 0 intermediate', chain: 'leaf-only', records: [r(2, 0, 0, int)] },
    { name: 'partial: leaf only, 2 1 1 intermediate', chain: 'leaf-only', records: [r(2, 1, 1, int)] },
    { name: 'partial: leaf and intermediate, 2 0 0 root', chain: 'no-root', records: [r(2, 0, 0, root)] },
    { name: 'partial: leaf and intermediate, 2 1 0 root', chain: 'no-root', records: [r(2, 1, 0, root)] },
    { name: 'partial: leaf and intermediate, 2 1 1 root', chain: 'no-root', records: [r(2, 1, 1, root)] },
    { name: 'a wrong 2 1 1 beside a right 2 1 1', chain: 'p256', records: [`2 1 1 ${'ab'.repeat(32)}`, r(2, 1, 1, int)] },
  );

  // Long chains, the anchor late (DANE-10: at least 16 certificates read).
  const junk = await Promise.all(Array.from({ length: 14 }, (_, i) => m({ cn: `Junk ${i}`, profile: 'ca', days: 30 })));
  chains.set('padded-15', [leaf, ...junk.slice(0, 12), int, root]);
  chains.set('padded-17', [leaf, ...junk, int, root]);
  let above = root;
  const deep: Made[] = [];
  for (let i = 1; i <= 11; i++) {
    above = await ca(`Deep ${i}`, 'ca', above);
    deep.unshift(above);
  }
  chains.set('deep-13', [await leafUnder(above), ...deep, root]);
  cases.push(
    { name: '15 certificates, anchor root sent 15th', chain: 'padded-15', records: [r(2, 1, 1, root)] },
    { name: '17 certificates, anchor root sent 17th', chain: 'padded-17', records: [r(2, 1, 1, root)] },
    { name: '17 certificates, anchor intermediate sent 16th', chain: 'padded-17', records: [r(2, 0, 1, int)] },
    { name: '13 certificates, 12 links from the leaf to the root anchor', chain: 'deep-13', records: [r(2, 1, 1, root)] },
  );

  // Malformed Full(0) data (DANE-10).
  for (const text of ['3 0 0 3003020100', '3 1 0 0102', '2 0 0 3003020100', '2 1 0 deadbeef']) {
    cases.push(
      { name: `malformed ${text} alone`, chain: 'p256', records: [text] },
      { name: `malformed ${text} beside a right 2 1 1`, chain: 'p256', records: [text, r(2, 1, 1, int)] },
    );
  }
  cases.push({ name: 'a 2 1 0 with trailing data after the key', chain: 'p256', records: [`${r(2, 1, 0, int)}00`] });
}

/** The chain as Haraka's connection guard reads it: the leaf from `getPeerX509Certificate()`, linked to the rest. */
async function peerLeaf(port: number, host: string): Promise<X509Certificate> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: host, rejectUnauthorized: false });
  try {
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return socket.getPeerX509Certificate() as X509Certificate;
  } finally {
    socket.destroy();
  }
}

function ourVerdict(leaf: X509Certificate, host: string, texts: readonly string[], at: Date): { verdict: Verdict; detail: string } {
  const records = texts.map((text): TlsaRecord => {
    const parsed = parseTlsaText(text);
    if (parsed.kind !== 'record') throw new Error(parsed.reason);
    return parsed.record;
  });
  const rrset = classifyTlsaRrset(records);
  if (rrset.kind !== 'usable') return { verdict: 'unusable', detail: 'no usable record at the lookup' };
  const cache = new CertificateCache();
  for (let connection = 1; ; connection++) {
    const check = checkDane(
      { tlsaName: `_25._tcp.${host}`, usable: rrset.usable },
      { encrypted: true, peerCertificate: leaf },
      host,
      at,
      cache,
    );
    if (
      check.kind === 'refused' &&
      /budget of signature checks per connection \(\d+ units\) is spent/.test(check.reason) &&
      connection < MAX_CONNECTIONS
    )
      continue;
    const verdict: Verdict = check.kind === 'authenticated' ? 'ok' : check.kind === 'encrypted' ? 'unusable' : 'fail';
    return { verdict, detail: `${connection > 1 ? `after ${connection} connections: ` : ''}${check.reason.slice(0, 300)}` };
  }
}

/** Runs `work` on each item, at most `limit` at once. */
async function pool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i] as T);
    }),
  );
  return results;
}

before(async () => {
  lab = await ChainLab.create();
  await makeChains();
});

after(async () => {
  await lab?.cleanup();
});

test('DANE-9, DANE-10: every verdict agrees with OpenSSL’s DANE verification, or is listed with the RFC text that favours ours', async () => {
  const rows: string[] = [];
  const disagreements: string[] = [];
  const hosts = new Map<string, Set<string>>();
  for (const c of cases) hosts.set(c.chain, (hosts.get(c.chain) ?? new Set()).add(c.host ?? MX));
  const servers = new Map<string, { port: number; stop(): void; leaves: Map<string, X509Certificate> }>();
  try {
    await pool([...chains.entries()], PARALLEL, async ([key, sent]) => {
      const server = await opensslServer(lab, sent, 1000);
      const leaves = new Map<string, X509Certificate>();
      for (const host of hosts.get(key) ?? []) leaves.set(host, await peerLeaf(server.port, host));
      servers.set(key, { ...server, leaves });
    });
    const started = Date.now();
    const verdicts = await pool(cases, PARALLEL, async (c) => {
      const host = c.host ?? MX;
      const server = servers.get(c.chain);
      if (!server) throw new Error(`no server for ${c.chain}`);
      const at = new Date(Date.now() + (c.atDays ?? 0) * DAY);
      const theirs = await opensslDaneVerdict(server.port, host, c.records, at);
      const ours = ourVerdict(server.leaves.get(host) as X509Certificate, host, c.records, at);
      return { c, theirs, ours };
    });
    for (const { c, theirs, ours } of verdicts) {
      const agree = theirs.verdict === ours.verdict;
      rows.push(
        `${agree ? 'agree' : 'DIFFER'}  ${c.name}: OpenSSL ${theirs.verdict} (${theirs.detail}); ours ${ours.verdict} (${ours.detail})`,
      );
      if (!agree && !ALLOWED.has(c.name)) disagreements.push(rows[rows.length - 1] as string);
    }
    const agreeing = verdicts.filter((v) => v.theirs.verdict === v.ours.verdict).length;
    console.log(
      `${cases.length} cases over ${chains.size} chains, ${agreeing} agree, ${cases.length - agreeing} differ (${ALLOWED.size} listed); s_client runs took ${Date.now() - started} ms\n${rows.join('\n')}`,
    );
  } finally {
    for (const server of servers.values()) server.stop();
  }
  assert.deepEqual(disagreements, []);
  for (const name of ALLOWED.keys()) {
    assert.ok(
      cases.some((c) => c.name === name),
      `ALLOWED names a case that does not exist: ${name}`,
    );
  }
});
