/**
 * DANE in the admin CLI (DANE-6): `mx show`, `probe` and `dane status` run as
 * real processes against the DNSSEC lab (a validating unbound in front of nsd,
 * zones signed at setup) and SMTP sinks on loopback with self-signed
 * certificates (one advertises REQUIRETLS after STARTTLS, RT-6); a second
 * config directory points at the tests' plain DNS server, which does not
 * validate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXIT, parseArgs } from '#lib/cli/cli';
import { DnssecLab, type LabRecord } from '../fixtures/dnssec';
import { mxRecords, spkiSha256, tlsaRecord } from '../fixtures/dnssec/dane-records';
import { TestDnsServer } from '../fixtures/dns-server';
import { CLI_PATH } from '../fixtures/haraka-instance';
import { startSinksOnCommonPort, type SmtpSink } from '../fixtures/smtp-sink';
import { TestCa, type Pem } from '../fixtures/test-ca';

const SINK = {
  ee: '127.0.13.1',
  mismatch: '127.0.13.2',
  insecure: '127.0.13.3',
  skipSecond: '127.0.13.4',
  requireTls: '127.0.13.5',
} as const;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let ca: TestCa;
let lab: DnssecLab;
let plainDns: TestDnsServer;
let sinks: SmtpSink[];
let tmp: string;
let labConfig: string;
let plainConfig: string;
let port: number;

function cli(configDir: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_PATH, '--config', configDir, ...args],
      { cwd: tmp, timeout: 30_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caCertPath } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function writeConfig(name: string, dnsServer: string): string {
  const dir = path.join(tmp, name, 'config');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'outbound_mx.ini'),
    [
      '[main]',
      `mx_port=${port}`,
      '[dns]',
      `servers=${dnsServer}`,
      'timeout=2',
      'tries=1',
      '[addresses]',
      'allow=127.0.0.0/8',
      '[mta_sts]',
      'enabled=false',
      '[dane]',
      // DANE-8: the resolver is declared validating (the plain server too: its answers lack AD).
      `trusted_resolvers=${dnsServer}`,
      // The lab's trust anchor is test., not the root.
      'probe=test.',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(dir, 'outbound_tls.ini'), '[main]\ndata_dir=data\n');
  return dir;
}

before(async () => {
  ca = await TestCa.create();
  const selfSigned = (host: string): Promise<Pem> => ca.selfSigned({ dnsNames: [host] });
  const ee = await selfSigned('mx.ee.cli.dane.test');
  const mismatch = await selfSigned('mx.mismatch.cli.dane.test');
  const other = await selfSigned('other.cli.dane.test');
  const insecure = await selfSigned('mx.insecure-cli.test');
  const skip = await ca.issue({ dnsNames: ['mx2.skip.cli.dane.test'] });
  const requireTls = await selfSigned('mx.rt.cli.dane.test');
  const tls = (pem: Pem): { key: string; cert: string } => ({ key: pem.key, cert: pem.cert });
  sinks = await startSinksOnCommonPort([
    { host: SINK.ee, tls: tls(ee) },
    { host: SINK.mismatch, tls: tls(mismatch) },
    { host: SINK.insecure, tls: tls(insecure) },
    { host: SINK.skipSecond, tls: tls(skip) },
    { host: SINK.requireTls, tls: tls(requireTls), requireTlsExtension: true },
  ]);
  port = sinks[0]?.port ?? 0;
  const tlsa = (host: string, sha256Hex: string, usage = 3): LabRecord => tlsaRecord(port, host, usage, 1, sha256Hex);
  const mx = mxRecords;
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'cli.dane.test',
        records: [
          ...mx('ee.cli.dane.test', 'mx.ee.cli.dane.test', SINK.ee),
          tlsa('mx.ee.cli.dane.test', spkiSha256(ee.cert)),
          // An unusable PKIX-EE record beside the usable one: shown, not used.
          tlsa('mx.ee.cli.dane.test', spkiSha256(ee.cert), 1),
          ...mx('mismatch.cli.dane.test', 'mx.mismatch.cli.dane.test', SINK.mismatch),
          tlsa('mx.mismatch.cli.dane.test', spkiSha256(other.cert)),
          ...mx('skip.cli.dane.test', 'mx1.skip.cli.dane.test', SINK.ee, 10),
          ...mx('skip.cli.dane.test', 'mx2.skip.cli.dane.test', SINK.skipSecond, 20),
          ...mx('rt.cli.dane.test', 'mx.rt.cli.dane.test', SINK.requireTls),
          tlsa('mx.rt.cli.dane.test', spkiSha256(requireTls.cert)),
        ],
      },
      // The TLSA lookup of mx1.skip.cli.dane.test gets SERVFAIL (DANE-3).
      { name: `_${port}._tcp.mx1.skip.cli.dane.test`, security: 'lame' },
      {
        name: 'insecure-cli.test',
        security: 'insecure',
        records: [...mx('insecure-cli.test', 'mx.insecure-cli.test', SINK.insecure), tlsa('mx.insecure-cli.test', 'ab'.repeat(32))],
      },
    ],
  });
  plainDns = await TestDnsServer.start();
  plainDns.set('ee.cli.dane.test', [{ type: 'MX', preference: 10, exchange: 'mx.ee.cli.dane.test' }]);
  plainDns.set('mx.ee.cli.dane.test', [{ type: 'A', address: SINK.ee }]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-dane-test-'));
  labConfig = writeConfig('lab', lab.resolver);
  plainConfig = writeConfig('plain', plainDns.address);
});

after(async () => {
  for (const sink of sinks ?? []) await sink.stop();
  await plainDns?.stop();
  await lab?.stop();
  await ca?.cleanup();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const lines = (stdout: string, label: string): string[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith(`${label} `))
    .map((line) => line.slice(9));

describe('haraka-outbound dane status', () => {
  test('DANE-6: dane status is parsed; other words are usage errors', () => {
    assert.deepEqual(parseArgs(['dane', 'status']), { ok: true, configDir: './config', command: { kind: 'dane-status' } });
    for (const bad of [['dane'], ['dane', 'show'], ['dane', 'status', 'x'], ['dane', 'status', '--json']]) {
      assert.equal(parseArgs(bad).ok, false, bad.join(' '));
    }
  });

  test('DANE-1/DANE-6: with a validating resolver on loopback, DANE is in effect', async () => {
    const run = await cli(labConfig, 'dane', 'status');
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.match(run.stdout, /^DANE in effect \(mode=on\): the DNS resolver validates DNSSEC \(SOA test\. answered with AD\)$/m);
  });

  test('DANE-1/DANE-6: a resolver that does not validate: "DANE not in effect" with the reason, exit 6', async () => {
    const run = await cli(plainConfig, 'dane', 'status');
    assert.equal(run.code, EXIT.DANE_NOT_IN_EFFECT, run.stdout + run.stderr);
    assert.match(run.stdout, /^DANE not in effect: SOA test\.: .+; TLSA records are not checked/m);
  });
});

describe('haraka-outbound mx show with DANE', () => {
  test('DANE-6: a secure domain with TLSA records: MX answer and addresses secure, the records shown, DANE applies', async () => {
    const run = await cli(labConfig, 'mx', 'show', 'ee.cli.dane.test');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^dane {5}in effect \(mode=on\)/m);
    assert.deepEqual(lines(run.stdout, 'dnssec'), ['MX answer secure (DNSSEC-validated)']);
    const tlsa = lines(run.stdout, 'tlsa');
    const name = `_${port}._tcp.mx.ee.cli.dane.test`;
    assert.ok(
      tlsa.some(
        (l) => l.startsWith(`mx.ee.cli.dane.test (addresses secure): ${name} 3 1 1 `) && l.endsWith('usable (DANE-EE SPKI SHA2-256)'),
      ),
      tlsa.join('\n'),
    );
    assert.ok(
      tlsa.some((l) => l.includes(`${name} 1 1 1 `) && /unusable: usage 1 \(PKIX-EE\) is not usable for SMTP/.test(l)),
      tlsa.join('\n'),
    );
    assert.match(
      run.stdout,
      /^dane {5}applies: connections to mx\.ee\.cli\.dane\.test must match their TLSA records \(DANE-4: a match is TLS_SECURE/m,
    );
  });

  test('DANE-2/DANE-6: an insecure domain: MX answer insecure, no TLSA lookup, DANE does not apply', async () => {
    const run = await cli(labConfig, 'mx', 'show', 'insecure-cli.test');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(lines(run.stdout, 'dnssec'), ['MX answer insecure (not DNSSEC-validated)']);
    assert.deepEqual(lines(run.stdout, 'tlsa'), [
      'mx.insecure-cli.test (addresses insecure): TLSA not looked up (the MX answer is insecure)',
    ]);
    assert.match(run.stdout, /^dane {5}does not apply: the MX answer is not DNSSEC-validated$/m);
    assert.deepEqual(lines(run.stdout, 'mx'), ['10 mx.insecure-cli.test [127.0.13.3]']);
  });

  test('DANE-3/DANE-6: a host whose TLSA lookup is SERVFAIL is shown as skipped, the next MX stays', async () => {
    const run = await cli(labConfig, 'mx', 'show', 'skip.cli.dane.test');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(lines(run.stdout, 'mx'), ['20 mx2.skip.cli.dane.test [127.0.13.4]']);
    const tlsa = lines(run.stdout, 'tlsa');
    assert.ok(
      tlsa.some((l) =>
        /^mx1\.skip\.cli\.dane\.test \(addresses secure\): lookup failed: TLSA lookup for .*SERVFAIL.*, host skipped$/.test(l),
      ),
      tlsa.join('\n'),
    );
    assert.ok(tlsa.includes('mx2.skip.cli.dane.test (addresses secure): TLSA not looked up') === false, tlsa.join('\n'));
    assert.ok(
      tlsa.some((l) => l.startsWith('mx2.skip.cli.dane.test (addresses secure): ') && l.includes('no TLSA (secure denial)')),
      tlsa.join('\n'),
    );
    assert.match(run.stdout, /^note {5}MX mx1\.skip\.cli\.dane\.test skipped: TLSA lookup for /m);
  });

  test('DANE-1/DANE-6: a resolver that does not validate: "DANE not in effect", no TLSA lookups, delivery as without DANE', async () => {
    const run = await cli(plainConfig, 'mx', 'show', 'ee.cli.dane.test');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^dane {5}not in effect: SOA test\.: /m);
    assert.deepEqual(lines(run.stdout, 'tlsa'), ['mx.ee.cli.dane.test (addresses insecure): TLSA not looked up (DANE not in effect)']);
    assert.deepEqual(lines(run.stdout, 'mx'), ['10 mx.ee.cli.dane.test [127.0.13.1]']);
  });
});

describe('haraka-outbound mx show and probe for REQUIRETLS with DNSSEC', () => {
  test('RT-6: mx show: a DNSSEC-validated MX answer authenticates every MX host for REQUIRETLS; an insecure one, or a resolver that does not validate, does not', async () => {
    const secure = await cli(labConfig, 'mx', 'show', 'ee.cli.dane.test');
    assert.equal(secure.code, 0, secure.stderr);
    assert.deepEqual(lines(secure.stdout, 'reqtls'), [
      'every MX host authenticated (DNSSEC-validated MX RRset)',
      'each must also be TLS_SECURE for its host name (PKIX or DANE) and advertise REQUIRETLS after STARTTLS (RT-2; probe checks both)',
    ]);
    for (const [config, domain] of [
      [labConfig, 'insecure-cli.test'],
      [plainConfig, 'ee.cli.dane.test'],
    ] as const) {
      const run = await cli(config, 'mx', 'show', domain);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        lines(run.stdout, 'reqtls'),
        [
          'MX set not authenticated (no DNSSEC-validated MX answer from a resolver DANE trusts, no MTA-STS policy in enforce or testing mode): ' +
            'a REQUIRETLS message would be returned at once (5.7.10, RT-3)',
        ],
        domain,
      );
    }
  });

  test('RT-6: probe under DANE: a host matching its TLSA records that advertises REQUIRETLS after STARTTLS could take a REQUIRETLS message now; one that does not advertise it could not', async () => {
    const run = await cli(labConfig, 'probe', '--timeout', '5', 'rt.cli.dane.test');
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^mx\.rt\.cli\.dane\.test \[127\.0\.13\.5\]: TLS_SECURE \(DANE: .*\): meets the requirement/m);
    assert.match(
      run.stdout,
      /^mx\.rt\.cli\.dane\.test \[127\.0\.13\.5\]: REQUIRETLS advertised after STARTTLS: a REQUIRETLS message can go here now \(DNSSEC-validated MX RRset; TLS_SECURE\)$/m,
    );
    assert.match(run.stdout, /^1 of 1 MX hosts can take a REQUIRETLS message now$/m);

    const control = await cli(labConfig, 'probe', '--timeout', '5', 'ee.cli.dane.test');
    assert.equal(control.code, 0, control.stdout + control.stderr);
    assert.match(
      control.stdout,
      /^mx\.ee\.cli\.dane\.test \[127\.0\.13\.1\]: REQUIRETLS not advertised: a REQUIRETLS message cannot go here now: mx\.ee\.cli\.dane\.test does not advertise REQUIRETLS after STARTTLS$/m,
    );
    assert.match(control.stdout, /^0 of 1 MX hosts can take a REQUIRETLS message now: it would be returned at once \(5\.7\.30, RT-3\)$/m);
  });
});

describe('haraka-outbound probe with DANE', () => {
  test('DANE-4/DANE-6: probe of a DANE-EE self-signed sink: the record matched (dane-ee), TLS_SECURE, meets', async () => {
    const run = await cli(labConfig, 'probe', '--timeout', '5', 'ee.cli.dane.test');
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `^mx\\.ee\\.cli\\.dane\\.test \\[127\\.0\\.13\\.1\\]: TLS_SECURE \\(DANE: 3 1 1 [0-9a-f]+…+ matched \\(dane-ee\\) at _${port}\\._tcp\\.mx\\.ee\\.cli\\.dane\\.test, TLSv1\\.[23]\\): meets the requirement`,
        'm',
      ),
    );
    assert.match(run.stdout, /^tlsa {5}mx\.ee\.cli\.dane\.test \(addresses secure\): .* 3 1 1 .*usable/m, 'the records are shown first');
  });

  test('DANE-4/DANE-6: probe of a sink whose certificate matches no record: DANE mismatch with the reason, abandoned', async () => {
    const run = await cli(labConfig, 'probe', '--timeout', '5', 'mismatch.cli.dane.test');
    assert.equal(run.code, EXIT.NONE_MEETS, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `^mx\\.mismatch\\.cli\\.dane\\.test \\[127\\.0\\.13\\.2\\]: TLS_INSECURE \\(.*\\): DANE mismatch: abandoned before MAIL FROM: DANE: no TLSA record of _${port}\\._tcp\\.mx\\.mismatch\\.cli\\.dane\\.test matches: .+`,
        'm',
      ),
    );
    assert.match(run.stdout, /^0 of 1 MX hosts meet the requirement/m);
  });
});
