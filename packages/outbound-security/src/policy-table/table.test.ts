import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SecLevel } from '../sec-level';
import { POLICY_TABLE_FILE, readPolicyTable } from './file';
import { parseRuleLine, ruleLabel, ruleText } from './rule';
import { brokenLineReason, formatProblem, parsePolicyTable, type TableProblem } from './table';

const FILE = 'config/outbound_tls_policy';

function rule(line: string) {
  const result = parseRuleLine(line, FILE, 1);
  assert.equal(result.kind, 'rule', JSON.stringify(result));
  return result.kind === 'rule' ? result.rule : (undefined as never);
}

function problem(line: string): string {
  const result = parseRuleLine(line, FILE, 1);
  assert.equal(result.kind, 'problem', `${line}: ${JSON.stringify(result)}`);
  return result.kind === 'problem' ? result.message : '';
}

test('POL-1: a line is a destination, a level (may, encrypt, verify) and options; comments and blank lines are nothing', () => {
  assert.deepEqual(parseRuleLine('   # only a comment', FILE, 1), { kind: 'blank' });
  assert.deepEqual(parseRuleLine('', FILE, 1), { kind: 'blank' });
  const verify = rule('Partner.Example  VERIFY  match=MX1.partner.example,mx2.partner.example exempt=ratchet   # pinned');
  assert.deepEqual(verify.key, { kind: 'domain', domain: 'partner.example' });
  assert.equal(verify.level, 'verify');
  assert.equal(verify.minimum, SecLevel.TLS_SECURE);
  assert.deepEqual(verify.match, ['mx1.partner.example', 'mx2.partner.example']);
  assert.deepEqual(verify.exempt, ['ratchet']);
  assert.equal(ruleText(verify), 'partner.example verify match=mx1.partner.example,mx2.partner.example exempt=ratchet');
  assert.equal(ruleLabel(verify), 'partner.example (config/outbound_tls_policy line 1)');
  assert.equal(rule('a.example encrypt').minimum, SecLevel.TLS_INSECURE);
  assert.equal(rule('a.example may').minimum, SecLevel.PLAIN);
  assert.deepEqual(rule('a.example may exempt=ratchet,mta-sts,dane').exempt, ['ratchet', 'mta-sts', 'dane']);
});

test('POL-1/ST-6: keys are IDNA-normalised: a Unicode domain, its A-label and any case are one key; .parent and relay:<host> forms', () => {
  assert.deepEqual(rule('Bücher.Example verify').key, { kind: 'domain', domain: 'xn--bcher-kva.example' });
  assert.deepEqual(rule('.Bücher.example encrypt').key, { kind: 'subdomains', parent: 'xn--bcher-kva.example' });
  assert.deepEqual(rule('relay:SMTP.Provider.example verify').key, { kind: 'relay', key: 'relay:smtp.provider.example' });
  assert.deepEqual(rule('relay:192.0.2.7 encrypt').key, { kind: 'relay', key: 'relay:[192.0.2.7]' });
  assert.deepEqual(rule('example.com. verify').key, { kind: 'domain', domain: 'example.com' });
  const table = parsePolicyTable('bücher.example verify\nxn--bcher-kva.example encrypt\n', FILE);
  assert.equal(table.rules.length, 1);
  assert.match(formatProblem(table.problems[0] as never), /line 2: xn--bcher-kva\.example: duplicate of line 1/);
});

