/**
 * ST-7 a store switch never lowers a level: changing `store` or `data_dir`
 * (a reload, or a restart with the record of the store in use) carries every
 * ratchet level and cached MTA-STS policy into the new store, the higher level
 * winning and `raised` times kept; reads in the meantime answer the higher of
 * the old and the new store. `migrate` keeps `raised` times too. Against a
 * real redis-server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { migrate } from '#lib/cli/migrate';
import { parseOutboundTlsConfig } from '#lib/config/outbound-tls';
import { FilePolicyStore } from '#lib/mta-sts/file-store';
import type { CachedPolicy, PolicyStore } from '#lib/mta-sts/store';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import type { RatchetRead, RatchetStore } from '#lib/ratchet/store';
import { SharedStores, openPolicyStore, openRatchetStore, type StoreSettings } from '#lib/state/open';
import { SecLevel } from '#lib/sec-level';
import { TestRedis } from '../fixtures/redis-server';
import { sleep } from '../fixtures/haraka-instance';

/** How long a carry may take to land in the new store. */
const CARRY_MS = 8_000;
const HOUR = 3_600_000;

let redis: TestRedis;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  redis = await TestRedis.start();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await redis?.stop();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-switch-'));
  cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Log lines, by level, of what the stores said. */
function recorder(): { lines: string[]; log: { info(m: string): void; warn(m: string): void; error(m: string): void } } {
  const lines: string[] = [];
  return {
    lines,
    log: { info: (m) => lines.push(`INFO ${m}`), warn: (m) => lines.push(`WARN ${m}`), error: (m) => lines.push(`ERROR ${m}`) },
  };
}

function fileSettings(dataDir: string): StoreSettings {
  return { dataDir, store: { backend: 'file' } };
}

function redisSettings(dataDir: string, prefix: string): StoreSettings {
  return {
    dataDir,
    store: { backend: 'redis', prefix, commandTimeoutMs: 1000, plugin: {} },
    redisIni: { server: { host: '127.0.0.1', port: String(redis.port) } },
  };
}

function freshPrefix(): string {
  return `st7-${randomBytes(4).toString('hex')}:`;
}

/** A store opened on its own (as another process or the CLI would), connected, closed after the test. */
async function own<T extends RatchetStore | PolicyStore>(store: T): Promise<T> {
  cleanups.push(() => store.close());
  if (store.ready) assert.equal(await store.ready(5000), true, `${store.description} connects`);
  return store;
}

function policy(domain: string, fetchedAt: number): CachedPolicy {
  return {
    domain,
    id: `id-${fetchedAt}`,
    text: ['version: STSv1', 'mode: enforce', `mx: mx.${domain}`, 'max_age: 86400', ''].join('\r\n'),
    fetchedAt,
    expiresAt: fetchedAt + 86_400_000,
    checkedAt: fetchedAt,
    usedAt: fetchedAt,
  };
}

function levelName(read: RatchetRead): string {
  return read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
}

/** Waits until `store` holds `domain` at `level`; resolves with the entry. */
async function eventually(store: RatchetStore, domain: string, level: SecLevel): Promise<RatchetRead> {
  const deadline = Date.now() + CARRY_MS;
  for (;;) {
    const read = await store.get(domain).catch((err: Error) => ({ kind: 'unreadable' as const, reason: err.message }));
    if (read.kind === 'level' && read.entry.level === level) return read;
    if (Date.now() > deadline) assert.fail(`${store.description}: ${domain} is ${levelName(read)}, expected ${SecLevel[level]}`);
    await sleep(100);
  }
}

async function eventuallyPolicy(store: PolicyStore, domain: string): Promise<CachedPolicy> {
  const deadline = Date.now() + CARRY_MS;
  for (;;) {
    const read = await store.get(domain).catch(() => null);
    if (read?.kind === 'entry') return read.entry;
    if (Date.now() > deadline) assert.fail(`${store.description}: no cached policy for ${domain}`);
    await sleep(100);
  }
}

function raisedAt(read: RatchetRead): number | undefined {
  return read.kind === 'level' ? read.entry.raisedAt : undefined;
}

