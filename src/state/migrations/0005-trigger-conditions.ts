/**
 * Trigger conditions beyond "a table changed" (issue 18): custom and output signals, which
 * subscriptions consumed them, and the partition values a partition-complete condition has seen
 * and fired. Same SQL subset as 0001 (see src/state/README.md).
 */
export const sql = `
-- A signal as announced: by an admin (POST /v1/signals/{name}) or by a committed batch (output
-- signal, batch_id set). Kept with its time and sender; never changed once written.
CREATE TABLE signals (
  id BIGINT PRIMARY KEY,
  name TEXT NOT NULL,
  params JSONB NOT NULL DEFAULT '{}'::JSONB,
  sender TEXT NOT NULL,
  consumer TEXT,
  batch_id BIGINT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX signals_by_name ON signals (name, created_at);

-- Which firing of a subscription used a signal: at most once per subscription (the key), written
-- in the transaction that stores the firing's batch and trigger. A cancelled trigger gives its
-- signals back (the row is deleted with the cancellation).
CREATE TABLE signal_consumptions (
  signal_id BIGINT NOT NULL REFERENCES signals (id) ON DELETE CASCADE,
  subscription TEXT NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
  outbox_id BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
  consumed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (signal_id, subscription)
);
CREATE INDEX signal_consumptions_by_outbox ON signal_consumptions (outbox_id);

-- A partition value (of a partition-complete condition's time field) seen in a table's changes:
-- last_commit_at is the commit time of the newest snapshot that wrote it (quiet counts from it).
CREATE TABLE partition_arrivals (
  subscription TEXT NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
  value TEXT NOT NULL,
  source_table TEXT NOT NULL,
  first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_commit_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (subscription, value, source_table)
);

-- A partition value fired: once per subscription and value (the key), in the firing's transaction.
CREATE TABLE partition_firings (
  subscription TEXT NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
  value TEXT NOT NULL,
  outbox_id BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
  reason TEXT NOT NULL CHECK (reason IN ('complete', 'quiet')),
  fired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription, value)
);
CREATE INDEX partition_firings_by_outbox ON partition_firings (outbox_id);

-- When an event last said the table changed (POST /v1/tables/{name}/events, an S3 notification):
-- a poll that finds the pointer unmoved looks again soon, for a while, because a storage event
-- can come before the catalog commit (the metadata file is written first).
ALTER TABLE table_watch ADD COLUMN event_at TIMESTAMPTZ;

-- What a trigger announces besides its batch: {"partition": {"field", "values": [{"value", "reason"}]}, "signals": [ids]}.
ALTER TABLE outbox ADD COLUMN detail JSONB NOT NULL DEFAULT '{}'::JSONB;
-- A subscription with fire_on_signals fires on its signals alone when its tables have no
-- changes: that trigger has no batch.
ALTER TABLE outbox ALTER COLUMN batch_id DROP NOT NULL;
`;
