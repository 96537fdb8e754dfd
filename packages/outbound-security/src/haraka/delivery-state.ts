/**
 * Per-message delivery state shared by the plugins. Haraka copies a fixed
 * list of properties into its MX objects, so what outbound_mx decides for a
 * message (tls/delivery-state.ts) is kept here, keyed on the message
 * (HMailItem) object itself, and read by outbound_tls when a connection for
 * that message is made.
 */
import type { DeliveryState } from '../tls/delivery-state';

export type { DeliveryState } from '../tls/delivery-state';

const states = new WeakMap<object, DeliveryState>();

export function setDeliveryState(hmail: object, state: DeliveryState): void {
  states.set(hmail, state);
}

export function getDeliveryState(hmail: object): DeliveryState | undefined {
  return states.get(hmail);
}
