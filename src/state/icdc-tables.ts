import { z } from 'zod';
import { parseRow } from './common.js';
import type { Queryable } from './database.js';

/**
 * The ICDC tables as the REST catalog (src/rest) serves them: one per name that a batch's ICDC
 * snapshot carries (`icdc.<consumer>__<table>`, `…__backfill__<name>`), at the metadata file of
 * its newest batch. Newest is the highest metadata version (`vN.metadata.json`, the order the
 * writer committed them in), not the latest stored row: concurrent prepares may store their
 * batches in the other order. A version written by a prepare that crashed before storing its
 * batch is not served: no batch names it.
 */
export interface IcdcTableRow {
  /** The name in namespace `icdc` (the batch's `icdc.` name without the namespace). */
  name: string;
  consumer: string;
  sourceTable: string;
  backfill: string | null;
  metadataLocation: string;
  snapshotId: bigint;
}

const rowSchema = z.object({
  icdc_table: z.string(),
  consumer: z.string(),
  source_table: z.string(),
  backfill: z.string().nullable(),
  icdc_metadata_location: z.string(),
  icdc_snapshot_id: z.bigint(),
}).transform((r): IcdcTableRow => ({
  name: r.icdc_table.replace(/^icdc\./, ''), consumer: r.consumer, sourceTable: r.source_table, backfill: r.backfill,
  metadataLocation: r.icdc_metadata_location, snapshotId: r.icdc_snapshot_id,
}));

// The ICDC snapshots of batches, and (issue 17) the changelog tables of mode-rows batches
// (`icdc.<consumer>__<table>__changelog`), kept in batch_tables.row_changelog as JSON.
const NEWEST = `
SELECT DISTINCT ON (t.icdc_table) t.icdc_table, t.consumer, t.source_table, t.backfill, t.icdc_metadata_location, t.icdc_snapshot_id
  FROM (
    SELECT bt.icdc_table, b.consumer, bt.source_table, b.backfill, bt.icdc_metadata_location, bt.icdc_snapshot_id, b.created_at, b.id
      FROM batch_tables bt JOIN batches b ON b.id = bt.batch_id
     WHERE bt.icdc_table IS NOT NULL AND bt.icdc_metadata_location IS NOT NULL AND bt.icdc_snapshot_id IS NOT NULL
    UNION ALL
    SELECT bt.row_changelog->>'table', b.consumer, bt.source_table, b.backfill, bt.row_changelog->>'metadata_location',
           CAST(bt.row_changelog->>'snapshot_id' AS BIGINT), b.created_at, b.id
      FROM batch_tables bt JOIN batches b ON b.id = bt.batch_id
     WHERE bt.row_changelog IS NOT NULL
  ) t
 WHERE true`;
const ORDER = `ORDER BY t.icdc_table,
  CAST(substring(t.icdc_metadata_location from '/v([0-9]{1,18})\\.metadata\\.json$') AS BIGINT) DESC NULLS LAST, t.created_at DESC, t.id DESC`;

export class IcdcTablesRepo {
  constructor(private readonly q: Queryable) {}

  /**
   * The ICDC tables (of one consumer, or all), by name, after `after` (keyset paging), at most
   * `limit`.
   */
  async list(opts: { consumer: string | null; after?: string | null; limit: number }): Promise<IcdcTableRow[]> {
    const res = await this.q.query(
      `${NEWEST} AND ($1::TEXT IS NULL OR t.consumer = $1) AND ($2::TEXT IS NULL OR t.icdc_table > $2) ${ORDER} LIMIT $3`,
      [opts.consumer, opts.after === undefined || opts.after === null ? null : `icdc.${opts.after}`, opts.limit]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'ICDC table'));
  }

  /** The ICDC table of this name (visible to `consumer`, or to all when null), or undefined. */
  async get(name: string, consumer: string | null): Promise<IcdcTableRow | undefined> {
    const res = await this.q.query(`${NEWEST} AND t.icdc_table = $1 AND ($2::TEXT IS NULL OR t.consumer = $2) ${ORDER} LIMIT 1`, [`icdc.${name}`, consumer]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'ICDC table');
  }
}
