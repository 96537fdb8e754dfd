/**
 * End-to-end tests of TLS reporting (design §12, RPT-6, RPT-4) through real
 * Haraka instances: the tests' DNS server points MX records at SMTP sinks on
 * loopback (valid, self-signed, wrong name, no STARTTLS, not listed in the
 * policy), an HTTPS policy server serves an MTA-STS testing policy, and
 * `_smtp._tls.<domain>` TXT records name a `mailto:` address (a sink) and an
 * `https:` endpoint (an HTTPS server with a test-CA certificate). Reports are
 * sent with `haraka-outbound tlsrpt send`, which hands the `mailto:` report to
 * Haraka through the outbox under data_dir (RPT-7), so it goes through
 * Haraka's own outbound.
 *
 * Haraka instances: `haraka` (file store) for the report and the refusing
 * report address; two more sharing a real redis-server for the shared report.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { TlsReport } from '#lib/tlsrpt/report';
import { FileTlsReportStore } from '#lib/tlsrpt/file-store';
import { addDays, noPolicyFound, utcDay } from '#lib/tlsrpt/record';
import { TestDnsServer } from '../fixtures/dns-server';
import { CLI_PATH, HarakaInstance, mtaStsHarakaOptions, sleep, waitUntil, type HarakaOptions } from '../fixtures/haraka-instance';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';
import { validateTlsReport } from '../support/tlsrpt-report-schema';

const POLICY_HOST = '127.0.13.60';
const RUA_HOST = { address: '127.0.13.70', host: 'rua.reports.test' };
const VALID = { address: '127.0.13.1', host: 'mx.valid.test' };
const SELF = { address: '127.0.13.2', host: 'mx.self.test' };
const WRONG = { address: '127.0.13.3', host: 'mx.wrong.test' };
const PLAIN = { address: '127.0.13.4', host: 'mx.plain.test' };
const UNLISTED = { address: '127.0.13.5', host: 'mx.unlisted.test' };
const REPORTS = { address: '127.0.13.6', host: 'mx.reports.test' };
const REFUSING = { address: '127.0.13.7', host: 'mx.refusing.test' };
/** Nothing listens here: an unreachable report address. */
const DEAD = { address: '127.0.13.8', host: 'mx.dead.test' };
const SENDER = 'tlsrpt@haraka.test';

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let rua: https.Server;
let ruaPort: number;
let mxPort: number;
let haraka: HarakaInstance;
let valid: SmtpSink;
let plain: SmtpSink;
let reports: SmtpSink;
let refusing: SmtpSink;
const sinks: SmtpSink[] = [];
const posted: Array<{ url: string; contentType: string; body: Buffer }> = [];

function pointMx(domain: string, target: { address: string; host: string }): void {
  dns.set(domain, [{ type: 'MX', preference: 10, exchange: target.host }]);
  dns.set(target.host, [{ type: 'A', address: target.address }]);
}

function publishTlsRpt(domain: string, rua: string): void {
  dns.set(`_smtp._tls.${domain}`, [{ type: 'TXT', data: `v=TLSRPTv1; rua=${rua}` }]);
}

function tlsrptIni(extra: string[] = []): string {
  // https_ports: RPT-9 allows port 443 only; the tests' HTTPS endpoint listens on a port of its own, which the admin allows.
  return [
    '[tlsrpt]',
    'enabled=true',
    `sender=${SENDER}`,
    'organization=E2E Reporter',
    'flush_interval=1',
    `https_ports=${ruaPort}`,
    ...extra,
  ].join('\n');
}

function options(config: Record<string, string>): HarakaOptions {
  return mtaStsHarakaOptions({ dnsServer: dns.address, mxPort, caCertPath: ca.caCertPath, policyPort: policies.port }, { config });
}

const cliRun = promisify(execFile);

