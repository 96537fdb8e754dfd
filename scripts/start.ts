/**
 * `npm start`: runs Haraka from this repository (config/ as its config, the
 * compiled plugins from plugins/), with the outbound queue in queue/ and the
 * plugins' state in data/. Prints where it listens and forwards signals.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const listen = /^\s*listen\s*=\s*(\S+)/m.exec(fs.readFileSync(path.join(root, 'config', 'smtp.ini'), 'utf8'))?.[1] ?? '[::0]:25';
for (const dir of ['queue', 'data']) fs.mkdirSync(path.join(root, dir), { recursive: true });

console.log(`Haraka with outbound_tls and outbound_mx: SMTP on ${listen} (mail submitted from localhost is relayed)`);
console.log(`config: ${path.join(root, 'config')}  queue: ${path.join(root, 'queue')}  state: ${path.join(root, 'data')}`);

const child = spawn(process.execPath, [path.join(root, 'node_modules', 'Haraka', 'bin', 'haraka'), '-c', root], {
  cwd: root,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
