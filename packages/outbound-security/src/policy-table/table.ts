/**
 * The admin policy table (POL-1, POL-3, POL-4, POL-5): every rule of the
 * file in force, and the lines that are not, each with its file, line and
 * reason. A bad line (unknown level, option or exemption, a key that is not a
 * domain, a duplicate of an earlier key, a parent rule on a public suffix) is
 * left out and reported; the rest of the table stays in force. POL-5: a bad
 * line whose destination was understood (a level or option misspelt) is
 * "broken": that destination's mail waits until the line is fixed
 * (`brokenForDomain`, `brokenForRelay`), as Postfix defers a destination whose
 * policy entry is malformed; a duplicate or a public-suffix parent is not.
 *
 * Lookups are map reads (OPS-6): a recipient domain's rule is its exact rule,
 * else the rule of its nearest parent written `.parent` (one read per label);
 * a relay's rule is the rule of its `relay:<host>` key. The most specific rule
 * wins; rules never combine.
 */
import { parseRuleLine, ruleLabel, type PolicyRule } from './rule';

export interface TableProblem {
  file: string;
  line: number;
  /** `error`: the line is not in force; `warning`: it is, but something in it has no effect or is risky. */
  severity: 'error' | 'warning';
  message: string;
  /** The destination the line names, when its key was understood. */
  name?: string;
  /** POL-5: the destination's mail waits until the line is fixed. */
  defers?: boolean;
}

/** `config/outbound_tls_policy line 7: …`, the form every table problem is logged and printed in. */
export function formatProblem(problem: TableProblem): string {
  const outcome =
    problem.severity === 'warning'
      ? 'rule in force'
      : problem.defers
        ? `line not in force; mail to ${problem.name ?? 'it'} waits until it is fixed`
        : 'line ignored';
  return `${problem.file} line ${problem.line}: ${problem.message} (${outcome})`;
}

/** What the guard and the plan need of the table: one rule per destination, or none. */
export interface PolicyTableLookup {
  forDomain(aLabel: string): PolicyRule | null;
  forRelay(relayKey: string): PolicyRule | null;
  /** POL-5: the broken line governing a domain or relay; absent: none can be (a table without problems). */
  brokenForDomain?(aLabel: string): TableProblem | null;
  brokenForRelay?(relayKey: string): TableProblem | null;
}

/** POL-5: why mail to a destination governed by a broken line waits (file, line, what is wrong). */
export function brokenLineReason(problem: TableProblem): string {
  return `policy table ${problem.file} line ${problem.line} cannot be read (${problem.message}): mail to ${problem.name ?? 'it'} waits until the line is fixed (POL-5)`;
}

export class PolicyTable implements PolicyTableLookup {
  private readonly domains = new Map<string, PolicyRule>();
  private readonly parents = new Map<string, PolicyRule>();
  private readonly relays = new Map<string, PolicyRule>();
  /** POL-5: broken lines by destination, kept apart so that the hot lookups stay one map read when there are none. */
  private readonly broken = {
    domains: new Map<string, TableProblem>(),
    parents: new Map<string, TableProblem>(),
    relays: new Map<string, TableProblem>(),
  };

  /** `file`: how the table's file is named in messages (`config/outbound_tls_policy`). */
  constructor(
    readonly file: string,
    readonly rules: readonly PolicyRule[] = [],
    readonly problems: readonly TableProblem[] = [],
  ) {
    for (const rule of rules) this.mapFor(rule).set(this.mapKey(rule), rule);
    for (const problem of problems) {
      const name = problem.name;
      if (!problem.defers || name === undefined) continue;
      const [map, key] = name.startsWith('relay:')
        ? [this.broken.relays, name]
        : name.startsWith('.')
          ? [this.broken.parents, name.slice(1)]
          : [this.broken.domains, name];
      if (!map.has(key)) map.set(key, problem);
    }
  }

  /** A table without rules (no file, or a file of comments). */
  static empty(file: string): PolicyTable {
    return new PolicyTable(file);
  }

