/**
 * The reporter of `npm test` (scripts/run-tests.ts): instead of thousands of
 * lines of TAP, a line per failure as it happens, then every failure in full
 * (its name with the suites around it, its source file, the error and what
 * the file wrote to stdout/stderr when it crashed) and a summary: files,
 * tests, pass, fail, skipped, todo, cancelled, duration. The full TAP of the
 * run goes to `test-results.tap` beside it (Node's own `tap` reporter, a
 * second destination); `npm test -- --tap` prints it instead.
 *
 * A custom reporter for Node's test runner is an async generator over the
 * runner's events (`test:start`, `test:pass`, `test:fail`, `test:stderr`,
 * `test:diagnostic` …) yielding the text to write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';

const root = path.resolve(__dirname, '..', '..');

/** Lines of a crashed file's own output kept for its failure report. */
const MAX_OUTPUT_LINES = 60;

/** The fields of the runner's events this reporter reads (Node 20's `TestsStream`). */
interface TestEvent {
  type: string;
  data: {
    name?: string;
    nesting?: number;
    file?: string;
    message?: string;
    skip?: string | boolean;
    todo?: string | boolean;
    details?: { duration_ms?: number; type?: string; error?: unknown };
  };
}

interface Failure {
  name: string;
  file: string;
  error: unknown;
  output: string[];
}

/** The source file of a compiled test: dist/test/x.test.js → test/x.test.ts, packages/p/dist/a.test.js → packages/p/src/a.test.ts. */
function sourceFile(compiled: string): string {
  const relative = path.relative(root, compiled);
  const ts = relative.replace(/\.js$/, '.ts');
  const candidates = [
    ts.replace(/^dist\//, ''),
    ts.replace(/^(packages\/[^/]+)\/dist\//, '$1/src/'),
    ts.replace(/^(packages\/[^/]+)\/dist\//, '$1/'),
  ];
  return candidates.find((c) => c !== ts && fs.existsSync(path.join(root, c))) ?? relative;
}

/** The error a failure carries, without the runner's wrapper (`ERR_TEST_FAILURE` holds the real one as its cause). */
function describeError(error: unknown): string {
  const cause =
    (error as { code?: string; cause?: unknown } | undefined)?.code === 'ERR_TEST_FAILURE' ? (error as { cause?: unknown }).cause : error;
  return typeof cause === 'string' ? cause : inspect(cause, { depth: 4 });
}

function indent(text: string, by = '   '): string {
  return text
    .split('\n')
    .map((line) => (line ? by + line : by.trimEnd()))
    .join('\n');
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return seconds < 60 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

async function* summaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const names = new Map<string, string[]>(); // file → names of the tests open at each nesting level
  const output = new Map<string, string[]>(); // file → its own stdout/stderr lines (kept for a crash report)
  const failedFiles = new Set<string>();
  const files = new Set<string>();
  const failures: Failure[] = [];
  const counts = new Map<string, string>(); // the runner's own totals: tests, pass, fail, …
  const started = Date.now();

  for await (const event of source) {
    const { data } = event;
    const file = data.file ?? '';
    if (file && event.type.startsWith('test:')) files.add(file);
    switch (event.type) {
      case 'test:start': {
        const stack = names.get(file) ?? [];
        stack.length = data.nesting ?? 0;
        stack.push(data.name ?? '');
        names.set(file, stack);
        break;
      }
      case 'test:stdout':
      case 'test:stderr': {
        const lines = output.get(file) ?? [];
        lines.push(...(data.message ?? '').replace(/\n$/, '').split('\n'));
        output.set(file, lines.slice(-MAX_OUTPUT_LINES));
        break;
      }
      case 'test:fail': {
        const wholeFile = data.nesting === 0 && data.name === file;
        const cause = (data.details?.error as { failureType?: string } | undefined)?.failureType;
        // A suite (or a file) whose subtests failed: those failures are reported themselves.
        if (cause === 'subtestsFailed' || (wholeFile && failedFiles.has(file))) break;
        const stack = (names.get(file) ?? []).slice(0, (data.nesting ?? 0) + 1);
        stack[data.nesting ?? 0] = data.name ?? '';
        const name = wholeFile ? '(the file itself: it crashed, or failed outside any test)' : stack.join(' > ');
        failedFiles.add(file);
        failures.push({ name, file, error: data.details?.error, output: wholeFile ? (output.get(file) ?? []) : [] });
        yield `✖ ${name}  (${sourceFile(file)})\n`;
        break;
      }
      case 'test:diagnostic':
        if (data.nesting === 0) {
          const m = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\S+)$/.exec(data.message ?? '');
          if (m?.[1] && m[2]) counts.set(m[1], m[2]);
        }
        break;
    }
  }

  if (failures.length > 0) {
    yield `\n${failures.length} failure${failures.length === 1 ? '' : 's'}:\n`;
    for (const [i, failure] of failures.entries()) {
      yield `\n${i + 1}) ${failure.name}\n   file: ${sourceFile(failure.file)}\n${indent(describeError(failure.error))}\n`;
      if (failure.output.length > 0)
        yield `   its output (last ${failure.output.length} lines):\n${indent(failure.output.join('\n'), '   | ')}\n`;
    }
  }
  const get = (key: string) => counts.get(key) ?? '0';
  const duration = Number(counts.get('duration_ms') ?? Date.now() - started);
  yield [
    '',
    `files      ${files.size}${failedFiles.size ? ` (${failedFiles.size} with failures)` : ''}`,
    `tests      ${get('tests')} (in ${get('suites')} suites)`,
    `pass       ${get('pass')}`,
    `fail       ${get('fail')}`,
    `skipped    ${get('skipped')}`,
    `todo       ${get('todo')}`,
    `cancelled  ${get('cancelled')}`,
    `duration   ${formatDuration(duration)}`,
    '',
  ].join('\n');
}

// Node's runner takes the module's default export: `export =` makes the CommonJS module the function itself.
export = summaryReporter;
