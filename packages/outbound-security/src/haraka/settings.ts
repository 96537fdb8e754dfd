/**
 * PKG-4 one owner per setting: the settings of this process, each ini file
 * read and watched once. haraka-config keeps one reload callback per file, so
 * two plugins watching one file means one of them never hears of changes:
 * here the first plugin that asks registers the file with its `config.get`,
 * and every change is parsed once and handed to every subscriber. The library
 * is loaded once per process, so both plugins share this module's registry.
 *
 * - outbound_mx.ini: outbound_mx's MX selection, DNS and MTA-STS settings.
 * - outbound_tls.ini + redis.ini: what both plugins need (data directory,
 *   store, Redis, on_store_error) and outbound_tls's own keys.
 * - outbound_tls_policy: the admin policy table (POL-1), owned by
 *   outbound_tls, read by both (the plan applies `exempt=mta-sts`). Its bad
 *   lines are reported with file and line and the rest applies; a file that
 *   cannot be read keeps the table in force (at startup: Haraka does not start).
 *
 * Startup: a value that cannot be used throws, naming the file (Haraka does
 * not start). Reload: a bad file is logged under its own name and everyone
 * keeps the running settings. Unknown sections and keys, and broken section
 * headers, are warnings (file, section, key) at startup and on every reload.
 * Each package plugin has its own `config` (defaults from its package's
 * config/, overrides from the admin's); the code defaults equal the shipped
 * ini defaults, so which plugin reads a shared file does not matter.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { HarakaConfig, HarakaLogger } from './api';
import { checkIni, formatWarning, type IniFile, type IniSchema, type IniWarning } from '../ini';
import { OUTBOUND_MX_SCHEMA, parseOutboundMxConfig, type OutboundMxConfig } from '../config/outbound-mx';
import { SharedStores, type StoreSettings } from '../state/open';
import { STORE_RECORD_FILE } from '../state/in-use';
import { setStoreUp } from '../metrics';
import { OUTBOUND_TLS_SCHEMA, parseOutboundTlsConfig, weakeningSettings, type OutboundTlsConfig } from '../config/outbound-tls';
import { POLICY_TABLE_FILE, readPolicyTable } from '../policy-table/file';
import { formatProblem, type PolicyTable } from '../policy-table/table';

/** The plugin asking: its name (for the log), its haraka-config and its logger. */
export interface SettingsHost extends HarakaLogger {
  name: string;
  config: HarakaConfig;
}

export const OUTBOUND_MX_INI = 'outbound_mx.ini';
export const OUTBOUND_TLS_INI = 'outbound_tls.ini';
export const REDIS_INI = 'redis.ini';

/** Known keys per file; redis.ini belongs to haraka-plugin-redis (and other plugins): not checked. */
export const INI_SCHEMAS: Readonly<Record<string, IniSchema>> = {
  [OUTBOUND_MX_INI]: OUTBOUND_MX_SCHEMA,
  [OUTBOUND_TLS_INI]: OUTBOUND_TLS_SCHEMA,
};

/** outbound_mx.ini, with the extra CA file for policy hosts already read. */
export interface MxSettings {
  mx: OutboundMxConfig;
  /** PEM text of `[mta_sts] ca_file` (empty when none). */
  extraCa: string[];
}

/** outbound_tls.ini and redis.ini: the settings both plugins use. */
export interface SharedSettings {
  tls: OutboundTlsConfig;
  /** config/redis.ini ([server], [opts]) for the Redis store. */
  redisIni: IniFile;
}

export interface Settings<T> {
  /** The settings in force. */
  readonly current: T;
  /** `listener` runs after every applied reload, with the new and the previous settings. */
  subscribe(listener: (next: T, previous: T) => void): void;
}

/** The Haraka directory: HARAKA (set by `haraka -c DIR`) or the working directory. */
export function harakaDir(): string {
  return process.env.HARAKA ?? process.cwd();
}

/**
 * Warnings for one file of `configDir`: unknown sections and keys, and header
 * lines haraka-config does not take as headers (from the raw text: one small
 * read at startup and on reload).
 */
