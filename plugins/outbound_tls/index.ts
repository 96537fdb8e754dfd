/**
 * outbound_tls — classifies every outbound connection, enforces the
 * security-level ratchet and MTA-STS enforce before MAIL FROM, and never
 * sends below them (TLS-1 … TLS-6). A thin adapter over lib/connection-guard.
 */
import cluster from 'node:cluster';
import { checkHarakaInternals, installConnectionGuard, type GuardDeps, type HMailPrototype } from '../../lib/connection-guard';
import { getDeliveryState } from '../../lib/delivery-state';
import type { Requirement } from '../../lib/delivery-decision';
import { toALabel } from '../../lib/domain';
import { CONT, DENYSOFT, watchIni, type HMailItem, type HarakaPlugin, type Next } from '../../lib/haraka';
import { metrics, startMetricsServer, type MetricsServer } from '../../lib/metrics';
import { openRatchetStore } from '../../lib/open-stores';
import type { IniFile } from '../../lib/outbound-mx-config';
import { parseOutboundTlsConfig, type OutboundTlsConfig } from '../../lib/outbound-tls-config';
import type { RatchetStore } from '../../lib/ratchet-store';
import { SecLevel, levelName } from '../../lib/sec-level';

interface OutboundTlsPlugin extends HarakaPlugin {
  tlsConfig: OutboundTlsConfig;
  ratchetStore: RatchetStore;
  ratchetStoreKey?: string;
  guardProblem: string | null;
  metricsServer?: MetricsServer;
  load_outbound_tls_ini(): void;
}

function harakaDir(): string {
  return process.env.HARAKA ?? process.cwd();
}

export function register(this: OutboundTlsPlugin): void {
  this.load_outbound_tls_ini();
  warnAboutHarakaTlsSettings(this);

  const hmail = loadHMailPrototype(this);
  this.guardProblem = checkHarakaInternals(hmail);
  if (this.guardProblem || !hmail) {
    this.logcrit(
      `outbound_tls: cannot guard outbound connections: ${this.guardProblem}. Failing closed: mail for domains with a ` +
        `stored security level is deferred until this is fixed (this Haraka version is not supported).`,
    );
  } else {
    installConnectionGuard(hmail, guardDeps(this));
  }
  // Runs before outbound_mx; only acts when the guard could not be installed.
  this.register_hook('get_mx', 'fail_closed_get_mx', -100);

  if (this.tlsConfig.metricsListen && cluster.isPrimary) {
    startMetricsServer(this.tlsConfig.metricsListen).then(
      (server) => {
        this.metricsServer = server;
        this.lognotice(`outbound_tls: metrics on http://${server.address}/metrics`);
      },
      (err: Error) => this.logerror(`outbound_tls: metrics listener on ${this.tlsConfig.metricsListen} failed: ${err.message}`),
    );
  }
}

export function load_outbound_tls_ini(this: OutboundTlsPlugin): void {
  watchIni(this, ['outbound_tls.ini', 'redis.ini'], (ini) => {
    const parsed = parseOutboundTlsConfig(ini['outbound_tls.ini'] as IniFile, harakaDir());
    const previous = this.ratchetStore;
    const storeKey = JSON.stringify([parsed.dataDir, parsed.store]);
    if (!previous || this.ratchetStoreKey !== storeKey) {
      this.ratchetStore = openRatchetStore({
        dataDir: parsed.dataDir,
        store: parsed.store,
        redisIni: ini['redis.ini'] as IniFile,
        log: { info: (m) => this.loginfo(`outbound_tls: ${m}`), error: (m) => this.logerror(`outbound_tls: ${m}`) },
      });
      this.ratchetStoreKey = storeKey;
      if (previous) previous.close().catch(() => undefined);
    }
    this.tlsConfig = parsed;
    this.loginfo(
      `outbound_tls: store ${this.ratchetStore.description}, on_store_error=${parsed.onStoreError}, ` +
        `plain_retry=${parsed.plainRetry}, smart_host_ratchet=${parsed.smartHostRatchet}`,
    );
  });
}

