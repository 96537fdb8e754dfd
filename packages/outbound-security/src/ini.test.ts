import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brokenHeaderLines, checkIni, formatWarning, unknownKeys, type IniFile } from './ini';
import { OUTBOUND_MX_SCHEMA, parseOutboundMxConfig } from './config/outbound-mx';
import { OUTBOUND_TLS_SCHEMA } from './config/outbound-tls';

/** haraka-config's own ini reader, as Haraka and the CLI read the files. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const iniReader = require('haraka-config/lib/readers/ini') as { parseIni(name: string, options: object, text: string): IniFile };

function parse(text: string): IniFile {
  return iniReader.parseIni('outbound_mx.ini', {}, text);
}

test('PKG-4: an unknown key is reported with file, section and key', () => {
  const warnings = unknownKeys('outbound_mx.ini', parse('[main]\nmax_mxx=3\nmax_mx=4\n'), OUTBOUND_MX_SCHEMA);
  assert.equal(warnings.length, 1);
  assert.match(formatWarning(warnings[0]!), /^outbound_mx\.ini \[main\] max_mxx: unknown key, ignored \(known in \[main\]: max_mx, /);
});

test('PKG-4: an unknown section is reported with file and section; [redis] of outbound_tls.ini takes any key', () => {
  const warnings = unknownKeys(
    'outbound_tls.ini',
    parse('[metric]\nlisten=127.0.0.1:9465\n[redis]\nhost=x\nport=1\n'),
    OUTBOUND_TLS_SCHEMA,
  );
  assert.deepEqual(
    warnings.map((w) => formatWarning(w)),
    ['outbound_tls.ini [metric]: unknown section (known: main, redis, metrics, tlsrpt, requiretls), ignored'],
  );
  assert.deepEqual(
    unknownKeys('outbound_mx.ini', parse('; only comments\n'), OUTBOUND_MX_SCHEMA),
    [],
    'the [main] haraka-config adds is not reported',
  );
});

test('PKG-4: haraka-config reads a header without its "]" as a key of the section before it; that is reported as a broken header', () => {
  const ini = parse('[main]\nmax_mx=3\n[dns\nservers=127.0.0.1:53\n[addresses]\nallow=\n');
  // What haraka-config does with it (node_modules/haraka-config/lib/readers/ini.js): no [dns] section,
  // "[dns" becomes a key of [main] and the keys after it land in [main] too.
  assert.equal(ini.dns, undefined);
  assert.ok(Object.keys(ini.main ?? {}).includes('[dns'));
  assert.equal(ini.main?.servers, '127.0.0.1:53');
  const shown = unknownKeys('outbound_mx.ini', ini, OUTBOUND_MX_SCHEMA).map((w) => formatWarning(w));
  assert.equal(shown.length, 2);
  assert.match(shown[0]!, /^outbound_mx\.ini \[main\] \[dns: broken section header "\[dns" \(no closing "\]"\)/);
  assert.match(shown[1]!, /^outbound_mx\.ini \[main\] servers: unknown key, ignored \(it follows the broken header "\[dns"\)/);
});

test('PKG-4: in the raw text, a line that opens like a header but is not one is found with its line number', () => {
  const text = '[main]\nmax_mx=3\n[dns] ; resolvers\nservers=127.0.0.1\n[addresses]\n';
  const warnings = brokenHeaderLines('outbound_mx.ini', text);
  assert.equal(warnings.length, 1);
  assert.match(formatWarning(warnings[0]!), /^outbound_mx\.ini \[main\] \[dns\] ; resolvers: line 3 is not a section header/);
  assert.deepEqual(brokenHeaderLines('outbound_mx.ini', '[main]\n  [dns]  \n'), [], 'spaces around a header are fine');
  // checkIni reports a broken header seen both ways once.
  const broken = '[main]\n[dns\nservers=127.0.0.1\n';
  const all = checkIni('outbound_mx.ini', parse(broken), OUTBOUND_MX_SCHEMA, broken);
  assert.equal(all.filter((w) => w.key === '[dns').length, 1);
});

test('PKG-4: an unknown range name in [addresses] refuse is an error naming it (a typo would quietly stop refusing a range)', () => {
  assert.throws(
    () => parseOutboundMxConfig({ addresses: { refuse: 'loopback, bogusrange' } }),
    /\[addresses\] refuse=loopback, bogusrange: unknown range name bogusrange/,
  );
  assert.throws(() => parseOutboundMxConfig({ addresses: { refuse: 'privte' } }), /unknown range name privte/);
  const ok = parseOutboundMxConfig({ addresses: { refuse: 'private, uniqueLocal, carrierGradeNat, loopback' } });
  assert.deepEqual(ok.refusedRanges, ['private', 'uniqueLocal', 'carrierGradeNat', 'loopback']);
});
