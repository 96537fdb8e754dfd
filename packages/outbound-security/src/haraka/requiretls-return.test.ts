import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  lastingFailure,
  noteAttempt,
  noteConnection,
  noteUnauthenticatedMxSet,
  returnMessage,
  startRound,
  type LastingReason,
  type ReturnableHMail,
} from './requiretls-return';
import { returnStatus } from '../tls/requiretls';

const NO_REQUIRETLS: LastingReason = { missing: 'requiretls', reason: 'mx1.example.test does not advertise REQUIRETLS' };
const CERTIFICATE: LastingReason = { missing: 'certificate', reason: 'mx2.example.test offers TLS_INSECURE' };

test('RT-3: a round is returned only when every attempt ended for a lasting reason', () => {
  const all = {};
  noteAttempt(all);
  noteAttempt(all);
  noteConnection(all, NO_REQUIRETLS);
  noteConnection(all, CERTIFICATE);
  assert.deepEqual(lastingFailure(all), [NO_REQUIRETLS, CERTIFICATE]);

  const unreached = {}; // the second MX could not be reached: no connection, no decision
  noteAttempt(unreached);
  noteAttempt(unreached);
  noteConnection(unreached, NO_REQUIRETLS);
  assert.equal(lastingFailure(unreached), null);

  const transient = {}; // refused for a reason that may heal (a store, an MX set not known now)
  noteAttempt(transient);
  noteAttempt(transient);
  noteConnection(transient, NO_REQUIRETLS);
  noteConnection(transient, null);
  assert.equal(lastingFailure(transient), null);

  const beyond = {}; // a connection that passed or may heal is never outweighed, even beyond the attempts counted
  noteAttempt(beyond);
  noteConnection(beyond, NO_REQUIRETLS);
  noteConnection(beyond, null);
  assert.equal(lastingFailure(beyond), null);

  assert.equal(lastingFailure({}), null, 'nothing happened: defer');
  const attemptsOnly = {};
  noteAttempt(attemptsOnly);
  assert.equal(lastingFailure(attemptsOnly), null);
});

test('RT-3: outbound_mx answering with no MX (none authenticated) is the lasting reason of a round without attempts; startRound forgets both', () => {
  const hmail = {};
  noteUnauthenticatedMxSet(hmail, 'REQUIRETLS: example.test: MX set not authenticated');
  assert.deepEqual(lastingFailure(hmail), [{ missing: 'mx-set', reason: 'REQUIRETLS: example.test: MX set not authenticated' }]);
  startRound(hmail);
  assert.equal(lastingFailure(hmail), null, 'a new round: the plan is made again');

  const earlier = {};
  noteAttempt(earlier);
  noteConnection(earlier, NO_REQUIRETLS);
  assert.deepEqual(lastingFailure(earlier), [NO_REQUIRETLS]);
  startRound(earlier);
  noteAttempt(earlier);
  assert.equal(lastingFailure(earlier), null, 'what the last round found does not count in this one');
});

test('RT-3: 5.7.30 when every host lacked REQUIRETLS itself, else 5.7.10', () => {
  const status = (reasons: LastingReason[]): ReturnType<typeof returnStatus> => returnStatus(reasons.map((r) => r.missing));
  assert.deepEqual(status([NO_REQUIRETLS, NO_REQUIRETLS]), { subject: 7, detail: 30 });
  assert.deepEqual(status([NO_REQUIRETLS, CERTIFICATE]), { subject: 7, detail: 10 });
  assert.deepEqual(status([{ missing: 'mx-set', reason: 'r' }]), { subject: 7, detail: 10 });
});

test('RT-3: the return gives each recipient a 550 with the status, then bounces with every distinct reason once', () => {
  const dsns: Array<[object, { code: number; reply: string | string[] }]> = [];
  const bounced: string[] = [];
  const rcpt1 = { user: 'a' };
  const rcpt2 = { user: 'b' };
  const hmail: ReturnableHMail = {
    todo: { domain: 'example.test', rcpt_to: [rcpt1, rcpt2] },
    extend_rcpt_with_dsn: (rcpt, dsn) => dsns.push([rcpt, dsn as { code: number; reply: string | string[] }]),
    bounce: (err) => bounced.push(err),
  };
  const text = returnMessage(hmail, [NO_REQUIRETLS, NO_REQUIRETLS, CERTIFICATE]);
  assert.equal(
    text,
    'REQUIRETLS message for example.test returned: no MX host can take it ' +
      '(mx1.example.test does not advertise REQUIRETLS; mx2.example.test offers TLS_INSECURE)',
  );
  assert.deepEqual(bounced, [text]);
  assert.deepEqual(
    dsns.map(([rcpt, dsn]) => [rcpt, dsn.code, dsn.reply]),
    [
      [rcpt1, 550, `5.7.10 ${text}`],
      [rcpt2, 550, `5.7.10 ${text}`],
    ],
  );
  const only = { ...hmail, todo: { domain: 'example.test', rcpt_to: [rcpt1] } };
  dsns.length = 0;
  returnMessage(only, [NO_REQUIRETLS]);
  assert.match(String(dsns[0]?.[1].reply), /^5\.7\.30 /);
});
