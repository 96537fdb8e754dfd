/**
 * End-to-end tests of the admin policy table (design §10: POL-1 … POL-4, TLS-8)
 * through a real Haraka: the tests' DNS server points MX records at SMTP sinks
 * on loopback (valid, self-signed and no STARTTLS), an HTTPS policy server
 * serves MTA-STS policies, and the table is config/outbound_tls_policy of each
 * instance, edited while Haraka runs. Each rule's effect is shown beside a
 * control destination without the rule.
 *
 * Haraka instances: `haraka` (outbound_tls + outbound_mx, metrics on) and
 * `relayHaraka` (outbound_tls + haraka-static-route: smart-host routes with
 * credentials, POL-4).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { parsePolicyTable } from '#lib/policy-table/table';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import {
  CLI_PATH,
  HarakaInstance,
  PLUGIN_PACKAGES,
  describeOutcome,
  firstOutcome,
  mtaStsHarakaOptions,
  sleep,
  type HarakaOptions,
  type RecordedEvent,
} from '../fixtures/haraka-instance';
import { PolicyServer } from '../fixtures/policy-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { TestCa } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.11.60';
const VALID = { address: '127.0.11.1', host: 'mx.valid.test' };
const SELF = { address: '127.0.11.2', host: 'mx.self.test' };
const PLAIN = { address: '127.0.11.3', host: 'mx.plain.test' };
const NOMATCH = { address: '127.0.11.4', host: 'mx.nomatch.test' };
const RELAY_SELF = { address: '127.0.11.5', host: 'relay-self.isp.test' };
const RELAY_PLAIN = { address: '127.0.11.6', host: 'relay-plain.isp.test' };
const CREDENTIALS = { auth_user: 'table-user', auth_pass: 'table-secret' };

/** The table `haraka` starts with; the edit test appends to it. */
const TABLE = [
  "# the tests' policy table",
  'verify.test          verify',
  'verifyself.test      verify',
  'exempt-ratchet.test  may exempt=ratchet',
  'exempt-sts.test      may exempt=mta-sts',
  '.parent.test         verify',
  'pinned.test          verify match=mx.valid.test',
];
const RELAY_TABLE = ['relay:relay-self.isp.test   may auth_min_level=encrypt', 'relay:relay-plain.isp.test  may auth_min_level=encrypt'];

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let mxPort: number;
let haraka: HarakaInstance;
let relayHaraka: HarakaInstance;
let routesDir: string;
let valid: SmtpSink;
let self: SmtpSink;
let plain: SmtpSink;
let nomatch: SmtpSink;
let relaySelf: SmtpSink;
let relayPlain: SmtpSink;
const sinks: SmtpSink[] = [];

function pointMx(domain: string, ...targets: Array<{ address: string; host: string }>): void {
  dns.clear(domain);
  targets.forEach(({ host, address }, i) => {
    dns.add(domain, { type: 'MX', preference: 10 * (i + 1), exchange: host });
    dns.set(host, [{ type: 'A', address }]);
  });
}

async function publishEnforce(domain: string, mx: string[]): Promise<void> {
  await policies.publish(dns, domain, { id: 'table1', mode: 'enforce', mx });
}

function store(instance: HarakaInstance): FileRatchetStore {
  return new FileRatchetStore(path.join(instance.dir, 'data', 'ratchet'));
}

async function storedLevel(instance: HarakaInstance, key: string): Promise<string> {
  const read = await store(instance).get(key);
  return read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
}

/** The first outcome for `domain` at or after `since`, asserted to be `expected`. */
async function expectOutcome(
  instance: HarakaInstance,
  domain: string,
  expected: RecordedEvent['event'],
  since = 0,
): Promise<RecordedEvent> {
  const outcome = await firstOutcome(instance, domain, since);
  assert.equal(outcome.event, expected, `${domain}: ${describeOutcome(outcome)}`);
  return outcome;
}

