/**
 * API tokens. Only a SHA-256 of each token is stored: the token itself is shown once, when it
 * is issued. A token belongs to one consumer (scope `consumer`: its own batches only) or to
 * nobody (scope `admin`: tables and consumers). Same SQL subset as 0001 (see
 * src/state/README.md).
 */
export const sql = `
CREATE TABLE api_tokens (
  id BIGINT PRIMARY KEY,
  token_sha256 TEXT NOT NULL UNIQUE,
  -- shown in listings so a user can tell tokens apart (ips_ + the first 8 characters)
  token_prefix TEXT NOT NULL,
  description TEXT,
  consumer TEXT REFERENCES consumers (name) ON DELETE CASCADE,
  scopes JSONB NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  revoked_at TIMESTAMPTZ,
  CONSTRAINT api_tokens_scope CHECK (consumer IS NOT NULL OR scopes @> '["admin"]'::JSONB)
);
CREATE INDEX api_tokens_by_consumer ON api_tokens (consumer);
`;
