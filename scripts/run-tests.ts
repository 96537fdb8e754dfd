/**
 * `npm test`: runs every compiled `*.test.js` with Node's test runner (Node 20
 * has no glob support on the command line): the unit tests beside the library's
 * modules (packages/outbound-security/dist) and the integration and end-to-end
 * tests (dist/test). Arguments narrow the run: `npm test -- e2e` runs the
 * files whose path (from the repository root) contains "e2e".
 *
 * Output: a line per failure as it happens, then each failure in full and a
 * summary (scripts/test-reporter.ts). The full TAP of every run is written to
 * test-results.tap (git-ignored); `npm test -- --tap` (or TAP=1) prints the
 * TAP on stdout instead of the summary. The exit status is the runner's:
 * non-zero when any test or file fails.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const roots = [path.join(root, 'dist'), ...fs.readdirSync(path.join(root, 'packages')).map((p) => path.join(root, 'packages', p, 'dist'))];
const args = process.argv.slice(2);
const tapOnStdout = args.includes('--tap') || (process.env.TAP !== undefined && process.env.TAP !== '' && process.env.TAP !== '0');
const filters = args.filter((a) => a !== '--tap');
const tapFile = path.join(root, 'test-results.tap');

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
  .filter((f) => filters.length === 0 || filters.some((x) => path.relative(root, f).includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${roots.join(', ')}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
const reporters = tapOnStdout
  ? ['--test-reporter=tap', '--test-reporter-destination=stdout']
  : [`--test-reporter=${path.join(__dirname, 'test-reporter.js')}`, '--test-reporter-destination=stdout'];
if (!tapOnStdout)
  console.log(
    `${files.length} test files${filters.length ? ` matching ${filters.join(', ')}` : ''}; full TAP: ${path.relative(root, tapFile)}`,
  );
const result = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    ...reporters,
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
