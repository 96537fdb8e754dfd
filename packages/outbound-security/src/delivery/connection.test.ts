/**
 * The per-connection path with a stand-in ratchet store and report (the guard
 * around it is tested in haraka/connection-guard.test.ts, the decision alone
 * in tls/decision.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import { SecLevel } from '../sec-level';
import type { Classification } from '../tls/classify';
import type { ExemptionUse, Requirement, RequireTlsRequirement } from '../tls/decision';
import { TLS_REQUIRED_NO_WAIVER } from '../tls/requirement';
import { decideConnection, type ConnectionDecision, type ConnectionEvents, type RequireTlsEvent } from './connection';

const SECURE: Classification = { level: SecLevel.TLS_SECURE, reason: 'certificate valid for mx.example.test', protocol: 'TLSv1.3' };
const INSECURE: Classification = { level: SecLevel.TLS_INSECURE, reason: 'self-signed', protocol: 'TLSv1.3' };
const PLAIN: Classification = { level: SecLevel.PLAIN, reason: 'no TLS' };
const WHERE = 'mx.example.test [192.0.2.1]';
const AUTHENTICATED: RequireTlsRequirement = { mxSet: { ok: true, by: 'DNSSEC-validated MX RRset' } };
const RULE = 'example.test (config/outbound_tls_policy line 1)';

interface Run {
  decision: ConnectionDecision;
  abandoned: string[];
  requireTls: RequireTlsEvent[];
  exemptions: ExemptionUse[];
  ratchet: string[];
  raised: string[];
  warnings: string[];
}

/** One connection through the path: `stored` is what every ratchet key holds. */
async function connect(
  requirement: Requirement,
  options: { classification?: Classification; stored?: RatchetRead | 'throws'; advertised?: boolean } = {},
): Promise<Run> {
  const run: Omit<Run, 'decision'> = { abandoned: [], requireTls: [], exemptions: [], ratchet: [], raised: [], warnings: [] };
  const stored = options.stored ?? { kind: 'none' };
  const store: Pick<RatchetStore, 'description' | 'get' | 'raise'> = {
    description: 'fake',
    get: () => (stored === 'throws' ? Promise.reject(new Error('store down')) : Promise.resolve(stored)),
    raise: (key, level) => (run.raised.push(`${key} ${SecLevel[level]}`), Promise.resolve(level)),
  };
  const nothing = (): void => undefined;
  const events: ConnectionEvents = {
    connection: nothing,
    ratchet: (result) => run.ratchet.push(result),
    abandoned: (cause) => run.abandoned.push(cause),
    sts: nothing,
    exemption: (use) => run.exemptions.push(use),
    dane: nothing,
    requireTls: (event) => run.requireTls.push(event),
  };
  const decision = await decideConnection(
    {
      requirement,
      observed: { encrypted: (options.classification ?? SECURE).level > SecLevel.PLAIN },
      classification: options.classification ?? SECURE,
      mxHost: 'mx.example.test',
      where: WHERE,
      ...(options.advertised !== undefined ? { requireTlsAdvertised: options.advertised } : {}),
    },
    {
      ratchet: store,
      onStoreError: 'defer',
      report: { log: { info: nothing, warn: (line) => run.warnings.push(line), error: nothing }, events, record: nothing },
    },
  );
  return { ...run, decision };
}

const base: Requirement = { domain: 'example.test', ratchet: true };
const requiring = (requireTls: RequireTlsRequirement = AUTHENTICATED, requirement: Requirement = base): Requirement => ({
  ...requirement,
  requireTls,
});

test('RT-2: a REQUIRETLS message passes only where (a), (b) and (c) hold: counted as sent', async () => {
  const sent = await connect(requiring(), { advertised: true });
  assert.equal(sent.decision.verdict.kind, 'pass');
  assert.deepEqual(sent.requireTls, [{ kind: 'sent' }]);
  assert.deepEqual(sent.abandoned, []);
});

test('RT-2: a connection that passes for an ordinary message is abandoned for a REQUIRETLS one when the server does not advertise REQUIRETLS', async () => {
  const control = await connect(base, { advertised: false });
  assert.equal(control.decision.verdict.kind, 'pass');
  assert.deepEqual(control.requireTls, []);
  const refused = await connect(requiring(), { advertised: false });
  const verdict = refused.decision.verdict;
  assert.equal(verdict.kind, 'abandon');
  assert.equal(verdict.kind === 'abandon' && verdict.cause, 'requiretls');
  assert.equal(verdict.kind === 'abandon' && verdict.requireTls, 'requiretls');
  assert.match(
    verdict.kind === 'abandon' ? verdict.reason : '',
    /^example\.test: REQUIRETLS: .* does not advertise REQUIRETLS after STARTTLS$/,
  );
  assert.deepEqual(refused.requireTls, [{ kind: 'refused', missing: 'requiretls' }]);
  assert.deepEqual(refused.abandoned, ['requiretls']);
  // The requirement alone decides: no advertisement seen (undefined) is not one.
  const unknown = await connect(requiring());
  assert.equal(unknown.decision.verdict.kind === 'abandon' && unknown.decision.verdict.requireTls, 'requiretls');
});

