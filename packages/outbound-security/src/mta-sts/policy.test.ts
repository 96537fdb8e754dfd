import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { toALabel } from '../domain';
import {
  MAX_AGE_LIMIT,
  MAX_MX_PATTERNS,
  matchesPolicy,
  parsePolicy,
  parseStsTxtRecords,
  policyFilter,
  serialisePolicy,
  type MtaStsPolicy,
  type ParseResult,
} from './policy';

/** The example policy of RFC 8461 §3.2. */
const RFC_EXAMPLE = [
  'version: STSv1',
  'mode: enforce',
  'mx: mail.example.com',
  'mx: *.example.net',
  'mx: backupmx.example.com',
  'max_age: 604800',
];

const RFC_EXAMPLE_POLICY: MtaStsPolicy = {
  version: 'STSv1',
  mode: 'enforce',
  maxAge: 604800,
  mx: [
    { text: 'mail.example.com', wildcard: false, base: 'mail.example.com' },
    { text: '*.example.net', wildcard: true, base: 'example.net' },
    { text: 'backupmx.example.com', wildcard: false, base: 'backupmx.example.com' },
  ],
};

function accepted(text: string): { policy: MtaStsPolicy; warnings: string[] } {
  const result = parsePolicy(text);
  assert.ok(result.ok, `refused ${JSON.stringify(text)}: ${result.ok ? '' : result.error}`);
  return { policy: result.policy, warnings: result.warnings };
}

function refusal(text: string): string {
  const result = parsePolicy(text);
  assert.equal(result.ok, false, `accepted ${JSON.stringify(text)}`);
  return result.ok ? '' : result.error;
}

/** A valid policy with one line replaced (1-based) or appended. */
function withLine(lineNo: number, line: string, base = RFC_EXAMPLE): string {
  const lines = [...base];
  lines.splice(lineNo - 1, 1, line);
  return lines.join('\n');
}

test('STS-3: the RFC 8461 example policy parses, with LF, CRLF or mixed line breaks', () => {
  for (const text of [RFC_EXAMPLE.join('\n'), RFC_EXAMPLE.join('\r\n'), `${RFC_EXAMPLE.join('\r\n')}\r\n`, `${RFC_EXAMPLE.join('\n')}\n`]) {
    assert.deepEqual(accepted(text), { policy: RFC_EXAMPLE_POLICY, warnings: [] });
  }
  const mixed = RFC_EXAMPLE.map((line, i) => line + (i % 2 ? '\r\n' : '\n')).join('');
  assert.deepEqual(accepted(mixed).policy, RFC_EXAMPLE_POLICY);
});

test('STS-3: WSP after the colon and at the end of a line is not part of the value', () => {
  const text = 'version:STSv1 \r\nmode:\t enforce\t\r\nmx:   MX.Example.COM  \r\nmax_age: 86400\t';
  const { policy } = accepted(text);
  assert.equal(policy.mode, 'enforce');
  assert.equal(policy.maxAge, 86400);
  assert.deepEqual(policy.mx, [{ text: 'MX.Example.COM', wildcard: false, base: 'mx.example.com' }]);
});

test('STS-3: blank lines and whitespace around keys and values are tolerated (chasquid accepts them; real policies carry them)', () => {
  const vectors = [
    `\n${RFC_EXAMPLE.join('\n')}`,
    `\r\n\r\n${RFC_EXAMPLE.join('\r\n')}\r\n\r\n`,
    RFC_EXAMPLE.map((line) => `  ${line}`).join('\n'),
    RFC_EXAMPLE.map((line) => `\t${line.replace(':', ' \t: ')}  `).join('\r\n'),
    RFC_EXAMPLE.join('\n \n\t\n\n'),
    `${RFC_EXAMPLE.join('\n')}\n\n`,
  ];
  for (const text of vectors) assert.deepEqual(accepted(text), { policy: RFC_EXAMPLE_POLICY, warnings: [] }, JSON.stringify(text));
  // Line numbers in reasons still count the blank lines.
  assert.equal(refusal(`\n\n${withLine(2, 'mode: report')}`), 'line 4: mode "report" is not enforce, testing or none');
});

test('STS-3: a pattern in dotted-quad form can never match a host name: ignored with a warning', () => {
  const { policy, warnings } = accepted(withLine(3, 'mx: 192.0.2.1'));
  assert.deepEqual(warnings, ['line 3: mx pattern "192.0.2.1" ignored: an IPv4 address is not a host name, so it matches no MX host']);
  assert.equal(matchesPolicy(policy, '192.0.2.1'), false);
  assert.equal(matchesPolicy(policy, 'mx1.example.net'), true);
  // Only dotted quads: still a valid policy (it may hide nothing weaker), and it filters out every MX.
  const only = accepted('version: STSv1\nmode: enforce\nmx: 10.0.0.1\nmax_age: 86400');
  assert.equal(only.warnings.length, 1);
  assert.equal(matchesPolicy(only.policy, 'mx.example.com'), false);
});

