import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { OutboxPickup, outboxDir, parseOutboxFile, submitToOutbox, type OutboxMessage } from './outbox';

function tempDataDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrpt-outbox-'));
}

function pickup(dir: string, queued: OutboxMessage[], fail = false): { outbox: OutboxPickup; logs: string[] } {
  const logs: string[] = [];
  const outbox = new OutboxPickup({
    dir,
    queue: async (message) => {
      if (fail) throw new Error('queue refused');
      queued.push(message);
    },
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  return { outbox, logs };
}

test('RPT-7: a report written to the outbox (0700, files 0600) is queued once by whichever process claims it, then removed', async () => {
  const data = tempDataDir();
  try {
    const dir = outboxDir(data);
    const written: string[] = [];
    await submitToOutbox(dir, written)(
      'tlsrpt@sender.test',
      'rua@example.test',
      Buffer.from('TLS-Report-Domain: example.test\r\n\r\nbody'),
    );
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(written.length, 1);
    assert.equal(fs.statSync(path.join(dir, written[0] as string)).mode & 0o777, 0o600);
    const queued: OutboxMessage[] = [];
    const [first, second] = [pickup(dir, queued), pickup(dir, queued)];
    const counts = await Promise.all([first.outbox.poll(), second.outbox.poll()]);
    assert.deepEqual(counts.sort(), [0, 1], 'two processes looking at once: one queues it');
    assert.equal(queued.length, 1);
    assert.equal(queued[0]?.from, 'tlsrpt@sender.test');
    assert.equal(queued[0]?.to, 'rua@example.test');
    assert.equal(queued[0]?.message.toString(), 'TLS-Report-Domain: example.test\r\n\r\nbody');
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('RPT-7: a report Haraka could not queue stays for the next look', async () => {
  const data = tempDataDir();
  try {
    const dir = outboxDir(data);
    await submitToOutbox(dir)('a@sender.test', 'b@example.test', Buffer.from('x'));
    const queued: OutboxMessage[] = [];
    const failing = pickup(dir, queued, true);
    assert.equal(await failing.outbox.poll(), 0);
    assert.match(failing.logs.join('\n'), /not queued \(kept for the next look\): queue refused/);
    assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).length, 1);
    assert.equal(await pickup(dir, queued).outbox.poll(), 1);
    assert.equal(queued.length, 1);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('RPT-7: an outbox others can write to, or a symbolic link, is refused (logged once), nothing picked up', async () => {
  const data = tempDataDir();
  try {
    const dir = outboxDir(data);
    await submitToOutbox(dir)('a@sender.test', 'b@example.test', Buffer.from('x'));
    fs.chmodSync(dir, 0o777);
    const queued: OutboxMessage[] = [];
    const { outbox, logs } = pickup(dir, queued);
    assert.equal(await outbox.poll(), 0);
    assert.equal(await outbox.poll(), 0);
    assert.equal(logs.filter((l) => /outbox refused.*writable by group or others/.test(l)).length, 1, logs.join('\n'));
    await assert.rejects(submitToOutbox(dir)('a@sender.test', 'b@example.test', Buffer.from('x')), /cannot be used/);
    fs.chmodSync(dir, 0o700);
    assert.equal(await outbox.poll(), 1);
    assert.match(logs.join('\n'), /usable again/);

    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrpt-elsewhere-'));
    const linked = path.join(data, 'linked-outbox');
    fs.symlinkSync(elsewhere, linked);
    const viaLink = pickup(linked, queued);
    assert.equal(await viaLink.outbox.poll(), 0);
    assert.match(viaLink.logs.join('\n'), /is a symbolic link/);
    fs.rmSync(elsewhere, { recursive: true, force: true });
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('RPT-7: a file that is not a report message is moved to rejected/ with the reason; a claim of a dead process goes back', async () => {
  const data = tempDataDir();
  try {
    const dir = outboxDir(data);
    await submitToOutbox(dir)('a@sender.test', 'b@example.test', Buffer.from('x'));
    fs.writeFileSync(path.join(dir, '000-bad.json'), '{"version":1,"from":"a@b","to":"x\\r\\nRCPT TO:<evil@x>","message":""}');
    // A claim left by a process that no longer runs (pid 2^22 + 1 is above Linux's pid_max).
    fs.writeFileSync(
      path.join(dir, '.claimed-4194305-001-left.json'),
      JSON.stringify({ version: 1, from: 'a@sender.test', to: 'c@example.test', message: '' }),
    );
    const queued: OutboxMessage[] = [];
    const { outbox, logs } = pickup(dir, queued);
    await outbox.poll();
    await outbox.poll();
    assert.deepEqual(queued.map((m) => m.to).sort(), ['b@example.test', 'c@example.test']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'rejected')), ['000-bad.json']);
    assert.match(logs.join('\n'), /000-bad\.json refused \(bad recipient/);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('RPT-7: outbox files are parsed strictly', () => {
  assert.match(String(parseOutboxFile('nope')), /not JSON/);
  assert.match(String(parseOutboxFile('{"version":2}')), /unknown version/);
  assert.match(String(parseOutboxFile('{"version":1,"from":"a b@c","to":"d@e","message":""}')), /bad sender/);
  assert.match(String(parseOutboxFile('{"version":1,"from":"a@c","to":"d@e","message":"%%"}')), /not base64/);
  const ok = parseOutboxFile('{"version":1,"from":"a@c","to":"d@e","message":"aGk="}');
  assert.equal(typeof ok === 'object' && ok.message.toString(), 'hi');
});
