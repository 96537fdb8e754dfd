/**
 * What `explain` says of exemptions (POL-2, POL-3): the note of each exempted
 * part tells what the plan and the guard do with it, no more, no less; and
 * what a REQUIRETLS message to the domain would need (RT-6).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyTable } from '../policy-table/table';
import { SecLevel } from '../sec-level';
import type { DeliveryPlan } from '../delivery/plan';
import { exemptionLines, formatDomainExplanation, formatRelayExplanation } from './explain';
import type { EffectivePolicy, MxReport } from './mx';

const table = parsePolicyTable(
  ['dane-off.example  may  exempt=dane', 'relay:smtp.isp.example  verify  exempt=dane,ratchet'].join('\n'),
  'config/outbound_tls_policy',
);

test('POL-3/DANE: explain says what exempt=dane does for a domain (no TLSA lookup, judged as without DANE), never that it has no effect', () => {
  const rule = table.forDomain('dane-off.example');
  assert.ok(rule);
  const text = exemptionLines(rule, 'domain').join('\n');
  assert.doesNotMatch(text, /no effect yet|does not use DANE/);
  assert.match(text, /^note {5}exempt=dane: .*TLSA records are not looked up.*judged as without DANE/m);
});

test('POL-3/POL-4: explain relay:<host> says that exempt=dane has nothing to exempt on a relay hop (DANE applies to MX hosts only)', () => {
  const rule = table.forRelay('relay:smtp.isp.example');
  assert.ok(rule);
  const lines = formatRelayExplanation({
    key: 'relay:smtp.isp.example',
    table,
    rule,
    ratchet: { kind: 'none' },
    requirement: { domain: '', ratchet: false, relayKey: 'relay:smtp.isp.example' },
    required: SecLevel.TLS_SECURE,
    settings: { authMinLevel: SecLevel.TLS_SECURE, smartHostRatchet: false },
  });
  const text = lines.join('\n');
  assert.doesNotMatch(text, /no effect yet|does not use DANE/);
  assert.match(
    text,
    /^note {5}exempt=dane: nothing to exempt on a relay hop: DANE applies to a recipient domain's MX hosts, never to a relay/m,
  );
});

/** `explain DOMAIN`'s report for a plan to a.example's two MX hosts, with what the plan knew of the MX set. */
function report(mxDnssec: boolean): MxReport {
  const plan: DeliveryPlan<EffectivePolicy> = {
    kind: 'deliver',
    destination: { kind: 'domain', aLabel: 'a.example', uLabel: 'a.example' },
    policy: { kind: 'none', reason: 'no policy record (no TXT record)' },
    mxs: [
      { host: 'mx1.a.example', priority: 10, addresses: ['192.0.2.1'] },
      { host: 'mx2.a.example', priority: 20, addresses: ['192.0.2.2'] },
    ],
    implicit: false,
    notes: [],
    testingWouldNotUse: [],
    exemptedWouldNotUse: [],
    state: { domain: 'a.example', ...(mxDnssec ? { mxDnssec: true as const } : {}) },
  };
  const settings = { authMinLevel: SecLevel.TLS_SECURE, smartHostRatchet: false };
  return {
    domain: 'a.example',
    literal: false,
    sts: null,
    plan,
    ratchet: { kind: 'none' },
    onStoreError: 'defer',
    table,
    rule: null,
    requirement: { domain: 'a.example', ratchet: true },
    connection: { recipientDomain: 'a.example', credentials: false, settings, table },
    required: SecLevel.PLAIN,
    dane: { mode: 'on', probe: '.', status: { kind: 'in-effect' }, secure: new Map(), tlsa: new Map() },
  };
}

test('RT-6: explain DOMAIN says whether a REQUIRETLS message could go (MX set authenticated by DNSSEC) or would be returned at once (not authenticated)', () => {
  const secure = formatDomainExplanation(report(true)).join('\n');
  assert.match(secure, /^reqtls {3}every MX host authenticated \(DNSSEC-validated MX RRset\)$/m);
  assert.match(
    secure,
    /^reqtls {3}each must also be TLS_SECURE for its host name \(PKIX or DANE\) and advertise REQUIRETLS after STARTTLS/m,
  );
  assert.doesNotMatch(secure, /returned at once/);
  const insecure = formatDomainExplanation(report(false)).join('\n');
  assert.match(insecure, /^reqtls {3}MX set not authenticated \(.*\): a REQUIRETLS message would be returned at once \(5\.7\.10, RT-3\)$/m);
});
