/**
 * OPS-6: what loading the two plugins costs every Haraka process at every
 * start (three processes per `nodes=2` cluster). psl, PKI.js with asn1js, TLS
 * reporting's modules (with nodemailer's DKIM signer) and prom-client's index
 * (its default metrics and @opentelemetry/api) cost ≈ 120 ms of CPU together
 * and are needed only by a wildcard policy or parent rule, a DANE-TA path,
 * `[tlsrpt] enabled` and nothing, respectively: they are loaded on first use.
 * Each check runs in a new Node process, so what the test runner itself loaded
 * does not count.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';

const run = promisify(execFile);

const LAZY = [
  { what: 'psl', pattern: /node_modules\/psl\// },
  { what: 'PKI.js', pattern: /node_modules\/pkijs\// },
  { what: 'asn1js', pattern: /node_modules\/asn1js\// },
  { what: "TLS reporting's service", pattern: /outbound-security\/dist\/tlsrpt\/service\.js$/ },
  { what: 'nodemailer', pattern: /node_modules\/nodemailer\// },
  { what: "prom-client's index", pattern: /node_modules\/prom-client\/index\.js$/ },
  { what: '@opentelemetry/api', pattern: /node_modules\/@opentelemetry\/api\// },
];

/** The files a new Node process has loaded after running `script`. */
async function loadedAfter(script: string): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['-e', `${script}; console.log(JSON.stringify(Object.keys(require.cache)))`], {
    cwd: __dirname,
  });
  return JSON.parse(stdout) as string[];
}

const LOAD_PLUGINS = "require('haraka-plugin-outbound_tls'); require('haraka-plugin-outbound_mx')";

test('OPS-6: loading both plugins loads none of the modules that are needed only later', async () => {
  const loaded = await loadedAfter(LOAD_PLUGINS);
  assert.ok(
    loaded.some((file) => file.includes('outbound-security/dist/haraka/outbound-tls.js')),
    'the library was loaded',
  );
  const early = LAZY.filter(({ pattern }) => loaded.some((file) => pattern.test(file))).map(({ what }) => what);
  assert.deepEqual(early, [], `loaded at startup: ${early.join(', ')}`);
});

test('OPS-6: each of them is loaded when it is first needed, and works', async () => {
  const lib = (file: string): string =>
    `require(${JSON.stringify(path.resolve(__dirname, '../../../packages/outbound-security/dist', file))})`;
  const psl = await loadedAfter(
    `${LOAD_PLUGINS}; const d = ${lib('domain.js')}; if (!d.isPublicSuffix('co.uk') || d.isPublicSuffix('example.co.uk')) process.exit(3)`,
  );
  assert.ok(psl.some((file) => /node_modules\/psl\//.test(file)));

  // An empty SEQUENCE decodes (asn1js) and has no subject: both decoders are reached.
  const pki = await loadedAfter(
    `${LOAD_PLUGINS};` +
      `const f = ${lib('dane/certificate-facts.js')};` +
      `try { f.certificateFacts(Buffer.from('3000', 'hex')) } catch (err) { if (!/subject/.test(err.message)) throw err }`,
  );
  assert.ok(pki.some((file) => /node_modules\/pkijs\//.test(file)));
  assert.ok(pki.some((file) => /node_modules\/asn1js\//.test(file)));
});

test("OPS-3: the prom-client classes required from their files are the index's own", async () => {
  const { stdout } = await run(
    process.execPath,
    [
      '-e',
      "const i = require('prom-client'); const same = ['registry:Registry', 'counter:Counter', 'gauge:Gauge', 'cluster:AggregatorRegistry']" +
        ".every((p) => { const [file, name] = p.split(':'); return require('prom-client/lib/' + file) === i[name] });" +
        'console.log(same)',
    ],
    { cwd: __dirname },
  );
  assert.equal(stdout.trim(), 'true');
});
