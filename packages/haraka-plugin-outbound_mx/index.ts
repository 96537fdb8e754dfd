/**
 * outbound_mx — Haraka `get_mx` hook: recipient domain → the MX hosts Haraka
 * may use (MX-1 … MX-9). A thin adapter: the decisions live in lib/.
 */
import path from 'node:path';
import { publishPluginDocs } from 'haraka-outbound-security/haraka/plugin-docs';
import { createCachedTransport, createDnsClient, effectiveServers, type DnsClient } from 'haraka-outbound-security/mx/dns-client';
import { createDnsTransport, type DnsTransport } from 'haraka-outbound-security/dns/wire';
import { ResolverHealth } from 'haraka-outbound-security/dns/resolver-health';
import { DECLARE_RESOLVER_HINT } from 'haraka-outbound-security/dns/resolver-trust';
import { daneDeps } from 'haraka-outbound-security/dane/deps';
import type { DaneDeps } from 'haraka-outbound-security/dane/plan-step';
import { DaneStatus, type DaneStatusState } from 'haraka-outbound-security/dane/resolver-status';
import { setDeliveryState } from 'haraka-outbound-security/haraka/delivery-state';
import { guardProblem, guardStatus, pluginListProblem } from 'haraka-outbound-security/haraka/guard-status';
import { failClosedReason, recipientKey } from 'haraka-outbound-security/delivery/fail-closed';
import { printable } from 'haraka-outbound-security/domain';
import { DENY, DENYSOFT, OK, type HMailItem, type HarakaMxSpec, type HarakaPlugin, type Next } from 'haraka-outbound-security/haraka/api';
import { destinationName, planDelivery, planSettings, type DeliveryPlan } from 'haraka-outbound-security/delivery/plan';
import type { OutboundMxConfig } from 'haraka-outbound-security/config/outbound-mx';
import cluster from 'node:cluster';
import { MetricsListener, metrics } from 'haraka-outbound-security/metrics';
import { MtaStsResolver, type MtaStsSettings, type PolicyDecision } from 'haraka-outbound-security/mta-sts/resolver';
import {
  outboundMxSettings,
  outboundTlsSettings,
  policyTableSettings,
  sharedStores,
  type MxSettings,
  type Settings,
} from 'haraka-outbound-security/haraka/settings';
import { ruleLabel, ruleText } from 'haraka-outbound-security/policy-table/rule';
import type { PolicyTable } from 'haraka-outbound-security/policy-table/table';
import type { PolicyStore } from 'haraka-outbound-security/mta-sts/store';

interface OutboundMxPlugin extends HarakaPlugin {
  mxConfig: OutboundMxConfig;
  dnsClient: DnsClient;
  /** The cached DNS transport the client and the TLSA lookups share. */
  dnsTransport: DnsTransport;
  /** DANE-1, DANE-8: whether the resolver validates, checked at startup and every check_interval (sooner while unknown). */
  daneStatus: DaneStatus;
  mtaSts: MtaStsResolver;
  stsSettings: MtaStsSettings;
  onStoreError: 'defer' | 'send';
  refreshTimer?: NodeJS.Timeout;
  /** POL-1: the admin policy table (owned by outbound_tls, read here for `exempt=mta-sts` and the log). */
  policyTable: Settings<PolicyTable>;
  /** TLS-9: what is wrong with config/plugins for outbound_tls's guard (missing, after outbound_mx), or null. */
  pluginListProblem: string | null;
  metricsListener?: MetricsListener;
  load_outbound_mx_ini(): void;
}

