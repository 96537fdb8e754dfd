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
import type { ExemptionUse, Requirement, RequireTlsRequirement } from '../tls/decision';
import { SecLevel } from '../sec-level';
import { REPORT_NOTE, type ConnectionFacts, type ConnectionOutcome } from '../tlsrpt/session';
import { REQUIRETLS_NOTE, TLS_REQUIRED_NO_NOTE } from '../requiretls/notes';
import { installConnectionGuard, type GuardDeps, type GuardedHMail, type GuardedMx, type HMailPrototype } from './connection-guard';
import { noteUnauthenticatedMxSet } from './requiretls-return';
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

const REQUESTED = { requested: true, at: '2025-01-01T00:00:00.000Z', authenticated: false };
/** A message received with REQUIRETLS (the note as outbound_tls writes it, read back from the queue file). */
const requiring: GuardedHMail = { ...hmail, todo: { domain: 'example.test', notes: { [REQUIRETLS_NOTE]: REQUESTED } } };
const AUTHENTICATED: RequireTlsRequirement = { mxSet: { ok: true, by: 'DNSSEC-validated MX RRset' } };
const REQUIRETLS_REQUIREMENT: Requirement = { domain: 'example.test', ratchet: true, requireTls: AUTHENTICATED };
const MX = { exchange: '192.0.2.1', from_dns: 'mx.example.test' };

/** An encrypted connection whose certificate the handshake matched to the MX host name (TLS_SECURE, as in the OPS-6 test). */
function secureConnection(proto: HMailPrototype, message: GuardedHMail, mx: GuardedMx = MX): FakeSocket {
  const { socket } = encryptedSocket();
  proto.try_deliver_host_on_socket?.call(message, mx, mx.exchange, 25, socket);
  const name = String(mx.from_dns);
  capturingIdentity(mx, {}).checkServerIdentity?.(name, { subjectaltname: `DNS:${name}` } as PeerCertificate);
  return socket;
}

/** STARTTLS, the handshake, EHLO again (its reply advertising REQUIRETLS or not), then Haraka's first held command. */
async function afterStartTls(socket: FakeSocket, advertise: boolean, held = 'MAIL FROM:<a@example.org>\r\n'): Promise<void> {
  askStartTls(socket);
  socket.emit('line', '220 2.0.0 go ahead\r\n');
  socket.emit('secure');
  socket.write('EHLO haraka.test\r\n');
  socket.emit('line', '250-mx.example.test\r\n');
  socket.emit('line', advertise ? '250 REQUIRETLS\r\n' : '250 SIZE 1000\r\n');
  socket.write(held);
  await new Promise((resolve) => setTimeout(resolve, 10));
}

const HANDSHAKE = ['EHLO haraka.test\r\n', 'STARTTLS\r\n', 'EHLO haraka.test\r\n'];

test('RT-2: a REQUIRETLS message’s MAIL FROM carries REQUIRETLS once the connection passed; the same message without the request, not', async () => {
  const { proto, deps, errors } = harness({ kind: 'none' }, REQUIRETLS_REQUIREMENT);
  installConnectionGuard(proto, deps);
  const socket = secureConnection(proto, requiring);
  await afterStartTls(socket, true);
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, [...HANDSHAKE, 'MAIL FROM:<a@example.org> REQUIRETLS\r\n']);
  assert.equal(socket.write, FakeSocket.prototype.write, 'the socket is Haraka’s own again after MAIL FROM');
  socket.write('RCPT TO:<b@example.test>\r\n');
  assert.equal(socket.written.at(-1), 'RCPT TO:<b@example.test>\r\n');

  const control = harness({ kind: 'none' });
  installConnectionGuard(control.proto, control.deps);
  const plain = secureConnection(control.proto, hmail);
  await afterStartTls(plain, true);
  assert.deepEqual(plain.written, [...HANDSHAKE, 'MAIL FROM:<a@example.org>\r\n']);
});

test('RT-2: REQUIRETLS goes after SMTPUTF8 on the same MAIL FROM line', async () => {
  const { proto, deps } = harness({ kind: 'none' }, REQUIRETLS_REQUIREMENT);
  installConnectionGuard(proto, deps);
  const socket = secureConnection(proto, requiring);
  await afterStartTls(socket, true, 'MAIL FROM:<ü@example.org> SMTPUTF8\r\n');
  assert.deepEqual(socket.written, [...HANDSHAKE, 'MAIL FROM:<ü@example.org> SMTPUTF8 REQUIRETLS\r\n']);
});

