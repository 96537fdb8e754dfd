import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openRatchetStore } from '../state/open';
import type { RatchetStore } from '../ratchet/store';
import { SecLevel } from '../sec-level';
import { EXIT, USAGE, main, parseArgs, type Output } from './cli';
import { domainKey } from './keys';
import { formatRead, formatReset, readToJson } from './ratchet';
import { loadSettings, readIni, resolveConfigDir } from './config';
import { SHARED_SETTINGS } from '../haraka/settings';
import type { HarakaConfig } from '../haraka/api';

const CLI = path.join(__dirname, 'cli.js');
const RAISED_AT = Date.UTC(2026, 10, 24, 14, 0, 0);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI as a real process. */
function cli(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('haraka-outbound command line (parsing and formatting)', () => {
  test('OPS-4: parseArgs finds --config and one ratchet command', () => {
    assert.deepEqual(parseArgs(['ratchet', 'show', 'example.com']), {
      ok: true,
      configDir: './config',
      command: { kind: 'ratchet-show', domain: 'example.com' },
    });
    assert.deepEqual(parseArgs(['--config', '/etc/haraka/config', 'ratchet', 'list', '--json']), {
      ok: true,
      configDir: '/etc/haraka/config',
      command: { kind: 'ratchet-list', json: true },
    });
    assert.deepEqual(parseArgs(['--config=/h/config', 'ratchet', 'reset', 'example.com']), {
      ok: true,
      configDir: '/h/config',
      command: { kind: 'ratchet-reset', domain: 'example.com' },
    });
    assert.deepEqual(parseArgs(['--help']), { ok: true, configDir: './config', command: { kind: 'help' } });
    assert.deepEqual(parseArgs(['policy', 'show', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'policy-show', domain: 'a.example' },
    });
    assert.deepEqual(parseArgs(['policy', 'purge', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'policy-purge', domain: 'a.example' },
    });
    for (const bad of [
      [],
      ['ratchet'],
      ['ratchet', 'show'],
      ['ratchet', 'show', 'a.example', 'b.example'],
      ['ratchet', 'reset'],
      ['ratchet', 'list', 'a.example'],
      ['ratchet', 'show', '--json', 'a.example'],
      ['ratchet', 'frobnicate'],
      ['policy', 'show'],
      ['policy', 'purge', 'a.example', 'b.example'],
      ['policy', 'list', '--json'],
      ['mx', 'show'],
      ['--config'],
      ['--verbose', 'ratchet', 'list'],
    ]) {
      assert.equal(parseArgs(bad).ok, false, bad.join(' '));
    }
  });

  test('OPS-4: -- ends the options: what follows it are words, even when they start with -', () => {
    assert.deepEqual(parseArgs(['ratchet', 'show', '--', 'example.com']), {
      ok: true,
      configDir: './config',
      command: { kind: 'ratchet-show', domain: 'example.com' },
    });
    assert.deepEqual(parseArgs(['--config', '/h/config', '--', 'mx', 'show', 'a.example']), {
      ok: true,
      configDir: '/h/config',
      command: { kind: 'mx-show', domain: 'a.example' },
    });
    assert.deepEqual(parseArgs(['ratchet', 'show', '--', '--config']), {
      ok: false,
      error: 'bad DOMAIN: "--config": label "--config" is not letters, digits and inner hyphens',
    });
    assert.equal(parseArgs(['ratchet', 'show', '--', 'a.example', 'b.example']).ok, false);
  });

  test('OPS-4: an unknown option is bad usage naming it as typed, wherever it stands; migrate no longer ignores one', () => {
    for (const [args, error] of [
      [['--verbose', 'ratchet', 'list'], 'unknown option --verbose'],
      [['ratchet', 'list', '--yaml'], 'unknown option --yaml'],
      [['ratchet', 'show', '--json', 'a.example'], 'unknown option --json'],
      [['ratchet', 'list', '--json=yes'], 'unknown option --json=yes'],
      [['table', 'list', '-x'], 'unknown option -x'],
      [['--timeout=3', 'mx', 'show', 'a.example'], 'unknown option --timeout=3'],
      [['migrate', 'file-to-redis', '--json'], 'unknown option --json'],
      [['--v', 'check'], 'unknown option --v'],
    ] as const) {
      assert.deepEqual(parseArgs(args), { ok: false, error }, args.join(' '));
    }
    for (const name of ['constructor', '__proto__', 'toString']) {
      assert.deepEqual(parseArgs([name]), { ok: false, error: `unknown command "${name}"` }, name);
    }
  });

  test('OPS-4: an option given twice keeps its last value, as util.parseArgs does; a flag given twice is the flag', () => {
    assert.deepEqual(parseArgs(['--config', '/a/config', 'ratchet', 'list', '--config=/b/config']), {
      ok: true,
      configDir: '/b/config',
      command: { kind: 'ratchet-list', json: false },
    });
    assert.deepEqual(parseArgs(['probe', '--timeout', '1', '--timeout=2', 'a.example']), {
      ok: true,
      configDir: './config',
      command: { kind: 'probe', domain: 'a.example', timeoutMs: 2000 },
    });
    assert.deepEqual(parseArgs(['tlsrpt', 'send', '--wait=1', '--wait=2']), {
      ok: true,
      configDir: './config',
      command: { kind: 'tlsrpt-send', day: null, domains: [], waitSeconds: 2 },
    });
    assert.deepEqual(parseArgs(['--json', 'ratchet', 'list', '--json']), {
      ok: true,
      configDir: './config',
      command: { kind: 'ratchet-list', json: true },
    });
    assert.deepEqual(parseArgs(['probe', '--timeout', '1', '--timeout', 'soon', 'a.example']), {
      ok: false,
      error: '--timeout soon: expected seconds between 0.1 and 300',
    });
  });

  test('OPS-4: --config (and every option that takes a value) without one is bad usage saying what it needs', () => {
    for (const args of [['--config'], ['ratchet', 'list', '--config'], ['--config=', 'ratchet', 'list']]) {
      assert.deepEqual(parseArgs(args), { ok: false, error: '--config needs a directory' }, args.join(' '));
    }
    assert.deepEqual(parseArgs(['probe', 'a.example', '--timeout']), { ok: false, error: '--timeout needs a number of seconds' });
    assert.deepEqual(parseArgs(['tlsrpt', 'send', '--wait=']), { ok: false, error: '--wait needs a number of seconds' });
    // The word after --config is its value, even one that starts with "-" (as before util.parseArgs).
    assert.deepEqual(parseArgs(['--config', '-h', 'ratchet', 'list']), {
      ok: true,
      configDir: '-h',
      command: { kind: 'ratchet-list', json: false },
    });
  });

  test('OPS-4: -- ends the options: -h, --json and --config after it are words; before it they are options', () => {
    assert.deepEqual(parseArgs(['--', 'ratchet', 'list']), {
      ok: true,
      configDir: './config',
      command: { kind: 'ratchet-list', json: false },
    });
    assert.deepEqual(parseArgs(['ratchet', 'list', '--', '--json']), { ok: false, error: 'ratchet list takes no DOMAIN' });
    assert.deepEqual(parseArgs(['ratchet', 'show', '--', '-h']), {
      ok: false,
      error: 'bad DOMAIN: "-h": label "-h" is not letters, digits and inner hyphens',
    });
    assert.deepEqual(parseArgs(['ratchet', 'show', '--', '--config', 'x']), { ok: false, error: 'ratchet show needs exactly one DOMAIN' });
    assert.deepEqual(parseArgs(['ratchet', '-h', '--', 'show']), { ok: true, configDir: './config', command: { kind: 'help' } });
    assert.deepEqual(parseArgs(['-hV']), { ok: true, configDir: './config', command: { kind: 'help' } });
  });

  test('OPS-4: a bad DOMAIN is bad usage (status 2), found before any store is opened', () => {
    for (const args of [
      ['ratchet', 'show', 'a..b'],
      ['ratchet', 'reset', 'exa mple.com'],
      ['policy', 'show', 'a..b'],
      ['policy', 'purge', '[192.0.2.1]'],
      ['mx', 'show', '[not an address]'],
      ['probe', 'a..b'],
    ]) {
      const parsed = parseArgs(args);
      assert.equal(parsed.ok, false, args.join(' '));
      if (!parsed.ok) assert.match(parsed.error, /^bad DOMAIN: "[^"]+"/, args.join(' '));
    }
    assert.deepEqual(parseArgs(['policy', 'show', '[192.0.2.1]']), {
      ok: false,
      error: 'bad DOMAIN: "[192.0.2.1]" is an address literal, which has no MTA-STS policy',
    });
  });

  test('MX-1: a DOMAIN typed in Unicode or any case becomes the lowercase A-label key; address literals pass', () => {
    assert.deepEqual(domainKey('Bücher.Example'), { ok: true, key: 'xn--bcher-kva.example' });
    assert.deepEqual(domainKey('EXAMPLE.COM.'), { ok: true, key: 'example.com' });
    assert.deepEqual(domainKey('[192.0.2.1]'), { ok: true, key: '[192.0.2.1]' });
    assert.equal(domainKey('exa mple.com').ok, false);
    assert.equal(domainKey('[not an address]').ok, false);
  });

  test('ST-6: ratchet show/reset take an address literal in any spelling and use its one canonical key', () => {
    for (const typed of ['[IPv6:2001:0db8::0001]', '[IPv6:2001:DB8::1]', '[2001:db8:0:0::1]']) {
      assert.deepEqual(domainKey(typed), { ok: true, key: '[2001:db8::1]' }, typed);
    }
    for (const typed of ['[IPv6:::ffff:192.0.2.1]', '[::ffff:192.0.2.1]', '[192.0.2.1]']) {
      assert.deepEqual(domainKey(typed), { ok: true, key: '[192.0.2.1]' }, typed);
    }
  });

  test('OPS-4: show, list and reset print one readable line per domain', () => {
    const entry = { domain: 'example.com', level: SecLevel.TLS_SECURE, raisedAt: RAISED_AT, host: 'mx1.example.com' };
    assert.equal(
      formatRead('example.com', { kind: 'level', entry }),
      'example.com TLS_SECURE (raised 2026-11-24T14:00:00Z by mx1.example.com)',
    );
    assert.equal(
      formatRead('example.com', { kind: 'level', entry: { domain: 'example.com', level: SecLevel.PLAIN } }),
      'example.com PLAIN',
    );
    assert.equal(formatRead('example.com', { kind: 'none' }), 'example.com: no level stored (PLAIN)');
    assert.equal(formatRead('example.com', { kind: 'unreadable', reason: '/x: broken' }), 'example.com: UNREADABLE: /x: broken');
    assert.equal(formatReset('example.com', { kind: 'level', entry }, true), 'example.com: reset (was TLS_SECURE)');
    assert.equal(formatReset('example.com', { kind: 'none' }, false), 'example.com: nothing stored');
    assert.deepEqual(readToJson('example.com', { kind: 'level', entry }), {
      domain: 'example.com',
      kind: 'level',
      level: 'TLS_SECURE',
      raisedAt: '2026-11-24T14:00:00Z',
      host: 'mx1.example.com',
    });
    assert.deepEqual(readToJson('x.example', { kind: 'unreadable', reason: 'r' }), {
      domain: 'x.example',
      kind: 'unreadable',
      reason: 'r',
    });
  });

  test('OPS-4: --version (and -V, -v) prints the version of the package, status 0', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', '-v']) {
      const lines = { out: [] as string[], err: [] as string[] };
      const output: Output = { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l) };
      assert.equal(await main([flag], output), EXIT.OK, flag);
      assert.deepEqual(lines, { out: [`haraka-outbound ${version}`], err: [] }, flag);
    }
  });

  test('OPS-4: usage errors go to stderr with status 2, help to stdout with status 0', async () => {
    const lines = { out: [] as string[], err: [] as string[] };
    const output: Output = { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l) };
    assert.equal(await main(['ratchet', 'show'], output), EXIT.USAGE);
    assert.deepEqual(lines.out, []);
    assert.match(lines.err.join('\n'), /ratchet show needs exactly one DOMAIN/);
    assert.equal(await main(['-h'], output), EXIT.OK);
    assert.deepEqual(lines.out, [USAGE]);
    lines.err.length = 0;
    assert.equal(await main(['ratchet', 'list', '--yaml'], output), EXIT.USAGE);
    assert.deepEqual(lines.err, [`haraka-outbound: unknown option --yaml\n${USAGE}`]);
  });
});

