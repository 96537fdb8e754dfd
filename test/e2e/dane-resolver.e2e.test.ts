/**
 * End-to-end DANE-8 (whose AD bit is believed, what a failed resolver check
 * means) and DANE-11 (a CNAME'd MX host) through a real Haraka:
 *
 * - a stub DNS server on loopback that sets AD on every answer (as
 *   systemd-resolved before v257 and dnsmasq with proxy-dnssec pass an
 *   upstream's bit through), forging MX and TLSA records for a domain with a
 *   cached MTA-STS enforce policy: its AD bit is not believed;
 * - the DNSSEC lab (a validating unbound in front of nsd, zones signed at
 *   setup), declared in `[dane] trusted_resolvers`, whose probe zone is broken
 *   (SERVFAIL), restored, then made insecure (answers without AD);
 * - MX hosts that are CNAMEs, secure and insecure;
 * - a cluster (nodes=2) without a declared resolver: one INFO line per start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DnssecLab, type LabRecord, type ZoneSpec } from '../fixtures/dnssec';
import { mxRecords, spkiSha256, tlsaRecord } from '../fixtures/dnssec/dane-records';
import { TestDnsServer } from '../fixtures/dns-server';
import { CLI_PATH, HarakaInstance, describeOutcome, firstOutcome, waitUntil } from '../fixtures/haraka-instance';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa, type Pem } from '../fixtures/test-ca';

const SINK = {
  genuine: '127.0.15.1',
  attacker: '127.0.15.2',
  ee: '127.0.15.3',
  cname: '127.0.15.4',
  cnameOriginal: '127.0.15.5',
  cnameInsecure: '127.0.15.6',
} as const;
const POLICY_HOST = '127.0.15.60';
/** The probe zone of the lab's Haraka: broken, restored and made insecure by the DANE-8 test. */
const PROBE_ZONE = 'probe.test';
const PROBE_RECORDS: LabRecord[] = [{ name: 'probe.test', type: 'TXT', data: 'the resolver check asks for SOA probe.test.' }];

let ca: TestCa;
let untrustedCa: TestCa;
let lab: DnssecLab;
let stub: TestDnsServer;
let policies: PolicyServer;
let sinks: SmtpSink[];
let port: number;
let attacker: Pem;
/** Haraka asking the AD-copying stub (no resolver declared). */
let behindStub: HarakaInstance;
/** Haraka asking the lab's unbound, declared validating. */
let declared: HarakaInstance;

function sink(address: string): SmtpSink {
  const found = sinks.find((s) => s.host === address);
  if (!found) throw new Error(`no sink on ${address}`);
  return found;
}

const count = (instance: HarakaInstance, pattern: RegExp): number => instance.logLines.filter((l) => pattern.test(l)).length;

/**
 * Haraka with nodes=1 runs a master and one worker; each loads outbound_mx and
 * checks its resolver on its own timer, and logs each change of its own status
 * once. Their lines cannot be told apart, so the tests wait for both.
 */
const PROCESSES = 2;

/** Waits until `pattern` was logged `times` times in all (each process once per change). */
function waitForLines(instance: HarakaInstance, pattern: RegExp, times: number, timeoutMs = 30_000): Promise<void> {
  return waitUntil(
    () => count(instance, pattern) >= times,
    timeoutMs,
    () => `${times} lines ${pattern} (${count(instance, pattern)} so far); log tail:\n${instance.logLines.slice(-20).join('\n')}`,
  );
}