test('RT-2/TLS-8: when AUTH was held, it goes out as it is and the MAIL FROM after it carries REQUIRETLS', async () => {
  const { proto, deps, errors } = harness({ kind: 'none' }, REQUIRETLS_REQUIREMENT);
  installConnectionGuard(proto, deps);
  const socket = secureConnection(proto, requiring, { ...MX, auth_user: 'u', auth_pass: 'p' });
  await afterStartTls(socket, true, 'AUTH PLAIN AHUAcA==\r\n');
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, [...HANDSHAKE, 'AUTH PLAIN AHUAcA==\r\n']);
  socket.emit('line', '235 2.7.0 ok\r\n');
  socket.write('MAIL FROM:<a@example.org>\r\n');
  socket.write('RCPT TO:<b@example.test>\r\n');
  assert.deepEqual(socket.written.slice(HANDSHAKE.length), [
    'AUTH PLAIN AHUAcA==\r\n',
    'MAIL FROM:<a@example.org> REQUIRETLS\r\n',
    'RCPT TO:<b@example.test>\r\n',
  ]);
  assert.equal(socket.write, FakeSocket.prototype.write);
});

test('RT-4: a requiretls=relax relay that does not advertise REQUIRETLS gets the message without the parameter; without the rule, nothing', async () => {
  const relaxed: Requirement = {
    ...REQUIRETLS_REQUIREMENT,
    requireTls: { ...AUTHENTICATED, relaxedBy: 'relay:mx.example.test (x line 1)' },
  };
  const { proto, deps, errors } = harness({ kind: 'none' }, relaxed);
  installConnectionGuard(proto, deps);
  const socket = secureConnection(proto, requiring);
  await afterStartTls(socket, false);
  assert.deepEqual(errors, []);
  assert.deepEqual(socket.written, [...HANDSHAKE, 'MAIL FROM:<a@example.org>\r\n'], 'RFC 5321: no parameter the server did not offer');

  const strict = harness({ kind: 'none' }, REQUIRETLS_REQUIREMENT);
  installConnectionGuard(strict.proto, strict.deps);
  const refused = secureConnection(strict.proto, requiring);
  await afterStartTls(refused, false);
  assert.deepEqual(refused.written, [...HANDSHAKE, 'QUIT\r\n']);
  assert.match(String((strict.errors[0] as Error)?.message), /does not advertise REQUIRETLS after STARTTLS/);
});

test('RT-2: a REQUIRETLS message is never retried without STARTTLS (TLS-3); the control is', async () => {
  for (const [message, requirement, retries] of [
    [requiring, REQUIRETLS_REQUIREMENT, 0],
    [hmail, { domain: 'example.test', ratchet: true }, 1],
  ] as const) {
    const { proto, deps } = harness({ kind: 'none' }, requirement);
    installConnectionGuard(proto, deps);
    const refused: GuardedHMail = { ...message, mxlist: [] };
    const socket = new FakeSocket();
    proto.try_deliver_host_on_socket?.call(refused, MX, '192.0.2.1', 25, socket);
    askStartTls(socket);
    socket.emit('line', '454 4.7.0 TLS not available\r\n');
    assert.equal(refused.mxlist?.length, retries, 'after a refused STARTTLS');
    const failed: GuardedHMail = { ...message, mxlist: [] };
    const second = new FakeSocket();
    proto.try_deliver_host_on_socket?.call(failed, MX, '192.0.2.1', 25, second);
    askStartTls(second);
    second.emit('line', '220 go ahead\r\n');
    second.emit('error', Object.assign(new Error('wrong version number'), { source: 'tls' }));
    assert.equal(failed.mxlist?.length, retries, 'after a failed handshake');
  }
});

