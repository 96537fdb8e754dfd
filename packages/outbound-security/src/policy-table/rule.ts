/**
 * One rule of the admin policy table (POL-1, POL-4, TLS-8) and the parsing of
 * one line of it. A line names a destination and what its connections must
 * reach, in the words of Postfix's smtp_tls_policy_maps:
 *
 *     partner.example        verify match=mx1.partner.example,mx2.partner.example
 *     .partner.example       encrypt
 *     legacy.example         may exempt=ratchet
 *     relay:smtp.isp.example verify auth_min_level=encrypt
 *
 * Destinations: a recipient domain (exact), `.example.com` (its subdomains,
 * not example.com itself), or `relay:<host>` (a relay another plugin routes
 * to; the same key as the relay's own ratchet level). Keys are IDNA-normalised
 * like every other key (ST-6). A line that cannot be understood is a problem
 * naming the line and what is wrong; it never half-applies.
 */
import net from 'node:net';
import { isPublicSuffix, printable, toALabel } from '../domain';
import { RELAY_KEY_PREFIX, relayKey } from '../store/keys';
import { SecLevel } from '../sec-level';

/** The table's level words: `may` adds nothing to the automatic requirement. */
export type TableLevel = 'may' | 'encrypt' | 'verify';

export const TABLE_LEVELS: Readonly<Record<TableLevel, SecLevel>> = {
  may: SecLevel.PLAIN,
  encrypt: SecLevel.TLS_INSECURE,
  verify: SecLevel.TLS_SECURE,
};

/** Parts of the automatic requirement a rule may waive (POL-2). `dane`: no TLSA lookup, no DANE check for the domain (delivery/plan). */
export type Exemption = 'ratchet' | 'mta-sts' | 'dane';
export const EXEMPTIONS: readonly Exemption[] = ['ratchet', 'mta-sts', 'dane'];

export type RuleKey =
  | { kind: 'domain'; domain: string }
  /** `.example.com`: every subdomain of `parent`, not `parent` itself. */
  | { kind: 'subdomains'; parent: string }
  /** `relay:<host>`: a hop to that relay (POL-4). */
  | { kind: 'relay'; key: string };

export interface PolicyRule {
  key: RuleKey;
  /** The key in its normalised form: `example.com`, `.example.com`, `relay:smtp.example.net`. */
  name: string;
  level: TableLevel;
  /** The level `level` stands for. */
  minimum: SecLevel;
  /** `match=`: host names one of which the certificate must carry (A-labels); empty: the MX host name. */
  match: readonly string[];
  exempt: readonly Exemption[];
  /** TLS-8, relay rules only: the level before AUTH credentials are sent (overrides outbound_tls.ini). */
  authMinLevel?: TableLevel;
  /**
   * RT-4, relay rules only: `requiretls=relax`: a REQUIRETLS message may go to
   * this (internal) relay when it does not advertise REQUIRETLS; everything
   * else of RT-2 still holds. Logged and counted at each use.
   */
  requireTlsRelax?: true;
  file: string;
  line: number;
  /** `ruleLabel` of the rule, made once (the guard names the rule on every connection). */
  label: string;
}

export type LineResult =
  | { kind: 'blank' }
  | { kind: 'rule'; rule: PolicyRule; warnings: string[] }
  /**
   * Not in force; `name` is the destination when the key itself was understood;
   * `defers`: that destination's mail waits until the line is fixed (POL-5).
   */
  | { kind: 'problem'; message: string; name?: string; defers?: boolean };

/** How logs and the CLI name a rule: `.partner.example (config/outbound_tls_policy line 7)`. */
export function ruleLabel(rule: Pick<PolicyRule, 'name' | 'file' | 'line'>): string {
  return `${rule.name} (${rule.file} line ${rule.line})`;
}

