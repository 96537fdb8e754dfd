/**
 * RPT-3 `https:` delivery and RPT-6 on the receiving side, against a real
 * HTTPS server on loopback with certificates from the tests' CA: the POST
 * (`application/tlsrpt+gzip`, only 2xx counts, no redirects, certificate and
 * address checks, one deadline), then a whole day through the scheduler to
 * the endpoint, whose report decompresses, validates against the §4.4 schema
 * and counts what was recorded.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_REFUSED_RANGES, makeAddressPolicy } from '#lib/mx/address-policy';
import type { DnsAnswer, DnsClient } from '#lib/mx/dns-client';
import { MAX_REPORT_BYTES, postReport, type PostSettings } from '#lib/tlsrpt/https';
import { DEFAULT_REPORT_LIMITS } from '#lib/tlsrpt/limits';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { noPolicyFound, reportedPolicy } from '#lib/tlsrpt/record';
import { TlsReportRecorder } from '#lib/tlsrpt/recorder';
import { DEFAULT_SCHEDULE } from '#lib/tlsrpt/schedule';
import { TlsReportScheduler } from '#lib/tlsrpt/scheduler';
import type { TlsReport } from '#lib/tlsrpt/report';
import { TestCa } from '../fixtures/test-ca';
import { validateTlsReport } from '../support/tlsrpt-report-schema';

const HOST = 'reports.tlsrpt.test';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (request: IncomingMessage, response: ServerResponse, body: Buffer) => void;

let ca: TestCa;
let server: https.Server;
let port: number;
let handler: Handler = (_req, res) => res.writeHead(202).end();
const received: Received[] = [];

async function listen(options: https.ServerOptions): Promise<void> {
  server = https.createServer(options, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body });
      handler(request, response, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
}

before(async () => {
  ca = await TestCa.create();
  const leaf = await ca.issue({ dnsNames: [HOST] });
  await listen({ key: leaf.key, cert: leaf.cert });
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await ca.cleanup();
});

/** Every name is 127.0.0.1 (A) and has no AAAA. */
const dns: DnsClient = {
  mx: async () => ({ kind: 'nodata' }),
  a: async (): Promise<DnsAnswer<string>> => ({ kind: 'answer', records: ['127.0.0.1'] }),
  aaaa: async () => ({ kind: 'nodata' }),
  txt: async () => ({ kind: 'nodata' }),
};

function settings(overrides: Partial<PostSettings> = {}): PostSettings {
  return {
    dns,
    addressPolicy: makeAddressPolicy(DEFAULT_REFUSED_RANGES, ['127.0.0.0/8']),
    extraCa: [ca.caCert],
    timeoutMs: 3_000,
    ...overrides,
  };
}

const url = (path = '/tlsrpt'): URL => new URL(`https://${HOST}:${port}${path}`);

test('RPT-3: a report is POSTed as application/tlsrpt+gzip; a 2xx answer counts as sent', async () => {
  received.length = 0;
  handler = (_req, res) => res.writeHead(201).end('thanks');
  const body = Buffer.from('gzip bytes');
  assert.deepEqual(await postReport(url('/v1/tlsrpt?x=1'), body, settings()), { ok: true, status: 201 });
  assert.equal(received.length, 1);
  assert.equal(received[0]?.method, 'POST');
  assert.equal(received[0]?.url, '/v1/tlsrpt?x=1');
  assert.equal(received[0]?.headers['content-type'], 'application/tlsrpt+gzip');
  assert.equal(received[0]?.headers.host, `${HOST}:${port}`);
  assert.deepEqual(received[0]?.body, body);
});

test('RPT-3: any other answer is a failure, a redirect is not followed', async () => {
  handler = (_req, res) => res.writeHead(503).end();
  const failed = await postReport(url(), Buffer.from('x'), settings());
  assert.equal(failed.ok, false);
  assert.match(failed.ok ? '' : failed.error, /HTTP status 503/);
  received.length = 0;
  handler = (_req, res) => res.writeHead(302, { Location: `https://${HOST}:${port}/elsewhere` }).end();
  const redirected = await postReport(url(), Buffer.from('x'), settings());
  assert.match(redirected.ok ? '' : redirected.error, /HTTP status 302 \(redirect to .*elsewhere not followed\)/);
  assert.equal(received.length, 1, 'one request only');
});

test('RPT-3: the certificate must be valid for the URL host', async () => {
  received.length = 0;
  const untrusted = await postReport(url(), Buffer.from('x'), settings({ extraCa: [] }));
  assert.match(untrusted.ok ? '' : untrusted.error, /certificate|UNABLE_TO/i);
  const wrongName = await postReport(new URL(`https://other.tlsrpt.test:${port}/`), Buffer.from('x'), settings());
  assert.match(wrongName.ok ? '' : wrongName.error, /ALTNAME|does not match|certificate/i);
  assert.equal(received.length, 0, 'nothing was sent to a server that could not prove its name');
});