/** Messages a sink received for `domain`. */
function received(sink: SmtpSink, domain: string): Array<{ secure: boolean }> {
  return sink.messages.filter((m) => m.to.some((to) => to.endsWith(`@${domain}`)));
}

/** A counter of the instance's Prometheus exposition. */
async function metric(instance: HarakaInstance, series: string): Promise<number> {
  const line = await instance.waitForLog(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
  const text = await (await fetch(/http:\/\/127\.0\.0\.1:\d+\/metrics/.exec(line)?.[0] as string)).text();
  const escaped = series.replace(/[{}".]/g, (c) => `\\${c}`);
  const found = new RegExp(`^${escaped} (\\d+)$`, 'm').exec(text);
  assert.ok(found, `${series} in the exposition:\n${text}`);
  return Number(found[1]);
}

/**
 * Rewrites (null: deletes) the instance's table and waits until Haraka logged its reload
 * (haraka-config waits ~5 s for writes to settle).
 */
async function rewriteTable(
  instance: HarakaInstance,
  content: string | Buffer | null,
  logged = /outbound_tls_policy reloaded/,
): Promise<void> {
  const before = instance.logLines.filter((l) => logged.test(l)).length;
  const file = path.join(instance.dir, 'config', 'outbound_tls_policy');
  if (content === null) fs.rmSync(file);
  else fs.writeFileSync(file, content);
  const deadline = Date.now() + 30000;
  while (instance.logLines.filter((l) => logged.test(l)).length <= before) {
    if (Date.now() > deadline) throw new Error(`no ${logged} after the table edit:\n${instance.logLines.slice(-20).join('\n')}`);
    await sleep(100);
  }
}

const cliRun = promisify(execFile);

/** The CLI against an instance's config directory (a non-zero status is returned, not thrown). */
async function cli(instance: HarakaInstance, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await cliRun(process.execPath, [CLI_PATH, '--config', path.join(instance.dir, 'config'), ...args], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caCertPath },
      timeout: 30000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });
  const started = await startSinksOnCommonPort([
    { host: VALID.address, tls: await ca.issue({ dnsNames: [VALID.host] }), name: VALID.host },
    { host: SELF.address, tls: await ca.selfSigned({ dnsNames: [SELF.host] }), name: SELF.host },
    { host: PLAIN.address, tls: 'none', name: PLAIN.host },
    { host: NOMATCH.address, tls: await ca.issue({ dnsNames: [NOMATCH.host] }), name: NOMATCH.host },
    { host: RELAY_SELF.address, tls: await ca.selfSigned({ dnsNames: [RELAY_SELF.host] }), name: RELAY_SELF.host, auth: true },
    { host: RELAY_PLAIN.address, tls: 'none', name: RELAY_PLAIN.host, auth: true },
  ]);
  sinks.push(...started);
  [valid, self, plain, nomatch, relaySelf, relayPlain] = started as [SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink];
  mxPort = valid.port;

  routesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-table-routes-'));
  const routesFile = path.join(routesDir, 'routes.json');
  const route = (relay: { address: string; host: string }, host = relay.host) => ({
    exchange: relay.address,
    port: mxPort,
    host,
    ...CREDENTIALS,
  });
  fs.writeFileSync(
    routesFile,
    JSON.stringify({
      'selfrelay.test': route(RELAY_SELF),
      'plainrelay.test': route(RELAY_PLAIN),
      // The same self-signed relay under a host name the table has no rule for: outbound_tls.ini's auth_min_level applies.
      'norule-relay.test': route(RELAY_SELF, 'relay-other.isp.test'),
    }),
  );
  const common: HarakaOptions = { dnsServer: dns.address, mxPort, extraCa: ca.caCertPath };
  [haraka, relayHaraka] = await Promise.all([
    HarakaInstance.start(
      mtaStsHarakaOptions(
        { dnsServer: dns.address, mxPort, caCertPath: ca.caCertPath, policyPort: policies.port },
        {
          config: { 'outbound_tls.ini': '[metrics]\nlisten=127.0.0.1:0\n', outbound_tls_policy: TABLE.join('\n') },
        },
      ),
    ),
    HarakaInstance.start({
      ...common,
      plugins: ['outbound_tls', 'haraka-static-route'],
      env: { HARAKA_STATIC_ROUTES: routesFile },
      config: { outbound_tls_policy: RELAY_TABLE.join('\n') },
    }),
  ]);
});

