import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { DnsAnswer } from '../mx/dns-client';
import { deliverDomain, previewReport, type DeliveryDeps } from './deliver';
import { DEFAULT_REPORT_LIMITS, LeftOutTally, type ReportLimits } from './limits';
import { MemoryTlsReportStore } from './memory-store';
import { noPolicyFound, reportedPolicy } from './record';
import type { TlsReport } from './report';
import { DEFAULT_SCHEDULE } from './schedule';
import { TlsReportScheduler } from './scheduler';
import type { TlsReportStore } from './store';

const HOUR = 3_600_000;
const DAY = '2025-03-14';
const DAY_END = Date.UTC(2025, 2, 15);
const STS = reportedPolicy(
  'sts',
  'example.com',
  ['version: STSv1', 'mode: testing', 'mx: mx.example.com', 'max_age: 86400'],
  ['mx.example.com'],
);
const RECORD = 'v=TLSRPTv1; rua=mailto:reports@example.com,https://reports.example.com/tlsrpt';

interface Harness {
  deps: DeliveryDeps;
  clock: { now: number };
  store: TlsReportStore;
  txt: Map<string, DnsAnswer<string>>;
  mails: Array<{ from: string; to: string; message: Buffer }>;
  posts: Array<{ url: string; body: Buffer }>;
  postStatus: { ok: boolean };
  logs: string[];
}

function harness(
  options: { store?: TlsReportStore; holder?: string; clock?: { now: number }; sendDaysWithoutFailures?: boolean } = {},
): Harness {
  const clock = options.clock ?? { now: DAY_END + 1 };
  const store = options.store ?? new MemoryTlsReportStore(() => clock.now);
  const txt = new Map<string, DnsAnswer<string>>([['_smtp._tls.example.com', { kind: 'answer', records: [RECORD] }]]);
  const h: Harness = {
    deps: undefined as unknown as DeliveryDeps,
    clock,
    store,
    txt,
    mails: [],
    posts: [],
    postStatus: { ok: true },
    logs: [],
  };
  h.deps = {
    store,
    txt: async (name) => txt.get(name) ?? { kind: 'nxdomain' },
    queueMail: async (from, to, message) => {
      h.mails.push({ from, to, message });
    },
    post: async (url, body) => {
      h.posts.push({ url: url.href, body });
      return h.postStatus.ok ? { ok: true, status: 202 } : { ok: false, error: `${url.href}: HTTP status 503` };
    },
    identity: {
      organization: 'Sender Org',
      contact: 'tlsrpt@sender.example',
      sender: 'tlsrpt@sender.example',
      submitter: 'sender.example',
    },
    schedule: { ...DEFAULT_SCHEDULE, sendDaysWithoutFailures: options.sendDaysWithoutFailures ?? true },
    holder: options.holder ?? 'p1',
    lockTtlMs: 10 * 60_000,
    now: () => clock.now,
    random: () => 0.5,
    log: (level, message) => h.logs.push(`${level} ${message}`),
  };
  return h;
}

async function countSessions(store: TlsReportStore, failures = 1, day = DAY): Promise<void> {
  await store.add([
    { day, policyDomain: 'example.com', policy: STS, count: 5 },
    ...(failures > 0
      ? [{ day, policyDomain: 'example.com', policy: STS, failure: { resultType: 'starttls-not-supported' as const }, count: failures }]
      : []),
    { day, policyDomain: 'example.com', policy: noPolicyFound('example.com'), count: 2 },
  ]);
}

const DUE = DAY_END + DEFAULT_SCHEDULE.settleMs + DEFAULT_SCHEDULE.delayWindowMs / 2;