  private mapFor(rule: PolicyRule): Map<string, PolicyRule> {
    return rule.key.kind === 'domain' ? this.domains : rule.key.kind === 'subdomains' ? this.parents : this.relays;
  }

  private mapKey(rule: PolicyRule): string {
    return rule.key.kind === 'domain' ? rule.key.domain : rule.key.kind === 'subdomains' ? rule.key.parent : rule.key.key;
  }

  /**
   * The entry of a recipient domain (lowercase A-label): its exact line, else
   * its nearest `.parent` line; a rule or a broken line (POL-5), null for none
   * (and for address literals).
   */
  private lookupDomain(aLabel: string): PolicyRule | TableProblem | null {
    const exact = this.domains.get(aLabel) ?? this.broken.domains.get(aLabel);
    if (exact) return exact;
    if ((this.parents.size === 0 && this.broken.parents.size === 0) || aLabel.startsWith('[')) return null;
    for (let dot = aLabel.indexOf('.'); dot !== -1; dot = aLabel.indexOf('.', dot + 1)) {
      const parent = aLabel.slice(dot + 1);
      const entry = this.parents.get(parent) ?? this.broken.parents.get(parent);
      if (entry) return entry;
    }
    return null;
  }

  /** The rule of a recipient domain: exact, else the nearest `.parent`; null for none, or when that line is broken. */
  forDomain(aLabel: string): PolicyRule | null {
    const exact = this.domains.get(aLabel);
    if (exact) return exact;
    const entry = this.lookupDomain(aLabel);
    return entry && 'key' in entry ? entry : null;
  }

  /** POL-5: the broken line that governs a recipient domain (its mail waits), or null. */
  brokenForDomain(aLabel: string): TableProblem | null {
    if (this.broken.domains.size === 0 && this.broken.parents.size === 0) return null;
    const entry = this.lookupDomain(aLabel);
    return entry && !('key' in entry) ? entry : null;
  }

  /** The rule of a relay's key (`relay:<host>`, as `relayKey` makes it), or null. */
  forRelay(relayKey: string): PolicyRule | null {
    return this.relays.get(relayKey) ?? null;
  }

  /** POL-5: the broken line of a relay (connections to it wait), or null. */
  brokenForRelay(relayKey: string): TableProblem | null {
    return this.relays.has(relayKey) ? null : (this.broken.relays.get(relayKey) ?? null);
  }

  /** Lines that name `name` (a normalised key) but are not in force: what `explain` warns about. */
  ignoredFor(name: string): TableProblem[] {
    return this.problems.filter((p) => p.severity === 'error' && p.name === name);
  }

  get errors(): number {
    return this.problems.filter((p) => p.severity === 'error').length;
  }
}

/** Reads a table's text; `file` names it in every problem. Never throws. */
export function parsePolicyTable(text: string, file: string): PolicyTable {
  const rules: PolicyRule[] = [];
  const problems: TableProblem[] = [];
  const seen = new Map<string, PolicyRule>();
  text.split(/\r\n|\r|\n/).forEach((content, index) => {
    const line = index + 1;
    const result = parseRuleLine(content, file, line);
    if (result.kind === 'blank') return;
    if (result.kind === 'problem') {
      const { message, name, defers } = result;
      problems.push({ file, line, severity: 'error', message, ...(name ? { name } : {}), ...(defers ? { defers } : {}) });
      return;
    }
    const { rule } = result;
    const earlier = seen.get(rule.name);
    if (earlier) {
      const message = `${rule.name}: duplicate of line ${earlier.line}, which stays in force (${ruleLabel(earlier)})`;
      problems.push({ file, line, severity: 'error', message, name: rule.name });
      return;
    }
    seen.set(rule.name, rule);
    rules.push(rule);
    for (const warning of result.warnings)
      problems.push({ file, line, severity: 'warning', message: `${rule.name}: ${warning}`, name: rule.name });
  });
  return new PolicyTable(file, rules, problems);
}
