/**
 * The thin layer over Haraka's socket, with a stand-in socket and message
 * (the conversation itself is tested in tls/conversation*.test.ts, the whole
 * path end to end through Haraka in test/e2e).
 */
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import type { ExemptionUse, Requirement } from '../tls/decision';
import { SecLevel } from '../sec-level';
import { REPORT_NOTE, type ConnectionFacts, type ConnectionOutcome } from '../tlsrpt/session';
import { installConnectionGuard, type GuardDeps, type GuardedHMail, type HMailPrototype } from './connection-guard';
import { capturingIdentity } from './identity-capture';
import type { PeerCertificate } from 'node:tls';

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

interface Harness {
  proto: HMailPrototype;
  deps: GuardDeps;
  errors: unknown[];
  exemptions: ExemptionUse[];
  raised: string[];
  ratchetResults: string[];
}

function harness(stored: RatchetRead, requirement: Requirement = { domain: 'example.test', ratchet: true }): Harness {
  const errors: unknown[] = [];
  const exemptions: ExemptionUse[] = [];
  const raised: string[] = [];
  const ratchetResults: string[] = [];
  const proto: HMailPrototype = {
    try_deliver_host_on_socket(_mx: unknown, _host: unknown, _port: unknown, socket: unknown) {
      (socket as FakeSocket).on('error', (err) => errors.push(err));
    },
    temp_fail: () => undefined,
  };
  const store: RatchetStore = {
    description: 'fake',
    get: () => Promise.resolve(stored),
    raise: (domain, level) => {
      raised.push(`${domain} ${SecLevel[level]}`);
      return Promise.resolve(level);
    },
    reset: () => Promise.resolve(false),
    list: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  const nothing = (): void => undefined;
  const deps: GuardDeps = {
    store: () => store,
    requirement: () => requirement,
    settings: () => ({ plainRetry: true, onStoreError: 'defer' }),
    events: {
      connection: nothing,
      tlsFailure: nothing,
      plainRetry: nothing,
      ratchet: (result) => ratchetResults.push(result),
      abandoned: nothing,
      sts: nothing,
      exemption: (use) => exemptions.push(use),
      dane: nothing,
    },
  };
  return { proto, deps, errors, exemptions, raised, ratchetResults };
}

const hmail: GuardedHMail = { todo: { domain: 'example.test' }, mxlist: [], loginfo() {}, logwarn() {}, logerror() {} };
/** A TLS report message (the mark only outbound_tls sets, RPT-7). */
const report: GuardedHMail = { ...hmail, todo: { domain: 'example.test', notes: { [REPORT_NOTE]: 'example.test' } } };

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

test('POL-2: an exempted stored level is read but not enforced; the pass is counted as an exemption use and logged', async () => {
  const rule = 'example.test (config/outbound_tls_policy line 1)';
  const requirement: Requirement = { domain: 'example.test', ratchet: true, ratchetExempt: { domain: rule } };
  const { proto, deps, errors, exemptions, raised, ratchetResults } = harness(
    { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } },
    requirement,
  );
  installConnectionGuard(proto, deps);
  const warnings: string[] = [];
  const logged: GuardedHMail = { ...hmail, logwarn: (line: unknown) => warnings.push(String(line)) };
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(logged, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'MAIL FROM:<a@example.org>\r\n']);
  assert.deepEqual(exemptions, [{ exemption: 'ratchet', rule, waived: 'stored level TLS_SECURE of example.test' }]);
  assert.deepEqual(raised, [], 'a PLAIN connection never lowers the stored level');
  assert.deepEqual(ratchetResults, [], 'counted as an exemption use, not as a ratchet pass');
  assert.ok(
    warnings.some((w) => w.includes('passed only by exempt=ratchet of policy table rule example.test (config/outbound_tls_policy line 1)')),
    warnings.join('\n'),
  );
});