/** The rule as a table line would write it, normalised: `partner.example verify match=mx.partner.example`. */
export function ruleText(rule: PolicyRule): string {
  const options = [
    rule.match.length > 0 ? `match=${rule.match.join(',')}` : '',
    rule.exempt.length > 0 ? `exempt=${rule.exempt.join(',')}` : '',
    rule.authMinLevel ? `auth_min_level=${rule.authMinLevel}` : '',
    rule.requireTlsRelax ? 'requiretls=relax' : '',
  ].filter(Boolean);
  return [rule.name, rule.level, ...options].join(' ');
}

export function isTableLevel(word: string): word is TableLevel {
  return Object.hasOwn(TABLE_LEVELS, word);
}

const OPTIONS = ['match', 'exempt', 'auth_min_level', 'requiretls'] as const;
type OptionName = (typeof OPTIONS)[number];

/** An IP address (only text that could be one reaches net.isIP's patterns: a table holds thousands of names). */
function isAddress(text: string): boolean {
  return (text.includes(':') || /^[\d.]+$/.test(text)) && net.isIP(text) !== 0;
}

/** The destination of a line, or why it is not one. */
export function parseKey(word: string): RuleKey | string {
  const shown = (): string => `"${printable(word)}"`;
  if (word.toLowerCase().startsWith(RELAY_KEY_PREFIX)) {
    const host = word.slice(RELAY_KEY_PREFIX.length);
    if (host.startsWith('.')) return `${shown()}: a relay rule names one host (relay:<host>), not a parent domain`;
    const key = relayKey(host);
    return key ? { kind: 'relay', key } : `${shown()} is not relay:<host name or address>`;
  }
  if (word.startsWith('*.')) return `${shown()}: write ".${printable(word.slice(2))}" for the subdomains of ${printable(word.slice(2))}`;
  if (word.startsWith('[')) return `${shown()}: address literals are not table keys (a relay by address is relay:<address>)`;
  const parent = word.startsWith('.');
  const text = parent ? word.slice(1) : word;
  if (isAddress(text)) return `${shown()} is an address, not a domain (a relay by address is relay:${printable(text)})`;
  const name = toALabel(text);
  if (!name.ok) return `${shown()} is not a domain: ${name.reason}`;
  return parent ? { kind: 'subdomains', parent: name.aLabel } : { kind: 'domain', domain: name.aLabel };
}

export function keyName(key: RuleKey): string {
  return key.kind === 'domain' ? key.domain : key.kind === 'subdomains' ? `.${key.parent}` : key.key;
}

/** `# …` to the end of the line is a comment (no key or value holds `#`). */
function withoutComment(text: string): string {
  const hash = text.indexOf('#');
  return (hash === -1 ? text : text.slice(0, hash)).trim();
}

function hostList(option: string, value: string): string[] | string {
  const names: string[] = [];
  for (const item of value.split(/[,:]/)) {
    if (item === '') continue;
    const name = toALabel(item);
    if (!name.ok || isAddress(item)) return `${option}=: "${printable(item)}" is not a host name${name.ok ? '' : ` (${name.reason})`}`;
    if (!names.includes(name.aLabel)) names.push(name.aLabel);
  }
  return names.length > 0 ? names : `${option}= needs at least one host name`;
}

function exemptionList(value: string): Exemption[] | string {
  const parts: Exemption[] = [];
  for (const item of value.toLowerCase().split(',')) {
    if (item === '') continue;
    if (!(EXEMPTIONS as readonly string[]).includes(item)) {
      return `exempt=: unknown exemption "${printable(item)}" (known: ${EXEMPTIONS.join(', ')})`;
    }
    if (!parts.includes(item as Exemption)) parts.push(item as Exemption);
  }
  return parts.length > 0 ? parts : `exempt= needs ${EXEMPTIONS.join(', ')} or a comma-separated list of them`;
}

/**
 * POL-5: a line that is not in force, with the destination it names: that
 * destination's mail waits until the line is fixed (a typo never silently
 * drops a tightening rule).
 */
function lineProblem(name: string, message: string): LineResult {
  return { kind: 'problem', message: `${name}: ${message}`, name, defers: true };
}