test('RPT-3: a day is reported after its random delay, to every report URI, once', async () => {
  const h = harness();
  await countSessions(h.store);
  assert.deepEqual(await deliverDomain(h.deps, DAY, 'example.com'), { kind: 'waiting', until: DUE });
  assert.equal(h.mails.length + h.posts.length, 0);
  h.clock.now = DUE;
  const outcome = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(outcome.kind, 'attempted');
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished?.outcome, 'sent');
  assert.equal(h.mails.length, 1);
  assert.deepEqual([h.mails[0]?.from, h.mails[0]?.to], ['tlsrpt@sender.example', 'reports@example.com']);
  assert.equal(h.posts.length, 1);
  const report = JSON.parse(gunzipSync(h.posts[0]?.body as Buffer).toString('utf8')) as TlsReport;
  assert.equal(report['organization-name'], 'Sender Org');
  assert.deepEqual(
    report.policies.map((p) => [
      p.policy['policy-type'],
      p.summary['total-successful-session-count'],
      p.summary['total-failure-session-count'],
    ]),
    [
      ['no-policy-found', 2, 0],
      ['sts', 5, 1],
    ],
  );
  const message = (h.mails[0]?.message.toString('ascii') ?? '').replace(/\r\n /g, ' ');
  assert.match(message, new RegExp(`Report-ID: <${report['report-id'].replace(/\./g, '\\.')}>`), 'the mail and the POST carry one report');
  h.clock.now += 10 * HOUR;
  assert.equal((await deliverDomain(h.deps, DAY, 'example.com')).kind, 'finished');
  assert.equal(h.mails.length + h.posts.length, 2, 'never sent twice');
});

test('RPT-3: two processes sharing the store: one sends, the other finds it locked, then sent', async () => {
  const clock = { now: DUE };
  const store = new MemoryTlsReportStore(() => clock.now);
  const one = harness({ store, clock, holder: 'worker-1' });
  const two = harness({ store, clock, holder: 'worker-2' });
  await countSessions(store);
  const [a, b] = await Promise.all([new TlsReportScheduler(one.deps).pass(), new TlsReportScheduler(two.deps).pass()]);
  const kinds = [...a.outcomes, ...b.outcomes].map((o) => o.outcome.kind).sort();
  assert.deepEqual(kinds, ['attempted', 'locked']);
  assert.equal(one.mails.length + two.mails.length, 1);
  assert.equal(one.posts.length + two.posts.length, 1);
  const again = await new TlsReportScheduler(two.deps).pass();
  assert.deepEqual(
    again.outcomes.map((o) => o.outcome.kind),
    ['finished'],
  );
});

test('RPT-3, RPT-4: a failing report URI is retried alone, with the same report id, until it takes the report', async () => {
  const h = harness({ clock: { now: DUE } });
  await countSessions(h.store);
  h.postStatus.ok = false;
  const first = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(first.kind === 'attempted' && first.state.finished, undefined);
  assert.equal(h.mails.length, 1, 'the mailto: URI has its report');
  const retryAt = first.kind === 'attempted' ? first.state.nextAttemptAt : 0;
  assert.ok(retryAt > DUE);
  h.clock.now = retryAt - 1;
  assert.equal((await deliverDomain(h.deps, DAY, 'example.com')).kind, 'waiting');
  h.clock.now = retryAt;
  h.postStatus.ok = true;
  const second = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(second.kind === 'attempted' && second.state.finished?.outcome, 'sent');
  assert.equal(h.mails.length, 1, 'the mail is not sent again');
  assert.equal(h.posts.length, 2);
  const ids = h.posts.map((p) => (JSON.parse(gunzipSync(p.body).toString('utf8')) as TlsReport)['report-id']);
  assert.equal(ids[0], ids[1]);
  assert.ok(h.logs.some((l) => l.startsWith('warn') && l.includes('HTTP status 503')));
});

test('RPT-3: no valid _smtp._tls record → no report for that domain that day', async () => {
  const h = harness({ clock: { now: DUE } });
  await countSessions(h.store);
  h.txt.set('_smtp._tls.example.com', { kind: 'answer', records: ['v=TLSRPTv1; rua=http://insecure.example.com/'] });
  const outcome = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished?.outcome, 'no-record');
  h.txt.delete('_smtp._tls.example.com');
  const other = harness({ clock: { now: DUE } });
  await countSessions(other.store);
  other.txt.clear();
  const none = await deliverDomain(other.deps, DAY, 'example.com');
  assert.match((none.kind === 'attempted' && none.state.finished?.reason) || '', /NXDOMAIN/);
  assert.equal(h.mails.length + h.posts.length + other.mails.length + other.posts.length, 0);
});

