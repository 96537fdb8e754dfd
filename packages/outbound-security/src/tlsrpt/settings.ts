/**
 * TLS reporting settings (RPT-3, issue 13 item 4), parsed from one ini
 * section (`[tlsrpt]`, wherever the wiring puts it). Every key, its default:
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `enabled` | `false` | record sessions and send reports |
 * | `sender` | (required) | the address report messages come from; its domain is the submitter (file name, headers, DKIM `d=`) |
 * | `organization` | the submitter domain | `organization-name` of every report |
 * | `contact` | the sender address | `contact-info` of every report |
 * | `dkim_key_file` | (none) | PEM RSA private key that signs report messages (RFC 8460 §5.3.1), relative to the base directory; the signer (nodemailer's DKIM module, rsa-sha256) takes RSA keys only |
 * | `dkim_selector` | (none) | its selector; required with the key file and only with it |
 * | `send_days_without_failures` | `true` | whether a day whose sessions all succeeded is reported too |
 * | `delay_window` | `14400` (4 h) | seconds: reports go out after a random delay of up to this much after the day ends |
 * | `flush_interval` | `30` | seconds between two writes of the counts to the store |
 * | `max_pending` | `10000` | kinds of sessions held in memory between two writes (OPS-5) |
 * | `max_policy_strings` | `100` | RPT-8: strings kept per policy (1-520) |
 * | `max_domains_recorded_per_day` | `50000` | RPT-8: Policy Domains one process records a UTC day |
 * | `max_policies_per_report` | `100` | RPT-8: policies in one report, the busiest kept |
 * | `max_report_bytes` | `1048576` | RPT-8: the largest gzip-compressed report sent, by mail or https (1024-10485760) |
 * | `max_report_addresses` | `2` | RPT-8: report addresses (rua URIs) used per record (1-10) |
 * | `max_domains_reported_per_day` | `1000` | RPT-8: Policy Domains one process sends a report for, per day |
 * | `https_ports` | `443` | RPT-9: ports an `https:` report address may use |
 *
 * Misconfiguration never half-enables reporting: a missing or bad sender, an
 * unreadable or invalid key, a bad value → `misconfigured` with the reason,
 * and reporting stays off (no report rather than a broken one).
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { booleanValue, integerValue, listValue, type IniSection } from '../ini';
import type { ReportIdentity } from './deliver';
import { DEFAULT_REPORT_LIMITS, type ReportLimits } from './limits';
import { DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_MAX_ENTRIES } from './recorder';
import { DEFAULT_DELAY_WINDOW_MS } from './schedule';
import { MAX_REPORT_URIS, parseMailAddress } from './txt';
import { MAX_REPORT_BYTES } from './https';
import { MAX_POLICY_STRINGS } from './record';

export const TLSRPT_KEYS = [
  'enabled',
  'sender',
  'organization',
  'contact',
  'dkim_key_file',
  'dkim_selector',
  'send_days_without_failures',
  'delay_window',
  'flush_interval',
  'max_pending',
  'max_policy_strings',
  'max_domains_recorded_per_day',
  'max_policies_per_report',
  'max_report_bytes',
  'max_report_addresses',
  'max_domains_reported_per_day',
  'https_ports',
] as const;

export interface DkimSettings {
  /** Absolute path of the key file. */
  keyFile: string;
  selector: string;
  /** The key as read at startup (PEM). */
  privateKey: string;
  /** `d=`: the submitter domain. */
  domain: string;
}

export interface TlsReportingSettings {
  identity: ReportIdentity;
  dkim: DkimSettings | null;
  sendDaysWithoutFailures: boolean;
  delayWindowMs: number;
  flushIntervalMs: number;
  maxPending: number;
  /** RPT-8, RPT-9: the bounds of what is recorded and reported. */
  limits: ReportLimits;
}

export type TlsReportingConfig =
  { kind: 'on'; settings: TlsReportingSettings } | { kind: 'off' } | { kind: 'misconfigured'; reason: string };

export interface ParseOptions {
  /** Anchors a relative `dkim_key_file` (the Haraka directory). */
  baseDir: string;
  /** For messages: the section as the admin sees it (default `tlsrpt`). */
  section?: string;
  /** Reads the key file (tests). */
  readFile?: (file: string) => string;
}

const MAX_TEXT = 255;
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseTlsReportingSettings(values: IniSection | undefined, options: ParseOptions): TlsReportingConfig {
  const section = options.section ?? 'tlsrpt';
  const ini = values ?? {};
  try {
    if (!booleanValue(section, 'enabled', ini.enabled, false)) return { kind: 'off' };
    return { kind: 'on', settings: parseEnabled(section, ini, options) };
  } catch (err) {
    return { kind: 'misconfigured', reason: `${(err as Error).message}; TLS reporting stays off` };
  }
}

