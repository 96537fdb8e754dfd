/**
 * OPS-6: the plan of a recipient domain, kept for the next messages to that
 * domain while nothing it was made from can have changed, so that a warm
 * delivery is planned without walking the DNS cache again, converting labels,
 * ordering records or a chain of awaits (outbound_mx answers `get_mx` at once).
 *
 * A plan is kept only when it is an ordinary one: `deliver` to a domain,
 * nothing dropped or left out on the way (no notes: in particular no cap cut
 * through equal preferences), DANE not in play (TLSA answers and the
 * resolver's status are not followed here), an MTA-STS policy or none (never a
 * failed discovery, never a store that could not be read), and every DNS answer
 * it used still in the answer cache. It is used again only while
 *  - every one of those DNS answers is within its TTL (the earliest expiry);
 *  - the inputs in force are the same objects (settings, policy table, DANE
 *    status, DNS client: a reload or a status change replaces them);
 *  - the MTA-STS resolver still answers from memory with the same policy
 *    (the same parsed policy and id), or again that there is none: it is asked
 *    every time, so its re-check and expiry timing stay exactly as they were.
 * Each reuse shuffles equal-preference MX hosts again (MX-7). The plan's other
 * parts are shared between the messages that use it; nothing changes them
 * after the plan is made.
 */
import type { DnsClient } from '../mx/dns-client';
import { BoundedMap, stringBytes } from '../store/bounded-map';
import type { DeliveryPlan, NoPolicy, PlannedMx, PolicyInEffect } from './plan';

/** How many domains' plans a process keeps at most, and in how many estimated bytes (OPS-5: the oldest kept goes first). */
export const PLAN_MEMO_LIMIT = 10_000;
export const PLAN_MEMO_BYTES = 8 * 1024 * 1024;

type DnsType = 'MX' | 'A' | 'AAAA' | 'TXT';

interface Kept<P extends PolicyInEffect> {
  plan: Extract<DeliveryPlan<P>, { kind: 'deliver' }>;
  inputs: readonly unknown[];
  until: number;
}

/**
 * A DNS client for one plan that notes, as each answer arrives, until when the
 * cache keeps it: `until()` is the earliest of those, or undefined when an
 * answer was not cached (or the client cannot say), so that the plan is kept
 * exactly as long as the answers it was made from. Read when the answer
 * arrives, not after the plan: an entry replaced meanwhile (expired and asked
 * again by another delivery) must not lend its later expiry to this plan.
 */
export function recordingDns(inner: DnsClient): { client: DnsClient; until: () => number | undefined } {
  let until = Infinity;
  let asked = 0;
  const cached = inner.cachedUntil?.bind(inner);
  const note =
    <T>(name: string, type: DnsType) =>
    (answer: T): T => {
      asked++;
      const expires = cached?.(name, type);
      until = expires === undefined ? -Infinity : Math.min(until, expires);
      return answer;
    };
  const client: DnsClient = {
    mx: (name) => inner.mx(name).then(note(name, 'MX')),
    a: (name) => inner.a(name).then(note(name, 'A')),
    aaaa: (name) => inner.aaaa(name).then(note(name, 'AAAA')),
    txt: (name) => inner.txt(name).then(note(name, 'TXT')),
  };
  return { client, until: () => (asked > 0 && until > -Infinity ? until : undefined) };
}

/** MX-7: the same hosts, equal preferences in a new random order (the array itself when there is no tie). */
export function reshuffleTies(mxs: readonly PlannedMx[], random: () => number = Math.random): PlannedMx[] {
  let tie = false;
  for (let i = 1; i < mxs.length && !tie; i++) tie = (mxs[i] as PlannedMx).priority === (mxs[i - 1] as PlannedMx).priority;
  if (!tie) return mxs as PlannedMx[];
  const out = mxs.slice();
  for (let start = 0; start < out.length;) {
    let end = start + 1;
    while (end < out.length && (out[end] as PlannedMx).priority === (out[start] as PlannedMx).priority) end++;
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(random() * (i - start + 1));
      const a = out[i] as PlannedMx;
      out[i] = out[j] as PlannedMx;
      out[j] = a;
    }
    start = end;
  }
  return out;
}