test(`OPS-5: a policy with more than ${MAX_MX_PATTERNS} mx patterns is invalid (never partly applied)`, () => {
  const body = (n: number): string =>
    ['version: STSv1', 'mode: enforce', 'max_age: 86400', ...Array.from({ length: n }, (_, i) => `mx: *.p${i}.example.org`)].join('\n');
  assert.equal(accepted(body(MAX_MX_PATTERNS)).policy.mx.length, MAX_MX_PATTERNS);
  assert.equal(refusal(body(MAX_MX_PATTERNS + 1)), `line ${MAX_MX_PATTERNS + 4}: more than ${MAX_MX_PATTERNS} mx patterns (OPS-5)`);
});

test(`OPS-5: parsing and matching are linear: ${MAX_MX_PATTERNS} wildcard patterns against 1,000 hosts, no step over 10 ms`, () => {
  const body = (offset: number): string =>
    [
      'version: STSv1',
      'mode: enforce',
      'max_age: 86400',
      ...Array.from({ length: MAX_MX_PATTERNS }, (_, i) => `mx: *.p${offset + i}.example.org`),
    ].join('\r\n');
  const hosts = Array.from({ length: 1000 }, (_, i) => `mx${i}.other${i}.example.net`);
  // The fastest of several runs after a warm-up (JIT, psl's rule table): the cost of the work itself,
  // not of a GC pause or of other processes on a busy machine.
  const timed = (run: () => void): number => {
    const times = Array.from({ length: 7 }, () => {
      const started = performance.now();
      run();
      return performance.now() - started;
    });
    return Math.min(...times);
  };
  for (let i = 0; i < 10; i++) parsePolicy(body(1_000_000 + i * MAX_MX_PATTERNS));
  let round = 0;
  const parseMs = timed(() => accepted(body(MAX_MX_PATTERNS * round++)));
  const filter = policyFilter('example.org', '1', accepted(body(0)).policy);
  const matchMs = timed(() => assert.equal(hosts.filter((host) => filter.accepts(host)).length, 0));
  assert.equal(filter.accepts(`mx.p${MAX_MX_PATTERNS - 1}.example.org`), true);
  assert.ok(parseMs < 10, `parse took ${parseMs.toFixed(1)} ms`);
  assert.ok(matchMs < 10, `matching 1,000 hosts took ${matchMs.toFixed(1)} ms`);
});

test('STS-3: max_age takes 1–10 digits from 0 to 31557600, leading zeros included', () => {
  assert.equal(accepted(withLine(6, 'max_age: 0')).policy.maxAge, 0);
  assert.equal(accepted(withLine(6, `max_age: ${MAX_AGE_LIMIT}`)).policy.maxAge, MAX_AGE_LIMIT);
  assert.equal(accepted(withLine(6, 'max_age: 0000086400')).policy.maxAge, 86400);
});

test('STS-3: mode none needs no mx; enforce and testing need at least one', () => {
  const none = accepted('version: STSv1\nmode: none\nmax_age: 86400\n').policy;
  assert.deepEqual(none, { version: 'STSv1', mode: 'none', maxAge: 86400, mx: [] });
  for (const mode of ['enforce', 'testing']) {
    assert.match(refusal(`version: STSv1\nmode: ${mode}\nmax_age: 86400\n`), new RegExp(`no mx field: mode ${mode} needs at least one`));
  }
});

test('STS-3: unknown fields with valid names are ignored, whatever their (UTF-8) value', () => {
  const text = [...RFC_EXAMPLE, 'x-report.to: mailto:tls@example.com; a=b', 'ext_2: ünïcödé  with spaces', '9x: 1'].join('\n');
  assert.deepEqual(accepted(text), { policy: RFC_EXAMPLE_POLICY, warnings: [] });
});

test('STS-3: field names are case-sensitive; a case variant is an ignored unknown field with a warning', () => {
  const { policy, warnings } = accepted([...RFC_EXAMPLE, 'Mode: testing', 'MX: other.example'].join('\n'));
  assert.deepEqual(policy, RFC_EXAMPLE_POLICY);
  assert.deepEqual(warnings, [
    'line 7: field "Mode" ignored: field names are case-sensitive (did you mean "mode"?)',
    'line 8: field "MX" ignored: field names are case-sensitive (did you mean "mx"?)',
  ]);
  assert.equal(refusal(withLine(2, 'Mode: enforce')), 'no mode field (line 2 has "Mode"; field names are case-sensitive)');
});