export function iniWarnings(file: string, ini: IniFile, configDir: string): IniWarning[] {
  const schema = INI_SCHEMAS[file];
  if (!schema) return [];
  let text: string | undefined;
  try {
    text = fs.readFileSync(path.join(configDir, file), 'utf8');
  } catch {
    text = undefined;
  }
  return checkIni(file, ini, schema, text);
}

/** Whether the Haraka config directory holds `file`. */
function inConfigDir(file: string): boolean {
  return fs.existsSync(path.join(harakaDir(), 'config', file));
}

/** What the Redis store connects to when there is no redis.ini (haraka-plugin-redis's own defaults). */
const REDIS_DEFAULTS = ' (no redis.ini: haraka-plugin-redis defaults, 127.0.0.1:6379, under [redis] of outbound_tls.ini)';

/** Runs `parse`, naming `file` in what it throws. */
function inFile<T>(file: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new FileError(file, (err as Error).message);
  }
}

/** An unusable value, with the file it is in. */
class FileError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A message about a file that does not stop its settings from applying, and the log level it is logged at. */
export interface Notice {
  level: 'warn' | 'error';
  message: string;
}

export interface SettingsSpec<T> {
  files: readonly string[];
  /** Files read when present (redis.ini): the log names them only when the Haraka config directory holds them. */
  optionalFiles?: readonly string[];
  /** The plugin whose log carries this file's messages when it is loaded (else the first host). */
  owner: string;
  /**
   * Reads and parses the files. Every read of a file through `config` passes
   * `onChange` (haraka-config keeps the callback of a file's latest read).
   * Throws (a FileError naming the file) when a file cannot be used.
   */
  read(config: HarakaConfig, onChange: (file: string, err?: Error) => void): { value: T; notices: Notice[] };
  describe(value: T): string;
}

/** The spec of ini files: read through haraka-config, unknown sections and keys as warnings (PKG-4). */
function iniSpec<T>(spec: Omit<SettingsSpec<T>, 'read'> & { parse(ini: Record<string, IniFile>, haraka: string): T }): SettingsSpec<T> {
  return {
    ...spec,
    read: (config, onChange) => {
      const configDir = path.join(harakaDir(), 'config');
      const ini: Record<string, IniFile> = {};
      const notices: Notice[] = [];
      for (const file of spec.files) {
        ini[file] = (config.get(file, {}, (err?: Error) => onChange(file, err)) ?? {}) as IniFile;
        for (const w of iniWarnings(file, ini[file], configDir)) notices.push({ level: 'warn', message: formatWarning(w) });
      }
      return { value: spec.parse(ini, harakaDir()), notices };
    },
  };
}

export class WatchedSettings<T> implements Settings<T> {
  private value: T | undefined;
  private readonly hosts: SettingsHost[] = [];
  private readonly listeners: Array<(next: T, previous: T) => void> = [];

  constructor(private readonly spec: SettingsSpec<T>) {}

  get current(): T {
    if (this.value === undefined) throw new Error(`${this.spec.files.join(', ')}: not loaded yet`);
    return this.value;
  }

  subscribe(listener: (next: T, previous: T) => void): void {
    this.listeners.push(listener);
  }

  /** The first host reads and watches the files; later hosts share what it read. Throws when a file cannot be used. */
  load(host: SettingsHost): this {
    if (!this.hosts.some((h) => h === host)) this.hosts.push(host);
    if (this.value !== undefined) return this;
    const { value, notices } = this.read();
    this.report(notices);
    this.value = value;
    this.log().loginfo(`${this.presentFiles().join(', ')}: ${this.spec.describe(value)}`);
    return this;
  }

  /** The files of the spec as the log names them: an optional one only when it exists. */
  private presentFiles(): string[] {
    return this.spec.files.filter((file) => !this.spec.optionalFiles?.includes(file) || inConfigDir(file));
  }

  private log(): SettingsHost {
    const host = this.hosts.find((h) => h.name === this.spec.owner) ?? this.hosts[0];
    if (!host) throw new Error('no plugin loaded these settings');
    return host;
  }

