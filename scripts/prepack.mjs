#!/usr/bin/env node
/**
 * `prepack` of every package (PKG-2): builds it (`tsc -b`, incremental) and
 * puts the repository's LICENSE and CHANGELOG.md beside its package.json, so
 * the tarball carries them. Runs in the package's directory.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packageDir = process.cwd();
for (const file of ['LICENSE', 'CHANGELOG.md']) fs.copyFileSync(path.join(root, file), path.join(packageDir, file));
const build = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', packageDir], {
  stdio: 'inherit',
});
process.exit(build.status ?? 1);