test('STS-3 (RFC 8461 §3.2 over design.md): a repeated version, mode or max_age keeps the first value, with a warning', () => {
  const text = [...RFC_EXAMPLE, 'mode: testing', 'max_age: 1', 'version: STSv1', 'mode: bogus'].join('\r\n');
  const { policy, warnings } = accepted(text);
  assert.deepEqual(policy, RFC_EXAMPLE_POLICY);
  assert.deepEqual(warnings, [
    'line 7: repeated mode "testing" ignored (RFC 8461 §3.2: the first one counts)',
    'line 8: repeated max_age "1" ignored (RFC 8461 §3.2: the first one counts)',
    'line 9: repeated version "STSv1" ignored (RFC 8461 §3.2: the first one counts)',
    'line 10: repeated mode "bogus" ignored (RFC 8461 §3.2: the first one counts)',
  ]);
  // A first value that is invalid is not rescued by a later valid one.
  assert.match(
    refusal(['version: STSv1', 'mode: Enforce', 'mode: enforce', 'mx: a.example', 'max_age: 1'].join('\n')),
    /^line 2: mode "Enforce"/,
  );
});

test('STS-3: repeated mx lines are all kept, in order', () => {
  const { policy } = accepted(withLine(5, 'mx: mail.example.com'));
  assert.deepEqual(
    policy.mx.map((p) => p.text),
    ['mail.example.com', '*.example.net', 'mail.example.com'],
  );
});

test('STS-3: every rejection names what was wrong and on which line', () => {
  const cases: Array<[string, string | RegExp]> = [
    ['', 'empty policy'],
    [withLine(1, 'version: STSv2'), 'line 1: version "STSv2" is not "STSv1"'],
    [withLine(1, 'version: stsv1'), 'line 1: version "stsv1" is not "STSv1"'],
    [withLine(2, 'mode: report'), 'line 2: mode "report" is not enforce, testing or none'],
    [withLine(2, 'mode: Enforce'), 'line 2: mode "Enforce" is not enforce, testing or none'],
    [withLine(2, 'mode: enforce x'), 'line 2: mode "enforce x" is not enforce, testing or none'],
    [withLine(3, 'max_age: 99999999999'), 'line 3: max_age "99999999999" is not 1–10 digits'],
    [withLine(6, 'max_age: 99999999999'), 'line 6: max_age "99999999999" is not 1–10 digits'],
    [withLine(6, 'max_age: -5'), 'line 6: max_age "-5" is not 1–10 digits'],
    [withLine(6, 'max_age: +60'), 'line 6: max_age "+60" is not 1–10 digits'],
    [withLine(6, 'max_age: 1e3'), 'line 6: max_age "1e3" is not 1–10 digits'],
    [withLine(6, 'max_age: 1 000'), 'line 6: max_age "1 000" is not 1–10 digits'],
    [withLine(6, 'max_age: 31557601'), 'line 6: max_age 31557601 is above the limit of 31557600 seconds'],
    [withLine(6, 'max_age: 9999999999'), 'line 6: max_age 9999999999 is above the limit of 31557600 seconds'],
    [withLine(6, 'max_age:'), 'line 6: field max_age has no value'],
    [withLine(6, 'max_age:  \t'), 'line 6: field max_age has no value'],
    [withLine(1, 'mode: testing'), 'no version field'],
    [withLine(2, 'version: STSv1'), 'no mode field'],
    [RFC_EXAMPLE.slice(0, 5).join('\n'), 'no max_age field'],
    [withLine(3, 'mx: bad_host.example'), /^line 3: mx pattern "bad_host.example" is not "host" or "\*.host"/],
    [withLine(3, 'mx: *'), /^line 3: mx pattern "\*" is not/],
    [withLine(3, 'mx: *.'), /^line 3: mx pattern "\*." is not/],
    [withLine(3, 'mx: **.example.com'), /^line 3: mx pattern "\*\*.example.com" is not/],
    [withLine(3, 'mx: mx.*.example.com'), /^line 3: mx pattern "mx.\*.example.com" is not/],
    [withLine(3, 'mx: *example.com'), /^line 3: mx pattern "\*example.com" is not/],
    [withLine(3, 'mx: .example.com'), /^line 3: mx pattern ".example.com" is not/],
    [withLine(3, 'mx: mail.example.com.'), /^line 3: mx pattern "mail.example.com." is not/],
    [withLine(3, 'mx: mail..example.com'), /^line 3: mx pattern "mail..example.com" is not/],
    [withLine(3, 'mx: -mail.example.com'), /^line 3: mx pattern "-mail.example.com" is not/],
    [withLine(3, 'mx: mail-.example.com'), /^line 3: mx pattern "mail-.example.com" is not/],
    [withLine(3, 'mx: mail.bücher.example'), /^line 3: mx pattern "mail.bücher.example" is not .*A-labels for IDNs/],
    [withLine(3, `mx: ${'a'.repeat(64)}.example.com`), /^line 3: mx pattern "a{64}\.example\.com" is not/],
    [withLine(3, `mx: ${'abcdefghi.'.repeat(26)}com`), /^line 3: mx pattern .* is not/],
    [withLine(3, 'mx: xn--zz.example'), /^line 3: mx pattern "xn--zz.example" is not a valid host name/],
    [withLine(3, 'mx: a.example b.example'), /^line 3: mx pattern "a.example b.example" is not/],
    [withLine(3, 'mx:'), 'line 3: field mx has no value'],
    [RFC_EXAMPLE.join('\r'), /^line 1: field version value .* holds a control character/],
    [`${RFC_EXAMPLE.join('\n')}\r`, /^line 6: field max_age value .* holds a control character/],
    [
      withLine(2, 'mo de: enforce'),
      'line 2: field name "mo de" is not 1–32 letters, digits, "_", "-" or "." starting with a letter or digit',
    ],
    [withLine(2, '\u00a0mode: enforce'), /^line 2: field name "\u00a0mode" is not/],
    ['\n \n\t\n', 'no version field'],
    [withLine(2, 'mode enforce'), 'line 2: "mode enforce" is not a "name: value" field'],
    [withLine(7, 'x y: 1'), /^line 7: field name "x y" is not/],
    [withLine(7, '_ext: 1'), /^line 7: field name "_ext" is not/],
    [withLine(7, `${'e'.repeat(33)}: 1`), /^line 7: field name "e{33}" is not/],
    [withLine(7, ': value'), /^line 7: field name "" is not/],
    [withLine(7, 'ext:'), 'line 7: field ext has no value'],
    [withLine(7, 'ext: a\tb'), /^line 7: field ext value "a\?b" holds a control character or tab/],
    [withLine(7, 'ext: a\u0000b'), /^line 7: field ext value "a\?b" holds a control character/],
    [withLine(7, 'ext: \ud800'), /^line 7: field ext value .* holds a control character/],
  ];
  for (const [text, expected] of cases) {
    const error = refusal(text);
    if (typeof expected === 'string') assert.equal(error, expected, JSON.stringify(text));
    else assert.match(error, expected, JSON.stringify(text));
  }
});