/** Never read: a chain the TLS stack did not trust is TLS_INSECURE before the certificate is looked at. */
const SELF_SIGNED = {} as X509Certificate;

test('POL-2: an exempted relay key is still raised by a better connection, beside the enforced domain key', async () => {
  const rule = 'relay:relay.example.test (config/outbound_tls_policy line 2)';
  const requirement: Requirement = {
    domain: 'example.test',
    ratchet: true,
    relayKey: 'relay:relay.example.test',
    ratchetExempt: { relay: rule },
    minimum: { level: SecLevel.PLAIN, rule },
  };
  const { proto, deps, errors, exemptions, raised } = harness({ kind: 'none' }, requirement);
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  socket.isEncrypted = () => true;
  Object.assign(socket, {
    cleartext: {
      authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      getPeerX509Certificate: () => SELF_SIGNED,
      getProtocol: () => 'TLSv1.3',
    },
  });
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.9', from_dns: 'relay.example.test' }, '192.0.2.9', 25, socket);
  await converse(socket);
  assert.deepEqual(errors, []);
  assert.deepEqual(exemptions, []);
  assert.deepEqual(raised, ['example.test TLS_INSECURE', 'relay:relay.example.test TLS_INSECURE']);
});

/** Greeting, EHLO with STARTTLS offered, STARTTLS sent. */
function askStartTls(socket: FakeSocket): void {
  socket.emit('line', '220 mx.example.test ESMTP\r\n');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250-mx.example.test\r\n');
  socket.emit('line', '250 STARTTLS\r\n');
  socket.write('STARTTLS\r\n');
}

/** A harness whose `recordSession` collects what the guard hands over. */
function recording(
  stored: RatchetRead,
  requirement?: Requirement,
): Harness & { sessions: Array<{ facts: ConnectionFacts; outcome: ConnectionOutcome }> } {
  const h = harness(stored, requirement);
  const sessions: Array<{ facts: ConnectionFacts; outcome: ConnectionOutcome }> = [];
  h.deps.recordSession = (_hmail, facts, outcome) => sessions.push({ facts, outcome });
  return { ...h, sessions };
}

test('RPT-1: a connection that reaches the decision is recorded once, with its classification and addresses', async () => {
  const { proto, deps, sessions } = recording({ kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } });
  installConnectionGuard(proto, deps);
  const socket = Object.assign(new FakeSocket(), { localAddress: '192.0.2.100' });
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  socket.write('MAIL FROM:<b@example.org>\r\n');
  assert.equal(sessions.length, 1, 'abandoned by the ratchet, still one session');
  const [session] = sessions;
  assert.equal(session?.facts.mxHost, 'mx.example.test');
  assert.equal(session?.facts.receivingIp, '192.0.2.1');
  assert.equal(session?.facts.sendingIp, '192.0.2.100');
  assert.equal(session?.outcome.kind === 'decided' && session.outcome.classification.reason, 'no TLS');
});

test('RPT-10: a session that never reached TLS carries sending-mta-ip: the address of the socket below Haraka’s (set there before STARTTLS)', async () => {
  const { proto, deps, sessions } = recording({ kind: 'none' });
  installConnectionGuard(proto, deps);
  // Haraka's pluggableStream copies localAddress up only when a connected socket is attached (after STARTTLS).
  const socket = Object.assign(new FakeSocket(), { targetsocket: { localAddress: '192.0.2.100' } });
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  assert.equal(sessions[0]?.facts.sendingIp, '192.0.2.100');
});

test('RPT-1: a refused STARTTLS is recorded once with its reason, before the TLS-3 retry', async () => {
  const { proto, deps, sessions } = recording({ kind: 'none' });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  const mxlist: GuardedHMail['mxlist'] = [];
  proto.try_deliver_host_on_socket?.call(
    { ...hmail, mxlist },
    { exchange: '192.0.2.1', from_dns: 'mx.example.test' },
    '192.0.2.1',
    25,
    socket,
  );
  askStartTls(socket);
  socket.emit('line', '454 TLS not available\r\n');
  assert.equal(mxlist.length, 1, 'TLS-3: one plain retry queued');
  assert.deepEqual(
    sessions.map((s) => s.outcome),
    [{ kind: 'tls-ended', reason: 'refused STARTTLS: "454 TLS not available"' }],
  );
});