function shared(settings: StoreSettings, extra: { log: ReturnType<typeof recorder>['log']; recordFile: string }): SharedStores {
  // The record file and the log travel with the settings (as outboundTlsSettings passes them).
  const withExtras = { ...settings, ...extra };
  const stores = new SharedStores(withExtras);
  cleanups.push(() => stores.close());
  return stores;
}

function switchTo(
  stores: SharedStores,
  settings: StoreSettings,
  extra: { log: ReturnType<typeof recorder>['log']; recordFile: string },
): void {
  const withExtras = { ...settings, ...extra };
  stores.update(withExtras);
}

test('ST-7: store=file switched to store=redis carries every level, relay level and cached policy; raised times kept; reads never lower meanwhile', async () => {
  const dir = tempDir();
  const prefix = freshPrefix();
  const file = new FileRatchetStore(path.join(dir, 'ratchet'));
  await file.raise('secure.test', SecLevel.TLS_SECURE, 'mx.secure.test');
  await file.raise('relay:smart.test', SecLevel.TLS_INSECURE, 'smart.test');
  await new FilePolicyStore(path.join(dir, 'mta-sts')).put(policy('secure.test', Date.now() - HOUR));
  const before = await file.get('secure.test');
  await file.close();
  await sleep(20); // a carried entry keeps its own time, not the time of the carry

  const { lines, log } = recorder();
  const extra = { log, recordFile: path.join(dir, 'store-in-use.json') };
  const stores = shared(fileSettings(dir), extra);
  stores.ratchet();
  stores.policy();
  switchTo(stores, redisSettings(dir, prefix), extra);
  // As soon as Redis answers, whether or not the carry is done: never the lower level.
  assert.equal(await stores.ratchet().ready?.(5000), true);
  assert.equal(levelName(await stores.ratchet().get('secure.test')), 'TLS_SECURE', 'the level holds from the first read after the switch');

  const inRedis = await own(openRatchetStore(redisSettings(dir, prefix)));
  const carried = await eventually(inRedis, 'secure.test', SecLevel.TLS_SECURE);
  assert.equal(raisedAt(carried), raisedAt(before), 'raised time kept');
  assert.equal(carried.kind === 'level' && carried.entry.host, 'mx.secure.test');
  await eventually(inRedis, 'relay:smart.test', SecLevel.TLS_INSECURE);
  const policies = await own(openPolicyStore(redisSettings(dir, prefix)));
  const cached = await eventuallyPolicy(policies, 'secure.test');
  assert.equal(cached.fetchedAt, policy('secure.test', cached.fetchedAt).fetchedAt);
  assert.equal(cached.id, `id-${cached.fetchedAt}`);
  const deadline = Date.now() + CARRY_MS;
  while (!lines.some((l) => /carried/.test(l)) && Date.now() < deadline) await sleep(50);
  const said = lines.find((l) => /carried/.test(l)) ?? '';
  assert.match(said, /file:.* to redis:\/\/127\.0\.0\.1:\d+/, said);
  assert.match(said, /2 ratchet levels .*1 MTA-STS polic/, said);
});

test('ST-7: store=redis switched to store=file carries them back; the higher level wins and keeps its raised time', async () => {
  const dir = tempDir();
  const prefix = freshPrefix();
  const inRedis = await own(openRatchetStore(redisSettings(dir, prefix)));
  await inRedis.raise('up.test', SecLevel.TLS_SECURE, 'mx.up.test');
  await inRedis.raise('kept.test', SecLevel.TLS_INSECURE, 'mx.kept.test');
  const upInRedis = await inRedis.get('up.test');
  const file = new FileRatchetStore(path.join(dir, 'ratchet'));
  await file.raise('up.test', SecLevel.TLS_INSECURE, 'old.up.test');
  await file.raise('kept.test', SecLevel.TLS_SECURE, 'mx2.kept.test');
  const keptInFile = await file.get('kept.test');
  await sleep(20);

  const { log } = recorder();
  const extra = { log, recordFile: path.join(dir, 'store-in-use.json') };
  const stores = shared(redisSettings(dir, prefix), extra);
  assert.equal(await stores.ratchet().ready?.(5000), true);
  switchTo(stores, fileSettings(dir), extra);
  assert.equal(levelName(await stores.ratchet().get('up.test')), 'TLS_SECURE', 'the higher level, at once');

  const up = await eventually(file, 'up.test', SecLevel.TLS_SECURE);
  assert.equal(raisedAt(up), raisedAt(upInRedis), 'the carried higher level keeps its raised time');
  const kept = await eventually(file, 'kept.test', SecLevel.TLS_SECURE);
  assert.equal(raisedAt(kept), raisedAt(keptInFile), 'the new store’s higher level is left as it was');
  await file.close();
});