test('POL-1: bad rules say what is wrong: unknown level, exemption or option, a key that is not a domain, misplaced options', () => {
  assert.match(
    problem('a.example verfy'),
    /^a\.example: expected a level \(may, encrypt or verify\) after the destination, found "verfy"$/,
  );
  assert.match(problem('a.example'), /found nothing/);
  assert.match(problem('a.example may exempt=ratchet,mta_sts'), /unknown exemption "mta_sts" \(known: ratchet, mta-sts, dane\)/);
  assert.match(problem('a.example may exempt='), /exempt= needs/);
  assert.match(
    problem('a.example verify matches=x.example'),
    /unknown option "matches=" \(options: match, exempt, auth_min_level, requiretls\)/,
  );
  assert.match(problem('a.example verify exempt=ratchet exempt=dane'), /exempt= given twice/);
  assert.match(problem('a.example verify ratchet'), /"ratchet" is not option=value/);
  assert.match(problem('a.example encrypt match=mx.a.example'), /match= needs verify/);
  assert.match(problem('a.example verify match=192.0.2.1'), /"192\.0\.2\.1" is not a host name/);
  assert.match(problem('a.example verify auth_min_level=encrypt'), /auth_min_level= belongs on relay rules/);
  assert.match(problem('relay:r.example verify auth_min_level=TLS_SECURE'), /expected may, encrypt or verify/);
  assert.match(problem('exa_mple.com verify'), /"exa_mple\.com" is not a domain/);
  assert.match(problem('a..example verify'), /is not a domain: .*empty label/);
  assert.match(problem('192.0.2.1 verify'), /is an address, not a domain \(a relay by address is relay:192\.0\.2\.1\)/);
  assert.match(problem('*.example.com verify'), /write "\.example\.com"/);
  assert.match(problem('[192.0.2.1] verify'), /address literals are not table keys/);
  assert.match(problem('relay:.isp.example verify'), /a relay rule names one host/);
  assert.match(problem('relay: verify'), /is not relay:<host name or address>/);
});

test('POL-1: risky or useless options are kept and warned about', () => {
  const table = parsePolicyTable('relay:r.example verify exempt=mta-sts auth_min_level=may\n', FILE);
  assert.equal(table.rules.length, 1);
  assert.equal(table.rules[0]?.authMinLevel, 'may');
  assert.deepEqual(
    table.problems.map((p) => [p.severity, p.line]),
    [
      ['warning', 1],
      ['warning', 1],
    ],
  );
  assert.match(formatProblem(table.problems[0] as never), /exempt=mta-sts has no effect on a relay hop.*\(rule in force\)$/);
  assert.match(formatProblem(table.problems[1] as never), /auth_min_level=may lets credentials go out without TLS/);
  assert.equal(table.errors, 0);
});

test('POL-4/DANE: exempt=dane on a relay rule is a warning (DANE covers a domain’s MX hosts, never a relay hop); the rule stays in force', () => {
  const table = parsePolicyTable('relay:smtp.isp.example verify exempt=dane\n.partner.example may exempt=dane\n', 'outbound_tls_policy');
  assert.equal(table.rules.length, 2);
  assert.deepEqual(
    table.problems.map((p) => [p.severity, p.line]),
    [['warning', 1]],
  );
  assert.match(formatProblem(table.problems[0] as never), /exempt=dane has no effect on a relay hop.*\(rule in force\)$/);
});

test('POL-1: a bad line is reported with file and line and left out; the rest of the table stays in force; a duplicate keeps the first', () => {
  const text = [
    '# partners',
    'good.example verify',
    'bad.example verfy',
    '.sub.example encrypt',
    'good.example may exempt=ratchet',
    'relay:r.example encrypt auth_min_level=encrypt',
  ].join('\r\n');
  const table = parsePolicyTable(text, FILE);
  assert.deepEqual(
    table.rules.map((r) => [r.name, r.line]),
    [
      ['good.example', 2],
      ['.sub.example', 4],
      ['relay:r.example', 6],
    ],
  );
  assert.deepEqual(table.problems.map(formatProblem), [
    'config/outbound_tls_policy line 3: bad.example: expected a level (may, encrypt or verify) after the destination, found "verfy" (line not in force; mail to bad.example waits until it is fixed)',
    'config/outbound_tls_policy line 5: good.example: duplicate of line 2, which stays in force (good.example (config/outbound_tls_policy line 2)) (line ignored)',
  ]);
  assert.equal(table.forDomain('good.example')?.level, 'verify');
  assert.equal(table.forDomain('bad.example'), null);
  assert.deepEqual(
    table.ignoredFor('bad.example').map((p) => p.line),
    [3],
  );
});

