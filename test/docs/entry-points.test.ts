/**
 * ARC-3: thin entry points. Each plugin's index.ts only registers and hands
 * over to the library's `haraka/` modules; the CLI's entry parses with
 * `util.parseArgs` and dispatches to one file per command. Read as source
 * text: what a reviewer would check by eye, kept by CI.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../fixtures/haraka-instance';

const PLUGINS = ['haraka-plugin-outbound_mx', 'haraka-plugin-outbound_tls'];
const CLI_DIR = path.join(REPO_ROOT, 'packages', 'outbound-security', 'src', 'cli');

/** The module specifiers a TypeScript file imports or re-exports from. */
function specifiers(source: string): string[] {
  return [...source.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms)].map((m) => m[1] as string);
}

/** Each exported function's body, statement lines only (no blank lines, no comments). */
function exportedBodies(source: string): Array<{ name: string; statements: number }> {
  return [...source.matchAll(/^export function (\w+)\([^)]*\)[^{]*\{\n([\s\S]*?)\n\}/gm)].map((m) => ({
    name: m[1] as string,
    statements: (m[2] as string).split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('//')).length,
  }));
}

test('ARC-3: each plugin entry imports only the library’s haraka/ modules (and node:path) and hands over in one or two lines', () => {
  for (const plugin of PLUGINS) {
    const file = path.join(REPO_ROOT, 'packages', plugin, 'index.ts');
    const source = fs.readFileSync(file, 'utf8');
    const imported = specifiers(source);
    assert.ok(imported.length > 0, file);
    const outside = imported.filter((s) => s !== 'node:path' && !/^haraka-outbound-security\/haraka\/[\w-]+$/.test(s));
    assert.deepEqual(outside, [], `${file} imports beyond the library's haraka/ modules`);
    const bodies = exportedBodies(source);
    assert.ok(
      bodies.some((b) => b.name === 'register'),
      `${file}: register`,
    );
    const thick = bodies.filter((b) => b.statements > 2).map((b) => `${b.name} (${b.statements} lines)`);
    assert.deepEqual(thick, [], `${file}: exported functions with logic of their own`);
    assert.ok(source.split('\n').length <= 60, `${file}: ${source.split('\n').length} lines`);
  }
});

test('ARC-3: the CLI entry parses with util.parseArgs and every command it dispatches to has a file of its own', () => {
  const source = fs.readFileSync(path.join(CLI_DIR, 'cli.ts'), 'utf8');
  assert.match(source, /import \{ parseArgs as parseCommandLine \} from 'node:util';/);
  const commands = [...source.matchAll(/import \{ (\w+)Command, type \w+ \} from '\.\/([\w-]+)';/g)];
  assert.ok(commands.length >= 9, `${commands.length} command imports`);
  for (const [, command, file] of commands) {
    const own = fs.readFileSync(path.join(CLI_DIR, `${file}.ts`), 'utf8');
    assert.match(own, new RegExp(`export const ${command}Command: CliCommand<`), `${file}.ts defines ${command}Command`);
  }
});