after(async () => {
  await haraka?.stop();
  await relayHaraka?.stop();
  for (const sink of sinks) await sink.stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
  if (routesDir) fs.rmSync(routesDir, { recursive: true, force: true });
});

test('POL-1: the packaged template is comments only: no rules, nothing reported', () => {
  const text = fs.readFileSync(path.join(PLUGIN_PACKAGES.outbound_tls as string, 'config', 'outbound_tls_policy'), 'utf8');
  const table = parsePolicyTable(text, 'outbound_tls_policy');
  assert.deepEqual([table.rules.length, table.problems.length], [0, 0]);
  assert.ok(
    haraka.logLines.some((l) =>
      /outbound_tls_policy: policy table: 6 rules in force \(5 domain, 1 subdomains, 0 relay\), 0 lines ignored/.test(l),
    ),
  );
});

test('POL-1/POL-2: verify on a domain with no other signal refuses a self-signed MX and uses a valid one; without the rule the self-signed MX gets the mail', async () => {
  pointMx('verify.test', SELF, VALID);
  pointMx('verifyself.test', SELF);
  pointMx('norule.test', SELF, VALID);
  await haraka.send({ to: 'user@verify.test' });
  await haraka.send({ to: 'user@verifyself.test' });
  await haraka.send({ to: 'user@norule.test' });

  const verified = await expectOutcome(haraka, 'verify.test', 'delivered');
  assert.equal(verified.ip, VALID.address);
  assert.equal(received(valid, 'verify.test').length, 1);
  assert.equal(received(self, 'verify.test').length, 0, 'the self-signed MX got no message');
  assert.ok(
    haraka.logLines.some((l) =>
      /verify\.test: mx\.self\.test \[127\.0\.11\.2\] offers TLS_INSECURE .*required TLS_SECURE \(policy table rule verify\.test \(config\/outbound_tls_policy line 2\)\)/.test(
        l,
      ),
    ),
    'the refusal names the rule, its file and line',
  );

  const refused = await expectOutcome(haraka, 'verifyself.test', 'deferred');
  assert.match(String(refused.err), /policy table rule verifyself\.test \(config\/outbound_tls_policy line 3\)/);
  assert.equal(received(self, 'verifyself.test').length, 0);
  assert.equal(self.events.filter((e) => e.kind === 'rcpt' && e.value?.endsWith('@verifyself.test')).length, 0, 'no envelope for it');

  const control = await expectOutcome(haraka, 'norule.test', 'delivered');
  assert.equal(control.ip, SELF.address, 'without a rule the first MX (self-signed, TLS_INSECURE) is good enough');
});

test('POL-1: verify match= pins the certificate names: an MX with a valid certificate for its own name but not the pinned one is refused', async () => {
  pointMx('pinned.test', NOMATCH, VALID);
  await haraka.send({ to: 'user@pinned.test' });
  const pinned = await expectOutcome(haraka, 'pinned.test', 'delivered');
  assert.equal(pinned.ip, VALID.address);
  assert.equal(received(nomatch, 'pinned.test').length, 0);
  assert.ok(
    haraka.logLines.some((l) =>
      /pinned\.test: mx\.nomatch\.test \[127\.0\.11\.4\] offers TLS_SECURE \(certificate valid for mx\.nomatch\.test\), required a certificate for mx\.valid\.test \(match=\): certificate carries none of mx\.valid\.test/.test(
        l,
      ),
    ),
    'the refusal says which names were required',
  );
});

