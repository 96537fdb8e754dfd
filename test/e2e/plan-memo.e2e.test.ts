/**
 * End-to-end: OPS-6's kept plans (delivery/plan-memo.ts) through a real
 * Haraka with outbound_tls and outbound_mx, the tests' DNS server with TTLs
 * that let the answer cache keep what it is given, a real HTTPS policy server
 * and STARTTLS sinks with certificates from the tests' CA. outbound_mx answers
 * the next message to a domain from the plan it made for the last one; each
 * test changes one thing a plan was made from and shows that the very next
 * message after the change (or after the TTL that covers it) follows it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { CLI_PATH, HarakaInstance, sleep } from '../fixtures/haraka-instance';
import { PolicyServer } from '../fixtures/policy-server';
import { startSinksOnCommonPort, type SmtpSink } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.13.10';
const FIRST = { address: '127.0.13.1', host: 'mx1.kept.test' };
const SECOND = { address: '127.0.13.2', host: 'mx2.kept.test' };
/** TTL of everything the tests do not change: the answer cache keeps it, so plans are kept (negative answers too). */
const LONG_TTL = 300;

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let haraka: HarakaInstance;
let first: SmtpSink;
let second: SmtpSink;

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start({ defaultTtl: LONG_TTL });
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  [first, second] = (await startSinksOnCommonPort([
    { host: FIRST.address, tls: await ca.issue({ dnsNames: [FIRST.host] }), name: FIRST.host },
    { host: SECOND.address, tls: await ca.issue({ dnsNames: [SECOND.host] }), name: SECOND.host },
  ])) as [SmtpSink, SmtpSink];
  dns.set(FIRST.host, [{ type: 'A', address: FIRST.address }]);
  dns.set(SECOND.host, [{ type: 'A', address: SECOND.address }]);
  haraka = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort: first.port,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    allow: '127.0.0.0/16',
    // recheck=600: the resolver answers from memory throughout: a plan is kept until a DNS TTL or a change ends it.
    mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=2', 'recheck=600'].join('\n'),
  });
});

after(async () => {
  await haraka?.stop();
  for (const s of [first, second]) await s?.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

/** Sends one message to `to` and waits until Haraka delivered it or gave up on it for now; the event. */
async function deliver(to: string): Promise<{ event: string; host?: string; err?: unknown }> {
  await haraka.send({ to });
  return haraka.waitForEvent(
    (e) => (e.event === 'delivered' || e.event === 'deferred') && (e.rcpts ?? []).some((r) => r.original === `<${to}>`),
  );
}

test('OPS-6: a kept plan lasts no longer than the DNS answers it was made from: a changed MX is used once the old answer expired', async () => {
  const ttl = 5;
  dns.set('ttl.kept.test', [{ type: 'MX', preference: 10, exchange: FIRST.host }], ttl);
  dns.resetLog();
  for (let i = 0; i < 2; i++) assert.equal((await deliver(`user${i}@ttl.kept.test`)).host, FIRST.host);
  assert.equal(dns.queries({ name: 'ttl.kept.test', type: 'MX' }).length, 1, 'the second message was planned without asking');
  dns.set('ttl.kept.test', [{ type: 'MX', preference: 10, exchange: SECOND.host }], ttl);
  const started = Date.now();
  const within = await deliver('within@ttl.kept.test');
  if (Date.now() - started < ttl * 1000 - 200) assert.equal(within.host, FIRST.host, 'within the TTL the old answer stands');
  await sleep(ttl * 1000 + 300);
  const afterTtl = await deliver('after@ttl.kept.test');
  assert.equal(afterTtl.event, 'delivered');
  assert.equal(afterTtl.host, SECOND.host, 'after the TTL the new MX is used');
  assert.ok(second.messages.some((m) => m.to.includes('after@ttl.kept.test')));
});

test('OPS-6, POL-5: a policy table reload applies to the very next message to a domain whose plan is kept', async () => {
  dns.set('table.kept.test', [{ type: 'MX', preference: 10, exchange: FIRST.host }]);
  assert.equal((await deliver('one@table.kept.test')).event, 'delivered');
  assert.equal((await deliver('two@table.kept.test')).event, 'delivered');
  const file = path.join(haraka.dir, 'config', 'outbound_tls_policy');
  const reloads = (): number => haraka.logLines.filter((l) => /outbound_tls_policy reloaded/.test(l)).length;
  const before = reloads();
  fs.writeFileSync(file, 'table.kept.test verfy\n');
  const deadline = Date.now() + 30_000;
  while (reloads() <= before) {
    if (Date.now() > deadline) throw new Error(`the table was not reloaded:\n${haraka.logLines.slice(-20).join('\n')}`);
    await sleep(100);
  }
  const waiting = await deliver('three@table.kept.test');
  assert.equal(waiting.event, 'deferred', 'the kept plan was not used after the reload');
  await haraka.waitForLog(/outbound_tls_policy line 1 cannot be read \(table\.kept\.test: .*"verfy"\): mail to table\.kept\.test waits/);
  assert.ok(!first.messages.some((m) => m.to.includes('three@table.kept.test')));
});

test('OPS-6, STS-5: a kept plan ends when the cached MTA-STS policy is purged: the next message is planned with the policy discovered again', async () => {
  dns.set('sts.kept.test', [
    { type: 'MX', preference: 10, exchange: FIRST.host },
    { type: 'MX', preference: 20, exchange: SECOND.host },
  ]);
  // The TXT id with a TTL of 1 s, so that the discovery after the purge reads the new one from the DNS server.
  const publish = async (id: string, mx: string[]): Promise<void> => {
    await policies.publish(dns, 'sts.kept.test', { id, mode: 'enforce', mx, maxAge: 86400 });
    dns.set('_mta-sts.sts.kept.test', [{ type: 'TXT', data: `v=STSv1; id=${id}` }], 1);
  };
  await publish('one', [FIRST.host, SECOND.host]);
  for (let i = 0; i < 2; i++) assert.equal((await deliver(`user${i}@sts.kept.test`)).host, FIRST.host, 'the preferred MX');
  await publish('two', [SECOND.host]);
  await sleep(1100); // the TXT answer of id one is out of the answer cache
  const purged = await promisify(execFile)(process.execPath, [
    CLI_PATH,
    '--config',
    path.join(haraka.dir, 'config'),
    'policy',
    'purge',
    'sts.kept.test',
  ]);
  assert.match(purged.stdout, /sts\.kept\.test: cached policy purged/);
  const changed = await deliver('changed@sts.kept.test');
  assert.equal(changed.event, 'delivered');
  assert.equal(changed.host, SECOND.host, 'planned again: the new policy (id two) leaves only mx2');
  await haraka.waitForLog(/MTA-STS policy of sts\.kept\.test: id two, mode enforce \(fetched\)/);
});
