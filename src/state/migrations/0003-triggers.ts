/**
 * Triggers: which tables are watched and by whom, subscriptions, and the outbox of deliveries.
 * Same SQL subset as 0001 (see src/state/README.md). Replicas divide work with row claims
 * (`claimed_by`, `claim_expires_at`, taken with FOR UPDATE SKIP LOCKED), so a dead replica's
 * rows go to the others once its claims expire.
 */
export const sql = `
-- One row per registered table: its last seen metadata pointer and when to look again.
CREATE TABLE table_watch (
  source_table TEXT PRIMARY KEY REFERENCES source_tables (name) ON DELETE CASCADE,
  poll_interval_seconds INT4 NOT NULL DEFAULT 30 CHECK (poll_interval_seconds > 0),
  metadata_location TEXT,
  head_snapshot_id BIGINT,
  changed_at TIMESTAMPTZ,
  polled_at TIMESTAMPTZ,
  next_poll_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  error_count INT4 NOT NULL DEFAULT 0,
  last_error TEXT,
  claimed_by TEXT,
  claim_expires_at TIMESTAMPTZ
);
CREATE INDEX table_watch_due ON table_watch (next_poll_at);

-- A consumer's standing order: when its tables changed and the condition holds, prepare a
-- batch and deliver it to the sink.
CREATE TABLE subscriptions (
  name TEXT PRIMARY KEY,
  consumer TEXT NOT NULL REFERENCES consumers (name) ON DELETE CASCADE,
  tables JSONB NOT NULL,
  -- {"interval_seconds", "min_files", "min_bytes", "min_records", "max_delay_seconds"}
  condition JSONB NOT NULL DEFAULT '{}'::JSONB,
  limits JSONB NOT NULL DEFAULT '{}'::JSONB,
  sink JSONB NOT NULL,
  max_in_flight INT4 NOT NULL DEFAULT 1 CHECK (max_in_flight > 0),
  max_attempts INT4 NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
  enabled BOOLEAN NOT NULL DEFAULT true,
  next_check_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- when changes were first seen that the condition held back (max_delay counts from here)
  pending_since TIMESTAMPTZ,
  last_fired_at TIMESTAMPTZ,
  fire_seq BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  claimed_by TEXT,
  claim_expires_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_due ON subscriptions (next_check_at);
CREATE INDEX subscriptions_by_consumer ON subscriptions (consumer);

-- A trigger to deliver: written in the transaction that stores its batch. Delivered in seq
-- order per subscription; dead after max_attempts (until retried by hand); cancelled when its
-- batch was aborted or expired before delivery.
CREATE TABLE outbox (
  id BIGINT PRIMARY KEY,
  subscription TEXT NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
  batch_id BIGINT NOT NULL UNIQUE REFERENCES batches (id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  dedup_key TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead', 'cancelled')),
  attempts INT4 NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_error TEXT,
  outcome TEXT,
  run_id TEXT,
  delivered_at TIMESTAMPTZ,
  claimed_by TEXT,
  claim_expires_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT outbox_seq UNIQUE (subscription, seq)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
`;
