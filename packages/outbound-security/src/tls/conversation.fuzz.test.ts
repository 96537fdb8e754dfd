/**
 * Fuzzing the conversation watcher (TLS-2, TLS-7): random reply sequences,
 * random bytes and split packets, random command orders. Whatever the server
 * does, the watcher never throws, never lets a held command go before the
 * decision, never writes after an abandon, and never hands Haraka a reply that
 * would fail the whole message before the decision.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Conversation, HANDSHAKE_COMMANDS } from './conversation';

type Step =
  | { kind: 'server'; chunks: string[] }
  | { kind: 'command'; text: string }
  | { kind: 'secure' }
  | { kind: 'tlsError' }
  | { kind: 'decide'; pass: boolean };

const replyLine = fc
  .tuple(
    fc.constantFrom('2', '3', '4', '5', 'x', ''),
    fc.integer({ min: 0, max: 99 }),
    fc.constantFrom(' ', '-', ''),
    fc.string({ maxLength: 12 }),
  )
  .map(([first, rest, sep, text]) => `${first}${String(rest).padStart(2, '0')}${sep}${text}`);
const serverText = fc.oneof(
  fc.array(replyLine, { maxLength: 4 }).map((lines) => lines.map((l) => `${l}\r\n`).join('')),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('220 go ahead\r\nXYZ', '250-STARTTLS\r\n250 OK\r\n', 'HELLO THERE\r\n', '\r\n', '\n\n250 a\n'),
);
/** A server chunk split at random points, as TCP may deliver it. */
const serverChunks = fc.tuple(serverText, fc.array(fc.nat(), { maxLength: 3 })).map(([text, cuts]) => {
  const points = [...new Set(cuts.map((c) => (text.length === 0 ? 0 : c % text.length)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(text.slice(from, p));
    from = p;
  }
  chunks.push(text.slice(from));
  return chunks.filter((c) => c !== '');
});
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: serverChunks.map((chunks) => ({ kind: 'server' as const, chunks })) },
  {
    weight: 4,
    arbitrary: fc
      .constantFrom('EHLO me', 'HELO me', 'STARTTLS', 'MAIL FROM:<a@b>', 'AUTH PLAIN AAAA', 'RCPT TO:<c@d>', 'DATA', 'QUIT', 'RSET', 'x')
      .map((text) => ({ kind: 'command' as const, text: `${text}\r\n` })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'secure' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'tlsError' as const }) },
  { weight: 1, arbitrary: fc.boolean().map((pass) => ({ kind: 'decide' as const, pass })) },
);

test('TLS-2/TLS-7 fuzz: no held command before the decision, nothing after an abandon, no failing reply reaches Haraka early, never throws', () => {
  fc.assert(
    fc.property(
      fc.array(step, { maxLength: 30 }),
      fc.record({ plainOnly: fc.boolean(), plainRetry: fc.boolean(), credentials: fc.boolean() }),
      (steps, options) => {
        const c = new Conversation(options);
        let decisionStarted = false;
        let decidedPass = false;
        let abandoned = false;
        let retries = 0;
        /** The command Haraka last wrote (what it would take a reply as answering). */
        let lastWritten = 'CONNECT';
        for (const s of steps) {
          switch (s.kind) {
            case 'command': {
              const verb = s.text.split(/[\s:]/)[0]?.toUpperCase() ?? '';
              const action = c.command(s.text);
              if (abandoned) assert.equal(action.kind, 'drop', 'nothing is written after an abandon');
              if (action.kind === 'write') {
                if (!decidedPass) assert.ok(HANDSHAKE_COMMANDS.has(verb), `${verb} written before the decision`);
                lastWritten = verb;
              }
              if (action.kind === 'hold' && action.decide) {
                assert.equal(decisionStarted, false, 'one decision per connection');
                decisionStarted = true;
              }
              break;
            }
            case 'server':
              for (const chunk of s.chunks) {
                c.data(chunk);
                for (const line of chunk.split(/(?<=\n)/).filter((l) => l.endsWith('\n'))) {
                  const action = c.reply(line);
                  if (abandoned) assert.equal(action.kind, 'drop');
                  if (action.kind === 'abandon') {
                    abandoned = true;
                    if (action.retryPlain) retries++;
                  }
                  if ((action.kind === 'pass' || action.kind === 'rewrite') && !decidedPass) {
                    const shown = action.kind === 'rewrite' ? action.line : line;
                    const m = /^([2345])\d\d([ -])/.exec(shown);
                    assert.ok(m, `unparseable ${JSON.stringify(shown)} reached Haraka before the decision`);
                    if (m[2] === ' ' && m[1] !== '2') {
                      assert.ok(
                        (lastWritten === 'EHLO' && m[1] === '5') || lastWritten === 'QUIT',
                        `${JSON.stringify(shown)} answering ${lastWritten} reached Haraka before the decision`,
                      );
                    }
                  }
                }
                const after = c.afterData();
                if (after.kind === 'abandon') {
                  assert.equal(abandoned, false);
                  abandoned = true;
                  if (after.retryPlain) retries++;
                }
              }
              break;
            case 'secure': {
              const action = c.secured();
              if (action.kind === 'abandon') abandoned = true;
              break;
            }
            case 'tlsError': {
              const action = c.tlsError();
              if (action.kind === 'abandon') {
                // Haraka ends the connection itself; the I/O layer marks it abandoned.
                c.abandonNow();
                abandoned = true;
                if (action.retryPlain) retries++;
              }
              break;
            }
            case 'decide':
              if (!decisionStarted || abandoned || decidedPass) break;
              c.decide(s.pass);
              if (s.pass) decidedPass = true;
              else abandoned = true;
              break;
          }
          if (options.credentials || options.plainOnly || !options.plainRetry) assert.equal(retries, 0, 'no plain retry');
          assert.ok(retries <= 1, 'at most one plain retry');
        }
      },
    ),
    { numRuns: 3000 },
  );
});
