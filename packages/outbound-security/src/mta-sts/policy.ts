/**
 * MTA-STS as text: the `_mta-sts` TXT record (STS-1, RFC 8461 §3.1), the
 * policy file (STS-3, §3.2) and MX host matching (STS-4, §4.1). Pure: no DNS,
 * no HTTPS, no cache; the fetcher hands the body here and gets a validated
 * `MtaStsPolicy` back, or a reason naming the line at fault.
 *
 * Grammar decisions, each taken from the RFC 8461 §3.2 ABNF:
 * - `sts-policy-record = sts-policy-field *WSP *(sts-policy-term
 *   sts-policy-field *WSP) [sts-policy-term]`, `sts-policy-term = LF / CRLF`:
 *   lines end in LF or CRLF (mixed is fine). A bare CR is not a line break; it
 *   is a control character and makes its line invalid.
 * - Leniency where it cannot weaken protection and peers agree (design.md
 *   STS-3; chasquid accepts these, real policies carry them): blank lines
 *   (empty or WSP only) anywhere are skipped, and WSP (space, tab) around the
 *   field name and around the value is dropped. Every other line must be a
 *   field: a name of 1–32 letters, digits, "_", "-", "." starting with a letter
 *   or digit, a colon, then a non-empty value without control characters or
 *   tabs (`sts-policy-ext-value`; UTF-8 allowed). A line that is not is an
 *   error, also for unknown names: an unknown *valid* field is ignored.
 * - The body must be valid UTF-8 (`decodePolicyBody`, a fatal decoder: never
 *   U+FFFD in place of bad bytes).
 * - Names and the values `STSv1`, `enforce|testing|none` are case-sensitive
 *   (`%s"…"`): `Mode: enforce` is an unknown field, ignored with a warning.
 * - `sts-policy-mx-value = ["*."] Domain` with RFC 5321 `Domain`: ASCII
 *   letters, digits and inner hyphens, no trailing dot; IDNs are written as
 *   A-labels (§3.2 "MUST specify the Punycode-encoded A-label"), so a U-label
 *   pattern is invalid. Valid patterns are checked and lowercased with tr46.
 * - §3.2 "If any non-repeated field … is duplicated, all entries except for
 *   the first SHALL be ignored": a repeated version/mode/max_age is ignored
 *   with a warning, not an error (design.md STS-3 said invalid; the RFC wins).
 * - Patterns that can never match an MX host name stay in the policy but are
 *   ignored with a warning: a wildcard over a public suffix (STS-4) and a
 *   dotted quad (an IPv4 address is not a host name, MX-7).
 * - OPS-5 bounded cost: more than MAX_MX_PATTERNS mx lines make the policy
 *   invalid (a partly applied policy could refuse the MX hosts it lists last);
 *   the public-suffix check runs once per pattern at parse time, and matching
 *   is two Set lookups per host (exact names, wildcard parents), so filtering
 *   is linear in patterns + hosts.
 */
import { isPublicSuffix, normaliseHostName, printable, toALabel } from '../domain';
import type { MxFilter } from '../mx/selection';

export type { MxFilter };

/** A policy's `mode` (RFC 8461 §5): what a domain asks senders to do with it. */
export type StsMode = 'enforce' | 'testing' | 'none';

/** RFC 8461 §3.2: the largest `max_age`, in seconds (about one year). */
export const MAX_AGE_LIMIT = 31557600;

/** OPS-5: the most mx patterns a valid policy may have. */
export const MAX_MX_PATTERNS = 512;

export interface MxPattern {
  /** The pattern as the policy wrote it (surrounding WSP removed). */
  text: string;
  /** `*.base`: matches hosts with exactly one more label than `base`. */
  wildcard: boolean;
  /** Lowercase A-label host name, without `*.`. */
  base: string;
}

/**
 * A validated policy. `mx` keeps every pattern in policy order; a wildcard
 * over a public suffix stays listed but matches nothing (STS-4). `mx` is empty
 * only when `mode` is `none`.
 */
export interface MtaStsPolicy {
  version: 'STSv1';
  mode: StsMode;
  /** Seconds, 0…MAX_AGE_LIMIT. */
  maxAge: number;
  mx: MxPattern[];
}

export type ParseResult = { ok: true; policy: MtaStsPolicy; warnings: string[] } | { ok: false; error: string };

export type TxtResult = { kind: 'record'; id: string } | { kind: 'none'; reason: string };

