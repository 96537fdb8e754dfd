/**
 * POL-1: the outbound_tls_policy template shipped in the outbound_tls package
 * documents every exemption as the plan applies it (delivery/plan, DANE-5).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { EXEMPTIONS } from '#lib/policy-table/rule';
import { REPO_ROOT } from '../fixtures/haraka-instance';

const TEMPLATES = [
  path.join(REPO_ROOT, 'packages', 'haraka-plugin-outbound_tls', 'config', 'outbound_tls_policy'),
  path.join(REPO_ROOT, 'config', 'outbound_tls_policy'),
].filter((file) => fs.existsSync(file));

/**
 * The comment lines that describe one exemption: its line in the list
 * (`#                          dane      …`) and the deeper-indented lines under it.
 */
function exemptionText(template: string, part: string): string {
  const lines = template.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^#\\s{20,29}${part}\\s{2,}\\S`).test(line));
  assert.notEqual(start, -1, `the template documents exempt=${part}`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !/^#\s{30,}\S/.test(line));
  return [lines[start], ...rest.slice(0, end === -1 ? rest.length : end)].join('\n');
}

test('POL-1/DANE: the shipped policy table template says what exempt=dane does (no TLSA lookup, no DANE check), never that it has no effect', () => {
  assert.ok(TEMPLATES.length > 0);
  for (const file of TEMPLATES) {
    const template = fs.readFileSync(file, 'utf8');
    for (const part of EXEMPTIONS) exemptionText(template, part);
    const dane = exemptionText(template, 'dane');
    assert.doesNotMatch(dane, /no effect|ahead of DANE/, `${file}: ${dane}`);
    assert.match(dane, /TLSA/, `${file}: ${dane}`);
  }
});