/** The CLI against an instance's config directory (a non-zero status is returned, not thrown). */
async function cli(instance: HarakaInstance, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await cliRun(process.execPath, [CLI_PATH, '--config', path.join(instance.dir, 'config'), ...args], {
      timeout: 30000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Sends `tlsrpt send` for today (mailto: through `instance`'s outbox); asserts it sent everything and Haraka took it. */
async function sendReports(instance: HarakaInstance, ...domains: string[]): Promise<string> {
  const run = await cli(instance, 'tlsrpt', 'send', ...domains);
  assert.equal(run.code, 0, `tlsrpt send: ${run.stdout}${run.stderr}`);
  return run.stdout;
}

/** Waits until `tlsrpt show` for `domain` prints `pattern` (the recorder writes every second). */
async function waitForShow(instance: HarakaInstance, domain: string, pattern: RegExp): Promise<string> {
  let shown = '';
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    shown = (await cli(instance, 'tlsrpt', 'show', domain)).stdout;
    if (pattern.test(shown)) return shown;
    await sleep(300);
  }
  assert.fail(`tlsrpt show ${domain} never matched ${pattern}:\n${shown}`);
}

function deliveredCount(instance: HarakaInstance, domain: string): number {
  return instance.events().filter((e) => e.event === 'delivered' && e.domain === domain).length;
}

/** Sends one message to `domain` and waits until Haraka delivered it. */
async function deliverOne(instance: HarakaInstance, domain: string, subject = 'e2e'): Promise<void> {
  const before = deliveredCount(instance, domain);
  await instance.send({ to: `user@${domain}`, subject });
  await waitUntil(
    () => deliveredCount(instance, domain) > before,
    20000,
    () => `a delivery to ${domain}; events: ${JSON.stringify(instance.events().slice(-5))}\n${instance.logLines.slice(-20).join('\n')}`,
  );
}

/** The report attached to a received report message: headers checked, attachment decompressed. */
function attachedReport(body: string): { headers: string; report: TlsReport } {
  const headers = body.split(/\r?\n\r?\n/)[0] ?? '';
  const part = /Content-Type: application\/tlsrpt\+gzip[^]*?\r?\n\r?\n([A-Za-z0-9+/=\r\n]+)/.exec(body);
  assert.ok(part, `no application/tlsrpt+gzip part in:\n${body.slice(0, 2000)}`);
  const gzipped = Buffer.from((part[1] as string).replace(/\s+/g, ''), 'base64');
  return { headers, report: JSON.parse(gunzipSync(gzipped).toString('utf8')) as TlsReport };
}

/** Successful and failed totals and failed sessions per result type, over the report's policies. */
function tally(report: TlsReport): { successful: number; failed: number; byType: Record<string, number> } {
  const byType: Record<string, number> = {};
  let successful = 0;
  let failed = 0;
  for (const entry of report.policies) {
    successful += entry.summary['total-successful-session-count'];
    failed += entry.summary['total-failure-session-count'];
    for (const detail of entry['failure-details'] ?? []) {
      byType[detail['result-type']] = (byType[detail['result-type']] ?? 0) + detail['failed-session-count'];
    }
  }
  return { successful, failed, byType };
}

function reportsFor(sink: SmtpSink, domain: string): Array<{ headers: string; report: TlsReport }> {
  return sink.messages
    .filter((m) => new RegExp(`^TLS-Report-Domain: ${domain.replace(/\./g, '\\.')}\\r?$`, 'm').test(m.body))
    .map((m) => attachedReport(m.body));
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const started = await startSinksOnCommonPort([
    { host: VALID.address, tls: await ca.issue({ dnsNames: [VALID.host] }), name: VALID.host },
    { host: SELF.address, tls: await ca.selfSigned({ dnsNames: [SELF.host] }), name: SELF.host },
    { host: WRONG.address, tls: await ca.issue({ dnsNames: ['other-name.test'] }), name: WRONG.host },
    { host: PLAIN.address, tls: 'none', name: PLAIN.host },
    { host: UNLISTED.address, tls: await ca.issue({ dnsNames: [UNLISTED.host] }), name: UNLISTED.host },
    { host: REPORTS.address, tls: await ca.issue({ dnsNames: [REPORTS.host] }), name: REPORTS.host },
    { host: REFUSING.address, tls: await ca.issue({ dnsNames: [REFUSING.host] }), name: REFUSING.host, refuseRcpt: true },
  ]);
  sinks.push(...started);
  [valid, , , plain, , reports, refusing] = started as SmtpSink[] as [SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink];
  mxPort = (valid as SmtpSink).port;

  const leaf = await ca.issue({ dnsNames: [RUA_HOST.host] });
  rua = https.createServer({ key: leaf.key, cert: leaf.cert }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      posted.push({ url: request.url ?? '', contentType: String(request.headers['content-type']), body: Buffer.concat(chunks) });
      response.writeHead(201).end();
    });
  });
  await new Promise<void>((resolve) => rua.listen(0, RUA_HOST.address, resolve));
  ruaPort = (rua.address() as AddressInfo).port;
  dns.set(RUA_HOST.host, [{ type: 'A', address: RUA_HOST.address }]);
  pointMx('reports.test', REPORTS);
  // Bounces of report messages go back to the sender's domain.
  pointMx('haraka.test', REPORTS);

  haraka = await HarakaInstance.start(options({ 'outbound_tls.ini': tlsrptIni() }));
});