before(async () => {
  ca = await TestCa.create();
  untrustedCa = await TestCa.create();
  const genuine = await ca.issue({ dnsNames: ['mx.victim.test'] });
  attacker = await ca.selfSigned({ dnsNames: ['mx.attacker.test'] });
  const ee = await ca.selfSigned({ dnsNames: ['mx.ee.res.test'] });
  // DANE-11: certificates naming the CNAME's target only, from a CA nobody trusts (DANE-TA anchors it).
  const target = await untrustedCa.issue({ dnsNames: ['mail.target.res.test'] });
  const targetOriginal = await untrustedCa.issue({ dnsNames: ['mail2.target.res.test'] });
  const insecureTarget = await ca.selfSigned({ dnsNames: ['mail3.target.res.test'] });
  const tls = (pem: Pem, chain = ''): { key: string; cert: string } => ({ key: pem.key, cert: pem.cert + chain });
  sinks = await startSinksOnCommonPort([
    { host: SINK.genuine, tls: tls(genuine) },
    { host: SINK.attacker, tls: tls(attacker) },
    { host: SINK.ee, tls: tls(ee) },
    { host: SINK.cname, tls: tls(target, untrustedCa.caCert) },
    { host: SINK.cnameOriginal, tls: tls(targetOriginal, untrustedCa.caCert) },
    { host: SINK.cnameInsecure, tls: tls(insecureTarget) },
  ]);
  port = sinks[0]?.port ?? 0;
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  await policies.set('victim.test', { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx.victim.test'] }) });

  // The stub: genuine answers for now, every one with AD.
  stub = await TestDnsServer.start();
  stub.authenticated = true;
  stub.add('test', { type: 'TXT', data: 'the resolver check asks for SOA test.' });
  stub.add('victim.test', { type: 'MX', preference: 10, exchange: 'mx.victim.test' });
  stub.add('mx.victim.test', { type: 'A', address: SINK.genuine });
  stub.add('_mta-sts.victim.test', { type: 'TXT', data: 'v=STSv1; id=20260101' });
  stub.add('mta-sts.victim.test', { type: 'A', address: POLICY_HOST });

  const tlsa = (host: string, usage: number, selector: number, sha256Hex: string): LabRecord =>
    tlsaRecord(port, host, usage, selector, sha256Hex);
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'res.test',
        records: [
          ...mxRecords('ee.res.test', 'mx.ee.res.test', SINK.ee),
          tlsa('mx.ee.res.test', 3, 1, spkiSha256(ee.cert)),
          // DANE-11: a secure CNAME; TLSA records at the expanded name.
          { name: 'cname.res.test', type: 'MX', preference: 10, exchange: 'mx.cname.res.test' },
          { name: 'mx.cname.res.test', type: 'CNAME', target: 'mail.target.res.test' },
          { name: 'mail.target.res.test', type: 'A', address: SINK.cname },
          tlsa('mail.target.res.test', 2, 1, spkiSha256(untrustedCa.caCert)),
          // DANE-11: a secure CNAME; TLSA records at the original name only, the certificate names the target.
          { name: 'cname2.res.test', type: 'MX', preference: 10, exchange: 'mx.cname2.res.test' },
          { name: 'mx.cname2.res.test', type: 'CNAME', target: 'mail2.target.res.test' },
          { name: 'mail2.target.res.test', type: 'A', address: SINK.cnameOriginal },
          tlsa('mx.cname2.res.test', 2, 1, spkiSha256(untrustedCa.caCert)),
          // DANE-11 control: the MX host is a CNAME in an insecure zone; the target's TLSA record matches nothing.
          { name: 'cname3.res.test', type: 'MX', preference: 10, exchange: 'mx.cname3.ins.test' },
          { name: 'mail3.target.res.test', type: 'A', address: SINK.cnameInsecure },
          tlsa('mail3.target.res.test', 3, 1, spkiSha256(attacker.cert)),
        ],
      },
      { name: 'ins.test', security: 'insecure', records: [{ name: 'mx.cname3.ins.test', type: 'CNAME', target: 'mail3.target.res.test' }] },
      { name: PROBE_ZONE, records: PROBE_RECORDS },
    ],
  });

  const mtaSts = ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=2'];
  [behindStub, declared] = await Promise.all([
    HarakaInstance.start({
      plugins: ['outbound_tls', 'outbound_mx'],
      dnsServer: stub.address,
      mxPort: port,
      extraCa: ca.caCertPath,
      mxIniExtra: ['[dane]', 'probe=test.', ...mtaSts].join('\n'),
    }),
    HarakaInstance.start({
      plugins: ['outbound_tls', 'outbound_mx'],
      nodes: 1,
      dnsServer: lab.resolver,
      mxPort: port,
      extraCa: ca.caCertPath,
      mxIniExtra: ['[dane]', `trusted_resolvers=${lab.resolver}`, `probe=${PROBE_ZONE}.`, 'check_interval=10', ...mtaSts].join('\n'),
    }),
  ]);
  await waitForLines(declared, /outbound_mx: DANE in effect \(mode=on\)/, PROCESSES);
});