test('RT-2: below TLS_SECURE (b) and an MX set not authenticated (a) are each lasting; an MX set not known now is not (RT-3)', async () => {
  const control = await connect(base, { classification: INSECURE, advertised: true });
  assert.equal(control.decision.verdict.kind, 'pass');
  const insecure = await connect(requiring(), { classification: INSECURE, advertised: true });
  assert.equal(insecure.decision.verdict.kind === 'abandon' && insecure.decision.verdict.requireTls, 'certificate');
  assert.deepEqual(insecure.requireTls, [{ kind: 'refused', missing: 'certificate' }]);
  const unauthenticated = await connect(requiring({ mxSet: { ok: false, reason: 'example.test: MX set not authenticated' } }), {
    advertised: true,
  });
  assert.equal(unauthenticated.decision.verdict.kind === 'abandon' && unauthenticated.decision.verdict.requireTls, 'mx-set');
  const unknown = await connect(requiring({ mxSet: { ok: false, reason: 'unknown for now', transient: true } }), { advertised: true });
  const verdict = unknown.decision.verdict;
  assert.equal(verdict.kind === 'abandon' && verdict.cause, 'requiretls');
  assert.equal(verdict.kind === 'abandon' && 'requireTls' in verdict, false, 'transient: no lasting reason');
  assert.deepEqual(unknown.requireTls, [{ kind: 'refused', missing: 'mx-set' }]);
});

test('RT-4: requiretls=relax lets a relay that does not advertise REQUIRETLS pass, counted and logged as relaxed, then sent', async () => {
  const relaxed = await connect(requiring({ ...AUTHENTICATED, relaxedBy: 'relay:relay.test (config/outbound_tls_policy line 2)' }), {
    advertised: false,
  });
  assert.equal(relaxed.decision.verdict.kind, 'pass');
  assert.deepEqual(relaxed.requireTls, [{ kind: 'relaxed' }, { kind: 'sent' }]);
  assert.ok(
    relaxed.warnings.some((w) =>
      w.includes('allowed by requiretls=relax of policy table rule relay:relay.test (config/outbound_tls_policy line 2) (RT-4)'),
    ),
    relaxed.warnings.join('\n'),
  );
  // Advertised: nothing was relaxed.
  const advertised = await connect(requiring({ ...AUTHENTICATED, relaxedBy: 'relay:relay.test' }), { advertised: true });
  assert.deepEqual(advertised.requireTls, [{ kind: 'sent' }]);
});

test('RT-3: a ratchet, MTA-STS or DANE refusal of a REQUIRETLS message below TLS_SECURE is lasting (certificate), counted under its own cause; the control carries none', async () => {
  const storedSecure: RatchetRead = { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } };
  const enforce: Requirement = { ...base, sts: { mode: 'enforce', policyId: 'p1' } };
  const dane: Requirement = { ...base, dane: { tlsaName: '_25._tcp.mx.example.test', usable: [], mode: 'on' } };
  const cases: Array<[string, Requirement, Classification, RatchetRead | undefined]> = [
    ['ratchet', base, INSECURE, storedSecure],
    ['mta_sts', enforce, INSECURE, undefined],
    ['dane', dane, PLAIN, undefined],
  ];
  for (const [cause, requirement, classification, stored] of cases) {
    const options = { classification, advertised: true, ...(stored ? { stored } : {}) };
    const control = (await connect(requirement, options)).decision.verdict;
    assert.equal(control.kind === 'abandon' && control.cause, cause);
    assert.equal(control.kind === 'abandon' && 'requireTls' in control, false, `${cause}: the control`);
    const refused = await connect(requiring(AUTHENTICATED, requirement), options);
    const verdict = refused.decision.verdict;
    assert.equal(verdict.kind === 'abandon' && verdict.cause, cause);
    assert.equal(verdict.kind === 'abandon' && verdict.requireTls, 'certificate', cause);
    // RT-6: counted under the ordinary cause only, not as a refused REQUIRETLS connection.
    assert.deepEqual(refused.abandoned, [cause], cause);
    assert.deepEqual(refused.requireTls, [], cause);
  }
});

test('RT-3: a REQUIRETLS message refused because the ratchet store cannot be read is not lasting (it defers)', async () => {
  const run = await connect(requiring(), { classification: INSECURE, stored: 'throws', advertised: true });
  const verdict = run.decision.verdict;
  assert.equal(verdict.kind === 'abandon' && verdict.cause, 'store');
  assert.equal(verdict.kind === 'abandon' && 'requireTls' in verdict, false);
});