test('RPT-1: a failed handshake (Haraka’s tls error) is recorded with the handshake reason', () => {
  const { proto, deps, sessions } = recording({ kind: 'none' });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  askStartTls(socket);
  socket.emit('line', '220 go ahead\r\n');
  socket.emit('error', Object.assign(new Error('wrong version number'), { source: 'tls' }));
  assert.deepEqual(
    sessions.map((s) => s.outcome),
    [{ kind: 'tls-ended', reason: 'TLS handshake failed (wrong version number)' }],
  );
});

test('RPT-4/RPT-7: a TLS report message waives its recipient domain’s ratchet: not counted, the stored level neither read nor enforced', async () => {
  const { proto, deps, sessions, errors, ratchetResults } = recording({
    kind: 'level',
    entry: { domain: 'example.test', level: SecLevel.TLS_SECURE },
  });
  let reads = 0;
  const store = deps.store();
  deps.store = () => ({ ...store, get: (key) => (reads++, store.get(key)) });
  deps.requirement = () => ({ domain: 'example.test', ratchet: true, sts: { mode: 'enforce', policyId: 'p1' } });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(report, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'MAIL FROM:<a@example.org>\r\n'], 'delivered despite the stored level');
  assert.deepEqual([sessions.length, reads, errors.length, ratchetResults.length], [0, 0, 0, 0]);
});

test('RPT-7: a TLS report message to a smart host with credentials is held to auth_min_level like any other (no AUTH in clear)', async () => {
  const relay: Requirement = {
    domain: 'example.test',
    ratchet: true,
    relayKey: 'relay:smarthost.test',
    authMinLevel: SecLevel.TLS_SECURE,
  };
  const { proto, deps, errors } = harness({ kind: 'none' }, relay);
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  const mx = { exchange: '192.0.2.1', from_dns: 'smarthost.test', auth_user: 'u', auth_pass: 'p' };
  proto.try_deliver_host_on_socket?.call(report, mx, '192.0.2.1', 25, socket);
  socket.emit('line', '220 smarthost.test ESMTP\r\n');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250 smarthost.test\r\n');
  socket.write('AUTH PLAIN AHUAcA==\r\n');
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'QUIT\r\n'], 'no AUTH on a PLAIN connection');
  assert.match(String((errors[0] as Error)?.message), /credentials require TLS_SECURE/);
});

test('OPS-8: an exception in counting (the TLS report recorder) ends nothing: logged, the connection decided as before', async () => {
  const { proto, deps, errors } = harness({ kind: 'none' });
  const logged: string[] = [];
  deps.recordSession = () => {
    throw new Error('tlsrpt: a policy of 600 strings is over 520');
  };
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  const noisy: GuardedHMail = { ...hmail, logerror: (line: unknown) => logged.push(String(line)) };
  proto.try_deliver_host_on_socket?.call(noisy, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  await converse(socket);
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'MAIL FROM:<a@example.org>\r\n']);
  assert.match(logged.join('\n'), /TLS report counting failed, session not counted: Error: tlsrpt: a policy of 600 strings/);
});