after(async () => {
  await haraka?.stop();
  for (const s of sinks) await s.stop();
  rua?.closeAllConnections();
  await new Promise((resolve) => (rua ? rua.close(resolve) : resolve(undefined)));
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('RPT-6: successes and each kind of failure through Haraka reach the mailto: sink and the https: endpoint as one valid report with matching counts; RPT-4: the report message carries TLS-Required: No and is not counted', async () => {
  const domain = 'rpt.test';
  dns.set(`_mta-sts.${domain}`, [{ type: 'TXT', data: 'v=STSv1; id=rpt1' }]);
  dns.set(`mta-sts.${domain}`, [{ type: 'A', address: POLICY_HOST }]);
  await policies.set(domain, {
    kind: 'serve',
    body: policyText({ mode: 'testing', maxAge: 86400, mx: [VALID.host, SELF.host, WRONG.host, PLAIN.host] }),
  });
  publishTlsRpt(domain, `mailto:tlsrpt@reports.test,https://${RUA_HOST.host}:${ruaPort}/v1/tlsrpt`);

  // Testing mode: every failure is recorded and the message still delivered. Weakest first, so
  // the ratchet a secure delivery raises never holds back a later one.
  for (const target of [PLAIN, SELF, WRONG, UNLISTED, VALID, VALID]) {
    pointMx(domain, target);
    await deliverOne(haraka, domain, `to ${target.host}`);
  }
  await waitForShow(haraka, domain, /policy sts rpt\.test: 2 successful, 4 failed/);

  const sent = await sendReports(haraka, domain);
  assert.match(sent, /rpt\.test \d{4}-\d{2}-\d{2}: sent to mailto:tlsrpt@reports\.test, https:/);
  await reports.waitFor(() => reportsFor(reports, domain).length === 1, 20000);
  const message = reports.messages.find((m) => /^TLS-Report-Domain: rpt\.test\r?$/m.test(m.body)) as { body: string; from: string };
  const { headers, report } = reportsFor(reports, domain)[0] as { headers: string; report: TlsReport };
  assert.equal(message.from, SENDER);
  assert.match(headers, /^TLS-Required: No\r?$/m);
  assert.match(headers, /^Content-Type: multipart\/report; report-type="tlsrpt"/m);
  assert.deepEqual(validateTlsReport(report), []);
  assert.equal(report['organization-name'], 'E2E Reporter');
  assert.equal(report.policies.length, 1);
  const entry = report.policies[0] as TlsReport['policies'][number];
  assert.equal(entry.policy['policy-type'], 'sts');
  assert.equal(entry.policy['policy-domain'], domain);
  assert.deepEqual(tally(report), {
    successful: 2,
    failed: 4,
    byType: {
      'starttls-not-supported': 1,
      'certificate-not-trusted': 1,
      'certificate-host-mismatch': 1,
      'validation-failure': 1,
    },
  });
  const unlisted = entry['failure-details']?.find((d) => d['result-type'] === 'validation-failure');
  assert.equal(unlisted?.['receiving-mx-hostname'], UNLISTED.host);
  assert.equal(unlisted?.['failure-reason-code'], 'mx-not-in-sts-policy');

  // The same report body at the https: endpoint.
  const post = posted.find((p) => p.url === '/v1/tlsrpt');
  assert.ok(post, 'the report was POSTed');
  assert.equal(post.contentType, 'application/tlsrpt+gzip');
  assert.deepEqual(JSON.parse(gunzipSync(post.body).toString('utf8')), report);

  // RPT-4: the report message (delivered to reports.test's MX) is counted nowhere.
  await sleep(2500);
  assert.match((await cli(haraka, 'tlsrpt', 'show', 'reports.test')).stdout, /no sessions counted/);
  assert.match((await cli(haraka, 'tlsrpt', 'show', domain)).stdout, /policy sts rpt\.test: 2 successful, 4 failed/);
});

test('RPT-4: a report address that refuses mail (550) or is unreachable holds no other mail back', async () => {
  pointMx('refused-rpt.test', VALID);
  pointMx('refusing.test', REFUSING);
  pointMx('dead.test', DEAD);
  publishTlsRpt('refused-rpt.test', 'mailto:tlsrpt@refusing.test,mailto:tlsrpt@dead.test');
  await deliverOne(haraka, 'refused-rpt.test');
  await waitForShow(haraka, 'refused-rpt.test', /1 successful, 0 failed/);

  await sendReports(haraka, 'refused-rpt.test');
  await refusing.waitFor(() => refusing.count('rcpt') >= 1, 20000);
  // The report to the unreachable address is deferred; the refused one bounces to the sender.
  await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'dead.test', 20000, 'the report to dead.test deferred');

  // A normal message after them is delivered at once.
  pointMx('after.test', PLAIN);
  const plainBefore = plain.messages.length;
  await deliverOne(haraka, 'after.test', 'after the reports');
  assert.equal(plain.messages.length, plainBefore + 1);
  assert.equal(refusing.messages.length, 0);
});

test("RPT-6: two Haraka instances sharing Redis produce one report with both instances' counts", async () => {
  const redis = await TestRedis.start();
  const config = {
    'outbound_tls.ini': ['[main]', 'store=redis', 'redis_prefix=tlsrpt-e2e:', 'redis_timeout=500', tlsrptIni()].join('\n'),
    'redis.ini': ['[server]', 'host=127.0.0.1', `port=${redis.port}`].join('\n'),
  };
  const [first, second] = await Promise.all([HarakaInstance.start(options(config)), HarakaInstance.start(options(config))]);
  try {
    const domain = 'shared-rpt.test';
    publishTlsRpt(domain, 'mailto:tlsrpt@reports.test');
    // No policy: a session without TLS fails (starttls-not-supported), an encrypted one succeeds.
    // Plain first: the shared ratchet raised by the secure delivery would refuse the plain MX.
    pointMx(domain, PLAIN);
    await deliverOne(second, domain);
    pointMx(domain, VALID);
    await deliverOne(first, domain);
    await deliverOne(first, domain);
    await waitForShow(first, domain, /policy no-policy-found shared-rpt\.test: 2 successful, 1 failed/);

    await sendReports(first, domain);
    await reports.waitFor(() => reportsFor(reports, domain).length === 1, 20000);
    const { report } = reportsFor(reports, domain)[0] as { report: TlsReport };
    assert.deepEqual(validateTlsReport(report), []);
    assert.equal(report.policies.length, 1);
    assert.equal(report.policies[0]?.policy['policy-type'], 'no-policy-found');
    assert.deepEqual(tally(report), { successful: 2, failed: 1, byType: { 'starttls-not-supported': 1 } });
    assert.equal(report.policies[0]?.['failure-details']?.[0]?.['receiving-mx-hostname'], PLAIN.host);
  } finally {
    await Promise.all([first.stop(), second.stop()]);
    await redis.stop();
  }
});

/** A domain whose only MX (self-signed certificate) fails its MTA-STS enforce policy: normal mail to it waits. */
async function failingEnforceDomain(domain: string): Promise<string> {
  dns.set(`_mta-sts.${domain}`, [{ type: 'TXT', data: `v=STSv1; id=${domain.replace(/\W/g, '')}` }]);
  dns.set(`mta-sts.${domain}`, [{ type: 'A', address: POLICY_HOST }]);
  await policies.set(domain, { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx: [SELF.host] }) });
  pointMx(domain, SELF);
  return domain;
}

