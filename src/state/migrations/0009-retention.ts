/**
 * Bounded state: what the retention loop (src/state/retention.ts) needs. Same SQL subset as
 * 0001 (see src/state/README.md).
 *
 * - files_pruned_at: when a closed batch's (or a finished backfill chunk's) file list was
 *   dropped; its counts, range, ICDC snapshot and watermark positions stay.
 * - maintenance_leases: one row per maintenance job, claimed by one replica at a time, with
 *   the time and result of its last run (so replicas do not repeat a run another just did).
 * - indexes for the retention predicates, so a pass over a large state reads only what it
 *   deletes.
 */
export const sql = `
ALTER TABLE batch_tables ADD COLUMN files_pruned_at TIMESTAMPTZ;
ALTER TABLE backfill_chunks ADD COLUMN files_pruned_at TIMESTAMPTZ;

CREATE TABLE maintenance_leases (
  name TEXT PRIMARY KEY,
  claimed_by TEXT,
  claim_expires_at TIMESTAMPTZ,
  last_started_at TIMESTAMPTZ,
  last_finished_at TIMESTAMPTZ,
  last_result JSONB
);

CREATE INDEX batches_by_closed ON batches (state, closed_at);
CREATE INDEX outbox_by_delivered ON outbox (state, delivered_at);
CREATE INDEX watermark_moves_by_time ON watermark_moves (moved_at);
`;