/** The same MTA-STS answer for the plan: the same parsed policy and id, or again none (not failed). */
function samePolicy(kept: PolicyInEffect | NoPolicy | null, now: PolicyInEffect | NoPolicy): boolean {
  if (kept?.kind === 'policy') return now.kind === 'policy' && now.policy === kept.policy && now.id === kept.id;
  return kept?.kind === 'none' && kept.failed !== true && now.kind === 'none' && now.failed !== true;
}

/**
 * OPS-5: what one kept plan holds beyond what it shares (the parsed policy and
 * the table rule live in the resolver's memory and the table): the domain as
 * key and in the destination, the hosts and addresses, the hosts listed for
 * the log, the arrays and objects around them.
 */
function keptBytes<P extends PolicyInEffect>(domain: string, kept: Kept<P>): number {
  const { plan } = kept;
  let bytes = 400 + stringBytes(domain) + stringBytes(plan.destination.kind === 'domain' ? plan.destination.uLabel : '');
  for (const mx of plan.mxs) {
    bytes += 120 + (mx.host ? stringBytes(mx.host) : 0);
    for (const address of mx.addresses) bytes += 16 + stringBytes(address);
  }
  for (const host of [...plan.testingWouldNotUse, ...plan.exemptedWouldNotUse]) bytes += 16 + stringBytes(host);
  return bytes;
}

export class PlanMemo<P extends PolicyInEffect> {
  private readonly entries: BoundedMap<string, Kept<P>>;

  constructor(limit: number = PLAN_MEMO_LIMIT, bytes: number = PLAN_MEMO_BYTES) {
    this.entries = new BoundedMap(limit, () => bytes, keptBytes);
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.entries.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The kept plan for `domain` (as Haraka handed it over) when it is still
   * valid: `policyNow` answers the MTA-STS question from memory (undefined:
   * it would have to ask, so the plan is made again). The plan comes back with
   * the policy as answered now and its ties shuffled again.
   */
  get(
    domain: string,
    inputs: readonly unknown[],
    now: number,
    policyNow: (aLabel: string) => P | NoPolicy | undefined,
    random?: () => number,
  ): DeliveryPlan<P> | undefined {
    const kept = this.entries.get(domain);
    if (!kept) return undefined;
    if (kept.until <= now || kept.inputs.length !== inputs.length || kept.inputs.some((value, i) => value !== inputs[i])) {
      this.entries.delete(domain);
      return undefined;
    }
    const destination = kept.plan.destination;
    const policy = destination.kind === 'domain' ? policyNow(destination.aLabel) : undefined;
    if (!policy || !samePolicy(kept.plan.policy, policy)) {
      this.entries.delete(domain);
      return undefined;
    }
    return { ...kept.plan, policy, mxs: reshuffleTies(kept.plan.mxs, random) };
  }

  /**
   * Keeps `plan` for `domain` when it may be used again (see the module's
   * comment); `until`: when the first of the DNS answers it was made from
   * leaves the cache (undefined: one was not cached; recordingDns says),
   * `daneInPlay` whether DANE could apply.
   */
  keep(domain: string, plan: DeliveryPlan<P>, inputs: readonly unknown[], until: number | undefined, daneInPlay: boolean): boolean {
    if (plan.kind !== 'deliver' || plan.destination.kind !== 'domain' || daneInPlay || plan.state.dane || plan.daneExemptedBy) return false;
    if (plan.notes.length > 0 || until === undefined) return false;
    if (!(plan.policy?.kind === 'policy' || (plan.policy?.kind === 'none' && plan.policy.failed !== true))) return false;
    this.entries.set(domain, { plan, inputs: [...inputs], until });
    return true;
  }

  clear(): void {
    this.entries.clear();
  }
}
