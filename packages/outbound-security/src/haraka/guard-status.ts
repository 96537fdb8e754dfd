/**
 * Whether the connection guard is installed (TLS-6, TLS-9). outbound_tls
 * reports it at startup; outbound_mx reads it before every plan that carries
 * a requirement. Three states: installed, a problem (outbound_tls loaded but
 * could not hook into Haraka), or nothing reported: outbound_tls is not in
 * config/plugins or failed to load. Mail never leaves with less protection
 * than the stored state demands because a line is missing from a config file:
 * the last two both fail closed.
 *
 * The state is kept on `globalThis` under a registered symbol, so that two
 * copies of this library (the plugins installed with separate copies of it)
 * still see one state.
 */
export type GuardStatus = { kind: 'unreported' } | { kind: 'installed' } | { kind: 'problem'; reason: string };

const KEY = Symbol.for('haraka-outbound-security.guard-status');
const shared = globalThis as { [KEY]?: GuardStatus };

/** outbound_tls at startup: null once the guard is installed, else why it is not. */
export function setGuardProblem(reason: string | null): void {
  shared[KEY] = reason === null ? { kind: 'installed' } : { kind: 'problem', reason };
}

export function guardStatus(): GuardStatus {
  return shared[KEY] ?? { kind: 'unreported' };
}

/** Tests: back to "nothing reported". */
export function resetGuardStatus(): void {
  delete shared[KEY];
}

/** The fix an admin needs for the plugin list, said in every log line about it. */
export const PLUGINS_FIX = 'list outbound_tls in config/plugins, on a line above outbound_mx';

/**
 * TLS-9: what is wrong with the plugin list (config/plugins as Haraka reads
 * it, one name per entry, `haraka-plugin-` prefixes allowed), or null:
 * outbound_tls missing, or listed after outbound_mx.
 */
export function pluginListProblem(plugins: readonly string[]): string | null {
  const names = plugins
    .map((line) => line.trim().replace(/^haraka-plugin-/, ''))
    .filter((name) => name !== '' && !name.startsWith('#') && !name.startsWith(';'));
  const tls = names.indexOf('outbound_tls');
  const mx = names.indexOf('outbound_mx');
  if (tls < 0) return 'outbound_tls is not listed in config/plugins';
  if (mx >= 0 && tls > mx) return 'outbound_tls is listed after outbound_mx in config/plugins';
  return null;
}

/**
 * TLS-9: why outbound_mx must treat connections as unguarded, or null when
 * outbound_tls's guard is installed. `listProblem` is `pluginListProblem` of
 * the plugin list in force.
 */
export function guardProblem(listProblem: string | null = null): string | null {
  if (listProblem) return `${listProblem} (${PLUGINS_FIX})`;
  const status = guardStatus();
  if (status.kind === 'installed') return null;
  if (status.kind === 'problem') return status.reason;
  return `outbound_tls did not load (it failed at startup: see its error above; ${PLUGINS_FIX})`;
}
