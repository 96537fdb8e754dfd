/**
 * TLSA records (RFC 6698 §2) as validated values, and which of them SMTP can
 * use (DANE-3, DANE-4):
 *
 * - Only DANE-TA(2) and DANE-EE(3) are usable for SMTP; PKIX-TA(0) and
 *   PKIX-EE(1) are not (RFC 7672 §3.1.3). Unknown usages, selectors (other than
 *   Cert(0) and SPKI(1)) and matching types (other than Full(0), SHA2-256(1) and
 *   SHA2-512(2)) are unusable (RFC 6698 §4.1), and so is malformed data: a digest
 *   of the wrong length, no data at all, or (DANE-10) Full(0) data that is not a
 *   DER certificate (selector 0) or SubjectPublicKeyInfo (selector 1), read as
 *   OpenSSL reads it (`association-data.ts`).
 * - DANE-10, bounded cost: at most `MAX_FULL_DATA_READS` Full(0) records of an
 *   RRset are read (the rest are unusable, "not read"), and the match uses at
 *   most `MAX_USABLE_TLSA_RECORDS` usable ones (`match.ts`).
 * - Digest algorithm agility (RFC 7671 §9): for one usage and selector, when
 *   SHA2-512 records are published, the SHA2-256 ones are ignored; Full(0)
 *   records always count.
 * - An RRset whose records are all unusable still requires TLS, without
 *   authentication (DANE-3, RFC 7672 §3.1.3): `unusable-only`, not "no DANE".
 *
 * Records come from dns-packet's decoded TLSA data or from presentation text
 * (`3 1 1 8f2a…`, as `dig` prints it), for the CLI and tests.
 */

import { readFullData } from './association-data';

/** DANE-10: usable records of one RRset a match uses; the rest are ignored, logged and counted. */
export const MAX_USABLE_TLSA_RECORDS = 16;
/** DANE-10: Full(0) records of one RRset whose data is read (100–300 µs each the first time). */
export const MAX_FULL_DATA_READS = 32;

export const TlsaUsage = { PKIX_TA: 0, PKIX_EE: 1, DANE_TA: 2, DANE_EE: 3 } as const;
export const TlsaSelector = { CERT: 0, SPKI: 1 } as const;
export const TlsaMatching = { FULL: 0, SHA2_256: 1, SHA2_512: 2 } as const;

/** Digest lengths in bytes of the matching types that are digests. */
const DIGEST_BYTES: Readonly<Record<number, number>> = { [TlsaMatching.SHA2_256]: 32, [TlsaMatching.SHA2_512]: 64 };
/** RFC 7218 names, for messages. */
const USAGE_NAMES: Readonly<Record<number, string>> = { 0: 'PKIX-TA', 1: 'PKIX-EE', 2: 'DANE-TA', 3: 'DANE-EE' };
const SELECTOR_NAMES: Readonly<Record<number, string>> = { 0: 'Cert', 1: 'SPKI' };
const MATCHING_NAMES: Readonly<Record<number, string>> = { 0: 'Full', 1: 'SHA2-256', 2: 'SHA2-512' };
/** What each selector takes, for messages. */
const SOURCE_NAMES: Readonly<Record<number, string>> = { 0: 'certificate', 1: 'public key (SPKI)' };
/** Hex digits of the association data shown in messages. */
const SHOWN_HEX_DIGITS = 16;

/** One TLSA record: the three parameters (0–255 each) and the certificate association data. */
export interface TlsaRecord {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

/** TLSA RDATA as dns-packet decodes it. */
export interface TlsaAnswerData {
  usage: number;
  selector: number;
  matchingType: number;
  certificate: Uint8Array;
}

export type TlsaParse = { kind: 'record'; record: TlsaRecord } | { kind: 'invalid'; reason: string };

export interface UnusableTlsa {
  record: TlsaRecord;
  reason: string;
}

/**
 * What an RRset offers: `usable` records to match (DANE-4), or only unusable
 * ones (TLS is still required, DANE-3), or nothing.
 */
export type TlsaRrset =
  | { kind: 'usable'; usable: TlsaRecord[]; unusable: UnusableTlsa[] }
  | { kind: 'unusable-only'; unusable: UnusableTlsa[] }
  | { kind: 'empty' };

const isOctet = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 255;

/** A record from dns-packet's decoded TLSA data; the data is copied (not a view of the DNS message). */
export function tlsaFromAnswer(answer: TlsaAnswerData): TlsaParse {
  const { usage, selector, matchingType, certificate } = answer;
  for (const [field, value] of [
    ['usage', usage],
    ['selector', selector],
    ['matching type', matchingType],
  ] as const) {
    if (!isOctet(value)) return { kind: 'invalid', reason: `TLSA ${field} ${String(value)} is not a number from 0 to 255` };
  }
  if (!(certificate instanceof Uint8Array)) return { kind: 'invalid', reason: 'TLSA certificate association data is not bytes' };
  return { kind: 'record', record: { usage, selector, matchingType, data: Buffer.from(certificate) } };
}

/**
 * A record from presentation text: `3 1 1 <hex>`, the hex possibly split by
 * white space or wrapped in parentheses; a leading owner, TTL and class up to
 * `TLSA` (a zone file or `dig` line) are skipped.
 */
export function parseTlsaText(text: string): TlsaParse {
  const tokens = text.replace(/[()]/g, ' ').trim().split(/\s+/);
  const typeAt = tokens.findIndex((t) => t.toUpperCase() === 'TLSA');
  const fields = typeAt >= 0 ? tokens.slice(typeAt + 1) : tokens;
  const [usage, selector, matchingType, ...hexParts] = fields;
  const numbers = [usage, selector, matchingType].map((t) => (t !== undefined && /^\d{1,3}$/.test(t) ? Number(t) : NaN));
  if (!numbers.every(isOctet)) {
    return { kind: 'invalid', reason: `"${text.trim()}" does not start with three numbers from 0 to 255 (usage, selector, matching type)` };
  }
  const hex = hexParts.join('');
  if (hex === '') return { kind: 'invalid', reason: `"${text.trim()}" has no certificate association data` };
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) {
    return { kind: 'invalid', reason: `certificate association data "${shorten(hex)}" is not an even number of hex digits` };
  }
  const [u, s, m] = numbers as [number, number, number];
  return { kind: 'record', record: { usage: u, selector: s, matchingType: m, data: Buffer.from(hex, 'hex') } };
}