test('RPT-4: a report reaches an address whose MX fails its MTA-STS enforce policy, where other mail waits', async () => {
  const strict = await failingEnforceDomain('strict-reports.test');
  const self = sinks[1] as SmtpSink;
  // Control: a normal message to that domain is deferred (self-signed certificate under enforce).
  await haraka.send({ to: `user@${strict}`, subject: 'normal mail' });
  await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === strict, 20000, `a deferral for ${strict}`);

  const domain = 'strict-src.test';
  pointMx(domain, VALID);
  publishTlsRpt(domain, `mailto:tlsrpt@${strict}`);
  await deliverOne(haraka, domain);
  await waitForShow(haraka, domain, /1 successful, 0 failed/);
  await sendReports(haraka, domain);
  await self.waitFor(() => reportsFor(self, domain).length === 1, 20000);
  assert.equal(
    self.messages.filter((m) => m.to.includes(`user@${strict}`)).length,
    0,
    'the normal message is still held back by the policy',
  );
});

test('RPT-4/RPT-7: reporting turned on by a reload (off at startup) takes the reports `tlsrpt send` leaves in the outbox: one reaches an MX failing its enforce policy', async () => {
  const strict = await failingEnforceDomain('late-strict.test');
  const domain = 'late-src.test';
  pointMx(domain, VALID);
  publishTlsRpt(domain, `mailto:tlsrpt@${strict}`);
  const self = sinks[1] as SmtpSink;
  const late = await HarakaInstance.start(options({ 'outbound_tls.ini': '[main]\n' }));
  try {
    const reloads = late.logLines.filter((l) => /TLS reporting started/.test(l)).length;
    assert.equal(reloads, 0, 'reporting is off at startup');
    fs.writeFileSync(path.join(late.dir, 'config', 'outbound_tls.ini'), `${tlsrptIni()}\n`);
    await late.waitForLog(/TLS reporting started/, 20000);
    await deliverOne(late, domain);
    await waitForShow(late, domain, /1 successful, 0 failed/);
    await sendReports(late, domain);
    await self.waitFor(() => reportsFor(self, domain).length === 1, 20000);
  } finally {
    await late.stop();
  }
});

