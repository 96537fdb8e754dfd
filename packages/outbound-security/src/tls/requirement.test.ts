import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyTable } from '../policy-table/table';
import {
  TLS_REQUIRED_NO_WAIVER,
  connectionRequirement,
  plannedRequirement,
  waiveForTlsRequiredNo,
  waiveRecipientPolicy,
  type ConnectionContext,
} from './requirement';
import { SecLevel } from '../sec-level';
import { decide, type Requirement } from './decision';

const FILE = 'config/outbound_tls_policy';
const TABLE = parsePolicyTable(
  [
    'partner.test verify match=mx.partner.test exempt=ratchet',
    'legacy.test may exempt=mta-sts',
    'relay:relay.isp.test encrypt auth_min_level=encrypt exempt=ratchet',
    'relay:strict.isp.test verify',
    'relay:internal.isp.test verify requiretls=relax',
  ].join('\n'),
  FILE,
);
const label = (line: number, name: string): string => `${name} (${FILE} line ${line})`;

function context(extra: Partial<ConnectionContext>): ConnectionContext {
  return {
    state: undefined,
    recipientDomain: 'partner.test',
    mxHost: 'mx.partner.test',
    exchange: '192.0.2.1',
    credentials: false,
    settings: { authMinLevel: SecLevel.TLS_SECURE, smartHostRatchet: true },
    table: TABLE,
    ...extra,
  };
}

test('POL-2: a planned message: the rule from the plan gives the minimum, the match= names and the exempted ratchet', () => {
  const rule = TABLE.forDomain('partner.test') ?? undefined;
  const requirement = connectionRequirement(context({ state: { domain: 'partner.test', ...(rule ? { rule } : {}) } }));
  assert.deepEqual(requirement, {
    domain: 'partner.test',
    ratchet: true,
    minimum: { level: SecLevel.TLS_SECURE, rule: label(1, 'partner.test'), match: ['mx.partner.test'] },
    ratchetExempt: { domain: label(1, 'partner.test') },
  });
});

test('POL-2: exempt=mta-sts: the policy stays in the requirement, marked exempt, with whether this MX is one enforce would not use', () => {
  const rule = TABLE.forDomain('legacy.test') ?? undefined;
  const state = {
    domain: 'legacy.test',
    sts: { mode: 'enforce' as const, policyId: 'p1', exempted: { outsidePolicy: ['mx.other.test'] } },
    ...(rule ? { rule } : {}),
  };
  const inside = connectionRequirement(context({ state, mxHost: 'mx.legacy.test' }));
  assert.deepEqual(inside?.sts, { mode: 'enforce', policyId: 'p1', exemptBy: label(2, 'legacy.test') });
  assert.deepEqual(inside?.minimum, { level: SecLevel.PLAIN, rule: label(2, 'legacy.test') });
  const outside = connectionRequirement(context({ state, mxHost: 'mx.other.test' }));
  assert.equal(outside?.sts?.outsidePolicy, true);
  // Without the exemption in the plan, the policy is enforced as before.
  const plain = connectionRequirement(context({ state: { domain: 'legacy.test', sts: { mode: 'enforce', policyId: 'p1' } } }));
  assert.deepEqual(plain?.sts, { mode: 'enforce', policyId: 'p1' });
});

test('POL-4/TLS-8: a relay hop: the relay rule gives the minimum and auth_min_level, its exempt=ratchet skips the relay key; no MTA-STS', () => {
  const requirement = connectionRequirement(
    context({ recipientDomain: 'customer.test', mxHost: 'relay.isp.test', exchange: '192.0.2.9', credentials: true }),
  );
  assert.deepEqual(requirement, {
    domain: 'customer.test',
    ratchet: true,
    relayKey: 'relay:relay.isp.test',
    authMinLevel: SecLevel.TLS_INSECURE,
    minimum: { level: SecLevel.TLS_INSECURE, rule: label(3, 'relay:relay.isp.test') },
    ratchetExempt: { relay: label(3, 'relay:relay.isp.test') },
  });
  const strict = connectionRequirement(context({ recipientDomain: 'customer.test', mxHost: 'strict.isp.test', credentials: true }));
  assert.equal(strict?.authMinLevel, SecLevel.TLS_SECURE, 'without auth_min_level in the rule, outbound_tls.ini applies');
  assert.deepEqual(strict?.minimum, { level: SecLevel.TLS_SECURE, rule: label(4, 'relay:strict.isp.test') });
});

