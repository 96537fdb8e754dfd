/**
 * `npm test`: runs every compiled `*.test.js` with Node's test runner (Node 20
 * has no glob support on the command line): the unit tests beside the library's
 * modules (packages/outbound-security/dist) and the integration and end-to-end
 * tests (dist/test). Arguments narrow the run: `npm test -- e2e` runs the
 * files whose path contains "e2e".
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const roots = [path.join(root, 'dist'), ...fs.readdirSync(path.join(root, 'packages')).map((p) => path.join(root, 'packages', p, 'dist'))];
const filters = process.argv.slice(2);

function findTests(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : findTests(full);
    return entry.name.endsWith('.test.js') ? [full] : [];
  });
}

const files = roots
  .filter((dir) => fs.existsSync(dir))
  .flatMap(findTests)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${roots.join(', ')}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=300000', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
