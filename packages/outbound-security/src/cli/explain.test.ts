/**
 * What `explain` says of exemptions (POL-2, POL-3): the note of each exempted
 * part tells what the plan and the guard do with it, no more, no less.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyTable } from '../policy-table/table';
import { SecLevel } from '../sec-level';
import { exemptionLines, formatRelayExplanation } from './explain';

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
