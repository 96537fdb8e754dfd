import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_REPORT_URIS, parseTlsRptRecords, type ReportingPolicy } from './txt';

function uris(policy: ReportingPolicy): string[] {
  assert.equal(policy.kind, 'record', JSON.stringify(policy));
  return (policy as Extract<ReportingPolicy, { kind: 'record' }>).uris.map((u) =>
    u.kind === 'mailto' ? `mailto ${u.address}` : `https ${u.url.href}`,
  );
}

function reason(policy: ReportingPolicy): string {
  assert.equal(policy.kind, 'none', JSON.stringify(policy));
  return (policy as Extract<ReportingPolicy, { kind: 'none' }>).reason;
}

test('RPT-3: the RFC 8460 §3 examples', () => {
  assert.deepEqual(uris(parseTlsRptRecords(['v=TLSRPTv1;rua=mailto:reports@example.com'])), ['mailto reports@example.com']);
  assert.deepEqual(uris(parseTlsRptRecords(['v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt'])), [
    'https https://reporting.example.com/v1/tlsrpt',
  ]);
});

test('RPT-3: several URIs, WSP around "," and ";", a final ";"', () => {
  const policy = parseTlsRptRecords(['v=TLSRPTv1 ; rua=mailto:a@example.com , https://r.example.net/x?y=1 ;']);
  assert.deepEqual(uris(policy), ['mailto a@example.com', 'https https://r.example.net/x?y=1']);
});

test('RPT-3: records not starting with v=TLSRPTv1 are discarded; exactly one must remain', () => {
  assert.deepEqual(uris(parseTlsRptRecords(['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:a@example.com'])), ['mailto a@example.com']);
  assert.match(reason(parseTlsRptRecords([])), /no TXT record/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv10; rua=mailto:a@example.com'])), /no TXT record/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@example.com', 'v=TLSRPTv1; rua=mailto:b@example.com'])), /exactly one/);
  assert.match(reason(parseTlsRptRecords(['v=tlsrptv1; rua=mailto:a@example.com'])), /no TXT record/, 'the version is case-sensitive');
});

test('RPT-3: unknown fields are ignored; a field breaking the grammar invalidates the record', () => {
  assert.deepEqual(uris(parseTlsRptRecords(['v=TLSRPTv1; ext.x=some-value; rua=mailto:a@example.com'])), ['mailto a@example.com']);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; x=a=b; rua=mailto:a@example.com'])), /invalid value/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@example.com; novalue'])), /not name=value/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1;; rua=mailto:a@example.com'])), /empty field/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1 rua=mailto:a@example.com'])), /not followed by ";"/);
});

test('RPT-3: rua is required and case-sensitive; a second rua field is ignored', () => {
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1;'])), /no rua/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; RUA=mailto:a@example.com'])), /no rua/);
  const twice = parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com']);
  assert.deepEqual(uris(twice), ['mailto a@example.com']);
  assert.equal(twice.kind === 'record' && twice.ignored.some((i) => i.includes('second rua')), true);
});

test('RPT-3: only mailto: and https: URIs are used; others are ignored with a reason', () => {
  const policy = parseTlsRptRecords(['v=TLSRPTv1; rua=http://r.example.com/,ftp://x.example.com/,mailto:a@example.com']);
  assert.deepEqual(uris(policy), ['mailto a@example.com']);
  assert.equal(policy.kind === 'record' && policy.ignored.filter((i) => /only mailto: and https:/.test(i)).length, 2);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=http://r.example.com/'])), /no usable report URI.*only mailto/);
});

test('RPT-3: "!" and ";" must be percent-encoded in URIs; percent-encoded addresses are decoded', () => {
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a!b@example.com'])), /must be percent-encoded/);
  assert.deepEqual(uris(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:tls%2Breports@EXAMPLE.com'])), ['mailto tls+reports@example.com']);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a%2Cb@example.com%ZZ'])), /not a URI/);
});

test('RPT-3: mailto needs one plain address; https needs a host and no credentials', () => {
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:nobody'])), /not one mail address/);
  assert.match(reason(parseTlsRptRecords(['v=TLSRPTv1; rua=https://user:pw@r.example.com/'])), /credentials/);
  assert.deepEqual(uris(parseTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@b%C3%BCcher.example?subject=x'])), [
    'mailto a@xn--bcher-kva.example',
  ]);
});

test('OPS-5: at most MAX_REPORT_URIS report URIs are used; duplicates once', () => {
  const list = Array.from({ length: MAX_REPORT_URIS + 3 }, (_, i) => `mailto:r${i}@example.com`);
  const policy = parseTlsRptRecords([`v=TLSRPTv1; rua=mailto:r0@example.com,${list.join(',')}`]);
  assert.equal(uris(policy).length, MAX_REPORT_URIS);
  assert.equal(policy.kind === 'record' && policy.ignored.length, 1, 'the duplicate');
  assert.equal(policy.kind === 'record' && policy.overLimit.length, 3);
  const two = parseTlsRptRecords([`v=TLSRPTv1; rua=${list.join(',')}`], 2);
  assert.deepEqual(uris(two), ['mailto r0@example.com', 'mailto r1@example.com'], 'the first ones, in the record order');
  assert.equal(two.kind === 'record' && two.overLimit.length, MAX_REPORT_URIS + 1);
});