after(async () => {
  await behindStub?.stop();
  await declared?.stop();
  await policies?.stop();
  await stub?.stop();
  for (const s of sinks ?? []) await s.stop();
  await lab?.stop();
  await untrustedCa?.cleanup();
  await ca?.cleanup();
});

function cli(configDir: string, ...args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, '--config', configDir, ...args], { timeout: 30_000 }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout });
    });
  });
}

test('DANE-8: an undeclared loopback stub copying AD cannot forge MX + TLSA past a cached MTA-STS enforce policy', async () => {
  // The policy is fetched and cached while the stub still answers honestly.
  await behindStub.send({ to: 'user@victim.test' });
  const first = await firstOutcome(behindStub, 'victim.test');
  assert.equal(first.event, 'delivered', describeOutcome(first));
  assert.equal(sink(SINK.genuine).messages.length, 1);

  // Now the stub forges: an MX to the attacker's host, its A record and a TLSA record for the attacker's own key, all "AD".
  stub.set('victim.test', [{ type: 'MX', preference: 10, exchange: 'mx.attacker.test' }]);
  stub.add('mx.attacker.test', { type: 'A', address: SINK.attacker });
  stub.add(`_${port}._tcp.mx.attacker.test`, {
    type: 'TLSA',
    usage: 3,
    selector: 1,
    matchingType: 1,
    certificate: spkiSha256(attacker.cert),
  });
  const since = Date.now();
  await behindStub.send({ to: 'user@victim.test' });
  const forged = await firstOutcome(behindStub, 'victim.test', since);
  assert.equal(forged.event, 'deferred', `the forged MX must not be used: ${describeOutcome(forged)}`);
  assert.equal(sink(SINK.attacker).count('connect'), 0, 'no connection to the forged MX');
  assert.ok(!behindStub.logLines.some((l) => /not used: DANE applies/.test(l)), 'MTA-STS enforce stays in force');
  const notInEffect = behindStub.logLines.find((l) => /outbound_mx: DANE not in effect/.test(l)) ?? '';
  assert.match(notInEffect, /no validating resolver is declared/);
  assert.match(notInEffect, /trusted_resolvers=/, 'the log line says how to turn DANE on');

  const status = await cli(path.join(behindStub.dir, 'config'), 'dane', 'status');
  assert.equal(status.code, 6, status.stdout);
  assert.match(status.stdout, /DANE not in effect: no validating resolver is declared/);
  assert.match(status.stdout, /\[dane\] trusted_resolvers=/);
});

test('DANE-8: a failed resolver check is unknown: a DANE domain is deferred, never delivered without DANE, until a check succeeds', async () => {
  const connects = sink(SINK.ee).count('connect');
  await lab.update({ name: PROBE_ZONE, security: 'bad-signature', records: PROBE_RECORDS } satisfies ZoneSpec);
  try {
    await brokenProbe(connects);
  } finally {
    await lab.update({ name: PROBE_ZONE, records: PROBE_RECORDS });
  }
});

