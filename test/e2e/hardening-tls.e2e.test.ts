/**
 * End-to-end hardening tests: each attack seen against outbound_tls/outbound_mx
 * becomes a test through a real Haraka (design §4: TLS-6, TLS-7, TLS-8).
 * Hostile MXs and relays are scripted with test/fixtures/hostile-smtp.ts; the
 * tests' DNS server points MX records at them, an HTTPS policy server serves
 * MTA-STS policies, the STARTTLS stripper plays the man in the middle.
 *
 * Haraka instances: `haraka` (outbound_tls + outbound_mx, MTA-STS on) for
 * TLS-7 and the injection tests; `relayHaraka` (outbound_tls +
 * haraka-static-route with credentials) for TLS-8; one-off instances where a
 * setting or plugin differs (auth_min_level, haraka-breaker, tls.ini).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FileRatchetStore } from '#lib/ratchet/file-store';
import { SecLevel } from '#lib/sec-level';
import { TestDnsServer } from '../fixtures/dns-server';
import {
  HarakaInstance,
  PLUGIN_PACKAGES,
  describeOutcome,
  firstOutcome,
  mtaStsHarakaOptions,
  type HarakaOptions,
  type RecordedEvent,
} from '../fixtures/haraka-instance';
import { HostileSmtp, type HostileSmtpOptions } from '../fixtures/hostile-smtp';
import { PolicyServer, policyText } from '../fixtures/policy-server';
import { SmtpSink, startSinksOnCommonPort } from '../fixtures/smtp-sink';
import { StarttlsStripper } from '../fixtures/starttls-stripper';
import { TestCa } from '../fixtures/test-ca';

const POLICY_HOST = '127.0.7.60';

/** TLS-7: hostile MXs that fail before the decision; each is `mx.<name>.test`. */
const PRE_DECISION: Record<string, { address: string; script: Partial<HostileSmtpOptions>; reason: RegExp }> = {
  h554: { address: '127.0.7.1', script: { greeting: '554 5.7.1 go away' }, reason: /554.*go away|go away.*554/ },
  h550: {
    address: '127.0.7.2',
    script: { ehloReply: '550 5.7.1 no EHLO for you', heloReply: '550 5.7.1 no HELO either' },
    reason: /550/,
  },
  hhello: { address: '127.0.7.3', script: { greeting: 'HELLO THERE' }, reason: /HELLO THERE/ },
};
const GREET421 = { address: '127.0.7.4', host: 'mx.h421.test' };
const GOOD_SECOND = { address: '127.0.7.5', host: 'mx2.greet421.test' };
/** TLS-7: bytes injected without a line end after the 220 to STARTTLS. */
const INJECT: Record<string, { address: string; inject: string }> = {
  injxyz: { address: '127.0.7.10', inject: 'XYZ' },
  inj250: { address: '127.0.7.11', inject: '250 injected' },
};
/** TLS-8: smart hosts. */
const RELAY = { address: '127.0.7.30', host: 'relay.smarthost.test' };
const STRIPPER_ADDRESS = '127.0.7.31';
const RELAY_REFUSE = { address: '127.0.7.32', host: 'relay-refuse.smarthost.test' };
const RELAY_SELF = { address: '127.0.7.33', host: 'relay-self.smarthost.test' };
const CREDENTIALS = { auth_user: 'smarthost-user', auth_pass: 'smarthost-secret' };
/** TLS-6 */
const STS_CACHED = { address: '127.0.7.40', host: 'mx.sts-cached.test', domain: 'sts-cached.test' };
const LITERAL_ADDRESS = '127.0.7.41';
const REJECT_UNAUTHORIZED = { address: '127.0.7.20', host: 'mx.rejunauth.test', domain: 'rejunauth.test' };

let ca: TestCa;
let dns: TestDnsServer;
let policies: PolicyServer;
let mxPort: number;
let haraka: HarakaInstance;
let relayHaraka: HarakaInstance;
let routesFile: string;
let relay: SmtpSink;
let relaySelf: SmtpSink;
let relayRefuse: HostileSmtp;
let stripper: StarttlsStripper;
let secondMx: SmtpSink;
let stsCachedSink: SmtpSink;
let rejectSink: SmtpSink;
const hostile = new Map<string, HostileSmtp>();
const stoppers: Array<() => Promise<void>> = [];

function server(name: string): HostileSmtp {
  const found = hostile.get(name);
  if (!found) throw new Error(`no hostile server ${name}`);
  return found;
}

