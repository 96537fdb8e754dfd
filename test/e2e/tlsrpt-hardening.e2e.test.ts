/**
 * TLS reporting under attack, end to end through real Haraka instances
 * (design §12 RPT-7, RPT-8, RPT-10; §6 OPS-8):
 * - `relayHaraka` (outbound_tls + haraka-static-route, reporting on) routes
 *   `stripped.test` through a STARTTLS-stripping proxy to a smart host that
 *   takes credentials, and `direct.test` to the same smart host directly:
 *   neither a client posing as the report sender nor a genuine report puts
 *   the credentials on the wire in clear (RPT-7).
 * - `daneHaraka` (outbound_tls + outbound_mx, reporting on) asks the DNSSEC
 *   lab, where `flood.dane.test` publishes 600 small TLSA records on an MX
 *   that offers STARTTLS and refuses it (454): the worker survives, the message waits, the
 *   session is counted (OPS-8, RPT-8), and the failure details are complete
 *   (RPT-10).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { FileTlsReportStore } from '#lib/tlsrpt/file-store';
import { noPolicyFound, utcDay } from '#lib/tlsrpt/record';
import { DnssecLab, type LabRecord } from '../fixtures/dnssec';
import { mxRecords } from '../fixtures/dnssec/dane-records';
import { TestDnsServer } from '../fixtures/dns-server';
import { CLI_PATH, HarakaInstance, describeOutcome, firstOutcome, sleep } from '../fixtures/haraka-instance';
import { HostileSmtp } from '../fixtures/hostile-smtp';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { StarttlsStripper } from '../fixtures/starttls-stripper';
import { TestCa } from '../fixtures/test-ca';

const RELAY = { address: '127.0.14.1', host: 'relay.smarthost.test' };
const STRIPPER_ADDRESS = '127.0.14.2';
const FLOOD_MX = { address: '127.0.14.3', host: 'mx.flood.dane.test' };
const CONTROL_MX = { address: '127.0.14.4', host: 'mx.control.dane.test' };
const CREDENTIALS = { auth_user: 'smarthost-user', auth_pass: 'smarthost-secret' };
const SENDER = 'tlsrpt@haraka.test';
const FLOOD_RECORDS = 600;

let ca: TestCa;
let dns: TestDnsServer;
let lab: DnssecLab;
let relay: SmtpSink;
let floodMx: HostileSmtp;
let controlSink: SmtpSink;
let stripper: StarttlsStripper;
let relayHaraka: HarakaInstance;
let daneHaraka: HarakaInstance;
let routesDir: string;

function tlsrptIni(): string {
  return ['[tlsrpt]', 'enabled=true', `sender=${SENDER}`, 'organization=E2E Reporter', 'flush_interval=1'].join('\n');
}

const cliRun = promisify(execFile);

async function cli(instance: HarakaInstance, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await cliRun(process.execPath, [CLI_PATH, '--config', path.join(instance.dir, 'config'), ...args], {
      timeout: 60000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function authSeen(): string[] {
  return relay.events.filter((e) => e.kind === 'auth').map((e) => `${e.value} secure=${e.secure}`);
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  const sinks = await startSinksOnCommonPort([
    { host: RELAY.address, tls: await ca.issue({ dnsNames: [RELAY.host] }), name: RELAY.host, auth: true },
    { host: CONTROL_MX.address, tls: await ca.selfSigned({ dnsNames: [CONTROL_MX.host] }), name: CONTROL_MX.host },
  ]);
  [relay, controlSink] = sinks as [SmtpSink, SmtpSink];
  const port = relay.port;
  floodMx = await HostileSmtp.start({
    host: FLOOD_MX.address,
    port,
    name: FLOOD_MX.host,
    tls: await ca.selfSigned({ dnsNames: [FLOOD_MX.host] }),
    starttls: 'refuse',
  });
  stripper = await StarttlsStripper.start({ host: STRIPPER_ADDRESS, port, upstreamHost: RELAY.address, upstreamPort: port });

  routesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrpt-hardening-routes-'));
  const routes = path.join(routesDir, 'routes.json');
  const route = (exchange: string) => ({ exchange, port, host: RELAY.host, ...CREDENTIALS });
  fs.writeFileSync(routes, JSON.stringify({ 'stripped.test': route(STRIPPER_ADDRESS), 'direct.test': route(RELAY.address) }));

  // 600 distinct small "3 1 0" records: each a TLSA record of its own (an RRset keeps one copy of equal ones).
  const flood: LabRecord[] = Array.from({ length: FLOOD_RECORDS }, (_, i) => ({
    name: `_${port}._tcp.${FLOOD_MX.host}`,
    type: 'TLSA',
    usage: 3,
    selector: 1,
    matchingType: 0,
    certificate: i.toString(16).padStart(4, '0'),
  }));
  lab = await DnssecLab.start({
    zones: [
      {
        name: 'dane.test',
        records: [
          ...mxRecords('flood.dane.test', FLOOD_MX.host, FLOOD_MX.address),
          ...flood,
          ...mxRecords('control.dane.test', CONTROL_MX.host, CONTROL_MX.address),
        ],
      },
    ],
  });
  [relayHaraka, daneHaraka] = await Promise.all([
    HarakaInstance.start({
      dnsServer: dns.address,
      mxPort: port,
      plugins: ['outbound_tls', 'haraka-static-route'],
      extraCa: ca.caCertPath,
      env: { HARAKA_STATIC_ROUTES: routes },
      config: { 'outbound_tls.ini': tlsrptIni() },
    }),
    HarakaInstance.start({
      dnsServer: lab.resolver,
      mxPort: port,
      plugins: ['outbound_tls', 'outbound_mx'],
      extraCa: ca.caCertPath,
      mxIniExtra: ['[dane]', 'mode=on', 'probe=test.', `trusted_resolvers=${lab.resolver}`].join('\n'),
      config: { 'outbound_tls.ini': tlsrptIni() },
    }),
  ]);
  await daneHaraka.waitForLog(/DANE in effect \(mode=on\)/);
});

after(async () => {
  await relayHaraka?.stop();
  await daneHaraka?.stop();
  await stripper?.stop();
  for (const s of [relay, controlSink, floodMx]) await s?.stop();
  await lab?.stop();
  await dns?.stop();
  await ca?.cleanup();
  if (routesDir) fs.rmSync(routesDir, { recursive: true, force: true });
});

test('RPT-7: a client posing as the report sender with a TLS-Report-Domain header is an ordinary message: no AUTH through the STARTTLS stripper, deferred', async () => {
  const since = Date.now();
  await relayHaraka.sendRaw(SENDER, ['user@stripped.test'], 'TLS-Report-Domain: victim.test\r\nSubject: not a report\r\n\r\nhello\r\n');
  const outcome = await firstOutcome(relayHaraka, 'stripped.test', since);
  assert.ok(stripper.stripped >= 1, 'the stripper removed STARTTLS');
  assert.deepEqual(authSeen(), [], 'the smart host saw AUTH: the credentials went out in clear');
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.match(String(outcome.err), /credentials require TLS_SECURE|TLS_SECURE/);
  assert.ok(!relayHaraka.logLines.some((l) => /TLS report message/.test(l)), 'not treated as a report');
});

test('RPT-7: a genuine report (tlsrpt send, through the outbox) keeps TLS-8: no AUTH through the stripper; the same report over the direct route is delivered with AUTH inside TLS', async () => {
  const day = utcDay(Date.now());
  const domain = 'src.test';
  const store = new FileTlsReportStore(path.join(relayHaraka.dir, 'data', 'tlsrpt'));
  await store.add([
    { day, policyDomain: domain, policy: noPolicyFound(domain), count: 2 },
    {
      day,
      policyDomain: domain,
      policy: noPolicyFound(domain),
      failure: {
        resultType: 'starttls-not-supported',
        sendingMtaIp: '127.0.0.1',
        receivingMxHostname: 'mx.src.test',
        receivingIp: '127.0.0.9',
      },
      count: 1,
    },
  ]);
  await store.close();
  dns.set(`_smtp._tls.${domain}`, [{ type: 'TXT', data: 'v=TLSRPTv1; rua=mailto:tlsrpt@stripped.test,mailto:tlsrpt@direct.test' }]);
  const since = Date.now();
  const sent = await cli(relayHaraka, 'tlsrpt', 'send', day, domain);
  assert.equal(sent.code, 0, `${sent.stdout}${sent.stderr}`);
  assert.match(sent.stdout, /taken by Haraka from .*tlsrpt-outbox: 2/);

  const stripped = await firstOutcome(relayHaraka, 'stripped.test', since);
  assert.equal(stripped.event, 'deferred', describeOutcome(stripped));
  assert.match(String(stripped.err), /credentials require TLS_SECURE/);
  await relay.waitFor(() => relay.messages.some((m) => m.to.includes('tlsrpt@direct.test')), 20000);
  assert.deepEqual(authSeen(), [`${CREDENTIALS.auth_user} secure=true`], 'AUTH only inside TLS, on the direct route');
  assert.ok(relayHaraka.logLines.some((l) => /TLS report message: .*waived .*credentials still guarded \(RPT-7\)/.test(l)));
});

test('OPS-8/RPT-8: 600 TLSA records on an MX that refuses STARTTLS, with reporting on: the worker survives, the message waits, the session is counted with complete failure details (RPT-10)', async () => {
  const since = Date.now();
  await daneHaraka.send({ to: 'user@flood.dane.test' });
  const outcome = await firstOutcome(daneHaraka, 'flood.dane.test', since, 30000);
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.ok(floodMx.count('starttls') >= 1, 'STARTTLS was tried');
  assert.equal(floodMx.count('mailfrom'), 0);
  await sleep(1500);
  assert.ok(daneHaraka.running, `Haraka exited:\n${daneHaraka.logLines.slice(-20).join('\n')}`);
  assert.ok(
    !daneHaraka.logLines.some((l) => /uncaught|TypeError|RangeError/i.test(l)),
    daneHaraka.logLines.filter((l) => /uncaught/i.test(l)).join('\n'),
  );

  // Inbound and the rest of outbound go on: another domain's message is delivered.
  await daneHaraka.send({ to: 'user@control.dane.test' });
  const control = await firstOutcome(daneHaraka, 'control.dane.test', since, 30000);
  assert.equal(control.event, 'delivered', describeOutcome(control));

  let shown = '';
  for (let i = 0; i < 50 && !/flood\.dane\.test.*[1-9]\d* failed/s.test(shown); i++) {
    await sleep(300);
    shown = (await cli(daneHaraka, 'tlsrpt', 'show', 'flood.dane.test')).stdout;
  }
  assert.match(shown, /policy tlsa mx\.flood\.dane\.test: 0 successful, \d+ failed/);
  assert.match(shown, /sending-mta-ip=127\.\d+\.\d+\.\d+/);
  assert.match(shown, /receiving-mx-hostname=mx\.flood\.dane\.test/);
  assert.match(shown, /receiving-ip=127\.0\.14\.3/);
});
