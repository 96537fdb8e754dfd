import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conversation, type ConversationOptions, type ReplyAction } from './conversation';

const OPTIONS: ConversationOptions = { plainOnly: false, plainRetry: true, credentials: false };

function open(options: Partial<ConversationOptions> = {}): Conversation {
  return new Conversation({ ...OPTIONS, ...options });
}

/** Feeds one server chunk the way the I/O layer does: data, each line, then afterData. */
function serverSends(c: Conversation, chunk: string): ReplyAction[] {
  c.data(chunk);
  const actions: ReplyAction[] = [];
  let rest = chunk;
  let end: number;
  while ((end = rest.indexOf('\n')) >= 0) {
    actions.push(c.reply(rest.slice(0, end + 1)));
    rest = rest.slice(end + 1);
  }
  actions.push(c.afterData());
  return actions;
}

function abandoned(actions: ReplyAction[]): Extract<ReplyAction, { kind: 'abandon' }> | undefined {
  return actions.find((a): a is Extract<ReplyAction, { kind: 'abandon' }> => a.kind === 'abandon');
}

/** Greeting, EHLO with STARTTLS, STARTTLS accepted, handshake done, EHLO again. */
function throughTls(c: Conversation): void {
  serverSends(c, '220 mx.example.test ESMTP\r\n');
  assert.deepEqual(c.command('EHLO haraka.test\r\n'), { kind: 'write' });
  serverSends(c, '250-mx.example.test\r\n250-STARTTLS\r\n250 SIZE 1000\r\n');
  assert.deepEqual(c.command('STARTTLS\r\n'), { kind: 'write' });
  assert.equal(abandoned(serverSends(c, '220 2.0.0 go ahead\r\n')), undefined);
  assert.deepEqual(c.secured(), { kind: 'pass' });
  assert.deepEqual(c.command('EHLO haraka.test\r\n'), { kind: 'write' });
  serverSends(c, '250-mx.example.test\r\n250 AUTH PLAIN\r\n');
}

test('TLS-2: EHLO and STARTTLS pass; the first MAIL FROM is held and starts the decision; later commands wait behind it', () => {
  const c = open();
  throughTls(c);
  assert.deepEqual(c.command('MAIL FROM:<a@b.test>\r\n'), { kind: 'hold', decide: true, verb: 'MAIL' });
  assert.deepEqual(c.command('RCPT TO:<c@d.test>\r\n'), { kind: 'hold', decide: false, verb: 'RCPT' });
  c.decide(true);
  assert.equal(c.decided, true);
  assert.deepEqual(c.command('DATA\r\n'), { kind: 'write' });
  assert.deepEqual(c.reply('550 5.1.1 no such user\r\n'), { kind: 'pass' }, 'after the decision replies are Haraka’s');
});

test('TLS-8: AUTH is a decision point like MAIL FROM; after an abandon nothing is written', () => {
  const c = open({ credentials: true });
  throughTls(c);
  assert.deepEqual(c.command('AUTH PLAIN AGZvbwBiYXI=\r\n'), { kind: 'hold', decide: true, verb: 'AUTH' });
  c.decide(false);
  assert.deepEqual(c.command('QUIT\r\n'), { kind: 'drop' });
  assert.deepEqual(c.reply('235 ok\r\n'), { kind: 'drop' });
});

test('TLS-7: a 4xx or 5xx greeting, a greeting that does not parse, HELO refused: abandon this connection only', () => {
  for (const greeting of ['554 go away\r\n', '421 busy\r\n', 'HELLO THERE\r\n', '354 what\r\n']) {
    const action = abandoned(serverSends(open(), greeting));
    assert.ok(action, greeting);
    assert.equal(action.retryPlain, false);
    assert.equal(action.tlsFailure, undefined);
  }
  const c = open();
  serverSends(c, '220 hi\r\n');
  c.command('EHLO me\r\n');
  assert.equal(abandoned(serverSends(c, '550 no EHLO\r\n')), undefined, 'a 5xx to EHLO: Haraka says HELO');
  c.command('HELO me\r\n');
  assert.match(abandoned(serverSends(c, '550 no HELO either\r\n'))?.reason ?? '', /answered HELO with "550 no HELO either"/);
  const d = open();
  serverSends(d, '220 hi\r\n');
  d.command('EHLO me\r\n');
  assert.ok(abandoned(serverSends(d, '421 4.3.2 shutting down\r\n')), 'a 4xx to EHLO would defer the whole message');
});

