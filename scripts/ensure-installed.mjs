#!/usr/bin/env node
/**
 * Before `npm start` and `npm test` (PKG-5): `npm install` only when
 * node_modules is missing or older than package.json / package-lock.json (npm
 * writes node_modules/.package-lock.json after every install), so a fresh
 * clone needs one command and an installed checkout starts at once. Plain
 * JavaScript: it runs before anything is installed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function mtime(file) {
  try {
    return fs.statSync(path.join(root, file)).mtimeMs;
  } catch {
    return 0;
  }
}

export function ensureInstalled() {
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) {
    console.error(`Node.js 20 or later is needed (this is ${process.version})`);
    process.exit(1);
  }
  const installed = mtime('node_modules/.package-lock.json');
  if (installed !== 0 && installed >= mtime('package-lock.json') && installed >= mtime('package.json')) return;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`npm install failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) ensureInstalled();
