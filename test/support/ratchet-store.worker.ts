/**
 * Test helper for the ratchet store contract (ratchet-store.contract.ts, ST-2,
 * ST-3): a separate process that uses a ratchet store at the same time as
 * others. The store is opened from a URL (`file:/abs/dir` or
 * `redis://127.0.0.1:PORT/?prefix=P`, see openRatchetStoreFromUrl), so the
 * same worker exercises every store. Not a test file itself.
 *
 *   node ratchet-store.worker.js monotonic URL SEED RAISES DOMAINS
 *     prints `ready`, waits for a line on stdin, then performs RAISES random
 *     raises on the DOMAINS shared domains `d<n>.st2.test`, reading the level
 *     after each one; exits 1 if a read is ever lower than an earlier read or
 *     than the raise it follows. Finally prints `{"max":{domain:level}}`, the
 *     highest level it raised per domain.
 *
 *   node ratchet-store.worker.js loop URL SEED PREFIX
 *     raises fresh domains `<PREFIX>-<n>.kill.test` (and a few shared ones)
 *     through every level forever, printing `{"domain":…,"level":…}` after each
 *     raise has resolved; meant to be killed with SIGKILL.
 */
import { once } from 'node:events';
import readline from 'node:readline';
import { openRatchetStoreFromUrl } from '#lib/state/open';
import type { RatchetRead, RatchetStore } from '#lib/ratchet/store';
import { SEC_LEVELS, SecLevel, levelName, parseLevel } from '#lib/sec-level';

/** How long a store that connects in the background may take to become usable. */
const CONNECT_TIMEOUT_MS = 5_000;

/** A small seeded generator (mulberry32), so a failing run can be repeated. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fail(message: string): never {
  process.stderr.write(`worker ${process.pid}: ${message}\n`);
  process.exit(1);
}

function levelOf(read: RatchetRead, domain: string): number {
  if (read.kind === 'unreadable') fail(`${domain} unreadable: ${read.reason}`);
  return read.kind === 'level' ? read.entry.level : -1;
}

async function waitForGo(): Promise<void> {
  process.stdout.write('ready\n');
  const lines = readline.createInterface({ input: process.stdin });
  await once(lines, 'line');
  lines.close();
  process.stdin.destroy();
}

async function monotonic(store: RatchetStore, next: () => number, raises: number, domainCount: number): Promise<void> {
  const lastRead = new Map<string, number>();
  const maxRaised = new Map<string, SecLevel>();
  await waitForGo();
  for (let i = 0; i < raises; i++) {
    const domain = `d${Math.floor(next() * domainCount)}.st2.test`;
    const level = SEC_LEVELS[Math.floor(next() * SEC_LEVELS.length)] ?? SecLevel.PLAIN;
    const stored = await store.raise(domain, level, `mx${process.pid}.st2.test`);
    if (stored < level) fail(`raise(${domain}, ${levelName(level)}) resolved with ${levelName(stored)}`);
    if (level > (maxRaised.get(domain) ?? -1)) maxRaised.set(domain, level);
    const read = levelOf(await store.get(domain), domain);
    const before = lastRead.get(domain) ?? -1;
    if (read < before) fail(`${domain} went down from ${before} to ${read}`);
    if (read < stored) fail(`${domain} reads ${read} right after raise resolved with ${stored}`);
    lastRead.set(domain, read);
  }
  const max = Object.fromEntries([...maxRaised].map(([domain, level]) => [domain, levelName(level)]));
  process.stdout.write(`${JSON.stringify({ max })}\n`);
}

async function loop(store: RatchetStore, next: () => number, prefix: string): Promise<void> {
  process.stdout.write('ready\n');
  for (let n = 0; ; n++) {
    // Mostly fresh domains (every raise writes), sometimes a shared one (writers collide).
    const domain = next() < 0.8 ? `${prefix}-${n}.kill.test` : `shared${Math.floor(next() * 4)}.kill.test`;
    for (const level of SEC_LEVELS) {
      const stored = await store.raise(domain, level, 'mx.kill.test');
      if (stored < level) fail(`raise(${domain}, ${levelName(level)}) resolved with ${levelName(stored)}`);
      process.stdout.write(`${JSON.stringify({ domain, level })}\n`);
    }
  }
}

async function changeOnce(
  store: RatchetStore,
  mode: 'raise' | 'reset',
  domain: string | undefined,
  levelText: string | undefined,
): Promise<void> {
  if (!domain) fail(`${mode} needs a DOMAIN`);
  if (mode === 'reset') {
    await store.reset(domain);
  } else {
    const level = parseLevel(levelText ?? '');
    if (level === null) fail(`raise needs a LEVEL, not ${String(levelText)}`);
    const stored = await store.raise(domain, level, 'mx.other-process.test');
    if (stored < level) fail(`raise(${domain}, ${levelName(level)}) resolved with ${levelName(stored)}`);
  }
  process.stdout.write('done\n');
}

async function main(): Promise<void> {
  const [mode, url, seedText, ...rest] = process.argv.slice(2);
  if (!url || !seedText)
    fail('usage: monotonic URL SEED RAISES DOMAINS | loop URL SEED PREFIX | raise URL SEED DOMAIN LEVEL | reset URL SEED DOMAIN');
  const store = openRatchetStoreFromUrl(url);
  // A store that connects in the background (Redis) is waited for, as the plugins and the CLI do.
  if (store.ready && !(await store.ready(CONNECT_TIMEOUT_MS))) fail(`${store.description} not ready after ${CONNECT_TIMEOUT_MS} ms`);
  const next = random(Number(seedText));
  try {
    if (mode === 'monotonic') await monotonic(store, next, Number(rest[0] ?? 100), Number(rest[1] ?? 10));
    else if (mode === 'loop') await loop(store, next, rest[0] ?? `w${process.pid}`);
    else if (mode === 'raise' || mode === 'reset') await changeOnce(store, mode, rest[0], rest[1]);
    else fail(`unknown mode ${String(mode)}`);
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)));
