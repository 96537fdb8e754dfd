/**
 * outbound_tls — classifies every outbound connection, enforces the
 * security-level ratchet, MTA-STS enforce and the admin policy table before
 * MAIL FROM, and never sends below them (TLS-1 … TLS-8, POL-1 … POL-4). A thin
 * adapter over the library's connection guard and connection requirement.
 * With `[tlsrpt] enabled=true` it also counts every connection and sends the
 * daily TLS reports (RFC 8460, RPT-1 … RPT-4; see tlsrpt.ts).
 */
import path from 'node:path';
import { publishPluginDocs } from 'haraka-outbound-security/haraka/plugin-docs';
import cluster from 'node:cluster';
import {
  checkHarakaInternals,
  hasCredentials,
  installConnectionGuard,
  mxHostName,
  type GuardDeps,
  type GuardedMx,
  type HMailPrototype,
} from 'haraka-outbound-security/haraka/connection-guard';
import { getDeliveryState } from 'haraka-outbound-security/haraka/delivery-state';
import { capturingIdentity } from 'haraka-outbound-security/haraka/identity-capture';
import { setGuardProblem } from 'haraka-outbound-security/haraka/guard-status';
import { RUNTIME_STATUS_FILE, writeRuntimeStatus } from 'haraka-outbound-security/haraka/runtime-status';
import { failClosedReason, recipientKey } from 'haraka-outbound-security/delivery/fail-closed';
import type { Requirement } from 'haraka-outbound-security/tls/decision';
import { connectionRequirement } from 'haraka-outbound-security/tls/requirement';
import type { PolicyTable } from 'haraka-outbound-security/policy-table/table';
import { CONT, DENYSOFT, type HMailItem, type HarakaPlugin, type Next } from 'haraka-outbound-security/haraka/api';
import { MetricsListener, countDaneWork, metrics } from 'haraka-outbound-security/metrics';
import type { SharedStores } from 'haraka-outbound-security/state/open';
import type { IniFile } from 'haraka-outbound-security/ini';
import type { OutboundTlsConfig } from 'haraka-outbound-security/config/outbound-tls';
import { outboundTlsSettings, policyTableSettings, sharedStores, type SharedSettings } from 'haraka-outbound-security/haraka/settings';
import type { RatchetStore } from 'haraka-outbound-security/ratchet/store';
import { levelName } from 'haraka-outbound-security/sec-level';
import { sessionOfConnection } from 'haraka-outbound-security/tlsrpt/session';
import { startTlsReporting, type ReportingPlugin } from './tlsrpt';
import { registerRequireTls } from './requiretls';

// RT-1, RT-5: RFC 8689 on receipt (requiretls.ts); Haraka calls hooks by the names exported here.
export { requiretls_advertise, requiretls_data_post, requiretls_mail } from './requiretls';

interface OutboundTlsPlugin extends HarakaPlugin, ReportingPlugin {
  tlsConfig: OutboundTlsConfig;
  ratchetStore: RatchetStore;
  guardProblem: string | null;
  /** The process's shared stores (PKG-4); the policy cache is read only when the guard is missing (TLS-6). */
  stores: SharedStores;
  /** POL-1: the admin policy table in force (config/outbound_tls_policy, hot-reloaded). */
  policyTable: PolicyTable;
  metricsListener?: MetricsListener;
  load_outbound_tls_ini(): void;
  load_policy_table(): void;
}

export function register(this: OutboundTlsPlugin): void {
  this.load_outbound_tls_ini();
  this.load_policy_table();
  warnAboutHarakaTlsSettings(this);
  publishPluginDocs(this, path.join(__dirname, '..'));
  keepOutboundCertificatesClassifiable(this);

  const hmail = loadHMailPrototype(this);
  this.guardProblem = checkHarakaInternals(hmail);
  setGuardProblem(this.guardProblem);
  metrics.guardInstalled.set(this.guardProblem ? 0 : 1);
  if (cluster.isPrimary) recordRuntimeStatus(this);
  if (this.guardProblem || !hmail) {
    this.logcrit(
      `outbound_tls: cannot guard outbound connections: ${this.guardProblem}. Failing closed: mail for domains with a ` +
        `stored security level or an MTA-STS enforce policy is deferred until this is fixed (this Haraka version is ` +
        `not supported; smart-host credentials are not protected either).`,
    );
    // Runs before outbound_mx (and any other get_mx plugin). Registered only when needed: a hook costs every message.
    this.register_hook('get_mx', 'fail_closed_get_mx', -100);
  } else {
    installConnectionGuard(hmail, guardDeps(this));
  }
  // RPT-1 … RPT-4, RPT-7: TLS reporting ([tlsrpt], off by default), following outbound_tls.ini reloads.
  startTlsReporting(this);
  // RT-1, RT-5: REQUIRETLS and TLS-Required on receipt ([requiretls]).
  registerRequireTls(this);

  // OPS-3: the listener runs in Haraka's main process and follows [metrics] listen (load_outbound_tls_ini).
  if (cluster.isPrimary) {
    this.metricsListener = new MetricsListener((level, message) =>
      level === 'error' ? this.logerror(`outbound_tls: ${message}`) : this.lognotice(`outbound_tls: ${message}`),
    );
    void this.metricsListener.apply(this.tlsConfig.metricsListen);
  }
}

