/**
 * Pipeline lineage and managed backfills. Same SQL subset as 0001 (see src/state/README.md).
 *
 * - consumer_outputs: the tables a consumer writes; with the watermarks (the tables it reads)
 *   they make the graph table → consumer → table.
 * - backfills / backfill_chunks: a backfill re-processes a range of one source table for one
 *   consumer in chunks; each attempt at a chunk is a batch (batches.backfill names it) of the
 *   backfill's own series: it never moves the consumer's watermark.
 */
export const sql = `
CREATE TABLE consumer_outputs (
  consumer TEXT NOT NULL REFERENCES consumers (name) ON DELETE CASCADE,
  source_table TEXT NOT NULL REFERENCES source_tables (name),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, source_table)
);
CREATE INDEX consumer_outputs_by_table ON consumer_outputs (source_table);

CREATE TABLE backfills (
  name TEXT PRIMARY KEY,
  consumer TEXT NOT NULL REFERENCES consumers (name) ON DELETE CASCADE,
  source_table TEXT NOT NULL REFERENCES source_tables (name),
  kind TEXT NOT NULL CHECK (kind IN ('where', 'snapshots')),
  state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused', 'failed', 'cancelled', 'committed')),
  state_reason TEXT,
  -- the request as given and as planned: where text, field, bounds, chunking, snapshot range
  spec JSONB NOT NULL,
  -- the snapshot the chunks were planned on (where) or the exclusive start of the replayed
  -- range (snapshots): snapshot expiry must keep it while the backfill runs
  pinned_snapshot_id BIGINT,
  pinned_sequence_number BIGINT,
  concurrency INT4 NOT NULL CHECK (concurrency > 0),
  max_attempts INT4 NOT NULL CHECK (max_attempts > 0),
  chunk_order TEXT NOT NULL CHECK (chunk_order IN ('oldest-first', 'newest-first')),
  created_by TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ
);
CREATE INDEX backfills_by_consumer ON backfills (consumer, source_table);

CREATE TABLE backfill_chunks (
  backfill TEXT NOT NULL REFERENCES backfills (name) ON DELETE CASCADE,
  -- 0-based, in range order (oldest first)
  idx INT4 NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'committed', 'failed', 'cancelled')),
  -- the chunk's range: field bounds (where) or snapshot ids (snapshots), JSON as the API shows it
  range JSONB NOT NULL,
  -- the files planned for it (FileJson of src/capture/file-json.ts, added and removed)
  files JSONB NOT NULL,
  file_count INT4 NOT NULL,
  byte_count BIGINT NOT NULL,
  record_count BIGINT NOT NULL,
  from_snapshot_id BIGINT,
  to_snapshot_id BIGINT,
  attempts INT4 NOT NULL DEFAULT 0,
  -- the batch of the current (running) or last attempt
  batch_id BIGINT,
  instance_id TEXT,
  last_error TEXT,
  -- output table -> snapshot id (decimal string) the chunk's run committed there
  outputs JSONB NOT NULL DEFAULT '{}'::JSONB,
  -- the result of the backfill's validation command for this chunk: {passed, exit_code, output, at}
  validation JSONB,
  started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ,
  PRIMARY KEY (backfill, idx)
);
CREATE INDEX backfill_chunks_by_state ON backfill_chunks (backfill, state);

-- The snapshots a committed batch's run wrote to its consumer's output tables (named at commit,
-- or the output tables' heads then): how a backfill follows a chunk more than one stage down.
CREATE TABLE batch_outputs (
  batch_id BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  source_table TEXT NOT NULL,
  snapshot_id BIGINT NOT NULL,
  PRIMARY KEY (batch_id, source_table)
);

ALTER TABLE batches ADD COLUMN backfill TEXT;
ALTER TABLE batches ADD COLUMN backfill_chunk INT4;
`;
