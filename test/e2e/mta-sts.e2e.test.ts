/**
 * End-to-end: MTA-STS through a real Haraka with outbound_tls and outbound_mx,
 * the tests' DNS server, a real HTTPS policy server and SMTP sinks with
 * certificates from the tests' CA. Each test names the rule it proves (§3).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, CLI_PATH, sleep } from '../fixtures/haraka-instance';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { SmtpSink, startSinksOnCommonPort, type SinkOptions } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';
import { FilePolicyStore } from '#lib/mta-sts/file-store';

const POLICY_HOST = '127.0.5.1';
const RECHECK_S = 2;

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let haraka: HarakaInstance;
let sinks: Map<string, SmtpSink>;
let mxPort: number;

/** Sink name → [address, host name its certificate is for, kind]. */
const SINKS: Record<string, [string, string, 'valid' | 'self-signed' | 'plain']> = {
  enfGood: ['127.0.5.11', 'mx1.enf.test', 'valid'],
  enfBadCert: ['127.0.5.12', 'mx2.enf.test', 'self-signed'],
  enfOther: ['127.0.5.13', 'mx.other-enf.test', 'valid'],
  onlyOther: ['127.0.5.14', 'mx.other-only.test', 'valid'],
  fallback: ['127.0.5.15', 'mx.fallback.test', 'plain'],
  cache: ['127.0.5.16', 'mx.cache.test', 'valid'],
  cacheOther: ['127.0.5.17', 'mx.other-cache.test', 'valid'],
  noneGood: ['127.0.5.18', 'mx.none.test', 'valid'],
  noneOther: ['127.0.5.19', 'mx.other-none.test', 'valid'],
  testing: ['127.0.5.20', 'mx.testing.test', 'self-signed'],
  unicode: ['127.0.5.21', 'mx.xn--bcher-sts-q9a.test', 'valid'],
  unicodeOther: ['127.0.5.22', 'mx.other-unicode.test', 'valid'],
};

function addressOf(name: string): string {
  const spec = SINKS[name];
  if (!spec) throw new Error(`no sink ${name}`);
  return spec[0];
}

function sink(name: string): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

/** Publishes a policy: TXT id record and the policy served over HTTPS. */
async function publish(domain: string, id: string, mode: 'enforce' | 'testing' | 'none', mx: string[], maxAge = 86400): Promise<void> {
  await policies.publish(dns, domain, { id, mode, mx, maxAge });
}

function mxRecords(domain: string, ...targets: Array<[number, string]>): void {
  dns.set(
    domain,
    targets.map(([preference, exchange]) => ({ type: 'MX' as const, preference, exchange })),
  );
}

function startHaraka(extra: string, config: Record<string, string> = {}): Promise<HarakaInstance> {
  return HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    allow: '127.0.0.0/16',
    config,
    // STS-2: proxy variables are ignored (were they used, every fetch would go to a dead port).
    env: { HTTPS_PROXY: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', ALL_PROXY: 'http://127.0.0.1:9' },
    mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=1', extra].join('\n'),
  });
}

/**
 * Runs `body` with a Haraka of its own (mx ini `extra`, other files `config`) and an SMTP sink
 * with a valid certificate for `mxHost` on `address` (its A record set); both always stopped.
 */
async function withOwnHaraka(
  extra: string,
  config: Record<string, string>,
  sinkAt: { address: string; mxHost: string },
  body: (local: HarakaInstance, target: SmtpSink) => Promise<void>,
): Promise<void> {
  const local = await startHaraka(extra, config);
  try {
    const target = await SmtpSink.start({
      host: sinkAt.address,
      tls: await ca.issue({ dnsNames: [sinkAt.mxHost] }),
      name: sinkAt.mxHost,
      port: mxPort,
    });
    try {
      dns.set(sinkAt.mxHost, [{ type: 'A', address: sinkAt.address }]);
      await body(local, target);
    } finally {
      await target.stop();
    }
  } finally {
    await local.stop();
  }
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const specs: SinkOptions[] = [];
  for (const [address, host, kind] of Object.values(SINKS)) {
    const tls =
      kind === 'plain'
        ? ('none' as const)
        : kind === 'valid'
          ? await ca.issue({ dnsNames: [host] })
          : await ca.selfSigned({ dnsNames: [host] });
    specs.push({ host: address, tls, name: host });
    dns.set(host, [{ type: 'A', address }]);
  }
  const started = await startSinksOnCommonPort(specs);
  sinks = new Map(Object.keys(SINKS).map((name, i) => [name, started[i] as SmtpSink]));
  mxPort = started[0]?.port ?? 0;
  haraka = await startHaraka(`recheck=${RECHECK_S}\nnegative_ttl=1`);
});

