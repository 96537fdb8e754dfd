import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { signReport } from './dkim';
import { DEFAULT_REPORT_LIMITS } from './limits';
import { MemoryTlsReportStore } from './memory-store';
import { noPolicyFound } from './record';
import { TlsReporting } from './service';
import type { TlsReportingConfig } from './settings';

const ON: TlsReportingConfig = {
  kind: 'on',
  settings: {
    identity: { sender: 'tlsrpt@sender.example', submitter: 'sender.example', organization: 'Sender', contact: 'tlsrpt@sender.example' },
    dkim: null,
    sendDaysWithoutFailures: true,
    delayWindowMs: 0,
    flushIntervalMs: 60_000,
    maxPending: 100,
    limits: DEFAULT_REPORT_LIMITS,
  },
};
const STORE = { dataDir: '/nonexistent' };

function reporting(): { service: TlsReporting; stores: MemoryTlsReportStore[]; closed: string[] } {
  const stores: MemoryTlsReportStore[] = [];
  const closed: string[] = [];
  const service = new TlsReporting({
    txt: () => Promise.resolve({ kind: 'nodata' }) as never,
    post: () => Promise.resolve({ ok: true, status: 200 }),
    queueMail: () => Promise.resolve(),
    log: () => undefined,
    scheduler: { tickMs: 3_600_000 },
    openStore: () => {
      const store = new MemoryTlsReportStore();
      const close = store.close.bind(store);
      store.close = () => (closed.push(`store ${stores.indexOf(store)}`), close());
      stores.push(store);
      return store;
    },
  });
  return { service, stores, closed };
}

test('RPT-1: off by default and when misconfigured: nothing opened, nothing recorded', async () => {
  const { service, stores } = reporting();
  assert.equal(service.apply({ kind: 'off' }, STORE), 'unchanged');
  assert.equal(service.apply({ kind: 'misconfigured', reason: 'no sender' }, STORE), 'unchanged');
  service.record({ policyDomain: 'example.com', policy: noPolicyFound('example.com'), result: 'success' });
  assert.equal(stores.length, 0);
  assert.equal(service.stats(), null);
  await service.close();
});

test('RPT-1, PKG-4: on: sessions reach the store; a settings change restarts (pending counts written first); off closes the store', async () => {
  const { service, stores, closed } = reporting();
  assert.equal(service.apply(ON, STORE), 'started');
  assert.equal(service.apply(ON, STORE), 'unchanged');
  service.record({ policyDomain: 'example.com', day: '2025-03-14', policy: noPolicyFound('example.com'), result: 'success' });
  assert.equal(service.stats()?.recorded, 1);
  const changed: TlsReportingConfig = { kind: 'on', settings: { ...ON.settings, delayWindowMs: 1000 } };
  assert.equal(service.apply(changed, STORE), 'restarted');
  assert.equal(service.apply({ kind: 'off' }, STORE), 'stopped');
  await service.close();
  assert.deepEqual(closed, ['store 0', 'store 1']);
  const counts = await stores[0]?.counts('2025-03-14', 'example.com');
  assert.equal(counts?.policies[0]?.successes, 1, 'written at the restart');
});

test('RPT-3: report messages are DKIM-signed over the TLS report header fields', async () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const message = Buffer.from(
    'From: tlsrpt@sender.example\r\nTo: reports@example.com\r\nSubject: Report Domain: example.com\r\n' +
      'TLS-Report-Domain: example.com\r\nTLS-Report-Submitter: sender.example\r\n\r\nbody\r\n',
  );
  const signed = (
    await signReport(message, {
      keyFile: '/k.pem',
      selector: 'tls2025',
      domain: 'sender.example',
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    })
  ).toString();
  const header = /^DKIM-Signature: ([^]*?)\r\n(?! )/.exec(signed)?.[1]?.replace(/\r\n /g, '') ?? '';
  assert.match(header, /d=sender\.example;/);
  assert.match(header, /s=tls2025;/);
  assert.match(header, /h=[^;]*TLS-Report-Domain:TLS-Report-Submitter/i);
  assert.ok(signed.endsWith(message.toString()), 'the message itself unchanged');
});