test('STS-4: IDN patterns are given as A-labels, matched case-insensitively against U-label or A-label hosts', () => {
  const { policy } = accepted(withLine(3, 'mx: *.XN--BCHER-KVA.example'));
  assert.deepEqual(policy.mx[0], { text: '*.XN--BCHER-KVA.example', wildcard: true, base: 'xn--bcher-kva.example' });
  assert.equal(matchesPolicy(policy, 'mx1.bücher.example'), true);
  assert.equal(matchesPolicy(policy, 'MX1.xn--bcher-kva.EXAMPLE.'), true);
  assert.equal(matchesPolicy(policy, 'mx1.bucher.example'), false);
});

test('STS-4: *. matches exactly one extra label (RFC 8461 §4.1)', () => {
  const policy = accepted(withLine(3, 'mx: *.example.com')).policy;
  assert.equal(matchesPolicy(policy, 'mx.example.com'), true);
  assert.equal(matchesPolicy(policy, 'MX.Example.COM.'), true);
  assert.equal(matchesPolicy(policy, 'a.b.example.com'), false);
  assert.equal(matchesPolicy(policy, 'example.com'), false);
  assert.equal(matchesPolicy(policy, 'mxexample.com'), false);
  assert.equal(matchesPolicy(policy, '.example.com'), false);
  assert.equal(matchesPolicy(policy, 'mx.example.com..'), false);
});

test('STS-4: exact patterns match only their host, case-insensitively, with or without the trailing dot', () => {
  const policy = RFC_EXAMPLE_POLICY;
  assert.equal(matchesPolicy(policy, 'mail.example.com'), true);
  assert.equal(matchesPolicy(policy, 'MAIL.EXAMPLE.COM.'), true);
  assert.equal(matchesPolicy(policy, 'x.mail.example.com'), false);
  assert.equal(matchesPolicy(policy, 'example.com'), false);
  assert.equal(matchesPolicy(policy, 'mx1.example.net'), true);
  assert.equal(matchesPolicy(policy, 'example.net'), false);
  assert.equal(matchesPolicy(policy, '192.0.2.1'), false);
  assert.equal(matchesPolicy(policy, ''), false);
  assert.equal(matchesPolicy({ ...policy, mode: 'none', mx: [] }, 'mail.example.com'), false);
});

