/**
 * What one process remembers of MTA-STS between cache store reads (STS-5,
 * OPS-5): maps bounded in entries *and* in estimated bytes, forgetting the
 * least recently stored first. Forgetting is always safe: the cache store
 * (files or Redis) still holds every policy; memory only saves a read.
 */
import { stringBytes } from '../store/bounded-map';
import type { MtaStsPolicy } from './policy';
import type { CachedPolicy } from './store';

/** Domains remembered per process, for each of the in-memory maps; the oldest go first. */
export const MEMORY_LIMIT = 50_000;

/** OPS-5: default memory budget (ini `[mta_sts] memory_mb`) for the three maps together. */
export const DEFAULT_MEMORY_BUDGET_MB = 64;

/** Share of the budget for policies; remembered absences and failures get an eighth each. */
export const POLICY_SHARE = 3 / 4;

/**
 * An upper estimate of the heap a remembered policy holds: its text (kept for
 * writing the entry back), the parsed patterns (an object and two strings
 * each) and their lookup sets, the entry and the map slot.
 */
export function policyBytes(entry: CachedPolicy, policy: MtaStsPolicy): number {
  let patterns = 0;
  for (const p of policy.mx) patterns += 120 + stringBytes(p.text) + stringBytes(p.base);
  return 400 + stringBytes(entry.text) + stringBytes(entry.id) + 2 * stringBytes(entry.domain) + patterns;
}

/** A remembered failure or absence: a key, a number and maybe a reason. */
export function noteBytes(domain: string, reason = ''): number {
  return 160 + 2 * stringBytes(domain) + (reason === '' ? 0 : stringBytes(reason));
}
