/**
 * End-to-end (PKG-4, OPS-1, OPS-3): ini files changed while a real Haraka
 * runs. Each file is watched once per process and its changes reach both
 * plugins and the CLI: data_dir, plain_retry and store (file → a real
 * redis-server) in outbound_tls.ini; errors are logged under the file's own
 * name; unknown keys and broken section headers are reported with file,
 * section and key; `[metrics] listen` moves the listener.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { FilePolicyStore } from '#lib/mta-sts/file-store';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { openPolicyStore, openRatchetStoreFromUrl } from '#lib/state/open';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import { HarakaInstance, CLI_PATH, freePort } from '../fixtures/haraka-instance';
import { PolicyServer } from '../fixtures/policy-server';
import { TestRedis } from '../fixtures/redis-server';
import { SmtpSink, startSinksOnCommonPort, type SinkOptions } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.7.50';
const PREFIX = 'reload:';

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let redis: TestRedis;
let haraka: HarakaInstance;
let sinks: Map<string, SmtpSink>;
let mxPort: number;

/** Sink name → [address, MX host name, STARTTLS behaviour]. */
const SINKS: Record<string, [string, string, 'valid' | 'plain' | 'refuse']> = {
  secure: ['127.0.7.1', 'mx.secure.test', 'valid'],
  plain: ['127.0.7.2', 'mx.plain.test', 'plain'],
  refuse: ['127.0.7.3', 'mx.refuse.test', 'refuse'],
};

function sink(name: string): SmtpSink {
  const found = sinks.get(name);
  if (!found) throw new Error(`no sink ${name}`);
  return found;
}

function pointMx(domain: string, sinkName: string): void {
  dns.clear(domain);
  dns.add(domain, { type: 'MX', preference: 10, exchange: (SINKS[sinkName] as [string, string, string])[1] });
}

/** An MTA-STS policy for `domain` (testing mode: cached like any other, filters nothing). */
async function publishPolicy(domain: string): Promise<void> {
  await policies.publish(dns, domain, { id: 'reload1', mode: 'testing', mx: ['mx.secure.test'] });
}

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI_PATH, '--config', path.join(haraka.dir, 'config'), ...args]);
  return stdout;
}

