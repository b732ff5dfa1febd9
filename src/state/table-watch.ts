import { z } from 'zod';
import { parseRow } from './common.js';
import type { Queryable } from './database.js';

/** A watched table: the metadata pointer last seen and when to look again. */
export interface TableWatch {
  sourceTable: string;
  pollIntervalSeconds: number;
  metadataLocation: string | null;
  headSnapshotId: bigint | null;
  changedAt: Date | null;
  polledAt: Date | null;
  nextPollAt: Date;
  errorCount: number;
  lastError: string | null;
}

const rowSchema = z.object({
  source_table: z.string(),
  poll_interval_seconds: z.number().int(),
  metadata_location: z.string().nullable(),
  head_snapshot_id: z.bigint().nullable(),
  changed_at: z.date().nullable(),
  polled_at: z.date().nullable(),
  next_poll_at: z.date(),
  error_count: z.number().int(),
  last_error: z.string().nullable(),
}).transform((r): TableWatch => ({
  sourceTable: r.source_table, pollIntervalSeconds: r.poll_interval_seconds, metadataLocation: r.metadata_location,
  headSnapshotId: r.head_snapshot_id, changedAt: r.changed_at, polledAt: r.polled_at, nextPollAt: r.next_poll_at,
  errorCount: r.error_count, lastError: r.last_error,
}));

const COLUMNS = 'source_table, poll_interval_seconds, metadata_location, head_snapshot_id, changed_at, polled_at, next_poll_at, error_count, last_error';

/** How long after an event a poll that finds no change looks again soon (see recordPoll). */
export const EVENT_FOLLOW_UP_SECONDS = 30;

export class TableWatchRepo {
  constructor(private readonly q: Queryable) {}

  /** Starts watching (idempotent); a new interval applies from the next poll. */
  async ensure(sourceTable: string, pollIntervalSeconds = 30): Promise<void> {
    await this.q.query(
      `INSERT INTO table_watch (source_table, poll_interval_seconds) VALUES ($1, $2)
       ON CONFLICT (source_table) DO UPDATE SET poll_interval_seconds = EXCLUDED.poll_interval_seconds`,
      [sourceTable, pollIntervalSeconds]);
  }