test("POL-4: on a relay hop the recipient domain's minimum and match= do not apply (they name its MXs); its exempt=ratchet does", () => {
  const requirement = connectionRequirement(context({ recipientDomain: 'partner.test', mxHost: 'strict.isp.test' }));
  assert.deepEqual(requirement?.minimum, { level: SecLevel.TLS_SECURE, rule: label(4, 'relay:strict.isp.test') });
  assert.deepEqual(requirement?.ratchetExempt, { domain: label(1, 'partner.test') });
  const noRelayRule = connectionRequirement(context({ recipientDomain: 'partner.test', mxHost: 'other.isp.test' }));
  assert.equal(noRelayRule?.minimum, undefined);
  const noDomainRatchet = connectionRequirement(
    context({
      recipientDomain: 'partner.test',
      mxHost: 'other.isp.test',
      settings: { authMinLevel: SecLevel.TLS_SECURE, smartHostRatchet: false },
    }),
  );
  assert.deepEqual(noDomainRatchet, { domain: 'partner.test', ratchet: false, relayKey: 'relay:other.isp.test' });
});

test('OPS-8: an MX host named like an Object property (constructor, toString) is no DANE host unless the plan made it one', () => {
  for (const mxHost of ['constructor', 'toString', 'hasOwnProperty']) {
    const requirement = connectionRequirement(
      context({ recipientDomain: 'example.test', mxHost, state: { domain: 'example.test', dane: { mode: 'on', hosts: {} } } }),
    );
    assert.equal(requirement?.dane, undefined, mxHost);
  }
});

test('RPT-7: a report waives its recipient domain’s MTA-STS, DANE and ratchet, and keeps the relay key, auth_min_level and the table minimum', () => {
  const relay = connectionRequirement(context({ recipientDomain: 'partner.test', mxHost: 'strict.isp.test', credentials: true }));
  assert.ok(relay);
  assert.deepEqual(waiveRecipientPolicy({ ...relay, sts: { mode: 'enforce', policyId: 'p' } }), {
    domain: 'partner.test',
    ratchet: false,
    relayKey: 'relay:strict.isp.test',
    authMinLevel: SecLevel.TLS_SECURE,
    minimum: { level: SecLevel.TLS_SECURE, rule: label(4, 'relay:strict.isp.test') },
  });
});

test('POL-5: a relay hop whose relay:<host> line (or recipient domain line) cannot be read is held back with the file and line', () => {
  const table = parsePolicyTable(['relay:typo.isp.test verfy', 'broken.test encrypt exempt=ratchett'].join('\n'), FILE);
  const relay = connectionRequirement(context({ recipientDomain: 'example.test', mxHost: 'typo.isp.test', table }));
  assert.match(
    String(relay?.brokenRule),
    /config\/outbound_tls_policy line 1 cannot be read .*relay:typo\.isp\.test waits until the line is fixed/,
  );
  const verdict = decide({ level: SecLevel.TLS_SECURE, reason: 'valid' }, relay as Requirement, undefined, 'defer', 'typo.isp.test');
  assert.equal(verdict.kind === 'abandon' && verdict.cause, 'policy_table');
  const domain = connectionRequirement(context({ recipientDomain: 'broken.test', mxHost: 'ok.isp.test', table }));
  assert.match(String(domain?.brokenRule), /line 2 cannot be read/);
  assert.equal(connectionRequirement(context({ recipientDomain: 'fine.test', mxHost: 'ok.isp.test', table }))?.brokenRule, undefined);
});

test('RT-2: a planned REQUIRETLS message carries how the plan authenticated this MX host; the same message without the request, nothing', () => {
  const state = { domain: 'partner.test', mxDnssec: true as const };
  const requirement = plannedRequirement({ ...context({ requireTls: true }) }, state);
  assert.deepEqual(requirement.requireTls, { mxSet: { ok: true, by: 'DNSSEC-validated MX RRset' } });
  assert.equal(plannedRequirement(context({}), state).requireTls, undefined, 'the control');
  const literal = connectionRequirement(context({ requireTls: true, mxHost: undefined, state: { domain: '[192.0.2.1]' } }));
  assert.deepEqual(literal?.requireTls, {
    mxSet: { ok: false, reason: '[192.0.2.1]: an address literal has no MX host name to authenticate' },
  });
  const unknown = connectionRequirement(
    context({ requireTls: true, state: { domain: 'partner.test', mxAuthUnknown: 'TXT lookup failed' } }),
  );
  assert.equal(unknown?.requireTls?.mxSet.ok === false && unknown.requireTls.mxSet.transient, true);
});

