/**
 * Ratchet store operations per second, file store against Redis on loopback,
 * measured side by side in one run (ST-2, ST-3):
 *  - check: `get` of a domain that has a level (what every connection does);
 *  - raise (no-op): `raise` to the level already stored;
 *  - raise (new): `raise` of a domain seen for the first time (a write).
 * Each is run sequentially and with 16 operations in flight.
 *
 *   node dist/bench/stores.js [--ops N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import type { RatchetStore } from '#lib/ratchet/store';
import { SecLevel } from '#lib/sec-level';
import { TestRedis } from '../test/fixtures/redis-server';

type Operation = 'check' | 'raise (no-op)' | 'raise (new)';

async function measure(store: RatchetStore, op: Operation, ops: number, inFlight: number, tag: string): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= ops) return;
      if (op === 'check') await store.get(`known${i % 100}.bench.test`);
      else if (op === 'raise (no-op)') await store.raise(`known${i % 100}.bench.test`, SecLevel.TLS_SECURE);
      else await store.raise(`new-${tag}-${i}.bench.test`, SecLevel.TLS_SECURE, 'mx.bench.test');
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return ops / seconds;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ops: { type: 'string' } } });
  const ops = Number(values.ops ?? 5000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-stores-'));
  const redis = await TestRedis.start();
  const stores: Record<string, RatchetStore> = {
    file: new FileRatchetStore(path.join(dir, 'ratchet')),
    redis: openRatchetStoreFromUrl(`${redis.url}/?prefix=bench:&timeout=5000`),
  };
  try {
    if (!(await stores.redis?.ready?.(5000))) throw new Error('Redis did not come up');
    for (const store of Object.values(stores)) {
      for (let i = 0; i < 100; i++) await store.raise(`known${i}.bench.test`, SecLevel.TLS_SECURE);
    }
    console.log(`ratchet store operations per second, ${ops} operations each (file: ${dir}; Redis on ${redis.url}, appendfsync always)`);
    console.log(
      `${'operation'.padEnd(16)}${'in flight'.padStart(10)}${'file/s'.padStart(12)}${'redis/s'.padStart(12)}${'file/redis'.padStart(12)}`,
    );
    let round = 0;
    for (const op of ['check', 'raise (no-op)', 'raise (new)'] as const) {
      for (const inFlight of [1, 16]) {
        const rates: Record<string, number> = {};
        // Alternate which store goes first, so drift does not favour one.
        const order = round++ % 2 === 0 ? ['file', 'redis'] : ['redis', 'file'];
        for (const name of order)
          rates[name] = await measure(
            stores[name] as RatchetStore,
            op,
            op === 'raise (new)' ? Math.min(ops, 2000) : ops,
            inFlight,
            `${name}${round}`,
          );
        const file = rates.file ?? 0;
        const red = rates.redis ?? 0;
        console.log(
          `${op.padEnd(16)}${String(inFlight).padStart(10)}${file.toFixed(0).padStart(12)}${red.toFixed(0).padStart(12)}${(file / red).toFixed(2).padStart(12)}`,
        );
      }
    }
  } finally {
    for (const store of Object.values(stores)) await store.close().catch(() => undefined);
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
