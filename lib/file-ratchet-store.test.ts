import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileRatchetStore, STALE_LEFTOVER_MS } from './file-ratchet-store';
import type { RatchetRead } from './ratchet-store';
import { SecLevel, levelName, parseLevel } from './sec-level';

const WORKER = path.join(__dirname, 'file-ratchet-store.worker.js');
const isRoot = process.getuid?.() === 0;

let tmp: string;
let counter = 0;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ratchet-store-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh ratchet directory (not created yet) for one test. */
function freshDir(): string {
  return path.join(tmp, `case-${++counter}`, 'ratchet');
}

function levelOf(read: RatchetRead): SecLevel {
  assert.equal(read.kind, 'level', `expected a level, got ${JSON.stringify(read)}`);
  return (read as Extract<RatchetRead, { kind: 'level' }>).entry.level;
}

function assertUnreadable(read: RatchetRead, mentions: string): void {
  assert.equal(read.kind, 'unreadable', `expected unreadable, got ${JSON.stringify(read)}`);
  const { reason } = read as Extract<RatchetRead, { kind: 'unreadable' }>;
  assert.ok(reason.includes(mentions), `reason "${reason}" should mention ${mentions}`);
}

describe('FileRatchetStore', () => {
  test('TLS-4: a raise never lowers the stored level', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    assert.deepEqual(await store.get('example.com'), { kind: 'none' });
    assert.equal(await store.raise('example.com', SecLevel.PLAIN, 'mx0.example.com'), SecLevel.PLAIN);
    assert.equal(await store.raise('example.com', SecLevel.TLS_SECURE, 'mx1.example.com'), SecLevel.TLS_SECURE);
    assert.equal(await store.raise('example.com', SecLevel.TLS_INSECURE, 'mx2.example.com'), SecLevel.TLS_SECURE);
    assert.equal(await store.raise('example.com', SecLevel.PLAIN), SecLevel.TLS_SECURE);
    const read = await store.get('example.com');
    assert.equal(levelOf(read), SecLevel.TLS_SECURE);
    const entry = (read as Extract<RatchetRead, { kind: 'level' }>).entry;
    assert.equal(entry.domain, 'example.com');
    assert.equal(entry.host, 'mx1.example.com');
    assert.ok(typeof entry.raisedAt === 'number' && Math.abs(entry.raisedAt - Date.now()) < 60_000);
    // The layout the design describes: one complete file per level reached, no temp files left.
    assert.deepEqual(fs.readdirSync(path.join(dir, 'example.com')).sort(), ['PLAIN', 'TLS_SECURE']);
    const content: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'example.com', 'TLS_SECURE'), 'utf8'));
    assert.deepEqual(content, { raisedAt: entry.raisedAt, host: 'mx1.example.com' });
    assert.equal(store.description, `file:${dir}`);
    await store.close();
  });

  test('TLS-4: only reset forgets a domain; resetting an unknown domain says so', async () => {
    const store = new FileRatchetStore(freshDir());
    await store.raise('example.org', SecLevel.TLS_INSECURE);
    assert.equal(await store.reset('example.org'), true);
    assert.deepEqual(await store.get('example.org'), { kind: 'none' });
    assert.equal(await store.reset('example.org'), false);
    assert.equal(await store.reset('never.example'), false);
    assert.equal(await store.raise('example.org', SecLevel.PLAIN), SecLevel.PLAIN, 'a reset domain starts again from nothing');
    assert.deepEqual(await store.list().then((all) => all.map((e) => e.domain)), ['example.org']);
  });

  test('ST-1: list shows every entry, sorted, address literals included', async () => {
    const store = new FileRatchetStore(freshDir());
    assert.deepEqual(await store.list(), [], 'no directory yet: empty list');
    await store.raise('b.example', SecLevel.TLS_SECURE, 'mx.b.example');
    await store.raise('[192.0.2.1]', SecLevel.TLS_INSECURE);
    await store.raise('a.example', SecLevel.PLAIN);
    await store.raise('xn--bcher-kva.example', SecLevel.TLS_INSECURE);
    const all = await store.list();
    assert.deepEqual(
      all.map(({ domain, read }) => `${domain}=${levelName(levelOf(read))}`),
      ['[192.0.2.1]=TLS_INSECURE', 'a.example=PLAIN', 'b.example=TLS_SECURE', 'xn--bcher-kva.example=TLS_INSECURE'],
    );
  });

  test('ST-1: keys that are not A-labels or address literals are refused before touching the store', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    for (const bad of ['Example.com', '../etc', 'a/b', '', '.hidden', 'bücher.example', 'example.com.']) {
      await assert.rejects(store.raise(bad, SecLevel.PLAIN), (err: Error) => err.message.includes('not a valid domain key'), bad);
      await assert.rejects(store.get(bad), /not a valid domain key/, bad);
      await assert.rejects(store.reset(bad), /not a valid domain key/, bad);
    }
    await assert.rejects(store.raise('example.com', 7 as SecLevel), /not a security level/);
    assert.equal(fs.existsSync(dir), false);
  });

  test('ST-2: a raise that cannot be persisted rejects with the path and the errno', async () => {
    const dir = freshDir();
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(dir, 'not a directory');
    const store = new FileRatchetStore(dir);
    await assert.rejects(store.raise('example.com', SecLevel.TLS_SECURE), (err: Error) => {
      assert.match(err.message, /cannot raise example\.com to TLS_SECURE/);
      assert.ok(err.message.includes(path.join(dir, 'example.com')), err.message);
      assert.match(err.message, /ENOTDIR|EEXIST/);
      return true;
    });
  });

  test('ST-2: temp files left by a crash are ignored, and list removes stale ones', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('example.com', SecLevel.TLS_INSECURE);
    const domainDir = path.join(dir, 'example.com');
    const stale = path.join(domainDir, '.tmp-1-stale');
    const fresh = path.join(domainDir, '.tmp-2-fresh');
    fs.writeFileSync(stale, '{"raisedAt":');
    fs.writeFileSync(fresh, '');
    const old = new Date(Date.now() - 2 * STALE_LEFTOVER_MS);
    fs.utimesSync(stale, old, old);
    const staleReset = path.join(dir, '.reset-1-stale');
    fs.mkdirSync(staleReset);
    fs.writeFileSync(path.join(staleReset, 'TLS_SECURE'), '{}');
    fs.utimesSync(staleReset, old, old);
    assert.equal(levelOf(await store.get('example.com')), SecLevel.TLS_INSECURE);
    const all = await store.list();
    assert.deepEqual(
      all.map((e) => e.domain),
      ['example.com'],
    );
    assert.equal(fs.existsSync(stale), false, 'stale temp file removed');
    assert.equal(fs.existsSync(fresh), true, 'a temp file being written is left alone');
    assert.equal(fs.existsSync(staleReset), false, 'stale reset directory removed');
  });

  test('ST-4: entries a raise cannot produce read as unreadable, naming the path, and list reports them', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('good.example', SecLevel.TLS_SECURE);
    const make = (domain: string, files: Record<string, string>): string => {
      const domainDir = path.join(dir, domain);
      fs.mkdirSync(domainDir, { recursive: true });
      for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(domainDir, name), content);
      return domainDir;
    };
    const garbage = make('garbage-name.example', { PLAIN: '{"raisedAt":1}', 'notes.txt': 'hello' });
    const brokenJson = make('broken-json.example', { TLS_INSECURE: '{"raisedAt": 17' });
    make('broken-lower.example', { PLAIN: '{"raisedAt": 1}' });
    const empty = make('empty.example', { TLS_SECURE: '' });
    const wrongShape = make('wrong-shape.example', { TLS_SECURE: '{"raisedAt":"yesterday"}' });
    const levelDir = make('level-dir.example', {});
    fs.mkdirSync(path.join(levelDir, 'TLS_SECURE'));
    const regularFile = path.join(dir, 'file.example');
    fs.writeFileSync(regularFile, 'TLS_SECURE');
    const dangling = path.join(dir, 'dangling.example');
    fs.symlinkSync(path.join(tmp, 'nowhere'), dangling);
    fs.mkdirSync(path.join(dir, 'Not_A_Key'));

    assertUnreadable(await store.get('garbage-name.example'), path.join(garbage, 'notes.txt'));
    assertUnreadable(await store.get('broken-json.example'), path.join(brokenJson, 'TLS_INSECURE'));
    assertUnreadable(await store.get('empty.example'), path.join(empty, 'TLS_SECURE'));
    assertUnreadable(await store.get('wrong-shape.example'), path.join(wrongShape, 'TLS_SECURE'));
    assertUnreadable(await store.get('level-dir.example'), path.join(levelDir, 'TLS_SECURE'));
    assertUnreadable(await store.get('file.example'), regularFile);
    assertUnreadable(await store.get('dangling.example'), dangling);
    assert.equal(levelOf(await store.get('broken-lower.example')), SecLevel.PLAIN);

    const all = await store.list();
    const kinds = Object.fromEntries(all.map(({ domain, read }) => [domain, read.kind]));
    assert.deepEqual(kinds, {
      Not_A_Key: 'unreadable',
      'broken-json.example': 'unreadable',
      'broken-lower.example': 'level',
      'dangling.example': 'unreadable',
      'empty.example': 'unreadable',
      'file.example': 'unreadable',
      'garbage-name.example': 'unreadable',
      'good.example': 'level',
      'level-dir.example': 'unreadable',
      'wrong-shape.example': 'unreadable',
    });

    // A raise on an unreadable domain refuses (it might hold more); reset clears it.
    await assert.rejects(store.raise('broken-json.example', SecLevel.TLS_SECURE), /cannot raise broken-json\.example.*not valid JSON/);
    for (const domain of ['broken-json.example', 'file.example', 'dangling.example']) {
      assert.equal(await store.reset(domain), true);
      assert.deepEqual(await store.get(domain), { kind: 'none' });
    }
  });

  test('ST-4: an unreadable domain directory, or a ratchet directory that is a dangling link, is unreadable', async (t) => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('locked.example', SecLevel.TLS_SECURE);
    if (isRoot) {
      t.diagnostic('running as root: chmod 000 does not stop reads, the error path is covered by files and dangling links');
    } else {
      const domainDir = path.join(dir, 'locked.example');
      fs.chmodSync(domainDir, 0o000);
      try {
        assertUnreadable(await store.get('locked.example'), domainDir);
        assert.equal((await store.list())[0]?.read.kind, 'unreadable');
      } finally {
        fs.chmodSync(domainDir, 0o755);
      }
    }
    // data_dir on a volume that is not mounted: not "nothing stored" but unreadable.
    const linked = path.join(tmp, `case-${++counter}`, 'ratchet');
    fs.mkdirSync(path.dirname(linked));
    fs.symlinkSync(path.join(tmp, 'unmounted-volume'), linked);
    assertUnreadable(await new FileRatchetStore(linked).get('example.com'), linked);
  });

  test('ST-2: raises racing with resets never leave an unreadable entry', async () => {
    const store = new FileRatchetStore(freshDir());
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
  });
});

