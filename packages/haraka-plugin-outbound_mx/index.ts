/**
 * outbound_mx — Haraka `get_mx` hook: recipient domain → the MX hosts Haraka
 * may use (MX-1 … MX-9). A thin adapter: the decisions live in lib/.
 */
import { checkAddress } from 'haraka-outbound-security/mx/address-policy';
import { createDnsClient, type DnsClient } from 'haraka-outbound-security/mx/dns-client';
import { setDeliveryState } from 'haraka-outbound-security/haraka/delivery-state';
import { guardProblem } from 'haraka-outbound-security/haraka/guard-status';
import { literalKey, parseDomainLiteral, printable, toALabel, toULabel, type DomainLiteral } from 'haraka-outbound-security/domain';
import {
  DENY,
  DENYSOFT,
  OK,
  watchIni,
  type HMailItem,
  type HarakaMxSpec,
  type HarakaPlugin,
  type Next,
} from 'haraka-outbound-security/haraka/api';
import { lookupMx, type MxLookupResult } from 'haraka-outbound-security/mx/lookup';
import { parseOutboundMxConfig, type IniFile, type OutboundMxConfig } from 'haraka-outbound-security/config/outbound-mx';
import cluster from 'node:cluster';
import fs from 'node:fs';
import { metrics } from 'haraka-outbound-security/metrics';
import { MtaStsResolver, type MtaStsSettings, type PolicyDecision } from 'haraka-outbound-security/mta-sts/resolver';
import { matchesPolicy, policyFilter } from 'haraka-outbound-security/mta-sts/policy';
import { openPolicyStore } from 'haraka-outbound-security/store/open';
import { parseOutboundTlsConfig } from 'haraka-outbound-security/config/outbound-tls';
import type { MxFilter } from 'haraka-outbound-security/mx/selection';
import type { PolicyStore } from 'haraka-outbound-security/mta-sts/store';

interface OutboundMxPlugin extends HarakaPlugin {
  mxConfig: OutboundMxConfig;
  dnsClient: DnsClient;
  mtaSts: MtaStsResolver;
  stsSettings: MtaStsSettings;
  policyStore?: PolicyStore;
  policyStoreKey?: string;
  onStoreError: 'defer' | 'send';
  refreshTimer?: NodeJS.Timeout;
  load_outbound_mx_ini(): void;
}

export function register(this: OutboundMxPlugin): void {
  this.load_outbound_mx_ini();
  this.register_hook('get_mx', 'select_mx');
  // STS-6: one process refreshes the shared cache: Haraka's main process.
  if (cluster.isPrimary) scheduleRefresh(this);
}

