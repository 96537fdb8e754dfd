/**
 * RPT-3, RFC 8460 §5.3.1: report messages DKIM-signed with the key the
 * settings name (`d=` the submitter domain, `s=` the selector), before they
 * are queued. nodemailer's DKIM module signs (relaxed/relaxed, rsa-sha256);
 * the TLS report header fields are added to its default list, so a receiver
 * can trust `TLS-Report-Domain` and `TLS-Report-Submitter`.
 */
import DKIM from 'nodemailer/lib/dkim';
import type { QueueMail } from './mailto';
import type { DkimSettings } from './settings';

/** RFC 8460 §5.3 header fields signed beside nodemailer's defaults. */
const REPORT_FIELDS = 'From:Subject:Date:Message-ID:To:MIME-Version:Content-Type:TLS-Report-Domain:TLS-Report-Submitter:TLS-Required';

/** The message with a DKIM-Signature field in front. */
export async function signReport(message: Buffer, dkim: DkimSettings): Promise<Buffer> {
  const signer = new DKIM({
    domainName: dkim.domain,
    keySelector: dkim.selector,
    privateKey: dkim.privateKey,
    headerFieldNames: REPORT_FIELDS,
  });
  const chunks: Buffer[] = [];
  for await (const chunk of signer.sign(message)) chunks.push(chunk as Buffer);
  const signed = Buffer.concat(chunks);
  if (!signed.subarray(0, 16).toString('latin1').toLowerCase().startsWith('dkim-signature:')) {
    throw new Error(`DKIM signing with ${dkim.keyFile} (s=${dkim.selector}) failed`);
  }
  return signed;
}

/** `queueMail` that signs each message first when a key is configured. */
export function signingQueueMail(queueMail: QueueMail, dkim: DkimSettings | null): QueueMail {
  if (!dkim) return queueMail;
  return async (from, to, message) => queueMail(from, to, await signReport(message, dkim));
}