test('RT-2: a policy-table exemption never lowers REQUIRETLS: what passes only by exempt= still falls short of TLS_SECURE', async () => {
  const storedSecure: RatchetRead = { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } };
  const exemptRatchet: Requirement = { ...base, ratchetExempt: { domain: RULE } };
  const exemptSts: Requirement = { ...base, sts: { mode: 'enforce', policyId: 'p1', exemptBy: RULE } };
  for (const [requirement, stored] of [
    [exemptRatchet, storedSecure],
    [exemptSts, undefined],
  ] as const) {
    const options = { classification: INSECURE, advertised: true, ...(stored ? { stored } : {}) };
    const control = await connect(requirement, options);
    assert.equal(control.decision.verdict.kind, 'pass');
    assert.equal(control.exemptions.length, 1, 'the control passes by the exemption');
    const refused = await connect(requiring(AUTHENTICATED, requirement), options);
    assert.equal(refused.decision.verdict.kind === 'abandon' && refused.decision.verdict.requireTls, 'certificate');
    assert.deepEqual(refused.exemptions, [], 'no exemption was used: nothing was sent');
  }
});

test('RT-5: a pass by the TLS-Required: No waiver is logged but not counted as a policy-table exemption; a table exemption is', async () => {
  const storedSecure: RatchetRead = { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } };
  const waived = await connect(
    { ...base, ratchetExempt: { domain: TLS_REQUIRED_NO_WAIVER } },
    { classification: PLAIN, stored: storedSecure },
  );
  assert.equal(waived.decision.verdict.kind, 'pass');
  assert.deepEqual(waived.exemptions, []);
  assert.ok(
    waived.warnings.some((w) =>
      w.includes(`passed only by ${TLS_REQUIRED_NO_WAIVER}: stored level TLS_SECURE of example.test not required`),
    ),
    waived.warnings.join('\n'),
  );
  assert.deepEqual(waived.ratchet, [], 'not a ratchet pass either');
  const table = await connect({ ...base, ratchetExempt: { domain: RULE } }, { classification: PLAIN, stored: storedSecure });
  assert.deepEqual(
    table.exemptions.map((use) => use.rule),
    [RULE],
  );
});

test('OPS-6: the pass line is built and written only while INFO lines are written; the verdict is the same', async () => {
  const infos: Array<string[]> = [[], []];
  const decisions = [];
  for (const [i, infoOn] of [true, false].entries()) {
    const lines = infos[i] as string[];
    const nothing = (): void => undefined;
    decisions.push(
      await decideConnection(
        { requirement: base, observed: { encrypted: true }, classification: SECURE, mxHost: 'mx.example.test', where: WHERE },
        {
          ratchet: { description: 'fake', get: () => Promise.resolve({ kind: 'none' }) },
          onStoreError: 'defer',
          report: {
            log: { info: (line) => lines.push(line), warn: nothing, error: nothing, infoLogged: () => infoOn },
            events: { connection: nothing, ratchet: nothing, abandoned: nothing, sts: nothing, exemption: nothing, dane: nothing },
            record: nothing,
          },
        },
      ),
    );
  }
  assert.ok(infos[0]?.some((line) => /example\.test via mx\.example\.test \[192\.0\.2\.1\]: TLS_SECURE .*: pass$/.test(line)));
  assert.deepEqual(infos[1], []);
  assert.equal(decisions[0]?.verdict.kind, 'pass');
  assert.deepEqual(decisions[1]?.verdict, decisions[0]?.verdict);
});

test('OPS-6: a stored level the store answers from memory (peek) is enforced as one it reads; without it the store is read', async () => {
  const secure: RatchetRead = { kind: 'level', entry: { domain: 'example.test', level: SecLevel.TLS_SECURE } };
  const decide = (peek: RatchetStore['peek'], get: RatchetStore['get']): Promise<ConnectionDecision> =>
    decideConnection(
      { requirement: base, observed: { encrypted: true }, classification: INSECURE, mxHost: 'mx.example.test', where: WHERE },
      { ratchet: { description: 'fake', get, ...(peek ? { peek } : {}) }, onStoreError: 'defer' },
    );
  const unread = (): Promise<RatchetRead> => Promise.reject(new Error('read although memory answered'));
  const fromMemory = await decide(() => secure, unread);
  assert.equal(fromMemory.verdict.kind, 'abandon', 'TLS_INSECURE below the remembered TLS_SECURE');
  assert.equal(fromMemory.verdict.kind === 'abandon' && fromMemory.verdict.cause, 'ratchet');
  const read = await decide(
    () => undefined,
    () => Promise.resolve(secure),
  );
  assert.equal(read.verdict.kind === 'abandon' && read.verdict.cause, 'ratchet', 'peek without an answer: the store is read');
  const control = await decide(() => ({ kind: 'none' }), unread);
  assert.equal(control.verdict.kind, 'pass');
});