function loadHMailPrototype(plugin: OutboundTlsPlugin): HMailPrototype | undefined {
  try {
    const HMailItem = plugin.haraka_require('outbound/hmail') as { prototype?: HMailPrototype } | undefined;
    return HMailItem?.prototype;
  } catch (err) {
    plugin.logerror(`outbound_tls: cannot load Haraka's outbound/hmail: ${(err as Error).message}`);
    return undefined;
  }
}

/** TLS-6: Haraka's "disable TLS for failed hosts" is the opposite of a ratchet. */
function warnAboutHarakaTlsSettings(plugin: OutboundTlsPlugin): void {
  const tls = plugin.config.get('tls.ini', { booleans: ['-redis.disable_for_failed_hosts'] }) as IniFile;
  const redis = tls.redis ?? {};
  if (redis.disable_for_failed_hosts === true || String(redis.disable_for_failed_hosts) === 'true') {
    plugin.logwarn(
      'outbound_tls: tls.ini [redis] disable_for_failed_hosts=true makes Haraka send in plaintext to hosts whose TLS ' +
        'failed once; outbound_tls will refuse such connections for domains with a stored level. Turn it off.',
    );
  }
}

function requirementFor(plugin: OutboundTlsPlugin, hmail: { todo: { domain: string } }): Requirement | null {
  const state = getDeliveryState(hmail);
  if (state) return { domain: state.domain, ratchet: true, ...(state.sts ? { sts: state.sts } : {}) };
  // Another plugin answered get_mx (a smart-host route): the recipient domain's ratchet still applies.
  if (!plugin.tlsConfig.smartHostRatchet) return null;
  const name = toALabel(String(hmail.todo.domain));
  return name.ok ? { domain: name.aLabel, ratchet: true } : null;
}

function guardDeps(plugin: OutboundTlsPlugin): GuardDeps {
  return {
    store: () => plugin.ratchetStore,
    requirement: (hmail) => requirementFor(plugin, hmail),
    settings: () => ({ plainRetry: plugin.tlsConfig.plainRetry, onStoreError: plugin.tlsConfig.onStoreError }),
    events: {
      connection: (level) => metrics.connections.inc({ level: levelName(level) }),
      tlsFailure: (kind) => metrics.tlsFailures.inc({ kind }),
      plainRetry: () => metrics.plainRetries.inc(),
      ratchet: (result) => metrics.ratchet.inc({ result }),
      abandoned: (cause) => metrics.abandoned.inc({ cause }),
      sts: (mode, result) => metrics.stsChecks.inc({ mode, result }),
    },
  };
}

/** Only when the guard is missing: defer mail for domains that have a requirement. */
export function fail_closed_get_mx(this: OutboundTlsPlugin, next: Next, hmail: HMailItem, domain: string): void {
  if (!this.guardProblem) return next(CONT);
  const name = toALabel(String(domain));
  if (!name.ok) return next(CONT);
  this.ratchetStore.get(name.aLabel).then(
    (read) => {
      if (read.kind === 'none' || (read.kind === 'level' && read.entry.level === SecLevel.PLAIN)) return next(CONT);
      const held = read.kind === 'level' ? levelName(read.entry.level) : 'an unreadable level';
      const reason = `outbound_tls cannot guard connections (${this.guardProblem}); ${name.aLabel} requires ${held}`;
      this.logerror(reason, hmail);
      next(DENYSOFT, reason);
    },
    (err: Error) => {
      this.logerror(`outbound_tls: ratchet store failed for ${name.aLabel}: ${err.message}`, hmail);
      next(DENYSOFT, `outbound_tls cannot guard connections and cannot read the ratchet for ${name.aLabel}`);
    },
  );
}

export function shutdown(this: OutboundTlsPlugin): void {
  this.metricsServer?.close().catch(() => undefined);
  this.ratchetStore?.close().catch(() => undefined);
}
