import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { installPluginDocs } from './plugin-docs';

test('PKG-2: the README goes to docs/<name>.md for `haraka -h`, once; an admin-written file is kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plugin-docs-'));
  try {
    const pkg = path.join(dir, 'pkg');
    fs.mkdirSync(pkg);
    fs.writeFileSync(path.join(pkg, 'README.md'), '# haraka-plugin-x\n');
    const haraka = path.join(dir, 'haraka');
    assert.equal(installPluginDocs('x', pkg, haraka).kind, 'skipped', 'no docs/: nothing written');
    fs.mkdirSync(path.join(haraka, 'docs'), { recursive: true });
    assert.equal(installPluginDocs('x', pkg, haraka).kind, 'installed');
    assert.match(fs.readFileSync(path.join(haraka, 'docs', 'x.md'), 'utf8'), /# haraka-plugin-x/);
    assert.equal(installPluginDocs('x', pkg, haraka).kind, 'current');
    fs.writeFileSync(path.join(pkg, 'README.md'), '# haraka-plugin-x\nnew\n');
    assert.equal(installPluginDocs('x', pkg, haraka).kind, 'installed', 'an upgrade refreshes our copy');
    fs.writeFileSync(path.join(haraka, 'docs', 'x.md'), 'my own notes\n');
    assert.equal(installPluginDocs('x', pkg, haraka).kind, 'skipped');
    assert.equal(fs.readFileSync(path.join(haraka, 'docs', 'x.md'), 'utf8'), 'my own notes\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