/** Rewrites the instance's outbound_tls.ini and waits until Haraka has reloaded it once more. */
async function rewriteTlsIni(instance: HarakaInstance, lines: string[], reloaded = /outbound_tls\.ini.* reloaded/): Promise<void> {
  const before = instance.logLines.filter((l) => reloaded.test(l)).length;
  fs.writeFileSync(path.join(instance.dir, 'config', 'outbound_tls.ini'), `${lines.join('\n')}\n`);
  const deadline = Date.now() + 20000;
  while (instance.logLines.filter((l) => reloaded.test(l)).length <= before) {
    if (Date.now() > deadline) throw new Error(`no reload of outbound_tls.ini:\n${instance.logLines.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function fileLevel(dataDir: string, domain: string): Promise<string> {
  const read = await new FileRatchetStore(path.join(dataDir, 'ratchet')).get(domain);
  return read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
}

function delivered(domain: string, count = 1): Promise<unknown> {
  return haraka.waitForEvent(
    (e) =>
      e.event === 'delivered' &&
      e.domain === domain &&
      haraka.events().filter((x) => x.event === 'delivered' && x.domain === domain).length >= count,
    20000,
    `delivery ${count} to ${domain}`,
  );
}

function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  redis = await TestRedis.start();
  const specs: SinkOptions[] = [];
  for (const [address, host, kind] of Object.values(SINKS)) {
    const tls = kind === 'plain' ? ('none' as const) : await ca.issue({ dnsNames: [host] });
    specs.push({ host: address, tls, name: host, ...(kind === 'refuse' ? { starttls: 'refuse' as const } : {}) });
    dns.set(host, [{ type: 'A', address }]);
  }
  const started = await startSinksOnCommonPort(specs);
  sinks = new Map(Object.keys(SINKS).map((name, i) => [name, started[i] as SmtpSink]));
  mxPort = started[0]?.port ?? 0;
  haraka = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    mxIniExtra: ['[mta_sts]', `https_port=${policies.port}`, `ca_file=${ca.caCertPath}`, 'fetch_timeout=2'].join('\n'),
  });
});

after(async () => {
  await haraka?.stop();
  for (const s of sinks?.values() ?? []) await s.stop();
  await policies?.stop();
  await redis?.stop();
  await dns?.stop();
  await ca?.cleanup();
});

test('PKG-4: data_dir, plain_retry and store changed in outbound_tls.ini while Haraka runs reach both plugins and the CLI; a bad value is logged under outbound_tls.ini', async () => {
  const data = path.join(haraka.dir, 'data');
  const data2 = path.join(haraka.dir, 'data2');

  // Before: the ratchet and the policy cache in data/.
  pointMx('one.test', 'secure');
  await publishPolicy('one.test');
  await haraka.send({ to: 'user@one.test' });
  await delivered('one.test');
  assert.equal(await fileLevel(data, 'one.test'), 'TLS_SECURE');
  assert.equal((await new FilePolicyStore(path.join(data, 'mta-sts')).get('one.test')).kind, 'entry');

  // data_dir and plain_retry change while Haraka runs.
  await rewriteTlsIni(haraka, ['[main]', 'data_dir=data2', 'plain_retry=false']);
  pointMx('two.test', 'secure');
  await publishPolicy('two.test');
  await haraka.send({ to: 'user@two.test' });
  await delivered('two.test');
  assert.equal(await fileLevel(data2, 'two.test'), 'TLS_SECURE', 'outbound_tls raised the ratchet in the new data_dir');
  assert.equal(await fileLevel(data, 'two.test'), 'none', 'nothing raised in the old data_dir');
  assert.equal((await new FilePolicyStore(path.join(data2, 'mta-sts')).get('two.test')).kind, 'entry', 'the policy cache moved too');

  // plain_retry=false: a refused STARTTLS gets no second, plain connection.
  pointMx('refuse.test', 'refuse');
  await haraka.send({ to: 'user@refuse.test' });
  const deferred = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'refuse.test', 20000, 'refuse.test deferred');
  assert.equal(
    sink('refuse').events.filter((e) => e.kind === 'connect' && e.at <= deferred.at).length,
    1,
    'one connection, no plain retry',
  );
  assert.equal(sink('refuse').count('mailfrom'), 0);

  // The CLI reads the level where the plugins wrote it, and its reset counts at the next delivery.
  assert.match(await cli('ratchet', 'show', 'two.test'), /two\.test TLS_SECURE/);
  pointMx('two.test', 'plain');
  await haraka.send({ to: 'user@two.test', subject: 'to plain' });
  const refused = await haraka.waitForEvent((e) => e.event === 'deferred' && e.domain === 'two.test', 20000, 'two.test deferred');
  assert.match(String(refused.err), /offers PLAIN \(no TLS\), required TLS_SECURE/);
  assert.match(await cli('ratchet', 'reset', 'two.test'), /two\.test: reset \(was TLS_SECURE\)/);
  await haraka.waitForEvent(
    (e) => e.event === 'delivered' && e.domain === 'two.test' && e.ip === SINKS.plain?.[0],
    20000,
    'two.test via plain',
  );

  // store=redis while Haraka runs: both plugins and the CLI follow.
  await rewriteTlsIni(haraka, [
    '[main]',
    'data_dir=data2',
    'plain_retry=false',
    'store=redis',
    `redis_prefix=${PREFIX}`,
    '[redis]',
    'host=127.0.0.1',
    `port=${redis.port}`,
  ]);
  pointMx('three.test', 'secure');
  await publishPolicy('three.test');
  await haraka.send({ to: 'user@three.test' });
  await delivered('three.test');
  const ratchet = openRatchetStoreFromUrl(`redis://127.0.0.1:${redis.port}/?prefix=${encodeURIComponent(PREFIX)}`);
  const policyCache = openPolicyStore({
    dataDir: data2,
    store: { backend: 'redis', prefix: PREFIX, commandTimeoutMs: 1000, plugin: {} },
    redisIni: { server: { host: '127.0.0.1', port: redis.port } },
  });
  try {
    await ratchet.ready?.(5000);
    await policyCache.ready?.(5000);
    const level = await ratchet.get('three.test');
    assert.equal(level.kind === 'level' ? SecLevel[level.entry.level] : level.kind, 'TLS_SECURE', 'raised in Redis');
    assert.equal((await policyCache.get('three.test')).kind, 'entry', 'the policy cached in Redis');
  } finally {
    await ratchet.close();
    await policyCache.close();
  }
  assert.equal(await fileLevel(data2, 'three.test'), 'none');
  assert.match(await cli('ratchet', 'show', 'three.test'), /three\.test TLS_SECURE/);

  // A bad value: logged under outbound_tls naming outbound_tls.ini, the running settings (Redis) kept.
  await rewriteTlsIni(haraka, ['[main]', 'store=bogus'], /outbound_tls\.ini.*not reloaded/);
  const line = await haraka.waitForLog(/outbound_tls\.ini.*not reloaded, keeping the running settings.*store=bogus/);
  assert.match(line, /\[outbound_tls\]/, line);
  assert.ok(!haraka.logLines.some((l) => /\[outbound_mx\].*outbound_tls\.ini/.test(l) && /not reloaded/.test(l)), 'not under outbound_mx');
  pointMx('four.test', 'secure');
  await haraka.send({ to: 'user@four.test' });
  await delivered('four.test');
  const kept = openRatchetStoreFromUrl(`redis://127.0.0.1:${redis.port}/?prefix=${encodeURIComponent(PREFIX)}`);
  try {
    await kept.ready?.(5000);
    const level = await kept.get('four.test');
    assert.equal(level.kind === 'level' ? SecLevel[level.entry.level] : level.kind, 'TLS_SECURE', 'still raised in Redis');
  } finally {
    await kept.close();
  }
  // The CLI validates the file the same way: it refuses the bad value too.
  await assert.rejects(cli('ratchet', 'show', 'four.test'), /outbound_tls\.ini: \[main\] store=bogus: expected file or redis/);
});

test('PKG-4/OPS-3: unknown keys and a broken section header are logged with file, section and key; only GET /metrics answers; a changed [metrics] listen moves the listener', async () => {
  const first = await freePort();
  const second = await freePort();
  const local = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'outbound_mx'],
    extraCa: ca.caCertPath,
    config: {
      'outbound_mx.ini': [
        '[main]',
        'max_mxx=3',
        `mx_port=${mxPort}`,
        '[dns',
        `servers=${dns.address}`,
        '[addresses]',
        'allow=127.0.0.0/8',
      ].join('\n'),
      'outbound_tls.ini': ['[metrics]', `listen=127.0.0.1:${first}`].join('\n'),
    },
  });
  try {
    const unknown = await local.waitForLog(/outbound_mx\.ini \[main\] max_mxx: unknown key/);
    assert.match(unknown, /WARN/);
    await local.waitForLog(/outbound_mx\.ini \[main\] \[dns: broken section header/);
    await local.waitForLog(/outbound_mx\.ini \[main\] servers: unknown key.*broken header "\[dns"/);
    assert.ok(local.running, 'unknown keys do not stop Haraka');

    await local.waitForLog(new RegExp(`metrics on http://127\\.0\\.0\\.1:${first}/metrics`));
    assert.equal((await httpGet(first, '/metrics')).status, 200);
    assert.equal((await httpGet(first, '/other')).status, 404);
    assert.equal((await httpGet(first, '/')).status, 404);

    await rewriteTlsIni(local, ['[metrics]', `listen=127.0.0.1:${second}`]);
    await local.waitForLog(new RegExp(`metrics on http://127\\.0\\.0\\.1:${second}/metrics`));
    const moved = await httpGet(second, '/metrics');
    assert.equal(moved.status, 200);
    assert.match(moved.body, /outbound_tls_connections_total/);
    await assert.rejects(httpGet(first, '/metrics'), /ECONNREFUSED/, 'the old listener is closed');
  } finally {
    await local.stop();
  }
});