describe('haraka-outbound ratchet, run as a process against a temporary Haraka directory', () => {
  let tmp: string;
  let harakaDir: string;
  let configDir: string;
  let store: RatchetStore;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-test-'));
    harakaDir = path.join(tmp, 'haraka');
    configDir = path.join(harakaDir, 'config');
    fs.mkdirSync(configDir, { recursive: true });
    // A relative data_dir is relative to the Haraka directory, not to the current directory.
    fs.writeFileSync(path.join(configDir, 'outbound_tls.ini'), '[main]\n; test state\ndata_dir=state\n');
    store = openRatchetStore({ dataDir: path.join(harakaDir, 'state') });
    await store.raise('example.com', SecLevel.TLS_SECURE, 'mx1.example.com');
    await store.raise('xn--bcher-kva.example', SecLevel.TLS_INSECURE);
    await store.raise('[192.0.2.1]', SecLevel.PLAIN);
  });
  after(async () => {
    await store.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('OPS-4: ratchet show prints the stored level, accepts a Unicode DOMAIN, and says when nothing is stored', async () => {
    const shown = await cli(['--config', configDir, 'ratchet', 'show', 'EXAMPLE.com'], tmp);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^example\.com TLS_SECURE \(raised \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ by mx1\.example\.com\)\n$/);
    const unicode = await cli(['--config', configDir, 'ratchet', 'show', 'bücher.example'], tmp);
    assert.equal(unicode.stdout, `xn--bcher-kva.example TLS_INSECURE (raised ${unicode.stdout.match(/raised (\S+)\)/)?.[1]})\n`);
    const none = await cli([`--config=${configDir}`, 'ratchet', 'show', 'unknown.example'], tmp);
    assert.deepEqual([none.code, none.stdout], [0, 'unknown.example: no level stored (PLAIN)\n']);
  });

  test('OPS-4: ratchet list prints every domain sorted, or JSON with --json', async () => {
    const listed = await cli(['--config', configDir, 'ratchet', 'list'], tmp);
    assert.equal(listed.code, 0, listed.stderr);
    const domains = listed.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/:? /)[0]);
    assert.deepEqual(domains, ['[192.0.2.1]', 'example.com', 'xn--bcher-kva.example']);
    const json = await cli(['--config', configDir, 'ratchet', 'list', '--json'], tmp);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as Array<{ domain: string; kind: string; level?: string; host?: string }>;
    assert.deepEqual(
      parsed.map(({ domain, level, host }) => ({ domain, level, host })),
      [
        { domain: '[192.0.2.1]', level: 'PLAIN', host: undefined },
        { domain: 'example.com', level: 'TLS_SECURE', host: 'mx1.example.com' },
        { domain: 'xn--bcher-kva.example', level: 'TLS_INSECURE', host: undefined },
      ],
    );
  });

  test('ST-2: ratchet reset takes effect at once for a store that is already open', async () => {
    await store.raise('reset.example', SecLevel.TLS_SECURE);
    const reset = await cli(['--config', configDir, 'ratchet', 'reset', 'reset.example'], tmp);
    assert.deepEqual([reset.code, reset.stdout], [0, 'reset.example: reset (was TLS_SECURE)\n']);
    assert.deepEqual(await store.get('reset.example'), { kind: 'none' });
    const again = await cli(['--config', configDir, 'ratchet', 'reset', 'reset.example'], tmp);
    assert.deepEqual([again.code, again.stdout], [0, 'reset.example: nothing stored\n']);
  });

  test('ST-4: an unreadable entry is shown with its reason and exit status 3, and reset clears it', async () => {
    const broken = path.join(harakaDir, 'state', 'ratchet', 'broken.example');
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, 'TLS_SECURE'), '{"raisedAt":');
    const shown = await cli(['--config', configDir, 'ratchet', 'show', 'broken.example'], tmp);
    assert.equal(shown.code, EXIT.UNREADABLE);
    assert.ok(shown.stdout.startsWith(`broken.example: UNREADABLE: ${path.join(broken, 'TLS_SECURE')}: not valid JSON`), shown.stdout);
    const listed = await cli(['--config', configDir, 'ratchet', 'list'], tmp);
    assert.equal(listed.code, EXIT.UNREADABLE);
    assert.match(listed.stdout, /^broken\.example: UNREADABLE: /m);
    assert.match(listed.stdout, /^example\.com TLS_SECURE/m, 'the other entries are still listed');
    const reset = await cli(['--config', configDir, 'ratchet', 'reset', 'broken.example'], tmp);
    assert.match(reset.stdout, /^broken\.example: reset \(was UNREADABLE: .*not valid JSON/);
    assert.deepEqual(await store.get('broken.example'), { kind: 'none' });
  });

  test('OPS-4: bad usage (a bad DOMAIN too) exits 2 with the usage on stderr; -- ends the options; errors exit 1 with a message', async () => {
    for (const args of [['ratchet'], ['ratchet', 'show'], ['ratchet', 'list', '--yaml'], ['nonsense']]) {
      const run = await cli(['--config', configDir, ...args], tmp);
      assert.equal(run.code, EXIT.USAGE, args.join(' '));
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /usage:\n {2}haraka-outbound \[--config DIR\] ratchet show DOMAIN/);
    }
    const badDomain = await cli(['--config', configDir, 'ratchet', 'show', 'a..b'], tmp);
    assert.equal(badDomain.code, EXIT.USAGE, 'OPS-4: a bad DOMAIN is bad usage');
    assert.equal(badDomain.stdout, '');
    assert.match(badDomain.stderr, /^haraka-outbound: bad DOMAIN: "a\.\.b": empty label\n/);
    const endOfOptions = await cli(['--config', configDir, 'ratchet', 'show', '--', 'EXAMPLE.com'], tmp);
    assert.equal(endOfOptions.code, EXIT.OK, `OPS-4: -- ends the options: ${endOfOptions.stderr}`);
    assert.match(endOfOptions.stdout, /^example\.com TLS_SECURE \(raised \S+ by mx1\.example\.com\)\n$/);
    const noConfig = await cli(['--config', path.join(tmp, 'missing'), 'ratchet', 'list'], tmp);
    assert.equal(noConfig.code, EXIT.USAGE);
    assert.match(noConfig.stderr, /--config .*missing: not found/);
    // Default --config is ./config, from the current directory.
    const fromHaraka = await cli(['ratchet', 'show', 'example.com'], harakaDir);
    assert.equal(fromHaraka.code, 0, fromHaraka.stderr);
    assert.match(fromHaraka.stdout, /^example\.com TLS_SECURE/);
  });

  test('OPS-4/POL-3: an unusable outbound_tls.ini fails a command before it starts (status 1); table list checks a table without it', async () => {
    const dir = path.join(tmp, 'broken-ini', 'config');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'outbound_tls.ini'), '[main]\nstore=floppy\n');
    fs.writeFileSync(path.join(dir, 'outbound_tls_policy'), 'a.example verify\n');
    const run = async (args: string[]): Promise<{ code: number; out: string[]; err: string[] }> => {
      const lines = { out: [] as string[], err: [] as string[] };
      const code = await main(['--config', dir, ...args], { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l) });
      return { code, ...lines };
    };
    const table = await run(['table', 'list']);
    assert.deepEqual([table.code, table.out[1]], [EXIT.OK, 'line 1     a.example verify'], table.err.join('\n'));
    for (const args of [['ratchet', 'list'], ['dane', 'status'], ['check']]) {
      const failed = await run(args);
      assert.equal(failed.code, EXIT.ERROR, args.join(' '));
      assert.deepEqual(failed.out, [], args.join(' '));
      assert.match(failed.err.join('\n'), /outbound_tls\.ini: \[main\] store=floppy: expected file or redis/, args.join(' '));
    }
  });

  test('OPS-4: --config takes the Haraka directory as well as its config/: the same stored levels, the same reset', async () => {
    await store.raise('both.example', SecLevel.TLS_SECURE, 'mx.both.example');
    const viaConfig = await cli(['--config', configDir, 'ratchet', 'list'], tmp);
    const viaHaraka = await cli(['--config', harakaDir, 'ratchet', 'list'], tmp);
    assert.equal(viaHaraka.code, viaConfig.code, viaHaraka.stderr);
    assert.equal(viaHaraka.stdout, viaConfig.stdout, 'the Haraka directory reads the same store as its config/');
    assert.match(viaHaraka.stdout, /^both\.example TLS_SECURE/m);
    const relative = await cli(['--config', 'haraka', 'ratchet', 'show', 'both.example'], tmp);
    assert.match(relative.stdout, /^both\.example TLS_SECURE/, `a relative Haraka directory: ${relative.stderr}`);
    const reset = await cli([`--config=${harakaDir}`, 'ratchet', 'reset', 'both.example'], tmp);
    assert.deepEqual([reset.code, reset.stdout], [EXIT.OK, 'both.example: reset (was TLS_SECURE)\n']);
    assert.deepEqual(await store.get('both.example'), { kind: 'none' }, 'the reset reached the store the plugins use');
  });

  test('OPS-4: a relative data_dir resolves as the plugins resolve it (at HARAKA, the Haraka directory), whichever form --config takes', () => {
    const savedHaraka = process.env.HARAKA;
    process.env.HARAKA = harakaDir;
    try {
      const config: HarakaConfig = { get: (name) => readIni(configDir, name) };
      const plugins = SHARED_SETTINGS.read(config, () => undefined).value.tls.dataDir;
      assert.equal(plugins, path.join(harakaDir, 'state'));
      for (const given of [harakaDir, configDir, path.relative(process.cwd(), harakaDir), `${configDir}${path.sep}`]) {
        const resolved = resolveConfigDir(given);
        assert.ok(resolved.ok, given);
        if (resolved.ok) {
          assert.deepEqual([resolved.configDir, resolved.harakaDir], [configDir, harakaDir], given);
          assert.equal(loadSettings(resolved.configDir).dataDir, plugins, given);
        }
      }
    } finally {
      if (savedHaraka === undefined) delete process.env.HARAKA;
      else process.env.HARAKA = savedHaraka;
    }
  });

  test('OPS-4: --config with a directory holding neither config/ nor a plugin file is bad usage (status 2) saying what was expected', async () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    fs.writeFileSync(path.join(empty, 'notes.txt'), 'not Haraka\n');
    for (const args of [
      ['ratchet', 'list'],
      ['ratchet', 'reset', 'example.com'],
      ['table', 'list'],
    ]) {
      const run = await cli(['--config', empty, ...args], tmp);
      assert.equal(run.code, EXIT.USAGE, args.join(' '));
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /--config .*empty: neither a Haraka directory \(holding config\/\) nor a Haraka config directory/);
      assert.match(run.stderr, /outbound_tls\.ini/);
    }
    assert.equal((await store.get('example.com')).kind, 'level', 'nothing was reset');
    const file = await cli(['--config', path.join(empty, 'notes.txt'), 'ratchet', 'list'], tmp);
    assert.equal(file.code, EXIT.USAGE);
    assert.match(file.stderr, /notes\.txt: not a directory/);
  });

  test('TLS-8/OPS-4: a relay host’s own level (relay:<host>) can be shown and reset, in any spelling; other commands refuse it', async () => {
    await store.raise('relay:relay.example.com', SecLevel.TLS_SECURE, 'relay.example.com');
    await store.raise('relay:[2001:db8::25]', SecLevel.TLS_INSECURE);
    const shown = await cli(['--config', configDir, 'ratchet', 'show', 'relay:RELAY.Example.com'], tmp);
    assert.equal(shown.code, EXIT.OK, shown.stderr);
    assert.match(shown.stdout, /^relay:relay\.example\.com TLS_SECURE \(raised \S+ by relay\.example\.com\)\n$/);
    const literal = await cli(['--config', configDir, 'ratchet', 'show', 'relay:[IPv6:2001:0db8::0025]'], tmp);
    assert.match(literal.stdout, /^relay:\[2001:db8::25\] TLS_INSECURE/);
    const reset = await cli(['--config', configDir, 'ratchet', 'reset', 'relay:relay.example.com'], tmp);
    assert.equal(reset.code, EXIT.OK, reset.stderr);
    assert.deepEqual(await store.get('relay:relay.example.com'), { kind: 'none' });
    const refused = await cli(['--config', configDir, 'mx', 'show', 'relay:relay.example.com'], tmp);
    assert.equal(refused.code, EXIT.USAGE);
    assert.match(refused.stderr, /relay's key, only for ratchet show, ratchet reset and explain/);
  });

  test('OPS-4: an absolute data_dir is used as it is, and a store that cannot be written is an error', async () => {
    const otherConfig = path.join(tmp, 'other', 'config');
    fs.mkdirSync(otherConfig, { recursive: true });
    const dataDir = path.join(tmp, 'not-a-directory');
    fs.writeFileSync(dataDir, '');
    fs.writeFileSync(path.join(otherConfig, 'outbound_tls.ini'), `[main]\ndata_dir=${dataDir}\n`);
    const listed = await cli(['--config', otherConfig, 'ratchet', 'list'], tmp);
    assert.equal(listed.code, EXIT.ERROR);
    assert.ok(listed.stderr.includes(path.join(dataDir, 'ratchet')), listed.stderr);
  });
});
