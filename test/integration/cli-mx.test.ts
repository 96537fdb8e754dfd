/**
 * `haraka-outbound mx show` and `probe` (OPS-4), run as real processes against
 * a temporary Haraka directory whose outbound_mx.ini points at the tests' DNS
 * server and whose MXs are SMTP sinks on loopback with certificates from the
 * tests' CA (trusted by the child through NODE_EXTRA_CA_CERTS). One MX
 * advertises REQUIRETLS after STARTTLS, one only in its clear-text EHLO reply
 * (RT-6).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_PATH } from '../fixtures/haraka-instance';
import { after, before, describe, test } from 'node:test';
import { openPolicyStore, openRatchetStore } from '#lib/state/open';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { HostileSmtp } from '../fixtures/hostile-smtp';
import { startSinksOnCommonPort, type SmtpSink } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';
import { EXIT, parseArgs } from '#lib/cli/cli';

const CLI = CLI_PATH;
const POLICY_HOST = '127.0.6.1';

/** Sink name → [address, MX host name, kind]. */
const SINKS = {
  good: ['127.0.6.11', 'mx1.good.test', 'valid'],
  self: ['127.0.6.12', 'mx2.self.test', 'self-signed'],
  plain: ['127.0.6.13', 'mx.plain.test', 'plain'],
  refuse: ['127.0.6.14', 'mx.refuse.test', 'refuse'],
  requireTls: ['127.0.6.15', 'mx.rt.test', 'valid-requiretls'],
} as const;
/** RT-6: REQUIRETLS in the clear-text EHLO reply only, not after STARTTLS (a valid certificate). */
const CLEAR_RT: readonly [string, string] = ['127.0.6.16', 'mx.clear-rt.test'];
type SinkName = keyof typeof SINKS;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let sinks: Record<SinkName, SmtpSink>;
let clearRt: HostileSmtp;
let tmp: string;
let configDir: string;
let dataDir: string;

/** Runs the compiled CLI as a real process (async: the DNS server and the sinks live in this process). */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, '--config', configDir, ...args],
      { cwd: tmp, timeout: 20_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caCertPath } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function mx(domain: string, ...targets: Array<[number, string]>): void {
  dns.set(
    domain,
    targets.map(([preference, exchange]) => ({ type: 'MX' as const, preference, exchange })),
  );
}

/** The `mx` lines of `mx show`: "PRIORITY HOST [ADDRESSES]". */
function mxLines(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('mx '))
    .map((line) => line.slice(9));
}

/** The values of the lines with `label` (`mx show`'s and `explain`'s layout). */
function labelled(stdout: string, label: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(`${label.padEnd(9)}`))
    .map((line) => line.slice(9));
}

function totalEvents(kind: 'connect' | 'mailfrom' | 'rcpt' | 'data'): number {
  return Object.values(sinks).reduce((sum, sink) => sum + sink.count(kind), 0) + clearRt.count(kind);
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const specs = await Promise.all(
    Object.values(SINKS).map(async ([host, name, kind]) => ({
      host,
      name,
      ...(kind === 'valid'
        ? { tls: await ca.issue({ dnsNames: [name] }) }
        : kind === 'valid-requiretls'
          ? { tls: await ca.issue({ dnsNames: [name] }), requireTlsExtension: true }
          : kind === 'self-signed'
            ? { tls: await ca.selfSigned({ dnsNames: [name] }) }
            : kind === 'refuse'
              ? { starttls: 'refuse' as const }
              : { tls: 'none' as const }),
    })),
  );
  const started = await startSinksOnCommonPort(specs);
  sinks = Object.fromEntries(Object.keys(SINKS).map((name, i) => [name, started[i] as SmtpSink])) as Record<SinkName, SmtpSink>;
  clearRt = await HostileSmtp.start({
    host: CLEAR_RT[0],
    port: started[0]?.port ?? 0,
    name: CLEAR_RT[1],
    tls: await ca.issue({ dnsNames: [CLEAR_RT[1]] }),
    ehloReply: `250-${CLEAR_RT[1]}\r\n250-STARTTLS\r\n250 REQUIRETLS`,
  });
  for (const [address, name] of [...Object.values(SINKS), CLEAR_RT]) dns.set(name, [{ type: 'A', address }]);

  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-mx-test-'));
  configDir = path.join(tmp, 'haraka', 'config');
  dataDir = path.join(tmp, 'haraka', 'data');
  fs.mkdirSync(configDir, { recursive: true });
  fs.writeFileSync(
    path.join(configDir, 'outbound_mx.ini'),
    [
      '[main]',
      `mx_port=${started[0]?.port}`,
      'max_mx=3',
      '[dns]',
      `servers=${dns.address}`,
      'timeout=1',
      'tries=1',
      '[addresses]',
      'allow=127.0.0.0/8',
      '[mta_sts]',
      `https_port=${policies.port}`,
      `ca_file=${ca.caCertPath}`,
      'fetch_timeout=2',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(configDir, 'outbound_tls.ini'), '[main]\ndata_dir=data\n');
});

