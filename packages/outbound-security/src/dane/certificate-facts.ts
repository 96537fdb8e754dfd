/**
 * DANE-9: what RFC 5280 path validation needs from a certificate that Node's
 * `X509Certificate` does not give (basicConstraints' path length, name
 * constraints, key usage bits, which extensions are critical, the
 * subjectAltNames by type), decoded with PKI.js (`pkijs`, on `asn1js`) rather
 * than by hand. Only the extensions and the subject are decoded, not the whole
 * certificate (PKI.js's `Certificate` costs about four times as much).
 *
 * Decoding costs a few hundred µs; `path-validation.ts` keeps the facts in the
 * `CertificateCache`, so a certificate is decoded once while it is remembered.
 */
import type * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';

/**
 * OPS-6: PKI.js and asn1js cost ≈ 35 ms of CPU to load, in every Haraka process
 * at every start; they are loaded when the first DANE-TA path is validated.
 */
let decoders: { asn1js: typeof asn1js; pkijs: typeof pkijs } | undefined;
function pki(): { asn1js: typeof asn1js; pkijs: typeof pkijs } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (decoders ??= { asn1js: require('asn1js') as typeof asn1js, pkijs: require('pkijs') as typeof pkijs });
}

/** Extensions the path validation processes, or may ignore when critical (as OpenSSL does). */
const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.30', // nameConstraints
  '2.5.29.32', // certificatePolicies: no policy is required of a DANE-TA path (any-policy, RFC 5280 §6.1.1(c))
  '2.5.29.31', // cRLDistributionPoints: DANE does no revocation checks (RFC 7671 §5.2)
]);

/** RFC 5280 §4.2.1.3 bits, first octet. */
export const KeyUsageBit = { digitalSignature: 0x80, keyEncipherment: 0x20, keyAgreement: 0x08, keyCertSign: 0x04 } as const;

export const ID_KP_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** A name in a certificate, or the base of a name constraint, by its RFC 5280 GeneralName type. */
export type CertName =
  | { type: 'dns'; value: string }
  | { type: 'ip'; value: Buffer }
  | { type: 'email'; value: string }
  | { type: 'directory'; value: pkijs.RelativeDistinguishedNames }
  /** URI, otherName, x400Address, ediPartyName, registeredID: not compared; a constraint on them fails closed. */
  | { type: 'other'; tag: number };

export interface CertificateFacts {
  /** OIDs of critical extensions not in KNOWN_EXTENSIONS (RFC 5280 §4.2: the certificate must be rejected). */
  unknownCritical: string[];
  /** basicConstraints' pathLenConstraint (the cA flag is Node's `ca`, OpenSSL's reading of it). */
  pathLen?: number;
  /** keyUsage's first octet, when the extension is there. */
  keyUsage?: number;
  extKeyUsage?: string[];
  nameConstraints?: { permitted: CertName[]; excluded: CertName[] };
  /** subjectAltName entries. */
  altNames: CertName[];
  subject: pkijs.RelativeDistinguishedNames;
  /** Subject commonName and emailAddress values. */
  commonNames: string[];
  subjectEmails: string[];
}

const OID_CN = '2.5.4.3';
const OID_EMAIL = '1.2.840.113549.1.9.1';

/** The facts of a DER certificate; throws when it cannot be decoded (the caller refuses the path). */
export function certificateFacts(der: Buffer): CertificateFacts {
  const decoded = pki().asn1js.fromBER(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
  if (decoded.offset === -1) throw new Error(`not DER: ${decoded.result.error}`);
  const tbs = children(decoded.result)[0];
  const fields = tbs ? children(tbs) : [];
  const versioned = fields[0]?.idBlock.tagClass === 3 && fields[0]?.idBlock.tagNumber === 0;
  const subjectField = fields[versioned ? 5 : 4];
  if (!subjectField) throw new Error('no subject');
  const subject = new (pki().pkijs.RelativeDistinguishedNames)({ schema: subjectField });
  const facts: CertificateFacts = {
    unknownCritical: [],
    altNames: [],
    subject,
    commonNames: attributes(subject, OID_CN),
    subjectEmails: attributes(subject, OID_EMAIL),
  };
  const extensionsField = fields.find((f) => f.idBlock.tagClass === 3 && f.idBlock.tagNumber === 3);
  const list = extensionsField ? children(children(extensionsField)[0]) : [];
  for (const element of list) addExtension(facts, new (pki().pkijs.Extension)({ schema: element }));
  return facts;
}

function addExtension(facts: CertificateFacts, extension: pkijs.Extension): void {
  const value: unknown = extension.parsedValue;
  const known = KNOWN_EXTENSIONS.has(extension.extnID);
  if (extension.critical && (!known || value === undefined)) facts.unknownCritical.push(extension.extnID);
  if (value === undefined) return;
  switch (extension.extnID) {
    case '2.5.29.19': {
      const pathLen = (value as pkijs.BasicConstraints).pathLenConstraint;
      if (typeof pathLen === 'number') facts.pathLen = pathLen;
      else if (pathLen instanceof pki().asn1js.Integer) facts.pathLen = pathLen.valueBlock.valueDec;
      break;
    }
    case '2.5.29.15':
      facts.keyUsage = (value as asn1js.BitString).valueBlock.valueHexView[0] ?? 0;
      break;
    case '2.5.29.37':
      facts.extKeyUsage = (value as pkijs.ExtKeyUsage).keyPurposes;
      break;
    case '2.5.29.17':
      facts.altNames = (value as pkijs.AltName).altNames.map(certName);
      break;
    case '2.5.29.30': {
      const nc = value as pkijs.NameConstraints;
      facts.nameConstraints = {
        permitted: (nc.permittedSubtrees ?? []).map((s) => certName(s.base)),
        excluded: (nc.excludedSubtrees ?? []).map((s) => certName(s.base)),
      };
      break;
    }
  }
}

function certName(name: pkijs.GeneralName): CertName {
  const value: unknown = name.value;
  switch (name.type) {
    case 1:
      return { type: 'email', value: String(value) };
    case 2:
      return { type: 'dns', value: String(value) };
    case 4:
      return { type: 'directory', value: value as pkijs.RelativeDistinguishedNames };
    case 7:
      return { type: 'ip', value: Buffer.from((value as asn1js.OctetString).valueBlock.valueHexView) };
    default:
      return { type: 'other', tag: name.type };
  }
}

function attributes(name: pkijs.RelativeDistinguishedNames, oid: string): string[] {
  return name.typesAndValues.filter((tv) => tv.type === oid).map((tv) => String((tv.value as asn1js.BaseStringBlock).valueBlock.value));
}

function children(block: asn1js.AsnType | undefined): asn1js.AsnType[] {
  const value = (block as asn1js.Constructed | undefined)?.valueBlock?.value;
  return Array.isArray(value) ? (value as asn1js.AsnType[]) : [];
}
