/**
 * Security levels of an outbound connection (TLS-1), ordered
 * PLAIN < TLS_INSECURE < TLS_SECURE, and the helpers to compare and name them.
 */
export enum SecLevel {
  PLAIN = 0,
  TLS_INSECURE = 1,
  TLS_SECURE = 2,
}

export const SEC_LEVELS: readonly SecLevel[] = [SecLevel.PLAIN, SecLevel.TLS_INSECURE, SecLevel.TLS_SECURE];

export function levelName(level: SecLevel): string {
  return SecLevel[level];
}

/** Parses a level name (`TLS_SECURE`, case-insensitive); null when it is not one. */
export function parseLevel(text: string): SecLevel | null {
  const upper = text.trim().toUpperCase();
  for (const level of SEC_LEVELS) if (SecLevel[level] === upper) return level;
  return null;
}

export function maxLevel(a: SecLevel, b: SecLevel): SecLevel {
  return a >= b ? a : b;
}
