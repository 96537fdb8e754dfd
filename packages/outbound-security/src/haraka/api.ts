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
  get(name: string, options?: unknown, onChange?: () => void): unknown;
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

/**
 * Reads a plugin's ini files and applies them, and again whenever Haraka sees
 * one of them change (OPS-1). `apply` gets every file by name, parses and
 * applies in one step, and throws on a bad value before changing anything: at
 * startup the error stops Haraka with the file name; on a reload it is logged
 * and the running settings stay.
 *
 * Every read passes the reload callback: haraka-config keeps only the callback
 * of the latest read of a file, so a read without one would end the watching.
 */
export function watchIni(
  plugin: HarakaPlugin,
  files: readonly string[],
  apply: (ini: Record<string, Record<string, unknown>>) => void,
): void {
  const readAll = (): Record<string, Record<string, unknown>> =>
    Object.fromEntries(files.map((file) => [file, (plugin.config.get(file, {}, reload) ?? {}) as Record<string, unknown>]));
  function reload(): void {
    try {
      apply(readAll());
      plugin.loginfo(`${plugin.name}: ${files.join(', ')} reloaded`);
    } catch (err) {
      plugin.logerror(`${files.join(', ')} not reloaded, keeping the running settings: ${(err as Error).message}`);
    }
  }
  try {
    apply(readAll());
  } catch (err) {
    throw new Error(`${files[0] ?? 'config'}: ${(err as Error).message}`);
  }
}
