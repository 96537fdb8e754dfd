/**
 * PKG-1 … PKG-3 end to end: the packages are packed (`npm pack`, which builds),
 * published to an npm registry on loopback together with their third-party
 * dependencies, and installed into a fresh `haraka -i` directory with the
 * command the README gives an admin; the plugins are enabled in config/plugins
 * and a message is delivered through them; the CLI is on the directory's PATH
 * and `haraka -h` shows the plugins' documentation.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, REPO_ROOT } from '../fixtures/haraka-instance';
import { LocalNpmRegistry } from '../fixtures/npm-registry';
import { SmtpSink } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const HARAKA_BIN = path.join(REPO_ROOT, 'node_modules', 'Haraka', 'bin', 'haraka');
const PACKAGES = ['outbound-security', 'haraka-plugin-outbound_mx', 'haraka-plugin-outbound_tls'];

let work: string;
let registry: LocalNpmRegistry;
let ca: TestCa;
let dns: TestDnsServer;
let sink: SmtpSink;
let tarballs: string[];

/**
 * npm as the admin runs it, against the loopback registry only, with a cache of its own.
 * Asynchronous: the registry answers from this very process.
 */
async function npm(cwd: string, ...args: string[]): Promise<void> {
  const flags = ['--registry', registry.url, '--cache', path.join(work, 'npm-cache'), '--no-audit', '--no-fund'];
  const child = spawn('npm', [...args, ...flags], { cwd, env: { ...process.env, npm_config_update_notifier: 'false' } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, `npm ${args.join(' ')} failed:\n${output}`);
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pkg-e2e-'));
  const packed = path.join(work, 'tarballs');
  fs.mkdirSync(packed);
  // `npm pack` runs each package's prepack (the build), as publishing would.
  execFileSync('npm', ['pack', '--workspaces', '--pack-destination', packed], { cwd: REPO_ROOT, stdio: 'ignore' });
  tarballs = fs.readdirSync(packed).map((file) => path.join(packed, file));
  registry = new LocalNpmRegistry();
  for (const tarball of tarballs) registry.publishTarball(tarball);
  const library = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'packages', 'outbound-security', 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  registry.publishInstalled(path.join(REPO_ROOT, 'node_modules'), Object.keys(library.dependencies));
  await registry.start();
  ca = await TestCa.create();
  sink = await SmtpSink.start({ host: '127.0.9.1', tls: await ca.issue({ dnsNames: ['mx.packaged.test'] }), name: 'mx.packaged.test' });
  dns = await TestDnsServer.start();
  dns.add('packaged.test', { type: 'MX', preference: 10, exchange: 'mx.packaged.test' });
  dns.set('mx.packaged.test', [{ type: 'A', address: '127.0.9.1' }]);
});