test('ST-7: a data_dir change carries the levels and policies into the new data_dir', async () => {
  const dir = tempDir();
  const oldDir = path.join(dir, 'data');
  const newDir = path.join(dir, 'data2');
  const old = new FileRatchetStore(path.join(oldDir, 'ratchet'));
  await old.raise('moved.test', SecLevel.TLS_SECURE, 'mx.moved.test');
  const before = await old.get('moved.test');
  await old.close();
  await new FilePolicyStore(path.join(oldDir, 'mta-sts')).put(policy('moved.test', Date.now() - HOUR));

  const { log } = recorder();
  const extra = { log, recordFile: path.join(dir, 'store-in-use.json') };
  const stores = shared(fileSettings(oldDir), extra);
  stores.ratchet();
  switchTo(stores, fileSettings(newDir), extra);
  assert.equal(levelName(await stores.ratchet().get('moved.test')), 'TLS_SECURE');
  const moved = new FileRatchetStore(path.join(newDir, 'ratchet'));
  cleanups.push(() => moved.close());
  assert.equal(raisedAt(await eventually(moved, 'moved.test', SecLevel.TLS_SECURE)), raisedAt(before));
  await eventuallyPolicy(new FilePolicyStore(path.join(newDir, 'mta-sts')), 'moved.test');
});

test('ST-7: a switch made while the server was stopped is carried at the next start (the record of the store in use)', async () => {
  const dir = tempDir();
  const prefix = freshPrefix();
  const recordFile = path.join(dir, 'store-in-use.json');
  const file = new FileRatchetStore(path.join(dir, 'ratchet'));
  await file.raise('restart.test', SecLevel.TLS_SECURE, 'mx.restart.test');
  await file.close();

  // First run: store=file, the record says so.
  const first = recorder();
  const running = new SharedStores({ ...fileSettings(dir), log: first.log, recordFile } as StoreSettings);
  running.ratchet();
  const deadline = Date.now() + CARRY_MS;
  while (!fs.existsSync(recordFile) && Date.now() < deadline) await sleep(50);
  await running.close();

  // Stopped, store=redis in the ini, started again.
  const second = recorder();
  const restarted = shared(redisSettings(dir, prefix), { log: second.log, recordFile });
  assert.equal(await restarted.ratchet().ready?.(5000), true);
  assert.equal(levelName(await restarted.ratchet().get('restart.test')), 'TLS_SECURE', 'the level holds from the first read');
  const inRedis = await own(openRatchetStore(redisSettings(dir, prefix)));
  await eventually(inRedis, 'restart.test', SecLevel.TLS_SECURE);
});

test('ST-7: migrate file-to-redis keeps raised times', async () => {
  const dir = tempDir();
  const prefix = freshPrefix();
  const file = new FileRatchetStore(path.join(dir, 'ratchet'));
  await file.raise('migrated.test', SecLevel.TLS_SECURE, 'mx.migrated.test');
  const before = await file.get('migrated.test');
  await file.close();
  await sleep(20);
  const tls = parseOutboundTlsConfig({ main: { data_dir: dir, store: 'redis', redis_prefix: prefix } }, dir);
  const report = await migrate('file-to-redis', tls, { server: { host: '127.0.0.1', port: String(redis.port) } });
  assert.equal(report.levels, 1);
  const inRedis = await own(openRatchetStore(redisSettings(dir, prefix)));
  const read = await inRedis.get('migrated.test');
  assert.equal(levelName(read), 'TLS_SECURE');
  assert.equal(raisedAt(read), raisedAt(before), 'raised time kept');
});
