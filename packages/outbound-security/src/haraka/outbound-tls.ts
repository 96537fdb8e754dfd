/**
 * outbound_tls in the library (TLS-1 … TLS-9, POL-1 … POL-4, RPT-1, OPS-3):
 * what the plugin's `register`, fail-closed `get_mx` and `shutdown` hand over
 * to. It installs the connection guard (./connection-guard.ts, socket
 * plumbing over delivery/connection.ts) with the requirement of each
 * connection (tls/requirement.ts) and the plugin's metrics and TLS reporting
 * wired in, and patches Haraka's outbound/tls (./tls-options-patch.ts).
 */
import cluster from 'node:cluster';
import type { IniFile } from '../ini';
import { WEAKENING_SETTINGS, weakeningSettings, type OutboundTlsConfig } from '../config/outbound-tls';
import { failClosedReason } from '../delivery/fail-closed';
import type { PolicyTable } from '../policy-table/table';
import type { RatchetStore } from '../ratchet/store';
import { levelName } from '../sec-level';
import type { SharedStores } from '../state/open';
import { recipientKey } from '../store/keys';
import type { Requirement } from '../tls/decision';
import { connectionRequirement } from '../tls/requirement';
import { sessionOfConnection } from '../tlsrpt/session';
import { MetricsListener, countDaneWork, metrics } from '../metrics';
import { CONT, DENYSOFT, type HMailItem, type HarakaPlugin, type Next } from './api';
import {
  checkHarakaInternals,
  hasCredentials,
  installConnectionGuard,
  mxHostName,
  type GuardDeps,
  type GuardedMx,
  type HMailPrototype,
} from './connection-guard';
import { getDeliveryState } from './delivery-state';
import { infoLogged } from './log-level';
import { setGuardProblem } from './guard-status';
import { publishPluginDocs } from './plugin-docs';
import { RUNTIME_STATUS_FILE, writeRuntimeStatus } from './runtime-status';
import { outboundTlsSettings, policyTableSettings, sharedStores, type SharedSettings } from './settings';
import { keepOutboundCertificatesClassifiable } from './tls-options-patch';
import type { ReportingPlugin } from './tls-reporting';
import { registerRequireTls } from './requiretls-hooks';
import { requiresTls } from '../requiretls/notes';

// RT-1, RT-5: the inbound hooks, re-exported by the plugin under these names (Haraka calls hooks by name).
export { requiretls_advertise, requiretls_bounce, requiretls_data_post, requiretls_mail } from './requiretls-hooks';

export interface OutboundTlsPlugin extends HarakaPlugin, ReportingPlugin {
  tlsConfig: OutboundTlsConfig;
  ratchetStore: RatchetStore;
  guardProblem: string | null;
  /** The process's shared stores (PKG-4); the policy cache is read only when the guard is missing (TLS-6). */
  stores: SharedStores;
  /** POL-1: the admin policy table in force (config/outbound_tls_policy, hot-reloaded). */
  policyTable: PolicyTable;
  metricsListener?: MetricsListener;
}

/**
 * RPT-1, OPS-6: TLS reporting's modules (recorder, scheduler, report store,
 * DKIM signing with nodemailer's) are loaded when `[tlsrpt] enabled` is first
 * found on, at startup or on a reload: off, as by default, they cost nothing
 * at each start of each Haraka process. Once loaded, ./tls-reporting.ts
 * follows the reloads itself (on, off, on again).
 */
function followTlsReporting(plugin: OutboundTlsPlugin): void {
  const settings = outboundTlsSettings(plugin);
  let started = false;
  const startWhenOn = (shared: SharedSettings): void => {
    if (started || shared.tls.tlsrpt.kind !== 'on') return;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('./tls-reporting') as typeof import('./tls-reporting')).startTlsReporting(plugin);
    started = true; // only once it ran: a start that threw (logged by the settings) is tried again at the next reload
  };
  startWhenOn(settings.current);
  settings.subscribe(startWhenOn);
}

/**
 * outbound_tls's `register`: its settings and the policy table (following
 * reloads), the warnings about Haraka's own TLS settings, the plugin's docs
 * (`packageDir`: its package, for `haraka -h`), the patch of Haraka's
 * outbound/tls, the connection guard (or, when Haraka cannot be guarded, the
 * fail-closed get_mx hook), TLS reporting and the metrics listener.
 */
