import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { IniFile } from '../ini';
import { POLICY_TABLE_SETTINGS, SHARED_SETTINGS, WatchedSettings, type SettingsHost, type SharedSettings } from './settings';

/**
 * haraka-config as far as the registry sees it: one reload callback per file,
 * the one of the latest read (reader.js keeps `_read_args[name]`).
 */
class FakeConfig {
  readonly files = new Map<string, IniFile>();
  readonly callbacks = new Map<string, (err?: Error) => void>();
  reads = 0;
  get(name: string, _options?: unknown, onChange?: (err?: Error) => void): unknown {
    this.reads += 1;
    if (onChange) this.callbacks.set(name, onChange);
    return this.files.get(name) ?? {};
  }
  change(name: string, ini: IniFile): void {
    this.files.set(name, ini);
    this.callbacks.get(name)?.();
  }
}

interface FakeHost extends SettingsHost {
  lines: string[];
  config: FakeConfig;
}

function host(name: string, config = new FakeConfig()): FakeHost {
  const lines: string[] = [];
  const log = (level: string) => (message: unknown) => lines.push(`${level} [${name}] ${String(message)}`);
  return {
    name,
    config,
    lines,
    logdebug: log('DEBUG'),
    loginfo: log('INFO'),
    lognotice: log('NOTICE'),
    logwarn: log('WARN'),
    logerror: log('ERROR'),
    logcrit: log('CRIT'),
  };
}

let dir: string;
const savedHaraka = process.env.HARAKA;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'settings-test-'));
  fs.mkdirSync(path.join(dir, 'config'));
  process.env.HARAKA = dir;
});

after(() => {
  if (savedHaraka === undefined) delete process.env.HARAKA;
  else process.env.HARAKA = savedHaraka;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('PKG-4: a shared file is read and watched once; a change reaches every subscriber', () => {
  const settings = new WatchedSettings(SHARED_SETTINGS);
  const tls = host('outbound_tls');
  const mx = host('outbound_mx');
  tls.config.files.set('outbound_tls.ini', { main: { data_dir: 'data', plain_retry: 'true' } });
  settings.load(tls);
  settings.load(mx);
  assert.equal(mx.config.reads, 0, "the second plugin's config object never registers the file");
  assert.deepEqual([...tls.config.callbacks.keys()].sort(), ['outbound_tls.ini', 'redis.ini']);
  assert.equal(settings.current.tls.dataDir, path.join(dir, 'data'));

  const seen: Array<[string, SharedSettings, SharedSettings]> = [];
  settings.subscribe((next, previous) => seen.push(['outbound_tls', next, previous]));
  settings.subscribe((next, previous) => seen.push(['outbound_mx', next, previous]));
  tls.config.change('outbound_tls.ini', { main: { data_dir: 'data2', plain_retry: 'false' } });
  assert.deepEqual(
    seen.map(([who, next, previous]) => [who, next.tls.dataDir, next.tls.plainRetry, previous.tls.dataDir]),
    [
      ['outbound_tls', path.join(dir, 'data2'), false, path.join(dir, 'data')],
      ['outbound_mx', path.join(dir, 'data2'), false, path.join(dir, 'data')],
    ],
  );
  assert.ok(tls.lines.some((l) => /^INFO \[outbound_tls\] outbound_tls\.ini reloaded: data_dir=.*data2/.test(l)));
});

test('PKG-4: a bad value on reload is logged under the file (and its plugin), and everyone keeps the running settings', () => {
  const settings = new WatchedSettings(SHARED_SETTINGS);
  const mx = host('outbound_mx');
  const tls = host('outbound_tls');
  mx.config.files.set('outbound_tls.ini', { main: { store: 'file' } });
  settings.load(mx); // outbound_mx asked first: its config object watches the file
  settings.load(tls);
  let told = 0;
  settings.subscribe(() => (told += 1));
  mx.config.change('outbound_tls.ini', { main: { store: 'bogus' } });
  assert.equal(told, 0);
  assert.equal(settings.current.tls.store.backend, 'file');
  assert.ok(
    tls.lines.some(
      (l) =>
        l ===
        'ERROR [outbound_tls] outbound_tls.ini not reloaded, keeping the running settings: [main] store=bogus: expected file or redis',
    ),
    tls.lines.join('\n'),
  );
  assert.ok(!mx.lines.some((l) => /not reloaded/.test(l)), 'not under outbound_mx');
  // haraka-config could not parse the file at all: its error, same place.
  mx.config.callbacks.get('outbound_tls.ini')?.(new Error('EACCES'));
  assert.ok(tls.lines.some((l) => l === 'ERROR [outbound_tls] outbound_tls.ini: not reloaded, keeping the running settings: EACCES'));
});

test('PKG-4: at startup a bad value throws naming the file; unknown keys are warnings with file, section and key (also from the raw text)', () => {
  const bad = host('outbound_tls');
  bad.config.files.set('outbound_tls.ini', { main: { on_store_error: 'maybe' } });
  assert.throws(
    () => new WatchedSettings(SHARED_SETTINGS).load(bad),
    /^Error: outbound_tls\.ini: \[main\] on_store_error=maybe: expected defer or send$/,
  );

  const text = '[main]\nplain_retyr=false\n[metrics\nlisten=127.0.0.1:9465\n';
  fs.writeFileSync(path.join(dir, 'config', 'outbound_tls.ini'), text);
  const tls = host('outbound_tls');
  tls.config.files.set('outbound_tls.ini', { main: { plain_retyr: 'false', '[metrics': undefined, listen: '127.0.0.1:9465' } });
  const settings = new WatchedSettings(SHARED_SETTINGS).load(tls);
  assert.equal(settings.current.tls.plainRetry, true);
  const warnings = tls.lines.filter((l) => l.startsWith('WARN'));
  assert.deepEqual(
    warnings.map((l) => l.replace(/:.*/, '')),
    [
      'WARN [outbound_tls] outbound_tls.ini [main] plain_retyr',
      'WARN [outbound_tls] outbound_tls.ini [main] [metrics',
      'WARN [outbound_tls] outbound_tls.ini [main] listen',
    ],
  );
  // …and again on every reload.
  tls.config.change('outbound_tls.ini', { main: { plain_retyr: 'false' } });
  assert.equal(tls.lines.filter((l) => /plain_retyr: unknown key/.test(l)).length, 2);
  fs.rmSync(path.join(dir, 'config', 'outbound_tls.ini'));
});

test('PKG-4: the CLI reports the same unknown keys as warnings on stderr and still runs', async () => {
  const configDir = path.join(dir, 'cli', 'config');
  fs.mkdirSync(configDir, { recursive: true });
  fs.writeFileSync(path.join(configDir, 'outbound_tls.ini'), '[main]\nplain_retyr=false\n[metric]\nlisten=\n');
  const cli = path.join(__dirname, '..', 'cli', 'cli.js');
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, '--config', configDir, 'ratchet', 'list', '--json']);
  assert.match(stderr, /warning: outbound_tls\.ini \[main\] plain_retyr: unknown key, ignored/);
  assert.match(stderr, /warning: outbound_tls\.ini \[metric\]: unknown section/);
  assert.deepEqual(JSON.parse(stdout), []);
});