test('OPS-8: the TLS-3 path (a refused STARTTLS counted while Haraka emits the reply line) survives a throwing recorder', () => {
  const { proto, deps, errors } = harness({ kind: 'none' });
  deps.recordSession = () => {
    throw new Error('boom');
  };
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  const retried: GuardedHMail = { ...hmail, mxlist: [] };
  proto.try_deliver_host_on_socket?.call(retried, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  socket.emit('line', '220 mx.example.test ESMTP\r\n');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250-mx.example.test\r\n');
  socket.emit('line', '250 STARTTLS\r\n');
  socket.write('STARTTLS\r\n');
  assert.doesNotThrow(() => socket.emit('line', '454 4.7.0 TLS not available\r\n'));
  assert.equal(retried.mxlist?.length, 1, 'the plain retry is queued');
  assert.equal(errors.length, 1, 'this connection ends (the next one is the retry)');
});

test('OPS-8: a TLS error whose message getter throws, and a requirement that throws, never escape: the connection ends unguarded by nothing', () => {
  const { proto, deps, errors } = harness({ kind: 'none' });
  installConnectionGuard(proto, deps);
  const socket = new FakeSocket();
  proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'mx.example.test' }, '192.0.2.1', 25, socket);
  socket.emit('line', '220 mx.example.test ESMTP\r\n');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250-mx.example.test\r\n');
  socket.emit('line', '250 STARTTLS\r\n');
  socket.write('STARTTLS\r\n');
  socket.emit('line', '220 go ahead\r\n');
  const hostile = Object.defineProperty({ source: 'tls' }, 'message', {
    get() {
      throw new Error('getter');
    },
  });
  assert.doesNotThrow(() => socket.emit('error', hostile));

  const broken = harness({ kind: 'none' });
  broken.deps.requirement = () => {
    throw new Error('requirement failed');
  };
  installConnectionGuard(broken.proto, broken.deps);
  const second = new FakeSocket();
  assert.doesNotThrow(() =>
    broken.proto.try_deliver_host_on_socket?.call(hmail, { exchange: '192.0.2.1', from_dns: 'x.test' }, '192.0.2.1', 25, second),
  );
  assert.match(String((broken.errors[0] as Error)?.message), /could not guard the connection/);
  assert.equal(second.write('MAIL FROM:<a@example.org>\r\n'), false, 'nothing is written on an unguarded connection');
  assert.deepEqual(second.written, []);
  assert.equal(errors.length, 1, 'the TLS error itself reached Haraka, which moves on');
});

/** An encrypted stand-in socket whose certificate reads are counted. */
function encryptedSocket(): { socket: FakeSocket; certificateReads: () => number } {
  let reads = 0;
  const socket = new FakeSocket();
  socket.isEncrypted = () => true;
  Object.assign(socket, {
    cleartext: {
      authorizationError: null,
      getPeerX509Certificate: () => {
        reads++;
        return undefined;
      },
      getProtocol: () => 'TLSv1.3',
    },
  });
  return { socket, certificateReads: () => reads };
}

test('OPS-6: a name the handshake’s identity check matched is TLS_SECURE without reading the certificate again; otherwise it is read', async () => {
  const { proto, deps, errors, raised } = harness({ kind: 'none' });
  installConnectionGuard(proto, deps);
  const mx = { exchange: '192.0.2.1', from_dns: 'mx.example.test' };
  const fast = encryptedSocket();
  proto.try_deliver_host_on_socket?.call(hmail, mx, '192.0.2.1', 25, fast.socket);
  // What outbound_tls's get_tls_options wrapper makes of the STARTTLS options, and Node then calls.
  capturingIdentity(mx, {}).checkServerIdentity?.('mx.example.test', { subjectaltname: 'DNS:mx.example.test' } as PeerCertificate);
  await converse(fast.socket);
  assert.deepEqual(errors, []);
  assert.equal(fast.certificateReads(), 0);
  assert.deepEqual(raised, ['example.test TLS_SECURE']);

  // No identity check seen on this connection (the slot is per connection): the certificate is read.
  const slow = encryptedSocket();
  proto.try_deliver_host_on_socket?.call(hmail, mx, '192.0.2.1', 25, slow.socket);
  await converse(slow.socket);
  assert.equal(slow.certificateReads(), 1);
  assert.deepEqual(raised, ['example.test TLS_SECURE', 'example.test TLS_INSECURE'], 'no certificate: TLS_INSECURE');
});
