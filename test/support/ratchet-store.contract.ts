/**
 * What every RatchetStore must do (ST-1, ST-2, ST-3, TLS-4), as one test suite
 * that runs unchanged against each store: the file store's tests and the Redis
 * store's tests both call {@link ratchetStoreContract}. Not a test file itself.
 *
 * `setup` gives each test a fresh, empty store, the URL another process opens
 * the same store with (openRatchetStoreFromUrl), and a cleanup.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { RatchetRead, RatchetStore } from 'haraka-outbound-security/ratchet/store';
import { SecLevel, levelName, parseLevel } from 'haraka-outbound-security/tls/sec-level';

/** The compiled worker (ratchet-store.worker.ts) that uses a store from another process. */
export const RATCHET_WORKER = path.join(__dirname, 'ratchet-store.worker.js');

export interface ContractStore {
  url: string;
  store: RatchetStore;
  cleanup(): Promise<void>;
}

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

/** Declares `describe(name)` with the tests every ratchet store must pass. */
export function ratchetStoreContract(name: string, setup: () => Promise<ContractStore>): void {
  /** Runs `body` with a fresh store, cleaning up afterwards whatever happens. */
  async function withStore(body: (fresh: ContractStore) => Promise<void>): Promise<void> {
    const fresh = await setup();
    try {
      await body(fresh);
    } finally {
      await fresh.cleanup();
    }
  }

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
        while (writing) reads.push(await store.get(domain));
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
  });
}
