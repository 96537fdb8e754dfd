import assert from 'node:assert/strict';
import { test } from 'node:test';
import { infoLogged } from './log-level';

const withLogger = (logger: unknown): { haraka_require(name: string): unknown } => ({
  haraka_require: (name: string) => {
    if (name !== 'logger') throw new Error(`unexpected ${name}`);
    if (logger instanceof Error) throw logger;
    return logger;
  },
});

test("OPS-6: INFO lines are built only while Haraka's log level writes them, following a change of level", () => {
  const logger = { loglevel: 4, LOGINFO: 6 };
  const info = infoLogged(withLogger(logger));
  assert.equal(info(), false, 'warn: INFO lines are dropped');
  logger.loglevel = 6;
  assert.equal(info(), true, 'info: written');
  logger.loglevel = 7;
  assert.equal(info(), true, 'debug: written');
});

test("OPS-6: when Haraka's logger cannot be read the lines are built (Haraka decides)", () => {
  assert.equal(infoLogged(withLogger(new Error('no such module')))(), true);
  assert.equal(infoLogged(withLogger({}))(), true);
  assert.equal(infoLogged(withLogger(undefined))(), true);
});
