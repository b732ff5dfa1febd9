/**
 * A smaller long-lived footprint per batch (issue 19: state after a week within 2× of a day).
 * Same SQL subset as 0001 (see src/state/README.md); partial indexes run on all three databases.
 *
 * - watermark_moves.to_position may be NULL: a position without a partial snapshot or processed
 *   files is stored only in the scalar columns (src/state/watermarks.ts reads it back from them).
 *   Existing rows keep their JSON.
 * - outbox_due and batches_by_state become outbox_pending_due and batches_open_by_lease, which
 *   index only the rows their queries look for (pending triggers, open batches): delivered
 *   triggers and closed batches, which stay for weeks, no longer carry an entry in them.
 * - batches_by_closed and outbox_by_delivered, which only the retention pass reads, become
 *   batches_closed_at and outbox_delivered_at: they index the
 *   closing time alone (no state text) and only rows that have one: an open batch or a pending
 *   trigger gets its entry when it closes, not one at insert that the close then leaves dead.
 *   A trigger cancelled before delivery (no delivered_at) ages from its creation: the small
 *   outbox_undelivered_by_created holds those.
 * New names, not the dropped ones: CockroachDB may refuse to reuse a name dropped in the same
 * transaction.
 */
export const sql = `
ALTER TABLE watermark_moves ALTER COLUMN to_position DROP NOT NULL;

DROP INDEX outbox_due;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE state = 'pending';
DROP INDEX batches_by_state;
CREATE INDEX batches_open_by_lease ON batches (lease_expires_at) WHERE state = 'open';
DROP INDEX batches_by_closed;
CREATE INDEX batches_closed_at ON batches (closed_at) WHERE closed_at IS NOT NULL;
DROP INDEX outbox_by_delivered;
CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_undelivered_by_created ON outbox (created_at) WHERE state = 'cancelled' AND delivered_at IS NULL;
`;
