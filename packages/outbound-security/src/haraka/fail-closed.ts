/**
 * TLS-6, TLS-9: while outbound connections cannot be guarded (outbound_tls
 * missing, failed, or unable to hook into Haraka), mail is deferred for every
 * requirement the plugins know of, read from the same places the guard would
 * read: the policy table's minimum, the stored ratchet level (domain or
 * address literal), a cached MTA-STS enforce policy, each unless the table
 * exempts it. One function for both plugins: outbound_tls's fail-closed hook
 * and outbound_mx when outbound_tls is not there.
 */
import { literalKey, parseDomainLiteral, toALabel } from '../domain';
import type { PolicyStore } from '../mta-sts/store';
import { parsePolicy } from '../mta-sts/policy';
import { ruleLabel } from '../policy-table/rule';
import { brokenLineReason, type PolicyTableLookup } from '../policy-table/table';
import type { RatchetStore } from '../ratchet/store';
import { SecLevel, levelName } from '../tls/sec-level';

export interface FailClosedSources {
  table: PolicyTableLookup;
  ratchet: RatchetStore;
  policy: PolicyStore;
  now?: () => number;
}

/** The ratchet key of a recipient domain as outbound_mx writes it (A-label or canonical literal), or null. */
export function recipientKey(domain: string): string | null {
  if (domain.trim().startsWith('[')) {
    const literal = parseDomainLiteral(domain);
    return literal ? literalKey(literal) : null;
  }
  const name = toALabel(domain);
  return name.ok ? name.aLabel : null;
}

/** Why a message to `key` must wait while connections are unguarded, or null when nothing is known to require TLS. */
export async function failClosedReason(sources: FailClosedSources, key: string): Promise<string | null> {
  const broken = key.startsWith('[') ? null : sources.table.brokenForDomain?.(key);
  if (broken) return brokenLineReason(broken);
  const rule = key.startsWith('[') ? null : sources.table.forDomain(key);
  if (rule && rule.minimum > SecLevel.PLAIN) return `${key} requires ${rule.level} (policy table rule ${ruleLabel(rule)})`;
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
  return parsed.policy.mode === 'enforce' ? `${key} has an MTA-STS enforce policy (id ${cached.entry.id})` : null;
}
