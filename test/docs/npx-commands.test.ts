/**
 * PKG-2: no line of the repository (READMEs, docs, config templates, messages
 * in the code) shows a command that could fetch our own tools from a registry
 * by name: `npx` (and `npm exec`) of `haraka-outbound` always carries
 * `--no-install`, so it runs the installed CLI or fails, never someone else's
 * package of that name.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../fixtures/haraka-instance';

/** Directories that hold no text of ours: dependencies, build output, run state. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'data', 'queue', '.haraka-run']);
const TEXT_FILE = /\.(md|ts|mjs|js|json|ini|txt|sh)$|(^|\/)(config\/[^/.]+|outbound_tls_policy|run)$/;

/** An npx or npm exec of haraka-outbound, with the options written before the name. */
const INVOCATION = /\b(?:npx|npm\s+exec)((?:\s+-\S+)*)\s+haraka-outbound\b/g;

function textFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED_DIRS.has(entry.name) ? [] : textFiles(full);
    const relative = path.relative(REPO_ROOT, full);
    return entry.isFile() && entry.name !== 'package-lock.json' && TEXT_FILE.test(relative) ? [full] : [];
  });
}

/** The lines of `text` that run haraka-outbound through npx without --no-install. */
function registryReachingLines(text: string): number[] {
  return text.split('\n').flatMap((line, i) => {
    const unsafe = [...line.matchAll(INVOCATION)].some((m) => !(m[1] ?? '').split(/\s+/).includes('--no-install'));
    return unsafe ? [i + 1] : [];
  });
}

test('PKG-2: the invocation check finds npx and npm exec of haraka-outbound without --no-install, and only those', () => {
  const name = ['haraka', 'outbound'].join('-');
  assert.deepEqual(registryReachingLines(`npx ${name} --help`), [1]);
  assert.deepEqual(registryReachingLines(`ok\n\`npx --yes ${name} table list\``), [2]);
  assert.deepEqual(registryReachingLines(`npm exec ${name} -- --help`), [1]);
  assert.deepEqual(registryReachingLines(`npx --no-install ${name} --help`), []);
  assert.deepEqual(registryReachingLines(`npx --no-install ${name}-x; ${name} ratchet list`), []);
});

test('PKG-2: no README, doc, config template or message runs haraka-outbound through npx without --no-install', () => {
  const files = textFiles(REPO_ROOT);
  assert.ok(
    files.some((f) => path.relative(REPO_ROOT, f) === 'README.md'),
    'the README is among the files checked',
  );
  const found = files.flatMap((file) =>
    registryReachingLines(fs.readFileSync(file, 'utf8')).map((line) => `${path.relative(REPO_ROOT, file)}:${line}`),
  );
  assert.deepEqual(found, [], 'lines that would ask a registry for haraka-outbound by name');
});
