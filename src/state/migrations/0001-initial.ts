/**
 * The first schema. Kept to SQL that PostgreSQL, PGlite and CockroachDB all run (see
 * src/state/README.md): plain tables, CHECK/UNIQUE/FOREIGN KEY constraints, B-tree indexes,
 * BIGINT for every 64-bit id, JSONB for structured fields, TIMESTAMPTZ for instants, and INT4
 * (never INTEGER, which is 64-bit on CockroachDB) for the few 32-bit counts. No
 * sequences (ids are random 63-bit values chosen by the service, like Iceberg snapshot ids, so
 * no replica contends on a counter), no triggers, no functions.
 */
export const sql = `
CREATE TABLE source_tables (
  name TEXT PRIMARY KEY,
  -- how to reach the table, as src/catalog/load-table.ts TableRef
  ref_kind TEXT NOT NULL CHECK (ref_kind IN ('metadata-file', 'directory', 'sql', 'rest')),
  location TEXT,
  catalog_uri TEXT,
  catalog_name TEXT,
  identifier TEXT,
  catalog_token TEXT,
  branch TEXT NOT NULL DEFAULT 'main',
  -- S3 settings of src/io/s3-file-io.ts S3Settings (endpoint, region, path_style, keys)
  s3 JSONB,
  properties JSONB NOT NULL DEFAULT '{}'::JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT source_tables_reachable CHECK (
    (ref_kind IN ('metadata-file', 'directory') AND location IS NOT NULL)
    OR (ref_kind IN ('sql', 'rest') AND catalog_uri IS NOT NULL AND identifier IS NOT NULL))
);

CREATE TABLE consumers (
  name TEXT PRIMARY KEY,
  description TEXT,
  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'stale')),
  state_reason TEXT,
  -- capture policy (src/capture/policy.ts): {"overwrite": ..., "delete": ...}
  policy JSONB NOT NULL DEFAULT '{}'::JSONB,
  lease_seconds INT4 NOT NULL DEFAULT 3600 CHECK (lease_seconds > 0),
  properties JSONB NOT NULL DEFAULT '{}'::JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per (consumer, source table): the subscription and its file-level watermark.
-- Everything up to and including snapshot_id is processed; of the snapshots after it up to
-- partial_snapshot_id, the files in processed_files are processed too (a batch limit split
-- them). version moves by one on every change of the position (compare-and-set).
CREATE TABLE watermarks (
  consumer TEXT NOT NULL REFERENCES consumers (name) ON DELETE CASCADE,
  source_table TEXT NOT NULL REFERENCES source_tables (name),
  snapshot_id BIGINT,
  sequence_number BIGINT,
  partial_snapshot_id BIGINT,
  partial_sequence_number BIGINT,
  processed_files JSONB NOT NULL DEFAULT '[]'::JSONB,
  version BIGINT NOT NULL DEFAULT 1,
  range_fields JSONB NOT NULL DEFAULT '[]'::JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, source_table)
);
CREATE INDEX watermarks_by_table ON watermarks (source_table);

CREATE TABLE batches (
  id BIGINT PRIMARY KEY,
  consumer TEXT NOT NULL REFERENCES consumers (name) ON DELETE CASCADE,
  -- the workflow step's instance id: a retried prepare finds its batch by it
  instance_id TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'committed', 'aborted', 'expired')),
  state_reason TEXT,
  limits JSONB NOT NULL DEFAULT '{}'::JSONB,
  lease_expires_at TIMESTAMPTZ NOT NULL,
  -- a service replica working on the batch (FOR UPDATE SKIP LOCKED claims)
  claimed_by TEXT,
  claim_expires_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  closed_at TIMESTAMPTZ,
  CONSTRAINT batches_instance UNIQUE (consumer, instance_id)
);
CREATE INDEX batches_by_state ON batches (state, lease_expires_at);
CREATE INDEX batches_by_consumer ON batches (consumer, created_at);

-- Per source table of a batch: the pinned range (from exclusive, to inclusive], its files and
-- ranges, the ICDC snapshot that holds them, the watermark version it was prepared on, and the
-- watermark position a commit moves to.
CREATE TABLE batch_tables (
  batch_id BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  source_table TEXT NOT NULL REFERENCES source_tables (name),
  from_snapshot_id BIGINT,
  from_sequence_number BIGINT,
  to_snapshot_id BIGINT NOT NULL,
  to_sequence_number BIGINT NOT NULL,
  files JSONB NOT NULL,
  file_count INT4 NOT NULL,
  byte_count BIGINT NOT NULL,
  record_count BIGINT NOT NULL,
  ranges JSONB NOT NULL DEFAULT '{}'::JSONB,
  icdc_table TEXT,
  icdc_snapshot_id BIGINT,
  icdc_metadata_location TEXT,
  base_watermark_version BIGINT NOT NULL,
  next_snapshot_id BIGINT,
  next_sequence_number BIGINT,
  next_partial_snapshot_id BIGINT,
  next_partial_sequence_number BIGINT,
  next_processed_files JSONB NOT NULL DEFAULT '[]'::JSONB,
  PRIMARY KEY (batch_id, source_table)
);
CREATE INDEX batch_tables_by_table ON batch_tables (source_table);

-- Every move of a watermark: who, for which batch, from where to where, when. Written in the
-- transaction that moves it. No foreign keys: the history outlives deleted consumers.
CREATE TABLE watermark_moves (
  id BIGINT PRIMARY KEY,
  consumer TEXT NOT NULL,
  source_table TEXT NOT NULL,
  batch_id BIGINT,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  from_version BIGINT,
  to_version BIGINT NOT NULL,
  from_snapshot_id BIGINT,
  from_sequence_number BIGINT,
  to_snapshot_id BIGINT,
  to_sequence_number BIGINT,
  from_position JSONB,
  to_position JSONB NOT NULL,
  moved_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX watermark_moves_by_watermark ON watermark_moves (consumer, source_table, to_version);
`;
