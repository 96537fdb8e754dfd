import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONT, OK } from './api';
import { metrics } from '../metrics';
import { REQUIRETLS_NOTE } from '../requiretls/notes';
import { requiretls_bounce, type RequireTlsPlugin } from './requiretls-hooks';

type Populate = (from: unknown, to: unknown, reason: unknown, cb: (err: unknown, lines?: string[]) => void) => void;
type SendEmail = (from: unknown, to: unknown, contents: string, next: (code: number) => void, options?: { notes?: object }) => void;

async function dsnCount(result: string): Promise<number> {
  const values = (await metrics.requireTlsDsn.get()).values;
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** One bounce hook run: what it answered (once), what it logged, what it queued. */
function bounce(o: { requireTls?: boolean; populate: Populate; sendEmail?: SendEmail }): {
  answers: number[];
  errors: string[];
  queued: Array<{ to: unknown; notes?: object }>;
} {
  const answers: number[] = [];
  const errors: string[] = [];
  const queued: Array<{ to: unknown; notes?: object }> = [];
  const sendEmail: SendEmail =
    o.sendEmail ??
    ((_from, to, _contents, next, options) => {
      queued.push({ to, ...(options?.notes ? { notes: options.notes } : {}) });
      next(OK);
    });
  const plugin = { haraka_require: () => ({ send_email: sendEmail }) } as unknown as RequireTlsPlugin;
  const hmail = {
    todo: {
      mail_from: { user: 'sender', host: 'sender.test', toString: () => '<sender@sender.test>' },
      notes: o.requireTls === false ? {} : { [REQUIRETLS_NOTE]: { requested: true } },
    },
    populate_bounce_message: o.populate,
    logerror: (line: string) => errors.push(line),
    loginfo: () => undefined,
  };
  requiretls_bounce.call(plugin, (code?: number) => void answers.push(code ?? CONT), hmail as never);
  return { answers, errors, queued };
}

const lines: Populate = (_f, _t, _r, cb) => cb(null, ['Subject: x\r\n']);

test('RT-3: the DSN of a REQUIRETLS message is queued with the REQUIRETLS note and Haraka sends no bounce of its own', async () => {
  const before = await dsnCount('queued');
  const run = bounce({ populate: lines });
  assert.deepEqual(run.answers, [OK]);
  assert.equal(run.queued.length, 1);
  assert.equal(run.queued[0]?.to, '<sender@sender.test>');
  assert.deepEqual(Object.keys(run.queued[0]?.notes ?? {}), [REQUIRETLS_NOTE]);
  assert.equal(await dsnCount('queued'), before + 1);
  // Control: a message without REQUIRETLS is Haraka's to bounce.
  const plain = bounce({ requireTls: false, populate: lines });
  assert.deepEqual(plain.answers, [CONT]);
  assert.equal(plain.queued.length, 0);
});

test("RT-3, OPS-8: a DSN that cannot be built or queued, or a throw on the way, falls back to Haraka's bounce: one answer, an error line, counted", async () => {
  const before = await dsnCount('fallback');
  const failures: Array<Parameters<typeof bounce>[0]> = [
    { populate: (_f, _t, _r, cb) => cb(new Error('queue file gone')) },
    { populate: lines, sendEmail: (_f, _t, _c, next) => next(902) },
    {
      populate: lines,
      sendEmail: () => {
        throw new Error('malformed address');
      },
    },
    {
      populate: () => {
        throw new Error('no data stream');
      },
    },
  ];
  for (const failure of failures) {
    const run = bounce(failure);
    assert.deepEqual(run.answers, [CONT]);
    assert.equal(run.errors.length, 1);
    assert.match(run.errors[0] ?? '', /REQUIRETLS DSN could not be queued .*without REQUIRETLS/);
  }
  assert.equal(await dsnCount('fallback'), before + failures.length);
});