  async get(sourceTable: string): Promise<TableWatch | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM table_watch WHERE source_table = $1`, [sourceTable]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'table_watch');
  }

  async list(): Promise<TableWatch[]> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM table_watch ORDER BY source_table`);
    return res.rows.map((r) => parseRow(rowSchema, r, 'table_watch'));
  }

  /** Due tables for `owner`, each to exactly one replica until the claim expires (SKIP LOCKED). */
  claimDue(owner: string, limit: number, claimSeconds: number): Promise<TableWatch[]> {
    return this.q.withTransaction(async (tx) => {
      const picked = await tx.query<{ source_table: string }>(
        `SELECT source_table FROM table_watch
          WHERE next_poll_at <= now() AND (claimed_by IS NULL OR claim_expires_at < now())
          ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit]);
      if (picked.rows.length === 0) return [];
      const names = picked.rows.map((r) => r.source_table);
      const res = await tx.query(
        `UPDATE table_watch SET claimed_by = $2, claim_expires_at = now() + $3::INT8 * INTERVAL '1 second'
          WHERE source_table = ANY($1::TEXT[]) RETURNING ${COLUMNS}`, [textArray(names), owner, claimSeconds]);
      return res.rows.map((r) => parseRow(rowSchema, r, 'table_watch'));
    });
  }

  /**
   * Records a poll and releases the claim. `changed` when the pointer moved (then changed_at is
   * now). The next poll is one interval (with jitter, from the caller) away.
   */
  async recordPoll(sourceTable: string, owner: string, seen: { metadataLocation: string; headSnapshotId: bigint | null }, nextInMs: number,
    claimedNextPollAt: Date): Promise<{ changed: boolean }> {
    const res = await this.q.query<{ changed: boolean }>(
      `UPDATE table_watch SET
          changed_at = CASE WHEN metadata_location IS DISTINCT FROM $3 THEN now() ELSE changed_at END,
          metadata_location = $3, head_snapshot_id = $4, polled_at = now(),
          -- an event during the poll (wake) moved next_poll_at: keep it due (milliseconds: the
          -- claimed value came back through a JS Date, the column keeps microseconds)
          next_poll_at = CASE
            WHEN date_trunc('milliseconds', next_poll_at) > $6 THEN next_poll_at
            -- An event came but the pointer has not moved yet (a storage event precedes the catalog
            -- commit): look again after half the time since the event (at least 200 ms), for 30 s.
            WHEN metadata_location IS NOT DISTINCT FROM $3 AND event_at IS NOT NULL AND event_at > now() - INTERVAL '${EVENT_FOLLOW_UP_SECONDS} seconds'
              THEN now() + LEAST($5::INT8, GREATEST(200, (EXTRACT(EPOCH FROM (now() - event_at)) * 500)::INT8)) * INTERVAL '1 millisecond'
            ELSE now() + $5::INT8 * INTERVAL '1 millisecond' END,
          event_at = CASE WHEN metadata_location IS DISTINCT FROM $3 THEN NULL ELSE event_at END,
          error_count = 0, last_error = NULL, claimed_by = NULL, claim_expires_at = NULL
        WHERE source_table = $1 AND claimed_by = $2
        RETURNING changed_at = now() AS changed`,
      [sourceTable, owner, seen.metadataLocation, seen.headSnapshotId, Math.round(nextInMs), claimedNextPollAt]);
    return { changed: res.rows[0]?.changed ?? false };
  }

  /** Records a failed poll; the caller passes the backoff delay. */
  async recordError(sourceTable: string, owner: string, error: string, nextInMs: number): Promise<void> {
    await this.q.query(
      `UPDATE table_watch SET error_count = error_count + 1, last_error = $3, polled_at = now(),
          next_poll_at = now() + $4::INT8 * INTERVAL '1 millisecond', claimed_by = NULL, claim_expires_at = NULL
        WHERE source_table = $1 AND claimed_by = $2`, [sourceTable, owner, error.slice(0, 2000), Math.round(nextInMs)]);
  }

  /** An event says the table changed: poll it now (whoever is free). Returns false for an unknown table. */
  async wake(sourceTable: string): Promise<boolean> {
    const res = await this.q.query('UPDATE table_watch SET next_poll_at = now(), event_at = now() WHERE source_table = $1', [sourceTable]);
    return res.rowCount > 0;
  }

  /**
   * Wakes the tables that own any of these object locations (an S3 bucket notification names
   * objects, not tables): a table owns what lies under its directory. Returns their names.
   */
  async wakeByLocations(locations: string[]): Promise<string[]> {
    if (locations.length === 0) return [];
    const res = await this.q.query<{ name: string; location: string | null; metadata_location: string | null }>(
      'SELECT s.name, s.location, w.metadata_location FROM source_tables s JOIN table_watch w ON w.source_table = s.name');
    const hit = res.rows.filter((row) => {
      const roots = [row.location?.replace(/\/metadata\/[^/]+\.metadata\.json$/, ''), row.metadata_location?.replace(/\/metadata\/[^/]+$/, '')]
        .filter((x): x is string => !!x).map((x) => x.replace(/\/+$/, ''));
      return locations.some((l) => roots.some((root) => l === root || l.startsWith(root + '/')));
    }).map((r) => r.name);
    if (hit.length) await this.q.query('UPDATE table_watch SET next_poll_at = now(), event_at = now() WHERE source_table = ANY($1::TEXT[])', [textArray(hit)]);
    return hit;
  }
}

/** A TEXT[] literal for `= ANY($1::TEXT[])` (names are [A-Za-z0-9_.-], but quote anyway). */
export function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

