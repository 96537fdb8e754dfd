import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REQUIRETLS_NOTE, TLS_REQUIRED_NO_NOTE, requiresTls, waivesRecipientPolicy } from './notes';

const hmail = (notes: unknown) => ({ todo: { notes } });
const requested = { requested: true, at: '2025-01-01T00:00:00.000Z', authenticated: false };
const waive = { waive: true, at: '2025-01-01T00:00:00.000Z' };

test('RT-1: a queued message requires TLS only with the REQUIRETLS note as outbound_tls writes it', () => {
  assert.equal(requiresTls(hmail({ [REQUIRETLS_NOTE]: requested })), true);
  // The notes went through JSON in the queue file: the same shape reads the same.
  assert.equal(requiresTls(hmail(JSON.parse(JSON.stringify({ [REQUIRETLS_NOTE]: requested })))), true);
  for (const notes of [undefined, null, {}, { [REQUIRETLS_NOTE]: true }, { [REQUIRETLS_NOTE]: { requested: 'yes' } }]) {
    assert.equal(requiresTls(hmail(notes)), false, JSON.stringify(notes));
  }
  assert.equal(requiresTls(undefined), false);
  assert.equal(requiresTls({ todo: null }), false);
});

test('RT-5: TLS-Required: No waives the recipient policy, never together with REQUIRETLS', () => {
  assert.equal(waivesRecipientPolicy(hmail({ [TLS_REQUIRED_NO_NOTE]: waive })), true);
  assert.equal(waivesRecipientPolicy(hmail({ [TLS_REQUIRED_NO_NOTE]: waive, [REQUIRETLS_NOTE]: requested })), false);
  assert.equal(waivesRecipientPolicy(hmail({})), false);
  assert.equal(waivesRecipientPolicy(hmail({ [TLS_REQUIRED_NO_NOTE]: 'No' })), false);
});

test('RT-1/RT-5: the notes are read from the queued todo (they survive a restart), never from the live transaction’s hmail.notes', () => {
  const live = { notes: { [REQUIRETLS_NOTE]: requested, [TLS_REQUIRED_NO_NOTE]: waive }, todo: { notes: {} } };
  assert.equal(requiresTls(live), false);
  assert.equal(waivesRecipientPolicy(live), false);
  const queued = { notes: {}, todo: { notes: { [TLS_REQUIRED_NO_NOTE]: waive } } };
  assert.equal(waivesRecipientPolicy(queued), true);
});
