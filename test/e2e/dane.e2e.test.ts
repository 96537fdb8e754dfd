/**
 * End-to-end DANE (design §11, DANE-1 … DANE-7) through a real Haraka: the
 * DNSSEC lab (a validating unbound in front of nsd, zones signed at setup) is
 * Haraka's only DNS server; SMTP sinks on loopback present self-signed
 * certificates (DANE-EE), a chain from a CA Haraka does not trust (DANE-TA),
 * certificates from the tests' trusted CA, or no STARTTLS at all. The DANE
 * Haraka also takes mail over inbound STARTTLS with REQUIRETLS (RT-2: a
 * DNSSEC-validated MX set authenticates it, a DANE match is TLS_SECURE).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DnssecLab, type LabRecord } from '../fixtures/dnssec';
import { certSha256, mxRecords, spkiSha256, tlsaRecord } from '../fixtures/dnssec/dane-records';
import { HarakaInstance, describeOutcome, firstOutcome } from '../fixtures/haraka-instance';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { FFDHE2048_PEM, TestCa, type Pem } from '../fixtures/test-ca';
import { inSession } from '../fixtures/smtp-session';
import { PolicyServer, policyText } from '../fixtures/policy-server';

const SINK = {
  ee: '127.0.12.1',
  ee301: '127.0.12.2',
  ta: '127.0.12.3',
  mismatchFirst: '127.0.12.4',
  mismatchSecond: '127.0.12.5',
  plainOnly: '127.0.12.6',
  insecure: '127.0.12.7',
  skipFirst: '127.0.12.8',
  skipSecond: '127.0.12.9',
  both: '127.0.12.10',
  requireTls: '127.0.12.11',
} as const;
const POLICY_HOST = '127.0.12.60';

let ca: TestCa;
let untrustedCa: TestCa;
let lab: DnssecLab;
let haraka: HarakaInstance;
let observing: HarakaInstance;
let policies: PolicyServer;
let sinks: SmtpSink[];

function sink(address: string): SmtpSink {
  const found = sinks.find((s) => s.host === address);
  if (!found) throw new Error(`no sink on ${address}`);
  return found;
}

before(async () => {
  ca = await TestCa.create();
  untrustedCa = await TestCa.create();
  const selfSigned = (host: string): Promise<Pem> => ca.selfSigned({ dnsNames: [host] });
  const ee = await selfSigned('mx.ee.dane.test');
  const ee301 = await selfSigned('mx.ee301.dane.test');
  const taLeaf = await untrustedCa.issue({ dnsNames: ['mx.ta.dane.test'] });
  const mismatchFirst = await selfSigned('mx1.mismatch.dane.test');
  const mismatchSecond = await selfSigned('mx2.mismatch.dane.test');
  const insecure = await selfSigned('mx.insecure.test');
  const valid = await ca.issue({ dnsNames: ['mx2.skip.dane.test'] });
  const both = await selfSigned('mx.both.dane.test');
  const requireTls = await selfSigned('mx.rt.dane.test');
  const harakaCert = await ca.issue({ dnsNames: ['haraka.test'], ipAddresses: ['127.0.0.1'] });
  const tls = (pem: Pem, chain = ''): { key: string; cert: string } => ({ key: pem.key, cert: pem.cert + chain });
  sinks = await startSinksOnCommonPort([
    { host: SINK.ee, tls: tls(ee) },
    { host: SINK.ee301, tls: tls(ee301) },
    // DANE-TA: the server sends its chain up to the trust anchor (RFC 7672 §3.1.2).
    { host: SINK.ta, tls: tls(taLeaf, untrustedCa.caCert) },
    { host: SINK.mismatchFirst, tls: tls(mismatchFirst) },
    { host: SINK.mismatchSecond, tls: tls(mismatchSecond) },
    { host: SINK.plainOnly, tls: 'none' },
    { host: SINK.insecure, tls: tls(insecure) },
    { host: SINK.skipFirst, tls: tls(valid) },
    { host: SINK.skipSecond, tls: tls(valid) },
    { host: SINK.both, tls: tls(both) },
    { host: SINK.requireTls, tls: tls(requireTls), requireTlsExtension: true },
  ]);
  // both.dane.test also has an MTA-STS enforce policy that lists none of its MX hosts (DANE-5).
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  await policies.set('both.dane.test', { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx.elsewhere.test'] }) });
  const port = sinks[0]?.port ?? 0;
  const tlsa = (host: string, usage: number, selector: number, sha256Hex: string): LabRecord =>
    tlsaRecord(port, host, usage, selector, sha256Hex);
  const mx = mxRecords;
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'dane.test',
        records: [
          ...mx('ee.dane.test', 'mx.ee.dane.test', SINK.ee),
          tlsa('mx.ee.dane.test', 3, 1, spkiSha256(ee.cert)),
          ...mx('ee301.dane.test', 'mx.ee301.dane.test', SINK.ee301),
          tlsa('mx.ee301.dane.test', 3, 0, certSha256(ee301.cert)),
          ...mx('ta.dane.test', 'mx.ta.dane.test', SINK.ta),
          tlsa('mx.ta.dane.test', 2, 1, spkiSha256(untrustedCa.caCert)),
          ...mx('mismatch.dane.test', 'mx1.mismatch.dane.test', SINK.mismatchFirst, 10),
          tlsa('mx1.mismatch.dane.test', 3, 1, spkiSha256(mismatchSecond.cert)),
          ...mx('mismatch.dane.test', 'mx2.mismatch.dane.test', SINK.mismatchSecond, 20),
          tlsa('mx2.mismatch.dane.test', 3, 1, spkiSha256(mismatchSecond.cert)),
          ...mx('tlsonly.dane.test', 'mx.tlsonly.dane.test', SINK.plainOnly),
          // Only unusable records (PKIX-EE): TLS is still required (RFC 7672 §3.1.3).
          tlsa('mx.tlsonly.dane.test', 1, 1, spkiSha256(ee.cert)),
          ...mx('skip.dane.test', 'mx1.skip.dane.test', SINK.skipFirst, 10),
          ...mx('skip.dane.test', 'mx2.skip.dane.test', SINK.skipSecond, 20),
          // mx1.aaaa: its A is secure, its AAAA bogus (SERVFAIL): status unknown, so it is skipped (DANE-2).
          ...mx('aaaa.dane.test', 'mx1.aaaa.dane.test', SINK.mismatchFirst, 10),
          { name: 'mx1.aaaa.dane.test', type: 'AAAA', address: '2001:db8::25', badSignature: true },
          tlsa('mx1.aaaa.dane.test', 3, 1, spkiSha256(mismatchSecond.cert)),
          ...mx('aaaa.dane.test', 'mx2.aaaa.dane.test', SINK.mismatchSecond, 20),
          tlsa('mx2.aaaa.dane.test', 3, 1, spkiSha256(mismatchSecond.cert)),
          // exempt.dane.test: a non-matching TLSA record, and a policy table rule exempt=dane.
          ...mx('exempt.dane.test', 'mx.exempt.dane.test', SINK.mismatchFirst),
          tlsa('mx.exempt.dane.test', 3, 1, spkiSha256(mismatchSecond.cert)),
          ...mx('both.dane.test', 'mx.both.dane.test', SINK.both),
          tlsa('mx.both.dane.test', 3, 1, spkiSha256(both.cert)),
          { name: '_mta-sts.both.dane.test', type: 'TXT', data: 'v=STSv1; id=20261130' },
          { name: 'mta-sts.both.dane.test', type: 'A', address: POLICY_HOST },
          ...mx('rt.dane.test', 'mx.rt.dane.test', SINK.requireTls),
          tlsa('mx.rt.dane.test', 3, 1, spkiSha256(requireTls.cert)),
        ],
      },
      // The TLSA lookup of mx1.skip.dane.test gets SERVFAIL: that host is skipped (DANE-3).
      { name: `_${port}._tcp.mx1.skip.dane.test`, security: 'lame' },
      {
        name: 'insecure.test',
        security: 'insecure',
        records: [...mx('insecure.test', 'mx.insecure.test', SINK.insecure), tlsa('mx.insecure.test', 3, 1, 'ab'.repeat(32))],
      },
      { name: 'bogus.test', security: 'bad-signature', records: mx('bogus.test', 'mx.bogus.test', SINK.insecure) },
      { name: 'expired.test', security: 'expired-signature', records: mx('expired.test', 'mx.expired.test', SINK.insecure) },
    ],
  });
  const options = (mode: string) => ({
    // RT-2: inbound STARTTLS (tls plugin) and [requiretls] on, so REQUIRETLS messages can be submitted.
    plugins: ['tls', 'outbound_tls', 'outbound_mx'],
    dnsServer: lab.resolver,
    mxPort: port,
    extraCa: ca.caCertPath,
    // The lab's trust anchor is test., not the root: the resolver check asks for a name under it.
    mxIniExtra: [
      `[dane]`,
      `mode=${mode}`,
      `trusted_resolvers=${lab.resolver}`,
      'probe=test.',
      '[mta_sts]',
      `https_port=${policies.port}`,
      `ca_file=${ca.caCertPath}`,
    ].join('\n'),
    config: {
      outbound_tls_policy: 'exempt.dane.test  may  exempt=dane\n',
      'outbound_tls.ini': '[requiretls]\nenabled=true\n',
      'tls_key.pem': harakaCert.key,
      'tls_cert.pem': harakaCert.cert,
      'dhparams.pem': FFDHE2048_PEM,
    },
  });
  [haraka, observing] = await Promise.all([HarakaInstance.start(options('on')), HarakaInstance.start(options('observe'))]);
  await haraka.waitForLog(/DANE in effect \(mode=on\)/);
  await observing.waitForLog(/DANE in effect \(mode=observe\)/);
});

after(async () => {
  await haraka?.stop();
  await observing?.stop();
  await policies?.stop();
  for (const s of sinks ?? []) await s.stop();
  await lab?.stop();
  await untrustedCa?.cleanup();
  await ca?.cleanup();
});

async function deliver(domain: string): Promise<void> {
  await haraka.send({ to: `user@${domain}` });
  const outcome = await firstOutcome(haraka, domain);
  assert.equal(outcome.event, 'delivered', `${domain}: ${describeOutcome(outcome)}`);
}

test('DANE-4/DANE-5: a self-signed certificate matching DANE-EE 3 1 1 is TLS_SECURE and the ratchet records it', async () => {
  await deliver('ee.dane.test');
  assert.equal(sink(SINK.ee).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /ee\.dane\.test via mx\.ee\.dane\.test .*TLS_SECURE \(DANE: 3 1 1 .*dane-ee/.test(l)));
  assert.ok(haraka.logLines.some((l) => /ee\.dane\.test: ratchet raised to TLS_SECURE/.test(l)));
});

test('DANE-4: DANE-EE 3 0 1 (the whole certificate) matches too', async () => {
  await deliver('ee301.dane.test');
  assert.equal(sink(SINK.ee301).messages.length, 1);
});

test('DANE-4: DANE-TA 2 1 1: a chain from a CA nobody trusts, anchored by the TLSA record, is TLS_SECURE', async () => {
  await deliver('ta.dane.test');
  assert.equal(sink(SINK.ta).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /ta\.dane\.test via mx\.ta\.dane\.test .*TLS_SECURE \(DANE: 2 1 1 .*dane-ta/.test(l)));
});

test('DANE-3/DANE-4: a certificate matching no TLSA record is abandoned before MAIL FROM and the next MX is used', async () => {
  await deliver('mismatch.dane.test');
  assert.equal(sink(SINK.mismatchFirst).count('mailfrom'), 0, 'no MAIL FROM to the mismatching MX');
  assert.ok(sink(SINK.mismatchFirst).count('connect') >= 1);
  assert.equal(sink(SINK.mismatchSecond).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /mx1\.mismatch\.dane\.test .*abandoned before MAIL FROM: DANE: no TLSA record/.test(l)));
});

test('DANE-3: only unusable TLSA records still require TLS: an MX without STARTTLS gets no mail, the message waits', async () => {
  await haraka.send({ to: 'user@tlsonly.dane.test' });
  const outcome = await firstOutcome(haraka, 'tlsonly.dane.test');
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.equal(sink(SINK.plainOnly).count('mailfrom'), 0);
  assert.ok(haraka.logLines.some((l) => /has TLSA records, but mx\.tlsonly\.dane\.test offers no TLS/.test(l)));
});

test('DANE-2: TLSA records in an insecure zone are ignored: opportunistic TLS as without DANE', async () => {
  await deliver('insecure.test');
  assert.equal(sink(SINK.insecure).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /insecure\.test via mx\.insecure\.test .*TLS_INSECURE/.test(l)));
});

test('DANE-3: a bogus zone (bad or expired signatures) is never delivered to (SERVFAIL defers); a host whose TLSA lookup fails is skipped for the next', async () => {
  const connectsBefore = sink(SINK.insecure).count('connect');
  for (const domain of ['bogus.test', 'expired.test']) {
    await haraka.send({ to: `user@${domain}` });
    const bogus = await firstOutcome(haraka, domain);
    assert.equal(bogus.event, 'deferred', `${domain}: ${describeOutcome(bogus)}`);
    assert.match(String(bogus.err), /ESERVFAIL|SERVFAIL|MX lookup/, domain);
  }
  assert.equal(sink(SINK.insecure).count('connect'), connectsBefore, 'no connection for a bogus domain (bad or expired signatures)');

  await deliver('skip.dane.test');
  assert.equal(sink(SINK.skipFirst).count('connect'), 0, 'the host with the failed TLSA lookup is never connected to');
  assert.equal(sink(SINK.skipSecond).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /MX mx1\.skip\.dane\.test skipped: TLSA lookup for .*SERVFAIL/.test(l)));
});

test('DANE-2: a host whose AAAA answer is bogus is skipped, not used without DANE (a forged address answer cannot turn DANE off)', async () => {
  const firstBefore = sink(SINK.mismatchFirst).count('connect');
  const secondBefore = sink(SINK.mismatchSecond).messages.length;
  await deliver('aaaa.dane.test');
  assert.equal(sink(SINK.mismatchFirst).count('connect'), firstBefore, 'mx1 is never connected to');
  assert.equal(sink(SINK.mismatchSecond).messages.length, secondBefore + 1);
  assert.ok(haraka.logLines.some((l) => /MX mx1\.aaaa\.dane\.test skipped: address lookup for mx1\.aaaa\.dane\.test failed/.test(l)));
});

test('POL-2/DANE: exempt=dane delivers to a host whose certificate matches no TLSA record, and says so at each delivery', async () => {
  const before = sink(SINK.mismatchFirst).messages.length;
  await deliver('exempt.dane.test');
  assert.equal(sink(SINK.mismatchFirst).messages.length, before + 1);
  assert.ok(haraka.logLines.some((l) => /DANE not used for exempt\.dane\.test: exempted by exempt\.dane\.test/.test(l)));
  assert.ok(haraka.logLines.some((l) => /exempt\.dane\.test via mx\.exempt\.dane\.test .*TLS_INSECURE/.test(l)));
});

test('DANE-5: where DANE applies, MTA-STS is not used: an enforce policy listing none of the MX hosts does not stop a DANE-matched delivery', async () => {
  await deliver('both.dane.test');
  assert.equal(sink(SINK.both).messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /both\.dane\.test: MTA-STS policy \(id 20261130, enforce\) not used: DANE applies/.test(l)));
  assert.ok(haraka.logLines.some((l) => /both\.dane\.test via mx\.both\.dane\.test .*TLS_SECURE \(DANE: 3 1 1/.test(l)));
});

test('DANE-6: dane=observe delivers what dane=on refuses, and logs what on would have done', async () => {
  const before = sink(SINK.mismatchFirst).messages.length;
  await observing.send({ to: 'user@mismatch.dane.test' });
  const outcome = await firstOutcome(observing, 'mismatch.dane.test');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(outcome.host, 'mx1.mismatch.dane.test', 'the mismatching first MX is used in observe mode');
  assert.equal(sink(SINK.mismatchFirst).messages.length, before + 1);
  assert.ok(observing.logLines.some((l) => /DANE observe, dane=on would refuse mx1\.mismatch\.dane\.test .*no TLSA record/.test(l)));
});

/** RT-2: one message submitted over inbound TLS with MAIL FROM … REQUIRETLS. */
async function submitRequireTls(to: string): Promise<void> {
  await inSession(haraka, { tls: true, ca: ca.caCert }, async (s) => {
    assert.match(await s.transaction({ mail: 'MAIL FROM:<sender@sender.test> REQUIRETLS', to }), /^250 /);
  });
}