test('STS-4: a wildcard over a public suffix is kept but ignored with a warning, and matches nothing', () => {
  const text = [
    'version: STSv1',
    'mode: enforce',
    'mx: *.com',
    'mx: *.CO.UK',
    'mx: *.github.io',
    'mx: *.localhost',
    'mx: mx.example.com',
    'max_age: 86400',
  ].join('\n');
  const { policy, warnings } = accepted(text);
  assert.equal(policy.mx.length, 5);
  assert.deepEqual(warnings, [
    'line 3: mx pattern "*.com" ignored: "com" is a public suffix, so it matches no MX host',
    'line 4: mx pattern "*.CO.UK" ignored: "co.uk" is a public suffix, so it matches no MX host',
    'line 5: mx pattern "*.github.io" ignored: "github.io" is a public suffix, so it matches no MX host',
    'line 6: mx pattern "*.localhost" ignored: "localhost" is a public suffix, so it matches no MX host',
  ]);
  for (const host of ['gmail.com', 'mail.co.uk', 'someone.github.io', 'mx.localhost'])
    assert.equal(matchesPolicy(policy, host), false, host);
  assert.equal(matchesPolicy(policy, 'mx.example.com'), true);
  // An exact pattern naming a suffix is not a wildcard: it matches that one name.
  assert.equal(matchesPolicy(accepted(withLine(3, 'mx: co.uk')).policy, 'co.uk'), true);
  // A policy whose only pattern is ignored is still valid, and filters out every MX.
  const only = accepted('version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 86400').policy;
  assert.equal(matchesPolicy(only, 'mx.example.com'), false);
});

test('STS-4: policyFilter names the domain, policy id and mode, and accepts what the policy matches', () => {
  const filter = policyFilter('example.com', '20240101T000000', RFC_EXAMPLE_POLICY);
  assert.equal(filter.name, 'MTA-STS policy of example.com (id 20240101T000000, mode enforce)');
  assert.equal(filter.accepts('Mail.Example.com.'), true);
  assert.equal(filter.accepts('mx.evil.example'), false);
});

test('STS-3: serialisePolicy writes canonical CRLF text that parses back to the same policy', () => {
  assert.equal(serialisePolicy(RFC_EXAMPLE_POLICY), `${RFC_EXAMPLE.slice(0, 2).join('\r\n')}\r\n${RFC_EXAMPLE.slice(2).join('\r\n')}\r\n`);
  const scrambled = accepted('mx: A.Example\nmax_age: 007\nmode: testing\nversion: STSv1\nmx: *.b.example\n').policy;
  assert.equal(serialisePolicy(scrambled), 'version: STSv1\r\nmode: testing\r\nmx: A.Example\r\nmx: *.b.example\r\nmax_age: 7\r\n');
  assert.deepEqual(accepted(serialisePolicy(scrambled)), { policy: scrambled, warnings: [] });
});

test('STS-1: one v=STSv1 record with a valid id gives the id', () => {
  assert.deepEqual(parseStsTxtRecords(['v=STSv1; id=20160831085700Z;']), { kind: 'record', id: '20160831085700Z' });
  assert.deepEqual(parseStsTxtRecords(['v=STSv1;id=abc']), { kind: 'record', id: 'abc' });
  assert.deepEqual(parseStsTxtRecords(['v=STSv1 ;\tid=abc ; ']), { kind: 'record', id: 'abc' });
  assert.deepEqual(parseStsTxtRecords(['v=STSv1; ext.x-1=va:lue; id=A1']), { kind: 'record', id: 'A1' });
  assert.deepEqual(parseStsTxtRecords([`v=STSv1; id=${'a'.repeat(32)}`]), { kind: 'record', id: 'a'.repeat(32) });
  // RFC 8461 §3.2: of a repeated field only the first counts; later ones need only be valid fields.
  assert.deepEqual(parseStsTxtRecords(['v=STSv1; id=first; id=second']), { kind: 'record', id: 'first' });
  assert.deepEqual(parseStsTxtRecords(['v=STSv1; id=first; id=not-an-id!']), { kind: 'record', id: 'first' });
});

test('STS-1: records not starting with v=STSv1 are discarded before counting', () => {
  const others = ['v=spf1 -all', 'google-site-verification=abc', 'v=STSv10; id=x', 'V=STSv1; id=x', ' v=STSv1; id=x', 'v=stsv1; id=x', ''];
  assert.deepEqual(parseStsTxtRecords([...others, 'v=STSv1; id=ok']), { kind: 'record', id: 'ok' });
  const none = parseStsTxtRecords(others);
  assert.deepEqual(none, { kind: 'none', reason: 'no TXT record starts with "v=STSv1"' });
  assert.deepEqual(parseStsTxtRecords([]), none);
});