test('POL-1/PKG-4: the policy table is read and watched once; bad lines are errors with file and line, the rest applies; an edit applies on reload', () => {
  const file = path.join(dir, 'config', 'outbound_tls_policy');
  fs.writeFileSync(file, '# partners\npartner.example verify\nbad.example verfy\n');
  try {
    const table = new WatchedSettings(POLICY_TABLE_SETTINGS);
    const tls = host('outbound_tls');
    const mx = host('outbound_mx');
    table.load(tls);
    table.load(mx);
    assert.deepEqual([...tls.config.callbacks.keys()], ['outbound_tls_policy']);
    assert.equal(mx.config.reads, 0);
    assert.equal(table.current.forDomain('partner.example')?.level, 'verify');
    assert.ok(
      tls.lines.includes(
        'ERROR [outbound_tls] config/outbound_tls_policy line 3: bad.example: expected a level (may, encrypt or verify) after the destination, found "verfy" (line not in force; mail to bad.example waits until it is fixed)',
      ),
      tls.lines.join('\n'),
    );
    assert.ok(
      tls.lines.some((l) =>
        /^INFO \[outbound_tls\] outbound_tls_policy: policy table: 1 rules in force \(1 domain, 0 subdomains, 0 relay\), 1 lines ignored$/.test(
          l,
        ),
      ),
    );

    let told = 0;
    table.subscribe(() => (told += 1));
    fs.writeFileSync(file, 'partner.example encrypt\n.partner.example verify\n');
    tls.config.callbacks.get('outbound_tls_policy')?.();
    assert.equal(told, 1);
    assert.equal(table.current.forDomain('partner.example')?.level, 'encrypt');
    assert.equal(table.current.forDomain('mx.partner.example')?.level, 'verify');
    assert.ok(tls.lines.some((l) => /outbound_tls_policy reloaded: policy table: 2 rules in force/.test(l)));

    // A file that cannot be read keeps the table in force.
    fs.writeFileSync(file, Buffer.from([0xff, 0xfe, 0x00]));
    tls.config.callbacks.get('outbound_tls_policy')?.();
    assert.equal(told, 1);
    assert.equal(table.current.forDomain('partner.example')?.level, 'encrypt');
    assert.ok(
      tls.lines.some((l) =>
        /^ERROR \[outbound_tls\] outbound_tls_policy not reloaded, keeping the running settings: .*outbound_tls_policy: not valid UTF-8 text$/.test(
          l,
        ),
      ),
    );

    // No file: an empty table.
    fs.rmSync(file);
    tls.config.callbacks.get('outbound_tls_policy')?.();
    assert.equal(told, 2);
    assert.equal(table.current.rules.length, 0);
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('POL-1: a policy table that cannot be read at startup throws naming the file (Haraka does not start with an unknown table)', () => {
  const file = path.join(dir, 'config', 'outbound_tls_policy');
  fs.mkdirSync(file);
  try {
    assert.throws(
      () => new WatchedSettings(POLICY_TABLE_SETTINGS).load(host('outbound_tls')),
      /^Error: outbound_tls_policy: .*outbound_tls_policy: cannot be read: EISDIR$/,
    );
  } finally {
    fs.rmSync(file, { recursive: true, force: true });
  }
});

test('RPT-3, PKG-4: [tlsrpt] is parsed with outbound_tls.ini; a misconfigured section is an error at load and reload, the rest applies and reporting stays off', () => {
  const tls = host('outbound_tls');
  tls.config.files.set('outbound_tls.ini', { main: { plain_retry: 'false' }, tlsrpt: { enabled: 'true' } });
  const settings = new WatchedSettings(SHARED_SETTINGS).load(tls);
  assert.equal(settings.current.tls.plainRetry, false);
  assert.equal(settings.current.tls.tlsrpt.kind, 'misconfigured');
  assert.ok(
    tls.lines.some((l) => /^ERROR \[outbound_tls\] outbound_tls\.ini: \[tlsrpt\] sender is required.*TLS reporting stays off$/.test(l)),
    tls.lines.join('\n'),
  );
  assert.ok(tls.lines.some((l) => /^INFO \[outbound_tls\] outbound_tls\.ini: .* tlsrpt=misconfigured$/.test(l)));

  let seen: SharedSettings | undefined;
  settings.subscribe((next) => (seen = next));
  tls.config.change('outbound_tls.ini', { tlsrpt: { enabled: 'true', sender: 'tlsrpt@sender.example', delay_window: '60' } });
  assert.equal(seen?.tls.tlsrpt.kind, 'on');
  assert.equal(seen?.tls.tlsrpt.kind === 'on' && seen.tls.tlsrpt.settings.delayWindowMs, 60_000);
  tls.config.change('outbound_tls.ini', { tlsrpt: {} });
  assert.equal(seen?.tls.tlsrpt.kind, 'off', 'off unless enabled');
});

test('PKG-4/OPS-2: the startup line names redis.ini only when the Haraka config directory holds it, and says when Redis runs on the defaults', () => {
  const redisIni = path.join(dir, 'config', 'redis.ini');
  fs.rmSync(redisIni, { force: true });
  const startupLine = (ini: IniFile): string => {
    const tls = host('outbound_tls');
    tls.config.files.set('outbound_tls.ini', ini);
    new WatchedSettings(SHARED_SETTINGS).load(tls);
    const line = tls.lines.find((l) => /^INFO \[outbound_tls\] outbound_tls\.ini/.test(l));
    assert.ok(line, tls.lines.join('\n'));
    return line;
  };
  const withoutFile = startupLine({ main: { store: 'file' } });
  assert.match(withoutFile, /^INFO \[outbound_tls\] outbound_tls\.ini: data_dir=/);
  assert.doesNotMatch(withoutFile, /redis\.ini/);
  assert.match(startupLine({ main: { store: 'redis' } }), /store=redis \(no redis\.ini: haraka-plugin-redis defaults/);

  fs.writeFileSync(redisIni, '[server]\nhost=127.0.0.1\n');
  try {
    assert.match(
      startupLine({ main: { store: 'redis' } }),
      /^INFO \[outbound_tls\] outbound_tls\.ini, redis\.ini: data_dir=.* store=redis /,
    );
  } finally {
    fs.rmSync(redisIni);
  }
});

test('TLS-9: a setting that lowers protection below its default is a WARN line at load and at every reload; the defaults say nothing', () => {
  const tls = host('outbound_tls');
  tls.config.files.set('outbound_tls.ini', {
    main: { on_store_error: 'send', smart_host_ratchet: 'false', auth_min_level: 'TLS_INSECURE' },
  });
  new WatchedSettings(SHARED_SETTINGS).load(tls);
  const warned = (): string[] => tls.lines.filter((l) => /^WARN \[outbound_tls\] outbound_tls\.ini: /.test(l));
  assert.deepEqual(
    warned().map((l) => /outbound_tls\.ini: (\w+)=/.exec(l)?.[1]),
    ['on_store_error', 'smart_host_ratchet', 'auth_min_level'],
    tls.lines.join('\n'),
  );
  tls.config.change('outbound_tls.ini', { main: { smart_host_ratchet: 'false' } });
  assert.equal(warned().length, 4, 'said again on reload');
  // Control: the defaults lower nothing and warn of nothing.
  const quiet = host('outbound_tls');
  quiet.config.files.set('outbound_tls.ini', { main: {} });
  new WatchedSettings(SHARED_SETTINGS).load(quiet);
  assert.deepEqual(
    quiet.lines.filter((l) => l.startsWith('WARN')),
    [],
  );
});
