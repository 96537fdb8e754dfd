/**
 * OPS-7 for DNS resolvers: a resolver that stops answering (timeouts,
 * refused, reset) is told once, naming it, once attempts for `threshold`
 * different names failed in a row without any answer between them (one name
 * whose servers are slow is not an outage of the resolver), reminded at
 * most once a minute, and told once when it answers again; availability is a
 * metric. Any answer counts as "there", SERVFAIL included: a recursive
 * resolver that answers SERVFAIL for one domain's broken name servers is up.
 * Deliveries meanwhile defer as MX-6 says.
 */
import { Outage, type OutageLog, type OutageMember } from '../store/outage';

/** Different names whose lookups failed in a row that make a resolver "unavailable". */
export const DEFAULT_FAILURES_FOR_OUTAGE = 3;
/** Kept small: only whether `threshold` is reached matters. */
const MAX_NAMES = 16;

interface Followed {
  failedNames: Set<string>;
  member: OutageMember;
}

export class ResolverHealth {
  private readonly servers = new Map<string, Followed>();

  constructor(
    private readonly log: OutageLog,
    private readonly onChange: (server: string, up: boolean) => void = () => undefined,
    private readonly threshold = DEFAULT_FAILURES_FOR_OUTAGE,
    private readonly now: () => number = Date.now,
  ) {}

  private followed(server: string): Followed {
    let found = this.servers.get(server);
    if (!found) {
      const outage = new Outage({
        service: `DNS resolver ${server}`,
        consequence: 'MX and address lookups through it fail; mail is deferred until a resolver answers (MX-6)',
        log: this.log,
        onChange: (up) => {
          if (up !== null) this.onChange(server, up);
        },
        now: this.now,
      });
      found = { failedNames: new Set(), member: outage.member() };
      this.servers.set(server, found);
    }
    return found;
  }

  /** One attempt's outcome (dns/wire.ts `health`). */
  observe(server: string, answered: boolean, reason = 'no answer', name = ''): void {
    const followed = this.followed(server);
    if (answered) {
      followed.failedNames.clear();
      followed.member.up();
      return;
    }
    if (followed.failedNames.size < MAX_NAMES) followed.failedNames.add(name);
    if (followed.failedNames.size >= this.threshold) followed.member.down(reason);
  }
}