/** TLS-9: the CLI's health view (`haraka-outbound check`) learns from this file whether this Haraka's guard is in place. */
function recordRuntimeStatus(plugin: OutboundTlsPlugin): void {
  const status = { pid: process.pid, startedAt: new Date().toISOString(), guardProblem: plugin.guardProblem };
  writeRuntimeStatus(plugin.tlsConfig.dataDir, status).catch((err: Error) =>
    plugin.logwarn(`outbound_tls: cannot write ${RUNTIME_STATUS_FILE} in ${plugin.tlsConfig.dataDir}: ${err.message}`),
  );
}

/**
 * PKG-4: outbound_tls.ini and redis.ini from the process's settings registry
 * (each file read and watched once, whichever plugin asks first; outbound_mx
 * hears of the same changes). The stores are the process's shared ones: a
 * changed data_dir, store or Redis setting moves them for both plugins.
 */
export function load_outbound_tls_ini(this: OutboundTlsPlugin): void {
  const settings = outboundTlsSettings(this);
  const stores = sharedStores(this);
  const apply = (next: SharedSettings): void => {
    this.tlsConfig = next.tls;
    this.ratchetStore = stores.ratchet();
  };
  this.stores = stores;
  apply(settings.current);
  settings.subscribe((next) => {
    apply(next);
    void this.metricsListener?.apply(next.tls.metricsListen);
  });
}

/**
 * POL-1: the policy table from the process's settings registry (read and
 * watched once; outbound_mx reads the same one). Bad lines are logged with
 * file and line at load and every reload, the rest applies; a file that
 * cannot be read keeps the table in force.
 */