test('RT-4: a relay hop of a REQUIRETLS message: the route is the admin’s (MX set ok); requiretls=relax of the relay rule is carried', () => {
  const strict = connectionRequirement(context({ requireTls: true, recipientDomain: 'customer.test', mxHost: 'strict.isp.test' }));
  assert.deepEqual(strict?.requireTls, { mxSet: { ok: true, by: 'relay route to relay:strict.isp.test (configured by the admin)' } });
  const relaxed = connectionRequirement(context({ requireTls: true, recipientDomain: 'customer.test', mxHost: 'internal.isp.test' }));
  assert.deepEqual(relaxed?.requireTls, {
    mxSet: { ok: true, by: 'relay route to relay:internal.isp.test (configured by the admin)' },
    relaxedBy: label(5, 'relay:internal.isp.test'),
  });
  const control = connectionRequirement(context({ recipientDomain: 'customer.test', mxHost: 'internal.isp.test' }));
  assert.equal(control?.requireTls, undefined, 'the control: the relax rule alone asks nothing');
});

test('RT-2/RT-4: a relay hop of a REQUIRETLS message is always guarded, even where an ordinary message has nothing to check', () => {
  const bare = {
    recipientDomain: '[192.0.2.50]',
    mxHost: undefined,
    exchange: '',
    settings: { authMinLevel: SecLevel.TLS_SECURE, smartHostRatchet: false },
  };
  assert.equal(connectionRequirement(context(bare)), null, 'the control: no relay key, no ratchet');
  const requirement = connectionRequirement(context({ ...bare, requireTls: true }));
  assert.ok(requirement, 'a REQUIRETLS message is never sent unchecked');
  assert.equal(requirement.requireTls?.mxSet.ok, true);
  assert.equal(requirement.ratchet, false);
});

test('RT-5: TLS-Required: No waives MTA-STS and DANE; the domain’s ratchet is still read and raised but exempted; relay, minimum, auth kept', () => {
  const dane = { tlsaName: '_25._tcp.mx.partner.test', usable: [], mode: 'on' as const };
  const requirement: Requirement = {
    domain: 'partner.test',
    ratchet: true,
    sts: { mode: 'enforce', policyId: 'p1' },
    dane,
    relayKey: 'relay:relay.isp.test',
    authMinLevel: SecLevel.TLS_INSECURE,
    minimum: { level: SecLevel.TLS_INSECURE, rule: label(3, 'relay:relay.isp.test') },
    ratchetExempt: { domain: label(1, 'partner.test'), relay: label(3, 'relay:relay.isp.test') },
  };
  assert.deepEqual(waiveForTlsRequiredNo(requirement), {
    domain: 'partner.test',
    ratchet: true,
    relayKey: 'relay:relay.isp.test',
    authMinLevel: SecLevel.TLS_INSECURE,
    minimum: { level: SecLevel.TLS_INSECURE, rule: label(3, 'relay:relay.isp.test') },
    ratchetExempt: { relay: label(3, 'relay:relay.isp.test'), domain: TLS_REQUIRED_NO_WAIVER },
  });
  // A requirement without the domain's ratchet (smart_host_ratchet=false) gets no domain exemption to log.
  assert.deepEqual(waiveForTlsRequiredNo({ domain: 'partner.test', ratchet: false, relayKey: 'relay:r.test', dane }), {
    domain: 'partner.test',
    ratchet: false,
    relayKey: 'relay:r.test',
  });
  // The waived ratchet is not enforced (a PLAIN connection passes a stored TLS_SECURE), and is raised by a better connection.
  const waived = waiveForTlsRequiredNo({ domain: 'partner.test', ratchet: true, sts: { mode: 'enforce', policyId: 'p1' } });
  const exempt = { level: SecLevel.TLS_SECURE, key: 'partner.test', rule: TLS_REQUIRED_NO_WAIVER };
  const plain = decide({ level: SecLevel.PLAIN, reason: 'no TLS' }, waived, undefined, 'defer', 'mx.partner.test', exempt);
  assert.equal(plain.kind, 'pass');
  assert.deepEqual(plain.kind === 'pass' && plain.exemptions?.map((use) => use.rule), [TLS_REQUIRED_NO_WAIVER]);
  const control = decide(
    { level: SecLevel.PLAIN, reason: 'no TLS' },
    { domain: 'partner.test', ratchet: true, sts: { mode: 'enforce', policyId: 'p1' } },
    undefined,
    'defer',
    'mx.partner.test',
  );
  assert.equal(control.kind === 'abandon' && control.cause, 'mta_sts', 'the control: the same connection without the header');
  const better = decide({ level: SecLevel.TLS_INSECURE, reason: 'self-signed' }, waived, undefined, 'defer', 'mx.partner.test', {
    ...exempt,
    level: SecLevel.PLAIN,
  });
  assert.equal(better.raiseTo, SecLevel.TLS_INSECURE);
});