test('TLS-7: a reply nobody asked for, or a line while MAIL FROM is held, ends the connection', () => {
  const c = open();
  serverSends(c, '220 hi\r\n');
  assert.match(abandoned(serverSends(c, '250 extra\r\n'))?.reason ?? '', /unasked/);
  const d = open();
  throughTls(d);
  d.command('MAIL FROM:<a@b.test>\r\n');
  assert.match(abandoned(serverSends(d, '554 spoofed reply to MAIL\r\n'))?.reason ?? '', /before MAIL FROM was written/);
});

test('TLS-7: bytes without a line end after the 220 to STARTTLS abandon before the handshake (they would be glued to the first TLS reply)', () => {
  for (const injected of ['XYZ', '250 injected']) {
    const c = open();
    serverSends(c, '220 hi\r\n');
    c.command('EHLO me\r\n');
    serverSends(c, '250-hi\r\n250 STARTTLS\r\n');
    c.command('STARTTLS\r\n');
    const action = abandoned(serverSends(c, `220 go ahead\r\n${injected}`));
    assert.ok(action, injected);
    assert.match(action.reason, /bytes after the STARTTLS reply/);
    assert.equal(action.tlsFailure, 'handshake');
    assert.equal(action.retryPlain, true);
    assert.deepEqual(c.secured(), { kind: 'drop' });
  }
});

test('TLS-7: the injected bytes arriving in a later chunk than the 220 are caught too; a complete plaintext line as well', () => {
  const c = open();
  serverSends(c, '220 hi\r\n');
  c.command('EHLO me\r\n');
  serverSends(c, '250 STARTTLS\r\n');
  c.command('STARTTLS\r\n');
  assert.equal(abandoned(serverSends(c, '220 go ahead\r\n')), undefined);
  assert.ok(abandoned(serverSends(c, '250 injected\r\n')));
  const d = open();
  serverSends(d, '220 hi\r\n');
  d.command('EHLO me\r\n');
  serverSends(d, '250 STARTTLS\r\n');
  d.command('STARTTLS\r\n');
  d.data('220 go ahead\r\n');
  d.reply('220 go ahead\r\n');
  d.data('XY'); // not followed by afterData: the handshake end still sees Haraka's buffer
  assert.equal(d.secured().kind, 'abandon');
});

test('TLS-3: STARTTLS refused → abandon with one plain retry; never on a connection that carries credentials (TLS-8)', () => {
  for (const [credentials, retry] of [
    [false, true],
    [true, false],
  ] as const) {
    const c = open({ credentials });
    serverSends(c, '220 hi\r\n');
    c.command('EHLO me\r\n');
    serverSends(c, '250 STARTTLS\r\n');
    c.command('STARTTLS\r\n');
    const action = abandoned(serverSends(c, '454 4.7.0 TLS not available\r\n'));
    assert.equal(action?.tlsFailure, 'starttls_refused');
    assert.equal(action?.retryPlain, retry);
  }
  const handshake = open({ credentials: true });
  assert.deepEqual(handshake.tlsError(), { kind: 'abandon', reason: 'TLS handshake failed', tlsFailure: 'handshake', retryPlain: false });
  assert.equal(open({ plainRetry: false }).tlsError().kind, 'abandon');
  assert.equal((open({ plainRetry: false }).tlsError() as { retryPlain: boolean }).retryPlain, false);
});

test('TLS-3: the plain retry hides STARTTLS from Haraka and is not retried again', () => {
  const c = open({ plainOnly: true });
  serverSends(c, '220 hi\r\n');
  c.command('EHLO me\r\n');
  assert.deepEqual(c.reply('250-STARTTLS\r\n'), { kind: 'rewrite', line: '250-X-STARTTLS-SKIPPED\r\n' });
  assert.deepEqual(c.reply('250 SIZE 10\r\n'), { kind: 'pass' });
  assert.deepEqual(c.command('MAIL FROM:<>\r\n'), { kind: 'hold', decide: true, verb: 'MAIL' });
  const d = open({ plainOnly: true });
  assert.equal((d.tlsError() as { retryPlain: boolean }).retryPlain, false);
});