test('RPT-3: a failed TXT lookup is retried later', async () => {
  const h = harness({ clock: { now: DUE } });
  await countSessions(h.store);
  h.txt.set('_smtp._tls.example.com', { kind: 'failure', code: 'ESERVFAIL', message: 'SERVFAIL' });
  const outcome = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished, undefined);
  h.txt.set('_smtp._tls.example.com', { kind: 'answer', records: [RECORD] });
  h.clock.now = outcome.kind === 'attempted' ? outcome.state.nextAttemptAt : 0;
  const later = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(later.kind === 'attempted' && later.state.finished?.outcome, 'sent');
});

test('RPT-3: days without failures are not sent when send_days_without_failures is off', async () => {
  const quiet = harness({ clock: { now: DUE }, sendDaysWithoutFailures: false });
  await countSessions(quiet.store, 0);
  const outcome = await deliverDomain(quiet.deps, DAY, 'example.com');
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished?.outcome, 'not-sent');
  assert.equal(quiet.mails.length + quiet.posts.length, 0);
  const failing = harness({ clock: { now: DUE }, sendDaysWithoutFailures: false });
  await countSessions(failing.store, 1);
  await deliverDomain(failing.deps, DAY, 'example.com');
  assert.equal(failing.mails.length, 1);
});

test('RPT-5: sending the current day now leaves the whole day to be reported after it', async () => {
  const h = harness({ clock: { now: DAY_END - HOUR } });
  await countSessions(h.store);
  const scheduler = new TlsReportScheduler(h.deps);
  const now = await scheduler.sendNow(DAY);
  assert.equal(now.outcomes[0]?.outcome.kind, 'attempted');
  assert.equal(h.mails.length, 1);
  assert.equal(await h.store.delivery(DAY, 'example.com'), null, 'the stored delivery state is untouched');
  await countSessions(h.store);
  h.clock.now = DUE;
  await scheduler.pass();
  assert.equal(h.mails.length, 2, 'the report of the whole day still goes out');
  const reports = h.posts.map((p) => JSON.parse(gunzipSync(p.body).toString('utf8')) as TlsReport);
  assert.notEqual(reports[0]?.['report-id'], reports[1]?.['report-id']);
  assert.equal(reports[1]?.policies[1]?.summary['total-successful-session-count'], 10);
});

test('RPT-5: the preview shows what would be reported without sending or planning', async () => {
  const h = harness({ clock: { now: DUE } });
  await countSessions(h.store);
  const preview = await previewReport(h.store, h.deps.identity, DAY, 'example.com');
  assert.equal(preview.report.policies.length, 2);
  assert.equal(preview.state, null);
  assert.equal(await h.store.delivery(DAY, 'example.com'), null);
});

test('RPT-3: the scheduler does not ask about a waiting domain again before its due time', async () => {
  const h = harness();
  await countSessions(h.store);
  let reads = 0;
  const delivery = h.store.delivery.bind(h.store);
  h.store.delivery = (day, domain) => {
    reads++;
    return delivery(day, domain);
  };
  const scheduler = new TlsReportScheduler(h.deps);
  await scheduler.pass();
  const afterFirst = reads;
  await scheduler.pass();
  assert.equal(reads, afterFirst, 'no store read for a domain still waiting');
  h.clock.now = DUE;
  await scheduler.pass();
  assert.equal(h.mails.length, 1);
});

/** A harness with `limits` over the defaults and a tally of what they leave out. */
function limited(limits: Partial<ReportLimits>): Harness & { leftOut: LeftOutTally; leftOutLogs: string[] } {
  const h = harness();
  const leftOutLogs: string[] = [];
  const leftOut = new LeftOutTally((message) => leftOutLogs.push(message));
  h.deps = { ...h.deps, limits: { ...DEFAULT_REPORT_LIMITS, ...limits }, leftOut };
  h.clock.now = DUE;
  return { ...h, leftOut, leftOutLogs };
}

const tlsaOf = (n: number): ReturnType<typeof reportedPolicy> =>
  reportedPolicy('tlsa', `mx${n}.example.com`, [`3 1 1 ${String(n).padStart(64, '0')}`], [`mx${n}.example.com`]);

