/**
 * OPS-6: what one warm ratchet `get` costs (the check every outbound
 * connection makes), for the file store and for Redis on loopback, with 10
 * and with 100,000 domains stored; with the process memory on (now) and off
 * (`memory: 0 entries`: every get reads the store, as before the memory
 * existed, plus the one stat of the change marker for files). Also what the
 * marker's stat costs sync and async, the choice the file store made.
 *
 *   node dist/bench/ratchet-read.js [--gets N] [--domains 10,100000]
 *
 * Prints µs of wall time and of this process's CPU (user + system, from
 * process.cpuUsage) per get, gets made one after another on random stored
 * domains. Redis's own CPU is not counted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { CHANGES_FILE } from '#lib/ratchet/change-marker';
import { RedisRatchetStore } from '#lib/ratchet/redis-store';
import { RedisConnection } from '#lib/store/redis-connection';
import type { RatchetMemoryLimits } from '#lib/ratchet/memory';
import type { RatchetStore } from '#lib/ratchet/store';
import { SecLevel, levelName } from '#lib/sec-level';
import { TestRedis } from '../test/fixtures/redis-server';
import { Cleanup, fmt, lpad, positiveOption } from './common';

const USAGE = 'usage: node dist/bench/ratchet-read.js [--gets N] [--domains 10,100000]';
const OFF: RatchetMemoryLimits = { entries: 0, bytes: 0 };
/** Enough for every domain of the largest run. */
const ON: RatchetMemoryLimits = { entries: 200_000, bytes: 256 * 1024 * 1024 };

const domainName = (i: number): string => `d${i}.bench.test`;

/** Writes the file store's layout directly (no fsync): 100,000 raises would take minutes. */
function fillFileStore(dir: string, count: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    fs.mkdirSync(path.join(dir, domainName(i)));
    const content = JSON.stringify({ raisedAt: Date.now(), host: `mx.${domainName(i)}` });
    fs.writeFileSync(path.join(dir, domainName(i), levelName(SecLevel.TLS_SECURE)), `${content}\n`);
  }
  fs.writeFileSync(path.join(dir, CHANGES_FILE), '');
}

async function fillRedis(store: RatchetStore, count: number): Promise<void> {
  const batch = 500;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, j) =>
        store.raise(domainName(i + j), SecLevel.TLS_SECURE, `mx.${domainName(i + j)}`),
      ),
    );
  }
}

interface Figure {
  wallUs: number;
  cpuUs: number;
}

async function measure(store: RatchetStore, domains: number, gets: number): Promise<Figure> {
  const pick = (): string => domainName(Math.floor(Math.random() * domains));
  // Warm every domain that will be read (all of them), then measure.
  for (let i = 0; i < domains; i++) await store.get(domainName(i));
  for (let i = 0; i < 1000; i++) await store.get(pick());
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < gets; i++) {
    const read = await store.get(pick());
    if (read.kind !== 'level') throw new Error(`unexpected read ${JSON.stringify(read)}`);
  }
  const wall = Number(process.hrtime.bigint() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { wallUs: wall / gets, cpuUs: (used.user + used.system) / gets };
}

async function measureStat(file: string, calls: number): Promise<{ sync: Figure; async: Figure }> {
  const run = async (one: () => unknown): Promise<Figure> => {
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await one();
    const wall = Number(process.hrtime.bigint() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { wallUs: wall / calls, cpuUs: (used.user + used.system) / calls };
  };
  await run(() => fs.statSync(file)); // warm
  return { sync: await run(() => fs.statSync(file)), async: await run(() => fs.promises.stat(file)) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { gets: { type: 'string' }, domains: { type: 'string' } } });
  const gets = positiveOption('gets', values.gets, 20_000, 10_000_000, USAGE);
  const counts = (values.domains ?? '10,100000').split(',').map((text) => positiveOption('domains', text, 10, 1_000_000, USAGE));
  const cleanup = new Cleanup();
  cleanup.onInterrupt();
  try {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ratchet-read-'));
    cleanup.add('temporary directory', () => fs.rmSync(tmp, { recursive: true, force: true }));
    const redis = await TestRedis.start();
    cleanup.add('redis-server', () => redis.stop());

    console.log(`OPS-6: one warm ratchet get, ${gets} gets on random stored domains, µs per get (wall / this process's CPU)\n`);
    console.log(`${'store'.padEnd(8)}${lpad('domains', 9)}${lpad('memory off', 20)}${lpad('memory on', 20)}`);
    for (const count of counts) {
      const dir = path.join(tmp, `file-${count}`);
      fillFileStore(dir, count);
      const prefix = `b${count}:`;
      const open = (memory: RatchetMemoryLimits): RatchetStore =>
        new RedisRatchetStore(
          new RedisConnection(
            { server: { host: '127.0.0.1', port: String(redis.port) }, opts: {}, plugin: {}, commandTimeoutMs: 5000 },
            {
              info: () => undefined,
              error: () => undefined,
            },
          ),
          prefix,
          { memory },
        );
      const filler = open(OFF);
      await filler.ready?.(5000);
      await fillRedis(filler, count);
      await filler.close();
      for (const kind of ['file', 'redis'] as const) {
        const figures: Figure[] = [];
        for (const memory of [OFF, ON]) {
          const store: RatchetStore = kind === 'file' ? new FileRatchetStore(dir, { memory, settleMs: 0 }) : open(memory);
          if (store.ready && !(await store.ready(5000))) throw new Error(`${store.description} not ready`);
          figures.push(await measure(store, count, gets));
          await store.close();
        }
        const cell = (f: Figure | undefined): string => lpad(f ? `${fmt(f.wallUs, 2)} / ${fmt(f.cpuUs, 2)}` : '-', 20);
        console.log(`${kind.padEnd(8)}${lpad(String(count), 9)}${cell(figures[0])}${cell(figures[1])}`);
      }
    }
    const stat = await measureStat(path.join(tmp, `file-${counts[0]}`, CHANGES_FILE), 100_000);
    console.log(
      `\nstat of the change marker, µs per call (wall / CPU): sync ${fmt(stat.sync.wallUs, 2)} / ${fmt(stat.sync.cpuUs, 2)}, async ${fmt(stat.async.wallUs, 2)} / ${fmt(stat.async.cpuUs, 2)} (CPU of this process; the async one also uses a thread-pool thread)`,
    );
  } finally {
    await cleanup.runAll();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
