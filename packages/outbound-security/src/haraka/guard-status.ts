/**
 * Whether the connection guard is installed in this process (TLS-6). Set by
 * outbound_tls at startup, read by outbound_mx: when the guard is missing,
 * a message whose plan carries a requirement (an MTA-STS enforce policy found
 * at delivery time) is deferred instead of being handed to an unguarded Haraka.
 */
let problem: string | null = null;

export function setGuardProblem(reason: string | null): void {
  problem = reason;
}

/** Why outbound connections cannot be guarded, or null when they are. */
export function guardProblem(): string | null {
  return problem;
}