test('RPT-8: at most max_policies_per_report policies are reported, the busiest kept; the rest are logged and counted', async () => {
  const h = limited({ maxPoliciesPerReport: 2 });
  await h.store.add(
    [1, 2, 3, 4, 5].map((n) => ({
      day: DAY,
      policyDomain: 'example.com',
      policy: tlsaOf(n),
      failure: { resultType: 'validation-failure' as const },
      count: n,
    })),
  );
  const outcome = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished?.outcome, 'sent');
  const report = JSON.parse(gunzipSync(h.posts[0]?.body as Buffer).toString('utf8')) as TlsReport;
  assert.deepEqual(
    report.policies.map((p) => p.policy['policy-domain']),
    ['mx5.example.com', 'mx4.example.com'],
  );
  assert.equal(h.leftOut.totals().policies, 3);
  assert.equal(h.leftOutLogs.length, 1, 'one line per report');
  assert.match(h.leftOutLogs[0] as string, /example\.com \(2025-03-14\).*3 of 5 policies \(6 sessions\).*max_policies_per_report=2/);
});

test('RPT-8: a report over max_report_bytes (gzip) goes neither by mail nor by https; logged and counted', async () => {
  const h = limited({ maxReportBytes: 1024 });
  await h.store.add(
    Array.from({ length: 200 }, (_, n) => ({
      day: DAY,
      policyDomain: 'example.com',
      policy: STS,
      failure: { resultType: 'validation-failure' as const, receivingIp: `192.0.2.${n}`, failureReasonCode: `reason-${n * 7919}` },
      count: 1,
    })),
  );
  const outcome = await deliverDomain(h.deps, DAY, 'example.com');
  assert.equal(h.mails.length + h.posts.length, 0);
  assert.equal(outcome.kind === 'attempted' && outcome.state.finished?.outcome, 'not-sent');
  assert.equal(h.leftOut.totals().oversize_reports, 1);
  assert.match(h.leftOutLogs[0] as string, /example\.com \(2025-03-14\).*bytes.*over max_report_bytes=1024/);
});

test('RPT-8: only max_report_addresses report addresses of a record are used; the rest are logged and counted', async () => {
  const h = limited({ maxReportAddresses: 2 });
  h.txt.set('_smtp._tls.example.com', {
    kind: 'answer',
    records: ['v=TLSRPTv1; rua=mailto:a@example.com,https://reports.example.com/a,mailto:b@example.com,mailto:c@example.com'],
  });
  await countSessions(h.store);
  await deliverDomain(h.deps, DAY, 'example.com');
  assert.deepEqual(
    h.mails.map((m) => m.to),
    ['a@example.com'],
  );
  assert.deepEqual(
    h.posts.map((p) => p.url),
    ['https://reports.example.com/a'],
  );
  assert.equal(h.leftOut.totals().report_addresses, 2);
  assert.equal(h.leftOutLogs.length, 1);
  assert.match(h.leftOutLogs[0] as string, /example\.com \(2025-03-14\).*2 report addresses.*max_report_addresses=2/);
});

test('RPT-8: at most max_domains_reported_per_day Policy Domains get a report a day (per process); the rest are logged and counted', async () => {
  const h = limited({ maxDomainsReportedPerDay: 2 });
  const domains = ['a.wild.example', 'b.wild.example', 'c.wild.example', 'd.wild.example'];
  for (const domain of domains) {
    h.txt.set(`_smtp._tls.${domain}`, { kind: 'answer', records: [`v=TLSRPTv1; rua=mailto:tlsrpt@${domain}`] });
    await h.store.add([{ day: DAY, policyDomain: domain, policy: noPolicyFound(domain), count: 1 }]);
  }
  const scheduler = new TlsReportScheduler(h.deps, { concurrency: 1 });
  h.clock.now = DAY_END + DEFAULT_SCHEDULE.settleMs + DEFAULT_SCHEDULE.delayWindowMs;
  await scheduler.pass();
  assert.deepEqual(
    h.mails.map((m) => m.to),
    ['tlsrpt@a.wild.example', 'tlsrpt@b.wild.example'],
  );
  const c = await h.store.delivery(DAY, 'c.wild.example');
  assert.equal(c?.finished?.outcome, 'not-sent');
  assert.equal(h.leftOut.totals().domains_reported, 2);
  assert.equal(h.leftOutLogs.length, 1, 'one line for the day');
  assert.match(h.leftOutLogs[0] as string, /2025-03-14.*max_domains_reported_per_day=2/);
});