export function registerOutboundTls(plugin: OutboundTlsPlugin, packageDir: string): void {
  loadOutboundTlsIni(plugin);
  loadPolicyTable(plugin);
  warnAboutHarakaTlsSettings(plugin);
  publishPluginDocs(plugin, packageDir);
  keepOutboundCertificatesClassifiable(plugin);

  const hmail = loadHMailPrototype(plugin);
  plugin.guardProblem = checkHarakaInternals(hmail);
  setGuardProblem(plugin.guardProblem);
  metrics.guardInstalled.set(plugin.guardProblem ? 0 : 1);
  if (cluster.isPrimary) recordRuntimeStatus(plugin);
  if (plugin.guardProblem || !hmail) {
    plugin.logcrit(
      `outbound_tls: cannot guard outbound connections: ${plugin.guardProblem}. Failing closed: mail for domains with a ` +
        `stored security level or an MTA-STS enforce policy is deferred until this is fixed (this Haraka version is ` +
        `not supported; smart-host credentials are not protected either).`,
    );
    // Runs before outbound_mx (and any other get_mx plugin). Registered only when needed: a hook costs every message.
    plugin.register_hook('get_mx', 'fail_closed_get_mx', -100);
  } else {
    installConnectionGuard(hmail, guardDeps(plugin));
  }
  // RPT-1 … RPT-4, RPT-7: TLS reporting ([tlsrpt], off by default), following outbound_tls.ini reloads.
  followTlsReporting(plugin);
  // RT-1, RT-5: REQUIRETLS and TLS-Required on receipt ([requiretls]).
  registerRequireTls(plugin);

  // OPS-3: the listener runs in Haraka's main process and follows [metrics] listen (load_outbound_tls_ini).
  if (cluster.isPrimary) {
    plugin.metricsListener = new MetricsListener((level, message) =>
      level === 'error' ? plugin.logerror(`outbound_tls: ${message}`) : plugin.lognotice(`outbound_tls: ${message}`),
    );
    void plugin.metricsListener.apply(plugin.tlsConfig.metricsListen);
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
export function loadOutboundTlsIni(plugin: OutboundTlsPlugin): void {
  const settings = outboundTlsSettings(plugin);
  const stores = sharedStores(plugin);
  const apply = (next: SharedSettings): void => {
    plugin.tlsConfig = next.tls;
    plugin.ratchetStore = stores.ratchet();
    // TLS-9: the weakening settings in force (each is a WARN line of the settings, at startup and every reload).
    const weak = new Set(weakeningSettings(next.tls).map((w) => w.setting));
    for (const setting of WEAKENING_SETTINGS) {
      metrics.weakeningSetting.set({ setting }, weak.has(setting) ? 1 : 0);
    }
  };
  plugin.stores = stores;
  apply(settings.current);
  settings.subscribe((next) => {
    apply(next);
    void plugin.metricsListener?.apply(next.tls.metricsListen);
  });
}

/**
 * POL-1: the policy table from the process's settings registry (read and
 * watched once; outbound_mx reads the same one). Bad lines are logged with
 * file and line at load and every reload, the rest applies; a file that
 * cannot be read keeps the table in force.
 */
export function loadPolicyTable(plugin: OutboundTlsPlugin): void {
  const settings = policyTableSettings(plugin);
  const apply = (table: PolicyTable): void => {
    plugin.policyTable = table;
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

function requirementFor(
  plugin: OutboundTlsPlugin,
  hmail: { todo: { domain: string; notes?: unknown } },
  mx: GuardedMx,
): Requirement | null {
  return connectionRequirement({
    state: getDeliveryState(hmail),
    recipientDomain: String(hmail.todo.domain),
    mxHost: mxHostName(mx),
    exchange: String(mx.exchange ?? ''),
    credentials: hasCredentials(mx),
    settings: plugin.tlsConfig,
    table: plugin.policyTable,
    requireTls: requiresTls(hmail),
  });
}

function guardDeps(plugin: OutboundTlsPlugin): GuardDeps {
  return {
    infoLogged: infoLogged(plugin),
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
      requireTls: (event) =>
        metrics.requireTlsConnections.inc({ result: event.kind === 'refused' ? `refused_${event.missing.replace('-', '_')}` : event.kind }),
    },
    requireTlsReturned: (_hmail, _text, missing) => {
      for (const reason of missing) metrics.requireTlsReturned.inc({ reason: reason.replace('-', '_') });
    },
    tlsRequiredNoUsed: () => metrics.tlsRequiredNo.inc({ event: 'used' }),
    recordsSessions: () => plugin.tlsReporting?.enabled === true,
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
export function failClosedGetMx(plugin: OutboundTlsPlugin, next: Next, hmail: HMailItem, domain: string): void {
  if (!plugin.guardProblem) return next(CONT);
  if (requiresTls(hmail)) {
    // RT-2: nothing but the guard checks REQUIRETLS and appends it to MAIL FROM.
    const reason = `outbound_tls cannot guard connections (${plugin.guardProblem}); the message was received with REQUIRETLS`;
    plugin.logerror(reason, hmail);
    return next(DENYSOFT, reason);
  }
  const key = recipientKey(String(domain));
  if (!key) return next(CONT);
  failClosedReason({ table: plugin.policyTable, ratchet: plugin.ratchetStore, policy: plugin.stores.policy() }, key).then(
    (why) => {
      if (!why) return next(CONT);
      const reason = `outbound_tls cannot guard connections (${plugin.guardProblem}); ${why}`;
      plugin.logerror(reason, hmail);
      next(DENYSOFT, reason);
    },
    (err: Error) => {
      plugin.logerror(`outbound_tls: store failed for ${key}: ${err.message}`, hmail);
      next(DENYSOFT, `outbound_tls cannot guard connections and cannot read the stored state of ${key}`);
    },
  );
}

/** outbound_tls's `shutdown`: the metrics listener, TLS reporting and the shared stores. */
export function shutdownOutboundTls(plugin: OutboundTlsPlugin): void {
  void plugin.metricsListener?.close();
  plugin.stopOutboxPickup?.();
  void plugin.tlsReporting?.close();
  sharedStores(plugin)
    .close()
    .catch(() => undefined);
}
