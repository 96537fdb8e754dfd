import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { noPolicyFound, reportedPolicy, type FailureDetails } from './record';
import { MAX_FAILURE_DETAILS, buildReport, dayRange, gzipReport, hasFailures, reportFileName, sessionTotals } from './report';
import type { DomainCounts } from './store';

const STS = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: testing', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);
const AUTHOR = { organization: 'Example Sender', contact: 'tlsrpt@sender.example', reportId: '2025-03-14.abc.example.com@sender.example' };
const mismatch: FailureDetails = {
  resultType: 'certificate-host-mismatch',
  receivingMxHostname: 'mx.example.com',
  receivingIp: '192.0.2.1',
};

function counts(): DomainCounts {
  return {
    day: '2025-03-14',
    policyDomain: 'example.com',
    problems: [],
    policies: [
      {
        policy: STS,
        successes: 7,
        failures: [
          { failure: { resultType: 'starttls-not-supported' }, count: 1 },
          { failure: mismatch, count: 3 },
        ],
      },
      { policy: noPolicyFound('example.com'), successes: 2, failures: [] },
    ],
  };
}

test('RPT-3: the report carries the RFC 8460 §4.4 fields for the whole UTC day', () => {
  const report = buildReport(counts(), AUTHOR);
  assert.equal(report['organization-name'], 'Example Sender');
  assert.deepEqual(report['date-range'], { 'start-datetime': '2025-03-14T00:00:00Z', 'end-datetime': '2025-03-14T23:59:59Z' });
  assert.equal(report['contact-info'], 'tlsrpt@sender.example');
  assert.equal(report['report-id'], AUTHOR.reportId);
  assert.equal(report.policies.length, 2);
  const [sts, none] = report.policies;
  assert.deepEqual(sts?.policy, {
    'policy-type': 'sts',
    'policy-string': ['version: STSv1', 'mode: testing', 'mx: mx.example.com', 'max_age: 86400'],
    'policy-domain': 'example.com',
    'mx-host': ['mx.example.com'],
  });
  assert.deepEqual(sts?.summary, { 'total-successful-session-count': 7, 'total-failure-session-count': 4 });
  assert.deepEqual(sts?.['failure-details'], [
    {
      'result-type': 'certificate-host-mismatch',
      'receiving-mx-hostname': 'mx.example.com',
      'receiving-ip': '192.0.2.1',
      'failed-session-count': 3,
    },
    { 'result-type': 'starttls-not-supported', 'failed-session-count': 1 },
  ]);
  assert.deepEqual(
    none?.policy,
    { 'policy-type': 'no-policy-found', 'policy-domain': 'example.com' },
    'no strings or mx-host without a policy',
  );
  assert.equal(none?.['failure-details'], undefined);
  assert.equal(hasFailures(counts()), true);
  assert.deepEqual(sessionTotals(counts()), { successes: 9, failures: 4 });
});

test('OPS-5: failure details are capped per policy, the summary still counts them all', () => {
  const many = Array.from({ length: MAX_FAILURE_DETAILS + 5 }, (_, i) => ({
    failure: { resultType: 'validation-failure' as const, receivingIp: `192.0.2.${i % 250}`, failureReasonCode: `code ${i}` },
    count: i + 1,
  }));
  const report = buildReport(
    { day: '2025-03-14', policyDomain: 'example.com', problems: [], policies: [{ policy: STS, successes: 0, failures: many }] },
    AUTHOR,
  );
  const policy = report.policies[0];
  assert.equal(policy?.['failure-details']?.length, MAX_FAILURE_DETAILS);
  assert.equal(policy?.['failure-details']?.[0]?.['failed-session-count'], MAX_FAILURE_DETAILS + 5, 'the most frequent first');
  assert.equal(
    policy?.summary['total-failure-session-count'],
    many.reduce((sum, f) => sum + f.count, 0),
  );
});

test('RPT-3: gzip round trip', async () => {
  const report = buildReport(counts(), AUTHOR);
  const gzipped = await gzipReport(report);
  assert.deepEqual(JSON.parse(gunzipSync(gzipped).toString('utf8')), report);
});

test('RPT-3: the RFC 8460 §5.3 file name', () => {
  const { begin, end } = dayRange('2025-03-14');
  assert.equal(begin, Date.UTC(2025, 2, 14) / 1000);
  assert.equal(end - begin, 86_399);
  assert.equal(
    reportFileName('sender.example', 'example.com', '2025-03-14', 'a1-b2!c3'),
    `sender.example!example.com!${begin}!${end}!a1b2c3.json.gz`,
  );
  assert.equal(reportFileName('sender.example', 'example.com', '2025-03-14'), `sender.example!example.com!${begin}!${end}.json.gz`);
});