/** A worker process with its stdout split into lines as they arrive. */
interface Worker {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<number | null>;
  waitForLine(predicate: (line: string) => boolean): Promise<void>;
}

function startWorker(args: string[]): Worker {
  const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
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
            exited.then(() => reject(new Error(`worker exited before the expected line: ${stderr.join('')}`)));
          }),
  };
}

describe('FileRatchetStore with concurrent processes', () => {
  test('ST-2: eight processes raising at once never lose a raise and never see a level go down', async () => {
    const dir = freshDir();
    const domainCount = 12;
    const workers = Array.from({ length: 8 }, (_, i) => startWorker(['monotonic', dir, String(1000 + i), '150', String(domainCount)]));
    await Promise.all(workers.map((w) => w.waitForLine((line) => line === 'ready')));
    for (const w of workers) w.child.stdin?.write('go\n');

    // This process reads every domain continuously while the workers write.
    const store = new FileRatchetStore(dir);
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
      for (const [domain, name] of Object.entries(result.max)) {
        const level = parseLevel(name);
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
  });

  test('ST-2: kill -9 at random moments leaves every domain readable and at least at its confirmed level', async () => {
    const dir = freshDir();
    const confirmed = new Map<string, SecLevel>();
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      const workers = Array.from({ length: 4 }, (_, i) => startWorker(['loop', dir, String(round * 10 + i), `r${round}w${i}`]));
      // Let each one confirm at least one raise, then kill it at a random moment.
      await Promise.all(
        workers.map(async (w) => {
          await w.waitForLine((line) => line.startsWith('{'));
          await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 150));
          w.child.kill('SIGKILL');
          assert.equal(await w.exited, null, `worker should die of SIGKILL: ${w.stderr.join('')}`);
        }),
      );
      for (const w of workers) {
        for (const line of w.lines) {
          if (!line.startsWith('{')) continue;
          const { domain, level } = JSON.parse(line) as { domain: string; level: SecLevel };
          if (level > (confirmed.get(domain) ?? -1)) confirmed.set(domain, level);
        }
      }
    }
    assert.ok(confirmed.size >= rounds * 4, `each worker confirmed raises (${confirmed.size})`);
    const store = new FileRatchetStore(dir);
    for (const [domain, level] of confirmed) {
      const read = await store.get(domain);
      assert.ok(levelOf(read) >= level, `${domain}: confirmed ${levelName(level)}, reads ${JSON.stringify(read)}`);
    }
    // A domain killed between mkdir and link reads as none (its raise never resolved); none is not unreadable.
    const all = await store.list();
    for (const { domain, read } of all) assert.notEqual(read.kind, 'unreadable', `${domain}: ${JSON.stringify(read)}`);
  });
});