/** The file ratchet store of an instance (or of an instance directory). */
function store(where: HarakaInstance | string): FileRatchetStore {
  return new FileRatchetStore(path.join(typeof where === 'string' ? where : where.dir, 'data', 'ratchet'));
}

/** The stored level's name, 'none', 'unreadable', or the error a read threw. */
async function storedLevel(where: HarakaInstance | string, key: string): Promise<string> {
  try {
    const read = await store(where).get(key);
    return read.kind === 'level' ? SecLevel[read.entry.level] : read.kind;
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

function pointMx(domain: string, ...targets: Array<[number, string, string]>): void {
  dns.clear(domain);
  for (const [preference, host, address] of targets) {
    dns.add(domain, { type: 'MX', preference, exchange: host });
    dns.set(host, [{ type: 'A', address }]);
  }
}

async function publishEnforce(domain: string, mx: string[]): Promise<void> {
  dns.set(`_mta-sts.${domain}`, [{ type: 'TXT', data: 'v=STSv1; id=hardening1' }]);
  dns.set(`mta-sts.${domain}`, [{ type: 'A', address: POLICY_HOST }]);
  await policies.set(domain, { kind: 'serve', body: policyText({ mode: 'enforce', maxAge: 86400, mx }) });
}

/** Options of a Haraka with outbound_tls + outbound_mx, MTA-STS fetched from the tests' policy server. */
function mxHarakaOptions(extra: Partial<HarakaOptions> = {}): HarakaOptions {
  return mtaStsHarakaOptions({ dnsServer: dns.address, mxPort, caCertPath: ca.caCertPath, policyPort: policies.port }, extra);
}

/** Options of a Haraka whose routes come from haraka-static-route (smart hosts with credentials). */
function relayHarakaOptions(extra: Partial<HarakaOptions> = {}): HarakaOptions {
  return {
    dnsServer: dns.address,
    mxPort,
    plugins: ['outbound_tls', 'haraka-static-route'],
    extraCa: ca.caCertPath,
    env: { HARAKA_STATIC_ROUTES: routesFile },
    ...extra,
  };
}

/** Runs `body` with an extra Haraka, always stopped. */
async function withHaraka(options: HarakaOptions, body: (instance: HarakaInstance) => Promise<void>): Promise<void> {
  const instance = await HarakaInstance.start(options);
  try {
    await body(instance);
  } finally {
    await instance.stop();
  }
}

function bounces(instance: HarakaInstance, domain: string): RecordedEvent[] {
  return instance.events().filter((e) => e.event === 'bounce' && e.domain === domain);
}

/** outbound_tls.ini as the repository ships it, with `key=value` set in [main] (replacing the shipped value). */
function outboundTlsIniWith(key: string, value: string): string {
  const shipped = fs.readFileSync(path.join(PLUGIN_PACKAGES.outbound_tls as string, 'config', 'outbound_tls.ini'), 'utf8');
  assert.match(shipped, /^\[main\]$/m, 'config/outbound_tls.ini has a [main] section');
  const without = shipped.replace(new RegExp(`^\\s*${key}\\s*=.*$`, 'gm'), '');
  return without.replace(/^\[main\]$/m, `[main]\n${key}=${value}`);
}

before(async () => {
  ca = await TestCa.create();
  dns = await TestDnsServer.start();
  policies = await PolicyServer.start({ ca, host: POLICY_HOST });

  // Normal sinks first: they choose the common port.
  const sinks = await startSinksOnCommonPort([
    { host: GOOD_SECOND.address, tls: await ca.issue({ dnsNames: [GOOD_SECOND.host] }), name: GOOD_SECOND.host },
    { host: RELAY.address, tls: await ca.issue({ dnsNames: [RELAY.host] }), name: RELAY.host, auth: true },
    { host: RELAY_SELF.address, tls: await ca.selfSigned({ dnsNames: [RELAY_SELF.host] }), name: RELAY_SELF.host, auth: true },
    { host: STS_CACHED.address, tls: await ca.issue({ dnsNames: [STS_CACHED.host] }), name: STS_CACHED.host },
    {
      host: REJECT_UNAUTHORIZED.address,
      tls: await ca.selfSigned({ dnsNames: [REJECT_UNAUTHORIZED.host] }),
      name: REJECT_UNAUTHORIZED.host,
    },
    { host: LITERAL_ADDRESS, tls: 'none', name: 'literal.test' },
  ]);
  for (const s of sinks) stoppers.push(() => s.stop());
  [secondMx, relay, relaySelf, stsCachedSink, rejectSink] = sinks as [SmtpSink, SmtpSink, SmtpSink, SmtpSink, SmtpSink];
  mxPort = secondMx.port;

  const startHostile = async (name: string, o: Omit<HostileSmtpOptions, 'port'>): Promise<HostileSmtp> => {
    const s = await HostileSmtp.start({ ...o, port: mxPort });
    stoppers.push(() => s.stop());
    hostile.set(name, s);
    return s;
  };
  for (const [name, spec] of Object.entries(PRE_DECISION)) {
    await startHostile(name, { host: spec.address, name: `mx.${name}.test`, ...spec.script });
  }
  await startHostile('h421', { host: GREET421.address, name: GREET421.host, greeting: '421 4.3.2 busy, try later' });
  for (const [name, spec] of Object.entries(INJECT)) {
    const host = `mx.${name}.test`;
    await startHostile(name, { host: spec.address, name: host, tls: await ca.issue({ dnsNames: [host] }), inject: spec.inject });
  }
  relayRefuse = await startHostile('relayRefuse', {
    host: RELAY_REFUSE.address,
    name: RELAY_REFUSE.host,
    tls: await ca.issue({ dnsNames: [RELAY_REFUSE.host] }),
    starttls: 'refuse',
    auth: true,
  });
  stripper = await StarttlsStripper.start({ host: STRIPPER_ADDRESS, port: mxPort, upstreamHost: RELAY.address, upstreamPort: mxPort });
  stoppers.push(() => stripper.stop());

  routesFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hardening-routes-')), 'routes.json');
  const route = (exchange: string, host: string) => ({ exchange, port: mxPort, host, ...CREDENTIALS });
  fs.writeFileSync(
    routesFile,
    JSON.stringify({
      'stripped.test': route(STRIPPER_ADDRESS, RELAY.host),
      'refused.test': route(RELAY_REFUSE.address, RELAY_REFUSE.host),
      'direct.test': route(RELAY.address, RELAY.host),
      'selfsigned-relay.test': route(RELAY_SELF.address, RELAY_SELF.host),
      'selfsigned-relay2.test': route(RELAY_SELF.address, RELAY_SELF.host),
    }),
  );

  [haraka, relayHaraka] = await Promise.all([HarakaInstance.start(mxHarakaOptions()), HarakaInstance.start(relayHarakaOptions())]);
});

after(async () => {
  await haraka?.stop();
  await relayHaraka?.stop();
  for (const stop of stoppers) await stop();
  await policies?.stop();
  await dns?.stop();
  await ca?.cleanup();
  if (routesFile) fs.rmSync(path.dirname(routesFile), { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// TLS-8: credentials

test('TLS-8: a STARTTLS-stripped relay gets no AUTH and no MAIL FROM, even for a recipient domain with no stored level: deferred naming the relay and TLS_SECURE', async () => {
  assert.equal(await storedLevel(relayHaraka, 'stripped.test'), 'none');
  await relayHaraka.send({ to: 'user@stripped.test' });
  const outcome = await firstOutcome(relayHaraka, 'stripped.test');
  assert.ok(stripper.stripped >= 1, 'the stripper removed STARTTLS');
  assert.deepEqual(
    relay.events.filter((e) => e.kind === 'auth').map((e) => `${e.value} secure=${e.secure}`),
    [],
    'the relay saw AUTH: the credentials went out in clear through the stripper',
  );
  assert.equal(relay.count('mailfrom'), 0, 'no MAIL FROM through the stripper');
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.match(String(outcome.err), /relay\.smarthost\.test/);
  assert.match(String(outcome.err), /TLS_SECURE/);
  assert.equal(bounces(relayHaraka, 'stripped.test').length, 0);
});

test('TLS-8/TLS-3: a relay that refuses STARTTLS gets no plain retry when the connection carries credentials: one connection per attempt, no AUTH', async () => {
  await relayHaraka.send({ to: 'user@refused.test' });
  const outcome = await firstOutcome(relayHaraka, 'refused.test');
  assert.deepEqual(
    relayRefuse.events.filter((e) => e.kind === 'auth').map((e) => `${e.value} secure=${e.secure}`),
    [],
    'the relay saw AUTH (the TLS-3 plain retry copied the credentials)',
  );
  assert.equal(relayRefuse.count('mailfrom'), 0);
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  const second = await relayHaraka.waitForEvent(
    (e) => e.event === 'deferred' && e.domain === 'refused.test' && (e.attempts ?? 0) >= 2,
    20000,
    'a second deferral for refused.test',
  );
  const deferrals = relayHaraka.events().filter((e) => e.event === 'deferred' && e.domain === 'refused.test' && e.at <= second.at).length;
  const connects = relayRefuse.events.filter((e) => e.kind === 'connect' && e.at <= second.at).length;
  assert.equal(connects, deferrals, `one connection per delivery attempt (${connects} connections, ${deferrals} deferrals)`);
  assert.equal(relayRefuse.count('auth'), 0);
  assert.equal(bounces(relayHaraka, 'refused.test').length, 0);
});

test('TLS-8: the same relay reached directly: delivered, AUTH inside TLS, and the relay host has its own ratchet key relay:<host> at TLS_SECURE', async () => {
  const authBefore = relay.events.filter((e) => e.kind === 'auth').length;
  await relayHaraka.send({ to: 'user@direct.test' });
  const outcome = await firstOutcome(relayHaraka, 'direct.test');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  const auths = relay.events.filter((e) => e.kind === 'auth').slice(authBefore);
  assert.deepEqual(
    auths.map((e) => `${e.value} secure=${e.secure}`),
    ['smarthost-user secure=true'],
  );
  assert.equal(await storedLevel(relayHaraka, `relay:${RELAY.host}`), 'TLS_SECURE', `ratchet key relay:${RELAY.host}`);
});

test('TLS-8: a relay with a self-signed certificate (TLS_INSECURE) gets no AUTH below auth_min_level (default TLS_SECURE); auth_min_level=TLS_INSECURE lets it through', async () => {
  await relayHaraka.send({ to: 'user@selfsigned-relay.test' });
  const outcome = await firstOutcome(relayHaraka, 'selfsigned-relay.test');
  assert.deepEqual(
    relaySelf.events.filter((e) => e.kind === 'auth').map((e) => `${e.value} secure=${e.secure}`),
    [],
    'credentials sent to a relay whose certificate is not valid (TLS_INSECURE < auth_min_level TLS_SECURE)',
  );
  assert.equal(relaySelf.count('mailfrom'), 0);
  assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
  assert.equal(bounces(relayHaraka, 'selfsigned-relay.test').length, 0);

  await withHaraka(
    relayHarakaOptions({ config: { 'outbound_tls.ini': outboundTlsIniWith('auth_min_level', 'TLS_INSECURE') } }),
    async (local) => {
      const authBefore = relaySelf.events.filter((e) => e.kind === 'auth').length;
      await local.send({ to: 'user@selfsigned-relay2.test' });
      const allowed = await firstOutcome(local, 'selfsigned-relay2.test');
      assert.equal(allowed.event, 'delivered', describeOutcome(allowed));
      assert.deepEqual(
        relaySelf.events
          .filter((e) => e.kind === 'auth')
          .slice(authBefore)
          .map((e) => `${e.value} secure=${e.secure}`),
        ['smarthost-user secure=true'],
      );
    },
  );
});

// ---------------------------------------------------------------------------
// TLS-7: nothing before the decision can fail the message

for (const [requirement, domainOf] of [
  ['a domain whose ratchet is TLS_SECURE', (name: string) => `ratchet-${name}.test`],
  ['an MTA-STS enforce domain', (name: string) => `sts-${name}.test`],
  ['a domain with no stored level and no policy (PLAIN)', (name: string) => `open-${name}.test`],
] as const) {
  test(`TLS-7: for ${requirement}, a 554 greeting, 550 to EHLO and HELO, and a greeting that does not parse each end only the connection: deferred with the reason, never bounced`, async () => {
    for (const name of Object.keys(PRE_DECISION)) {
      const domain = domainOf(name);
      pointMx(domain, [10, `mx.${name}.test`, PRE_DECISION[name]?.address as string]);
      if (domain.startsWith('ratchet-')) await store(haraka).raise(domain, SecLevel.TLS_SECURE, `mx.${name}.test`);
      if (domain.startsWith('sts-')) await publishEnforce(domain, [`mx.${name}.test`]);
    }
    for (const name of Object.keys(PRE_DECISION)) await haraka.send({ to: `user@${domainOf(name)}` });
    const problems: string[] = [];
    for (const [name, spec] of Object.entries(PRE_DECISION)) {
      const domain = domainOf(name);
      const outcome = await firstOutcome(haraka, domain);
      assert.ok(server(name).count('connect') >= 1, `mx.${name}.test was connected to`);
      if (domain.startsWith('sts-')) {
        assert.ok(
          haraka.logLines.some((l) => l.includes(`MTA-STS policy of ${domain}: id hardening1, mode enforce`)),
          `setup: the enforce policy of ${domain} applied`,
        );
      }
      if (outcome.event !== 'deferred') {
        problems.push(`${domain} (mx.${name}.test): ${describeOutcome(outcome)}`);
        continue;
      }
      if (!/^Tried all MXs/.test(String(outcome.err)) || !spec.reason.test(String(outcome.err))) {
        problems.push(`${domain}: deferral reason ${JSON.stringify(outcome.err)} should start "Tried all MXs" and match ${spec.reason}`);
      }
      // Retries must not bounce it either.
      for (const b of bounces(haraka, domain)) problems.push(`${domain} bounced after a deferral: ${b.err}`);
    }
    for (const name of Object.keys(PRE_DECISION)) {
      if (server(name).count('mailfrom') > 0) problems.push(`mx.${name}.test received MAIL FROM`);
    }
    assert.deepEqual(problems, []);
  });
}

test('TLS-7: a 421 greeting on the first MX only ends that connection: delivered through the second MX, never deferred', async () => {
  pointMx('greet421.test', [10, GREET421.host, GREET421.address], [20, GOOD_SECOND.host, GOOD_SECOND.address]);
  await haraka.send({ to: 'user@greet421.test' });
  const outcome = await firstOutcome(haraka, 'greet421.test');
  assert.ok(server('h421').count('connect') >= 1, 'the first MX was tried');
  assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
  assert.equal(outcome.ip, GOOD_SECOND.address);
  assert.equal(secondMx.messages.length, 1);
  assert.equal(server('h421').count('mailfrom'), 0);
});

test('TLS-7: bytes injected without a line end after the 220 to STARTTLS (XYZ, "250 injected") never bounce and never reach MAIL FROM inside that TLS connection', async () => {
  const domains: Array<[string, string]> = [
    ['xyz-secure.test', 'injxyz'],
    ['inj250-secure.test', 'inj250'],
    ['xyz-open.test', 'injxyz'],
    ['inj250-open.test', 'inj250'],
  ];
  for (const [domain, name] of domains) {
    pointMx(domain, [10, `mx.${name}.test`, INJECT[name]?.address as string]);
    if (domain.endsWith('-secure.test')) await store(haraka).raise(domain, SecLevel.TLS_SECURE, `mx.${name}.test`);
  }
  for (const [domain] of domains) await haraka.send({ to: `user@${domain}` });
  const outcomes = new Map<string, RecordedEvent>();
  for (const [domain] of domains) outcomes.set(domain, await firstOutcome(haraka, domain));
  const problems: string[] = [];
  for (const [domain, name] of domains) {
    for (const b of bounces(haraka, domain)) problems.push(`${domain} bounced: ${b.err}`);
    const insideTls = server(name).events.filter((e) => e.kind === 'mailfrom' && e.secure);
    if (insideTls.length > 0) problems.push(`mx.${name}.test (inject ${JSON.stringify(INJECT[name]?.inject)}) got MAIL FROM inside TLS`);
    const outcome = outcomes.get(domain) as RecordedEvent;
    if (domain.endsWith('-secure.test') && outcome.event !== 'deferred' && outcome.event !== 'bounce') {
      problems.push(`${domain} (stored TLS_SECURE): ${describeOutcome(outcome)}, expected deferred`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(
    haraka.logLines.some((l) => /STARTTLS/.test(l) && /bytes|after the/i.test(l) && /mx\.inj(xyz|250)\.test/.test(l)),
    'a log line says bytes followed the STARTTLS reply',
  );
});

// ---------------------------------------------------------------------------
// TLS-6: fail closed, settings that defeat classification

test('TLS-6: with the guard unable to install, a domain with a cached MTA-STS enforce policy and an address literal with a stored level are deferred, not delivered', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haraka-e2e-breaker-'));
  try {
    // First a working Haraka caches the enforce policy (and delivers); then the level it raised is reset.
    await publishEnforce(STS_CACHED.domain, [STS_CACHED.host]);
    pointMx(STS_CACHED.domain, [10, STS_CACHED.host, STS_CACHED.address]);
    await withHaraka(mxHarakaOptions({ dir }), async (first) => {
      await first.send({ to: `user@${STS_CACHED.domain}` });
      const cached = await firstOutcome(first, STS_CACHED.domain);
      assert.equal(cached.event, 'delivered', `setup: ${describeOutcome(cached)}`);
      assert.ok(
        first.logLines.some((l) => /MTA-STS policy of sts-cached\.test/.test(l)),
        'setup: the policy was used',
      );
    });
    await store(dir).reset(STS_CACHED.domain);
    assert.equal(await storedLevel(dir, STS_CACHED.domain), 'none');
    const literalKey = `[${LITERAL_ADDRESS}]`;
    await store(dir).raise(literalKey, SecLevel.TLS_INSECURE);
    const delivered = stsCachedSink.messages.length;

    await withHaraka(mxHarakaOptions({ dir, plugins: ['haraka-breaker', 'outbound_tls', 'outbound_mx'] }), async (broken) => {
      await broken.waitForLog(/cannot guard outbound connections/);
      const since = Date.now();
      await broken.send({ to: `user@${STS_CACHED.domain}` });
      await broken.sendRaw('sender@sender.test', [`user@${literalKey}`]);
      const sts = await firstOutcome(broken, STS_CACHED.domain, since);
      const literal = await firstOutcome(broken, literalKey, since);
      const problems: string[] = [];
      if (sts.event !== 'deferred') problems.push(`${STS_CACHED.domain} (cached enforce policy): ${describeOutcome(sts)}`);
      if (stsCachedSink.messages.length !== delivered) problems.push(`${STS_CACHED.host} received the message without the guard`);
      if (!broken.logLines.some((l) => /guard/i.test(l) && l.includes(STS_CACHED.domain) && /enforce/i.test(l))) {
        problems.push(`no log line says the guard cannot be installed and ${STS_CACHED.domain} has an enforce policy`);
      }
      if (literal.event !== 'deferred') problems.push(`${literalKey} (stored TLS_INSECURE): ${describeOutcome(literal)}`);
      assert.deepEqual(problems, []);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS-6: with the guard unable to install, an MTA-STS enforce policy fetched at delivery time (never cached before) defers the message too', async () => {
  const domain = 'sts-live.test';
  await publishEnforce(domain, [STS_CACHED.host]);
  pointMx(domain, [10, STS_CACHED.host, STS_CACHED.address]);
  const delivered = stsCachedSink.messages.length;
  await withHaraka(mxHarakaOptions({ plugins: ['haraka-breaker', 'outbound_tls', 'outbound_mx'] }), async (broken) => {
    await broken.waitForLog(/cannot guard outbound connections/);
    await broken.send({ to: `user@${domain}` });
    const outcome = await firstOutcome(broken, domain);
    assert.equal(outcome.event, 'deferred', describeOutcome(outcome));
    assert.ok(broken.logLines.some((l) => /cannot guard connections .*sts-live\.test has an MTA-STS enforce policy/.test(l)));
    assert.equal(stsCachedSink.messages.length, delivered, 'nothing delivered without the guard');
  });
});

test('TLS-6: rejectUnauthorized=true in tls.ini [main] is overridden for outbound connections: a self-signed MX is reached over TLS in one connection, classified TLS_INSECURE, and the override is logged', async () => {
  pointMx(REJECT_UNAUTHORIZED.domain, [10, REJECT_UNAUTHORIZED.host, REJECT_UNAUTHORIZED.address]);
  await withHaraka(mxHarakaOptions({ config: { 'tls.ini': '[main]\nrejectUnauthorized=true\n' } }), async (local) => {
    await local.send({ to: `user@${REJECT_UNAUTHORIZED.domain}` });
    const outcome = await firstOutcome(local, REJECT_UNAUTHORIZED.domain);
    assert.equal(outcome.event, 'delivered', describeOutcome(outcome));
    const sink = rejectSink;
    assert.deepEqual(
      sink.messages.map((m) => `secure=${m.secure}`),
      ['secure=true'],
      'the message went over TLS, not through a plain retry',
    );
    assert.equal(sink.count('connect'), 1, 'exactly one connection');
    assert.equal(await storedLevel(local, REJECT_UNAUTHORIZED.domain), 'TLS_INSECURE');
    assert.ok(
      local.logLines.some((l) => /rejectUnauthorized/.test(l) && /outbound/i.test(l)),
      'a startup line says rejectUnauthorized is overridden for outbound connections',
    );
  });
});
