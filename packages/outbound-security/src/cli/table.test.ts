/**
 * `haraka-outbound table list` and `explain relay:<host>` (POL-3), run as real
 * processes against a temporary Haraka directory. `explain DOMAIN`, which
 * looks up MXs and MTA-STS, is proved end to end in test/e2e/policy-table.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openRatchetStore } from '../state/open';
import { SecLevel } from '../sec-level';
import { parsePolicyTable } from '../policy-table/table';
import { EXIT, parseArgs } from './cli';
import { ignoredLines } from './explain';

const CLI = path.join(__dirname, 'cli.js');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

test('POL-3: parseArgs knows table list [--json] and explain DOMAIN|relay:<host>', () => {
  assert.deepEqual(parseArgs(['table', 'list', '--json']), {
    ok: true,
    configDir: './config',
    command: { kind: 'table-list', json: true },
  });
  assert.deepEqual(parseArgs(['explain', 'Bücher.example']), {
    ok: true,
    configDir: './config',
    command: { kind: 'explain', domain: 'Bücher.example' },
  });
  assert.equal(parseArgs(['explain', 'relay:smtp.isp.example']).ok, true);
  for (const bad of [
    ['table'],
    ['table', 'show'],
    ['table', 'list', 'x.example'],
    ['table', 'list', '--all'],
    ['explain'],
    ['explain', 'a..b'],
  ]) {
    assert.equal(parseArgs(bad).ok, false, bad.join(' '));
  }
});

test('POL-3: explain names the lines left out that meant this destination: its own key and every parent form', () => {
  const table = parsePolicyTable(
    ['a.b.example verfy', '.b.example encrypt match=x.example', 'c.example verify', 'relay:r.example sometimes', 'other.example nope'].join(
      '\n',
    ),
    'config/outbound_tls_policy',
  );
  assert.deepEqual(
    ignoredLines(table, 'a.b.example').map((p) => p.line),
    [1, 2],
  );
  assert.deepEqual(
    ignoredLines(table, 'relay:r.example').map((p) => p.line),
    [4],
  );
  assert.deepEqual(ignoredLines(table, 'c.example'), []);
});

describe('haraka-outbound table list and explain relay:<host>, as processes', () => {
  let tmp: string;
  let configDir: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-table-'));
    configDir = path.join(tmp, 'config');
    fs.mkdirSync(configDir);
    fs.writeFileSync(path.join(configDir, 'outbound_tls.ini'), '[main]\ndata_dir=data\n');
    const store = openRatchetStore({ dataDir: path.join(tmp, 'data') });
    await store.raise('relay:smtp.isp.example', SecLevel.TLS_SECURE, 'smtp.isp.example');
    await store.close();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('POL-3: no table file: no rules, status 0', async () => {
    const listed = await cli(['--config', configDir, 'table', 'list']);
    assert.equal(listed.code, EXIT.OK, listed.stderr);
    assert.match(listed.stdout, /^config\/outbound_tls_policy: no such file: no rules/);
  });

  test('POL-3: table list shows each rule with its line and each line not in force with the reason (status 5); --json too', async () => {
    fs.writeFileSync(
      path.join(configDir, 'outbound_tls_policy'),
      [
        '# partners',
        'Partner.Example verify match=mx.partner.example',
        'bad.example verfy',
        '.Partner.example encrypt',
        'relay:smtp.isp.example verify auth_min_level=encrypt exempt=ratchet',
      ].join('\n'),
    );
    const listed = await cli(['--config', configDir, 'table', 'list']);
    assert.equal(listed.code, EXIT.TABLE_PROBLEMS);
    assert.deepEqual(listed.stdout.trimEnd().split('\n'), [
      'config/outbound_tls_policy: 3 rules in force, 1 line ignored',
      'line 2     partner.example verify match=mx.partner.example',
      'line 4     .partner.example encrypt',
      'line 5     relay:smtp.isp.example verify exempt=ratchet auth_min_level=encrypt',
      'IGNORED  config/outbound_tls_policy line 3: bad.example: expected a level (may, encrypt or verify) after the destination, found "verfy" (line not in force; mail to bad.example waits until it is fixed)',
    ]);
    assert.match(listed.stderr, /1 line\(s\) of .*outbound_tls_policy not in force/);
    const json = await cli(['--config', configDir, 'table', 'list', '--json']);
    const parsed = JSON.parse(json.stdout) as {
      rules: Array<{ line: number; destination: string; kind: string }>;
      problems: Array<{ line: number }>;
    };
    assert.deepEqual(
      parsed.rules.map((r) => [r.line, r.destination, r.kind]),
      [
        [2, 'partner.example', 'domain'],
        [4, '.partner.example', 'subdomains'],
        [5, 'relay:smtp.isp.example', 'relay'],
      ],
    );
    assert.deepEqual(
      parsed.problems.map((p) => p.line),
      [3],
    );
  });

  test('POL-3/POL-4/TLS-8: explain relay:<host> prints the relay hop part by part: its rule, its own level (exempted), no MTA-STS, auth_min_level', async () => {
    const explained = await cli(['--config', configDir, 'explain', 'relay:SMTP.isp.example']);
    assert.equal(explained.code, EXIT.OK, explained.stderr);
    const lines = explained.stdout.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.slice(0, 9).trim()),
      ['relay', 'rule', 'ratchet', 'mta-sts', 'table', 'exempt', 'auth', 'required', 'note'],
    );
    assert.equal(lines[0], 'relay    relay:smtp.isp.example');
    assert.equal(
      lines[1],
      'rule     relay:smtp.isp.example verify exempt=ratchet auth_min_level=encrypt (config/outbound_tls_policy line 5)',
    );
    assert.match(
      lines[2] ?? '',
      /^ratchet {2}TLS_SECURE \(raised \S+ by smtp\.isp\.example\): exempted by relay:smtp\.isp\.example \(config\/outbound_tls_policy line 5\): read and raised/,
    );
    assert.equal(lines[3], 'mta-sts  never applies to a relay hop (POL-4)');
    assert.equal(lines[4], 'table    verify: TLS_SECURE');
    assert.match(
      lines[5] ?? '',
      /^exempt {3}ratchet, by relay:smtp\.isp\.example \(config\/outbound_tls_policy line 5\); each connection that passes only by an exemption is logged and counted in outbound_tls_policy_exemptions_total$/,
    );
    assert.equal(
      lines[6],
      'auth     AUTH credentials only at TLS_INSECURE or better (auth_min_level=encrypt of the rule); never a plain retry',
    );
    assert.equal(lines[7], 'required TLS_SECURE (ratchet TLS_SECURE exempted; table verify)');
    // The bad line of the table is a warning on stderr for every other command.
    assert.match(explained.stderr, /error: config\/outbound_tls_policy line 3: bad\.example/);

    const none = await cli(['--config', configDir, 'explain', 'relay:other.example']);
    assert.equal(none.code, EXIT.OK, none.stderr);
    assert.match(none.stdout, /^rule {5}none \(no line of config\/outbound_tls_policy names relay:other\.example\)$/m);
    assert.match(none.stdout, /^auth {5}AUTH credentials only at TLS_SECURE or better \(auth_min_level of outbound_tls\.ini\)/m);
    assert.match(none.stdout, /^required PLAIN \(no ratchet level\)$/m);
  });

  test('POL-1: a table that cannot be read fails the command with status 1, naming the file', async () => {
    const file = path.join(configDir, 'outbound_tls_policy');
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, Buffer.from([0xc3, 0x28]));
    const listed = await cli(['--config', configDir, 'table', 'list']);
    assert.equal(listed.code, EXIT.ERROR);
    assert.match(listed.stderr, /outbound_tls_policy: not valid UTF-8 text/);
    fs.rmSync(file);
  });
});
