import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResolvedMx } from '../mx/lookup';
import type { TlsaLookup } from './lookup';
import { daneStep, type DaneMode } from './plan-step';
import type { TlsaRecord } from './tlsa';

const RECORD: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 1) };
const mx = (host: string, secure = true): ResolvedMx => ({ host, priority: 10, addresses: ['192.0.2.1'], ...(secure ? { secure } : {}) });

function deps(mode: DaneMode, answers: Record<string, TlsaLookup['kind'] | 'unusable-only'>) {
  const asked: string[] = [];
  return {
    asked,
    mode,
    lookupTlsa: async (host: string): Promise<TlsaLookup> => {
      asked.push(host);
      const name = `_25._tcp.${host}`;
      switch (answers[host]) {
        case 'dane':
          return { kind: 'dane', name, rrset: { kind: 'usable', usable: [RECORD], unusable: [] }, malformed: [] };
        case 'unusable-only':
          return { kind: 'dane', name, rrset: { kind: 'unusable-only', unusable: [] }, malformed: [] };
        case 'failed':
          return { kind: 'failed', name, reason: `TLSA lookup for ${name}: SERVFAIL` };
        default:
          return { kind: 'none', name, reason: `${name}: no TLSA records` };
      }
    },
  };
}

test('DANE-2: an insecure MX answer, or hosts without secure addresses, ask no TLSA question', async () => {
  const d = deps('on', { 'a.test': 'dane' });
  assert.equal((await daneStep([mx('a.test')], false, d)).kind, 'not-applicable');
  assert.equal((await daneStep([mx('a.test', false)], true, d)).kind, 'not-applicable');
  assert.deepEqual(d.asked, []);
});

test('DANE-3: hosts with TLSA records carry what to match; hosts without stay usable without DANE', async () => {
  const step = await daneStep(
    [mx('a.test'), mx('b.test'), mx('c.test', false)],
    true,
    deps('on', { 'a.test': 'dane', 'b.test': 'unusable-only' }),
  );
  assert.equal(step.kind, 'applies');
  if (step.kind !== 'applies') return;
  assert.deepEqual(
    step.mxs.map((m) => m.host),
    ['a.test', 'b.test', 'c.test'],
  );
  assert.deepEqual(step.hosts['a.test'], { tlsaName: '_25._tcp.a.test', usable: [RECORD] });
  assert.deepEqual(step.hosts['b.test'], { tlsaName: '_25._tcp.b.test', usable: [] });
  assert.equal(step.hosts['c.test'], undefined);
});

test('DANE-3/DANE-6: a host whose TLSA lookup fails is dropped with its reason (on) or kept and reported (observe)', async () => {
  const answers = { 'a.test': 'failed', 'b.test': 'dane' } as const;
  const on = await daneStep([mx('a.test'), mx('b.test')], true, deps('on', answers));
  assert.equal(on.kind, 'applies');
  if (on.kind === 'applies') {
    assert.deepEqual(
      on.mxs.map((m) => m.host),
      ['b.test'],
    );
    assert.match(on.notes.join('\n'), /MX a\.test skipped: TLSA lookup for _25\._tcp\.a\.test: SERVFAIL/);
  }
  const observe = await daneStep([mx('a.test'), mx('b.test')], true, deps('observe', answers));
  assert.equal(observe.kind, 'applies');
  if (observe.kind === 'applies') {
    assert.deepEqual(
      observe.mxs.map((m) => m.host),
      ['a.test', 'b.test'],
    );
    assert.match(observe.notes.join('\n'), /DANE \(observe\): a\.test would be skipped/);
  }
});

test('DANE-3: with every host failing its TLSA lookup nothing is left (the message waits); with no TLSA anywhere DANE does not apply', async () => {
  const none = await daneStep([mx('a.test'), mx('b.test')], true, deps('on', { 'a.test': 'failed', 'b.test': 'failed' }));
  assert.equal(none.kind, 'none-left');
  assert.match(none.kind === 'none-left' ? none.reason : '', /every MX host failed its TLSA lookup/);
  assert.equal((await daneStep([mx('a.test')], true, deps('on', {}))).kind, 'not-applicable');
});

test('DANE-2: a host of a secure MX RRset whose AAAA (or A) lookup failed is skipped, never used without DANE', async () => {
  const partial: ResolvedMx = { host: 'a.test', priority: 10, addresses: ['192.0.2.1'], addressLookupFailed: 'ESERVFAIL (bogus)' };
  const step = await daneStep([partial, mx('b.test')], true, deps('on', { 'b.test': 'dane' }));
  assert.equal(step.kind, 'applies');
  if (step.kind === 'applies') {
    assert.deepEqual(
      step.mxs.map((m) => m.host),
      ['b.test'],
    );
    assert.match(
      step.notes.join('\n'),
      /MX a\.test skipped: address lookup for a\.test failed \(ESERVFAIL \(bogus\)\): DNSSEC status unknown/,
    );
  }
  const alone = await daneStep([partial], true, deps('on', {}));
  assert.equal(alone.kind, 'none-left');
});

test('DANE-8: while the resolver status is unknown, hosts of a DNSSEC-validated MX answer are skipped with the reason, never used without DANE', async () => {
  const unknown = 'SOA test.: ETIMEOUT (no answer)';
  const mixed = { ...deps('on', { 'a.test': 'none' }), unknown };
  const step = await daneStep([mx('a.test'), mx('b.test', false)], true, mixed);
  assert.equal(step.kind, 'applies');
  if (step.kind !== 'applies') return;
  assert.deepEqual(
    step.mxs.map((m) => m.host),
    ['b.test'],
    'the host with insecure addresses is no DANE candidate: it stays',
  );
  assert.deepEqual(step.hosts, {});
  assert.match(step.notes.join('\n'), /MX a\.test skipped: DANE status unknown \(SOA test\.: ETIMEOUT/);
  assert.deepEqual(mixed.asked, [], 'no TLSA question while the status is unknown');

  const only = await daneStep([mx('a.test'), mx('c.test')], true, { ...deps('on', {}), unknown });
  assert.equal(only.kind, 'none-left');
  assert.match(only.kind === 'none-left' ? only.reason : '', /DANE status unknown/);

  const observed = await daneStep([mx('a.test')], true, { ...deps('observe', {}), unknown });
  assert.equal(observed.kind, 'applies');
  if (observed.kind === 'applies') {
    assert.deepEqual(
      observed.mxs.map((m) => m.host),
      ['a.test'],
    );
    assert.match(observed.notes.join('\n'), /DANE \(observe\): a\.test would be skipped: DANE status unknown/);
  }
  assert.equal((await daneStep([mx('a.test')], false, { ...deps('on', {}), unknown })).kind, 'not-applicable');
});

test('DANE-11: the names of a host reached through a secure CNAME ride along in its requirement, expanded first', async () => {
  const d = {
    mode: 'on' as const,
    lookupTlsa: async (host: string): Promise<TlsaLookup> => ({
      kind: 'dane',
      name: '_25._tcp.mail.target.test',
      rrset: { kind: 'usable', usable: [RECORD], unusable: [] },
      malformed: [],
      names: ['mail.target.test', host],
    }),
  };
  const step = await daneStep([mx('mx.alias.test')], true, d);
  assert.equal(step.kind, 'applies');
  if (step.kind !== 'applies') return;
  assert.deepEqual(step.hosts['mx.alias.test'], {
    tlsaName: '_25._tcp.mail.target.test',
    usable: [RECORD],
    names: ['mail.target.test', 'mx.alias.test'],
  });
});
