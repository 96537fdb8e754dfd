/**
 * PKG-2 from a clean clone: the admin command is on the checkout's PATH after
 * the README's install, so `npx --no-install haraka-outbound` runs this
 * repository's CLI and never asks a registry for a package of that name.
 *
 * The clone is of the committed HEAD of this checkout (a local clone: no
 * network), installed with `npm ci` from the warm npm cache only (`--offline`),
 * and built as `npm start` and `npm test` build it (`tsc -b`, here only the
 * library, the package that carries the bin). Every npx call goes to an
 * unreachable loopback registry, so a lookup by name fails at once instead of
 * fetching someone else's code. Uncommitted changes of the working tree are
 * not in the clone: the test proves what is committed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO_ROOT } from '../fixtures/haraka-instance';

/** A registry address nothing listens on (port 9, discard): any lookup by name fails at once. */
const UNREACHABLE_REGISTRY = 'http://127.0.0.1:9/';

let work: string | undefined;
let clone: string;
let skipReason: string | undefined;

/** Runs a command in the clone; resolves with its status and output (asynchronous: the machine stays responsive). */
async function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; output: string }> {
  const child = spawn(command, args, { cwd: clone, env: { ...process.env, ...env } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { status, output };
}

/** `npx --no-install haraka-outbound --help` as a new user types it, with no registry within reach. */
function npxHelp(): Promise<{ status: number | null; output: string }> {
  return run('npx', ['--no-install', 'haraka-outbound', '--help'], {
    npm_config_registry: UNREACHABLE_REGISTRY,
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
  });
}

before(async () => {
  const head = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) {
    skipReason = `${REPO_ROOT} is not a git checkout`;
    return;
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-bin-e2e-'));
  clone = path.join(work, 'clone');
  // --shared borrows the objects of this checkout: no copy, no network.
  const cloned = spawnSync('git', ['clone', '-q', '--shared', '--no-checkout', REPO_ROOT, clone], { encoding: 'utf8' });
  assert.equal(cloned.status, 0, cloned.stderr);
  const checkout = spawnSync('git', ['-C', clone, 'checkout', '-q', '--detach', head.stdout.trim()], { encoding: 'utf8' });
  assert.equal(checkout.status, 0, checkout.stderr);
  const install = await run('npm', ['ci', '--offline', '--prefer-offline', '--no-audit', '--no-fund'], {
    npm_config_update_notifier: 'false',
  });
  assert.equal(install.status, 0, `npm ci in the clean clone failed:\n${install.output}`);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('PKG-2: in a clean clone, `npx --no-install haraka-outbound --help` runs this repository’s CLI after `npm ci` and the build, never a registry', async (t) => {
  if (skipReason) return t.skip(skipReason);
  const bin = path.join(clone, 'node_modules', '.bin', 'haraka-outbound');
  assert.ok(fs.existsSync(bin), 'npm ci links node_modules/.bin/haraka-outbound (its target is committed, not built)');

  // Before the build: a clear error naming the fix, not a registry lookup.
  const unbuilt = await npxHelp();
  assert.notEqual(unbuilt.status, 0);
  assert.match(unbuilt.output, /not built yet.*npm run build/s);
  assert.doesNotMatch(unbuilt.output, /127\.0\.0\.1:9|ECONNREFUSED|404|could not determine executable/i);

  const tsc = path.join(clone, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = await run(process.execPath, [tsc, '-b', path.join('packages', 'outbound-security')]);
  assert.equal(build.status, 0, `build failed:\n${build.output}`);

  const help = await npxHelp();
  assert.equal(help.status, 0, help.output);
  assert.match(help.output, /^usage:\n {2}haraka-outbound \[--config DIR\] ratchet show DOMAIN/m);
  assert.ok(
    fs.realpathSync(bin).startsWith(fs.realpathSync(clone) + path.sep),
    `the bin is the clone's own (${fs.realpathSync(bin)}), not one from elsewhere on the PATH`,
  );
});
