/**
 * RPT-6, the report side: reports built from stored counts, gzip-compressed
 * as sent (POST body and mail attachment), decompress and validate against
 * the JSON Schema of RFC 8460 §4.4 (test/support/tlsrpt-report-schema.ts),
 * with ajv; the schema itself refuses what §4.4 does not allow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { MemoryTlsReportStore } from '#lib/tlsrpt/memory-store';
import { noPolicyFound, RESULT_TYPES, reportedPolicy, tlsaPolicy } from '#lib/tlsrpt/record';
import { buildReport, gzipReport, type TlsReport } from '#lib/tlsrpt/report';
import { reportMessage } from '#lib/tlsrpt/mailto';
import { validateTlsReport } from '../support/tlsrpt-report-schema';

const DAY = '2025-03-14';
const AUTHOR = { organization: 'Sender Org', contact: 'tlsrpt@sender.example', reportId: `${DAY}.0a1b2c3d4e5f.example.com@sender.example` };

/** Every policy type, every result type, every failure field, counted in a store as the recorder would. */
async function fullReport(): Promise<TlsReport> {
  const store = new MemoryTlsReportStore();
  const sts = reportedPolicy(
    'sts',
    'example.com',
    ['version: STSv1', 'mode: testing', 'mx: *.example.com', 'max_age: 604800'],
    ['*.example.com'],
  );
  const tlsa = tlsaPolicy('mx.example.com', 'mx.example.com', [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) }]);
  await store.add([
    { day: DAY, policyDomain: 'example.com', policy: sts, count: 120 },
    { day: DAY, policyDomain: 'example.com', policy: tlsa, count: 3 },
    { day: DAY, policyDomain: 'example.com', policy: noPolicyFound('example.com'), count: 9 },
    ...RESULT_TYPES.map((resultType, i) => ({
      day: DAY,
      policyDomain: 'example.com',
      policy: i % 2 ? sts : tlsa,
      failure: {
        resultType,
        sendingMtaIp: '192.0.2.25',
        receivingMxHostname: 'mx.example.com',
        receivingMxHelo: 'mx1.example.com',
        receivingIp: '2001:db8::25',
        failureReasonCode: `code-${i}`,
        additionalInformation: 'https://sender.example/tlsrpt/info',
      },
      count: i + 1,
    })),
  ]);
  return buildReport(await store.counts(DAY, 'example.com'), AUTHOR);
}

test('RPT-6: a report with every policy type, result type and failure field validates, after gzip and back', async () => {
  const report = await fullReport();
  const received = JSON.parse(gunzipSync(await gzipReport(report)).toString('utf8')) as unknown;
  assert.deepEqual(validateTlsReport(received), []);
  assert.equal(report.policies.length, 3);
  const failures = report.policies.flatMap((p) => p['failure-details'] ?? []);
  assert.equal(failures.length, RESULT_TYPES.length);
  const total = report.policies.reduce((sum, p) => sum + p.summary['total-failure-session-count'], 0);
  assert.equal(total, (RESULT_TYPES.length * (RESULT_TYPES.length + 1)) / 2, 'the summaries count every failed session');
});

test('RPT-6: a day of successes only validates (no failure-details)', async () => {
  const store = new MemoryTlsReportStore();
  await store.add([{ day: DAY, policyDomain: 'example.com', policy: noPolicyFound('example.com'), count: 4 }]);
  const report = buildReport(await store.counts(DAY, 'example.com'), AUTHOR);
  assert.deepEqual(validateTlsReport(report), []);
});

test('RPT-6: the report in a mailto: message is the same report, and validates', async () => {
  const report = await fullReport();
  const message = reportMessage({
    from: 'tlsrpt@sender.example',
    to: 'reports@example.com',
    policyDomain: 'example.com',
    submitter: 'sender.example',
    reportId: AUTHOR.reportId,
    fileName: 'sender.example!example.com!1741910400!1741996799!x.json.gz',
    gzipped: await gzipReport(report),
    date: new Date(),
  }).toString('ascii');
  const attachment = /Content-Type: application\/tlsrpt\+gzip[^]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(message)?.[1] ?? '';
  const received = JSON.parse(gunzipSync(Buffer.from(attachment.replace(/\r\n/g, ''), 'base64')).toString('utf8')) as unknown;
  assert.deepEqual(received, report);
  assert.deepEqual(validateTlsReport(received), []);
});