const MODES: readonly string[] = ['enforce', 'testing', 'none'] satisfies StsMode[];
const KNOWN_FIELDS = ['version', 'mode', 'max_age', 'mx'];
/** `sts-policy-ext-name` and `sts-ext-name`. */
const FIELD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** Control characters (tab included) and lone surrogates, none of which `sts-policy-vchar` allows. */
const NOT_VCHAR = /[\x00-\x1f\x7f\u{d800}-\u{dfff}]/u;
const MAX_AGE_DIGITS = /^[0-9]{1,10}$/;
/** RFC 5321 sub-domain, bounded by the DNS label limit. */
const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_PATTERN_LENGTH = 2 + 253;
const DOTTED_QUAD = /^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$/;
const TXT_VERSION = 'v=STSv1';
const TXT_ID = /^[A-Za-z0-9]{1,32}$/;
/** `sts-ext-value`: visible ASCII except "=" and ";". */
const TXT_EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;

/**
 * STS-3: the fetched bytes as text, or why they are not a policy. A fatal
 * decoder: invalid UTF-8 makes the policy invalid, never U+FFFD.
 */
export function decodePolicyBody(body: Uint8Array): { ok: true; text: string } | { ok: false; error: string } {
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(body) };
  } catch {
    return { ok: false, error: 'the policy body is not valid UTF-8' };
  }
}

/**
 * What `matchesPolicy` looks at, built once per policy (OPS-5): the exact host
 * names, and the parents of the wildcards that can match (public suffixes and
 * dotted quads left out).
 */
interface PolicyMatcher {
  exact: ReadonlySet<string>;
  wildcardParents: ReadonlySet<string>;
}

/** Matchers of parsed policies, built at parse time; others' (hand-made policies) on first use. */
const matchers = new WeakMap<MtaStsPolicy, PolicyMatcher>();

/** Why a valid pattern can never match an MX host, or null. */
function neverMatches(pattern: MxPattern): string | null {
  if (pattern.wildcard && isPublicSuffix(pattern.base)) return `"${pattern.base}" is a public suffix`;
  if (!pattern.wildcard && DOTTED_QUAD.test(pattern.base)) return 'an IPv4 address is not a host name';
  return null;
}

function buildMatcher(patterns: readonly MxPattern[], ignored: ReadonlySet<MxPattern> | null): PolicyMatcher {
  const exact = new Set<string>();
  const wildcardParents = new Set<string>();
  for (const pattern of patterns) {
    if (ignored ? ignored.has(pattern) : neverMatches(pattern) !== null) continue;
    (pattern.wildcard ? wildcardParents : exact).add(pattern.base);
  }
  return { exact, wildcardParents };
}

function matcherOf(policy: MtaStsPolicy): PolicyMatcher {
  let matcher = matchers.get(policy);
  if (!matcher) {
    matcher = buildMatcher(policy.mx, null);
    matchers.set(policy, matcher);
  }
  return matcher;
}

