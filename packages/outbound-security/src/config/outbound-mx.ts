/**
 * The outbound_mx plugin's settings, parsed and validated from the sections of
 * `config/outbound_mx.ini` (as haraka-config returns them). Every value falls
 * back to its documented default; a value that cannot be used is an error
 * naming the key and the value, so a typo is reported at startup.
 */
import ipaddr from 'ipaddr.js';
import { DEFAULT_REFUSED_RANGES, makeAddressPolicy, type AddressPolicy } from '../mx/address-policy';
import { DEFAULT_CACHE_MAX_TTL_S, DEFAULT_CACHE_MB } from '../dns/answer-cache';
import { parseServer } from '../dns/wire';
import { getServers } from 'node:dns';
import { resolverTrust } from '../dns/resolver-trust';
import type { DnsSettings } from '../mx/dns-client';
import { DEFAULT_MEMORY_BUDGET_MB } from '../mta-sts/resolver';
import { DEFAULT_MAX_ADDRESSES_PER_MX } from '../mx/lookup';
import { DEFAULT_MAX_MX_RECORDS } from '../mx/selection';
import { integerValue, listValue, numberValue, type IniFile, type IniSchema } from '../ini';
import type { DaneConfig } from '../dane/resolver-status';

/** The ini helpers moved to ./ini; re-exported for the modules that still import them from here. */
export { integerValue, listValue, numberValue, type IniFile, type IniSection } from '../ini';

export const DEFAULT_MAX_MX = 5;
export const DEFAULT_MX_PORT = 25;
export const DEFAULT_DNS_TIMEOUT_S = 5;
export const DEFAULT_DNS_TRIES = 2;

export interface MtaStsConfig {
  enabled: boolean;
  recheckMs: number;
  negativeTtlMs: number;
  fetchTimeoutMs: number;
  httpsPort: number;
  /** Extra CA file for policy hosts' certificates (PEM path), or null. */
  caFile: string | null;
  refreshIntervalMs: number;
  refreshBeforeMs: number;
  refreshConcurrency: number;
  /** OPS-5: bytes of policies, absent records and failures one process keeps in memory. */
  memoryBudgetBytes: number;
}

export type { DaneConfig };

export const DEFAULT_DANE_CHECK_INTERVAL_S = 600;

export interface OutboundMxConfig {
  maxMx: number;
  /** OPS-5: MX records considered per answer. */
  maxMxRecords: number;
  /** OPS-5: addresses used per MX host. */
  maxAddressesPerMx: number;
  mxPort: number;
  dns: DnsSettings;
  addressPolicy: AddressPolicy;
  refusedRanges: string[];
  allowCidrs: string[];
  mtaSts: MtaStsConfig;
  dane: DaneConfig;
}

/** The sections and keys outbound_mx.ini may hold (PKG-4: anything else is reported). */
export const OUTBOUND_MX_SCHEMA: IniSchema = {
  main: ['max_mx', 'max_mx_records', 'max_addresses_per_mx', 'mx_port'],
  dns: ['servers', 'timeout', 'tries', 'cache_mb', 'cache_max_ttl'],
  addresses: ['refuse', 'allow'],
  dane: ['mode', 'trusted_resolvers', 'probe', 'check_interval'],
  mta_sts: [
    'enabled',
    'recheck',
    'negative_ttl',
    'fetch_timeout',
    'https_port',
    'ca_file',
    'refresh_interval',
    'refresh_before',
    'refresh_concurrency',
    'memory_mb',
  ],
};

/** The range class names ipaddr.js reports (`range()`), IPv4 and IPv6: what `[addresses] refuse` may name. */
export const RANGE_NAMES: ReadonlySet<string> = new Set([
  'unicast',
  ...Object.keys((ipaddr.IPv4.prototype as unknown as { SpecialRanges: object }).SpecialRanges),
  ...Object.keys((ipaddr.IPv6.prototype as unknown as { SpecialRanges: object }).SpecialRanges),
]);

function refusedRangesValue(value: unknown): string[] {
  const names = value === undefined ? [...DEFAULT_REFUSED_RANGES] : listValue(value);
  const unknown = names.filter((name) => !RANGE_NAMES.has(name));
  if (unknown.length > 0) {
    // A typo (privte) would quietly stop refusing the range it meant.
    throw new Error(
      `[addresses] refuse=${String(value)}: unknown range name${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} ` +
        `(ipaddr.js names: ${[...RANGE_NAMES].join(', ')})`,
    );
  }
  return names;
}

/** A list of DNS server addresses (`host`, `host:port`, `[v6]:port`); a bad entry is an error naming the key. */
function serverList(section: string, key: string, value: unknown): string[] {
  const servers = listValue(value);
  for (const server of servers) {
    try {
      parseServer(server);
    } catch (err) {
      throw new Error(`[${section}] ${key}=${String(value)}: ${(err as Error).message}`);
    }
  }
  return servers;
}

