/**
 * A report as a mail message (RPT-3, RPT-4, RFC 8460 §5.3), for a `mailto:`
 * report URI. The caller queues it through Haraka's outbound (`QueueMail`).
 *
 * - `Content-Type: multipart/report; report-type="tlsrpt"`: a short text/plain
 *   part, then the gzip-compressed report as `application/tlsrpt+gzip`
 *   (base64) with the RFC's file name in `Content-Disposition`.
 * - `Subject: Report Domain: <policy domain> Submitter: <submitter> Report-ID: <<report id>>`,
 *   its parts on folded lines when it is long; `TLS-Report-Domain` and
 *   `TLS-Report-Submitter`.
 * - RPT-4: `TLS-Required: No` (RFC 8689), so a report about a domain's broken
 *   TLS still reaches it; `Auto-Submitted: auto-generated` (RFC 3834), so no
 *   one answers it automatically.
 * - Every header value is ASCII (domains as A-labels), lines end in CRLF and
 *   stay under 78 characters where they can.
 * - DKIM signing (§5.3.1) is the queueing side's job, with the key the
 *   settings name; it signs the headers above.
 */
import { randomBytes } from 'node:crypto';

/** Queues one message through the MTA (Haraka's outbound); rejects when it could not be queued. */
export type QueueMail = (from: string, to: string, message: Buffer) => Promise<void>;

export interface ReportMessage {
  /** Envelope and header sender (the settings' `sender`). */
  from: string;
  /** The `mailto:` address. */
  to: string;
  policyDomain: string;
  /** The submitter domain (the sender's domain, which also signs with DKIM). */
  submitter: string;
  reportId: string;
  fileName: string;
  gzipped: Buffer;
  date: Date;
}

const LINE = 76;

/** The message as CRLF text. `boundary` and `messageId` are random unless given (tests). */
export function reportMessage(input: ReportMessage, fixed: { boundary?: string; messageId?: string } = {}): Buffer {
  for (const [name, value] of Object.entries({
    from: input.from,
    to: input.to,
    policyDomain: input.policyDomain,
    submitter: input.submitter,
  })) {
    if (!/^[\x21-\x7e]+$/.test(value)) throw new Error(`tlsrpt: ${name} "${value.slice(0, 60)}" is not printable ASCII`);
  }
  if (!/^[\x21-\x3b\x3d\x3f-\x7e]+$/.test(input.reportId))
    throw new Error(`tlsrpt: report id "${input.reportId.slice(0, 60)}" cannot be sent in <>`);
  const boundary = fixed.boundary ?? `tlsrpt-${randomBytes(12).toString('hex')}`;
  const messageId =
    fixed.messageId ??
    `${randomBytes(8).toString('hex')}.${input.reportId.includes('@') ? input.reportId : `${input.reportId}@${input.submitter}`}`;
  const headers = [
    `From: <${input.from}>`,
    `To: <${input.to}>`,
    `Date: ${input.date.toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${messageId}>`,
    subject(input.policyDomain, input.submitter, input.reportId),
    `TLS-Report-Domain: ${input.policyDomain}`,
    `TLS-Report-Submitter: ${input.submitter}`,
    'TLS-Required: No',
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="${boundary}"`,
  ];
  const base64 = input.gzipped.toString('base64');
  const encoded: string[] = [];
  for (let i = 0; i < base64.length; i += LINE) encoded.push(base64.slice(i, i + LINE));
  const body = [
    'This is a multipart message in MIME format.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    `This is an aggregate TLS report from ${input.submitter} for ${input.policyDomain} (RFC 8460).`,
    '',
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${input.fileName}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment;\r\n filename="${input.fileName}"`,
    '',
    ...encoded,
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body.join('\r\n')}`, 'ascii');
}

/** The RFC's subject, its three parts on lines of their own when one line would pass 78 characters (as in the RFC's example). */
function subject(policyDomain: string, submitter: string, reportId: string): string {
  const parts = [`Subject: Report Domain: ${policyDomain}`, `Submitter: ${submitter}`, `Report-ID: <${reportId}>`];
  const oneLine = parts.join(' ');
  return oneLine.length <= 78 ? oneLine : parts.join('\r\n ');
}
