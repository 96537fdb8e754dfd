import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exposition, setTlsReportStats } from './metrics';

test('RPT-1: the TLS report recorder’s counts are exported when reporting is on, and absent when it is off', async () => {
  setTlsReportStats(() => null);
  assert.doesNotMatch(await exposition(), /outbound_tls_tlsrpt_sessions_total\{state="recorded"\}/);
  setTlsReportStats(() => ({ recorded: 7, dropped: 1, rejected: 2, pending: 3, flushes: 5, failedFlushes: 1 }));
  const text = await exposition();
  assert.match(text, /^outbound_tls_tlsrpt_sessions_total\{state="recorded"\} 7$/m);
  assert.match(text, /^outbound_tls_tlsrpt_sessions_total\{state="dropped"\} 1$/m);
  assert.match(text, /^outbound_tls_tlsrpt_sessions_total\{state="rejected"\} 2$/m);
  assert.match(text, /^outbound_tls_tlsrpt_flushes_total\{result="ok"\} 4$/m);
  assert.match(text, /^outbound_tls_tlsrpt_flushes_total\{result="failed"\} 1$/m);
  setTlsReportStats(() => null);
});

test('RPT-8, RPT-9: what the report limits left out is exported by kind', async () => {
  setTlsReportStats(() => ({
    recorded: 1,
    dropped: 0,
    rejected: 0,
    pending: 0,
    flushes: 0,
    failedFlushes: 0,
    leftOut: {
      policy_strings: 80,
      domains_recorded: 3,
      policies: 2,
      oversize_reports: 1,
      report_addresses: 8,
      domains_reported: 4,
      endpoint_addresses: 5,
      endpoint_ports: 6,
    },
  }));
  const text = await exposition();
  assert.match(text, /^outbound_tls_tlsrpt_left_out_total\{what="policy_strings"\} 80$/m);
  assert.match(text, /^outbound_tls_tlsrpt_left_out_total\{what="oversize_reports"\} 1$/m);
  assert.match(text, /^outbound_tls_tlsrpt_left_out_total\{what="endpoint_addresses"\} 5$/m);
  assert.match(text, /^outbound_tls_tlsrpt_left_out_total\{what="endpoint_ports"\} 6$/m);
  setTlsReportStats(() => null);
  assert.doesNotMatch(await exposition(), /outbound_tls_tlsrpt_left_out_total\{/);
});