test('RPT-6: the RFC 8460 example report (with errata 6241: mx-host as an array) validates', () => {
  const example = {
    'organization-name': 'Company-X',
    'date-range': { 'start-datetime': '2016-04-01T00:00:00Z', 'end-datetime': '2016-04-01T23:59:59Z' },
    'contact-info': 'sts-reporting@company-x.example',
    'report-id': '5065427c-23d3-47ca-b6e0-946ea0e8c4be',
    policies: [
      {
        policy: {
          'policy-type': 'sts',
          'policy-string': ['version: STSv1', 'mode: testing', 'mx: *.mail.company-y.example', 'max_age: 86400'],
          'policy-domain': 'company-y.example',
          'mx-host': ['*.mail.company-y.example'],
        },
        summary: { 'total-successful-session-count': 5326, 'total-failure-session-count': 303 },
        'failure-details': [
          {
            'result-type': 'certificate-expired',
            'sending-mta-ip': '2001:db8:abcd:0012::1',
            'receiving-mx-hostname': 'mx1.mail.company-y.example',
            'failed-session-count': 100,
          },
          {
            'result-type': 'starttls-not-supported',
            'sending-mta-ip': '2001:db8:abcd:0013::1',
            'receiving-mx-hostname': 'mx2.mail.company-y.example',
            'receiving-ip': '203.0.113.56',
            'failed-session-count': 200,
            'additional-information': 'https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported',
          },
          {
            'result-type': 'validation-failure',
            'sending-mta-ip': '198.51.100.62',
            'receiving-ip': '203.0.113.58',
            'receiving-mx-hostname': 'mx-backup.mail.company-y.example',
            'failed-session-count': 3,
            'failure-reason-code': 'X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED',
          },
        ],
      },
    ],
  };
  // The RFC's own example leaves receiving-ip out of its first entry, though §4.4 does not mark the field
  // optional (only receiving-mx-helo, additional-information and failure-reason-code are): RPT-10 holds
  // our reports to the field list, so the schema refuses exactly that omission and nothing else.
  assert.deepEqual(validateTlsReport(example), ["/policies/0/failure-details/0: must have required property 'receiving-ip'"]);
});

test('RPT-6: the schema refuses what §4.4 does not allow', async () => {
  const valid = await fullReport();
  type Editable = Record<string, unknown> & {
    'date-range': Record<string, unknown>;
    policies: Array<{ policy: Record<string, unknown>; summary: Record<string, unknown> }>;
  };
  const broken = (change: (r: Editable) => void): string[] => {
    const copy = structuredClone(valid) as unknown as Editable;
    change(copy);
    return validateTlsReport(copy);
  };
  /** The MTA-STS policy's entry. */
  const first = (r: Editable): { policy: Record<string, unknown>; summary: Record<string, unknown> } =>
    r.policies.find((p) => p.policy['policy-type'] === 'sts') as { policy: Record<string, unknown>; summary: Record<string, unknown> };
  const refused: Array<[string, (r: Editable) => void]> = [
    ['no report-id', (r) => delete r['report-id']],
    ['policies not an array', (r) => (r.policies = r.policies[0] as unknown as Editable['policies'])],
    ['an unknown policy type', (r) => (first(r).policy['policy-type'] = 'dane')],
    ['an sts policy without its strings', (r) => delete first(r).policy['policy-string']],
    ['a negative count', (r) => (first(r).summary['total-failure-session-count'] = -1)],
    ['a date-time that is not RFC 3339', (r) => (r['date-range']['start-datetime'] = '2025-03-14 00:00')],
    ['mx-host as a string (errata 6241)', (r) => (first(r).policy['mx-host'] = 'mx.example.com')],
    ['an unknown member', (r) => (r['organisation-name'] = 'typo')],
  ];
  for (const [what, change] of refused) assert.notDeepEqual(broken(change), [], what);
});