test('POL-2: exempt=ratchet lets a domain stored at TLS_SECURE go to a PLAIN MX, counted and logged; the stored level is not lowered; without the rule it waits', async () => {
  pointMx('exempt-ratchet.test', PLAIN);
  pointMx('ratchet-control.test', PLAIN);
  await store(haraka).raise('exempt-ratchet.test', SecLevel.TLS_SECURE, VALID.host);
  await store(haraka).raise('ratchet-control.test', SecLevel.TLS_SECURE, VALID.host);
  const before = await metric(haraka, 'outbound_tls_policy_exemptions_total{exemption="ratchet"}');
  await haraka.send({ to: 'user@exempt-ratchet.test' });
  await haraka.send({ to: 'user@ratchet-control.test' });

  await expectOutcome(haraka, 'exempt-ratchet.test', 'delivered');
  assert.deepEqual(
    received(plain, 'exempt-ratchet.test').map((m) => m.secure),
    [false],
  );
  assert.equal(await metric(haraka, 'outbound_tls_policy_exemptions_total{exemption="ratchet"}'), before + 1);
  assert.ok(
    haraka.logLines.some((l) =>
      /exempt-ratchet\.test via mx\.plain\.test \[127\.0\.11\.3\]: PLAIN .*passed only by exempt=ratchet of policy table rule exempt-ratchet\.test \(config\/outbound_tls_policy line 4\): stored level TLS_SECURE of exempt-ratchet\.test not required/.test(
        l,
      ),
    ),
    'the exemption use is logged with the rule and what was waived',
  );
  assert.equal(await storedLevel(haraka, 'exempt-ratchet.test'), 'TLS_SECURE', 'an exemption never lowers a stored level');

  const control = await expectOutcome(haraka, 'ratchet-control.test', 'deferred');
  assert.match(String(control.err), /required TLS_SECURE \(ratchet\)/);
  assert.equal(received(plain, 'ratchet-control.test').length, 0);
});

test('POL-2: exempt=mta-sts lets a domain with an MTA-STS enforce policy use an MX the policy does not list, counted and logged; without the rule it waits', async () => {
  for (const domain of ['exempt-sts.test', 'sts-control.test']) {
    await publishEnforce(domain, ['mx.listed.test']);
    pointMx(domain, NOMATCH);
  }
  const before = await metric(haraka, 'outbound_tls_policy_exemptions_total{exemption="mta-sts"}');
  await haraka.send({ to: 'user@exempt-sts.test' });
  await haraka.send({ to: 'user@sts-control.test' });

  const exempted = await expectOutcome(haraka, 'exempt-sts.test', 'delivered');
  assert.equal(exempted.ip, NOMATCH.address);
  assert.equal(received(nomatch, 'exempt-sts.test').length, 1);
  assert.ok(
    haraka.logLines.some((l) => /MTA-STS policy of exempt-sts\.test: id table1, mode enforce/.test(l)),
    'setup: the enforce policy was in effect',
  );
  assert.ok(
    haraka.logLines.some((l) =>
      /MTA-STS enforce of exempt-sts\.test \(policy id table1\) not applied: exempted by exempt-sts\.test \(config\/outbound_tls_policy line 5\); enforce would not use mx\.nomatch\.test/.test(
        l,
      ),
    ),
  );
  assert.ok(
    haraka.logLines.some((l) =>
      /passed only by exempt=mta-sts .*: MTA-STS enforce \(policy id table1, mode enforce\): mx\.nomatch\.test \[127\.0\.11\.4\] is not an MX host the policy lists not required/.test(
        l,
      ),
    ),
  );
  assert.equal(await metric(haraka, 'outbound_tls_policy_exemptions_total{exemption="mta-sts"}'), before + 1);

  await expectOutcome(haraka, 'sts-control.test', 'deferred');
  assert.ok(
    haraka.logLines.some((l) => /temporary failure for sts-control\.test: no MX host matches MTA-STS policy of sts-control\.test/.test(l)),
  );
  assert.equal(received(nomatch, 'sts-control.test').length, 0);
});