/** Parses a policy body (STS-3). Never throws. */
export function parsePolicy(text: string): ParseResult {
  if (text === '') return { ok: false, error: 'empty policy' };
  const warnings: string[] = [];
  const caseVariants = new Map<string, string>();
  let version: 'STSv1' | undefined;
  let mode: StsMode | undefined;
  let maxAge: number | undefined;
  const mx: MxPattern[] = [];
  const ignored = new Set<MxPattern>();

  for (const [index, line] of splitLines(text).entries()) {
    const at = `line ${index + 1}`;
    if (isBlank(line)) continue;
    const field = splitField(line);
    if (!field.ok) return { ok: false, error: `${at}: ${field.reason}` };
    const { name, value } = field;
    const shown = (): string => `"${printable(value)}"`;
    if ((name === 'version' && version) || (name === 'mode' && mode) || (name === 'max_age' && maxAge !== undefined)) {
      warnings.push(`${at}: repeated ${name} ${shown()} ignored (RFC 8461 §3.2: the first one counts)`);
    } else if (name === 'version') {
      if (value !== 'STSv1') return { ok: false, error: `${at}: version ${shown()} is not "STSv1"` };
      version = value;
    } else if (name === 'mode') {
      if (!isMode(value)) return { ok: false, error: `${at}: mode ${shown()} is not enforce, testing or none` };
      mode = value;
    } else if (name === 'max_age') {
      if (!MAX_AGE_DIGITS.test(value)) return { ok: false, error: `${at}: max_age ${shown()} is not 1–10 digits` };
      maxAge = Number(value);
      if (maxAge > MAX_AGE_LIMIT) return { ok: false, error: `${at}: max_age ${maxAge} is above the limit of ${MAX_AGE_LIMIT} seconds` };
    } else if (name === 'mx') {
      if (mx.length === MAX_MX_PATTERNS) return { ok: false, error: `${at}: more than ${MAX_MX_PATTERNS} mx patterns (OPS-5)` };
      const pattern = parseMxPattern(value);
      if (!pattern.ok) return { ok: false, error: `${at}: mx pattern ${shown()} ${pattern.reason}` };
      mx.push(pattern.pattern);
      const why = neverMatches(pattern.pattern);
      if (why !== null) {
        ignored.add(pattern.pattern);
        warnings.push(`${at}: mx pattern ${shown()} ignored: ${why}, so it matches no MX host`);
      }
    } else if (KNOWN_FIELDS.includes(name.toLowerCase())) {
      caseVariants.set(name.toLowerCase(), `${at} has "${name}"`);
      warnings.push(`${at}: field "${name}" ignored: field names are case-sensitive (did you mean "${name.toLowerCase()}"?)`);
    }
  }

  const missing = (name: string): string => {
    const hint = caseVariants.get(name);
    return `no ${name} field${hint ? ` (${hint}; field names are case-sensitive)` : ''}`;
  };
  if (!version) return { ok: false, error: missing('version') };
  if (!mode) return { ok: false, error: missing('mode') };
  if (maxAge === undefined) return { ok: false, error: missing('max_age') };
  if (mx.length === 0 && mode !== 'none') return { ok: false, error: `${missing('mx')}: mode ${mode} needs at least one` };
  const policy: MtaStsPolicy = { version, mode, maxAge, mx };
  matchers.set(policy, buildMatcher(mx, ignored));
  return { ok: true, policy, warnings };
}

/**
 * The policy as canonical text: version, mode, mx lines in order, max_age,
 * each ended by CRLF. For a policy `parsePolicy` accepted,
 * `parsePolicy(serialisePolicy(p))` gives `p` back.
 */
export function serialisePolicy(policy: MtaStsPolicy): string {
  const lines = [
    `version: ${policy.version}`,
    `mode: ${policy.mode}`,
    ...policy.mx.map((p) => `mx: ${p.text}`),
    `max_age: ${policy.maxAge}`,
  ];
  return lines.map((line) => `${line}\r\n`).join('');
}

/**
 * RFC 8461 §4.1: whether an MX host name matches one of the policy's
 * patterns. Case-insensitive, a trailing dot ignored, U-labels compared as
 * A-labels; `*.` stands for exactly one label. Mode is not considered here.
 */
export function matchesPolicy(policy: MtaStsPolicy, mxHost: string): boolean {
  // One root dot is fine; normaliseHostName would quietly drop a second one.
  if (mxHost.endsWith('..')) return false;
  const host = normaliseHostName(mxHost);
  if (host === null) return false;
  const { exact, wildcardParents } = matcherOf(policy);
  if (exact.has(host)) return true;
  // `*.` stands for exactly one label: the host minus its first label must be a wildcard's parent.
  const dot = host.indexOf('.');
  return dot > 0 && wildcardParents.has(host.slice(dot + 1));
}

/**
 * The MX filter (MX-8) for a domain's policy. The caller applies it in
 * enforce mode (STS-7); in testing mode it can ask it what enforce would
 * have refused (STS-8).
 */
export function policyFilter(domain: string, policyId: string, policy: MtaStsPolicy): MxFilter {
  return {
    name: `MTA-STS policy of ${domain} (id ${policyId}, mode ${policy.mode})`,
    accepts: (host) => matchesPolicy(policy, host),
  };
}

/**
 * STS-1, RFC 8461 §3.1: the policy id from the `_mta-sts` TXT records, each
 * string one record with its character-strings already joined. Records not
 * starting with `v=STSv1` (then ";", WSP or the end) are discarded; exactly
 * one must remain, and it must be `v=STSv1` followed by ";"-separated
 * `name=value` fields with a valid `id`. A repeated id: the first counts.
 */