after(async () => {
  await haraka?.stop();
  for (const s of sinks?.values() ?? []) await s.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('STS-7: enforce: non-matching MXs are never connected, a matching MX with an invalid certificate is abandoned, a valid one receives the message', async () => {
  await publish('enf.test', '1', 'enforce', ['mx1.enf.test', 'mx2.enf.test']);
  mxRecords('enf.test', [5, 'mx.other-enf.test'], [10, 'mx2.enf.test'], [20, 'mx1.enf.test']);
  await haraka.send({ to: 'user@enf.test' });
  const delivered = await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'enf.test');
  assert.equal(delivered.host, 'mx1.enf.test');
  assert.equal(sink('enfGood').messages.length, 1);
  assert.equal(sink('enfOther').count('connect'), 0, 'the non-matching MX is never connected');
  assert.ok(sink('enfBadCert').count('connect') >= 1, 'the matching MX with a self-signed certificate was tried');
  assert.equal(sink('enfBadCert').count('mailfrom'), 0);
  assert.ok(
    haraka.logLines.some((l) => /mx2\.enf\.test .*offers TLS_INSECURE .*MTA-STS requires TLS_SECURE \(policy id 1, mode enforce\)/.test(l)),
  );
  assert.ok(haraka.logLines.some((l) => /MX hosts not matching MTA-STS policy of enf\.test.*: mx\.other-enf\.test/.test(l)));
});

test("OPS-2: one log line per decision, with the message id: policy, MX list, each connection's level and verdict, each raise", async () => {
  const delivered = await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'enf.test');
  const id = String(delivered.uuid);
  const lines = haraka.logLines.filter((l) => l.includes(`[${id}]`));
  for (const expected of [
    /MTA-STS policy of enf\.test: id 1, mode enforce/,
    /MX for enf\.test: 10 mx2\.enf\.test \[127\.0\.5\.12\], 20 mx1\.enf\.test \[127\.0\.5\.11\]/,
    /MX hosts not matching MTA-STS policy of enf\.test .*: mx\.other-enf\.test/,
    /outbound_tls: enf\.test: ratchet raised to TLS_INSECURE by mx2\.enf\.test/,
    /outbound_tls: mx2\.enf\.test \[127\.0\.5\.12\]: TLS_INSECURE .*abandoned before MAIL FROM/,
    /outbound_tls: enf\.test: ratchet raised to TLS_SECURE by mx1\.enf\.test/,
    /outbound_tls: enf\.test via mx1\.enf\.test \[127\.0\.5\.11\]: TLS_SECURE .*MTA-STS enforce: pass/,
  ]) {
    assert.ok(
      lines.some((l) => expected.test(l)),
      `no line ${expected} for message ${id}:\n${lines.join('\n')}`,
    );
  }
});