test('POL-1: a parent-domain rule matches subdomains only (at any depth), the nearest parent wins, an exact rule beats every parent', () => {
  const table = parsePolicyTable(
    ['.example.com encrypt', '.deep.example.com verify', 'exact.example.com may', 'example.com verify'].join('\n'),
    FILE,
  );
  const level = (domain: string): string => table.forDomain(domain)?.name ?? 'none';
  assert.equal(level('a.example.com'), '.example.com');
  assert.equal(level('x.y.example.com'), '.example.com');
  assert.equal(level('a.deep.example.com'), '.deep.example.com');
  assert.equal(level('deep.example.com'), '.example.com', 'deep.example.com is a subdomain of example.com, not of itself');
  assert.equal(level('exact.example.com'), 'exact.example.com');
  assert.equal(level('example.com'), 'example.com');
  assert.equal(level('notexample.com'), 'none');
  assert.equal(level('com'), 'none');
  assert.equal(level('[192.0.2.1]'), 'none');
  const onlyParent = parsePolicyTable('.example.org verify\n', FILE);
  assert.equal(onlyParent.forDomain('example.org'), null, '.example.org does not match example.org itself');
  assert.equal(onlyParent.forDomain('mail.example.org')?.name, '.example.org');
});

test('POL-4: relay rules are looked up by the relay key only, never by a recipient domain', () => {
  const table = parsePolicyTable('relay:smtp.isp.example verify\nsmtp.isp.example encrypt\n', FILE);
  assert.equal(table.forRelay('relay:smtp.isp.example')?.level, 'verify');
  assert.equal(table.forDomain('smtp.isp.example')?.level, 'encrypt');
  assert.equal(table.forRelay('relay:other.example'), null);
});

