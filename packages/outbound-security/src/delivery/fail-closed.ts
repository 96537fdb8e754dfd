/**
 * TLS-6, TLS-9: while outbound connections cannot be guarded (outbound_tls
 * missing, failed, or unable to hook into Haraka), mail is deferred for every
 * requirement the plugins know of, read from the same places the guard would
 * read: the policy table's minimum, the stored ratchet level (domain or
 * address literal), a cached MTA-STS enforce policy, each unless the table
 * exempts it. One function for both plugins: outbound_tls's fail-closed hook
 * and outbound_mx when outbound_tls is not there.
 */
import type { PolicyStore } from '../mta-sts/store';
import { parsePolicy } from '../mta-sts/policy';
import { ruleLabel, type PolicyRule } from '../policy-table/rule';
import { brokenLineReason, type PolicyTableLookup } from '../policy-table/table';
import type { RatchetStore } from '../ratchet/store';
import { SecLevel, levelName } from '../sec-level';

export interface FailClosedSources {
  table: PolicyTableLookup;
  ratchet: RatchetStore;
  policy: PolicyStore;
  now?: () => number;
}

/** TLS-6: a message to `key` needs the guard: its policy table rule asks for a level above PLAIN. */
export function tableMinimumReason(key: string, rule: PolicyRule): string {
  return `${key} requires ${rule.level} (policy table rule ${ruleLabel(rule)})`;
}

/** TLS-6: a message to `key` needs the guard: an MTA-STS enforce policy applies (the plan's, or the cached one). */
export function stsEnforceReason(key: string, policyId: string): string {
  return `${key} has an MTA-STS enforce policy (id ${policyId})`;
}

/** Why a message to `key` must wait while connections are unguarded, or null when nothing is known to require TLS. */
export async function failClosedReason(sources: FailClosedSources, key: string): Promise<string | null> {
  const broken = key.startsWith('[') ? null : sources.table.brokenForDomain?.(key);
  if (broken) return brokenLineReason(broken);
  const rule = key.startsWith('[') ? null : sources.table.forDomain(key);
  if (rule && rule.minimum > SecLevel.PLAIN) return tableMinimumReason(key, rule);
  if (!rule?.exempt.includes('ratchet')) {
    const level = await sources.ratchet.get(key);
    if (level.kind === 'unreadable') return `${key} has an unreadable stored level`;
    if (level.kind === 'level' && level.entry.level > SecLevel.PLAIN) return `${key} requires ${levelName(level.entry.level)}`;
  }
  if (key.startsWith('[') || rule?.exempt.includes('mta-sts')) return null;
  const cached = await sources.policy.get(key);
  if (cached.kind === 'unreadable') return `${key} has an unreadable cached MTA-STS policy`;
  if (cached.kind !== 'entry' || cached.entry.expiresAt <= (sources.now ?? Date.now)()) return null;
  const parsed = parsePolicy(cached.entry.text);
  if (!parsed.ok) return `${key} has an unreadable cached MTA-STS policy (${parsed.error})`;
  return parsed.policy.mode === 'enforce' ? stsEnforceReason(key, cached.entry.id) : null;
}
