/**
 * Backfill validation run by the service (DESIGN.md "Managed backfill"; docs/backfills.md
 * "Validation"): when `ips serve` is configured to run validation commands, a replica claims a
 * committed chunk whose result is missing, runs the backfill's command, and records the result.
 * The claim (owner and expiry, taken with FOR UPDATE SKIP LOCKED) keeps replicas from running the
 * same chunk's command at once; a replica that dies mid-run leaves a claim that expires.
 */
export const sql = `
ALTER TABLE backfill_chunks ADD COLUMN validation_claimed_by TEXT;
ALTER TABLE backfill_chunks ADD COLUMN validation_claim_expires_at TIMESTAMPTZ;
`;
