/**
 * DANE-1, DANE-6: the plan's DANE dependency (`PlanDeps.dane`) from the
 * `[dane]` mode and the resolver check: present only while DANE is on or
 * observed and the resolver validates. One function, so outbound_mx and the
 * CLI's `mx show` and `probe` plan with the same DANE lookups.
 */
import type { DnsTransport } from '../dns/wire';
import { lookupTlsa, type TlsaLookup } from './lookup';
import type { DaneDeps } from './plan-step';

export interface DaneDepsOptions {
  mode: 'on' | 'observe' | 'off';
  /** DANE-1: the last resolver check found a validating resolver whose AD bit is believed. */
  inEffect: boolean;
  /** The transport (with its cache) the MX and address lookups use. */
  transport: DnsTransport;
  /** The port the MXs are reached on: the TLSA name is `_<port>._tcp.<host>`. */
  port: number;
  /** Sees each TLSA lookup's outcome (metrics, the CLI's report). */
  onLookup?(host: string, found: TlsaLookup): void;
}

export function daneDeps(options: DaneDepsOptions): DaneDeps | undefined {
  const { mode, inEffect, transport, port, onLookup } = options;
  if (mode === 'off' || !inEffect) return undefined;
  return {
    mode,
    lookupTlsa: async (host) => {
      const found = await lookupTlsa(transport, host, port);
      onLookup?.(host, found);
      return found;
    },
  };
}