function text(section: string, ini: IniSection, key: string): string | undefined {
  const value = ini[key];
  if (value === undefined || value === null || String(value).trim() === '') return undefined;
  const trimmed = String(value).trim();
  if (trimmed.length > MAX_TEXT || /[\x00-\x1f\x7f]/.test(trimmed)) {
    throw new Error(`[${section}] ${key}: at most ${MAX_TEXT} printable characters`);
  }
  return trimmed;
}

function parseEnabled(section: string, ini: IniSection, options: ParseOptions): TlsReportingSettings {
  const senderText = text(section, ini, 'sender');
  if (senderText === undefined) throw new Error(`[${section}] sender is required: the address report messages come from`);
  const sender = parseMailAddress(senderText);
  if (typeof sender === 'string') throw new Error(`[${section}] sender=${senderText}: ${sender}`);
  const identity: ReportIdentity = {
    sender: sender.address,
    submitter: sender.domain,
    organization: text(section, ini, 'organization') ?? sender.domain,
    contact: text(section, ini, 'contact') ?? sender.address,
  };
  return {
    identity,
    dkim: parseDkim(section, ini, sender.domain, options),
    sendDaysWithoutFailures: booleanValue(section, 'send_days_without_failures', ini.send_days_without_failures, true),
    delayWindowMs: integerValue(section, 'delay_window', ini.delay_window, DEFAULT_DELAY_WINDOW_MS / 1000, 0, 86_400) * 1000,
    flushIntervalMs: integerValue(section, 'flush_interval', ini.flush_interval, DEFAULT_FLUSH_INTERVAL_MS / 1000, 1, 300) * 1000,
    maxPending: integerValue(section, 'max_pending', ini.max_pending, DEFAULT_MAX_ENTRIES, 100, 1_000_000),
    limits: parseLimits(section, ini),
  };
}

/** RPT-8, RPT-9: `[tlsrpt]`'s bounds, each within its hard ceiling. */
function parseLimits(section: string, ini: IniSection): ReportLimits {
  const d = DEFAULT_REPORT_LIMITS;
  const int = (key: string, fallback: number, min: number, max: number): number => integerValue(section, key, ini[key], fallback, min, max);
  return {
    maxPolicyStrings: int('max_policy_strings', d.maxPolicyStrings, 1, MAX_POLICY_STRINGS),
    maxDomainsRecordedPerDay: int('max_domains_recorded_per_day', d.maxDomainsRecordedPerDay, 1, 10_000_000),
    maxPoliciesPerReport: int('max_policies_per_report', d.maxPoliciesPerReport, 1, 10_000),
    maxReportBytes: int('max_report_bytes', d.maxReportBytes, 1024, MAX_REPORT_BYTES),
    maxReportAddresses: int('max_report_addresses', d.maxReportAddresses, 1, MAX_REPORT_URIS),
    maxDomainsReportedPerDay: int('max_domains_reported_per_day', d.maxDomainsReportedPerDay, 1, 10_000_000),
    httpsPorts: portsValue(section, 'https_ports', ini.https_ports, d.httpsPorts),
  };
}

function portsValue(section: string, key: string, value: unknown, fallback: readonly number[]): readonly number[] {
  const ports = listValue(value);
  if (ports.length === 0) return fallback;
  return ports.map((port) => {
    const n = /^\d{1,5}$/.test(port) ? Number(port) : 0;
    if (n < 1 || n > 65_535) throw new Error(`[${section}] ${key}=${String(value).trim()}: "${port}" is not a port (1-65535)`);
    return n;
  });
}

function parseDkim(section: string, ini: IniSection, domain: string, options: ParseOptions): DkimSettings | null {
  const keyFile = text(section, ini, 'dkim_key_file');
  const selector = text(section, ini, 'dkim_selector');
  if (keyFile === undefined && selector === undefined) return null;
  if (keyFile === undefined) throw new Error(`[${section}] dkim_selector=${selector} needs dkim_key_file`);
  if (selector === undefined) throw new Error(`[${section}] dkim_key_file=${keyFile} needs dkim_selector`);
  if (!SELECTOR.test(selector)) throw new Error(`[${section}] dkim_selector=${selector}: not a DNS name`);
  const file = path.resolve(options.baseDir, keyFile);
  let privateKey: string;
  try {
    privateKey = (options.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(file);
  } catch (err) {
    throw new Error(`[${section}] dkim_key_file=${keyFile}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let type: string | undefined;
  try {
    type = createPrivateKey(privateKey).asymmetricKeyType;
  } catch (err) {
    throw new Error(`[${section}] dkim_key_file=${keyFile}: ${file} is not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (type !== 'rsa')
    throw new Error(`[${section}] dkim_key_file=${keyFile}: a ${type} key; report messages are DKIM-signed with RSA keys`);
  return { keyFile: file, selector, privateKey, domain };
}
