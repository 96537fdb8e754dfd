/**
 * What every RatchetStore must do (ST-1, ST-2, ST-3, TLS-4), as one test suite
 * that runs unchanged against each store: the file store's tests and the Redis
 * store's tests both call {@link ratchetStoreContract}. Not a test file itself.
 *
 * `setup` gives each test a fresh, empty store, the URL another process opens
 * the same store with (openRatchetStoreFromUrl), a count of the per-domain
 * reads its backend has served (OPS-6), and a cleanup.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { RatchetRead, RatchetStore } from '#lib/ratchet/store';
import { SecLevel, levelName, parseLevel } from '#lib/sec-level';
import { withFresh } from './with-fresh';

/** The compiled worker (ratchet-store.worker.ts) that uses a store from another process. */
export const RATCHET_WORKER = path.join(__dirname, 'ratchet-store.worker.js');

export interface ContractStore {
  url: string;
  store: RatchetStore;
  cleanup(): Promise<void>;
  /** OPS-6: how many per-domain reads the backend has served this store so far (file reads, Redis commands). */
  backendReads(): Promise<number>;
  /**
   * When a change made by another process is seen: at the very next read
   * (files: the read checks the change marker), or once the store's
   * invalidation message has arrived (Redis pub/sub: sent by the server before
   * it answers the writer, so it is in flight when the writer learns of its change).
   */
  changesSeen: 'next-read' | 'on-message';
}

/** How long an invalidation message may take to arrive on loopback (`changesSeen: 'on-message'`). */
export const MESSAGE_DELAY_MS = 2_000;

export function levelOf(read: RatchetRead): SecLevel {
  assert.equal(read.kind, 'level', `expected a level, got ${JSON.stringify(read)}`);
  return (read as Extract<RatchetRead, { kind: 'level' }>).entry.level;
}

export function assertUnreadable(read: RatchetRead, mentions: string): void {
  assert.equal(read.kind, 'unreadable', `expected unreadable, got ${JSON.stringify(read)}`);
  const { reason } = read as Extract<RatchetRead, { kind: 'unreadable' }>;
  assert.ok(reason.includes(mentions), `reason "${reason}" should mention ${mentions}`);
}

/** A worker process with its stdout split into lines as they arrive. */
export interface Worker {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<number | null>;
  waitForLine(predicate: (line: string) => boolean): Promise<void>;
}

/** Starts ratchet-store.worker.js with `args` (see its usage: `monotonic URL …` or `loop URL …`). */
export function startWorker(args: string[]): Worker {
  const child = spawn(process.execPath, [RATCHET_WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ predicate: (line: string) => boolean; resolve: () => void }> = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const waiter of waiters.splice(0)) {
        if (waiter.predicate(line)) waiter.resolve();
        else waiters.push(waiter);
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr,
    exited,
    waitForLine: (predicate) =>
      lines.some(predicate)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ predicate, resolve });
            void exited.then(() => reject(new Error(`worker exited before the expected line: ${stderr.join('')}`)));
          }),
  };
}

/** One turn of the event loop, for loops of reads that may all be answered from memory. */
function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs ratchet-store.worker.js once (`raise URL SEED DOMAIN LEVEL`, `reset URL SEED DOMAIN`) and waits for it to exit. */
export async function changeInOtherProcess(url: string, args: string[]): Promise<void> {
  const worker = startWorker([args[0] as string, url, '1', ...args.slice(1)]);
  const code = await worker.exited;
  assert.equal(code, 0, `worker ${args.join(' ')} failed: ${worker.stderr.join('')}`);
  assert.deepEqual(worker.lines, ['done']);
}

/**
 * The read that follows another process's change: the very next one for a
 * store that checks at each read; for a store told by message, the first read
 * that sees `expected` within MESSAGE_DELAY_MS (every earlier read must show
 * the state before the change, never anything else).
 */