function scheduleRefresh(plugin: OutboundMxPlugin): void {
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

export function shutdown(this: OutboundMxPlugin): void {
  if (this.refreshTimer) clearTimeout(this.refreshTimer);
  this.policyStore?.close().catch(() => undefined);
}

/**
 * Loads (and on change reloads) outbound_mx.ini, plus the store settings it
 * shares with outbound_tls (outbound_tls.ini, redis.ini). Everything is
 * computed before anything changes, so a bad reload keeps the running settings.
 */
export function load_outbound_mx_ini(this: OutboundMxPlugin): void {
  watchIni(this, ['outbound_mx.ini', 'outbound_tls.ini', 'redis.ini'], (ini) => {
    const parsed = parseOutboundMxConfig(ini['outbound_mx.ini'] as IniFile);
    const sts = parsed.mtaSts;
    let extraCa: string[] = [];
    if (sts.caFile) {
      try {
        extraCa = [fs.readFileSync(sts.caFile, 'utf8')];
      } catch (err) {
        throw new Error(`[mta_sts] ca_file=${sts.caFile}: ${(err as Error).message}`);
      }
    }
    // The policy cache lives where the ratchet does (outbound_tls.ini).
    const storeSettings = parseOutboundTlsConfig(ini['outbound_tls.ini'] as IniFile, process.env.HARAKA ?? process.cwd());
    const dnsClient = createDnsClient(parsed.dns);

    this.mxConfig = parsed;
    this.dnsClient = dnsClient;
    this.onStoreError = storeSettings.onStoreError;
    this.stsSettings = {
      recheckMs: sts.recheckMs,
      negativeTtlMs: sts.negativeTtlMs,
      refreshBeforeMs: sts.refreshBeforeMs,
      fetch: { timeoutMs: sts.fetchTimeoutMs, port: sts.httpsPort, extraCa, addressPolicy: parsed.addressPolicy },
    };
    const storeKey = JSON.stringify([storeSettings.dataDir, storeSettings.store]);
    if (!this.policyStore || this.policyStoreKey !== storeKey) {
      const previous = this.policyStore;
      this.policyStoreKey = storeKey;
      this.policyStore = openPolicyStore({
        dataDir: storeSettings.dataDir,
        store: storeSettings.store,
        redisIni: ini['redis.ini'] as IniFile,
        log: { info: (m) => this.loginfo(`outbound_mx: ${m}`), error: (m) => this.logerror(`outbound_mx: ${m}`) },
      });
      if (previous) previous.close().catch(() => undefined);
    }
    this.mtaSts = new MtaStsResolver(dnsClient, this.policyStore, () => this.stsSettings, {
      event: (e) => metrics.stsCache.inc({ event: e }),
      log: (level, message) =>
        level === 'error' ? this.logerror(message) : level === 'warn' ? this.logwarn(message) : this.loginfo(message),
    });
    this.loginfo(
      `settings: max_mx=${parsed.maxMx} max_mx_records=${parsed.maxMxRecords} max_addresses_per_mx=${parsed.maxAddressesPerMx} ` +
        `mx_port=${parsed.mxPort} dns servers=${parsed.dns.servers.join(',') || 'system'} ` +
        `timeout=${parsed.dns.timeoutMs}ms tries=${parsed.dns.tries} refuse=${parsed.refusedRanges.join(',')} ` +
        `allow=${parsed.allowCidrs.join(',') || '-'} mta_sts=${sts.enabled ? 'on' : 'off'} store=${this.policyStore.description}`,
    );
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
  const cfg = plugin.mxConfig;
  const literal = parseDomainLiteral(domain);
  if (domain.trim().startsWith('[')) {
    if (!literal) {
      const reason = `"${printable(domain)}" is not a valid address literal`;
      plugin.logwarn(`permanent failure: ${reason}`, hmail);
      return [DENY, reason];
    }
    return literalAnswer(plugin, hmail, domain, literal);
  }

  const name = toALabel(domain);
  if (!name.ok) {
    plugin.logwarn(`permanent failure (5.1.2): invalid recipient domain: ${name.reason}`, hmail);
    return [DENY, `invalid recipient domain: ${name.reason}`];
  }
  const aLabel = name.aLabel;
  const uLabel = toULabel(aLabel);
  const shown = uLabel === aLabel ? aLabel : `${aLabel} (${uLabel})`;

  // STS-9: the policy comes first, so an enforce policy also filters an implicit MX.
  const sts: PolicyDecision = cfg.mtaSts.enabled ? await plugin.mtaSts.policyFor(aLabel) : { kind: 'none', reason: 'MTA-STS disabled' };
  let filter: MxFilter | undefined;
  if (sts.kind === 'store-unavailable') {
    if (plugin.onStoreError === 'defer') {
      plugin.logerror(`temporary failure for ${shown}: ${sts.reason}`, hmail);
      return [DENYSOFT, sts.reason];
    }
    plugin.logerror(`${shown}: ${sts.reason}; on_store_error=send: delivering without MTA-STS`, hmail);
  }
  if (sts.kind === 'policy') {
    metrics.stsMode.inc({ mode: sts.policy.mode });
    plugin.loginfo(`MTA-STS policy of ${shown}: id ${sts.id}, mode ${sts.policy.mode} (${sts.source})`, hmail);
    if (sts.policy.mode === 'enforce') filter = policyFilter(aLabel, sts.id, sts.policy);
  } else {
    metrics.stsMode.inc({ mode: 'none' });
  }
  const result: MxLookupResult = await lookupMx(aLabel, plugin.dnsClient, {
    maxMx: cfg.maxMx,
    maxMxRecords: cfg.maxMxRecords,
    maxAddressesPerMx: cfg.maxAddressesPerMx,
    addressPolicy: cfg.addressPolicy,
    ...(filter ? { filter } : {}),
  });
  if (sts.kind === 'policy' && sts.policy.mode === 'testing' && result.kind === 'deliver') {
    const outside = result.mxs.filter((mx) => !matchesPolicy(sts.policy, mx.host)).map((mx) => mx.host);
    if (outside.length > 0) {
      metrics.stsChecks.inc({ mode: 'testing', result: 'would_fail' });
      plugin.logwarn(`MTA-STS testing for ${shown}: enforce would not use ${outside.join(', ')} (policy id ${sts.id})`, hmail);
    }
  }
  const stsState = sts.kind === 'policy' ? { sts: { mode: sts.policy.mode, policyId: sts.id } } : {};
  const unguarded = guardProblem();
  if (unguarded && sts.kind === 'policy' && sts.policy.mode === 'enforce' && result.kind === 'deliver') {
    // TLS-6: outbound_tls could not install its guard; nothing would check the certificate.
    const reason = `outbound_tls cannot guard connections (${unguarded}); ${aLabel} has an MTA-STS enforce policy (id ${sts.id})`;
    plugin.logerror(reason, hmail);
    return [DENYSOFT, reason];
  }
  switch (result.kind) {
    case 'permanent':
      plugin.logwarn(`permanent failure (${result.dsn}) for ${shown}: ${result.reason}`, hmail);
      return [DENY, result.reason];
    case 'null-mx':
      plugin.logwarn(`permanent failure (5.1.10) for ${shown}: ${result.reason}`, hmail);
      // Haraka's own null MX form: it bounces at once with DSN 5.1.10.
      return [OK, [{ exchange: '', priority: 0 }]];
    case 'transient':
      plugin.logwarn(`temporary failure for ${shown}: ${result.reason}`, hmail);
      return [DENYSOFT, result.reason];
    case 'deliver': {
      for (const note of result.notes) plugin.loginfo(`${shown}: ${note}`, hmail);
      setDeliveryState(hmail, { domain: aLabel, ...stsState });
      const list = result.mxs.flatMap((mx) =>
        mx.addresses.map((address) => ({ exchange: address, priority: mx.priority, port: cfg.mxPort, from_dns: mx.host })),
      );
      plugin.loginfo(
        `MX for ${shown}${result.implicit ? ' (implicit)' : ''}: ` +
          result.mxs.map((mx) => `${mx.priority} ${mx.host} [${mx.addresses.join(' ')}]`).join(', '),
        hmail,
      );
      return [OK, list];
    }
  }
}

function literalAnswer(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string, literal: DomainLiteral): HookAnswer {
  const address = literal.address;
  const verdict = checkAddress(plugin.mxConfig.addressPolicy, address);
  if (!verdict.allowed) {
    plugin.logwarn(`temporary failure for ${printable(domain)}: ${verdict.reason}`, hmail);
    return [DENYSOFT, `address literal refused: ${verdict.reason}`];
  }
  setDeliveryState(hmail, { domain: literalKey(literal) });
  plugin.loginfo(`address literal ${printable(domain)}: no MX lookup, no MTA-STS, at most TLS_INSECURE`, hmail);
  return [OK, [{ exchange: address, priority: 0, port: plugin.mxConfig.mxPort }]];
}
