/**
 * DANE-9: name constraints (RFC 5280 §4.2.1.10, §6.1.3(b), (c)) of one CA
 * certificate applied to the names of a certificate below it. Each CA's
 * constraints are applied on their own, which is the same as intersecting
 * the permitted subtrees down the path.
 *
 * - dNSName: `example.com` covers itself and every name below it,
 *   `.example.com` only the names below it (as OpenSSL); an empty base, all.
 * - iPAddress: address and mask; rfc822Name: a mailbox, a host, or `.domain`;
 *   directoryName: the subject's attributes begin with the constraint's.
 * - The leaf's subject CN counts as a DNS name when it has no DNS
 *   subjectAltName (as OpenSSL, and as the DANE-TA name check reads it).
 * - Other name forms (URI, otherName, …) are not compared: a constraint on a
 *   form the certificate also uses fails closed.
 */
import type { CertificateFacts, CertName } from './certificate-facts';

/** The names of `facts`' certificate that name constraints apply to. */
export function constrainedNames(facts: CertificateFacts, leaf: boolean): CertName[] {
  const names: CertName[] = [...facts.altNames];
  if (facts.subject.typesAndValues.length > 0) names.push({ type: 'directory', value: facts.subject });
  for (const email of facts.subjectEmails) names.push({ type: 'email', value: email });
  if (leaf && !facts.altNames.some((n) => n.type === 'dns')) {
    for (const cn of facts.commonNames) if (/^[A-Za-z0-9*_-]+(\.[A-Za-z0-9_-]+)+\.?$/.test(cn)) names.push({ type: 'dns', value: cn });
  }
  return names;
}

/** Why `names` break the name constraints of `constrainer` (its label), or undefined. */
export function nameConstraintProblem(
  constraints: NonNullable<CertificateFacts['nameConstraints']>,
  names: readonly CertName[],
  constrainer: string,
): string | undefined {
  for (const name of names) {
    const excluded = constraints.excluded.find((base) => within(name, base));
    if (excluded) return `${show(name)} is excluded by the name constraints of ${constrainer} (${show(excluded)})`;
    const permitted = constraints.permitted.filter((base) => sameType(name, base));
    if (permitted.length > 0 && !permitted.some((base) => within(name, base))) {
      return `${show(name)} is outside the names permitted by ${constrainer} (${permitted.map(show).join(', ')})`;
    }
    const unchecked = [...constraints.excluded, ...constraints.permitted].find((base) => base.type === 'other' && sameType(name, base));
    if (unchecked) return `${constrainer} constrains ${show(unchecked)} names, which are not checked here: refused`;
  }
  return undefined;
}

function sameType(a: CertName, b: CertName): boolean {
  return a.type === b.type && (a.type !== 'other' || (b.type === 'other' && a.tag === b.tag));
}

function within(name: CertName, base: CertName): boolean {
  if (name.type === 'dns' && base.type === 'dns') return dnsWithin(name.value, base.value);
  if (name.type === 'ip' && base.type === 'ip') return ipWithin(name.value, base.value);
  if (name.type === 'email' && base.type === 'email') return emailWithin(name.value, base.value);
  if (name.type === 'directory' && base.type === 'directory') {
    const have = name.value.typesAndValues;
    const want = base.value.typesAndValues;
    return want.length <= have.length && want.every((tv, i) => have[i]?.isEqual(tv) === true);
  }
  return false;
}

const norm = (s: string): string => s.toLowerCase().replace(/\.$/, '');

function dnsWithin(name: string, base: string): boolean {
  const n = norm(name);
  const b = norm(base);
  if (b === '') return true;
  if (b.startsWith('.')) return n.endsWith(b);
  return n === b || n.endsWith(`.${b}`);
}

function ipWithin(address: Buffer, base: Buffer): boolean {
  if (base.length !== address.length * 2) return false;
  for (let i = 0; i < address.length; i++) {
    const mask = base[address.length + i] as number;
    if (((address[i] as number) & mask) !== ((base[i] as number) & mask)) return false;
  }
  return true;
}

function emailWithin(mailbox: string, base: string): boolean {
  const m = mailbox.toLowerCase();
  const b = base.toLowerCase();
  if (b.includes('@')) return m === b;
  const host = m.slice(m.lastIndexOf('@') + 1);
  return b.startsWith('.') ? host.endsWith(b) : host === b;
}

function show(name: CertName): string {
  switch (name.type) {
    case 'dns':
      return `DNS:${name.value}`;
    case 'email':
      return `email:${name.value}`;
    case 'ip':
      return `IP:${name.value.toString('hex')}`;
    case 'directory':
      return `DirName:${name.value.typesAndValues.map((tv) => `${tv.type}=${String((tv.value as { valueBlock?: { value?: unknown } }).valueBlock?.value ?? '')}`).join(', ')}`;
    default:
      return `name type ${name.tag}`;
  }
}