test('RPT-3: after the day ends, the plugin sends each domain its report by itself, DKIM-signed: mailto: through Haraka’s own outbound (outbound.send_email) and https:, once', async () => {
  // Yesterday's counts, as the recorder of an earlier run left them in the instance's file store.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haraka-e2e-auto-'));
  const yesterday = addDays(utcDay(Date.now()), -1);
  const domain = 'auto.test';
  const policy = noPolicyFound(domain);
  const store = new FileTlsReportStore(path.join(dir, 'data', 'tlsrpt'));
  await store.add([
    { day: yesterday, policyDomain: domain, policy, count: 3 },
    {
      day: yesterday,
      policyDomain: domain,
      policy,
      failure: {
        resultType: 'starttls-not-supported',
        sendingMtaIp: '127.0.0.1',
        receivingMxHostname: PLAIN.host,
        receivingIp: PLAIN.address,
      },
      count: 1,
    },
  ]);
  publishTlsRpt(domain, `mailto:auto@reports.test,https://${RUA_HOST.host}:${ruaPort}/v1/auto`);
  // A DKIM key: the report is signed with it (RFC 8460 §3: receivers may ignore unsigned reports).
  const keyFile = path.join(dir, 'dkim.pem');
  fs.writeFileSync(keyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // delay_window=0: due as soon as the day's settle time has passed (hours ago); the first pass comes within a minute of startup.
  const auto = await HarakaInstance.start({
    ...options({ 'outbound_tls.ini': tlsrptIni(['delay_window=0', `dkim_key_file=${keyFile}`, 'dkim_selector=rpt2026']) }),
    dir,
  });
  try {
    await reports.waitFor(() => reportsFor(reports, domain).length === 1, 90000);
    await waitUntil(
      () => posted.some((p) => p.url === '/v1/auto'),
      20000,
      () => `an https: report for ${domain}; posted: ${posted.map((p) => p.url).join(', ')}`,
    );
    const { headers, report } = reportsFor(reports, domain)[0] as { headers: string; report: TlsReport };
    assert.match(headers, /^TLS-Required: No\r?$/m);
    assert.match(headers, /^DKIM-Signature: .*\bd=haraka\.test;/m);
    assert.match(headers, /^DKIM-Signature: .*\bs=rpt2026;/ms);
    assert.deepEqual(validateTlsReport(report), []);
    assert.equal(report['date-range']['start-datetime'].slice(0, 10), yesterday);
    assert.deepEqual(tally(report), { successful: 3, failed: 1, byType: { 'starttls-not-supported': 1 } });
    const body = posted.find((p) => p.url === '/v1/auto') as { contentType: string; body: Buffer };
    assert.equal(body.contentType, 'application/tlsrpt+gzip');
    assert.deepEqual(JSON.parse(gunzipSync(body.body).toString('utf8')), report);
    // Once: a later pass finds the day's delivery recorded and sends nothing more.
    await sleep(2000);
    assert.equal(reportsFor(reports, domain).length, 1);
    assert.equal(posted.filter((p) => p.url === '/v1/auto').length, 1);
  } finally {
    await auto.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
