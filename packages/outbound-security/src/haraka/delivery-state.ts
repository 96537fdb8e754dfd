/**
 * Per-message delivery state shared by the plugins. Haraka copies a fixed
 * list of properties into its MX objects, so what outbound_mx decides for a
 * message is kept here, keyed on the message (HMailItem) object itself, and
 * read by outbound_tls when a connection for that message is made.
 */
import type { StsMode } from '../tls/decision';

export interface DeliveryState {
  /** The recipient domain in lowercase A-label form; a domain literal as written. */
  domain: string;
  /** True for `user@[192.0.2.1]`: no host name, so at most TLS_INSECURE (MX-2). */
  domainLiteral: boolean;
  /** MX host names in the order handed to Haraka. */
  mxHosts: string[];
  /** The domain's MTA-STS policy mode and id, when it has a policy (STS-7, STS-8). */
  sts?: { mode: StsMode; policyId: string };
}

const states = new WeakMap<object, DeliveryState>();

export function setDeliveryState(hmail: object, state: DeliveryState): void {
  states.set(hmail, state);
}

export function getDeliveryState(hmail: object): DeliveryState | undefined {
  return states.get(hmail);
}
