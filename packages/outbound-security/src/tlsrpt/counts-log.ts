/**
 * The text format of the file store's count files (RPT-1): each process
 * appends to its own file per day, one batch per flush, and a report reads
 * every process's file of the day and sums them.
 *
 * A batch is written as one or more lines in a single write, each line a JSON
 * object `{"batch":ID,"part":I,"parts":N,"policies":[…],"counts":[…]}`:
 * - `policies`: `[id, type, domain, strings, mxHosts]` of the policies this
 *   file has not defined yet (a file defines each policy once);
 * - `counts`: `[policyDomain, policyId, failureKey or "", n]`.
 * A batch counts only when all its parts are read: a write cut short by a
 * crash leaves a batch that counts not at all (the recorder then offers it
 * again), never half of one. Lines hold at most LINE_ENTRIES counts so that no
 * single JSON.parse blocks the event loop for long (OPS-5).
 */
import { isPolicyDomain, CountsBuilder, type CountEntry, type DomainCounts } from './store';
import { failureKey, isDay, parseFailureKey, reportedPolicy, type PolicyType, type ReportedPolicy } from './record';

/** Counts per line (OPS-5). */
export const LINE_ENTRIES = 500;

type PolicyRow = [string, PolicyType, string, string[], string[]];
type CountRow = [string, string, string, number];

interface BatchLine {
  batch: string;
  part: number;
  parts: number;
  policies: PolicyRow[];
  counts: CountRow[];
}

/**
 * The lines of one batch of one day (`entries` all of that day). `defined`
 * holds the policy ids the file already defines; the new ones are added to it.
 */
export function encodeBatch(batchId: string, entries: readonly CountEntry[], defined: Set<string>): string {
  const chunks: CountEntry[][] = [];
  for (let i = 0; i < entries.length; i += LINE_ENTRIES) chunks.push(entries.slice(i, i + LINE_ENTRIES));
  const lines = chunks.map((chunk, index) => {
    const policies: PolicyRow[] = [];
    for (const { policy } of chunk) {
      if (defined.has(policy.id)) continue;
      defined.add(policy.id);
      policies.push([policy.id, policy.type, policy.domain, [...policy.strings], [...policy.mxHosts]]);
    }
    const counts: CountRow[] = chunk.map((e) => [e.policyDomain, e.policy.id, e.failure ? failureKey(e.failure) : '', e.count]);
    const line: BatchLine = { batch: batchId, part: index + 1, parts: chunks.length, policies, counts };
    return `${JSON.stringify(line)}\n`;
  });
  return lines.join('');
}

/** Every Policy Domain's counts in one day's files, with what could not be read. */
export class DayReader {
  private readonly domains = new Map<string, CountsBuilder>();
  readonly problems: string[] = [];

  constructor(private readonly day: string) {
    if (!isDay(day)) throw new Error(`tlsrpt: "${day}" is not a day`);
  }

  /** Adds one process's file (`name` for problem texts). */
  addFile(name: string, text: string): void {
    const policies = new Map<string, ReportedPolicy>();
    const partial = new Map<string, BatchLine[]>();
    const lines = text.split('\n');
    const torn = lines.pop(); // '' after the final newline; otherwise a line still being (or never completely) written
    if (torn) this.problems.push(`${name}: an incomplete last line (${torn.length} bytes) was skipped`);
    lines.forEach((text, index) => {
      const line = parseLine(text);
      if (typeof line === 'string') {
        this.problems.push(`${name}:${index + 1}: ${line}`);
        return;
      }
      const parts = partial.get(line.batch) ?? [];
      parts.push(line);
      if (parts.length < line.parts) {
        partial.set(line.batch, parts);
        return;
      }
      partial.delete(line.batch);
      for (const part of parts) this.apply(name, part, policies);
    });
    for (const batch of partial.keys()) this.problems.push(`${name}: batch ${batch} is incomplete and was skipped`);
  }

  private apply(name: string, line: BatchLine, policies: Map<string, ReportedPolicy>): void {
    for (const [id, type, domain, strings, mxHosts] of line.policies) {
      const policy = reportedPolicy(type, domain, strings, mxHosts);
      // The id is recomputed from the content: a policy is never reported under another's id.
      policies.set(id, policy);
    }
    for (const [policyDomain, policyId, key, count] of line.counts) {
      const policy = policies.get(policyId);
      if (!policy) {
        this.problems.push(`${name}: ${count} session(s) under undefined policy ${policyId}`);
        continue;
      }
      const failure = key === '' ? undefined : parseFailureKey(key);
      if (failure === null) {
        this.problems.push(`${name}: unreadable failure details ${key.slice(0, 80)}`);
        continue;
      }
      const builder = this.builder(policyDomain);
      builder.addPolicy(policy);
      builder.addCount(policy.id, count, failure ? { key: failureKey(failure), details: failure } : undefined);
    }
  }

  private builder(policyDomain: string): CountsBuilder {
    let builder = this.domains.get(policyDomain);
    if (!builder) {
      builder = new CountsBuilder(this.day, policyDomain);
      this.domains.set(policyDomain, builder);
    }
    return builder;
  }

  /** The Policy Domains with counts, each with its merged counts (the day's problems go to every domain). */
  result(): Map<string, DomainCounts> {
    const out = new Map<string, DomainCounts>();
    for (const [domain, builder] of [...this.domains].sort(([a], [b]) => a.localeCompare(b))) {
      const counts = builder.build();
      out.set(domain, { ...counts, problems: [...counts.problems, ...this.problems] });
    }
    return out;
  }
}

/** A batch line, or what is wrong with it. */
function parseLine(text: string): BatchLine | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  const v = value as Partial<BatchLine> | null;
  if (typeof v !== 'object' || v === null || typeof v.batch !== 'string') return 'not a batch line';
  if (!Number.isInteger(v.part) || !Number.isInteger(v.parts) || (v.part as number) < 1 || (v.part as number) > (v.parts as number)) {
    return 'bad part numbers';
  }
  if (!Array.isArray(v.policies) || !v.policies.every(isPolicyRow)) return 'malformed policies';
  if (!Array.isArray(v.counts) || !v.counts.every(isCountRow)) return 'malformed counts';
  return v as BatchLine;
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((s) => typeof s === 'string');
}

function isPolicyRow(row: unknown): row is PolicyRow {
  if (!Array.isArray(row) || row.length !== 5) return false;
  const [id, type, domain, strings, mxHosts] = row as unknown[];
  return (
    typeof id === 'string' &&
    (type === 'sts' || type === 'tlsa' || type === 'no-policy-found') &&
    typeof domain === 'string' &&
    isStrings(strings) &&
    isStrings(mxHosts)
  );
}

function isCountRow(row: unknown): row is CountRow {
  if (!Array.isArray(row) || row.length !== 4) return false;
  const [domain, policyId, key, count] = row as unknown[];
  return (
    typeof domain === 'string' &&
    isPolicyDomain(domain) &&
    typeof policyId === 'string' &&
    typeof key === 'string' &&
    Number.isSafeInteger(count) &&
    (count as number) > 0
  );
}
