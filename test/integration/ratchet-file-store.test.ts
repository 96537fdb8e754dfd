/**
 * FileRatchetStore (ST-2): the store contract (ratchet-store.contract.ts) plus
 * what only files can do wrong: the on-disk layout, corrupt and foreign files,
 * temp files and dangling links, permissions, and writers killed mid-raise.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileRatchetStore, STALE_LEFTOVER_MS } from '#lib/ratchet/file-store';
import { CHANGES_FILE } from '#lib/ratchet/change-marker';
import { assertUnreadable, levelOf, ratchetStoreContract, startWorker } from '../support/ratchet-store.contract';
import type { RatchetRead } from '#lib/ratchet/store';
import { SecLevel, levelName } from '#lib/sec-level';

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

/**
 * OPS-6: every file-system call of this process that names a domain entry of
 * a ratchet directory (`<dir>/<domain>` or below; not the directory itself nor
 * its dot-files such as the change marker), counted by wrapping `fs` and
 * `fs.promises`, which the store calls through.
 */
const domainReads: string[] = [];
const READ_CALLS = {
  promises: ['readdir', 'readFile', 'lstat', 'stat', 'open', 'opendir'],
  sync: ['readdirSync', 'readFileSync', 'lstatSync', 'statSync', 'openSync', 'opendirSync'],
};
before(() => {
  const wrap = (target: Record<string, unknown>, name: string): void => {
    const original = target[name] as (...args: unknown[]) => unknown;
    target[name] = function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === 'string') domainReads.push(args[0]);
      return original.apply(this, args);
    };
  };
  for (const name of READ_CALLS.promises) wrap(fs.promises as unknown as Record<string, unknown>, name);
  for (const name of READ_CALLS.sync) wrap(fs as unknown as Record<string, unknown>, name);
});

/** How many counted calls named a domain entry under `dir`. */
function domainReadsUnder(dir: string): number {
  return domainReads.filter((file) => {
    const relative = path.relative(dir, file);
    return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) && !relative.startsWith('.');
  }).length;
}

ratchetStoreContract('FileRatchetStore', async () => {
  const dir = freshDir();
  return {
    url: `file:${dir}`,
    store: new FileRatchetStore(dir),
    cleanup: async () => fs.rmSync(path.dirname(dir), { recursive: true, force: true }),
    backendReads: async () => domainReadsUnder(dir),
    changesSeen: 'next-read',
  };
});

describe('FileRatchetStore on disk', () => {
  test('ST-2: each level reached is one complete file in the domain directory, no temp files left', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('example.com', SecLevel.PLAIN, 'mx0.example.com');
    await store.raise('example.com', SecLevel.TLS_SECURE, 'mx1.example.com');
    await store.raise('example.com', SecLevel.TLS_INSECURE, 'mx2.example.com');
    const read = await store.get('example.com');
    const entry = (read as Extract<RatchetRead, { kind: 'level' }>).entry;
    assert.deepEqual(fs.readdirSync(path.join(dir, 'example.com')).sort(), ['PLAIN', 'TLS_SECURE']);
    const content: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'example.com', 'TLS_SECURE'), 'utf8'));
    assert.deepEqual(content, { raisedAt: entry.raisedAt, host: 'mx1.example.com' });
    assert.equal(store.description, `file:${dir}`);
    await store.close();
  });

  test('ST-1: refused keys and levels create nothing on disk, not even the ratchet directory', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await assert.rejects(store.raise('../etc', SecLevel.PLAIN), /not a valid domain key/);
    await assert.rejects(store.raise('example.com', 7 as SecLevel), /not a security level/);
    assert.equal(await store.reset('example.com'), false);
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
});

/**
 * A write made by hand here stands for another process's: a reader sees it once
 * its event loop has read the kernel's notification of the change
 * (store/watched-stat.ts), which the loop does in its next I/O poll. Two
 * setImmediate callbacks in a row always have a poll between them (one alone
 * does not when it is queued from the poll phase). In Haraka a read always
 * follows such polls: the decision runs on a reply from the MX.
 */