/** The options of a line by name, or what is wrong with them. Indexed loops: a table may hold thousands of lines. */
function readOptions(words: readonly string[]): Partial<Record<OptionName, string>> | string {
  const options: Partial<Record<OptionName, string>> = {};
  for (let i = 2; i < words.length; i++) {
    const word = words[i] as string;
    const eq = word.indexOf('=');
    if (eq <= 0) return `"${printable(word)}" is not option=value (options: ${OPTIONS.join(', ')})`;
    const option = word.slice(0, eq).toLowerCase() as OptionName;
    if (!OPTIONS.includes(option)) return `unknown option "${printable(option)}=" (options: ${OPTIONS.join(', ')})`;
    if (options[option] !== undefined) return `${option}= given twice`;
    options[option] = word.slice(eq + 1);
  }
  return options;
}

/** Reads one line of the table (`line` counts from 1). */
export function parseRuleLine(text: string, file: string, line: number): LineResult {
  const content = withoutComment(text);
  if (content === '') return { kind: 'blank' };
  const words = content.split(/\s+/);
  const keyWord = words[0] as string;
  const levelWord = words[1];
  const key = parseKey(keyWord);
  if (typeof key === 'string') return { kind: 'problem', message: key };
  const name = keyName(key);
  if (key.kind === 'subdomains' && isPublicSuffix(key.parent)) {
    // POL-5: refused, not deferred: every domain under the suffix is someone else's.
    const message = `${name}: ${key.parent} is a public suffix: a parent rule there would reach every domain under it; write a rule per domain`;
    return { kind: 'problem', message, name };
  }
  const problem = (message: string): LineResult => lineProblem(name, message);
  const level = levelWord?.toLowerCase();
  if (level === undefined || !isTableLevel(level)) {
    const found = levelWord === undefined ? 'nothing' : `"${printable(levelWord)}"`;
    return problem(`expected a level (may, encrypt or verify) after the destination, found ${found}`);
  }
  const options = words.length > 2 ? readOptions(words) : {};
  if (typeof options === 'string') return problem(options);
  const rule: PolicyRule = {
    key,
    name,
    level,
    minimum: TABLE_LEVELS[level],
    match: [],
    exempt: [],
    file,
    line,
    label: ruleLabel({ name, file, line }),
  };
  const warnings: string[] = [];
  const match = options.match;
  if (match !== undefined) {
    if (level !== 'verify') return problem(`match= needs verify (a certificate's names are checked only at verify), found ${level}`);
    const names = hostList('match', match);
    if (typeof names === 'string') return problem(names);
    rule.match = names;
  }
  const exempt = options.exempt;
  if (exempt !== undefined) {
    const parts = exemptionList(exempt);
    if (typeof parts === 'string') return problem(parts);
    rule.exempt = parts;
    if (key.kind === 'relay' && parts.includes('mta-sts'))
      warnings.push('exempt=mta-sts has no effect on a relay hop: MTA-STS never applies there (POL-4)');
    if (key.kind === 'relay' && parts.includes('dane'))
      warnings.push("exempt=dane has no effect on a relay hop: DANE covers a recipient domain's MX hosts, never a relay (POL-4)");
  }
  const auth = options.auth_min_level;
  if (auth !== undefined) {
    if (key.kind !== 'relay') return problem('auth_min_level= belongs on relay rules (relay:<host>): credentials go to relays');
    const authLevel = auth.toLowerCase();
    if (!isTableLevel(authLevel)) return problem(`auth_min_level=${printable(auth)}: expected may, encrypt or verify`);
    rule.authMinLevel = authLevel;
    if (authLevel === 'may')
      warnings.push('auth_min_level=may lets credentials go out without TLS, where a STARTTLS-stripping attacker reads them');
  }
  const requireTls = options.requiretls;
  if (requireTls !== undefined) {
    if (key.kind !== 'relay') {
      return problem("requiretls= belongs on relay rules (relay:<host>): a recipient's MX hosts must advertise REQUIRETLS (RT-2)");
    }
    if (requireTls.toLowerCase() !== 'relax') return problem(`requiretls=${printable(requireTls)}: expected relax`);
    rule.requireTlsRelax = true;
  }
  return { kind: 'rule', rule, warnings };
}
