import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMediaType } from './mta-sts-fetch';

test('STS-2: the media type must be text/plain; parameters are allowed, a malformed header is rejected', () => {
  for (const ok of ['text/plain', 'TEXT/Plain', 'text/plain; charset=utf-8', 'text/plain;charset="utf-8"', 'text/plain ; format=flowed']) {
    assert.equal(checkMediaType(ok), null, ok);
  }
  assert.match(checkMediaType(undefined) ?? '', /no Content-Type/);
  assert.match(checkMediaType('text/html') ?? '', /not text\/plain/);
  assert.match(checkMediaType('application/octet-stream') ?? '', /not text\/plain/);
  for (const bad of ['text/plain;', 'text/plain; charset', 'text /plain', 'text/plain, text/html', 'textplain', 'text/plain; a=b c', '']) {
    assert.ok(checkMediaType(bad), `accepted ${JSON.stringify(bad)}`);
  }
});