after(async () => {
  for (const sink of Object.values(sinks ?? {})) await sink.stop();
  await clearRt?.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('haraka-outbound mx show / probe: parsing', () => {
  test('OPS-4: mx show and probe [--timeout S] are parsed; anything else is a usage error', () => {
    assert.deepEqual(parseArgs(['mx', 'show', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'mx-show', domain: 'a.example' },
    });
    assert.deepEqual(parseArgs(['probe', '--timeout', '2.5', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'probe', domain: 'a.example', timeoutMs: 2500 },
    });
    assert.deepEqual(parseArgs(['--timeout=3', 'probe', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'probe', domain: 'a.example', timeoutMs: 3000 },
    });
    for (const bad of [
      ['mx'],
      ['mx', 'show'],
      ['mx', 'list'],
      ['mx', 'show', 'a.example', '--timeout', '3'],
      ['probe'],
      ['probe', 'a.example', 'b.example'],
      ['probe', '--timeout', 'soon', 'a.example'],
      ['probe', '--timeout', '0', 'a.example'],
      ['probe', '--timeout'],
      ['ratchet', 'list', '--timeout', '3'],
    ]) {
      assert.equal(parseArgs(bad).ok, false, bad.join(' '));
    }
  });
});

describe('haraka-outbound mx show, run as a process', () => {
  test('OPS-4, MX-7, MX-9: mx show lists the MXs in preference order with their addresses and the dropped targets and refused addresses', async () => {
    mx(
      'order.test',
      [30, 'mx2.self.test'],
      [10, 'mx1.good.test'],
      [20, 'mx.plain.test'],
      [5, '-bad-.order.test'],
      [40, 'mx.zero.order.test'],
    );
    dns.set('mx.zero.order.test', [{ type: 'A', address: '0.0.0.0' }]);
    const shown = await cli('mx', 'show', 'ORDER.test');
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^domain {3}order\.test\n/);
    assert.deepEqual(mxLines(shown.stdout), [
      '10 mx1.good.test [127.0.6.11]',
      '20 mx.plain.test [127.0.6.13]',
      '30 mx2.self.test [127.0.6.12]',
    ]);
    assert.match(shown.stdout, /^note {5}MX target "-bad-\.order\.test" dropped: not a valid host name$/m);
    assert.match(shown.stdout, /^note {5}more than 3 MX hosts, not used: mx\.zero\.order\.test$/m, 'MX-8: the cap');
    assert.match(shown.stdout, /^cached {3}no cached policy$/m);
    assert.match(shown.stdout, /^live {5}no policy record \(no TXT record\)$/m);
    assert.match(shown.stdout, /^ratchet {2}no level stored \(PLAIN\)$/m);
    assert.match(shown.stdout, /^required PLAIN \(no ratchet level\)$/m);

    mx('refused.test', [10, 'mx.zero.order.test'], [20, 'mx1.good.test']);
    const refused = await cli('mx', 'show', 'refused.test');
    assert.deepEqual(mxLines(refused.stdout), ['20 mx1.good.test [127.0.6.11]']);
    assert.match(refused.stdout, /^note {5}MX mx\.zero\.order\.test dropped: every address is refused$/m);
    assert.match(refused.stdout, /address refused or missing: mx\.zero\.order\.test → 0\.0\.0\.0 is in the refused unspecified range/);
  });

  test('MX-1, MX-4: a Unicode DOMAIN is shown as A-label and U-label; a domain without MX is its own implicit MX', async () => {
    mx('xn--bcher-kva.test', [10, 'mx1.good.test']);
    const shown = await cli('mx', 'show', 'Bücher.test');
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^domain {3}xn--bcher-kva\.test \(bücher\.test\)\n/);
    assert.deepEqual(mxLines(shown.stdout), ['10 mx1.good.test [127.0.6.11]']);
    dns.set('implicit.test', [{ type: 'A', address: '127.0.6.13' }]);
    const implicit = await cli('mx', 'show', 'implicit.test');
    assert.deepEqual(mxLines(implicit.stdout), ['0 implicit.test [127.0.6.13] (implicit MX)']);
  });

  test('MX-5, MX-4, MX-7, MX-6: null MX, NXDOMAIN, only invalid targets and SERVFAIL are shown as the failure the plugin would report', async () => {
    mx('nullmx.test', [0, '.']);
    const nullMx = await cli('mx', 'show', 'nullmx.test');
    assert.equal(nullMx.code, 0, nullMx.stderr);
    assert.deepEqual(mxLines(nullMx.stdout), [
      'PERMANENT FAILURE (5.1.10, bounced at once): nullmx.test accepts no mail (null MX, RFC 7505)',
    ]);
    const nx = await cli('mx', 'show', 'missing.test');
    assert.deepEqual(mxLines(nx.stdout), ['PERMANENT FAILURE (5.1.2, bounced): no such domain: missing.test (NXDOMAIN)']);
    mx('invalid.test', [10, 'bad_name.invalid.test'], [20, '192.0.2.1']);
    const invalid = await cli('mx', 'show', 'invalid.test');
    assert.deepEqual(mxLines(invalid.stdout), [
      'TEMPORARY FAILURE (deferred): no valid MX host for invalid.test (every target was dropped)',
    ]);
    assert.doesNotMatch(invalid.stdout, /^mx .*\[/m, 'no MX host listed');
    dns.behave('servfail.test', 'MX', 'servfail');
    const servfail = await cli('mx', 'show', 'servfail.test');
    assert.match(mxLines(servfail.stdout)[0] ?? '', /^TEMPORARY FAILURE \(deferred\): MX lookup for servfail\.test failed: /);
  });

  test('STS-9, MX-8, TLS-5: an enforce policy (live, or cached and unexpired) filters the MXs and makes TLS_SECURE the requirement; the ratchet counts too', async () => {
    dns.set('_mta-sts.sts.test', [{ type: 'TXT', data: 'v=STSv1; id=live1' }]);
    dns.set('mta-sts.sts.test', [{ type: 'A', address: POLICY_HOST }]);
    await policies.set('sts.test', { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx1.good.test'] }) });
    mx('sts.test', [10, 'mx2.self.test'], [20, 'mx1.good.test']);
    const live = await cli('mx', 'show', 'sts.test');
    assert.equal(live.code, 0, live.stderr);
    assert.match(live.stdout, /^live {5}record id live1; mode enforce, max_age 86400, mx mx1\.good\.test \(from 127\.0\.6\.1\)$/m);
    assert.match(live.stdout, /^policy {3}enforce, id live1, live, not cached by this command: only MX hosts matching mx1\.good\.test/m);
    assert.deepEqual(mxLines(live.stdout), ['20 mx1.good.test [127.0.6.11]']);
    assert.match(live.stdout, /^note {5}MX hosts not matching MTA-STS policy of sts\.test \(id live1, mode enforce\): mx2\.self\.test$/m);
    assert.match(live.stdout, /^required TLS_SECURE \(no ratchet level; MTA-STS enforce, TLS 1\.2 or later\)$/m);

    // A cached, unexpired policy wins over the live one (no TXT record at all here) and nothing is written.
    const now = Date.now();
    const store = openPolicyStore({ dataDir });
    await store.put({
      domain: 'cached.test',
      id: 'c1',
      text: policyText({ mode: 'enforce', maxAge: 86400, mx: ['*.self.test'] }),
      fetchedAt: now,
      expiresAt: now + 86_400_000,
      checkedAt: now,
      usedAt: now,
    });
    await store.close();
    const ratchet = openRatchetStore({ dataDir });
    await ratchet.raise('cached.test', SecLevel.TLS_INSECURE, 'mx2.self.test');
    await ratchet.close();
    mx('cached.test', [10, 'mx1.good.test'], [20, 'mx2.self.test']);
    const before = fs.readFileSync(path.join(dataDir, 'mta-sts', 'cached.test.json'), 'utf8');
    const cached = await cli('mx', 'show', 'cached.test');
    assert.equal(cached.code, 0, cached.stderr);
    assert.match(cached.stdout, /^cached {3}id c1, mode enforce, max_age 86400, mx \*\.self\.test; fetched /m);
    assert.match(cached.stdout, /^live {5}no policy record/m);
    assert.match(cached.stdout, /^policy {3}enforce, id c1, cached, expires \S+: only MX hosts matching \*\.self\.test/m);
    assert.deepEqual(mxLines(cached.stdout), ['20 mx2.self.test [127.0.6.12]']);
    assert.match(cached.stdout, /^ratchet {2}TLS_INSECURE \(raised \S+ by mx2\.self\.test\)$/m);
    assert.match(cached.stdout, /^required TLS_SECURE \(ratchet TLS_INSECURE; MTA-STS enforce/m);
    assert.equal(fs.readFileSync(path.join(dataDir, 'mta-sts', 'cached.test.json'), 'utf8'), before, 'mx show writes nothing');
  });

  test('ST-5: mx show says an unreadable cached policy defers the mail until a fresh policy is fetched or the entry is purged, as outbound_mx does', async () => {
    const cacheDir = path.join(dataDir, 'mta-sts');
    fs.mkdirSync(cacheDir, { recursive: true });
    // No policy record to fetch a fresh one from: the plugin defers (on_store_error=defer, the default).
    fs.writeFileSync(path.join(cacheDir, 'broken.test.json'), '{"domain":"broken.test","id":');
    mx('broken.test', [10, 'mx1.good.test']);
    const broken = await cli('mx', 'show', 'broken.test');
    assert.equal(broken.code, EXIT.UNREADABLE, broken.stderr);
    assert.match(broken.stdout, /^cached {3}UNREADABLE: /m);
    assert.match(
      broken.stdout,
      /^policy {3}none usable: the cached entry is unreadable and may hide an enforce policy: outbound_mx defers mail to broken\.test until a fresh policy is fetched or the entry is purged \(haraka-outbound policy purge broken\.test\) \(ST-5\)$/m,
    );
    // The reason the plugin gives when it defers (mta-sts/resolver), with why no fresh policy could be had.
    assert.match(
      mxLines(broken.stdout)[0] ?? '',
      /^TEMPORARY FAILURE \(deferred\): MTA-STS cache entry for broken\.test unreadable: \S+broken\.test\.json: .*: it may hide an enforce policy, so delivery waits until a fresh policy is fetched or the entry is purged \(haraka-outbound policy purge broken\.test\); no policy record \(no TXT record\)$/,
    );
    assert.equal(mxLines(broken.stdout).length, 1, 'no MX host listed');
    assert.doesNotMatch(broken.stdout, /^policy {3}none in effect/m, 'not shown as a domain without a policy');

    // An entry that is valid JSON but holds an invalid policy is the same to the plugin.
    fs.writeFileSync(
      path.join(cacheDir, 'invalid.test.json'),
      JSON.stringify({
        domain: 'invalid.test',
        id: 'x1',
        text: 'version: STSv1\nmode: sometimes\n',
        fetchedAt: 1,
        expiresAt: Date.now() + 86_400_000,
        checkedAt: 1,
        usedAt: 1,
      }),
    );
    mx('invalid.test', [10, 'mx1.good.test']);
    const invalid = await cli('mx', 'show', 'invalid.test');
    assert.match(invalid.stdout, /^policy {3}none usable: the cached entry holds an invalid policy/m);
    assert.match(
      mxLines(invalid.stdout)[0] ?? '',
      /^TEMPORARY FAILURE \(deferred\): MTA-STS cache entry for invalid\.test holds an invalid policy/,
    );

    // A fresh policy can be fetched: the plugin fetches it at the next delivery and replaces the entry.
    dns.set('_mta-sts.broken.test', [{ type: 'TXT', data: 'v=STSv1; id=fresh1' }]);
    dns.set('mta-sts.broken.test', [{ type: 'A', address: POLICY_HOST }]);
    await policies.set('broken.test', { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx1.good.test'] }) });
    const fresh = await cli('mx', 'show', 'broken.test');
    assert.equal(fresh.code, EXIT.UNREADABLE, fresh.stderr);
    assert.match(
      fresh.stdout,
      /^policy {3}enforce, id fresh1, live, not cached by this command: .*; the cached entry is unreadable: outbound_mx replaces it with this policy at the next delivery \(ST-5\)$/m,
    );
    assert.deepEqual(mxLines(fresh.stdout), ['10 mx1.good.test [127.0.6.11]']);
    assert.match(fresh.stdout, /^cached {3}UNREADABLE: /m, 'mx show writes nothing: the entry is still there');
  });

  test('RT-6: mx show and explain say which MX hosts a REQUIRETLS message may go to (MTA-STS lists them) and that one to a domain without MTA-STS or DNSSEC is returned at once', async () => {
    dns.set('_mta-sts.rt.test', [{ type: 'TXT', data: 'v=STSv1; id=rt1' }]);
    dns.set('mta-sts.rt.test', [{ type: 'A', address: POLICY_HOST }]);
    await policies.set('rt.test', {
      kind: 'serve',
      body: policyText({ mode: 'testing', maxAge: 86400, mx: ['mx.rt.test', 'mx.clear-rt.test'] }),
    });
    mx('rt.test', [10, 'mx.rt.test'], [20, 'mx.clear-rt.test'], [30, 'mx1.good.test']);
    const shown = await cli('mx', 'show', 'rt.test');
    assert.equal(shown.code, 0, shown.stderr);
    const reqtls = [
      'mx.rt.test: authenticated (MTA-STS policy rt1 (testing) lists mx.rt.test)',
      'mx.clear-rt.test: authenticated (MTA-STS policy rt1 (testing) lists mx.clear-rt.test)',
      'mx1.good.test: not authenticated, left out (mx1.good.test is not listed by the MTA-STS policy (id rt1, testing))',
      'each must also be TLS_SECURE for its host name (PKIX or DANE) and advertise REQUIRETLS after STARTTLS (RT-2; probe checks both)',
    ];
    assert.deepEqual(labelled(shown.stdout, 'reqtls'), reqtls);
    const explained = await cli('explain', 'rt.test');
    assert.equal(explained.code, 0, explained.stderr);
    assert.deepEqual(labelled(explained.stdout, 'reqtls'), reqtls);

    // The control: the same MX hosts without a policy (and no DNSSEC): no host is authenticated.
    mx('rtplain.test', [10, 'mx.rt.test']);
    const plain = await cli('mx', 'show', 'rtplain.test');
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(labelled(plain.stdout, 'reqtls'), [
      'MX set not authenticated (no DNSSEC-validated MX answer from a resolver DANE trusts, no MTA-STS policy in enforce or testing mode): ' +
        'a REQUIRETLS message would be returned at once (5.7.10, RT-3)',
    ]);
    const nullMx = await cli('mx', 'show', 'nullmx.test');
    assert.deepEqual(labelled(nullMx.stdout, 'reqtls'), ['a REQUIRETLS message is bounced at once like any other (5.1.10)']);
  });

  test('OPS-4: a bad DOMAIN is bad usage (status 2), and so is a missing config directory', async () => {
    const bad = await cli('mx', 'show', 'a..b');
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /^haraka-outbound: bad DOMAIN: "a\.\.b": empty label\n/);
    const badProbe = await cli('probe', '[not an address]');
    assert.equal(badProbe.code, EXIT.USAGE);
    assert.match(badProbe.stderr, /^haraka-outbound: bad DOMAIN: "\[not an address\]" is not an address literal\n/);
    const noConfig = await cli('--config', path.join(tmp, 'missing'), 'probe', 'order.test');
    assert.equal(noConfig.code, EXIT.USAGE);
    assert.match(noConfig.stderr, /--config .*missing: not found/);
  });
});

describe('haraka-outbound probe, run as a process', () => {
  test('TLS-1, OPS-4: probe classifies a valid certificate as TLS_SECURE, a self-signed one as TLS_INSECURE, no STARTTLS as PLAIN, and never sends MAIL FROM', async () => {
    const connectsBefore = totalEvents('connect');
    const probed = await cli('probe', '--timeout', '5', 'order.test');
    assert.equal(probed.code, 0, probed.stderr + probed.stdout);
    const lines = probed.stdout.split('\n');
    const line = (prefix: string): string => lines.find((l) => l.startsWith(prefix)) ?? `(no line ${prefix} in ${probed.stdout})`;
    assert.match(
      line('mx1.good.test [127.0.6.11]: '),
      /: TLS_SECURE \(certificate valid for mx1\.good\.test, TLSv1\.[23]\): meets the requirement; a delivery would raise the stored level to TLS_SECURE$/,
    );
    assert.match(
      line('mx2.self.test [127.0.6.12]: '),
      /: TLS_INSECURE \(certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT, TLSv1\.[23]\): meets the requirement/,
    );
    assert.match(line('mx.plain.test [127.0.6.13]: '), /: PLAIN \(STARTTLS not offered\): meets the requirement$/);
    assert.match(probed.stdout, /^3 of 3 MX hosts meet the requirement \(PLAIN\)$/m);
    assert.equal(totalEvents('connect') - connectsBefore, 3, 'one connection per MX address');
    for (const name of ['good', 'self'] as const) {
      const secureEhlo = sinks[name].events.filter((e) => e.kind === 'ehlo' && e.secure);
      assert.ok(secureEhlo.length >= 1, `${name}: EHLO again inside TLS`);
    }
    assert.equal(totalEvents('mailfrom'), 0, 'no MAIL FROM, ever');
    assert.equal(totalEvents('rcpt'), 0);
    assert.equal(fs.existsSync(path.join(dataDir, 'ratchet', 'order.test')), false, 'a probe raises nothing');
  });

  test('TLS-4, TLS-5, STS-7: probe exits 4 when no MX meets the requirement (ratchet), 0 when one does (enforce: only matching MXs are connected)', async () => {
    const ratchet = openRatchetStore({ dataDir });
    await ratchet.raise('selfonly.test', SecLevel.TLS_SECURE, 'mx2.self.test');
    await ratchet.close();
    mx('selfonly.test', [10, 'mx2.self.test'], [20, 'mx.plain.test']);
    const below = await cli('probe', 'selfonly.test');
    assert.equal(below.code, EXIT.NONE_MEETS, below.stderr + below.stdout);
    assert.match(below.stdout, /^required TLS_SECURE \(ratchet TLS_SECURE\)$/m);
    assert.match(
      below.stdout,
      /^mx2\.self\.test \[127\.0\.6\.12\]: TLS_INSECURE \(.*\): below the requirement: selfonly\.test: .*required TLS_SECURE \(ratchet\)$/m,
    );
    assert.match(below.stdout, /^mx\.plain\.test \[127\.0\.6\.13\]: PLAIN .*: below the requirement/m);
    assert.match(below.stdout, /^0 of 2 MX hosts meet the requirement \(TLS_SECURE\)$/m);

    const selfConnects = sinks.self.count('connect');
    const enforced = await cli('probe', 'sts.test');
    assert.equal(enforced.code, 0, enforced.stderr + enforced.stdout);
    assert.match(enforced.stdout, /^mx1\.good\.test \[127\.0\.6\.11\]: TLS_SECURE .*: meets the requirement/m);
    assert.match(enforced.stdout, /^1 of 1 MX hosts meet the requirement \(TLS_SECURE\)$/m);
    assert.equal(sinks.self.count('connect'), selfConnects, 'the MX outside the enforce policy is never connected');
    assert.equal(totalEvents('mailfrom'), 0);
  });

  test('TLS-3, MX-5: a refused STARTTLS is PLAIN (the plain retry), an unreachable MX is an error, a null MX exits 4', async () => {
    mx('refuse.test', [10, 'mx.refuse.test']);
    const refused = await cli('probe', 'refuse.test');
    assert.equal(refused.code, 0, refused.stderr + refused.stdout);
    assert.match(
      refused.stdout,
      /^mx\.refuse\.test \[127\.0\.6\.14\]: PLAIN \(STARTTLS refused: 454 .*; Haraka retries this MX once without STARTTLS \(TLS-3\)\): meets the requirement$/m,
    );
    dns.set('mx.down.test', [{ type: 'A', address: '127.0.6.99' }]);
    mx('down.test', [10, 'mx.down.test']);
    const down = await cli('probe', '--timeout', '2', 'down.test');
    assert.equal(down.code, EXIT.NONE_MEETS, down.stderr + down.stdout);
    assert.match(down.stdout, /^mx\.down\.test \[127\.0\.6\.99\]: ERROR \(.*ECONNREFUSED.*\): not usable now$/m);
    const nullMx = await cli('probe', 'nullmx.test');
    assert.equal(nullMx.code, EXIT.NONE_MEETS);
    assert.match(nullMx.stdout, /^mx {7}PERMANENT FAILURE \(5\.1\.10, bounced at once\)/m);
    assert.equal(totalEvents('mailfrom'), 0);
  });

  test('RT-6: probe says per MX whether REQUIRETLS was advertised after STARTTLS (before does not count) and whether a REQUIRETLS message could go there now; the normal verdict is unchanged, nothing is raised', async () => {
    const probed = await cli('probe', '--timeout', '5', 'rt.test');
    assert.equal(probed.code, 0, probed.stderr + probed.stdout);
    // The normal verdicts: MTA-STS testing requires nothing.
    assert.match(
      probed.stdout,
      /^mx\.rt\.test \[127\.0\.6\.15\]: TLS_SECURE \(certificate valid for mx\.rt\.test, TLSv1\.[23]\): meets the requirement/m,
    );
    assert.match(probed.stdout, /^mx\.clear-rt\.test \[127\.0\.6\.16\]: TLS_SECURE \(.*\): meets the requirement/m);
    assert.match(probed.stdout, /^3 of 3 MX hosts meet the requirement \(PLAIN\)$/m);
    assert.match(
      probed.stdout,
      /^mx\.rt\.test \[127\.0\.6\.15\]: REQUIRETLS advertised after STARTTLS: a REQUIRETLS message can go here now \(MTA-STS policy rt1 \(testing\) lists mx\.rt\.test; TLS_SECURE\)$/m,
    );
    assert.match(
      probed.stdout,
      /^mx\.clear-rt\.test \[127\.0\.6\.16\]: REQUIRETLS advertised only before STARTTLS \(does not count\): a REQUIRETLS message cannot go here now: mx\.clear-rt\.test does not advertise REQUIRETLS after STARTTLS$/m,
    );
    assert.match(
      probed.stdout,
      /^mx1\.good\.test \[127\.0\.6\.11\]: REQUIRETLS not advertised: a REQUIRETLS message cannot go here now: not authenticated, outbound_mx leaves it out \(mx1\.good\.test is not listed by the MTA-STS policy \(id rt1, testing\)\)$/m,
    );
    assert.match(probed.stdout, /^1 of 3 MX hosts can take a REQUIRETLS message now$/m);
    assert.match(probed.stdout, /^reqtls {3}mx\.rt\.test: authenticated/m, 'the REQUIRETLS lines of mx show come first');
    assert.ok(
      sinks.requireTls.events.some((e) => e.kind === 'ehlo' && e.secure),
      'the EHLO after STARTTLS was sent to the REQUIRETLS sink',
    );

    // The control: the same REQUIRETLS sink, but no MTA-STS policy: the MX set is not authenticated.
    const plain = await cli('probe', '--timeout', '5', 'rtplain.test');
    assert.equal(plain.code, 0, plain.stderr + plain.stdout);
    assert.match(
      plain.stdout,
      /^mx\.rt\.test \[127\.0\.6\.15\]: REQUIRETLS advertised after STARTTLS: a REQUIRETLS message cannot go here now: not authenticated, outbound_mx leaves it out \(MX set not authenticated/m,
    );
    assert.match(plain.stdout, /^0 of 1 MX hosts can take a REQUIRETLS message now: it would be returned at once \(5\.7\.10, RT-3\)$/m);

    // A probe never raises the ratchet (a delivery would: TLS_SECURE) and never sends MAIL FROM.
    for (const domain of ['rt.test', 'rtplain.test']) {
      assert.equal(fs.existsSync(path.join(dataDir, 'ratchet', domain)), false, `a probe raises nothing (${domain})`);
    }
    assert.equal(totalEvents('mailfrom'), 0);
  });
});