  private read(): { value: T; notices: Notice[] } {
    const host = this.hosts[0] as SettingsHost;
    return this.spec.read(host.config, (file, err) => this.changed(file, err));
  }

  private report(notices: readonly Notice[]): void {
    const log = this.log();
    for (const notice of notices) (notice.level === 'error' ? log.logerror : log.logwarn).call(log, notice.message);
  }

  private changed(file: string, err?: Error): void {
    const log = this.log();
    if (err) {
      log.logerror(`${file}: not reloaded, keeping the running settings: ${err.message}`);
      return;
    }
    let next: { value: T; notices: Notice[] };
    try {
      next = this.read();
    } catch (e) {
      const [failed, detail] = e instanceof FileError ? [e.file, e.detail] : [file, (e as Error).message];
      log.logerror(`${failed} not reloaded, keeping the running settings: ${detail}`);
      return;
    }
    this.report(next.notices);
    const previous = this.current;
    this.value = next.value;
    log.loginfo(`${file} reloaded: ${this.spec.describe(next.value)}`);
    for (const listener of this.listeners) {
      try {
        listener(next.value, previous);
      } catch (e) {
        log.logerror(`${file}: applying the reloaded settings failed: ${(e as Error).stack ?? String(e)}`);
      }
    }
  }
}

function readCaFile(caFile: string | null): string[] {
  if (!caFile) return [];
  try {
    return [fs.readFileSync(caFile, 'utf8')];
  } catch (err) {
    throw new Error(`[mta_sts] ca_file=${caFile}: ${(err as Error).message}`);
  }
}

export const MX_SETTINGS: SettingsSpec<MxSettings> = iniSpec({
  files: [OUTBOUND_MX_INI],
  owner: 'outbound_mx',
  parse: (ini) =>
    inFile(OUTBOUND_MX_INI, () => {
      const mx = parseOutboundMxConfig(ini[OUTBOUND_MX_INI] ?? {});
      return { mx, extraCa: readCaFile(mx.mtaSts.caFile) };
    }),
  describe: ({ mx }) =>
    `max_mx=${mx.maxMx} max_mx_records=${mx.maxMxRecords} max_addresses_per_mx=${mx.maxAddressesPerMx} ` +
    `mx_port=${mx.mxPort} dns servers=${mx.dns.servers.join(',') || 'system'} timeout=${mx.dns.timeoutMs}ms ` +
    `tries=${mx.dns.tries} refuse=${mx.refusedRanges.join(',')} allow=${mx.allowCidrs.join(',') || '-'} ` +
    `mta_sts=${mx.mtaSts.enabled ? 'on' : 'off'}`,
});

const sharedIni = iniSpec<SharedSettings>({
  files: [OUTBOUND_TLS_INI, REDIS_INI],
  optionalFiles: [REDIS_INI],
  owner: 'outbound_tls',
  parse: (ini, haraka) => ({
    tls: inFile(OUTBOUND_TLS_INI, () => parseOutboundTlsConfig(ini[OUTBOUND_TLS_INI] ?? {}, haraka)),
    redisIni: ini[REDIS_INI] ?? {},
  }),
  describe: ({ tls }) =>
    `data_dir=${tls.dataDir} store=${tls.store.backend}${tls.store.backend === 'redis' && !inConfigDir(REDIS_INI) ? REDIS_DEFAULTS : ''} ` +
    `on_store_error=${tls.onStoreError} plain_retry=${tls.plainRetry} ` +
    `smart_host_ratchet=${tls.smartHostRatchet} metrics listen=${tls.metricsListen ?? '-'} tlsrpt=${tls.tlsrpt.kind}`,
});

/**
 * outbound_tls.ini and redis.ini. A misconfigured [tlsrpt] does not stop the
 * rest from applying: it is an error in the log (at startup and at every
 * reload) and TLS reporting stays off (RPT-3, issue 13 item 4).
 */