async function loopTurn(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('FileRatchetStore memory and change marker (OPS-6)', () => {
  test('OPS-6: every raise and reset appends its domain to the change marker twice (intent, then done)', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('a.example', SecLevel.PLAIN);
    await store.raise('a.example', SecLevel.PLAIN); // nothing to raise: nothing announced
    await store.raise('relay:mx.b.example', SecLevel.TLS_SECURE);
    await store.reset('a.example');
    await store.reset('never.example'); // nothing there: an intent line only
    assert.equal(
      fs.readFileSync(path.join(dir, CHANGES_FILE), 'utf8'),
      'a.example\na.example\nrelay:mx.b.example\nrelay:mx.b.example\na.example\na.example\nnever.example\n',
    );
  });

  test('ST-2: a writer killed between its level file and its done line leaves no reader stale longer than settleMs', async () => {
    const dir = freshDir();
    let clock = 1_000_000;
    const settleMs = 1_000;
    const reader = new FileRatchetStore(dir, { settleMs, now: () => clock });
    await new FileRatchetStore(dir).raise('crash.example', SecLevel.PLAIN);
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.PLAIN);
    clock += 2 * settleMs; // past the settling of the reader's start
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.PLAIN);
    const settled = domainReadsUnder(dir);
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.PLAIN);
    assert.equal(domainReadsUnder(dir), settled, 'settled: remembered');

    // What a writer killed after its level file and before its done line leaves behind:
    fs.appendFileSync(path.join(dir, CHANGES_FILE), 'crash.example\n'); // its intent line
    await loopTurn();
    clock += 10;
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.PLAIN, 'read between intent and link');
    fs.writeFileSync(path.join(dir, 'crash.example', 'TLS_SECURE'), `{"raisedAt":${Date.now()}}\n`); // its level file
    clock += 10;
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.PLAIN, 'within settleMs the remembered read stands');
    clock += settleMs;
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.TLS_SECURE, 'after settleMs it is read again');
    const after = domainReadsUnder(dir);
    clock += 10 * settleMs;
    assert.equal(levelOf(await reader.get('crash.example')), SecLevel.TLS_SECURE);
    assert.equal(domainReadsUnder(dir), after, 'and then remembered again');
  });

  test('ST-4: an unreadable entry is read again at every get, never remembered as a level', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir);
    await store.raise('broken.example', SecLevel.PLAIN);
    await store.get('broken.example');
    fs.writeFileSync(path.join(dir, 'broken.example', 'TLS_SECURE'), '{"raisedAt":'); // torn by hand…
    fs.appendFileSync(path.join(dir, CHANGES_FILE), 'broken.example\n'); // …and announced, so readers look again
    await loopTurn();
    for (let i = 0; i < 3; i++) {
      const before = domainReadsUnder(dir);
      assertUnreadable(await store.get('broken.example'), path.join(dir, 'broken.example', 'TLS_SECURE'));
      assert.ok(domainReadsUnder(dir) > before, `read ${i} went to the disk`);
    }
    fs.writeFileSync(path.join(dir, 'broken.example', 'TLS_SECURE'), '{"raisedAt":1}\n'); // repaired by hand
    assert.equal(levelOf(await store.get('broken.example')), SecLevel.TLS_SECURE, 'the repair is seen at once');
  });

  test('OPS-6: a store written before the marker existed gets one at its first read, and is remembered from then on', async () => {
    const dir = freshDir();
    await new FileRatchetStore(dir).raise('old.example', SecLevel.TLS_INSECURE);
    fs.rmSync(path.join(dir, CHANGES_FILE));
    await loopTurn();
    const store = new FileRatchetStore(dir, { settleMs: 0 });
    assert.equal(levelOf(await store.get('old.example')), SecLevel.TLS_INSECURE);
    assert.equal(fs.existsSync(path.join(dir, CHANGES_FILE)), true);
    const before = domainReadsUnder(dir);
    assert.equal(levelOf(await store.get('old.example')), SecLevel.TLS_INSECURE);
    assert.equal(domainReadsUnder(dir), before);
    // A marker replaced (deleted and made again) makes every reader forget everything.
    fs.rmSync(path.join(dir, CHANGES_FILE));
    fs.mkdirSync(path.join(dir, 'old.example', 'x'), { recursive: true }); // now unreadable
    fs.writeFileSync(path.join(dir, CHANGES_FILE), '');
    await loopTurn();
    // The kernel's notification may come a little later on a loaded machine; the change check stats at least once a second.
    let read = await store.get('old.example');
    for (const deadline = Date.now() + 3000; read.kind !== 'unreadable' && Date.now() < deadline; read = await store.get('old.example')) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assertUnreadable(read, path.join(dir, 'old.example', 'x'));
  });

  test('OPS-5: what a process remembers is bounded in entries', async () => {
    const dir = freshDir();
    const store = new FileRatchetStore(dir, { memory: { entries: 2, bytes: 1 << 20 }, settleMs: 0 });
    for (const domain of ['a.example', 'b.example', 'c.example']) await store.raise(domain, SecLevel.PLAIN);
    for (const domain of ['a.example', 'b.example', 'c.example']) await store.get(domain);
    const before = domainReadsUnder(dir);
    await store.get('b.example');
    await store.get('c.example');
    assert.equal(domainReadsUnder(dir), before, 'the two most recent are remembered');
    await store.get('a.example');
    assert.ok(domainReadsUnder(dir) > before, 'the oldest was forgotten');
  });
});

describe('FileRatchetStore with processes killed', () => {
  test('ST-2: kill -9 at random moments leaves every domain readable and at least at its confirmed level', async () => {
    const dir = freshDir();
    const confirmed = new Map<string, SecLevel>();
    const rounds = 4;
    // A reader that lives through the kills and remembers what it reads (OPS-6).
    const settleMs = 300;
    const reader = new FileRatchetStore(dir, { settleMs });
    const shared = ['shared0.kill.test', 'shared1.kill.test', 'shared2.kill.test', 'shared3.kill.test'];
    for (let round = 0; round < rounds; round++) {
      const workers = Array.from({ length: 4 }, (_, i) => startWorker(['loop', `file:${dir}`, String(round * 10 + i), `r${round}w${i}`]));
      let reading = true;
      const reads = (async () => {
        while (reading) {
          for (const domain of shared) assert.notEqual((await reader.get(domain)).kind, 'unreadable', domain);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      // Let each one confirm at least one raise, then kill it at a random moment.
      await Promise.all(
        workers.map(async (w) => {
          await w.waitForLine((line) => line.startsWith('{'));
          await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 150));
          w.child.kill('SIGKILL');
          assert.equal(await w.exited, null, `worker should die of SIGKILL: ${w.stderr.join('')}`);
        }),
      );
      reading = false;
      await reads;
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
    // The long-lived reader, once settleMs has passed, is not stale about anything confirmed.
    await new Promise((resolve) => setTimeout(resolve, settleMs + 50));
    for (const [domain, level] of confirmed) {
      const read = await reader.get(domain);
      assert.ok(levelOf(read) >= level, `reader: ${domain}: confirmed ${levelName(level)}, reads ${JSON.stringify(read)}`);
    }
    // A domain killed between mkdir and link reads as none (its raise never resolved); none is not unreadable.
    const all = await store.list();
    for (const { domain, read } of all) assert.notEqual(read.kind, 'unreadable', `${domain}: ${JSON.stringify(read)}`);
  });
});