async function readAfterChange(fresh: ContractStore, domain: string, expected: RatchetRead, before: RatchetRead): Promise<RatchetRead> {
  const strip = (read: RatchetRead): unknown => (read.kind === 'level' ? { kind: 'level', level: read.entry.level } : read);
  let read = await fresh.store.get(domain);
  if (fresh.changesSeen === 'next-read') return read;
  const deadline = Date.now() + MESSAGE_DELAY_MS;
  while (Date.now() < deadline && !isDeepStrictEqual(strip(read), strip(expected))) {
    assert.deepEqual(strip(read), strip(before), 'before the message arrives, a read shows the state before the change');
    await new Promise((resolve) => setTimeout(resolve, 5));
    read = await fresh.store.get(domain);
  }
  return read;
}

/** Declares `describe(name)` with the tests every ratchet store must pass. */
export function ratchetStoreContract(name: string, setup: () => Promise<ContractStore>): void {
  const withStore = (body: (fresh: ContractStore) => Promise<void>): Promise<void> => withFresh(setup, body);

  describe(name, () => {
    test('TLS-4: a raise never lowers the stored level, and resolves with the level now stored', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await store.get('example.com'), { kind: 'none' });
        assert.equal(await store.raise('example.com', SecLevel.PLAIN, 'mx0.example.com'), SecLevel.PLAIN);
        assert.equal(await store.raise('example.com', SecLevel.TLS_SECURE, 'mx1.example.com'), SecLevel.TLS_SECURE);
        assert.equal(await store.raise('example.com', SecLevel.TLS_INSECURE, 'mx2.example.com'), SecLevel.TLS_SECURE);
        assert.equal(await store.raise('example.com', SecLevel.PLAIN), SecLevel.TLS_SECURE);
        const read = await store.get('example.com');
        assert.equal(levelOf(read), SecLevel.TLS_SECURE);
        const entry = (read as Extract<RatchetRead, { kind: 'level' }>).entry;
        assert.equal(entry.domain, 'example.com');
        assert.equal(entry.host, 'mx1.example.com', 'the host that reached the stored level');
        assert.ok(typeof entry.raisedAt === 'number' && Math.abs(entry.raisedAt - Date.now()) < 60_000, `raisedAt ${entry.raisedAt}`);
        assert.ok(store.description.length > 0);
      }));

    test('TLS-4: only reset forgets a domain; resetting an unknown domain says so', () =>
      withStore(async ({ store }) => {
        await store.raise('example.org', SecLevel.TLS_INSECURE);
        assert.equal(await store.reset('example.org'), true);
        assert.deepEqual(await store.get('example.org'), { kind: 'none' });
        assert.equal(await store.reset('example.org'), false);
        assert.equal(await store.reset('never.example'), false);
        assert.equal(await store.raise('example.org', SecLevel.PLAIN), SecLevel.PLAIN, 'a reset domain starts again from nothing');
        assert.deepEqual(await store.list().then((all) => all.map((e) => e.domain)), ['example.org']);
      }));

    test('ST-1: list shows every entry, sorted, address literals included', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await store.list(), [], 'nothing stored yet: empty list');
        await store.raise('b.example', SecLevel.TLS_SECURE, 'mx.b.example');
        await store.raise('[192.0.2.1]', SecLevel.TLS_INSECURE);
        await store.raise('a.example', SecLevel.PLAIN);
        await store.raise('xn--bcher-kva.example', SecLevel.TLS_INSECURE);
        await store.raise('[2001:db8::1]', SecLevel.TLS_SECURE);
        const all = await store.list();
        assert.deepEqual(
          all.map(({ domain, read }) => `${domain}=${levelName(levelOf(read))}`),
          [
            '[192.0.2.1]=TLS_INSECURE',
            '[2001:db8::1]=TLS_SECURE',
            'a.example=PLAIN',
            'b.example=TLS_SECURE',
            'xn--bcher-kva.example=TLS_INSECURE',
          ],
        );
      }));

    test('ST-1: keys that are not A-labels or address literals, and levels that are not levels, are refused before touching the store', () =>
      withStore(async ({ store }) => {
        for (const bad of ['Example.com', '../etc', 'a/b', '', '.hidden', 'bücher.example', 'example.com.', 'a*b.example', 'x:y']) {
          const namesKey = (err: Error): boolean => err.message.includes(`"${bad}"`);
          await assert.rejects(store.raise(bad, SecLevel.PLAIN), namesKey, `raise ${bad}`);
          await assert.rejects(store.get(bad), namesKey, `get ${bad}`);
          await assert.rejects(store.reset(bad), namesKey, `reset ${bad}`);
        }
        for (const bad of [7, -1, 1.5, NaN]) {
          await assert.rejects(store.raise('example.com', bad as SecLevel), `raise to ${bad}`);
        }
        assert.deepEqual(await store.get('example.com'), { kind: 'none' }, 'a refused level wrote nothing');
        assert.deepEqual(await store.list(), [], 'refused calls wrote nothing');
      }));

    test('ST-2: raises racing with resets never leave an unreadable entry', () =>
      withStore(async ({ store }) => {
        const domains = ['r1.example', 'r2.example', 'r3.example'];
        const operations: Array<Promise<unknown>> = [];
        for (let i = 0; i < 150; i++) {
          const domain = domains[i % domains.length] as string;
          operations.push(i % 5 === 4 ? store.reset(domain) : store.raise(domain, (i % 3) as SecLevel));
        }
        await Promise.all(operations);
        for (const { domain, read } of await store.list()) assert.notEqual(read.kind, 'unreadable', `${domain}: ${JSON.stringify(read)}`);
        await store.raise('r1.example', SecLevel.TLS_SECURE);
        assert.equal(levelOf(await store.get('r1.example')), SecLevel.TLS_SECURE);
      }));

    test('ST-4: a read racing with resets and raises sees none or a level, never unreadable', () =>
      withStore(async ({ store }) => {
        const domain = 'flip.example';
        let writing = true;
        const writer = (async () => {
          for (let i = 0; i < 200; i++) {
            await store.raise(domain, (i % 3) as SecLevel);
            if (i % 2 === 1) await store.reset(domain);
          }
        })().finally(() => {
          writing = false;
        });
        const reads: RatchetRead[] = [];
        while (writing) {
          reads.push(await store.get(domain));
          await yieldToIo(); // a remembered read (OPS-6) does no I/O: let the writer run
        }
        await writer;
        const unreadable = reads.filter((read) => read.kind === 'unreadable');
        assert.deepEqual(unreadable, [], `${unreadable.length} of ${reads.length} reads were unreadable`);
      }));

    test('ST-2/ST-3: eight processes raising at once never lose a raise and never see a level go down', () =>
      withStore(async ({ url, store }) => {
        const domainCount = 12;
        const workers = Array.from({ length: 8 }, (_, i) => startWorker(['monotonic', url, String(1000 + i), '150', String(domainCount)]));
        await Promise.all(workers.map((w) => w.waitForLine((line) => line === 'ready')));
        for (const w of workers) w.child.stdin?.write('go\n');

        // This process reads every domain continuously while the workers write.
        const domains = Array.from({ length: domainCount }, (_, i) => `d${i}.st2.test`);
        const seen = new Map<string, number>();
        let running = true;
        let polls = 0;
        const allExited = Promise.all(workers.map((w) => w.exited)).finally(() => {
          running = false;
        });
        while (running) {
          for (const domain of domains) {
            const read = await store.get(domain);
            assert.notEqual(read.kind, 'unreadable', `${domain}: ${JSON.stringify(read)}`);
            const level = read.kind === 'level' ? read.entry.level : -1;
            assert.ok(level >= (seen.get(domain) ?? -1), `${domain} went down from ${seen.get(domain)} to ${level}`);
            seen.set(domain, level);
          }
          polls++;
          await yieldToIo(); // remembered reads (OPS-6) do no I/O: let the workers' exits be seen
        }
        const codes = await allExited;
        codes.forEach((code, i) => assert.equal(code, 0, `worker ${i} failed: ${workers[i]?.stderr.join('')}`));
        assert.ok(polls > 1, 'the reader polled while the workers ran');

        const expected = new Map<string, SecLevel>();
        for (const w of workers) {
          const result = JSON.parse(w.lines.at(-1) ?? '{}') as { max: Record<string, string> };
          for (const [domain, levelText] of Object.entries(result.max)) {
            const level = parseLevel(levelText);
            assert.ok(level !== null);
            if (level > (expected.get(domain) ?? -1)) expected.set(domain, level);
          }
        }
        assert.ok(expected.size > 0);
        const all = await store.list();
        assert.deepEqual(
          Object.fromEntries(all.map(({ domain, read }) => [domain, levelName(levelOf(read))])),
          Object.fromEntries([...expected].sort(([a], [b]) => (a < b ? -1 : 1)).map(([domain, level]) => [domain, levelName(level)])),
        );
      }));

    test('OPS-6: a warm read makes no per-domain read of the backend, for a level and for none', () =>
      withStore(async (fresh) => {
        const { store } = fresh;
        await store.raise('warm.example', SecLevel.TLS_SECURE, 'mx.warm.example');
        await store.raise('[192.0.2.9]', SecLevel.PLAIN);
        const domains = ['warm.example', '[192.0.2.9]', 'never.example'];
        // Warm up (a store that subscribes to changes may need a moment to be subscribed).
        for (let i = 0; i < 3; i++) for (const domain of domains) await store.get(domain);
        const before = await fresh.backendReads();
        for (let i = 0; i < 50; i++) {
          assert.equal(levelOf(await store.get('warm.example')), SecLevel.TLS_SECURE);
          assert.equal(levelOf(await store.get('[192.0.2.9]')), SecLevel.PLAIN);
          assert.deepEqual(await store.get('never.example'), { kind: 'none' });
        }
        const read = await store.get('warm.example');
        assert.equal((read as Extract<RatchetRead, { kind: 'level' }>).entry.host, 'mx.warm.example', 'a cached entry is the whole entry');
        assert.equal((await fresh.backendReads()) - before, 0, '151 warm reads made no per-domain read');
      }));

    test('ST-2/ST-3: a raise by another process is seen at the next read, also when the level was cached', () =>
      withStore(async (fresh) => {
        const { url, store } = fresh;
        await store.raise('other.example', SecLevel.PLAIN);
        for (let i = 0; i < 3; i++) await store.get('other.example');
        assert.deepEqual(await store.get('fresh.example'), { kind: 'none' });
        const plain = await store.get('other.example');
        assert.equal(levelOf(plain), SecLevel.PLAIN);

        await changeInOtherProcess(url, ['raise', 'other.example', 'TLS_SECURE']);
        assert.equal(levelOf(await readAfterChange(fresh, 'other.example', secure('other.example'), plain)), SecLevel.TLS_SECURE);
        await changeInOtherProcess(url, ['raise', 'fresh.example', 'TLS_INSECURE']);
        const none: RatchetRead = { kind: 'none' };
        assert.equal(levelOf(await readAfterChange(fresh, 'fresh.example', insecure('fresh.example'), none)), SecLevel.TLS_INSECURE);
        // Still warm afterwards: the change invalidated, it did not disable the cache.
        const before = await fresh.backendReads();
        for (let i = 0; i < 3; i++) await store.get('other.example');
        assert.ok((await fresh.backendReads()) - before <= 1, 'at most one read refills the cache');
      }));

    test('ST-2/ST-3: a reset by another process (the CLI) is seen at the next read, also when the level was cached', () =>
      withStore(async (fresh) => {
        const { url, store } = fresh;
        await store.raise('reset.example', SecLevel.TLS_SECURE);
        for (let i = 0; i < 3; i++) await store.get('reset.example');
        const secureRead = await store.get('reset.example');
        assert.equal(levelOf(secureRead), SecLevel.TLS_SECURE);
        await changeInOtherProcess(url, ['reset', 'reset.example']);
        assert.deepEqual(await readAfterChange(fresh, 'reset.example', { kind: 'none' }, secureRead), { kind: 'none' });
        // And a lower level raised after the reset counts too.
        await changeInOtherProcess(url, ['raise', 'reset.example', 'PLAIN']);
        const after = await readAfterChange(fresh, 'reset.example', plainRead('reset.example'), { kind: 'none' });
        assert.equal(levelOf(after), SecLevel.PLAIN);
      }));

    test('OPS-6: peek answers from memory only what get would answer, or nothing; never a level changed since', () =>
      withStore(async (fresh) => {
        const { url, store } = fresh;
        const peek = store.peek?.bind(store);
        assert.ok(peek, 'the store can answer from memory without a wait');
        await store.raise('peek.example', SecLevel.PLAIN);
        assert.equal(peek('Not A Key'), undefined, 'an invalid key: get says why');
        // A store that subscribes to changes may need a moment before it remembers anything.
        let peeked = peek('peek.example');
        for (const deadline = Date.now() + MESSAGE_DELAY_MS; peeked === undefined && Date.now() < deadline; peeked = peek('peek.example')) {
          await store.get('peek.example');
          await store.get('none.example');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        assert.equal(levelOf(peeked as RatchetRead), SecLevel.PLAIN);
        assert.deepEqual(peek('none.example'), { kind: 'none' });
        assert.equal(peek('unread.example'), undefined, 'never read: get has to read it');
        const before = await fresh.backendReads();
        for (let i = 0; i < 50; i++) assert.equal(levelOf(peek('peek.example') as RatchetRead), SecLevel.PLAIN);
        assert.equal((await fresh.backendReads()) - before, 0, 'peek reads nothing');

        await changeInOtherProcess(url, ['raise', 'peek.example', 'TLS_SECURE']);
        if (fresh.changesSeen === 'next-read') {
          const next = peek('peek.example');
          assert.ok(next === undefined || levelOf(next) === SecLevel.TLS_SECURE, 'never the level before the change');
        }
        assert.equal(
          levelOf(await readAfterChange(fresh, 'peek.example', secure('peek.example'), plainRead('peek.example'))),
          SecLevel.TLS_SECURE,
        );
        const after = peek('peek.example');
        assert.ok(after === undefined || levelOf(after) === SecLevel.TLS_SECURE);
        await store.reset('peek.example');
        const reset = peek('peek.example');
        assert.ok(reset === undefined || reset.kind === 'none', 'a reset in this process is never answered from memory');
      }));

    test('ST-2/ST-3: a reset in this process is seen at the next read', () =>
      withStore(async ({ store }) => {
        await store.raise('self.example', SecLevel.TLS_INSECURE);
        for (let i = 0; i < 3; i++) await store.get('self.example');
        assert.equal(await store.reset('self.example'), true);
        assert.deepEqual(await store.get('self.example'), { kind: 'none' });
        await store.raise('self.example', SecLevel.PLAIN);
        assert.equal(levelOf(await store.get('self.example')), SecLevel.PLAIN);
      }));
  });
}

function levelRead(domain: string, level: SecLevel): RatchetRead {
  return { kind: 'level', entry: { domain, level } };
}
const secure = (domain: string): RatchetRead => levelRead(domain, SecLevel.TLS_SECURE);
const insecure = (domain: string): RatchetRead => levelRead(domain, SecLevel.TLS_INSECURE);
const plainRead = (domain: string): RatchetRead => levelRead(domain, SecLevel.PLAIN);