/** Greeting, EHLO (`before` lines), STARTTLS, handshake, EHLO again (`after` lines): each reply's lines as the server sends them. */
function advertising(before: string, after: string, options: Partial<ConversationOptions> = {}): Conversation {
  const c = open(options);
  serverSends(c, '220 mx.example.test ESMTP\r\n');
  c.command('EHLO haraka.test\r\n');
  serverSends(c, before);
  c.command('STARTTLS\r\n');
  serverSends(c, '220 2.0.0 go ahead\r\n');
  assert.deepEqual(c.secured(), { kind: 'pass' });
  c.command('EHLO haraka.test\r\n');
  serverSends(c, after);
  return c;
}

test('RT-2: REQUIRETLS counts only in the EHLO reply after STARTTLS (either line form, any case); without it, not advertised', () => {
  const middle = advertising('250-mx.example.test\r\n250 STARTTLS\r\n', '250-mx.example.test\r\n250-REQUIRETLS\r\n250 SIZE 1000\r\n');
  assert.equal(middle.requireTlsAdvertised, true);
  const last = advertising('250-mx.example.test\r\n250 STARTTLS\r\n', '250-mx.example.test\r\n250 requiretls\r\n');
  assert.equal(last.requireTlsAdvertised, true);
  const without = advertising('250-mx.example.test\r\n250 STARTTLS\r\n', '250-mx.example.test\r\n250 SIZE 1000\r\n');
  assert.equal(without.requireTlsAdvertised, false);
  // A keyword that only starts like it, or carries a parameter, is not REQUIRETLS (RFC 8689 §3: no parameters).
  const lookalike = advertising('250 STARTTLS\r\n', '250-mx.example.test\r\n250-REQUIRETLSX\r\n250 REQUIRETLS=1\r\n');
  assert.equal(lookalike.requireTlsAdvertised, false);
  assert.deepEqual(middle.command('MAIL FROM:<a@b.test>\r\n'), { kind: 'hold', decide: true, verb: 'MAIL' });
});

test('RT-2: a REQUIRETLS line before STARTTLS never counts (a STARTTLS stripper could add it), even when the later reply lacks it', () => {
  const c = advertising('250-mx.example.test\r\n250-REQUIRETLS\r\n250 STARTTLS\r\n', '250-mx.example.test\r\n250 SIZE 1000\r\n');
  assert.equal(c.requireTlsAdvertised, false);
  // Without STARTTLS at all: the only EHLO reply is in clear.
  const clear = open();
  serverSends(clear, '220 mx.example.test ESMTP\r\n');
  clear.command('EHLO haraka.test\r\n');
  serverSends(clear, '250-mx.example.test\r\n250 REQUIRETLS\r\n');
  assert.equal(clear.requireTlsAdvertised, false);
  assert.deepEqual(clear.command('MAIL FROM:<a@b.test>\r\n'), { kind: 'hold', decide: true, verb: 'MAIL' });
});

test('RT-2: each EHLO, HELO or LHLO command forgets the last advertisement: only the reply to the latest one counts', () => {
  for (const verb of ['EHLO', 'HELO', 'LHLO']) {
    const c = advertising('250 STARTTLS\r\n', '250-mx.example.test\r\n250 REQUIRETLS\r\n');
    assert.equal(c.requireTlsAdvertised, true);
    c.command(`${verb} haraka.test\r\n`);
    assert.equal(c.requireTlsAdvertised, false, `${verb} resets it`);
    serverSends(c, '250-mx.example.test\r\n250 SIZE 1000\r\n');
    assert.equal(c.requireTlsAdvertised, false, `the reply to the last ${verb} lacks it`);
  }
  // The control: an EHLO again whose reply advertises it counts again.
  const again = advertising('250 STARTTLS\r\n', '250 REQUIRETLS\r\n');
  again.command('EHLO haraka.test\r\n');
  serverSends(again, '250-mx.example.test\r\n250 REQUIRETLS\r\n');
  assert.equal(again.requireTlsAdvertised, true);
});
