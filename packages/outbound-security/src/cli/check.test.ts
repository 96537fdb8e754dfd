import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { checkRequireTls } from './check';

function configDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-requiretls-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const on = { requiretls: { enabled: true, tlsRequiredHeader: 'honour' as const } };
const off = { requiretls: { enabled: false, tlsRequiredHeader: 'ignore' as const } };

test('RT-1, RT-6: check warns when REQUIRETLS is enabled but Haraka has no inbound STARTTLS to offer it in', () => {
  const complete = configDir({ plugins: 'tls\noutbound_tls\noutbound_mx\n', 'tls_key.pem': 'k', 'tls_cert.pem': 'c' });
  const noPlugin = configDir({ plugins: '# tls\noutbound_tls\noutbound_mx\n', 'tls_key.pem': 'k', 'tls_cert.pem': 'c' });
  const noCert = configDir({ plugins: 'haraka-plugin-tls\noutbound_tls\noutbound_mx\n', 'tls_key.pem': 'k' });
  try {
    const ok = checkRequireTls(complete, on);
    assert.equal(ok.mark, 'ok');
    assert.match(ok.text, /^on: advertised after STARTTLS.*TLS-Required: No honoured$/);
    const plugin = checkRequireTls(noPlugin, on);
    assert.equal(plugin.mark, 'warn');
    assert.match(plugin.text, /tls plugin is not in config\/plugins/);
    const cert = checkRequireTls(noCert, on);
    assert.equal(cert.mark, 'warn');
    assert.match(cert.text, /tls_cert\.pem missing/);
    // Control: off says so, whatever the TLS setup.
    const disabled = checkRequireTls(noPlugin, off);
    assert.equal(disabled.mark, 'ok');
    assert.match(disabled.text, /^off .*555.*TLS-Required: No ignored$/);
  } finally {
    for (const dir of [complete, noPlugin, noCert]) fs.rmSync(dir, { recursive: true, force: true });
  }
});