test('POL-1: a parent-domain rule (.parent.test verify) matches its subdomains at any depth, not the parent domain itself', async () => {
  for (const domain of ['a.parent.test', 'x.y.parent.test', 'parent.test']) pointMx(domain, SELF);
  for (const domain of ['a.parent.test', 'x.y.parent.test', 'parent.test']) await haraka.send({ to: `user@${domain}` });
  for (const domain of ['a.parent.test', 'x.y.parent.test']) {
    const outcome = await expectOutcome(haraka, domain, 'deferred');
    assert.match(String(outcome.err), /policy table rule \.parent\.test \(config\/outbound_tls_policy line 6\)/);
  }
  await expectOutcome(haraka, 'parent.test', 'delivered');
  assert.equal(received(self, 'parent.test').length, 1);
  assert.equal(received(self, 'a.parent.test').length + received(self, 'x.y.parent.test').length, 0);
});

test('POL-4/TLS-8: a relay route with auth_min_level=encrypt sends AUTH to a self-signed relay, never to a PLAIN one; a relay without a rule keeps auth_min_level=TLS_SECURE', async () => {
  const auths = (sink: SmtpSink): string[] => sink.events.filter((e) => e.kind === 'auth').map((e) => `${e.value} secure=${e.secure}`);
  await relayHaraka.send({ to: 'user@selfrelay.test' });
  await relayHaraka.send({ to: 'user@plainrelay.test' });
  await expectOutcome(relayHaraka, 'selfrelay.test', 'delivered');
  assert.deepEqual(auths(relaySelf), ['table-user secure=true']);
  assert.equal(await storedLevel(relayHaraka, `relay:${RELAY_SELF.host}`), 'TLS_INSECURE');

  const toPlain = await expectOutcome(relayHaraka, 'plainrelay.test', 'deferred');
  assert.match(
    String(toPlain.err),
    /relay-plain\.isp\.test .*offers PLAIN .*credentials require TLS_INSECURE \(auth_min_level\); AUTH not sent/,
  );
  assert.deepEqual(auths(relayPlain), [], 'no credentials in clear');
  assert.equal(relayPlain.count('mailfrom'), 0);

  await relayHaraka.send({ to: 'user@norule-relay.test' });
  const noRule = await expectOutcome(relayHaraka, 'norule-relay.test', 'deferred');
  assert.match(String(noRule.err), /relay-other\.isp\.test .*credentials require TLS_SECURE \(auth_min_level\)/);
  assert.deepEqual(auths(relaySelf), ['table-user secure=true'], 'no second AUTH');
});

