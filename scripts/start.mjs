#!/usr/bin/env node
/**
 * `npm start`: runs Haraka from this repository with both plugins on their
 * embedded defaults: config/ is its configuration (the plugins' own defaults
 * come from their packages' config/), the outbound queue is queue/, the
 * plugins' state data/. Plain JavaScript because it runs before anything is
 * installed or built (PKG-5):
 *  - `npm install` only when node_modules is missing or older than package-lock.json
 *    (scripts/ensure-installed.mjs, also run before `npm test`);
 *  - `tsc -b`, which rebuilds only what changed;
 *  - then Haraka, with signals forwarded.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureInstalled } from './ensure-installed.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`${command} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

ensureInstalled();
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b']);

const listen = /^\s*listen\s*=\s*(\S+)/m.exec(fs.readFileSync(path.join(root, 'config', 'smtp.ini'), 'utf8'))?.[1] ?? '[::0]:25';
for (const dir of ['queue', 'data']) fs.mkdirSync(path.join(root, dir), { recursive: true });
console.log(`Haraka with outbound_tls and outbound_mx: SMTP on ${listen} (mail submitted from localhost is relayed)`);
console.log(`config: ${path.join(root, 'config')}  queue: ${path.join(root, 'queue')}  state: ${path.join(root, 'data')}`);

const child = spawn(process.execPath, [path.join(root, 'node_modules', 'Haraka', 'bin', 'haraka'), '-c', root], {
  cwd: root,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