test('RT-5: TLS-Required: No waives the recipient domain’s ratchet and MTA-STS and is counted; never together with REQUIRETLS', async () => {
  const stored: RatchetRead = { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } };
  const enforced: Requirement = { domain: 'example.test', ratchet: true, sts: { mode: 'enforce', policyId: 'p1' } };
  const waive = { [TLS_REQUIRED_NO_NOTE]: { waive: true, at: '2025-01-01T00:00:00.000Z' } };
  const cases: Array<[string, GuardedHMail, Requirement, boolean]> = [
    ['TLS-Required: No', { ...hmail, todo: { domain: 'example.test', notes: waive } }, enforced, true],
    ['the control', hmail, enforced, false],
    [
      'with REQUIRETLS too',
      { ...hmail, todo: { domain: 'example.test', notes: { ...waive, [REQUIRETLS_NOTE]: REQUESTED } } },
      { ...enforced, requireTls: AUTHENTICATED },
      false,
    ],
  ];
  for (const [name, message, requirement, waived] of cases) {
    const { proto, deps, errors, exemptions } = harness(stored, requirement);
    let used = 0;
    deps.tlsRequiredNoUsed = () => void used++;
    installConnectionGuard(proto, deps);
    const socket = new FakeSocket();
    const warnings: string[] = [];
    proto.try_deliver_host_on_socket?.call(
      { ...message, logwarn: (line: unknown) => warnings.push(String(line)) },
      MX,
      '192.0.2.1',
      25,
      socket,
    );
    await converse(socket);
    assert.equal(used, waived ? 1 : 0, name);
    // A weakening is loud: a WARN line for each use, none without one.
    assert.equal(
      warnings.filter((l) => /TLS-Required: No: example\.test's MTA-STS, DANE and ratchet enforcement waived/.test(l)).length,
      waived ? 1 : 0,
      name,
    );
    assert.deepEqual(exemptions, [], `${name}: never counted as a policy-table exemption`);
    if (waived) {
      assert.deepEqual(errors, [], name);
      assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'MAIL FROM:<a@example.org>\r\n'], name);
    } else {
      assert.deepEqual(socket.written, ['EHLO haraka.test\r\n', 'QUIT\r\n'], name);
      assert.match(String((errors[0] as Error)?.message), /offers PLAIN \(no TLS\), required TLS_SECURE \(ratchet\)/, name);
    }
  }
});

interface ReturnHarness {
  proto: HMailPrototype;
  /** A REQUIRETLS message (or, `requested: false`, the same without the request) to `mxs`, with Haraka's methods from `proto`. */
  message(mxs: GuardedMx[], requested?: boolean): GuardedHMail & { try_deliver(): void; temp_fail(err: string): unknown; get_mx(): void };
  deferred: string[];
  bounced: string[];
  dsns: string[];
  returned: string[][];
}

/** The guard over a prototype with Haraka's try_deliver (one MX off the list, "Tried all MXs" when none is left) and temp_fail. */
function returning(requirement: Requirement = REQUIRETLS_REQUIREMENT): ReturnHarness {
  const h = harness({ kind: 'none' }, requirement);
  const deferred: string[] = [];
  const bounced: string[] = [];
  const dsns: string[] = [];
  const returned: string[][] = [];
  h.proto.try_deliver = function (this: GuardedHMail & { temp_fail(err: string): unknown }) {
    if ((this.mxlist?.length ?? 0) === 0) return this.temp_fail('Tried all MXs');
    this.mxlist?.shift();
    return undefined;
  };
  h.proto.temp_fail = (err: unknown) => void deferred.push(String(err));
  h.proto.get_mx = () => undefined;
  h.deps.requireTlsReturned = (_hmail, _text, missing) => void returned.push(missing);
  installConnectionGuard(h.proto, h.deps);
  const message: ReturnHarness['message'] = (mxs, requested = true) =>
    Object.assign(Object.create(h.proto) as ReturnType<ReturnHarness['message']>, {
      ...hmail,
      todo: { domain: 'example.test', rcpt_to: [{ user: 'b' }], notes: requested ? { [REQUIRETLS_NOTE]: REQUESTED } : {} },
      mxlist: [...mxs],
      extend_rcpt_with_dsn: (_rcpt: unknown, dsn: { reply: string }) => void dsns.push(dsn.reply),
      bounce: (err: string) => void bounced.push(err),
    });
  return { proto: h.proto, message, deferred, bounced, dsns, returned };
}

