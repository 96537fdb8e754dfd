/**
 * RPT-9: an `https:` report address is POSTed only to public unicast
 * addresses on an allowed port. Real pieces on loopback: the tests' DNS
 * server answers the report host's addresses, an HTTPS server with a test-CA
 * certificate takes the reports that are allowed, and the admin's allowance
 * for loopback is the one outbound_mx.ini gives (`[addresses] allow`). An
 * internal address (10.0.0.5, fd00::1 …) is proved refused before any
 * connection: the connect guard records every attempt and lets none leave
 * loopback.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import { DEFAULT_REFUSED_RANGES, makeAddressPolicy } from '#lib/mx/address-policy';
import { createDnsClient, type DnsClient } from '#lib/mx/dns-client';
import { deliverDomain, type DeliveryDeps } from '#lib/tlsrpt/deliver';
import { postReport, type PostSettings } from '#lib/tlsrpt/https';
import { DEFAULT_REPORT_LIMITS, LeftOutTally, type ReportLimits } from '#lib/tlsrpt/limits';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { noPolicyFound } from '#lib/tlsrpt/record';
import { DEFAULT_SCHEDULE } from '#lib/tlsrpt/schedule';
import { TestDnsServer } from '../fixtures/dns-server';
import { TestCa } from '../fixtures/test-ca';
import { installConnectGuard, type ConnectGuard } from '../support/connect-guard';

const INTERNAL = [
  { host: 'ten.reports.test', type: 'A', address: '10.0.0.5', range: 'private' },
  { host: 'rfc1918-172.reports.test', type: 'A', address: '172.16.3.4', range: 'private' },
  { host: 'rfc1918-192.reports.test', type: 'A', address: '192.168.1.1', range: 'private' },
  { host: 'cgnat.reports.test', type: 'A', address: '100.64.0.1', range: 'carrierGradeNat' },
  { host: 'ula.reports.test', type: 'AAAA', address: 'fd00::1', range: 'uniqueLocal' },
] as const;
const PUBLIC_HOST = 'public.reports.test';
const MIXED_HOST = 'mixed.reports.test';

let ca: TestCa;
let dnsServer: TestDnsServer;
let dns: DnsClient;
let server: https.Server;
let port: number;
let guard: ConnectGuard;
const received: string[] = [];

before(async () => {
  ca = await TestCa.create();
  const leaf = await ca.issue({ dnsNames: [PUBLIC_HOST, MIXED_HOST, ...INTERNAL.map((i) => i.host)] });
  server = https.createServer({ key: leaf.key, cert: leaf.cert }, (request, response) => {
    received.push(`${request.headers.host ?? ''}${request.url ?? ''}`);
    request.resume();
    request.on('end', () => response.writeHead(200).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  dnsServer = await TestDnsServer.start();
  for (const internal of INTERNAL) dnsServer.add(internal.host, { type: internal.type, address: internal.address });
  // Stands for the attacker's public address: loopback, which the admin's allowance lets through.
  dnsServer.add(PUBLIC_HOST, { type: 'A', address: '127.0.0.1' });
  dnsServer.add(MIXED_HOST, { type: 'A', address: '10.0.0.5' });
  dnsServer.add(MIXED_HOST, { type: 'A', address: '127.0.0.1' });
  dns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 1000, tries: 1 });
  guard = installConnectGuard();
});

after(async () => {
  guard.uninstall();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await dnsServer.stop();
  await ca.cleanup();
});

beforeEach(() => {
  received.length = 0;
  guard.attempts.length = 0;
});

/** As outbound_mx.ini gives it to the report sender: the MX refusals, and the admin's allowance for loopback. */
function postSettings(): PostSettings {
  return { dns, addressPolicy: makeAddressPolicy(DEFAULT_REFUSED_RANGES, ['127.0.0.0/8']), extraCa: [ca.caCert], timeoutMs: 3_000 };
}

