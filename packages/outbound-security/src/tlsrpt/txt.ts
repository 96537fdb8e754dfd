/**
 * The reporting policy of a Policy Domain (RPT-3, RFC 8460 §3): the TXT
 * records at `_smtp._tls.<domain>`, each with its character-strings already
 * joined (without spaces, §3).
 *
 * - Records not starting with `v=TLSRPTv1` (then ";", WSP or the end) are
 *   discarded; if the number left is not exactly one, the domain does not
 *   take reports.
 * - The record is `v=TLSRPTv1` then ";"-separated `name=value` fields (WSP
 *   around ";" allowed, one final ";" allowed): names are
 *   `(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`, values of unknown
 *   fields `1*(%x21-3A / %x3C / %x3E-7E)`, and unknown fields are ignored. A
 *   field that breaks this grammar makes the record invalid.
 * - `rua` (required, case-sensitive) is a list of URIs separated by "," with
 *   optional WSP. Only `mailto:` (one address: `,`, `!` and `;` must be
 *   percent-encoded in the record) and `https:` are used; any other URI is
 *   ignored with a reason. A repeated `rua` field: the first counts.
 * - No usable URI → no reporting for the domain, with the reasons.
 * - OPS-5, RPT-8: at most `maxUris` URIs are used (`[tlsrpt]
 *   max_report_addresses`, never more than MAX_REPORT_URIS), in the record's
 *   order; the rest are listed in `overLimit`.
 */
import { printable, toALabel } from '../domain';

export const TXT_PREFIX = '_smtp._tls.';
export const MAX_REPORT_URIS = 10;

const VERSION = 'v=TLSRPTv1';
const FIELD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;
/** RFC 3986 characters (unreserved, reserved, "%"), less the ones §3 says must be encoded. */
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@$&'()*+=%]+$/;
const PERCENT = /%(?![0-9A-Fa-f]{2})/;
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const WSP = /^[ \t]*|[ \t]*$/g;

export type ReportUri = { kind: 'mailto'; uri: string; address: string } | { kind: 'https'; uri: string; url: URL };

export type ReportingPolicy =
  { kind: 'record'; uris: ReportUri[]; ignored: string[]; overLimit: string[] } | { kind: 'none'; reason: string };

const trimWsp = (text: string): string => text.replace(WSP, '');

/** RFC 8460 §3: the report URIs a domain publishes, or why it does not take reports. */
export function parseTlsRptRecords(records: readonly string[], maxUris: number = MAX_REPORT_URIS): ReportingPolicy {
  const limit = Math.min(maxUris, MAX_REPORT_URIS);
  const candidates = records.filter(isTlsRptRecord);
  if (candidates.length === 0) return { kind: 'none', reason: `no TXT record starts with "${VERSION}"` };
  if (candidates.length > 1)
    return { kind: 'none', reason: `${candidates.length} TXT records start with "${VERSION}", exactly one is allowed` };
  const fields = (candidates[0] as string).slice(VERSION.length).split(';');
  if (trimWsp(fields[0] as string) !== '') return { kind: 'none', reason: `"${VERSION}" is not followed by ";"` };
  let rua: string | undefined;
  const ignored: string[] = [];
  for (let index = 1; index < fields.length; index++) {
    const field = trimWsp(fields[index] as string);
    if (field === '') {
      if (index === fields.length - 1) continue; // the optional final ";"
      return { kind: 'none', reason: 'empty field between ";"' };
    }
    const eq = field.indexOf('=');
    const name = eq < 0 ? field : field.slice(0, eq);
    const value = eq < 0 ? '' : field.slice(eq + 1);
    if (eq < 0 || !FIELD_NAME.test(name)) return { kind: 'none', reason: `field "${printable(field)}" is not name=value` };
    if (name !== 'rua') {
      if (!EXT_VALUE.test(value)) return { kind: 'none', reason: `field "${printable(name)}" has an invalid value "${printable(value)}"` };
      continue; // unknown fields are ignored (§3)
    }
    if (rua !== undefined) ignored.push(`a second rua field was ignored ("${printable(value)}")`);
    else rua = value;
  }
  if (rua === undefined) return { kind: 'none', reason: 'the record has no rua field' };
  const uris: ReportUri[] = [];
  const overLimit: string[] = [];
  for (const text of rua.split(',').map(trimWsp)) {
    const parsed = parseReportUri(text);
    if (typeof parsed === 'string') ignored.push(parsed);
    else if (uris.some((u) => u.uri === parsed.uri)) ignored.push(`${printable(text)}: listed twice`);
    else if (uris.length >= limit) overLimit.push(printable(text));
    else uris.push(parsed);
  }
  if (uris.length === 0) return { kind: 'none', reason: `no usable report URI (${ignored.join('; ')})` };
  return { kind: 'record', uris, ignored, overLimit };
}

function isTlsRptRecord(record: string): boolean {
  if (!record.startsWith(VERSION)) return false;
  const next = record.charAt(VERSION.length);
  return next === '' || next === ';' || next === ' ' || next === '\t';
}

/** One `rua` URI, or why it is not used. */
export function parseReportUri(text: string): ReportUri | string {
  const shown = printable(text);
  if (text === '') return 'an empty report URI';
  if (!URI_CHARS.test(text) || PERCENT.test(text)) return `${shown}: not a URI (",", "!", ";" and spaces must be percent-encoded)`;
  const colon = text.indexOf(':');
  const scheme = colon > 0 ? text.slice(0, colon).toLowerCase() : '';
  if (scheme === 'mailto') return parseMailto(text, shown);
  if (scheme === 'https') return parseHttps(text, shown);
  return `${shown}: only mailto: and https: report URIs are used`;
}

function parseMailto(text: string, shown: string): ReportUri | string {
  const target = text.slice('mailto:'.length).split('?')[0] as string;
  let address: string;
  try {
    address = decodeURIComponent(target);
  } catch {
    return `${shown}: bad percent-encoding`;
  }
  const parsed = parseMailAddress(address);
  return typeof parsed === 'string' ? `${shown}: ${parsed}` : { kind: 'mailto', uri: text, address: parsed.address };
}

/**
 * A plain mail address: an ASCII dot-atom local part and a domain name, which
 * becomes its lowercase A-label. Or why it is not one.
 */
export function parseMailAddress(text: string): { address: string; domain: string } | string {
  const at = text.lastIndexOf('@');
  if (at <= 0) return 'not one mail address';
  const local = text.slice(0, at);
  if (!DOT_ATOM.test(local) || local.length > 64) return 'the local part is not a plain ASCII address';
  const domain = toALabel(text.slice(at + 1));
  if (!domain.ok || !domain.aLabel.includes('.')) return 'bad domain in the address';
  return { address: `${local}@${domain.aLabel}`, domain: domain.aLabel };
}

function parseHttps(text: string, shown: string): ReportUri | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${shown}: not a valid https URL`;
  }
  if (url.username || url.password) return `${shown}: credentials in the URL are not used`;
  if (url.hostname === '') return `${shown}: no host`;
  url.hash = '';
  return { kind: 'https', uri: text, url };
}