export function parseOutboundMxConfig(ini: IniFile): OutboundMxConfig {
  const main = ini.main ?? {};
  const dnsSection = ini.dns ?? {};
  const addresses = ini.addresses ?? {};
  const refusedRanges = refusedRangesValue(addresses.refuse);
  const allowCidrs = listValue(addresses.allow);
  const servers = serverList('dns', 'servers', dnsSection.servers);
  const sts = ini.mta_sts ?? {};
  const enabled = String(sts.enabled ?? 'true')
    .trim()
    .toLowerCase();
  if (!['true', 'false', 'yes', 'no', '1', '0', 'on', 'off'].includes(enabled))
    throw new Error(`[mta_sts] enabled=${enabled}: expected true or false`);
  const caFile = String(sts.ca_file ?? '').trim();
  const daneSection = ini.dane ?? {};
  const daneMode = String(daneSection.mode ?? 'on')
    .trim()
    .toLowerCase();
  if (daneMode !== 'on' && daneMode !== 'observe' && daneMode !== 'off') throw new Error(`[dane] mode=${daneMode}: expected on, observe or off`);
  const trustedResolvers = serverList('dane', 'trusted_resolvers', daneSection.trusted_resolvers);
  const probe = String(daneSection.probe ?? '.').trim() || '.';
  const resolvers = resolverTrust(servers.length > 0 ? servers : getServers(), trustedResolvers);
  return {
    maxMx: integerValue('main', 'max_mx', main.max_mx, DEFAULT_MAX_MX, 1, 100),
    maxMxRecords: integerValue('main', 'max_mx_records', main.max_mx_records, DEFAULT_MAX_MX_RECORDS, 1, 1000),
    maxAddressesPerMx: integerValue('main', 'max_addresses_per_mx', main.max_addresses_per_mx, DEFAULT_MAX_ADDRESSES_PER_MX, 1, 64),
    mxPort: integerValue('main', 'mx_port', main.mx_port, DEFAULT_MX_PORT, 1, 65535),
    dns: {
      servers,
      timeoutMs: Math.round(numberValue('dns', 'timeout', dnsSection.timeout, DEFAULT_DNS_TIMEOUT_S, 0.1, 60) * 1000),
      tries: integerValue('dns', 'tries', dnsSection.tries, DEFAULT_DNS_TRIES, 1, 10),
      cacheBytes: integerValue('dns', 'cache_mb', dnsSection.cache_mb, DEFAULT_CACHE_MB, 0, 4096) * 1024 * 1024,
      cacheMaxTtlS: integerValue('dns', 'cache_max_ttl', dnsSection.cache_max_ttl, DEFAULT_CACHE_MAX_TTL_S, 1, 604800),
      // DANE-1: DO and AD on every query while DANE is on or observed; DANE-8: AD believed only from declared resolvers.
      dnssec: daneMode !== 'off',
      trustAd: daneMode !== 'off' && resolvers.kind === 'declared',
    },
    dane: {
      mode: daneMode,
      trustedResolvers,
      resolvers,
      probe,
      checkIntervalMs: integerValue('dane', 'check_interval', daneSection.check_interval, DEFAULT_DANE_CHECK_INTERVAL_S, 10, 86400) * 1000,
    },
    addressPolicy: makeAddressPolicy(refusedRanges, allowCidrs),
    refusedRanges,
    allowCidrs,
    mtaSts: {
      enabled: ['true', 'yes', '1', 'on'].includes(enabled),
      recheckMs: integerValue('mta_sts', 'recheck', sts.recheck, 60, 1, 86400) * 1000,
      negativeTtlMs: integerValue('mta_sts', 'negative_ttl', sts.negative_ttl, 300, 0, 86400) * 1000,
      fetchTimeoutMs: Math.round(numberValue('mta_sts', 'fetch_timeout', sts.fetch_timeout, 20, 0.1, 55) * 1000),
      httpsPort: integerValue('mta_sts', 'https_port', sts.https_port, 443, 1, 65535),
      caFile: caFile === '' ? null : caFile,
      refreshIntervalMs: integerValue('mta_sts', 'refresh_interval', sts.refresh_interval, 3600, 0, 604800) * 1000,
      refreshBeforeMs: integerValue('mta_sts', 'refresh_before', sts.refresh_before, 86400, 0, 31557600) * 1000,
      refreshConcurrency: integerValue('mta_sts', 'refresh_concurrency', sts.refresh_concurrency, 4, 1, 64),
      memoryBudgetBytes: integerValue('mta_sts', 'memory_mb', sts.memory_mb, DEFAULT_MEMORY_BUDGET_MB, 1, 65536) * 1024 * 1024,
    },
  };
}