export function register(this: OutboundMxPlugin): void {
  this.load_outbound_mx_ini();
  this.policyTable = policyTableSettings(this);
  this.pluginListProblem = pluginListProblem(listOf(this.config.get('plugins', 'list')));
  this.register_hook('get_mx', 'select_mx');
  publishPluginDocs(this, path.join(__dirname, '..'));
  // STS-6: one process refreshes the shared cache: Haraka's main process.
  if (cluster.isPrimary) scheduleRefresh(this);
  // TLS-9: once every plugin of config/plugins has registered (Haraka loads them in one go).
  setImmediate(() => checkGuard(this));
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

/** DANE-1, DANE-8: the plan's DANE dependency while DANE is in effect or its status unknown, else undefined. */
function planDaneDeps(plugin: OutboundMxPlugin): DaneDeps | undefined {
  const mode = plugin.mxConfig.dane.mode;
  return daneDeps({
    mode,
    status: plugin.daneStatus.current,
    transport: plugin.dnsTransport,
    port: plugin.mxConfig.mxPort,
    onLookup: (_host, found) => {
      if (found.kind === 'failed' && mode !== 'off') metrics.daneSkippedHosts.inc({ mode });
    },
  });
}

/** DANE-8: the resolver check asks the resolver itself each time: a cached answer would say nothing about it now. */
function resolverCheckTransport(mx: OutboundMxConfig): DnsTransport {
  return createDnsTransport({ servers: effectiveServers(mx.dns), timeoutMs: mx.dns.timeoutMs, tries: mx.dns.tries });
}

export function shutdown(this: OutboundMxPlugin): void {
  if (this.refreshTimer) clearTimeout(this.refreshTimer);
  void this.metricsListener?.close();
  this.daneStatus?.stop();
  sharedStores(this)
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
export function load_outbound_mx_ini(this: OutboundMxPlugin): void {
  const mxSettings = outboundMxSettings(this);
  const shared = outboundTlsSettings(this);
  const stores = sharedStores(this);
  // OPS-7: a resolver that stops answering is told once, reminded, told when back; one follower across reloads.
  const resolvers = new ResolverHealth(
    { info: (m) => this.loginfo(`outbound_mx: ${m}`), error: (m) => this.logerror(`outbound_mx: ${m}`) },
    (server, up) => metrics.dnsResolverUp.set({ server }, up ? 1 : 0),
  );
  const applyMx = ({ mx, extraCa }: MxSettings): void => {
    const sts = mx.mtaSts;
    this.mxConfig = mx;
    this.dnsTransport = createCachedTransport(mx.dns, (server, answered, reason, name) =>
      resolvers.observe(server, answered, reason, name),
    );
    this.dnsClient = createDnsClient(mx.dns, this.dnsTransport);
    this.daneStatus?.stop();
    this.daneStatus = new DaneStatus(resolverCheckTransport(mx), mx.dane, (state) => reportDane(this, state), {
      onCheck: (result) => metrics.daneResolverChecks.inc({ result: result.replace('-', '_') }),
    });
    void this.daneStatus.start();
    this.stsSettings = {
      recheckMs: sts.recheckMs,
      negativeTtlMs: sts.negativeTtlMs,
      refreshBeforeMs: sts.refreshBeforeMs,
      memoryBudgetBytes: sts.memoryBudgetBytes,
      fetch: { timeoutMs: sts.fetchTimeoutMs, port: sts.httpsPort, extraCa, addressPolicy: mx.addressPolicy },
    };
  };
  applyMx(mxSettings.current);
  this.onStoreError = shared.current.tls.onStoreError;

  const dns: DnsClient = {
    mx: (name) => this.dnsClient.mx(name),
    a: (name) => this.dnsClient.a(name),
    aaaa: (name) => this.dnsClient.aaaa(name),
    txt: (name) => this.dnsClient.txt(name),
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
  this.mtaSts = new MtaStsResolver(dns, policyStore, () => this.stsSettings, {
    event: (e) => metrics.stsCache.inc({ event: e }),
    log: (level, message) =>
      level === 'error' ? this.logerror(message) : level === 'warn' ? this.logwarn(message) : this.loginfo(message),
  });

  mxSettings.subscribe((next, previous) => {
    applyMx(next);
    const [was, now] = [previous.mx.mtaSts, next.mx.mtaSts];
    if (cluster.isPrimary && (was.enabled !== now.enabled || was.refreshIntervalMs !== now.refreshIntervalMs)) {
      scheduleRefresh(this);
    }
  });
  let generation = stores.generation;
  shared.subscribe((next) => {
    this.onStoreError = next.tls.onStoreError;
    if (stores.generation !== generation) {
      // The cache moved (data_dir, store): what this process remembers is read again from the new one.
      generation = stores.generation;
      this.mtaSts.forget();
    }
  });
}

export function select_mx(this: OutboundMxPlugin, next: Next, hmail: HMailItem, domain: string): void {
  selectForMessage(this, hmail, String(domain)).then(
    ([code, answer]) => next(code, answer),
    (err: unknown) => {
      // Never let an unexpected error bounce or lose the message.
      this.logerror(`get_mx for ${printable(String(domain))} failed unexpectedly: ${(err as Error).stack ?? String(err)}`, hmail);
      next(DENYSOFT, `internal error selecting MX for ${printable(String(domain))}`);
    },
  );
}

type HookAnswer = [number, HarakaMxSpec[] | string];

async function selectForMessage(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string): Promise<HookAnswer> {
  const unguarded = guardProblem(plugin.pluginListProblem);
  if (unguarded) {
    // TLS-9: as outbound_tls's own fail-closed hook does when it cannot hook into Haraka (TLS-6).
    const key = recipientKey(domain);
    const stores = sharedStores(plugin);
    const why = key
      ? await failClosedReason({ table: plugin.policyTable.current, ratchet: stores.ratchet(), policy: stores.policy() }, key)
      : null;
    if (why) {
      const reason = `outbound connections are not guarded (${unguarded}); ${why}`;
      plugin.logerror(reason, hmail);
      return [DENYSOFT, reason];
    }
  }
  await plugin.daneStatus.ready();
  const dane = planDaneDeps(plugin);
  const plan = await planDelivery(
    domain,
    {
      dns: plugin.dnsClient,
      policyFor: (aLabel) => plugin.mtaSts.policyFor(aLabel),
      guardProblem: () => guardProblem(plugin.pluginListProblem),
      policyTable: plugin.policyTable.current,
      ...(dane ? { dane } : {}),
    },
    planSettings(plugin.mxConfig, plugin.onStoreError),
  );
  return answerFor(plugin, hmail, domain, plan);
}

/** The plan in Haraka's terms: metrics, one log line per decision (OPS-2), the delivery state and the hook's answer. */
function answerFor(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string, plan: DeliveryPlan<PolicyDecision>): HookAnswer {
  // A literal is logged as it was written; a domain as A-label (and U-label).
  const shown = plan.destination?.kind === 'domain' ? destinationName(plan.destination) : printable(domain);
  const policy = plan.policy;
  if (policy?.kind === 'policy') {
    metrics.stsMode.inc({ mode: policy.policy.mode });
    plugin.loginfo(`MTA-STS policy of ${shown}: id ${policy.id}, mode ${policy.policy.mode} (${policy.source})`, hmail);
  } else if (policy && !(plan.kind === 'transient' && plan.cause === 'store-unavailable')) {
    if (policy.kind === 'store-unavailable') {
      plugin.logerror(`${shown}: ${policy.reason}; on_store_error=send: delivering without MTA-STS`, hmail);
    }
    metrics.stsMode.inc({ mode: 'none' });
  }
  switch (plan.kind) {
    case 'permanent':
      plugin.logwarn(`permanent failure (${plan.dsn})${plan.cause === 'mx' ? ` for ${shown}` : ''}: ${plan.reason}`, hmail);
      return [DENY, plan.reason];
    case 'null-mx':
      plugin.logwarn(`permanent failure (${plan.dsn}) for ${shown}: ${plan.reason}`, hmail);
      // Haraka's own null MX form: it bounces at once with DSN 5.1.10.
      return [OK, [{ exchange: '', priority: 0 }]];
    case 'transient':
      if (plan.cause === 'unguarded') plugin.logerror(plan.reason, hmail);
      else if (plan.cause === 'store-unavailable') plugin.logerror(`temporary failure for ${shown}: ${plan.reason}`, hmail);
      else plugin.logwarn(`temporary failure for ${shown}: ${plan.reason}`, hmail);
      return [DENYSOFT, plan.reason];
    case 'deliver': {
      if (plan.testingWouldNotUse.length > 0 && policy?.kind === 'policy') {
        metrics.stsChecks.inc({ mode: 'testing', result: 'would_fail' });
        plugin.logwarn(
          `MTA-STS testing for ${shown}: enforce would not use ${plan.testingWouldNotUse.join(', ')} (policy id ${policy.id})`,
          hmail,
        );
      }
      for (const note of plan.notes) plugin.loginfo(`${shown}: ${note}`, hmail);
      const rule = plan.state.rule;
      if (rule) plugin.loginfo(`${shown}: policy table rule ${ruleLabel(rule)}: ${ruleText(rule)}`, hmail);
      if (plan.state.sts?.exempted && rule && policy?.kind === 'policy') {
        // POL-2: weakening is visible; outbound_tls logs and counts each connection that needed the exemption.
        const outside = plan.exemptedWouldNotUse.length > 0 ? `; enforce would not use ${plan.exemptedWouldNotUse.join(', ')}` : '';
        plugin.logwarn(`MTA-STS enforce of ${shown} (policy id ${policy.id}) not applied: exempted by ${ruleLabel(rule)}${outside}`, hmail);
      }
      if (plan.daneExemptedBy) {
        // POL-2: weakening is visible: DANE could apply (a DNSSEC-validated MX answer) but the table exempts it.
        metrics.exemptions.inc({ exemption: 'dane' });
        plugin.logwarn(`DANE not used for ${shown}: exempted by ${plan.daneExemptedBy} (its TLSA records are not looked up)`, hmail);
      }
      setDeliveryState(hmail, plan.state);
      const port = plugin.mxConfig.mxPort;
      // Each address keeps its MX's host name (from_dns): certificates are checked against it (MX-9).
      const list = plan.mxs.flatMap((mx) =>
        mx.addresses.map((address) => ({ exchange: address, priority: mx.priority, port, ...(mx.host ? { from_dns: mx.host } : {}) })),
      );
      if (plan.destination.kind === 'literal') {
        plugin.loginfo(`address literal ${shown}: no MX lookup, no MTA-STS, at most TLS_INSECURE`, hmail);
      } else {
        plugin.loginfo(
          `MX for ${shown}${plan.implicit ? ' (implicit)' : ''}: ` +
            plan.mxs.map((mx) => `${mx.priority} ${mx.host} [${mx.addresses.join(' ')}]`).join(', '),
          hmail,
        );
      }
      return [OK, list];
    }
  }
}
