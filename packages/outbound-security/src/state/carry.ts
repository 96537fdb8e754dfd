/**
 * ST-7: carries what one store holds into another (a store switch, and the
 * CLI's `migrate`): every ratchet level, the higher level winning and its
 * `raised` time and host kept, and every unexpired cached MTA-STS policy the
 * target holds no newer fetch of. Never lowers anything in the target. What
 * cannot be carried (an unreadable or expired entry) is listed, not thrown;
 * a store that cannot be read or written at all rejects (the caller retries).
 */
import type { PolicyStore } from '../mta-sts/store';
import type { RatchetStore } from '../ratchet/store';
import { levelName } from '../sec-level';

export interface StorePair {
  ratchet: RatchetStore;
  policy: PolicyStore;
}

export interface CarryReport {
  /** Ratchet levels read from the source (each now held at least as high by the target). */
  levels: number;
  /** Of those, the ones the target held lower or not at all (raised there). */
  raised: number;
  /** Cached policies written to the target (it held none or an older fetch). */
  policies: number;
  /** What was not carried, one line each: `<key>: <why>`. */
  skipped: string[];
}

export async function carryStores(from: StorePair, to: StorePair, now: () => number = Date.now): Promise<CarryReport> {
  const report: CarryReport = { levels: 0, raised: 0, policies: 0, skipped: [] };
  await carryLevels(from.ratchet, to.ratchet, report);
  await carryPolicies(from.policy, to.policy, report, now);
  return report;
}

async function carryLevels(from: RatchetStore, to: RatchetStore, report: CarryReport): Promise<void> {
  for (const { domain, read } of await from.list()) {
    if (read.kind !== 'level') {
      if (read.kind === 'unreadable') report.skipped.push(`${domain}: unreadable in ${from.description} (${read.reason})`);
      continue;
    }
    report.levels++;
    const { level, host, raisedAt } = read.entry;
    const there = await to.get(domain);
    if (there.kind === 'unreadable') {
      // Still enforced as unreadable there (ST-4): nothing is lowered, nothing can be written.
      report.skipped.push(`${domain}: ${levelName(level)} not carried, unreadable in ${to.description} (${there.reason})`);
      continue;
    }
    if (there.kind === 'level' && there.entry.level >= level) continue;
    await to.raise(domain, level, host, raisedAt);
    report.raised++;
  }
}

async function carryPolicies(from: PolicyStore, to: PolicyStore, report: CarryReport, now: () => number): Promise<void> {
  for (const { domain, read } of await from.list()) {
    if (read.kind !== 'entry') {
      if (read.kind === 'unreadable') report.skipped.push(`policy ${domain}: unreadable in ${from.description} (${read.reason})`);
      continue;
    }
    if (read.entry.expiresAt <= now()) {
      report.skipped.push(`policy ${domain}: expired`);
      continue;
    }
    const existing = await to.get(domain);
    if (existing.kind === 'entry' && existing.entry.fetchedAt >= read.entry.fetchedAt) continue;
    await to.put(read.entry);
    report.policies++;
  }
}
