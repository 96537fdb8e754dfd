/**
 * Reading ini values as haraka-config hands them over (OPS-1, PKG-4): typed
 * value readers that name the section, key and value they refuse, and the
 * check of a whole file against the keys it may hold, so an unknown section,
 * an unknown key (a typo such as `max_mxx`) or a broken section header
 * (`[dns` without its `]`) is reported instead of silently ignored.
 */

/** An ini section as haraka-config hands it over: values are strings, numbers or booleans. */
export type IniSection = Record<string, unknown>;
export type IniFile = Record<string, IniSection | undefined>;

/** The sections a file may have and the keys of each; `'*'` takes any key (e.g. [redis], passed on as is). */
export type IniSchema = Readonly<Record<string, readonly string[] | '*'>>;

/** A problem that does not stop the settings from applying: logged at startup and on every reload. */
export interface IniWarning {
  file: string;
  section: string;
  key?: string;
  message: string;
}

/** `file [section] key: message`, the form every ini warning is logged in. */
export function formatWarning(w: IniWarning): string {
  return `${w.file} [${w.section}]${w.key === undefined ? '' : ` ${w.key}`}: ${w.message}`;
}

export function listValue(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  return String(value)
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function integerValue(section: string, key: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null || String(value).trim() === '') return fallback;
  const text = String(value).trim();
  if (!/^\d+$/.test(text)) throw new Error(`[${section}] ${key}=${text}: not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new Error(`[${section}] ${key}=${text}: must be between ${min} and ${max}`);
  return n;
}

export function numberValue(section: string, key: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null || String(value).trim() === '') return fallback;
  const text = String(value).trim();
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`[${section}] ${key}=${text}: not a number`);
  if (n < min || n > max) throw new Error(`[${section}] ${key}=${text}: must be between ${min} and ${max}`);
  return n;
}

export function booleanValue(section: string, key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || String(value).trim() === '') return fallback;
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(text)) return true;
  if (['false', 'no', 'off', '0'].includes(text)) return false;
  throw new Error(`[${section}] ${key}=${String(value)}: expected true or false`);
}

/**
 * Unknown sections and keys of `ini` (as parsed by haraka-config) against
 * `schema`. haraka-config takes a header line without its closing bracket
 * (`[dns`) for a key of the section before it, so the keys meant for [dns]
 * land there: such a key is reported as a broken section header.
 */
export function unknownKeys(file: string, ini: IniFile, schema: IniSchema): IniWarning[] {
  const warnings: IniWarning[] = [];
  for (const [section, values] of Object.entries(ini)) {
    if (!values || typeof values !== 'object') continue;
    const allowed = schema[section];
    const keys = Object.keys(values);
    if (allowed === undefined) {
      // haraka-config always creates [main]; an empty unknown section is still a typo worth naming.
      if (section === 'main' && keys.length === 0) continue;
      warnings.push({ file, section, message: `unknown section (known: ${Object.keys(schema).join(', ')}), ignored` });
      continue;
    }
    if (allowed === '*') continue;
    let after: string | undefined;
    for (const key of keys) {
      if (key.startsWith('[')) {
        after = key;
        warnings.push({
          file,
          section,
          key,
          message: `broken section header "${key}" (no closing "]"): the keys after it are read as keys of [${section}]`,
        });
        continue;
      }
      if (allowed.includes(key)) continue;
      warnings.push({
        file,
        section,
        key,
        message: `unknown key, ignored${after ? ` (it follows the broken header "${after}")` : ''} (known in [${section}]: ${allowed.join(', ')})`,
      });
    }
  }
  return warnings;
}

/** haraka-config's own section header pattern (lib/regex.js). */
const SECTION_HEADER = /^\s*\[([^\]]*)\]\s*$/;

/**
 * Lines of the raw file text that open like a section header but are not
 * one to haraka-config (`[dns`, `[dns] x`): it ignores or misreads them. Cheap:
 * one pass over a small file, done at startup and on reload only.
 */
export function brokenHeaderLines(file: string, text: string): IniWarning[] {
  const warnings: IniWarning[] = [];
  let section = 'main';
  text.split(/\r\n|\r|\n/).forEach((line, index) => {
    const header = SECTION_HEADER.exec(line);
    if (header) {
      section = (header[1] ?? '').trim();
      return;
    }
    if (!/^\s*\[/.test(line)) return;
    warnings.push({
      file,
      section,
      key: line.trim(),
      message: `line ${index + 1} is not a section header (a header is "[name]" alone on its line); its keys are read as keys of [${section}]`,
    });
  });
  return warnings;
}

/**
 * Every warning for one file: unknown sections and keys, and (given the raw
 * text) header lines haraka-config did not take as headers. A broken header
 * seen both ways is reported once.
 */
export function checkIni(file: string, ini: IniFile, schema: IniSchema, text?: string): IniWarning[] {
  const warnings = unknownKeys(file, ini, schema);
  if (text === undefined) return warnings;
  const seen = new Set(warnings.filter((w) => w.key?.startsWith('[')).map((w) => w.key));
  return [...warnings, ...brokenHeaderLines(file, text).filter((w) => !seen.has(w.key))];
}
