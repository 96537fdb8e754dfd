import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { FileTlsReportStore } from './file-store';
import { openTlsReportStore, processHolder, TLSRPT_SUBDIR } from './open';
import { isToken } from './store';

test('RPT-1, ST-1: with the file store, TLS report counts live under data_dir (Redis: test/integration/tlsrpt-redis-store)', async () => {
  const file = openTlsReportStore({ dataDir: '/var/lib/haraka' });
  assert.ok(file instanceof FileTlsReportStore);
  assert.equal(file.description, `file:${path.join('/var/lib/haraka', TLSRPT_SUBDIR)}`);
  await file.close();
});

test('RPT-3: lock holder names are valid and differ between calls', () => {
  const [a, b] = [processHolder(), processHolder()];
  assert.ok(isToken(a) && isToken(b));
  assert.notEqual(a, b);
  assert.ok(a.includes(String(process.pid)));
});
