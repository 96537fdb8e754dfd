/**
 * DOC-1: every rule ID cited anywhere in the repository's text (README files,
 * CHANGELOG, docs/, the shipped config templates, code comments, log messages
 * and test names of packages/, test/, bench/ and scripts/) is defined in
 * docs/, where a rule is defined by a list item opening with its ID in bold
 * (`- **MX-1** …`). A citation of an undefined ID fails the test with its
 * file and line.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOCS = path.join(ROOT, 'docs');

/** The areas rule IDs belong to (docs/README.md lists them). */
const AREAS = ['MX', 'STS', 'TLS', 'ST', 'OPS', 'PKG', 'POL', 'DANE', 'RPT', 'RT', 'ARC', 'DOC'];
/**
 * A cited ID: an area, a hyphen, a number. Case-sensitive, whole words, and
 * not a version (`TLS-1.2`) nor part of a longer hyphenated word (`TLS-1x`).
 */
const CITATION = new RegExp(`\\b(?:${AREAS.join('|')})-\\d+\\b(?![.]\\d|-?[A-Za-z])`, 'g');
/** A definition in docs/: a list item whose text opens with the ID in bold. */
const DEFINITION = new RegExp(`^\\s*[-*]\\s+\\*\\*((?:${AREAS.join('|')})-\\d+)\\b`, 'gm');

/** Files Haraka writes into docs/ when `npm start` runs from the checkout (PKG-2): copies of the plugin READMEs. */
const GENERATED_MARKER = '<!-- copied from the package haraka-plugin-';
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'data', 'queue', '.haraka-run']);

function walk(dir: string, keep: (file: string) => boolean): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED_DIRS.has(entry.name) ? [] : walk(full, keep);
    return entry.isFile() && keep(full) ? [full] : [];
  });
}

const isSource = (file: string) => /\.(ts|mjs|cjs|js|md)$/.test(file);

/** Every file whose text may cite a rule. */
function citingFiles(): string[] {
  const packages = fs.readdirSync(path.join(ROOT, 'packages')).map((p) => path.join(ROOT, 'packages', p));
  const files = [
    path.join(ROOT, 'README.md'),
    path.join(ROOT, 'CHANGELOG.md'),
    ...walk(DOCS, (f) => f.endsWith('.md')),
    ...walk(path.join(ROOT, 'test'), isSource),
    ...walk(path.join(ROOT, 'bench'), isSource),
    ...walk(path.join(ROOT, 'scripts'), isSource),
    ...walk(path.join(ROOT, 'config'), () => true),
    ...packages.flatMap((dir) => [
      ...walk(path.join(dir, 'src'), isSource),
      ...walk(path.join(dir, 'bin'), isSource),
      ...walk(path.join(dir, 'config'), () => true),
      ...fs
        .readdirSync(dir)
        .filter((name) => /\.(ts|md)$/.test(name))
        .map((name) => path.join(dir, name)),
    ]),
  ];
  return files.filter((f) => fs.existsSync(f) && !fs.readFileSync(f, 'utf8').startsWith(GENERATED_MARKER));
}

export function citations(text: string): { id: string; line: number }[] {
  return text.split('\n').flatMap((line, i) => [...line.matchAll(CITATION)].map((m) => ({ id: m[0], line: i + 1 })));
}

export function definitions(text: string): string[] {
  return [...text.matchAll(DEFINITION)].map((m) => m[1] ?? '');
}

function definedIds(): Map<string, string[]> {
  const where = new Map<string, string[]>();
  for (const file of walk(DOCS, (f) => f.endsWith('.md'))) {
    const text = fs.readFileSync(file, 'utf8');
    if (text.startsWith(GENERATED_MARKER)) continue;
    for (const id of definitions(text)) where.set(id, [...(where.get(id) ?? []), path.relative(ROOT, file)]);
  }
  return where;
}

test('DOC-1: the citation pattern finds rule IDs and leaves header names, versions and dates alone', () => {
  const undefinedExample = ['MX', '99'].join('-');
  const text = [
    `MX-1 and (STS-7, TLS-8): ${undefinedExample}`,
    'TLS-Required: No; TLS-Report-Domain; TLS-1.2; 2026-11-24T14:58:04Z; SHA2-256; DANE-EE; sts-policy-fetch-error',
    'RPT-1 … RPT-10; OPS-6’s figures; DANE-11.',
  ].join('\n');
  assert.deepEqual(
    citations(text).map((c) => `${c.line}:${c.id}`),
    ['1:MX-1', '1:STS-7', '1:TLS-8', `1:${undefinedExample}`, '3:RPT-1', '3:RPT-10', '3:OPS-6', '3:DANE-11'],
  );
  assert.deepEqual(definitions('- **MX-1** text\n  - **ST-7 A switch.** text\nnot a **TLS-1** definition'), ['MX-1', 'ST-7']);
});

test('DOC-1: docs/ defines each rule ID once, every area numbered from 1 without gaps', () => {
  const defined = definedIds();
  for (const area of AREAS) {
    const numbers = [...defined.keys()].filter((id) => id.startsWith(`${area}-`)).map((id) => Number(id.slice(area.length + 1)));
    assert.ok(numbers.length > 0, `docs/ defines no ${area} rule`);
    const missing = Array.from({ length: Math.max(...numbers) }, (_, i) => i + 1).filter((n) => !numbers.includes(n));
    assert.deepEqual(missing, [], `${area} rules missing from docs/`);
  }
  const twice = [...defined].filter(([, files]) => files.length > 1).map(([id, files]) => `${id} in ${files.join(', ')}`);
  assert.deepEqual(twice, [], 'rule IDs defined more than once');
});

test('DOC-1: every rule ID cited in the READMEs, CHANGELOG, docs, config templates, code and tests is defined in docs/', () => {
  const defined = definedIds();
  const files = citingFiles();
  for (const must of ['README.md', 'CHANGELOG.md', 'packages/outbound-security/src/tls/decision.ts', 'test/docs/rule-ids.test.ts']) {
    assert.ok(
      files.some((f) => path.relative(ROOT, f) === must),
      `${must} is among the files checked`,
    );
  }
  const undefinedCitations = files.flatMap((file) =>
    citations(fs.readFileSync(file, 'utf8'))
      .filter((c) => !defined.has(c.id))
      .map((c) => `${path.relative(ROOT, file)}:${c.line}: ${c.id}`),
  );
  assert.deepEqual(undefinedCitations, [], 'rule IDs cited but not defined in docs/');
});