const MX1 = { exchange: '192.0.2.1', from_dns: 'mx1.example.test' };
const MX2 = { exchange: '192.0.2.2', from_dns: 'mx2.example.test' };

test('RT-3: every MX refused for not advertising REQUIRETLS: "Tried all MXs" returns the message with 5.7.30 instead of deferring', async () => {
  const r = returning();
  const message = r.message([MX1, MX2]);
  for (const mx of [MX1, MX2]) {
    message.try_deliver();
    await afterStartTls(secureConnection(r.proto, message, mx), false);
  }
  message.try_deliver(); // none left
  assert.deepEqual(r.deferred, []);
  assert.equal(r.bounced.length, 1);
  assert.match(String(r.bounced[0]), /^REQUIRETLS message for example\.test returned: no MX host can take it \(.*mx1\.example\.test/);
  assert.deepEqual(
    r.dsns.map((reply) => reply.slice(0, 7)),
    ['5.7.30 '],
  );
  assert.deepEqual(r.returned, [['requiretls']]);

  // The control: the same refusals of a message without the request defer it.
  const control = returning();
  const same = control.message([MX1, MX2], false);
  for (const mx of [MX1, MX2]) {
    same.try_deliver();
    await afterStartTls(secureConnection(control.proto, same, mx), false);
  }
  same.try_deliver();
  assert.deepEqual(control.bounced, []);
  assert.match(String(control.deferred[0]), /^Tried all MXs; refused: /);
});

test('RT-3: lasting reasons of more than one kind return the message with 5.7.10', async () => {
  const r = returning();
  const message = r.message([MX1, MX2]);
  message.try_deliver();
  await afterStartTls(secureConnection(r.proto, message, MX1), false);
  message.try_deliver();
  const plain = new FakeSocket();
  r.proto.try_deliver_host_on_socket?.call(message, MX2, MX2.exchange, 25, plain);
  await converse(plain); // no STARTTLS: below TLS_SECURE
  message.try_deliver();
  assert.deepEqual(
    r.dsns.map((reply) => reply.slice(0, 7)),
    ['5.7.10 '],
  );
  assert.deepEqual(r.returned, [['requiretls', 'certificate']]);
});

test('RT-3: one attempt that did not end for a lasting reason (unreached, or an MX set not known now) defers the message as usual', async () => {
  const r = returning();
  const unreached = r.message([MX1, MX2]);
  unreached.try_deliver();
  await afterStartTls(secureConnection(r.proto, unreached, MX1), false);
  unreached.try_deliver(); // Haraka could not connect to MX2: no connection to guard
  unreached.try_deliver();
  assert.deepEqual(r.bounced, []);
  assert.equal(r.deferred.length, 1);

  const unknown = returning({
    ...REQUIRETLS_REQUIREMENT,
    requireTls: { mxSet: { ok: false, reason: 'unknown for now', transient: true } },
  });
  const waiting = unknown.message([MX1]);
  waiting.try_deliver();
  await afterStartTls(secureConnection(unknown.proto, waiting, MX1), true);
  waiting.try_deliver();
  assert.deepEqual(unknown.bounced, []);
  assert.equal(unknown.deferred.length, 1);
});

test('RT-3: outbound_mx answering with no authenticated MX returns the message with 5.7.10; a new get_mx round forgets it', () => {
  const r = returning();
  const message = r.message([]);
  noteUnauthenticatedMxSet(message, 'REQUIRETLS: example.test: MX set not authenticated');
  message.try_deliver();
  assert.deepEqual(r.deferred, []);
  assert.deepEqual(
    r.dsns.map((reply) => reply.slice(0, 7)),
    ['5.7.10 '],
  );
  assert.deepEqual(r.returned, [['mx-set']]);

  const again = r.message([]);
  noteUnauthenticatedMxSet(again, 'REQUIRETLS: example.test: MX set not authenticated');
  again.get_mx();
  again.try_deliver();
  assert.equal(r.deferred.length, 1, 'the round that noted it is over');

  // The control: only a message received with REQUIRETLS is ever returned.
  const control = r.message([], false);
  noteUnauthenticatedMxSet(control, 'REQUIRETLS: example.test: MX set not authenticated');
  control.try_deliver();
  assert.equal(r.deferred.length, 2);
  assert.equal(r.bounced.length, 1);
});
