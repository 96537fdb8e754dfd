import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guardProblem, guardStatus, pluginListProblem, resetGuardStatus, setGuardProblem } from './guard-status';

test('TLS-9: config/plugins without outbound_tls, or with it after outbound_mx, is a problem naming the fix', () => {
  assert.equal(pluginListProblem(['relay', 'outbound_tls', 'outbound_mx']), null);
  assert.equal(pluginListProblem(['haraka-plugin-outbound_tls', 'haraka-plugin-outbound_mx']), null);
  assert.equal(pluginListProblem(['outbound_tls']), null, 'outbound_tls alone (smart-host routes) is fine');
  assert.match(String(pluginListProblem(['relay', 'outbound_mx'])), /outbound_tls is not listed in config\/plugins/);
  assert.match(String(pluginListProblem(['#outbound_tls', 'outbound_mx'])), /not listed/, 'a commented-out line does not count');
  assert.match(String(pluginListProblem(['outbound_mx', 'outbound_tls'])), /listed after outbound_mx/);
  assert.match(String(guardProblem('outbound_tls is not listed in config/plugins')), /above outbound_mx/);
});

test('TLS-9: nothing reported by outbound_tls (not loaded, failed at startup) is a problem; installed is none; its own problem is said as it is', () => {
  resetGuardStatus();
  try {
    assert.deepEqual(guardStatus(), { kind: 'unreported' });
    assert.match(String(guardProblem()), /outbound_tls did not load/);
    setGuardProblem('HMailItem.try_deliver_host_on_socket is missing');
    assert.equal(guardProblem(), 'HMailItem.try_deliver_host_on_socket is missing');
    setGuardProblem(null);
    assert.equal(guardProblem(), null);
    assert.match(String(guardProblem('outbound_tls is listed after outbound_mx in config/plugins')), /listed after/);
  } finally {
    resetGuardStatus();
  }
});