/** `3 1 1 8f2ac1d09e4b7a61…`: the record as text, its data shortened, for logs and reasons. */
export function formatTlsa(record: TlsaRecord): string {
  return `${record.usage} ${record.selector} ${record.matchingType} ${shortHex(record.data) || '(no data)'}`;
}

/** `DANE-EE SPKI SHA2-256`: the parameters by their RFC 7218 names (numbers where unknown). */
export function describeTlsaParameters(record: TlsaRecord): string {
  return `${usageAndSelector(record)} ${MATCHING_NAMES[record.matchingType] ?? `matching type ${record.matchingType}`}`;
}

function usageAndSelector(record: TlsaRecord): string {
  return `${USAGE_NAMES[record.usage] ?? `usage ${record.usage}`} ${SELECTOR_NAMES[record.selector] ?? `selector ${record.selector}`}`;
}

/** What the record's data is taken from: `the SHA2-256 of the public key (SPKI)`, `the certificate`. */
export function associationName(record: TlsaRecord): string {
  const source = SOURCE_NAMES[record.selector] ?? `selector ${record.selector}`;
  const matching = MATCHING_NAMES[record.matchingType] ?? `matching type ${record.matchingType}`;
  return record.matchingType === TlsaMatching.FULL ? `the ${source}` : `the ${matching} of the ${source}`;
}

/** The first bytes of `data` in hex, `…` when there is more. */
export function shortHex(data: Buffer): string {
  return shorten(data.toString('hex'));
}

/** Why SMTP cannot use this record on its own, or undefined when it can. */
export function unusableReason(record: TlsaRecord): string | undefined {
  const { usage, selector, matchingType, data } = record;
  if (usage === TlsaUsage.PKIX_TA || usage === TlsaUsage.PKIX_EE) {
    return `usage ${usage} (${USAGE_NAMES[usage]}) is not usable for SMTP (RFC 7672 §3.1.3)`;
  }
  if (usage !== TlsaUsage.DANE_TA && usage !== TlsaUsage.DANE_EE) return `unknown usage ${usage}`;
  if (selector !== TlsaSelector.CERT && selector !== TlsaSelector.SPKI) return `unknown selector ${selector}`;
  const digestBytes = DIGEST_BYTES[matchingType];
  if (matchingType !== TlsaMatching.FULL && digestBytes === undefined) return `unknown matching type ${matchingType}`;
  if (data.length === 0) return 'malformed: no certificate association data';
  if (digestBytes !== undefined && data.length !== digestBytes) {
    return `malformed: ${MATCHING_NAMES[matchingType]} data is ${data.length} bytes, not ${digestBytes}`;
  }
  if (matchingType === TlsaMatching.FULL) {
    const full = readFullData(selector, data);
    if (full.kind === 'malformed') return full.reason;
  }
  return undefined;
}

/** Sorts an RRset into usable and unusable records (DANE-3), with digest agility (RFC 7671 §9). */
export function classifyTlsaRrset(records: readonly TlsaRecord[]): TlsaRrset {
  if (records.length === 0) return { kind: 'empty' };
  const usable: TlsaRecord[] = [];
  const unusable: UnusableTlsa[] = [];
  let fullReads = 0;
  for (const record of records) {
    const full = record.matchingType === TlsaMatching.FULL && (record.usage === TlsaUsage.DANE_TA || record.usage === TlsaUsage.DANE_EE);
    if (full && ++fullReads > MAX_FULL_DATA_READS) {
      unusable.push({ record, reason: `ignored: more than ${MAX_FULL_DATA_READS} Full(0) records in the RRset, not read (DANE-10)` });
      continue;
    }
    const reason = unusableReason(record);
    if (reason === undefined) usable.push(record);
    else unusable.push({ record, reason });
  }
  const strongest = new Map<string, number>();
  for (const r of usable) {
    const key = `${r.usage} ${r.selector}`;
    strongest.set(key, Math.max(strongest.get(key) ?? TlsaMatching.FULL, r.matchingType));
  }
  const kept = usable.filter((r) => {
    const best = strongest.get(`${r.usage} ${r.selector}`) ?? r.matchingType;
    if (r.matchingType === TlsaMatching.FULL || r.matchingType === best) return true;
    unusable.push({
      record: r,
      reason: `ignored: ${MATCHING_NAMES[best]} records for ${usageAndSelector(r)} take precedence (RFC 7671 §9)`,
    });
    return false;
  });
  return kept.length > 0 ? { kind: 'usable', usable: kept, unusable } : { kind: 'unusable-only', unusable };
}

function shorten(hex: string): string {
  return hex.length > SHOWN_HEX_DIGITS ? `${hex.slice(0, SHOWN_HEX_DIGITS)}…` : hex;
}
