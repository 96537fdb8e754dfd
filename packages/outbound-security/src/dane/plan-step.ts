/**
 * The DANE step of the per-message plan (DANE-2, DANE-3, DANE-5, DANE-6,
 * DANE-8, DANE-11):
 * given the MX hosts the lookup found, which ones have DANE, which ones must
 * be skipped, and whether DANE applies to the delivery at all.
 *
 * - The MX RRset (or an implicit MX's NODATA) must be secure, and each host's
 *   addresses too, before its TLSA RRset is asked for (DANE-2).
 * - A host whose TLSA lookup fails (bogus, SERVFAIL, timeout) is dropped with
 *   its reason; with `observe` it stays and the drop is only reported
 *   (DANE-3, DANE-6). With every host dropped the message waits (transient).
 * - DANE applies when at least one host has TLSA records; then MTA-STS is not
 *   used for this delivery (DANE-5, RFC 8461 §2).
 * - While the resolver check is unknown (DANE-8), the DANE candidates (hosts of
 *   a secure MX RRset whose addresses are secure, or whose address lookup
 *   failed) are skipped without a TLSA question: never used without DANE.
 * - A host reached through a secure CNAME carries both its names (DANE-11).
 */
import type { ResolvedMx } from '../mx/lookup';
import type { TlsaLookup } from './lookup';
import type { TlsaRecord } from './tlsa';

export type DaneMode = 'on' | 'observe';

/** What the connection to one MX host must match (kept in the message's delivery state). */
export interface DaneHostRequirement {
  tlsaName: string;
  /** Usable records (DANE-4); empty: only unusable ones were published, TLS is still required (DANE-3). */
  usable: TlsaRecord[];
  /** DANE-11: the host name is a secure CNAME: the expanded name, then the original; the certificate may carry either. */
  names?: string[];
}

export interface DaneDeps {
  mode: DaneMode;
  lookupTlsa(host: string): Promise<TlsaLookup>;
  /** DANE-8: the resolver check is unknown (why): DANE candidates are skipped, no TLSA question is asked. */
  unknown?: string;
}

export type DaneStep =
  /** DANE does not apply: `reason` says why (for `mx show`). */
  | { kind: 'not-applicable'; reason: string }
  | {
      kind: 'applies';
      /** The hosts to use (in `observe`, also those whose TLSA lookup failed). */
      mxs: ResolvedMx[];
      /** Per MX host name: what its connections must match. */
      hosts: Record<string, DaneHostRequirement>;
      /** Hosts dropped or, in observe, kept despite a failed lookup: one line each. */
      notes: string[];
    }
  /** mode on: every host failed its TLSA lookup. */
  | { kind: 'none-left'; reason: string };

export async function daneStep(mxs: readonly ResolvedMx[], mxSecure: boolean, deps: DaneDeps): Promise<DaneStep> {
  if (!mxSecure) return { kind: 'not-applicable', reason: 'the MX answer is not DNSSEC-validated' };
  // A host of a secure MX RRset whose A or AAAA lookup failed (a validating resolver's SERVFAIL for
  // bogus data) has an unknown status: it is skipped like a failed TLSA lookup, never used without DANE.
  const unknown = mxs.filter((mx) => mx.secure !== true && mx.addressLookupFailed !== undefined);
  const candidates = mxs.filter((mx) => mx.secure === true);
  if (candidates.length === 0 && unknown.length === 0)
    return { kind: 'not-applicable', reason: 'no MX host has DNSSEC-validated addresses' };
  if (deps.unknown !== undefined) return skipCandidates(mxs, new Set([...candidates, ...unknown]), deps.mode, deps.unknown);
  const lookups = await Promise.all(candidates.map((mx) => deps.lookupTlsa(mx.host)));
  const byHost = new Map<string, TlsaLookup>(candidates.map((mx, i) => [mx.host, lookups[i] as TlsaLookup]));
  for (const mx of unknown) {
    byHost.set(mx.host, {
      kind: 'failed',
      name: mx.host,
      reason: `address lookup for ${mx.host} failed (${mx.addressLookupFailed}): DNSSEC status unknown`,
    });
  }
  // OPS-8: keyed by host names from DNS: no inherited properties.
  const hosts = Object.create(null) as Record<string, DaneHostRequirement>;
  const notes: string[] = [];
  const kept: ResolvedMx[] = [];
  const failed: string[] = [];
  for (const mx of mxs) {
    const found = byHost.get(mx.host);
    if (found?.kind === 'dane') {
      hosts[mx.host] = {
        tlsaName: found.name,
        usable: found.rrset.kind === 'usable' ? found.rrset.usable : [],
        ...(found.names ? { names: found.names } : {}),
      };
      kept.push(mx);
    } else if (found?.kind === 'failed') {
      failed.push(found.reason);
      if (deps.mode === 'observe') {
        notes.push(`DANE (observe): ${mx.host} would be skipped: ${found.reason}`);
        kept.push(mx);
      } else {
        notes.push(`MX ${mx.host} skipped: ${found.reason}`);
      }
    } else {
      kept.push(mx);
    }
  }
  if (Object.keys(hosts).length === 0 && failed.length === 0) {
    return { kind: 'not-applicable', reason: 'no MX host publishes TLSA records' };
  }
  if (kept.length === 0) return { kind: 'none-left', reason: `every MX host failed its TLSA lookup: ${failed.join('; ')}` };
  return { kind: 'applies', mxs: kept, hosts, notes };
}

/** DANE-8: while the resolver check is unknown, every DANE candidate is skipped (kept in observe), the others stay. */
function skipCandidates(mxs: readonly ResolvedMx[], candidates: ReadonlySet<ResolvedMx>, mode: DaneMode, unknown: string): DaneStep {
  const why = `DANE status unknown (${unknown}): hosts of a DNSSEC-validated MX answer wait until the resolver check succeeds`;
  const notes = [...candidates].map((mx) =>
    mode === 'observe' ? `DANE (observe): ${mx.host} would be skipped: ${why}` : `MX ${mx.host} skipped: ${why}`,
  );
  const kept = mode === 'observe' ? [...mxs] : mxs.filter((mx) => !candidates.has(mx));
  if (kept.length === 0) return { kind: 'none-left', reason: why };
  return { kind: 'applies', mxs: kept, hosts: {}, notes };
}
