import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestDnsServer } from '../fixtures/dns-server';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { TestCa } from '../fixtures/test-ca';
import { makeAddressPolicy } from '#lib/mx/address-policy';
import { createDnsClient } from '#lib/mx/dns-client';
import { checkMediaType, fetchPolicyText } from '#lib/mta-sts/fetch';

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

test('STS-3: a policy body that is not valid UTF-8 is refused (fatal decoder, never U+FFFD)', async () => {
  const ca = await TestCa.create();
  const server = await PolicyServer.start({ ca });
  try {
    const dns = await TestDnsServer.start();
    try {
      dns.set('mta-sts.bytes.test', [{ type: 'A', address: '127.0.0.1' }]);
      const settings = {
        timeoutMs: 2000,
        port: server.port,
        extraCa: [ca.caCert],
        addressPolicy: makeAddressPolicy([], []),
      };
      const client = createDnsClient({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
      const valid = policyText({ mode: 'enforce', maxAge: 86400, mx: ['mx.bytes.test'] });
      // An unknown field whose value holds a lone continuation byte and an overlong encoding.
      for (const bad of [Buffer.from([0x80]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80])]) {
        await server.set('bytes.test', { kind: 'serve', body: Buffer.concat([Buffer.from(`${valid}ext: `), bad, Buffer.from('\r\n')]) });
        const result = await fetchPolicyText('bytes.test', client, settings);
        assert.equal(result.ok, false, `accepted ${bad.toString('hex')}`);
        if (!result.ok) assert.match(result.error, /not valid UTF-8/);
      }
      await server.set('bytes.test', { kind: 'serve', body: Buffer.from(`${valid}ext: ünïcödé\r\n`) });
      const good = await fetchPolicyText('bytes.test', client, settings);
      assert.ok(good.ok && good.text.endsWith('ext: ünïcödé\r\n'));
    } finally {
      await dns.stop();
    }
  } finally {
    await server.stop();
    await ca.cleanup();
  }
});
