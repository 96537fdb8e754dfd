#!/usr/bin/env node
/**
 * The `haraka-outbound` command on the PATH (PKG-2). Hand-written and
 * committed, not built: npm links a package's bin only when its file exists at
 * install time, and in a checkout `npm ci` runs before dist/ is built. So this
 * file is always there to be linked, and it runs the compiled CLI, or says how
 * to build it when it is not built yet.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const cliPath = path.join(__dirname, '..', 'dist', 'cli', 'cli.js');
if (fs.existsSync(cliPath)) {
  require(cliPath)
    .main(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    });
} else {
  process.stderr.write(
    `haraka-outbound: the CLI is not built yet (${cliPath} is missing): run \`npm run build\` in the repository, then try again\n`,
  );
  process.exitCode = 1;
}