test('STS-9: the policy comes before the MX query, so an enforce policy also filters the implicit MX', async () => {
  await publish('implicit-sts.test', '9', 'enforce', ['mx.implicit-sts.test']);
  dns.set('implicit-sts.test', [{ type: 'A', address: addressOf('fallback') }]); // no MX: the domain itself would be the MX
  dns.resetLog();
  const before = sink('fallback').count('connect');
  await haraka.send({ to: 'user@implicit-sts.test' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'implicit-sts.test');
  assert.match(String(deferred.err), /Temporary MX lookup error/);
  assert.ok(
    haraka.logLines.some((l) =>
      /no MX host matches MTA-STS policy of implicit-sts\.test \(id 9, mode enforce\) \(MX hosts: implicit-sts\.test\)/.test(l),
    ),
  );
  assert.equal(sink('fallback').count('connect'), before, 'the implicit MX is never connected');
  const asked = dns.queries().map((q) => `${q.type} ${q.name}`);
  assert.ok(asked.indexOf('TXT _mta-sts.implicit-sts.test') < asked.indexOf('MX implicit-sts.test'), asked.join(', '));
});

test('STS-7/MX-8: enforce with only non-matching MXs: deferred with a reason naming the policy, still queued, nothing sent', async () => {
  await publish('only.test', '7', 'enforce', ['mx.only.test']);
  mxRecords('only.test', [10, 'mx.other-only.test']);
  await haraka.send({ to: 'user@only.test' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'only.test');
  assert.match(String(deferred.err), /Temporary MX lookup error/);
  // The log line reaches the test through Haraka's output, the event through the recorder's file: either may come first.
  await haraka.waitForLog(/no MX host matches MTA-STS policy of only\.test \(id 7, mode enforce\)/);
  assert.equal(sink('onlyOther').count('connect'), 0);
  assert.ok(haraka.queueFiles().length >= 1);
});

test('STS-2: each fetch failure is a failure: redirect, 404, media type, over 64 KiB, slow past the deadline, wrong certificate, refused address', async () => {
  const cases: Array<[string, () => Promise<void>, RegExp]> = [
    [
      'f-redirect.test',
      () => policies.set('f-redirect.test', { kind: 'redirect', location: 'https://elsewhere.test/policy' }),
      /HTTP status 302 \(redirect to https:\/\/elsewhere\.test\/policy not followed\)/,
    ],
    ['f-404.test', () => policies.set('f-404.test', { kind: 'status', status: 404 }), /HTTP status 404/],
    [
      'f-type.test',
      () =>
        policies.set('f-type.test', {
          kind: 'serve',
          body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx.never.test'] }),
          contentType: 'text/html',
        }),
      /Content-Type is text\/html, not text\/plain/,
    ],
    ['f-huge.test', () => policies.set('f-huge.test', { kind: 'huge', bytes: 70 * 1024 }), /over 65536/],
    ['f-chunked.test', () => policies.set('f-chunked.test', { kind: 'huge', bytes: 70 * 1024, chunked: true }), /body over 65536 bytes/],
    ['f-slow.test', () => policies.set('f-slow.test', { kind: 'slow', bodyChunkDelayMs: 400 }), /deadline of 1000 ms passed/],
    [
      'f-cert.test',
      () =>
        policies.set(
          'f-cert.test',
          { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx.never.test'] }) },
          { certFor: 'mta-sts.elsewhere.test' },
        ),
      /ALTNAME|does not match/,
    ],
  ];
  for (const [domain, setup] of cases) {
    dns.set(`_mta-sts.${domain}`, [{ type: 'TXT', data: 'v=STSv1; id=1' }]);
    dns.set(`mta-sts.${domain}`, [{ type: 'A', address: POLICY_HOST }]);
    mxRecords(domain, [10, 'mx.fallback.test']);
    await setup();
  }
  dns.set('_mta-sts.f-refused.test', [{ type: 'TXT', data: 'v=STSv1; id=1' }]);
  dns.set('mta-sts.f-refused.test', [{ type: 'A', address: '127.1.0.1' }]);
  mxRecords('f-refused.test', [10, 'mx.fallback.test']);
  cases.push(['f-refused.test', async () => undefined, /every address refused \(127\.1\.0\.1 is in the refused loopback range\)/]);
  // With the fetch failing there is no policy, so the mail goes to the (non-matching) MX as without MTA-STS.
  for (const [domain] of cases) await haraka.send({ to: `user@${domain}` });
  for (const [domain, , reason] of cases) {
    await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === domain, 15000, `delivery to ${domain}`);
    const line = haraka.logLines.find((l) => l.includes(`MTA-STS for ${domain}: policy fetch failed`));
    assert.ok(line, `fetch failure logged for ${domain}`);
    assert.match(line, reason, domain);
  }
  assert.equal(policies.requests('f-refused.test').length, 0, 'the refused address is never connected to');
});

test('STS-5: a cached enforce policy survives a DNS outage and a dead policy server; an id change is picked up after the recheck', async () => {
  await publish('cache.test', '1', 'enforce', ['mx.cache.test']);
  mxRecords('cache.test', [10, 'mx.cache.test']);
  await haraka.send({ to: 'user@cache.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'cache.test');

  // Outage: TXT lookups fail, the policy server is gone; a non-matching MX appears first.
  dns.behave('_mta-sts.cache.test', 'TXT', 'servfail');
  await policies.set('cache.test', { kind: 'status', status: 500 });
  mxRecords('cache.test', [1, 'mx.other-cache.test'], [10, 'mx.cache.test']);
  await sleep(RECHECK_S * 1000 + 200);
  await haraka.send({ to: 'user@cache.test', subject: 'during outage' });
  await haraka.waitForEvent(
    (e) => e.event === 'delivered' && e.domain === 'cache.test' && e.ip === addressOf('cache') && sink('cache').messages.length === 2,
  );
  assert.equal(sink('cacheOther').count('connect'), 0, 'still filtered by the cached policy');
  assert.ok(
    haraka.logLines.some((l) =>
      /MTA-STS for cache\.test: TXT lookup of _mta-sts\.cache\.test failed: ESERVFAIL.*keeping the cached policy \(id 1\)/.test(l),
    ),
  );

  // Back, with a new id whose policy allows the other MX.
  dns.behave('_mta-sts.cache.test', 'TXT', null);
  await publish('cache.test', '2', 'enforce', ['mx.other-cache.test']);
  await sleep(RECHECK_S * 1000 + 200);
  await haraka.send({ to: 'user@cache.test', subject: 'new id' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'cache.test' && e.ip === addressOf('cacheOther'));
  assert.ok(haraka.logLines.some((l) => /MTA-STS policy of cache\.test fetched: id 2, mode enforce/.test(l)));
});

test('STS-8: a mode none policy replaces an enforce policy', async () => {
  await publish('none.test', '1', 'enforce', ['mx.none.test']);
  mxRecords('none.test', [1, 'mx.other-none.test'], [10, 'mx.none.test']);
  await haraka.send({ to: 'user@none.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'none.test');
  assert.equal(sink('noneOther').count('connect'), 0);
  await publish('none.test', '2', 'none', []);
  await sleep(RECHECK_S * 1000 + 200);
  await haraka.send({ to: 'user@none.test', subject: 'after none' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'none.test' && e.ip === addressOf('noneOther'));
  assert.ok(haraka.logLines.some((l) => /MTA-STS policy of none\.test fetched: id 2, mode none/.test(l)));
});

test('STS-8: testing mode delivers to a self-signed MX and logs what enforce would have refused', async () => {
  await publish('testing.test', '1', 'testing', ['mx.testing.test']);
  mxRecords('testing.test', [10, 'mx.testing.test']);
  await haraka.send({ to: 'user@testing.test' });
  await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'testing.test');
  assert.equal(sink('testing').messages.length, 1);
  assert.ok(haraka.logLines.some((l) => /MTA-STS testing, enforce would refuse: testing\.test: .*offers TLS_INSECURE/.test(l)));
});

test('STS-4/MX-1: a policy published for a Unicode domain applies to its A-label and U-label forms alike', async () => {
  const aLabel = 'xn--bcher-sts-q9a.test';
  await publish(aLabel, 'u1', 'enforce', [`mx.${aLabel}`]);
  mxRecords(aLabel, [1, 'mx.other-unicode.test'], [10, `mx.${aLabel}`]);
  await haraka.sendRaw('sender@sender.test', ['user@bücher-sts.test']);
  await haraka.send({ to: `user@${aLabel}` });
  await sink('unicode').waitFor(() => sink('unicode').messages.length === 2, 15000);
  assert.equal(sink('unicodeOther').count('connect'), 0);
  assert.equal(policies.requests(aLabel).length, 1, 'one policy for both forms');
});

test("STS-6: Haraka's main process refreshes a cached policy in the background, without any delivery", async () => {
  await withOwnHaraka(
    'recheck=1\nrefresh_interval=1\nrefresh_before=86400',
    {},
    { address: '127.0.5.31', mxHost: 'mx.refresh.test' },
    async (local, target) => {
      await publish('refresh.test', 'r1', 'enforce', ['mx.refresh.test'], 3600);
      mxRecords('refresh.test', [10, 'mx.refresh.test']);
      await local.send({ to: 'user@refresh.test' });
      await local.waitForEvent((e) => e.event === 'delivered' && e.domain === 'refresh.test');
      // The policy expires within refresh_before: the refresh fetches it again, with its new id.
      await publish('refresh.test', 'r2', 'enforce', ['mx.refresh.test', 'mx2.refresh.test'], 3600);
      const requests = policies.requests('refresh.test').length;
      const store = new FilePolicyStore(path.join(local.dir, 'data', 'mta-sts'));
      let id = '';
      for (let i = 0; i < 100 && id !== 'r2'; i++) {
        await sleep(100);
        const read = await store.get('refresh.test');
        id = read.kind === 'entry' ? read.entry.id : '';
      }
      assert.equal(id, 'r2', 'the cache holds the new policy');
      assert.ok(policies.requests('refresh.test').length > requests, 'fetched again with no message sent');
      assert.equal(target.messages.length, 1, 'no other delivery happened');
      // The summary is logged once the whole refresh round ends, just after the store write.
      await local.waitForLog(/MTA-STS refresh: \d+ checked, [1-9]\d* refetched/);
      const cached = await promisify(execFile)(process.execPath, [CLI_PATH, '--config', path.join(local.dir, 'config'), 'policy', 'list']);
      assert.match(cached.stdout, /refresh\.test: id r2, mode enforce, max_age 3600, mx mx\.refresh\.test mx2\.refresh\.test/);
    },
  );
});

test('STS-5: 200 messages at once to a domain never seen cause one TXT query and one HTTPS request; OPS-4 CLI shows and purges the cached policy; OPS-6: the purge counts at the next delivery', async () => {
  await withOwnHaraka(
    'recheck=600',
    { 'outbound_tls.ini': '[metrics]\nlisten=127.0.0.1:0\n' },
    { address: '127.0.5.30', mxHost: 'mx.stampede.test' },
    async (local, target) => {
      await publish('stampede.test', 's1', 'enforce', ['mx.stampede.test']);
      mxRecords('stampede.test', [10, 'mx.stampede.test']);
      dns.resetLog();
      policies.resetLog();
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: local.port,
        pool: true,
        maxConnections: 20,
        maxMessages: 20,
        ignoreTLS: true,
      });
      try {
        await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            transport.sendMail({ from: 'sender@sender.test', to: `user${i}@stampede.test`, subject: `n${i}`, text: 'x' }),
          ),
        );
      } finally {
        transport.close();
      }
      await target.waitFor(() => target.messages.length >= 200, 60000);
      assert.equal(dns.queries({ name: '_mta-sts.stampede.test', type: 'TXT' }).length, 1);
      assert.equal(policies.requests('stampede.test').length, 1);

      // Asynchronous: the DNS and policy servers run in this process and must keep answering.
      // OPS-3: the MTA-STS counters.
      const metricsLine = await local.waitForLog(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
      const metricsText = await (await fetch(/http:\/\/127\.0\.0\.1:\d+\/metrics/.exec(metricsLine)?.[0] as string)).text();
      const counter = (re: RegExp): number => Number(re.exec(metricsText)?.[1] ?? NaN);
      assert.ok(counter(/outbound_mta_sts_mode_total\{mode="enforce"\} (\d+)/) >= 200, 'enforce mode counted per delivery');
      assert.equal(counter(/outbound_mta_sts_cache_total\{event="fetched"\} (\d+)/), 1);
      // The 200 deliveries shared one discovery: one miss, one fetch.
      assert.equal(counter(/outbound_mta_sts_cache_total\{event="miss"\} (\d+)/), 1);
      assert.ok(counter(/outbound_mta_sts_checks_total\{mode="enforce",result="pass"\} (\d+)/) >= 200);

      const cli = async (...args: string[]): Promise<string> =>
        (await promisify(execFile)(process.execPath, [CLI_PATH, '--config', path.join(local.dir, 'config'), ...args])).stdout;
      const shown = await cli('policy', 'show', 'stampede.test');
      assert.match(shown, /cached: stampede\.test: id s1, mode enforce, max_age 86400, mx mx\.stampede\.test/);
      assert.match(shown, /live: {3}record id s1; mode enforce, max_age 86400, mx mx\.stampede\.test/);
      assert.match(await cli('policy', 'purge', 'stampede.test'), /stampede\.test: cached policy purged/);
      assert.match(await cli('policy', 'show', 'stampede.test'), /cached: stampede\.test: no cached policy/);
      // OPS-6: the purge counts at the next delivery (recheck is 600 s): the policy is discovered again.
      const txtBefore = dns.queries({ name: '_mta-sts.stampede.test', type: 'TXT' }).length;
      await local.send({ to: 'after-purge@stampede.test' });
      await target.waitFor(() => target.messages.length >= 201, 20000);
      assert.ok(dns.queries({ name: '_mta-sts.stampede.test', type: 'TXT' }).length > txtBefore, 'TXT looked up again after the purge');
      assert.match(await cli('policy', 'show', 'stampede.test'), /cached: stampede\.test: id s1, mode enforce/);
    },
  );
});
