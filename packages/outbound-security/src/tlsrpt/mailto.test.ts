import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { reportMessage, type ReportMessage } from './mailto';

const GZIPPED = gzipSync(Buffer.from(JSON.stringify({ 'report-id': 'x' }).repeat(40)));
const INPUT: ReportMessage = {
  from: 'tlsrpt@sender.example',
  to: 'reports@example.com',
  policyDomain: 'example.com',
  submitter: 'sender.example',
  reportId: '2025-03-14.0a1b2c3d4e5f.example.com@sender.example',
  fileName: 'sender.example!example.com!1741910400!1741996799!0123abcd.json.gz',
  gzipped: GZIPPED,
  date: new Date(Date.UTC(2025, 2, 15, 2, 30)),
};

/** Header fields of a message part, unfolded, by lowercase name. */
function headers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    out.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return out;
}

function parse(message: Buffer): { head: Map<string, string>; parts: Array<{ head: Map<string, string>; body: string }> } {
  const text = message.toString('ascii');
  const split = text.indexOf('\r\n\r\n');
  const head = headers(text.slice(0, split));
  const boundary = /boundary="([^"]+)"/.exec(head.get('content-type') ?? '')?.[1] as string;
  const sections = text.slice(split + 4).split(`--${boundary}`);
  assert.equal(sections.pop(), '--\r\n', 'the closing boundary ends the message');
  const parts = sections.slice(1).map((section) => {
    const body = section.replace(/^\r\n/, '');
    const end = body.indexOf('\r\n\r\n');
    return { head: headers(body.slice(0, end)), body: body.slice(end + 4) };
  });
  return { head, parts };
}

test('RPT-3: a report message is multipart/report; report-type="tlsrpt" with the RFC 8460 §5.3 headers', () => {
  const { head, parts } = parse(reportMessage(INPUT));
  assert.match(head.get('content-type') ?? '', /^multipart\/report; report-type="tlsrpt"; boundary="/);
  assert.equal(head.get('subject'), `Report Domain: example.com Submitter: sender.example Report-ID: <${INPUT.reportId}>`);
  assert.equal(head.get('tls-report-domain'), 'example.com');
  assert.equal(head.get('tls-report-submitter'), 'sender.example');
  assert.equal(head.get('from'), '<tlsrpt@sender.example>');
  assert.equal(head.get('to'), '<reports@example.com>');
  assert.equal(head.get('mime-version'), '1.0');
  assert.equal(head.get('date'), 'Sat, 15 Mar 2025 02:30:00 +0000');
  assert.match(head.get('message-id') ?? '', /^<[0-9a-f]{16}\.2025-03-14\.0a1b2c3d4e5f\.example\.com@sender\.example>$/);
  assert.equal(parts.length, 2);
  assert.match(parts[0]?.head.get('content-type') ?? '', /^text\/plain/);
  assert.match(parts[0]?.body ?? '', /aggregate TLS report from sender\.example/);
});

test('RPT-3: the report is attached as application/tlsrpt+gzip under the RFC file name', () => {
  const { parts } = parse(reportMessage(INPUT));
  const attachment = parts[1];
  assert.match(attachment?.head.get('content-type') ?? '', /^application\/tlsrpt\+gzip/);
  assert.equal(attachment?.head.get('content-transfer-encoding'), 'base64');
  assert.equal(attachment?.head.get('content-disposition'), `attachment; filename="${INPUT.fileName}"`);
  const lines = (attachment?.body ?? '').split('\r\n').filter((l) => l !== '');
  assert.ok(lines.every((l) => l.length <= 76));
  assert.deepEqual(gunzipSync(Buffer.from(lines.join(''), 'base64')), gunzipSync(GZIPPED));
});

test('RPT-4: report messages carry TLS-Required: No and Auto-Submitted', () => {
  const { head } = parse(reportMessage(INPUT));
  assert.equal(head.get('tls-required'), 'No');
  assert.equal(head.get('auto-submitted'), 'auto-generated');
});

test('RPT-3: lines end in CRLF; a long subject is folded before Submitter: and Report-ID:', () => {
  const long = { ...INPUT, policyDomain: `${'a'.repeat(40)}.example.com` };
  const text = reportMessage(long, { boundary: 'b', messageId: 'm@x' }).toString('ascii');
  assert.doesNotMatch(text.replace(/\r\n/g, ''), /[\r\n]/);
  assert.match(text, /\r\nSubject: Report Domain: a+\.example\.com\r\n Submitter: sender\.example\r\n Report-ID: <[^>]+>\r\n/);
  const short = reportMessage({ ...INPUT, policyDomain: 'e.com', submitter: 's.example', reportId: 'r1@s.example' }).toString('ascii');
  assert.match(short, /\r\nSubject: Report Domain: e\.com Submitter: s\.example Report-ID: <r1@s\.example>\r\n/);
});

test('RPT-3: header values that are not printable ASCII are refused', () => {
  assert.throws(() => reportMessage({ ...INPUT, to: 'a b@example.com' }), /not printable ASCII/);
  assert.throws(() => reportMessage({ ...INPUT, reportId: 'a>b' }), /cannot be sent/);
});