test('POL-3: mx show and probe name the rule; explain prints the requirement part by part; table list shows the table', async () => {
  const shown = await cli(haraka, 'mx', 'show', 'exempt-sts.test');
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^rule {5}exempt-sts\.test may exempt=mta-sts \(config\/outbound_tls_policy line 5\)$/m);
  assert.match(shown.stdout, /^mx {7}10 mx\.nomatch\.test \[127\.0\.11\.4\]$/m, 'the exempted policy filters nothing');
  // Delivered through a valid certificate before: the ratchet holds TLS_SECURE.
  assert.match(shown.stdout, /^required TLS_SECURE \(ratchet TLS_SECURE; MTA-STS enforce exempted; table may\)$/m);

  const probed = await cli(haraka, 'probe', '--timeout', '5', 'verifyself.test');
  assert.equal(probed.code, 4, probed.stderr);
  assert.match(probed.stdout, /^rule {5}verifyself\.test verify \(config\/outbound_tls_policy line 3\)$/m);
  assert.match(
    probed.stdout,
    /^mx\.self\.test \[127\.0\.11\.2\]: TLS_INSECURE .*below the requirement: .*required TLS_SECURE \(policy table rule verifyself\.test \(config\/outbound_tls_policy line 3\)\)$/m,
  );
  assert.match(probed.stdout, /^0 of 1 MX hosts meet the requirement \(TLS_SECURE\)$/m);
  const exemptProbe = await cli(haraka, 'probe', '--timeout', '5', 'exempt-ratchet.test');
  assert.equal(exemptProbe.code, 0, exemptProbe.stdout + exemptProbe.stderr);
  assert.match(
    exemptProbe.stdout,
    /^mx\.plain\.test \[127\.0\.11\.3\]: PLAIN .*: meets the requirement; only by exempt=ratchet of policy table rule exempt-ratchet\.test \(config\/outbound_tls_policy line 4\): stored level TLS_SECURE of exempt-ratchet\.test not required$/m,
  );

  const explained = await cli(haraka, 'explain', 'x.y.parent.test');
  assert.equal(explained.code, 0, explained.stderr);
  assert.deepEqual(
    explained.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.slice(0, 9).trim()),
    ['domain', 'rule', 'ratchet', 'mta-sts', 'table', 'required', 'reqtls'],
  );
  assert.match(explained.stdout, /^rule {5}\.parent\.test verify \(config\/outbound_tls_policy line 6\)$/m);
  assert.match(explained.stdout, /^table {4}verify: TLS_SECURE$/m);
  // Its refused connection (TLS_INSECURE) still raised the ratchet.
  assert.match(explained.stdout, /^required TLS_SECURE \(ratchet TLS_INSECURE; table verify\)$/m);

  const ratchet = await cli(haraka, 'explain', 'exempt-ratchet.test');
  assert.match(
    ratchet.stdout,
    /^ratchet {2}TLS_SECURE \(.*\): exempted by exempt-ratchet\.test \(config\/outbound_tls_policy line 4\): read and raised by better connections, not required$/m,
  );
  assert.match(ratchet.stdout, /^exempt {3}ratchet, by exempt-ratchet\.test .*outbound_tls_policy_exemptions_total$/m);
  assert.match(ratchet.stdout, /^required PLAIN \(ratchet TLS_SECURE exempted; table may\)$/m);

  const listed = await cli(haraka, 'table', 'list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^config\/outbound_tls_policy: 6 rules in force, 0 lines ignored$/m);
});

test('TLS-6/POL-2: with the connection guard missing, a table minimum defers the message; a stored level the table exempts does not', async () => {
  const broken = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    extraCa: ca.caCertPath,
    plugins: ['haraka-breaker', 'outbound_tls', 'outbound_mx'],
    config: { outbound_tls_policy: ['unguarded-verify.test verify', 'unguarded-exempt.test may exempt=ratchet'].join('\n') },
  });
  try {
    await broken.waitForLog(/cannot guard outbound connections/);
    pointMx('unguarded-verify.test', VALID);
    pointMx('unguarded-exempt.test', VALID);
    await store(broken).raise('unguarded-exempt.test', SecLevel.TLS_SECURE, VALID.host);
    await broken.send({ to: 'user@unguarded-verify.test' });
    await broken.send({ to: 'user@unguarded-exempt.test' });
    await expectOutcome(broken, 'unguarded-verify.test', 'deferred');
    assert.ok(
      broken.logLines.some((l) =>
        /cannot guard connections .*unguarded-verify\.test requires verify \(policy table rule unguarded-verify\.test \(config\/outbound_tls_policy line 1\)\)/.test(
          l,
        ),
      ),
    );
    assert.equal(received(valid, 'unguarded-verify.test').length, 0, 'nothing delivered without the guard');
    await expectOutcome(broken, 'unguarded-exempt.test', 'delivered');
  } finally {
    await broken.stop();
  }
});

