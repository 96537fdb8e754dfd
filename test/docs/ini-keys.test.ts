/**
 * DOC-2: every key of every shipped ini file is documented, with its section,
 * in a table of the README, and (for a plugin's ini) in a table of that
 * plugin's README, which is what `haraka -h <plugin>` shows. Keys that the
 * file shows commented out (`;enabled=false`, `;host=127.0.0.1`) count: they
 * are keys an admin may set. The policy table's levels, options and
 * exemptions, read from the template the outbound_tls package ships, must be
 * named in both READMEs too. The repository's own config/ (what `npm start`
 * runs with) is checked against the README, except files identical to
 * Haraka's stock copy (Haraka documents those).
 *
 * A key counts as documented when a Markdown table row names it in backticks
 * (`` `key` ``) together with its section (`` `[section]` ``), and the row's
 * first cell names the file, or the row sits under a heading that does.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const README = path.join(ROOT, 'README.md');

interface IniKey {
  section: string;
  key: string;
}

/** Sections and keys of an ini file as haraka-config reads it (keys before any section are in `main`), commented-out keys included. */
export function iniKeys(text: string): IniKey[] {
  const keys: IniKey[] = [];
  let section = 'main';
  for (const line of text.split(/\r?\n/)) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header?.[1]) {
      section = header[1].trim();
      continue;
    }
    const key = /^\s*;?\s*([A-Za-z_][\w.]*(?:\[\])?)\s*=/.exec(line)?.[1];
    if (key && !keys.some((k) => k.section === section && k.key === key)) keys.push({ section, key });
  }
  return keys;
}

/** The `(file, section, key)` triples a Markdown document's tables document. */
export function documentedKeys(markdown: string): Set<string> {
  const found = new Set<string>();
  let headingFile: string | undefined;
  for (const line of markdown.split('\n')) {
    if (/^#{1,6}\s/.test(line)) {
      headingFile = /([\w.-]+\.ini)\b/.exec(line)?.[1];
      continue;
    }
    if (!line.startsWith('|')) continue;
    const file = /^\|\s*`([\w.-]+\.ini)`\s*\|/.exec(line)?.[1] ?? headingFile;
    const sections = [...line.matchAll(/`\[([\w.-]+)\]`/g)].map((m) => m[1]);
    const keys = [...line.matchAll(/`([A-Za-z_][\w.]*(?:\[\])?)`/g)].map((m) => m[1]).filter((k) => !k?.endsWith('.ini'));
    for (const section of sections) for (const key of keys) found.add(`${file} [${section}] ${key}`);
  }
  return found;
}

