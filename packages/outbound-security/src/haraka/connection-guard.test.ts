/**
 * The thin layer over Haraka's socket, with a stand-in socket and message
 * (the conversation itself is tested in tls/conversation*.test.ts, the whole
 * path end to end through Haraka in test/e2e).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import { SecLevel } from '../tls/sec-level';
import { installConnectionGuard, type GuardDeps, type GuardedHMail, type HMailPrototype } from './connection-guard';

class FakeSocket extends EventEmitter {
  readonly written: string[] = [];
  isEncrypted(): boolean {
    return false;
  }
  write(data: unknown): boolean {
    this.written.push(String(data));
    return true;
  }
}

function harness(stored: RatchetRead): { proto: HMailPrototype; deps: GuardDeps; errors: unknown[] } {
  const errors: unknown[] = [];
  const proto: HMailPrototype = {
    try_deliver_host_on_socket(_mx: unknown, _host: unknown, _port: unknown, socket: unknown) {
      (socket as FakeSocket).on('error', (err) => errors.push(err));
    },
    temp_fail: () => undefined,
  };
  const store: RatchetStore = {
    description: 'fake',
    get: () => Promise.resolve(stored),
    raise: (_d, level) => Promise.resolve(level),
    reset: () => Promise.resolve(false),
    list: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  const nothing = (): void => undefined;
  const deps: GuardDeps = {
    store: () => store,
    requirement: () => ({ domain: 'example.test', ratchet: true }),
    settings: () => ({ plainRetry: true, onStoreError: 'defer' }),
    events: { connection: nothing, tlsFailure: nothing, plainRetry: nothing, ratchet: nothing, abandoned: nothing, sts: nothing },
  };
  return { proto, deps, errors };
}

const hmail: GuardedHMail = { todo: { domain: 'example.test' }, mxlist: [], loginfo() {}, logwarn() {}, logerror() {} };

async function converse(socket: FakeSocket): Promise<void> {
  socket.emit('line', '220 mx.example.test ESMTP\r\n');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250 mx.example.test\r\n');
  socket.write('MAIL FROM:<a@example.org>\r\n');
  await new Promise((resolve) => setTimeout(resolve, 10));
}

test('TLS-2/OPS-6: once the connection passed, the socket is Haraka’s own again (the message body is not watched)', async () => {
  const { proto, deps, errors } = harness({ kind: 'none' });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  const prototypeWrite = FakeSocket.prototype.write;
  const prototypeEmit = FakeSocket.prototype.emit;
  assert.notEqual(socket.write, prototypeWrite, 'guarded before the decision');
  await converse(socket);
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'MAIL FROM:<a@example.org>\r\n']);
  assert.equal(socket.write, prototypeWrite, 'write is Haraka’s own again');
  assert.equal(socket.emit, prototypeEmit, 'emit is Haraka’s own again');
});

test('TLS-2: a connection below the stored level is abandoned before MAIL FROM and stays guarded', async () => {
  const { proto, deps, errors } = harness({ kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'QUIT\r\n']);
  assert.match(String((errors[0] as Error)?.message), /offers PLAIN \(no TLS\), required TLS_SECURE/);
  assert.equal(socket.write('DATA\r\n'), false, 'nothing more is written');
});