export function load_policy_table(this: OutboundTlsPlugin): void {
  const settings = policyTableSettings(this);
  const apply = (table: PolicyTable): void => {
    this.policyTable = table;
    metrics.tableLines.set({ state: 'in_force' }, table.rules.length);
    metrics.tableLines.set({ state: 'ignored' }, table.errors);
  };
  apply(settings.current);
  settings.subscribe(apply);
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

interface OutboundTlsSingleton {
  get_tls_options?: (mx: unknown) => Record<string, unknown>;
}

const CLASSIFIABLE = Symbol.for('haraka-outbound-security.classifiable');

/**
 * TLS-6: `rejectUnauthorized=true` in tls.ini would make an invalid certificate
 * fail the outbound handshake, and the TLS-3 retry would then send in clear
 * with nothing recorded. Outbound connections always complete the handshake;
 * outbound_tls classifies the certificate and the requirement decides.
 * (Haraka's own force_tls sets it again after this, as it should.)
 * The same wrapper lets the guard see what the handshake's identity check saw
 * (haraka/identity-capture.ts).
 */
function keepOutboundCertificatesClassifiable(plugin: OutboundTlsPlugin): void {
  const tls = plugin.config.get('tls.ini', { booleans: ['main.rejectUnauthorized', 'outbound.rejectUnauthorized'] }) as IniFile;
  const configured = ['main', 'outbound'].filter((section) => String(tls[section]?.rejectUnauthorized) === 'true');
  let obtls: OutboundTlsSingleton | undefined;
  try {
    obtls = plugin.haraka_require('outbound/tls') as OutboundTlsSingleton;
  } catch {
    obtls = undefined;
  }
  const original = obtls?.get_tls_options;
  if (!obtls || typeof original !== 'function') {
    if (configured.length > 0) {
      plugin.logcrit(
        `outbound_tls: tls.ini rejectUnauthorized=true ([${configured.join('], [')}]) cannot be overridden for outbound ` +
          `connections (Haraka's outbound/tls changed): an invalid certificate fails the handshake; turn it off`,
      );
    }
    return;
  }
  const marked = obtls as OutboundTlsSingleton & { [CLASSIFIABLE]?: boolean };
  if (!marked[CLASSIFIABLE]) {
    marked[CLASSIFIABLE] = true;
    obtls.get_tls_options = function (this: unknown, mx: unknown) {
      const options = { ...original.call(this, mx), rejectUnauthorized: false };
      // OPS-6: the guard reads what the handshake's identity check saw instead of decoding the certificate again.
      return mx && typeof mx === 'object' ? capturingIdentity(mx, options) : options;
    };
  }
  if (configured.length > 0) {
    plugin.logwarn(
      `outbound_tls: tls.ini [${configured.join('], [')}] rejectUnauthorized=true is overridden for outbound connections: ` +
        `an invalid certificate would fail the handshake and the plain retry would send in clear; outbound_tls ` +
        `classifies every certificate and the requirement decides (TLS-6)`,
    );
  }
}

function requirementFor(plugin: OutboundTlsPlugin, hmail: { todo: { domain: string } }, mx: GuardedMx): Requirement | null {
  return connectionRequirement({
    state: getDeliveryState(hmail),
    recipientDomain: String(hmail.todo.domain),
    mxHost: mxHostName(mx),
    exchange: String(mx.exchange ?? ''),
    credentials: hasCredentials(mx),
    settings: plugin.tlsConfig,
    table: plugin.policyTable,
  });
}

function guardDeps(plugin: OutboundTlsPlugin): GuardDeps {
  return {
    store: () => plugin.ratchetStore,
    requirement: (hmail, mx) => requirementFor(plugin, hmail, mx),
    settings: () => ({ plainRetry: plugin.tlsConfig.plainRetry, onStoreError: plugin.tlsConfig.onStoreError }),
    events: {
      connection: (level) => metrics.connections.inc({ level: levelName(level) }),
      tlsFailure: (kind) => metrics.tlsFailures.inc({ kind }),
      plainRetry: () => metrics.plainRetries.inc(),
      ratchet: (result) => metrics.ratchet.inc({ result }),
      abandoned: (cause) => metrics.abandoned.inc({ cause }),
      sts: (mode, result) => metrics.stsChecks.inc({ mode, result }),
      exemption: (use) => metrics.exemptions.inc({ exemption: use.exemption }),
      dane: (result, mode) => metrics.dane.inc({ result, mode }),
      daneWork: countDaneWork,
    },
    recordSession: (hmail, facts, outcome) => {
      if (!plugin.tlsReporting?.enabled) return;
      const stsPolicy = getDeliveryState(hmail)?.sts?.policy;
      const session = sessionOfConnection(stsPolicy ? { ...facts, stsPolicy } : facts, outcome);
      if (session) plugin.tlsReporting.record(session);
    },
  };
}

/**
 * Only when the guard is missing (TLS-6): defer mail for every requirement the
 * plugins know of: a policy table minimum, a stored level (domain or address
 * literal), a cached MTA-STS enforce policy (each unless the table exempts it).
 */
export function fail_closed_get_mx(this: OutboundTlsPlugin, next: Next, hmail: HMailItem, domain: string): void {
  if (!this.guardProblem) return next(CONT);
  const key = recipientKey(String(domain));
  if (!key) return next(CONT);
  failClosedReason({ table: this.policyTable, ratchet: this.ratchetStore, policy: this.stores.policy() }, key).then(
    (why) => {
      if (!why) return next(CONT);
      const reason = `outbound_tls cannot guard connections (${this.guardProblem}); ${why}`;
      this.logerror(reason, hmail);
      next(DENYSOFT, reason);
    },
    (err: Error) => {
      this.logerror(`outbound_tls: store failed for ${key}: ${err.message}`, hmail);
      next(DENYSOFT, `outbound_tls cannot guard connections and cannot read the stored state of ${key}`);
    },
  );
}

export function shutdown(this: OutboundTlsPlugin): void {
  void this.metricsListener?.close();
  this.stopOutboxPickup?.();
  void this.tlsReporting?.close();
  sharedStores(this)
    .close()
    .catch(() => undefined);
}