test('RPT-3, MX-9: a report URI on a refused address is never contacted', async () => {
  received.length = 0;
  const strict = settings({ addressPolicy: makeAddressPolicy(DEFAULT_REFUSED_RANGES, []) });
  const byName = await postReport(url(), Buffer.from('x'), strict);
  assert.match(byName.ok ? '' : byName.error, /refused loopback range/);
  const byAddress = await postReport(new URL(`https://127.0.0.1:${port}/`), Buffer.from('x'), strict);
  assert.match(byAddress.ok ? '' : byAddress.error, /refused loopback range/);
  assert.equal(received.length, 0);
});

test('RPT-3, OPS-5: one deadline for the whole POST; reports over the size limit are not sent', async () => {
  handler = () => undefined; // never answers
  const started = Date.now();
  const hung = await postReport(url(), Buffer.from('x'), settings({ timeoutMs: 500 }));
  assert.match(hung.ok ? '' : hung.error, /deadline of 500 ms passed/);
  assert.ok(Date.now() - started < 2_000);
  const tooBig = await postReport(url(), Buffer.alloc(MAX_REPORT_BYTES + 1), settings());
  assert.match(tooBig.ok ? '' : tooBig.error, /over/);
  handler = (_req, res) => res.writeHead(200).end(Buffer.alloc(1024 * 1024, 'a'));
  assert.deepEqual(await postReport(url(), Buffer.from('x'), settings()), { ok: true, status: 200 }, 'a long answer is cut, not read');
});

test('RPT-6: a day recorded, then reported by the scheduler to the HTTPS endpoint: valid §4.4 JSON, counts as recorded', async () => {
  received.length = 0;
  handler = (_req, res) => res.writeHead(200).end();
  const day = '2025-03-14';
  let now = Date.UTC(2025, 2, 14, 10);
  const store = new MemoryTlsReportStore(() => now);
  const recorder = new TlsReportRecorder({ write: (entries) => store.add(entries), now: () => now });
  const sts = reportedPolicy(
    'sts',
    'example.test',
    ['version: STSv1', 'mode: testing', 'mx: mx.example.test', 'max_age: 86400'],
    ['mx.example.test'],
  );
  for (let i = 0; i < 40; i++) recorder.record({ policyDomain: 'example.test', policy: sts, result: 'success' });
  for (let i = 0; i < 3; i++) {
    recorder.record({
      policyDomain: 'example.test',
      policy: sts,
      result: {
        resultType: 'certificate-host-mismatch',
        sendingMtaIp: '127.0.0.2',
        receivingMxHostname: 'mx.example.test',
        receivingIp: '127.0.0.1',
      },
    });
  }
  for (let i = 0; i < 5; i++) recorder.record({ policyDomain: 'example.test', policy: noPolicyFound('example.test'), result: 'success' });
  await recorder.close();
  const mails: string[] = [];
  const scheduler = new TlsReportScheduler({
    store,
    txt: async (name) =>
      name === '_smtp._tls.example.test'
        ? { kind: 'answer', records: [`v=TLSRPTv1; rua=https://${HOST}:${port}/tlsrpt,mailto:tlsrpt@example.test`] }
        : { kind: 'nxdomain' },
    queueMail: async (_from, to) => {
      mails.push(to);
    },
    post: (target, gzipped) => postReport(target, gzipped, settings()),
    identity: { organization: 'Sender', contact: 'tlsrpt@sender.test', sender: 'tlsrpt@sender.test', submitter: 'sender.test' },
    schedule: DEFAULT_SCHEDULE,
    holder: 'test',
    lockTtlMs: 60_000,
    now: () => now,
    random: () => 0.25,
    log: () => undefined,
    // RPT-9: the endpoint listens on a port of its own, which the admin allows ([tlsrpt] https_ports).
    limits: { ...DEFAULT_REPORT_LIMITS, httpsPorts: [port] },
  });
  now = Date.UTC(2025, 2, 15, 0, 30);
  await scheduler.pass();
  assert.equal(received.length, 0, 'not before the random delay');
  now = Date.UTC(2025, 2, 15, 1, 10);
  const pass = await scheduler.pass();
  assert.deepEqual(
    pass.outcomes.map((o) => o.outcome.kind),
    ['attempted'],
  );
  assert.equal(received.length, 1);
  assert.deepEqual(mails, ['tlsrpt@example.test']);
  const report = JSON.parse(gunzipSync(received[0]?.body as Buffer).toString('utf8')) as TlsReport;
  assert.deepEqual(validateTlsReport(report), []);
  assert.equal(report['date-range']['start-datetime'], `${day}T00:00:00Z`);
  const byType = Object.fromEntries(report.policies.map((p) => [p.policy['policy-type'], p.summary]));
  assert.deepEqual(byType, {
    sts: { 'total-successful-session-count': 40, 'total-failure-session-count': 3 },
    'no-policy-found': { 'total-successful-session-count': 5, 'total-failure-session-count': 0 },
  });
  await scheduler.pass();
  assert.equal(received.length, 1, 'sent once');
});