export const SHARED_SETTINGS: SettingsSpec<SharedSettings> = {
  ...sharedIni,
  read: (config, onChange) => {
    const read = sharedIni.read(config, onChange);
    const tlsrpt = read.value.tls.tlsrpt;
    if (tlsrpt.kind === 'misconfigured') read.notices.push({ level: 'error', message: `${OUTBOUND_TLS_INI}: ${tlsrpt.reason}` });
    // TLS-9: a setting that lowers protection below its default is never silent.
    for (const weak of weakeningSettings(read.value.tls))
      read.notices.push({ level: 'warn', message: `${OUTBOUND_TLS_INI}: ${weak.text}` });
    return read;
  },
};

/**
 * POL-1: the policy table. haraka-config watches the file (its `binary` read
 * registers the callback and the directory watch); the text is read from the
 * Haraka config directory here, so every problem names the file and line, a
 * deleted file is an empty table, and a file that cannot be read is an error.
 */
export const POLICY_TABLE_SETTINGS: SettingsSpec<PolicyTable> = {
  files: [POLICY_TABLE_FILE],
  owner: 'outbound_tls',
  read: (config, onChange) => {
    config.get(POLICY_TABLE_FILE, 'binary', (err?: Error) => onChange(POLICY_TABLE_FILE, err));
    const { table } = inFile(POLICY_TABLE_FILE, () => readPolicyTable(path.join(harakaDir(), 'config')));
    const notices: Notice[] = table.problems.map((p) => ({ level: p.severity === 'error' ? 'error' : 'warn', message: formatProblem(p) }));
    return { value: table, notices };
  },
  describe: (table) => {
    const kinds = ['domain', 'subdomains', 'relay'].map((kind) => `${table.rules.filter((r) => r.key.kind === kind).length} ${kind}`);
    return `policy table: ${table.rules.length} rules in force (${kinds.join(', ')}), ${table.errors} lines ignored`;
  },
};

// This process's registry: one watcher per file, whichever plugin asks first.
const mxSettings = new WatchedSettings(MX_SETTINGS);
const sharedSettings = new WatchedSettings(SHARED_SETTINGS);
const policyTable = new WatchedSettings(POLICY_TABLE_SETTINGS);

/** The policy table of this process (POL-1), read and watched by the first plugin asking. Throws when it cannot be read. */
export function policyTableSettings(host: SettingsHost): Settings<PolicyTable> {
  return policyTable.load(host);
}

/** outbound_mx.ini of this process (read and watched by the first plugin asking). Throws when it cannot be used. */
export function outboundMxSettings(host: SettingsHost): Settings<MxSettings> {
  return mxSettings.load(host);
}

let stores: SharedStores | undefined;

/** outbound_tls.ini and redis.ini of this process: the settings both plugins share. Throws when they cannot be used. */
export function outboundTlsSettings(host: SettingsHost): Settings<SharedSettings> {
  const settings = sharedSettings.load(host);
  if (!stores) {
    // Subscribed before any plugin: a plugin hearing of a change already finds the stores moved.
    const log = { info: (m: string) => host.loginfo(m), warn: (m: string) => host.logwarn(m), error: (m: string) => host.logerror(m) };
    // ST-7: the record of the store in use lives in the Haraka directory, which a change of data_dir does not move.
    const recordFile = path.join(harakaDir(), STORE_RECORD_FILE);
    const storeSettings = (s: SharedSettings): StoreSettings => ({
      dataDir: s.tls.dataDir,
      store: s.tls.store,
      redisIni: s.redisIni,
      log,
      recordFile,
      onStoreError: s.tls.onStoreError,
      // OPS-7: outbound_security_store_up{store="redis",address}.
      onAvailability: (address, up) => setStoreUp('redis', address, up),
    });
    const created = new SharedStores(storeSettings(settings.current));
    stores = created;
    settings.subscribe((next) => {
      if (created.update(storeSettings(next))) host.lognotice(`ratchet and MTA-STS policy cache now in ${created.description}`);
    });
  }
  return settings;
}

/** The ratchet and policy stores of this process (both plugins), following outbound_tls.ini and redis.ini. */
export function sharedStores(host: SettingsHost): SharedStores {
  outboundTlsSettings(host);
  return stores as SharedStores;
}
