/**
 * DANE-1, DANE-6, DANE-8: the plan's DANE dependency (`PlanDeps.dane`) from
 * the `[dane]` mode and the resolver status: present while DANE is on or
 * observed and the resolver validates (TLSA lookups, DANE-11 CNAMEs
 * followed), or while that is unknown (DANE candidates skipped). One
 * function, so outbound_mx and the CLI's `mx show` and `probe` plan with the
 * same DANE lookups.
 */
import type { DnsTransport } from '../dns/wire';
import { lookupHostTlsa, type TlsaLookup } from './lookup';
import type { DaneDeps } from './plan-step';
import type { DaneStatusState } from './resolver-status';

export interface DaneDepsOptions {
  mode: 'on' | 'observe' | 'off';
  /** DANE-1, DANE-8: the resolver status in this process. */
  status: DaneStatusState;
  /** The transport (with its cache) the MX and address lookups use. */
  transport: DnsTransport;
  /** The port the MXs are reached on: the TLSA name is `_<port>._tcp.<host>`. */
  port: number;
  /** Sees each TLSA lookup's outcome (metrics, the CLI's report). */
  onLookup?(host: string, found: TlsaLookup): void;
}

export function daneDeps(options: DaneDepsOptions): DaneDeps | undefined {
  const { mode, status, transport, port, onLookup } = options;
  if (mode === 'off' || (status.kind !== 'in-effect' && status.kind !== 'unknown')) return undefined;
  return {
    mode,
    lookupTlsa: async (host) => {
      const found = await lookupHostTlsa(transport, host, port);
      onLookup?.(host, found);
      return found;
    },
    ...(status.kind === 'unknown' ? { unknown: status.reason } : {}),
  };
}