test('STS-1: anything but exactly one v=STSv1 record, or one without a valid id, is no record', () => {
  const cases: Array<[string[], string | RegExp]> = [
    [['v=STSv1; id=a', 'v=STSv1; id=b'], '2 TXT records start with "v=STSv1", exactly one is allowed'],
    [['v=STSv1; id=a', 'v=STSv1'], /^2 TXT records/],
    [['v=STSv1; id=a', 'v=STSv1 id=b'], /^2 TXT records/],
    [['v=STSv1'], 'the record has no id field'],
    [['v=STSv1;'], 'the record has no id field'],
    [['v=STSv1; ext=1'], 'the record has no id field'],
    [['v=STSv1 id=abc'], '"v=STSv1" is not followed by ";"'],
    [['v=STSv1; id='], 'id "" is not 1–32 letters and digits'],
    [['v=STSv1; id=has-hyphen'], 'id "has-hyphen" is not 1–32 letters and digits'],
    [['v=STSv1; id=a b'], 'id "a b" is not 1–32 letters and digits'],
    [[`v=STSv1; id=${'a'.repeat(33)}`], /^id "a{33}" is not/],
    [['v=STSv1; id=ü'], 'id "ü" is not 1–32 letters and digits'],
    [['v=STSv1;; id=a'], 'empty field between ";"'],
    [['v=STSv1; id'], 'field "id" is not name=value'],
    [['v=STSv1; ID=abc'], 'the record has no id field'],
    [['v=STSv1; id = abc'], 'field "id = abc" is not name=value'],
    [['v=STSv1; id=a; ext=a=b'], 'field "ext" has an invalid value "a=b"'],
    [['v=STSv1; id=a; ext='], 'field "ext" has an invalid value ""'],
    [['v=STSv1; id=a; _x=1'], 'field "_x=1" is not name=value'],
  ];
  for (const [records, expected] of cases) {
    const result = parseStsTxtRecords(records);
    assert.equal(result.kind, 'none', JSON.stringify(records));
    if (result.kind !== 'none') continue;
    if (typeof expected === 'string') assert.equal(result.reason, expected, JSON.stringify(records));
    else assert.match(result.reason, expected, JSON.stringify(records));
  }
});

// ---------------------------------------------------------------------------
// Property-based tests.

const RUNS = { numRuns: 500 };

/** An LDH label that tr46 accepts as it is (no `xn--` prefix). */
const labelArb = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/).filter((l) => !/^..--/.test(l));
/** A host name; the top-level label starts with a letter, so no host is an IPv4 address. */
const hostArb = fc
  .tuple(fc.array(labelArb, { minLength: 1, maxLength: 3 }), fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/))
  .map(([labels, tld]) => [...labels, tld].join('.'));
const patternArb = fc
  .record({ wildcard: fc.boolean(), host: hostArb })
  .chain(({ wildcard, host }) =>
    fc.mixedCase(fc.constant(`${wildcard ? '*.' : ''}${host}`)).map((text) => ({ text, wildcard, base: host })),
  );
const policyArb: fc.Arbitrary<MtaStsPolicy> = fc.constantFrom('enforce' as const, 'testing' as const, 'none' as const).chain(
  (mode) =>
    fc
      .record({
        version: fc.constant('STSv1' as const),
        mode: fc.constant(mode),
        maxAge: fc.integer({ min: 0, max: MAX_AGE_LIMIT }),
        mx: fc.array(patternArb, { minLength: mode === 'none' ? 0 : 1, maxLength: 5 }),
      })
      .map((policy) => ({ ...policy })), // fc.record objects have no prototype; deepEqual would notice
);

const EXTENSION_LINES = ['foo: bar', 'x-report.to: mailto:a@b.example; c=d', 'ext_1: ünï  cödé', 'Mode: testing', 'MAX_AGE: 5'];

/** A valid policy in a random layout: any field order, WSP, LF or CRLF, extension fields, optional final break. */
const policyTextArb = fc
  .tuple(policyArb, fc.subarray(EXTENSION_LINES))
  .chain(([policy, extensions]) => {
    const fields = [
      `version:STSv1`,
      `mode:${policy.mode}`,
      `max_age:${policy.maxAge}`,
      ...policy.mx.map((p) => `mx:${p.text}`),
      ...extensions,
    ];
    const n = fields.length;
    const wsp = fc.constantFrom('', ' ', '\t', '  ');
    return fc.tuple(
      fc.shuffledSubarray(fields, { minLength: n, maxLength: n }),
      fc.array(fc.tuple(wsp, wsp, fc.constantFrom('\n', '\r\n')), { minLength: n, maxLength: n }),
      fc.boolean(),
    );
  })
  .map(([fields, layout, finalBreak]) =>
    fields
      .map((field, i) => {
        const [after, trailing, term] = layout[i] ?? ['', '', '\n'];
        const colon = field.indexOf(':');
        const line = `${field.slice(0, colon + 1)}${after}${field.slice(colon + 1)}${trailing}`;
        return i < fields.length - 1 || finalBreak ? line + term : line;
      })
      .join(''),
  );