test('RT-2: under DANE (DNSSEC-validated MX set, DANE-EE match) a REQUIRETLS message is delivered with MAIL FROM … REQUIRETLS', async () => {
  await submitRequireTls('user@rt.dane.test');
  const outcome = await firstOutcome(haraka, 'rt.dane.test');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(sink(SINK.requireTls).messages[0]?.requireTls, true);
  assert.ok(
    haraka.logLines.some((l) => /rt\.dane\.test via mx\.rt\.dane\.test .*REQUIRETLS: DNSSEC-validated MX RRset, TLS_SECURE/.test(l)),
  );
});

test('RT-2, RT-3: the controls under DANE: a matching host without REQUIRETLS (5.7.30); an insecure zone, its MX set not authenticated (5.7.10)', async () => {
  const before = sink(SINK.ee).messages.length;
  await submitRequireTls('rt@ee.dane.test');
  const refused = await haraka.waitForEvent((e) => e.event === 'bounce' && e.domain === 'ee.dane.test', 15000, 'the return');
  assert.equal(refused.rcpts?.[0]?.dsn_status, '5.7.30');
  assert.equal(sink(SINK.ee).messages.length, before, 'nothing delivered to the host that does not advertise REQUIRETLS');
  await submitRequireTls('rt@insecure.test');
  const unauthenticated = await haraka.waitForEvent((e) => e.event === 'bounce' && e.domain === 'insecure.test', 15000, 'the return');
  assert.equal(unauthenticated.rcpts?.[0]?.dsn_status, '5.7.10');
  assert.match(String(unauthenticated.err), /insecure\.test: MX set not authenticated/);
});