async function brokenProbe(connects: number): Promise<void> {
  await waitForLines(declared, /outbound_mx: DANE status unknown/, PROCESSES, 25_000);
  const since = Date.now();
  await declared.send({ to: 'user@ee.res.test' });
  const waiting = await firstOutcome(declared, 'ee.res.test', since);
  assert.equal(waiting.event, 'deferred', describeOutcome(waiting));
  assert.ok(
    declared.logLines.some((l) => /temporary failure for ee\.res\.test: .*DANE status unknown \(SOA probe\.test\.: SERVFAIL\)/.test(l)),
    'the deferral says why',
  );
  assert.equal(sink(SINK.ee).count('connect'), connects, 'no connection without DANE');

  await lab.update({ name: PROBE_ZONE, records: PROBE_RECORDS });
  await waitForLines(declared, /outbound_mx: DANE in effect/, 2 * PROCESSES, 25_000);
  const delivered = await declared.waitForEvent((e) => e.domain === 'ee.res.test' && e.event === 'delivered', 30_000, 'the retry');
  assert.equal(delivered.host, 'mx.ee.res.test');
  assert.ok(declared.logLines.some((l) => /ee\.res\.test via mx\.ee\.res\.test .*TLS_SECURE \(DANE: 3 1 1/.test(l)));
  assert.equal(count(declared, /outbound_mx: DANE status unknown/), PROCESSES, 'the change is logged once, not at every failed check');

  // Definite answers without AD (the probe zone made insecure): out of effect only after three in a row, as a WARN.
  await lab.update({ name: PROBE_ZONE, security: 'insecure', records: PROBE_RECORDS });
  await waitForLines(declared, /outbound_mx: DANE not in effect/, PROCESSES, 45_000);
  for (const out of declared.logLines.filter((l) => /outbound_mx: DANE not in effect/.test(l))) {
    assert.match(out, /\[WARN\]/);
    assert.match(out, /without the AD bit .*3 times in a row/);
  }
  assert.equal(count(declared, /outbound_mx: DANE status unknown/), 2 * PROCESSES, 'unknown while the answers without AD are counted');
  assert.equal(count(declared, /outbound_mx: DANE not in effect/), PROCESSES);
}

/** Sends to `domain` through the declared-resolver Haraka; asserts delivery to `address` with a log line matching `decided`. */
async function deliverVia(domain: string, address: string, decided: RegExp): Promise<void> {
  const since = Date.now();
  const before = sink(address).messages.length;
  await declared.send({ to: `user@${domain}` });
  const outcome = await firstOutcome(declared, domain, since);
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(sink(address).messages.length, before + 1);
  assert.ok(
    declared.logLines.some((l) => decided.test(l)),
    `a log line ${decided}`,
  );
}

test('DANE-11: an MX host that is a secure CNAME: TLSA at the expanded name, the target name accepted via DANE-TA', async () => {
  await waitForLines(declared, /outbound_mx: DANE in effect/, 3 * PROCESSES);
  await deliverVia(
    'cname.res.test',
    SINK.cname,
    /cname\.res\.test via mx\.cname\.res\.test .*TLS_SECURE \(DANE: 2 1 1 .*dane-ta.* at _\d+\._tcp\.mail\.target\.res\.test/,
  );
});

test('DANE-11: no TLSA at the expanded name: the original name is asked, and a certificate naming the target is accepted', async () => {
  await deliverVia(
    'cname2.res.test',
    SINK.cnameOriginal,
    /cname2\.res\.test via mx\.cname2\.res\.test .*TLS_SECURE \(DANE: 2 1 1 .*dane-ta.* at _\d+\._tcp\.mx\.cname2\.res\.test/,
  );
});

test("DANE-11: an MX host that is a CNAME in an insecure zone has no DANE: its target's TLSA records are not used", async () => {
  // Were the target's TLSA record used, the certificate would not match it and the message would wait.
  await deliverVia('cname3.res.test', SINK.cnameInsecure, /cname3\.res\.test via mx\.cname3\.ins\.test .*TLS_INSECURE/);
});

test('DANE-8 (issue 21): no declared resolver is one INFO line per start, not one per process, saying how to turn DANE on', async () => {
  const cluster = await HarakaInstance.start({ dnsServer: lab.resolver, mxPort: port, nodes: 2, plugins: ['outbound_tls', 'outbound_mx'] });
  try {
    await cluster.waitForLog(/outbound_mx: DANE not in effect/);
    // Every process has loaded the plugins by now (the workers listen); give a late one a moment to log.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const lines = cluster.logLines.filter((l) => /outbound_mx: DANE not in effect/.test(l));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0] ?? '', /\[INFO\]/);
    assert.match(lines[0] ?? '', /\[dane\] trusted_resolvers=/);
  } finally {
    await cluster.stop();
  }
});
