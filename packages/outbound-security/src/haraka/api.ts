/**
 * The small part of Haraka's plugin and outbound API that our plugins use,
 * typed. Haraka itself is JavaScript; these shapes are checked against the
 * running version at startup where it matters (see outbound_tls).
 */
import constants from 'haraka-constants';

/** Hook return codes (Haraka's OK, DENY, DENYSOFT …). */
export const OK = constants.ok;
export const DENY = constants.deny;
export const DENYSOFT = constants.denysoft;
export const CONT = constants.cont;

export type Next = (code?: number, message?: unknown) => void;

export interface HarakaConfig {
  /** `onChange` runs after the file changed on disk (with the error when it no longer parses). */
  get(name: string, options?: unknown, onChange?: (err?: Error) => void): unknown;
}

export interface HarakaLogger {
  logdebug(...args: unknown[]): void;
  loginfo(...args: unknown[]): void;
  lognotice(...args: unknown[]): void;
  logwarn(...args: unknown[]): void;
  logerror(...args: unknown[]): void;
  logcrit(...args: unknown[]): void;
}

export interface HarakaPlugin extends HarakaLogger {
  name: string;
  config: HarakaConfig;
  register_hook(hook: string, method: string, priority?: number): void;
  haraka_require(name: string): unknown;
}

/** Outbound message under delivery (Haraka's HMailItem), as far as we read it. */
export interface HMailItem {
  todo: { domain: string; uuid?: string; notes?: Record<string, unknown> };
}

/** What `get_mx` may answer with (Haraka builds a HarakaMx from it). */
export interface HarakaMxSpec {
  exchange: string;
  priority: number;
  port?: number;
  from_dns?: string;
  auth_user?: string;
  auth_pass?: string;
}
