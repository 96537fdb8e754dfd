/**
 * The outbound_tls plugin's settings, parsed and validated from
 * `config/outbound_tls.ini`. Shared by the plugin and the CLI so both open the
 * same stores.
 */
import path from 'node:path';
import { SecLevel, levelName, parseLevel } from '../sec-level';
import { booleanValue, integerValue, type IniFile, type IniSchema, type IniSection } from '../ini';
import type { RedisBackend, StoreBackend } from '../store/settings';
import { TLSRPT_KEYS, parseTlsReportingSettings, type TlsReportingConfig } from '../tlsrpt/settings';
import type { TlsRequiredHeaderSetting } from '../requiretls/tls-required-header';

/** The sections and keys outbound_tls.ini may hold (PKG-4); [redis] is passed to haraka-plugin-redis as is. */
export const OUTBOUND_TLS_SCHEMA: IniSchema = {
  main: [
    'data_dir',
    'store',
    'redis_prefix',
    'redis_timeout',
    'on_store_error',
    'plain_retry',
    'smart_host_ratchet',
    'auth_min_level',
  ],
  redis: '*',
  metrics: ['listen'],
  tlsrpt: TLSRPT_KEYS,
  requiretls: ['enabled', 'tls_required_header'],
};

export interface OutboundTlsConfig {
  /** Absolute directory of the embedded file store. */
  dataDir: string;
  store: StoreBackend;
  /** The Redis settings, whichever store is in use (the CLI migrates between the two). */
  redis: RedisBackend;
  onStoreError: 'defer' | 'send';
  plainRetry: boolean;
  smartHostRatchet: boolean;
  /** TLS-8: the level a connection must reach before it may carry AUTH credentials. */
  authMinLevel: SecLevel;
  /** `host:port` of the Prometheus listener, or null when off. */
  metricsListen: string | null;
  /**
   * RPT-1 … RPT-4: TLS reporting ([tlsrpt], off by default). Never throws:
   * a misconfigured section is `misconfigured` with the reason (logged at
   * load and reload) and reporting stays off.
   */
  tlsrpt: TlsReportingConfig;
  /** RT-1, RT-5: RFC 8689 on receipt ([requiretls]). */
  requiretls: RequireTlsSettings;
}

/** `[requiretls]`: RFC 8689 on receipt (RT-1, RT-5). */
export interface RequireTlsSettings {
  /** RT-1: advertise REQUIRETLS after STARTTLS and accept it on MAIL FROM (default off). */
  enabled: boolean;
  /** RT-5: whether `TLS-Required: No` marks a message (default honour). */
  tlsRequiredHeader: TlsRequiredHeaderSetting;
}

/** `harakaDir` anchors a relative data_dir (the directory holding config/). */
export function parseOutboundTlsConfig(ini: IniFile, harakaDir: string): OutboundTlsConfig {
  const main = ini.main ?? {};
  const metrics = ini.metrics ?? {};
  const onStoreError = String(main.on_store_error ?? 'defer').trim() || 'defer';
  if (onStoreError !== 'defer' && onStoreError !== 'send') {
    throw new Error(`[main] on_store_error=${onStoreError}: expected defer or send`);
  }
  const dataDir = String(main.data_dir ?? 'data').trim() || 'data';
  const listen = String(metrics.listen ?? '').trim();
  const backend = String(main.store ?? 'file').trim() || 'file';
  if (backend !== 'file' && backend !== 'redis') throw new Error(`[main] store=${backend}: expected file or redis`);
  const prefix = String(main.redis_prefix ?? 'haraka-outbound:').trim();
  if (!/^[\x21-\x7e]{0,64}$/.test(prefix))
    throw new Error(`[main] redis_prefix=${prefix}: printable ASCII without spaces, at most 64 characters`);
  const redis: RedisBackend = {
    backend: 'redis',
    prefix,
    commandTimeoutMs: integerValue('main', 'redis_timeout', main.redis_timeout, 1000, 50, 30000),
    plugin: ini.redis ?? {},
  };
  const authMin = String(main.auth_min_level ?? 'TLS_SECURE').trim() || 'TLS_SECURE';
  const authMinLevel = parseLevel(authMin);
  if (authMinLevel === null) throw new Error(`[main] auth_min_level=${authMin}: expected TLS_SECURE, TLS_INSECURE or PLAIN`);
  return {
    dataDir: path.resolve(harakaDir, dataDir),
    store: backend === 'file' ? { backend: 'file' } : redis,
    redis,
    onStoreError,
    plainRetry: booleanValue('main', 'plain_retry', main.plain_retry, true),
    smartHostRatchet: booleanValue('main', 'smart_host_ratchet', main.smart_host_ratchet, true),
    authMinLevel,
    metricsListen: listen === '' ? null : listen,
    tlsrpt: parseTlsReportingSettings(ini.tlsrpt, { baseDir: harakaDir }),
    requiretls: parseRequireTlsSettings(ini.requiretls ?? {}),
  };
}

/** TLS-9: a setting of outbound_tls.ini that lowers protection below its default, and what it gives up. */
export const WEAKENING_SETTINGS = ['on_store_error', 'smart_host_ratchet', 'auth_min_level'] as const;

export interface WeakeningSetting {
  setting: (typeof WEAKENING_SETTINGS)[number];
  text: string;
}

/** TLS-9: the settings that lower protection below the defaults (said at startup and every reload, and exported). */
export function weakeningSettings(config: Pick<OutboundTlsConfig, 'onStoreError' | 'smartHostRatchet' | 'authMinLevel'>): WeakeningSetting[] {
  const found: WeakeningSetting[] = [];
  if (config.onStoreError === 'send') {
    found.push({
      setting: 'on_store_error',
      text: 'on_store_error=send: while a store cannot be read, mail goes out without its stored level and cached MTA-STS policy',
    });
  }
  if (!config.smartHostRatchet) {
    found.push({
      setting: 'smart_host_ratchet',
      text: "smart_host_ratchet=false: relay hops do not carry the recipient domain's stored level (only the relay's own)",
    });
  }
  if (config.authMinLevel < SecLevel.TLS_SECURE) {
    found.push({
      setting: 'auth_min_level',
      text: `auth_min_level=${levelName(config.authMinLevel)}: smart-host credentials may go out without a certificate that authenticates the relay`,
    });
  }
  return found;
}

function parseRequireTlsSettings(section: IniSection): RequireTlsSettings {
  const header = String(section.tls_required_header ?? 'honour').trim().toLowerCase() || 'honour';
  // "honor" too: the admin's spelling is not the point.
  if (header !== 'honour' && header !== 'honor' && header !== 'ignore') {
    throw new Error(`[requiretls] tls_required_header=${header}: expected honour or ignore`);
  }
  return {
    enabled: booleanValue('requiretls', 'enabled', section.enabled, false),
    tlsRequiredHeader: header === 'ignore' ? 'ignore' : 'honour',
  };
}
