/**
 * DANE-11: the name a host name's CNAME chain leads to, when the chain is
 * DNSSEC-validated (RFC 7672 §2.2.3: the TLSA base domain of a secure CNAME
 * alias is first the fully expanded name). Read from the host's address
 * answer, which carries the chain: the plan asked for it moments before, so
 * the answer cache usually has it.
 */
import type { DnsTransport, ResourceRecord } from './wire';

/** Links of a CNAME chain followed inside one answer (resolvers stop well before). */
export const MAX_CNAME_LINKS = 8;

const bare = (name: string): string => name.replace(/\.$/, '').toLowerCase();

/** The end of the CNAME chain that starts at `name` inside `answers`, or `name` itself. */
export function expandCname(name: string, answers: readonly ResourceRecord[]): string {
  let current = bare(name);
  for (let links = 0; links < MAX_CNAME_LINKS; links++) {
    const alias = answers.find((rr) => rr.type === 'CNAME' && bare(rr.name) === current && typeof rr.data === 'string');
    if (!alias) break;
    current = bare(alias.data as string);
  }
  return current;
}

/**
 * The fully expanded name of `host` when it is a CNAME alias and the answer
 * was validated (AD), else undefined (not an alias, an insecure chain, or no
 * answer: the TLSA lookup then stays at the original name).
 */
export async function secureCnameTarget(transport: DnsTransport, host: string): Promise<string | undefined> {
  const name = bare(host);
  const outcome = await transport.query(`${name}.`, 'A', { dnssec: true });
  if (outcome.kind !== 'response' || !outcome.response.authenticated) return undefined;
  const { rcode, answers } = outcome.response;
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') return undefined;
  const target = expandCname(name, answers);
  return target === name ? undefined : target;
}
