/**
 * Store selection (ST-1): which ratchet and policy stores the plugins and the CLI open for
 * the settings in outbound_tls.ini. One place, so both always use the same
 * store. Today the embedded file store (ST-2); a Redis store (ST-3) is chosen
 * here once it exists.
 */
import path from 'node:path';
import { FileRatchetStore } from './file-ratchet-store';
import { FilePolicyStore, type PolicyStore } from './policy-store';
import type { RatchetStore } from './ratchet-store';

/** The ratchet's directory under `data_dir`. */
export const RATCHET_SUBDIR = 'ratchet';

export interface StoreSettings {
  /** Absolute `data_dir` (see parseOutboundTlsConfig). */
  dataDir: string;
}

export function openRatchetStore(settings: StoreSettings): RatchetStore {
  return new FileRatchetStore(path.join(path.resolve(settings.dataDir), RATCHET_SUBDIR));
}

/** The MTA-STS policy cache's directory under `data_dir`. */
export const POLICY_SUBDIR = 'mta-sts';

export function openPolicyStore(settings: StoreSettings): PolicyStore {
  return new FilePolicyStore(path.join(path.resolve(settings.dataDir), POLICY_SUBDIR));
}