const INTERESTING_CHARS = [
  ' ',
  '\t',
  ':',
  '\r',
  '\n',
  '*',
  '.',
  '-',
  '_',
  'A',
  'x',
  'ü',
  '\u0000',
  '0',
  '9',
  ';',
  '=',
  '\u00a0',
  '\u{1F600}',
  '\ud800',
];
const INTERESTING_LINES = [
  'mx: *.com',
  'mx: ',
  'mx: bücher.example',
  'mx: mx.example.com.',
  'mx: *.*.example',
  'mx: xn--zz.example',
  'mx: xn--bcher-kva.example',
  'mode: none',
  'mode: enforce',
  'mode: Testing',
  'version: STSv1',
  'version: STSv2',
  'max_age: 0',
  'max_age: 31557601',
  '',
  ' ',
  'garbage',
  'foo:bar',
  ':',
  ' mode: none',
  '\t',
  'mode :none',
  'mx: 192.0.2.1',
];

type Mutation =
  | { kind: 'insert'; at: number; line: string; crlf: boolean }
  | { kind: 'delete' | 'duplicate' | 'case'; at: number }
  | { kind: 'flip'; at: number; char: string }
  | { kind: 'huge'; digits: string }
  | { kind: 'swap'; a: number; b: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    line: fc.oneof(fc.constantFrom(...INTERESTING_LINES), fc.string({ maxLength: 20 })),
    crlf: fc.boolean(),
  }),
  fc.record({ kind: fc.constantFrom('delete' as const, 'duplicate' as const, 'case' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), char: fc.constantFrom(...INTERESTING_CHARS) }),
  fc.record({ kind: fc.constant('huge' as const), digits: fc.stringMatching(/^[0-9]{1,30}$/) }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
);

function mutate(text: string, mutation: Mutation): string {
  const lines = text.split(/(?<=\n)/);
  const pick = (n: number): number => (lines.length === 0 ? 0 : n % lines.length);
  switch (mutation.kind) {
    case 'insert':
      lines.splice(pick(mutation.at), 0, mutation.line + (mutation.crlf ? '\r\n' : '\n'));
      return lines.join('');
    case 'delete':
      lines.splice(pick(mutation.at), 1);
      return lines.join('');
    case 'duplicate':
      lines.splice(pick(mutation.at), 0, lines[pick(mutation.at)] ?? '');
      return lines.join('');
    case 'case': {
      const line = lines[pick(mutation.at)] ?? '';
      const colon = line.indexOf(':');
      lines[pick(mutation.at)] = colon < 0 ? line.toUpperCase() : line.slice(0, colon).toUpperCase() + line.slice(colon);
      return lines.join('');
    }
    case 'flip': {
      if (text.length === 0) return mutation.char;
      const at = mutation.at % text.length;
      return text.slice(0, at) + mutation.char + text.slice(at + 1);
    }
    case 'huge':
      return text.replace(/max_age:([ \t]*)[0-9]+/, `max_age:$1${mutation.digits}`);
    case 'swap': {
      const a = lines[pick(mutation.a)] ?? '';
      lines[pick(mutation.a)] = lines[pick(mutation.b)] ?? '';
      lines[pick(mutation.b)] = a;
      return lines.join('');
    }
  }
}

const mutatedPolicyTextArb = fc
  .tuple(policyTextArb, fc.array(mutationArb, { maxLength: 3 }))
  .map(([text, mutations]) => mutations.reduce(mutate, text));

/**
 * An independent reading of the RFC 8461 §3.2 ABNF, line by line with
 * regular expressions: is `text` a valid policy? (For `xn--` labels it asks
 * tr46, the one thing a regular expression cannot check.)
 */
function referenceValid(text: string): boolean {
  const VCHAR = '[\\x21-\\x7e\\u{80}-\\u{d7ff}\\u{e000}-\\u{10ffff}]';
  // Leniency of design.md STS-3: blank lines, and WSP around names and values.
  const FIELD = new RegExp(`^[ \\t]*([A-Za-z0-9][A-Za-z0-9_.-]{0,31})[ \\t]*:[ \\t]*(${VCHAR}(?:(?: |${VCHAR})*${VCHAR})?)[ \\t]*$`, 'u');
  const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
  const body = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  const seen = new Map<string, string>();
  let mxCount = 0;
  for (const line of body.split(/\r?\n/)) {
    if (/^[ \t]*$/.test(line)) continue;
    const m = FIELD.exec(line);
    if (!m) return false;
    const [, name = '', value = ''] = m;
    if (name === 'mx') {
      const host = value.replace(/^\*\./, '');
      const labels = host.split('.');
      if (host.length > 253 || !labels.every((l) => LABEL.test(l) && l.length <= 63)) return false;
      if (labels.some((l) => /^xn--/i.test(l)) && !toALabel(host).ok) return false;
      mxCount++;
    } else if (['version', 'mode', 'max_age'].includes(name) && !seen.has(name)) {
      seen.set(name, value);
      if (name === 'version' && value !== 'STSv1') return false;
      if (name === 'mode' && !/^(enforce|testing|none)$/.test(value)) return false;
      if (name === 'max_age' && !(/^[0-9]{1,10}$/.test(value) && Number(value) <= 31557600)) return false;
    }
  }
  return seen.size === 3 && (mxCount > 0 || seen.get('mode') === 'none') && mxCount <= MAX_MX_PATTERNS;
}