test('RPT-9: an https report address resolving to 10.0.0.5 is not POSTed to (nor 172.16/12, 192.168/16, 100.64/10, fc00::/7)', async () => {
  for (const internal of INTERNAL) {
    const result = await postReport(new URL(`https://${internal.host}:${port}/v1/tlsrpt`), Buffer.from('x'), postSettings());
    assert.equal(result.ok, false, internal.host);
    assert.match(result.ok ? '' : result.error, new RegExp(`${internal.address} is in the refused ${internal.range} range`));
    assert.equal(result.ok ? undefined : result.refused, 'address');
    const literal = internal.type === 'A' ? internal.address : `[${internal.address}]`;
    const byLiteral = await postReport(new URL(`https://${literal}/v1/tlsrpt`), Buffer.from('x'), postSettings());
    assert.match(byLiteral.ok ? '' : byLiteral.error, new RegExp(`refused ${internal.range} range`));
  }
  assert.deepEqual(guard.attempts, [], 'no connection was attempted');
  assert.deepEqual(received, []);
});

test('RPT-9: a report address resolving to [10.0.0.5, 127.0.0.1] is refused whole: neither address is connected to', async () => {
  const result = await postReport(new URL(`https://${MIXED_HOST}:${port}/v1/tlsrpt`), Buffer.from('x'), postSettings());
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.error, /10\.0\.0\.5 is in the refused private range/);
  assert.deepEqual(guard.attempts, [], 'not even the allowed address: its answer would tell whether an internal port speaks TLS');
  assert.deepEqual(received, []);
  const allowed = await postReport(new URL(`https://${PUBLIC_HOST}:${port}/v1/tlsrpt`), Buffer.from('x'), postSettings());
  assert.deepEqual(allowed, { ok: true, status: 200 }, 'the allowance still lets the tests’ endpoint through');
});

/** One day's report for `example.test`, whose record lists `rua`, through deliverDomain and the real POST. */
async function deliverWith(rua: string, limits: Partial<ReportLimits>): Promise<{ leftOut: LeftOutTally; logs: string[] }> {
  const day = '2025-03-14';
  const now = Date.UTC(2025, 2, 15, 6);
  const store = new MemoryTlsReportStore(() => now);
  await store.add([{ day, policyDomain: 'example.test', policy: noPolicyFound('example.test'), count: 3 }]);
  const logs: string[] = [];
  const leftOut = new LeftOutTally((message) => logs.push(message));
  const deps: DeliveryDeps = {
    store,
    txt: async (name) =>
      name === '_smtp._tls.example.test' ? { kind: 'answer', records: [`v=TLSRPTv1; rua=${rua}`] } : { kind: 'nxdomain' },
    queueMail: async () => undefined,
    post: (url, gzipped) => postReport(url, gzipped, postSettings()),
    identity: { organization: 'Sender', contact: 'tlsrpt@sender.test', sender: 'tlsrpt@sender.test', submitter: 'sender.test' },
    schedule: DEFAULT_SCHEDULE,
    holder: 'test',
    lockTtlMs: 60_000,
    now: () => now,
    random: () => 0,
    log: (level, message) => logs.push(`${level} ${message}`),
    limits: { ...DEFAULT_REPORT_LIMITS, ...limits },
    leftOut,
  };
  await deliverDomain(deps, day, 'example.test');
  return { leftOut, logs };
}

test('RPT-9: an https report address on a port other than 443 is not POSTed to unless https_ports allows it; refusals are logged and counted', async () => {
  const refused = await deliverWith(`https://${PUBLIC_HOST}:${port}/v1/tlsrpt`, {});
  assert.deepEqual(received, []);
  assert.deepEqual(guard.attempts, []);
  assert.equal(refused.leftOut.totals().endpoint_ports, 1);
  assert.ok(
    refused.logs.some((line) => new RegExp(`port ${port} is not in https_ports=443`).test(line)),
    refused.logs.join('\n'),
  );
  await deliverWith(`https://${PUBLIC_HOST}:${port}/v1/tlsrpt`, { httpsPorts: [443, port] });
  assert.deepEqual(received, [`${PUBLIC_HOST}:${port}/v1/tlsrpt`], 'allowed by the admin');
  received.length = 0;
  const internal = await deliverWith(`https://${MIXED_HOST}:${port}/v1/tlsrpt`, { httpsPorts: [port] });
  assert.deepEqual(received, []);
  assert.equal(internal.leftOut.totals().endpoint_addresses, 1, 'an address refusal is counted');
  assert.ok(internal.logs.some((line) => /10\.0\.0\.5 is in the refused private range/.test(line)));
});
