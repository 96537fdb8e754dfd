import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { DEFAULT_REPORT_LIMITS } from './limits';
import { parseTlsReportingSettings, type TlsReportingConfig } from './settings';

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const files: Record<string, string> = { '/haraka/config/dkim/rsa.pem': rsa, '/haraka/config/dkim/ec.pem': ec, '/haraka/junk.pem': 'junk' };
const readFile = (file: string): string => {
  const text = files[file];
  if (text === undefined) throw new Error(`ENOENT: no such file, open '${file}'`);
  return text;
};
const parse = (section: Record<string, unknown> | undefined): TlsReportingConfig =>
  parseTlsReportingSettings(section, { baseDir: '/haraka', readFile });

function reason(config: TlsReportingConfig): string {
  assert.equal(config.kind, 'misconfigured', JSON.stringify(config));
  return (config as Extract<TlsReportingConfig, { kind: 'misconfigured' }>).reason;
}

test('RPT-3: reporting is off unless enabled', () => {
  assert.deepEqual(parse(undefined), { kind: 'off' });
  assert.deepEqual(parse({ enabled: 'false', sender: 'nonsense' }), { kind: 'off' });
});

test('RPT-3: the defaults, with only a sender', () => {
  const config = parse({ enabled: 'true', sender: 'TLSRPT@Sender.Example' });
  assert.equal(config.kind, 'on');
  assert.deepEqual(config.kind === 'on' && config.settings, {
    identity: {
      sender: 'TLSRPT@sender.example',
      submitter: 'sender.example',
      organization: 'sender.example',
      contact: 'TLSRPT@sender.example',
    },
    dkim: null,
    sendDaysWithoutFailures: true,
    delayWindowMs: 4 * 3_600_000,
    flushIntervalMs: 30_000,
    maxPending: 10_000,
    limits: DEFAULT_REPORT_LIMITS,
  });
});

test('RPT-3: every key read', () => {
  const config = parse({
    enabled: true,
    sender: 'tlsrpt@sender.example',
    organization: 'Example Sender Ltd',
    contact: 'https://sender.example/tls',
    dkim_key_file: 'config/dkim/rsa.pem',
    dkim_selector: 'tls2025',
    send_days_without_failures: 'no',
    delay_window: '600',
    flush_interval: '5',
    max_pending: '500',
  });
  assert.equal(config.kind, 'on');
  if (config.kind !== 'on') return;
  assert.equal(config.settings.identity.organization, 'Example Sender Ltd');
  assert.equal(config.settings.identity.contact, 'https://sender.example/tls');
  assert.deepEqual(config.settings.dkim, {
    keyFile: '/haraka/config/dkim/rsa.pem',
    selector: 'tls2025',
    privateKey: rsa,
    domain: 'sender.example',
  });
  assert.equal(config.settings.sendDaysWithoutFailures, false);
  assert.equal(config.settings.delayWindowMs, 600_000);
  assert.equal(config.settings.flushIntervalMs, 5000);
  assert.equal(config.settings.maxPending, 500);
});

test('RPT-3: no sender, or a bad one, keeps reporting off with the reason', () => {
  assert.match(reason(parse({ enabled: 'yes' })), /\[tlsrpt\] sender is required.*stays off/);
  assert.match(reason(parse({ enabled: 'yes', sender: 'not-an-address' })), /sender=not-an-address: not one mail address/);
});

test('RPT-3: an unreadable or unusable DKIM key keeps reporting off with the reason', () => {
  const base = { enabled: 'yes', sender: 'tlsrpt@sender.example' };
  assert.match(reason(parse({ ...base, dkim_key_file: 'missing.pem', dkim_selector: 's' })), /cannot read \/haraka\/missing\.pem: ENOENT/);
  assert.match(reason(parse({ ...base, dkim_key_file: 'junk.pem', dkim_selector: 's' })), /not a PEM private key/);
  assert.match(
    reason(parse({ ...base, dkim_key_file: 'config/dkim/ec.pem', dkim_selector: 's' })),
    /a ec key; report messages are DKIM-signed with RSA keys/,
  );
  assert.match(reason(parse({ ...base, dkim_key_file: 'config/dkim/rsa.pem' })), /needs dkim_selector/);
  assert.match(reason(parse({ ...base, dkim_selector: 's' })), /needs dkim_key_file/);
  assert.match(reason(parse({ ...base, dkim_key_file: 'config/dkim/rsa.pem', dkim_selector: 'bad selector' })), /not a DNS name/);
});

test('RPT-3: values out of range name the key and value', () => {
  const base = { enabled: 'yes', sender: 'tlsrpt@sender.example' };
  assert.match(reason(parse({ ...base, delay_window: '90000' })), /\[tlsrpt\] delay_window=90000: must be between 0 and 86400/);
  assert.match(reason(parse({ ...base, flush_interval: 'soon' })), /flush_interval=soon: not a whole number/);
  assert.match(reason(parse({ ...base, send_days_without_failures: 'maybe' })), /expected true or false/);
  assert.match(reason(parse({ ...base, organization: 'x'.repeat(300) })), /organization: at most 255/);
});

test('RPT-8, RPT-9: the report limits, their defaults and every key read', () => {
  const base = { enabled: 'yes', sender: 'tlsrpt@sender.example' };
  const defaults = parse(base);
  assert.deepEqual(defaults.kind === 'on' && defaults.settings.limits, {
    maxPolicyStrings: 100,
    maxDomainsRecordedPerDay: 50_000,
    maxPoliciesPerReport: 100,
    maxReportBytes: 1_048_576,
    maxReportAddresses: 2,
    maxDomainsReportedPerDay: 1000,
    httpsPorts: [443],
  });
  const set = parse({
    ...base,
    max_policy_strings: '10',
    max_domains_recorded_per_day: '500',
    max_policies_per_report: '20',
    max_report_bytes: '65536',
    max_report_addresses: '1',
    max_domains_reported_per_day: '50',
    https_ports: '443, 8443',
  });
  assert.deepEqual(set.kind === 'on' && set.settings.limits, {
    maxPolicyStrings: 10,
    maxDomainsRecordedPerDay: 500,
    maxPoliciesPerReport: 20,
    maxReportBytes: 65_536,
    maxReportAddresses: 1,
    maxDomainsReportedPerDay: 50,
    httpsPorts: [443, 8443],
  });
});

test('RPT-8, RPT-9: a report limit out of range names the key and value', () => {
  const base = { enabled: 'yes', sender: 'tlsrpt@sender.example' };
  assert.match(reason(parse({ ...base, max_policy_strings: '600' })), /\[tlsrpt\] max_policy_strings=600: must be between 1 and 520/);
  assert.match(reason(parse({ ...base, max_report_bytes: '20000000' })), /\[tlsrpt\] max_report_bytes=20000000: must be between/);
  assert.match(reason(parse({ ...base, max_report_addresses: '0' })), /\[tlsrpt\] max_report_addresses=0: must be between 1 and 10/);
  assert.match(reason(parse({ ...base, max_policies_per_report: 'many' })), /max_policies_per_report=many: not a whole number/);
  assert.match(reason(parse({ ...base, max_domains_recorded_per_day: '0' })), /max_domains_recorded_per_day=0/);
  assert.match(reason(parse({ ...base, max_domains_reported_per_day: '-1' })), /max_domains_reported_per_day=-1/);
  assert.match(reason(parse({ ...base, https_ports: '443,https' })), /\[tlsrpt\] https_ports=443,https: "https" is not a port/);
  assert.match(reason(parse({ ...base, https_ports: '70000' })), /\[tlsrpt\] https_ports=70000: "70000" is not a port/);
});