test('POL-1: a table edit while Haraka runs counts at the next delivery; a bad line is reported with file and line and the rest applies; a table that cannot be read keeps the previous one', async () => {
  pointMx('edit.test', SELF);
  await haraka.send({ to: 'user@edit.test' });
  await expectOutcome(haraka, 'edit.test', 'delivered');

  // verify for edit.test: the next message waits.
  await rewriteTable(haraka, [...TABLE, 'edit.test verify'].join('\n'));
  let since = Date.now();
  await haraka.send({ to: 'user@edit.test' });
  const refused = await expectOutcome(haraka, 'edit.test', 'deferred', since);
  assert.match(String(refused.err), /policy table rule edit\.test \(config\/outbound_tls_policy line 8\)/);

  // A file that cannot be read: the running table stays (the message still waits).
  await rewriteTable(haraka, Buffer.from([0x65, 0x64, 0xff, 0x0a]), /outbound_tls_policy not reloaded, keeping the running settings/);
  assert.ok(haraka.logLines.some((l) => /outbound_tls_policy not reloaded, keeping the running settings: .*not valid UTF-8 text/.test(l)));
  since = Date.now();
  await expectOutcome(haraka, 'edit.test', 'deferred', since);

  // encrypt for edit.test, and a bad line: reported with file and line, the rest applies; the queued message goes at its next attempt.
  await rewriteTable(haraka, [...TABLE, 'edit.test encrypt', 'typo.test verfy'].join('\n'));
  assert.ok(
    haraka.logLines.some((l) =>
      /config\/outbound_tls_policy line 9: typo\.test: expected a level \(may, encrypt or verify\) after the destination, found "verfy" \(line not in force; mail to typo\.test waits until it is fixed\)/.test(
        l,
      ),
    ),
  );
  assert.ok(haraka.logLines.some((l) => /outbound_tls_policy reloaded: policy table: 7 rules in force .*1 lines ignored/.test(l)));
  const delivered = await haraka.waitForEvent(
    (e) => e.domain === 'edit.test' && e.event === 'delivered' && e.at >= since,
    20000,
    'the queued edit.test message delivered under encrypt',
  );
  assert.equal(delivered.ip, SELF.address);
  assert.equal(received(self, 'edit.test').length, 2);
  // verifyself.test's rule (line 3) stayed in force through all of it.
  since = Date.now();
  await haraka.send({ to: 'user@verifyself.test' });
  const kept = await expectOutcome(haraka, 'verifyself.test', 'deferred', since);
  assert.match(String(kept.err), /policy table rule verifyself\.test \(config\/outbound_tls_policy line 3\)/);
});

test('POL-1: a table created while Haraka runs (none at startup) counts at the next delivery; deleting it removes every rule', async () => {
  const local = await HarakaInstance.start({
    dnsServer: dns.address,
    mxPort,
    extraCa: ca.caCertPath,
    plugins: ['outbound_tls', 'outbound_mx'],
  });
  try {
    await local.waitForLog(/outbound_tls_policy: policy table: 0 rules in force/);
    pointMx('created.test', SELF);
    await local.send({ to: 'user@created.test' });
    await expectOutcome(local, 'created.test', 'delivered');

    await rewriteTable(local, 'created.test verify\n');
    let since = Date.now();
    await local.send({ to: 'user@created.test' });
    const refused = await expectOutcome(local, 'created.test', 'deferred', since);
    assert.match(String(refused.err), /policy table rule created\.test \(config\/outbound_tls_policy line 1\)/);

    await rewriteTable(local, null, /outbound_tls_policy reloaded: policy table: 0 rules in force/);
    since = Date.now();
    await local.waitForEvent(
      (e) => e.domain === 'created.test' && e.event === 'delivered' && e.at >= since,
      20000,
      'the queued message delivered',
    );
    assert.equal(received(self, 'created.test').length, 2);
  } finally {
    await local.stop();
  }
});