export function parseStsTxtRecords(records: string[]): TxtResult {
  const sts = records.filter(isStsRecord);
  if (sts.length === 0) return { kind: 'none', reason: 'no TXT record starts with "v=STSv1"' };
  if (sts.length > 1) return { kind: 'none', reason: `${sts.length} TXT records start with "v=STSv1", exactly one is allowed` };
  const fields = (sts[0] ?? '').slice(TXT_VERSION.length).split(';');
  if (trimWsp(fields[0] ?? '') !== '') return { kind: 'none', reason: '"v=STSv1" is not followed by ";"' };
  let id: string | undefined;
  for (const [index, raw] of fields.entries()) {
    if (index === 0) continue;
    const field = trimWsp(raw);
    if (field === '') {
      if (index === fields.length - 1) continue; // the optional final sts-field-delim
      return { kind: 'none', reason: 'empty field between ";"' };
    }
    const eq = field.indexOf('=');
    const name = eq < 0 ? field : field.slice(0, eq);
    const value = eq < 0 ? '' : field.slice(eq + 1);
    if (eq < 0 || !FIELD_NAME.test(name)) return { kind: 'none', reason: `field "${printable(field)}" is not name=value` };
    if (name === 'id' && id === undefined) {
      if (!TXT_ID.test(value)) return { kind: 'none', reason: `id "${printable(value)}" is not 1–32 letters and digits` };
      id = value;
    } else if (!TXT_EXT_VALUE.test(value)) {
      return { kind: 'none', reason: `field "${printable(name)}" has an invalid value "${printable(value)}"` };
    }
  }
  if (id === undefined) return { kind: 'none', reason: 'the record has no id field' };
  return { kind: 'record', id };
}

function isStsRecord(record: string): boolean {
  if (!record.startsWith(TXT_VERSION)) return false;
  const next = record.charAt(TXT_VERSION.length);
  return next === '' || next === ';' || isWsp(next);
}

function isMode(value: string): value is StsMode {
  return MODES.includes(value);
}

/** Lines without their terminators; a final terminator does not start an empty line. */
function splitLines(text: string): string[] {
  const pieces = text.split('\n');
  if (pieces.length > 1 && pieces[pieces.length - 1] === '') pieces.pop();
  const terminated = text.endsWith('\n') ? pieces.length : pieces.length - 1;
  return pieces.map((piece, i) => (i < terminated && piece.endsWith('\r') ? piece.slice(0, -1) : piece));
}

type Field = { ok: true; name: string; value: string } | { ok: false; reason: string };

/** Empty, or spaces and tabs only (STS-3 leniency: skipped). */
function isBlank(line: string): boolean {
  return trimWsp(line) === '';
}

function splitField(line: string): Field {
  const colon = line.indexOf(':');
  if (colon < 0) return { ok: false, reason: `"${printable(line)}" is not a "name: value" field` };
  const name = trimWsp(line.slice(0, colon));
  if (!FIELD_NAME.test(name)) {
    return {
      ok: false,
      reason: `field name "${printable(name)}" is not 1–32 letters, digits, "_", "-" or "." starting with a letter or digit`,
    };
  }
  const value = trimWsp(line.slice(colon + 1));
  if (value === '') return { ok: false, reason: `field ${name} has no value` };
  if (NOT_VCHAR.test(value)) return { ok: false, reason: `field ${name} value "${printable(value)}" holds a control character or tab` };
  return { ok: true, name, value };
}

type PatternResult = { ok: true; pattern: MxPattern } | { ok: false; reason: string };

function parseMxPattern(text: string): PatternResult {
  const wildcard = text.startsWith('*.');
  const host = wildcard ? text.slice(2) : text;
  if (text.length > MAX_PATTERN_LENGTH || !host.split('.').every((label) => LDH_LABEL.test(label))) {
    return { ok: false, reason: 'is not "host" or "*.host" with an ASCII host name (letters, digits, inner hyphens; A-labels for IDNs)' };
  }
  const aLabel = toALabel(host);
  if (!aLabel.ok) return { ok: false, reason: `is not a valid host name: ${aLabel.reason}` };
  return { ok: true, pattern: { text, wildcard, base: aLabel.aLabel } };
}

function isWsp(char: string): boolean {
  return char === ' ' || char === '\t';
}

/** Removes leading and trailing WSP (space, tab) only, in linear time. */
function trimWsp(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isWsp(text.charAt(start))) start++;
  while (end > start && isWsp(text.charAt(end - 1))) end--;
  return text.slice(start, end);
}