function assertInvariants(result: ParseResult): void {
  if (!result.ok) {
    assert.ok(result.error.length > 0);
    return;
  }
  const { policy } = result;
  assert.equal(policy.version, 'STSv1');
  assert.ok(['enforce', 'testing', 'none'].includes(policy.mode));
  assert.ok(Number.isInteger(policy.maxAge) && policy.maxAge >= 0 && policy.maxAge <= MAX_AGE_LIMIT);
  assert.ok(policy.mx.length > 0 || policy.mode === 'none');
  for (const pattern of policy.mx) {
    assert.equal(pattern.wildcard, pattern.text.startsWith('*.'));
    const host = pattern.wildcard ? pattern.text.slice(2) : pattern.text;
    assert.match(host, /^[A-Za-z0-9.-]+$/);
    assert.deepEqual(toALabel(host), { ok: true, aLabel: pattern.base });
    assert.equal(pattern.base, host.toLowerCase());
  }
}

test('STS-3: arbitrary text never makes parsePolicy throw', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: fc.constantFrom(...INTERESTING_CHARS, 'm', 'x', 'v') })),
      (text) => {
        assertInvariants(parsePolicy(text));
      },
    ),
    RUNS,
  );
});

test('STS-3: mutated policies never throw, and are accepted exactly when the reference ABNF reading accepts them', () => {
  let acceptedCount = 0;
  fc.assert(
    fc.property(mutatedPolicyTextArb, (text) => {
      const result = parsePolicy(text);
      assertInvariants(result);
      assert.equal(result.ok, referenceValid(text), `${JSON.stringify(text)} → ${result.ok ? 'accepted' : result.error}`);
      if (result.ok) acceptedCount++;
    }),
    { numRuns: 1000 },
  );
  // The generator is useful only if both outcomes are common.
  assert.ok(acceptedCount > 100 && acceptedCount < 900, `accepted ${acceptedCount} of 1000`);
});

test('STS-3: every valid policy, in any layout, is accepted', () => {
  fc.assert(
    fc.property(policyTextArb, (text) => {
      assert.ok(parsePolicy(text).ok, JSON.stringify(text));
    }),
    RUNS,
  );
});

test('STS-3: every generated policy round-trips through serialisePolicy', () => {
  fc.assert(
    fc.property(policyArb, (policy) => {
      const result = parsePolicy(serialisePolicy(policy));
      assert.ok(result.ok, JSON.stringify(policy));
      assert.deepEqual(result.policy, policy);
    }),
    RUNS,
  );
});

test('STS-4: *.base matches label.base and never a.label.base or base', () => {
  const wildcardPolicy = (base: string): ParseResult => parsePolicy(`version: STSv1\nmode: enforce\nmx: *.${base}\nmax_age: 1`);
  // Random names under a wildcard public-suffix rule (`*.ck`) are suffixes themselves: tested above.
  const nonSuffixBase = hostArb.filter((base) => {
    const result = wildcardPolicy(base);
    return result.ok && result.warnings.length === 0;
  });
  fc.assert(
    fc.property(nonSuffixBase, labelArb, labelArb, fc.boolean(), (base, label, extra, upper) => {
      const { policy } = accepted(`version: STSv1\nmode: enforce\nmx: *.${base}\nmax_age: 1`);
      const host = `${label}.${base}`;
      assert.equal(matchesPolicy(policy, upper ? `${host.toUpperCase()}.` : host), true);
      assert.equal(matchesPolicy(policy, `${extra}.${host}`), false);
      assert.equal(matchesPolicy(policy, base), false);
    }),
    RUNS,
  );
});

test('STS-1: arbitrary TXT records never throw; an accepted id is 1–32 alphanumerics from the only v=STSv1 record', () => {
  const recordArb = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: fc.constantFrom('v', '=', 'S', 'T', 's', '1', ';', ' ', '\t', 'i', 'd', 'a', '-', '.'), maxLength: 30 }),
    fc.tuple(fc.constantFrom('v=STSv1;', 'v=STSv1 ; ', 'v=STSv1'), fc.string({ maxLength: 40 })).map(([a, b]) => a + b),
    fc.stringMatching(/^[A-Za-z0-9]{1,32}$/).map((id) => `v=STSv1; id=${id}`),
  );
  fc.assert(
    fc.property(fc.array(recordArb, { maxLength: 3 }), (records) => {
      const result = parseStsTxtRecords(records);
      if (result.kind === 'none') return;
      assert.match(result.id, /^[A-Za-z0-9]{1,32}$/);
      const sts = records.filter((r) => /^v=STSv1(?:[;\t ]|$)/.test(r));
      assert.equal(sts.length, 1);
      assert.ok(sts[0]?.includes(`id=${result.id}`));
    }),
    RUNS,
  );
});