test('POL-1: the file: none is an empty table, an unreadable file or one that is not UTF-8 throws naming the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-table-'));
  try {
    const configDir = path.join(dir, 'config');
    fs.mkdirSync(configDir);
    const missing = readPolicyTable(configDir);
    assert.equal(missing.exists, false);
    assert.equal(missing.table.rules.length, 0);
    assert.equal(missing.table.file, `config/${POLICY_TABLE_FILE}`);
    fs.writeFileSync(path.join(configDir, POLICY_TABLE_FILE), 'a.example verify\n');
    assert.equal(readPolicyTable(configDir).table.forDomain('a.example')?.level, 'verify');
    fs.writeFileSync(path.join(configDir, POLICY_TABLE_FILE), Buffer.from([0x61, 0x2e, 0x65, 0x78, 0xff, 0x20, 0x76]));
    assert.throws(() => readPolicyTable(configDir), /outbound_tls_policy: not valid UTF-8 text$/);
    fs.rmSync(path.join(configDir, POLICY_TABLE_FILE));
    fs.mkdirSync(path.join(configDir, POLICY_TABLE_FILE));
    assert.throws(() => readPolicyTable(configDir), /outbound_tls_policy: cannot be read: EISDIR$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('POL-5: a line naming a destination that cannot be read makes that destination wait (file and line in the reason); the rest applies', () => {
  const table = parsePolicyTable(
    [
      'good.corp.test verfy', // line 1: a tightening rule with a typo
      '.corp.test encrypt', // line 2: a valid parent rule: it must not take over good.corp.test
      'loose.test may exempt=ratchet,mta-stss', // line 3: an unknown exemption
      'relay:smtp.isp.test verify auth_min_level=encrypted', // line 4
      'ok.test verify', // line 5
      '.broken.test verifyy', // line 6: a broken parent
      'exact.broken.test may', // line 7: an exact rule beats the broken parent
      'good.corp.test verify', // line 8: a duplicate key after a broken line: in force (the first readable one)
    ].join('\n'),
    FILE,
  );
  const broken = (domain: string): string => {
    const problem = table.brokenForDomain(domain);
    return problem ? brokenLineReason(problem) : 'none';
  };
  assert.equal(table.forDomain('good.corp.test')?.line, 8, 'the readable line of good.test is in force');
  assert.equal(broken('good.corp.test'), 'none');
  assert.match(
    broken('loose.test'),
    /^policy table config\/outbound_tls_policy line 3 cannot be read \(loose\.test: exempt=: unknown exemption "mta-stss".*mail to loose\.test waits until the line is fixed \(POL-5\)$/,
  );
  assert.equal(table.forDomain('loose.test'), null);
  assert.match(broken('a.broken.test'), /line 6/);
  assert.equal(table.forDomain('a.broken.test'), null, 'the broken parent shadows .test');
  assert.equal(broken('exact.broken.test'), 'none');
  assert.equal(table.forDomain('exact.broken.test')?.line, 7);
  assert.equal(broken('other.corp.test'), 'none');
  assert.equal(table.forDomain('other.corp.test')?.line, 2);
  assert.match(String(table.brokenForRelay('relay:smtp.isp.test')?.message), /auth_min_level=encrypted/);
  assert.equal(table.brokenForRelay('relay:other.isp.test'), null);
  assert.equal(table.forDomain('ok.test')?.level, 'verify');
});

test('POL-5: a parent rule on a public suffix is refused with an error and governs nothing (no domain under it waits or is exempted)', () => {
  const table = parsePolicyTable(['.com may exempt=ratchet,mta-sts,dane', '.co.uk verify', '.example.com encrypt'].join('\n'), FILE);
  assert.deepEqual(
    table.problems.map((p) => [p.line, p.severity, p.defers ?? false]),
    [
      [1, 'error', false],
      [2, 'error', false],
    ],
  );
  assert.match(formatProblem(table.problems[0] as TableProblem), /com is a public suffix.*\(line ignored\)/);
  assert.equal(table.forDomain('anything.com'), null);
  assert.equal(table.brokenForDomain('anything.com'), null);
  assert.equal(table.forDomain('a.example.com')?.level, 'encrypt');
});

test('RT-4: requiretls=relax on a relay rule is kept (any case) and written back by ruleText; without it a relay rule relaxes nothing', () => {
  const relaxed = rule('relay:internal.isp.example verify requiretls=RELAX');
  assert.equal(relaxed.requireTlsRelax, true);
  assert.equal(ruleText(relaxed), 'relay:internal.isp.example verify requiretls=relax');
  const control = rule('relay:internal.isp.example verify');
  assert.equal(control.requireTlsRelax, undefined);
  assert.equal(ruleText(control), 'relay:internal.isp.example verify');
  const all = rule('relay:[192.0.2.7] encrypt exempt=ratchet auth_min_level=verify requiretls=relax');
  assert.equal(ruleText(all), 'relay:[192.0.2.7] encrypt exempt=ratchet auth_min_level=verify requiretls=relax');
  assert.equal(
    parsePolicyTable('relay:internal.isp.example verify requiretls=relax\n', FILE).forRelay('relay:internal.isp.example')?.requireTlsRelax,
    true,
  );
});

test('RT-4: requiretls= belongs on relay rules only and takes only relax: anything else is a problem that holds the destination back (POL-5)', () => {
  for (const line of ['partner.example verify requiretls=relax', '.partner.example verify requiretls=relax']) {
    assert.match(
      problem(line),
      /requiretls= belongs on relay rules \(relay:<host>\): a recipient's MX hosts must advertise REQUIRETLS \(RT-2\)$/,
    );
  }
  assert.match(
    problem('relay:internal.isp.example verify requiretls=strict'),
    /^relay:internal\.isp\.example: requiretls=strict: expected relax$/,
  );
  assert.match(problem('relay:internal.isp.example verify requiretls='), /requiretls=: expected relax$/);
  assert.match(problem('relay:internal.isp.example verify requiretls=relax requiretls=relax'), /requiretls= given twice/);
  const table = parsePolicyTable('relay:internal.isp.example verify requiretls=yes\npartner.example verify requiretls=relax\n', FILE);
  assert.equal(table.forRelay('relay:internal.isp.example'), null);
  assert.ok(table.brokenForRelay('relay:internal.isp.example'), 'the relay waits until the line is fixed');
  assert.equal(table.forDomain('partner.example'), null);
  assert.ok(table.brokenForDomain('partner.example'));
});
