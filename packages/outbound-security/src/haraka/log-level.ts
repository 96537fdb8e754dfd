/**
 * OPS-6: whether Haraka writes INFO lines now (log.ini `level`, followed when
 * it changes). The per-message INFO lines of the plugins (the plan, each
 * connection's pass) are built only when they will be written: at the usual
 * production levels (notice, warn) building and dropping them cost every
 * message a few string joins for nothing. When Haraka's logger cannot be read
 * the lines are built (and Haraka decides, as always).
 */
import type { HarakaPlugin } from './api';

interface HarakaLogger {
  loglevel?: unknown;
  LOGINFO?: unknown;
}

export function infoLogged(plugin: Pick<HarakaPlugin, 'haraka_require'>): () => boolean {
  let logger: HarakaLogger | undefined;
  try {
    logger = plugin.haraka_require('logger') as HarakaLogger | undefined;
  } catch {
    logger = undefined;
  }
  const found = logger;
  if (!found || typeof found.loglevel !== 'number' || typeof found.LOGINFO !== 'number') return () => true;
  return () => (found.loglevel as number) >= (found.LOGINFO as number);
}