after(async () => {
  await sink?.stop();
  await dns?.stop();
  await registry?.stop();
  await ca?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('PKG-2: only what runs ships: compiled code, type declarations of the library, default ini, README, CHANGELOG, LICENSE; no tests, sources or maps', () => {
  const listings = Object.fromEntries(
    tarballs.map((t) => [path.basename(t), execFileSync('tar', ['-tzf', t], { encoding: 'utf8' }).trim().split('\n')]),
  );
  assert.equal(Object.keys(listings).length, PACKAGES.length);
  for (const [name, files] of Object.entries(listings)) {
    for (const required of ['package/package.json', 'package/README.md', 'package/CHANGELOG.md', 'package/LICENSE']) {
      assert.ok(files.includes(required), `${name} lacks ${required}`);
    }
    const unwanted = files.filter((f) => /\.test\.|\.ts$|\.map$|tsbuildinfo|(^|\/)(test|bench|src|\.ci)\//.test(f) && !f.endsWith('.d.ts'));
    assert.deepEqual(unwanted, [], `${name} ships files that do not run`);
  }
  const library = listings['haraka-outbound-security-0.2.0.tgz'] ?? [];
  assert.ok(library.includes('package/dist/index.js') && library.includes('package/dist/index.d.ts'));
  assert.ok(library.includes('package/dist/cli/cli.js'));
  assert.ok(library.includes('package/bin/haraka-outbound.js'), 'the bin npm links (PKG-2) ships');
  assert.ok((listings['haraka-plugin-outbound_tls-0.2.0.tgz'] ?? []).includes('package/config/outbound_tls.ini'));
  assert.ok((listings['haraka-plugin-outbound_mx-0.2.0.tgz'] ?? []).includes('package/config/outbound_mx.ini'));
});

test('PKG-1/PKG-3: `npm install haraka-plugin-outbound_tls haraka-plugin-outbound_mx` in a fresh `haraka -i` directory and two lines in config/plugins: a message is delivered through both plugins', async () => {
  const dir = path.join(work, 'haraka');
  execFileSync(process.execPath, [HARAKA_BIN, '-i', dir], { encoding: 'utf8' });
  await npm(dir, 'install', 'haraka-plugin-outbound_tls', 'haraka-plugin-outbound_mx');

  const modules = path.join(dir, 'node_modules');
  for (const name of ['haraka-plugin-outbound_tls', 'haraka-plugin-outbound_mx', 'haraka-outbound-security']) {
    assert.ok(fs.existsSync(path.join(modules, name, 'package.json')), `${name} installed`);
  }
  assert.equal(fs.existsSync(path.join(modules, 'Haraka')), false, 'Haraka is a peer: the admin’s Haraka runs the plugins, no second copy');

  // PKG-2: the CLI is on the directory's PATH, never fetched by name.
  const bin = fs.realpathSync(path.join(modules, '.bin', 'haraka-outbound'));
  assert.equal(bin, fs.realpathSync(path.join(modules, 'haraka-outbound-security', 'bin', 'haraka-outbound.js')));
  assert.ok((fs.statSync(bin).mode & 0o111) !== 0, 'the linked bin is executable');
  const help = spawnSync('npx', ['--no-install', 'haraka-outbound', '--help'], { cwd: dir, encoding: 'utf8' });
  assert.equal(help.status, 0, `${help.stdout}${help.stderr}`);
  assert.match(help.stdout, /ratchet show/);

  // The admin adds the plugins to config/plugins; HarakaInstance writes that file (and loopback test settings).
  const haraka = await HarakaInstance.start({
    dir,
    dnsServer: dns.address,
    mxPort: sink.port,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
  });
  try {
    assert.match(fs.readFileSync(path.join(dir, 'config', 'plugins'), 'utf8'), /^outbound_tls\noutbound_mx$/m);
    await haraka.send({ to: 'user@packaged.test' });
    const delivered = await haraka.waitForEvent((e) => e.event === 'delivered' && e.domain === 'packaged.test');
    assert.equal(delivered.secured, true);
    assert.equal(sink.messages.length, 1);
    assert.ok(haraka.logLines.some((l) => /outbound_tls: packaged\.test via mx\.packaged\.test .*TLS_SECURE/.test(l)));
    const show = spawnSync(
      'npx',
      ['--no-install', 'haraka-outbound', '--config', path.join(dir, 'config'), 'ratchet', 'show', 'packaged.test'],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /packaged\.test TLS_SECURE/);
    // OPS-4: the Haraka directory itself (as `haraka -c` takes it) reads the same store.
    const fromHarakaDir = spawnSync('npx', ['--no-install', 'haraka-outbound', '--config', dir, 'ratchet', 'show', 'packaged.test'], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(fromHarakaDir.status, 0, fromHarakaDir.stderr);
    assert.match(fromHarakaDir.stdout, /packaged\.test TLS_SECURE/);
    const version = spawnSync('npx', ['--no-install', 'haraka-outbound', '--version'], { cwd: dir, encoding: 'utf8' });
    assert.equal(version.stdout, 'haraka-outbound 0.2.0\n', version.stderr);
  } finally {
    await haraka.stop();
  }

  // PKG-2: `haraka -h <plugin>` shows the plugin's documentation.
  for (const name of ['outbound_tls', 'outbound_mx']) {
    const doc = spawnSync(process.execPath, [HARAKA_BIN, '-c', dir, '-h', name], {
      encoding: 'utf8',
      env: { ...process.env, PAGER: 'cat' },
    });
    assert.equal(doc.status, 0, doc.stderr);
    assert.match(doc.stdout, new RegExp(`# haraka-plugin-${name}`));
  }
});
