/**
 * outbound_mx in the library (MX-1 … MX-9, STS-5, STS-6, DANE-1, DANE-8,
 * TLS-9, OPS-2, PKG-4): what the plugin's `register`, `get_mx` and
 * `shutdown` hand over to. Its settings, resolvers and MTA-STS resolver are
 * built from the process's settings registry (haraka/settings.ts) and follow
 * reloads; each message is planned by delivery/plan.ts, and the plan is turned
 * into Haraka's answer, the log lines and the metrics (haraka/mx-answer.ts).
 */
import cluster from 'node:cluster';
import { printable } from '../domain';
import { planDaneDeps, planDns, daneStatusFor } from '../delivery/dns';
import { MTA_STS_DISABLED, planDelivery, planSettings } from '../delivery/plan';
import { PlanMemo, recordingDns } from '../delivery/plan-memo';
import { failClosedReason } from '../delivery/fail-closed';
import { recipientKey } from '../store/keys';
import type { DnsTransport } from '../dns/wire';
import { ResolverHealth } from '../dns/resolver-health';
import { DECLARE_RESOLVER_HINT } from '../dns/resolver-trust';
import type { DaneStatus, DaneStatusState } from '../dane/resolver-status';
import type { DnsClient } from '../mx/dns-client';
import { MtaStsResolver, type MtaStsSettings, type PolicyDecision } from '../mta-sts/resolver';
import type { PolicyStore } from '../mta-sts/store';
import type { OutboundMxConfig } from '../config/outbound-mx';
import type { PolicyTable } from '../policy-table/table';
import { MetricsListener, metrics } from '../metrics';
import { DENYSOFT, type HMailItem, type HarakaPlugin, type Next } from './api';
import { guardProblem, guardStatus, pluginListProblem } from './guard-status';
import { answerFor, type HookAnswer } from './mx-answer';
import { requiresTls } from '../requiretls/notes';
import { publishPluginDocs } from './plugin-docs';
import { infoLogged } from './log-level';
import { outboundMxSettings, outboundTlsSettings, policyTableSettings, sharedStores, type MxSettings, type Settings } from './settings';

export interface OutboundMxPlugin extends HarakaPlugin {
  mxConfig: OutboundMxConfig;
  dnsClient: DnsClient;
  /** The cached DNS transport the client and the TLSA lookups share. */
  dnsTransport: DnsTransport;
  /** DANE-1, DANE-8: whether the resolver validates, checked at startup and every check_interval (sooner while unknown). */
  daneStatus: DaneStatus;
  mtaSts: MtaStsResolver;
  stsSettings: MtaStsSettings;
  onStoreError: 'defer' | 'send';
  /** OPS-6: whether INFO lines are written now (haraka/log-level.ts). */
  infoLogged: () => boolean;
  refreshTimer?: NodeJS.Timeout;
  /** OPS-6: plans kept for the next messages to the same domain (delivery/plan-memo.ts). */
  planMemo?: PlanMemo<PolicyDecision>;
  /** POL-1: the admin policy table (owned by outbound_tls, read here for `exempt=mta-sts` and the log). */
  policyTable: Settings<PolicyTable>;
  /** TLS-9: what is wrong with config/plugins for outbound_tls's guard (missing, after outbound_mx), or null. */
  pluginListProblem: string | null;
  metricsListener?: MetricsListener;
}

/**
 * outbound_mx's `register` (the hook itself is registered by the plugin): its
 * settings and resolvers, the policy table, the check of config/plugins for
 * the guard, the plugin's docs (`packageDir`: its package, for `haraka -h`)
 * and the MTA-STS refresh.
 */
export function registerOutboundMx(plugin: OutboundMxPlugin, packageDir: string): void {
  loadOutboundMxIni(plugin);
  plugin.planMemo = new PlanMemo();
  plugin.infoLogged = infoLogged(plugin);
  plugin.policyTable = policyTableSettings(plugin);
  plugin.pluginListProblem = pluginListProblem(listOf(plugin.config.get('plugins', 'list')));
  publishPluginDocs(plugin, packageDir);
  // STS-6: one process refreshes the shared cache: Haraka's main process.
  if (cluster.isPrimary) scheduleRefresh(plugin);
  // TLS-9: once every plugin of config/plugins has registered (Haraka loads them in one go).
  setImmediate(() => checkGuard(plugin));
}