/** What a policy table line may say, from the shipped template: levels, options (`match=`…) and exemptions. */
export function policyTableWords(template: string): string[] {
  const lines = template.split('\n');
  const levels = lines.flatMap((l) => /^# {3}([a-z]+) {2,}\S/.exec(l)?.[1] ?? []);
  const options = lines.flatMap((l) => /^# {3}([a-z_]+)=[A-Za-z]/.exec(l)?.[1] ?? []).map((o) => `${o}=`);
  const exemptions = lines.flatMap((l) => /^#\s{20,29}([a-z-]+)\s{2,}\S/.exec(l)?.[1] ?? []);
  return [...levels, ...options, ...exemptions];
}

/** Words of `words` that no backticked span of `markdown` carries. */
function unnamed(markdown: string, words: string[]): string[] {
  const spans = [...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? '');
  return words.filter((w) => !spans.some((s) => (w.endsWith('=') ? s.includes(w) : new RegExp(`(^|[^\\w-])${w}($|[^\\w-])`).test(s))));
}

const pluginDirs = fs
  .readdirSync(path.join(ROOT, 'packages'))
  .filter((p) => p.startsWith('haraka-plugin-'))
  .map((p) => path.join(ROOT, 'packages', p));

function shippedInis(): { file: string; readmes: string[] }[] {
  const plugins = pluginDirs.flatMap((dir) =>
    fs
      .readdirSync(path.join(dir, 'config'))
      .filter((f) => f.endsWith('.ini'))
      .map((f) => ({ file: path.join(dir, 'config', f), readmes: [README, path.join(dir, 'README.md')] })),
  );
  const stock = path.join(ROOT, 'node_modules', 'Haraka', 'config');
  const repository = fs
    .readdirSync(path.join(ROOT, 'config'))
    .filter((f) => f.endsWith('.ini'))
    .filter((f) => {
      const haraka = path.join(stock, f);
      return !(fs.existsSync(haraka) && fs.readFileSync(haraka, 'utf8') === fs.readFileSync(path.join(ROOT, 'config', f), 'utf8'));
    })
    .map((f) => ({ file: path.join(ROOT, 'config', f), readmes: [README] }));
  return [...plugins, ...repository];
}

test('DOC-2: the ini and Markdown readers find sections, keys (commented out too) and table rows', () => {
  assert.deepEqual(iniKeys('listen=1\n[dns]\n; a comment: [x] y=1\nservers=\n;tries=2\n[redis]\n;host=127.0.0.1\n; port = 6379\n'), [
    { section: 'main', key: 'listen' },
    { section: 'dns', key: 'servers' },
    { section: 'dns', key: 'tries' },
    { section: 'redis', key: 'host' },
    { section: 'redis', key: 'port' },
  ]);
  const doc = '### a.ini\n| `[dns]` | `servers`, `tries` | x |\n## Other\n| `b.ini` | `[main]` | `listen` |\n| `[dns]` | `cache_mb` |\n';
  assert.deepEqual([...documentedKeys(doc)].sort(), [
    'a.ini [dns] servers',
    'a.ini [dns] tries',
    'b.ini [main] listen',
    'undefined [dns] cache_mb',
  ]);
  assert.deepEqual(unnamed('`may` / `verify` and `exempt=ratchet,mta-sts`', ['may', 'encrypt', 'exempt=', 'mta-sts', 'dane']), [
    'encrypt',
    'dane',
  ]);
});

test('DOC-2: every key of every shipped ini file is documented in the README, and in its plugin README', () => {
  const inis = shippedInis();
  const names = inis.map((i) => path.relative(ROOT, i.file));
  for (const must of [
    'packages/haraka-plugin-outbound_mx/config/outbound_mx.ini',
    'packages/haraka-plugin-outbound_tls/config/outbound_tls.ini',
    'config/smtp.ini',
  ]) {
    assert.ok(names.includes(must), `${must} is among the files checked (${names.join(', ')})`);
  }
  const documented = new Map<string, Set<string>>();
  const missing: string[] = [];
  for (const { file, readmes } of inis) {
    const keys = iniKeys(fs.readFileSync(file, 'utf8'));
    assert.ok(keys.length > 0, `${file} has keys`);
    for (const readme of readmes) {
      if (!documented.has(readme)) documented.set(readme, documentedKeys(fs.readFileSync(readme, 'utf8')));
      const inReadme = documented.get(readme) ?? new Set<string>();
      for (const { section, key } of keys) {
        const name = `${path.basename(file)} [${section}] ${key}`;
        if (!inReadme.has(name)) missing.push(`${path.relative(ROOT, readme)}: ${name}`);
      }
    }
  }
  assert.deepEqual(missing, [], 'ini keys without a row (file, `[section]`, `key`) in a README table');
});

test('DOC-2: the policy table template’s levels, options and exemptions are named in the README and the outbound_tls README', () => {
  const template = fs.readFileSync(path.join(ROOT, 'packages', 'haraka-plugin-outbound_tls', 'config', 'outbound_tls_policy'), 'utf8');
  const words = policyTableWords(template);
  assert.deepEqual(words.slice(0, 3), ['may', 'encrypt', 'verify'], 'the levels are read from the template');
  for (const option of ['match=', 'exempt=', 'auth_min_level=', 'requiretls='])
    assert.ok(words.includes(option), `options: ${words.join(' ')}`);
  assert.ok(words.includes('dane'), `exemptions: ${words.join(' ')}`);
  const missing = [README, path.join(ROOT, 'packages', 'haraka-plugin-outbound_tls', 'README.md')].flatMap((readme) =>
    unnamed(fs.readFileSync(readme, 'utf8'), words).map((w) => `${path.relative(ROOT, readme)}: ${w}`),
  );
  assert.deepEqual(missing, [], 'policy table words not named (in backticks)');
});