function listOf(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/**
 * TLS-9: without outbound_tls's guard (not listed, listed after outbound_mx,
 * failed to load, or unable to hook into Haraka), nothing checks a certificate
 * or a stored level: mail with a requirement fails closed (select_mx), said
 * once per start at error level, and exported (outbound_tls_guard_installed).
 * The metrics listener is outbound_tls's; without it, outbound_mx opens it.
 */
function checkGuard(plugin: OutboundMxPlugin): void {
  const problem = guardProblem(plugin.pluginListProblem);
  metrics.guardInstalled.set(problem ? 0 : 1);
  if (!problem) return;
  if (cluster.isPrimary) {
    plugin.logcrit(
      `outbound_mx: outbound connections are not guarded: ${problem}. Failing closed: mail for domains with a stored ` +
        `security level, an MTA-STS enforce policy, DANE records or a policy table minimum is deferred until this is fixed (TLS-9)`,
    );
  }
  if (cluster.isPrimary && guardStatus().kind === 'unreported' && !plugin.metricsListener) {
    const listen = outboundTlsSettings(plugin).current.tls.metricsListen;
    plugin.metricsListener = new MetricsListener((level, message) =>
      level === 'error' ? plugin.logerror(`outbound_mx: ${message}`) : plugin.lognotice(`outbound_mx: ${message}`),
    );
    void plugin.metricsListener.apply(listen);
  }
}

function scheduleRefresh(plugin: OutboundMxPlugin): void {
  // One timer at a time: a reload that changes the interval replaces the pending one.
  if (plugin.refreshTimer) clearTimeout(plugin.refreshTimer);
  plugin.refreshTimer = undefined;
  const interval = plugin.mxConfig.mtaSts.refreshIntervalMs;
  if (!plugin.mxConfig.mtaSts.enabled || interval <= 0) return;
  const jittered = interval * (0.75 + Math.random() * 0.5);
  plugin.refreshTimer = setTimeout(() => {
    plugin.mtaSts
      .refreshAll(plugin.mxConfig.mtaSts.refreshConcurrency)
      .then(
        (stats) =>
          plugin.loginfo(`outbound_mx: MTA-STS refresh: ${stats.checked} checked, ${stats.refreshed} refetched, ${stats.dropped} dropped`),
        (err: Error) => plugin.logerror(`outbound_mx: MTA-STS refresh failed: ${err.message}`),
      )
      .finally(() => scheduleRefresh(plugin));
  }, jittered);
  plugin.refreshTimer.unref();
}

/**
 * DANE-1, DANE-8: every change of whether DANE is in effect is logged once and
 * exported. No declared resolver is the default of a fresh installation, not a
 * fault: one INFO line per start saying how to turn DANE on, from Haraka's
 * main process only (with nodes=N every worker loads the plugin too).
 */
function reportDane(plugin: OutboundMxPlugin, state: DaneStatusState): void {
  metrics.daneInEffect.set(state.kind === 'in-effect' ? 1 : 0);
  const mode = plugin.mxConfig.dane.mode;
  switch (state.kind) {
    case 'off':
      plugin.loginfo('outbound_mx: DANE off ([dane] mode=off)');
      return;
    case 'in-effect':
      plugin.loginfo(`outbound_mx: DANE in effect (mode=${mode}): the declared DNS resolver validates DNSSEC`);
      return;
    case 'unknown':
      plugin.logwarn(
        `outbound_mx: DANE status unknown: ${state.reason}; hosts of DNSSEC-validated MX answers are skipped (deferred, never used without DANE) until a resolver check succeeds`,
      );
      return;
    case 'not-in-effect':
      if (state.cause === 'undeclared') {
        if (cluster.isPrimary) plugin.loginfo(`outbound_mx: DANE not in effect: ${state.reason}; ${DECLARE_RESOLVER_HINT}`);
      } else {
        plugin.logwarn(`outbound_mx: DANE not in effect: ${state.reason}; TLSA records are not checked until the resolver validates`);
      }
      return;
    case 'checking':
      return;
  }
}

/** outbound_mx's `shutdown`: timers, the resolver check, the metrics listener and the shared stores. */
export function shutdownOutboundMx(plugin: OutboundMxPlugin): void {
  if (plugin.refreshTimer) clearTimeout(plugin.refreshTimer);
  void plugin.metricsListener?.close();
  plugin.daneStatus?.stop();
  sharedStores(plugin)
    .close()
    .catch(() => undefined);
}

/**
 * PKG-4: outbound_mx.ini, and what it shares with outbound_tls (outbound_tls.ini,
 * redis.ini: data_dir, store, Redis, on_store_error), from the process's
 * settings registry: each file is read and watched once, whichever plugin asks
 * first, and every change reaches this plugin. A bad file on reload is logged
 * under its own name and the running settings stay. The MTA-STS resolver is
 * built once: it reads the settings, DNS client and policy store in force
 * through getters, so a reload keeps its cache and in-flight lookups.
 */
export function loadOutboundMxIni(plugin: OutboundMxPlugin): void {
  const mxSettings = outboundMxSettings(plugin);
  const shared = outboundTlsSettings(plugin);
  const stores = sharedStores(plugin);
  // OPS-7: a resolver that stops answering is told once, reminded, told when back; one follower across reloads.
  const resolvers = new ResolverHealth(
    { info: (m) => plugin.loginfo(`outbound_mx: ${m}`), error: (m) => plugin.logerror(`outbound_mx: ${m}`) },
    (server, up) => metrics.dnsResolverUp.set({ server }, up ? 1 : 0),
  );
  const applyMx = ({ mx, extraCa }: MxSettings): void => {
    const sts = mx.mtaSts;
    plugin.mxConfig = mx;
    const dns = planDns(mx, (server, answered, reason, name) => resolvers.observe(server, answered, reason, name));
    plugin.dnsTransport = dns.transport;
    plugin.dnsClient = dns.client;
    plugin.daneStatus?.stop();
    plugin.daneStatus = daneStatusFor(mx, (state) => reportDane(plugin, state), {
      onCheck: (result) => metrics.daneResolverChecks.inc({ result: result.replace('-', '_') }),
    });
    void plugin.daneStatus.start();
    plugin.stsSettings = {
      recheckMs: sts.recheckMs,
      negativeTtlMs: sts.negativeTtlMs,
      refreshBeforeMs: sts.refreshBeforeMs,
      memoryBudgetBytes: sts.memoryBudgetBytes,
      fetch: { timeoutMs: sts.fetchTimeoutMs, port: sts.httpsPort, extraCa, addressPolicy: mx.addressPolicy },
    };
  };
  applyMx(mxSettings.current);
  plugin.onStoreError = shared.current.tls.onStoreError;

  const dns: DnsClient = {
    mx: (name) => plugin.dnsClient.mx(name),
    a: (name) => plugin.dnsClient.a(name),
    aaaa: (name) => plugin.dnsClient.aaaa(name),
    txt: (name) => plugin.dnsClient.txt(name),
  };
  // The policy cache lives where the ratchet does (outbound_tls.ini), in the process's shared store,
  // opened now so that a Redis connection is up before the first delivery.
  stores.policy();
  const policyStore: PolicyStore = {
    get description() {
      return stores.policy().description;
    },
    get: (domain) => stores.policy().get(domain),
    put: (entry) => stores.policy().put(entry),
    delete: (domain) => stores.policy().delete(domain),
    list: () => stores.policy().list(),
    close: () => Promise.resolve(),
    purgeGeneration: () => stores.policy().purgeGeneration?.() ?? 'none',
  };
  plugin.mtaSts = new MtaStsResolver(dns, policyStore, () => plugin.stsSettings, {
    event: (e) => metrics.stsCache.inc({ event: e }),
    log: (level, message) =>
      level === 'error' ? plugin.logerror(message) : level === 'warn' ? plugin.logwarn(message) : plugin.loginfo(message),
  });

  mxSettings.subscribe((next, previous) => {
    applyMx(next);
    const [was, now] = [previous.mx.mtaSts, next.mx.mtaSts];
    if (cluster.isPrimary && (was.enabled !== now.enabled || was.refreshIntervalMs !== now.refreshIntervalMs)) {
      scheduleRefresh(plugin);
    }
  });
  let generation = stores.generation;
  shared.subscribe((next) => {
    plugin.onStoreError = next.tls.onStoreError;
    if (stores.generation !== generation) {
      // The cache moved (data_dir, store): what this process remembers is read again from the new one.
      generation = stores.generation;
      plugin.mtaSts.forget();
    }
  });
}

/**
 * outbound_mx's `get_mx` hook: the plan for the message's domain as Haraka's
 * answer. OPS-6: a plan kept from an earlier message (delivery/plan-memo.ts)
 * answers at once; otherwise the plan is made (DNS, MTA-STS, DANE).
 */
export function selectMx(plugin: OutboundMxPlugin, next: Next, hmail: HMailItem, domain: string): void {
  let known: HookAnswer | undefined;
  try {
    known = keptAnswer(plugin, hmail, String(domain));
  } catch (err) {
    // The plan is made again below; the kept one is never trusted after an error.
    plugin.planMemo?.clear();
    plugin.logerror(`get_mx for ${printable(String(domain))}: kept plan not usable: ${(err as Error).stack ?? String(err)}`, hmail);
  }
  if (known) return next(known[0], known[1]);
  selectForMessage(plugin, hmail, String(domain)).then(
    ([code, answer]) => next(code, answer),
    (err: unknown) => {
      // Never let an unexpected error bounce or lose the message.
      plugin.logerror(`get_mx for ${printable(String(domain))} failed unexpectedly: ${(err as Error).stack ?? String(err)}`, hmail);
      next(DENYSOFT, `internal error selecting MX for ${printable(String(domain))}`);
    },
  );
}

/** What makes a plan (besides DNS answers and the MTA-STS policy): a kept plan is used only while these are the same objects. */
function planInputs(plugin: OutboundMxPlugin): readonly unknown[] {
  return [plugin.mxConfig, plugin.onStoreError, plugin.policyTable.current, plugin.daneStatus.current, plugin.dnsClient, plugin.mtaSts];
}

/** OPS-6: the answer from the plan kept for `domain`, when it is still valid and the guard is in place; else undefined. */
function keptAnswer(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string): HookAnswer | undefined {
  if (!plugin.planMemo || guardProblem(plugin.pluginListProblem)) return undefined;
  const enabled = plugin.mxConfig.mtaSts.enabled;
  const plan = plugin.planMemo.get(domain, planInputs(plugin), Date.now(), (aLabel) =>
    enabled ? plugin.mtaSts.peek(aLabel) : MTA_STS_DISABLED,
  );
  return plan ? answerFor(plugin, hmail, domain, plan) : undefined;
}

async function selectForMessage(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string): Promise<HookAnswer> {
  const unguarded = guardProblem(plugin.pluginListProblem);
  if (unguarded) {
    // TLS-9: as outbound_tls's own fail-closed hook does when it cannot hook into Haraka (TLS-6).
    const key = recipientKey(domain);
    const stores = sharedStores(plugin);
    // RT-2: a REQUIRETLS message needs the guard (nothing else checks REQUIRETLS or appends it to MAIL FROM).
    const why = requiresTls(hmail)
      ? 'the message was received with REQUIRETLS'
      : key
        ? await failClosedReason({ table: plugin.policyTable.current, ratchet: stores.ratchet(), policy: stores.policy() }, key)
        : null;
    if (why) {
      const reason = `outbound connections are not guarded (${unguarded}); ${why}`;
      plugin.logerror(reason, hmail);
      return [DENYSOFT, reason];
    }
  }
  await plugin.daneStatus.ready();
  const dane = planDaneDeps(plugin.mxConfig, plugin.daneStatus.current, plugin.dnsTransport, (_host, found) => {
    if (found.kind === 'failed' && plugin.mxConfig.dane.mode !== 'off') metrics.daneSkippedHosts.inc({ mode: plugin.mxConfig.dane.mode });
  });
  const inputs = planInputs(plugin);
  const dns = recordingDns(plugin.dnsClient);
  const plan = await planDelivery(
    domain,
    {
      dns: dns.client,
      policyFor: (aLabel) => plugin.mtaSts.policyFor(aLabel),
      guardProblem: () => guardProblem(plugin.pluginListProblem),
      policyTable: plugin.policyTable.current,
      ...(dane ? { dane } : {}),
    },
    planSettings(plugin.mxConfig, plugin.onStoreError),
  );
  // OPS-6: kept only if nothing it was made from changed while it was made (a reload meanwhile: made again next time).
  if (!unguarded && planInputs(plugin).every((value, i) => value === inputs[i])) {
    plugin.planMemo?.keep(domain, plan, inputs, dns.until(), dane !== undefined);
  }
  return answerFor(plugin, hmail, domain, plan);
}
