import { IpsError } from '../errors.js';
import { compactionRecordCheck } from '../capture/change-set.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import type { SnapshotRange } from '../capture/range.js';
import { schemaById, snapshotById, type TableMetadata } from '../iceberg/metadata.js';
import type { Schema } from '../iceberg/types.js';
import type { FileIO } from '../io/file-io.js';
import { DEFAULT_MAX_ROWS, rowDiff, schemaChange, type ChangelogFieldIds, type NetRowOptions, type Pairing, type RowChange } from './net-rows.js';

/**
 * How updates are paired: `auto` (default) by the table's identifier fields
 * (`identifier-field-ids` of the `to` schema) when it has them, else on v3 tables by `_row_id`
 * (row lineage) when the files carry it, else not at all.
 */
export type PairBy = 'auto' | 'identifier-fields' | 'row-id' | 'none';

export interface ChangelogOptions extends NetRowOptions {
  /**
   * Columns that identify a row. When given, a DELETE and an INSERT of one snapshot with the
   * same values in them become UPDATE_BEFORE and UPDATE_AFTER (Spark's `create_changelog_view`
   * with `compute_updates`); they override `pairBy`.
   */
  identifierColumns?: string[];
  pairBy?: PairBy;
  /** Notes for stderr (compactions skipped, mislabelled rewrites). */
  warn?: (line: string) => void;
  /**
   * Instead of emitting rows, each snapshot's changes are written by DuckDB as the Parquet file
   * `part(ordinal)` (a local path), listed in `ChangelogResult.parquetParts` in ordinal order.
   */
  parquetParts?: { part: (ordinal: number) => string; changelogIds: ChangelogFieldIds };
}

export interface ChangelogResult {
  snapshots: number;
  rows: number;
  rowsRead: bigint;
  /** How updates were paired (`columns` lists the identifier columns). */
  pairing: Pairing;
  /** Notes given (schema change, lineage fallback). */
  notes: string[];
  /** With `parquetParts`: the files written, one per ordinal. */
  parquetParts: string[];
}

/**
 * The changelog of (from, to], snapshot by snapshot, as Iceberg's changelog scan defines it:
 * every snapshot except `replace` (compactions change no rows) gets the next `_change_ordinal`
 * (from 0) and its own changes, the net row changes between its parent and itself
 * (rowDiff), so that rows a copy-on-write rewrite carried over unchanged cancel
 * (Spark's carry-over removal) and a row changed twice in the range appears in both snapshots.
 * Rows are streamed to `emit` as they are computed, in the schema of `to` (columns matched by
 * field id; a column added in the range is null in rows of snapshots before it).
 * Updates are paired by identifier columns (two or more DELETEs or INSERTs with equal
 * identifiers in one snapshot cannot be paired and are refused) or by `_row_id`.
 */
export async function rowChangelog(
  io: FileIO, md: TableMetadata, reader: ManifestReader, range: SnapshotRange, emit: (row: RowChange) => void, opts: ChangelogOptions = {},
): Promise<ChangelogResult> {
  const toSnap = snapshotById(md, range.to);
  if (!toSnap) throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${range.to} is not in the table metadata`);
  const schema = schemaById(md, toSnap.schemaId);
  const notes: string[] = [];
  const note = (line: string) => {
    notes.push(line);
    (opts.note ?? opts.warn)?.(line);
  };
  const first = range.from !== null ? snapshotById(md, range.from) : range.snapshots[0];
  const change = first ? schemaChange(schemaById(md, first.schemaId), schema) : null;
  if (change) note(`rows: the schema changed in (${range.from ?? 'start'}, ${range.to}]: ${change}; each snapshot's files are read by field id and rows are given in schema ${schema.schemaId} (columns added in the range are null in rows written before them)`);
  const pairing = choosePairing(md, schema, opts);
  if (pairing.kind === 'columns' && !opts.identifierColumns?.length) note(`rows: updates paired by the table's identifier fields (${pairing.columns.join(', ')})`);
  if (pairing.kind === 'row-id') note('rows: updates paired by _row_id (v3 row lineage)');
  let budget = opts.maxRows ?? DEFAULT_MAX_ROWS;
  let rowsRead = 0n;
  let ordinal = 0;
  let rows = 0;
  let parent = range.from;
  const parts: string[] = [];
  for (const s of range.snapshots) {
    const prev = parent;
    parent = s.snapshotId;
    if (s.operation === 'replace') {
      const w = compactionRecordCheck(s, prev !== null ? snapshotById(md, prev) : undefined);
      opts.warn?.(`rows: snapshot ${s.snapshotId} is a replace (compaction): no changes, no ordinal${w ? `; warning: ${w}` : ''}`);
      continue;
    }
    const parquetOut = opts.parquetParts ? { path: opts.parquetParts.part(ordinal), changelogIds: opts.parquetParts.changelogIds } : undefined;
    const r = await rowDiff(io, md, reader, { from: prev, to: s.snapshotId, snapshots: [s] }, emit, {
      ...opts, maxRows: budget, pairing, ordinal, outputSchema: schema, note, ...(parquetOut ? { parquetOut } : {}),
    });
    if (parquetOut) parts.push(parquetOut.path);
    budget -= r.plan.rowsToRead + r.plan.deleteRowsToRead;
    rowsRead += r.plan.rowsToRead;
    rows += r.inserts + r.deletes;
    ordinal++;
  }
  return { snapshots: ordinal, rows, rowsRead, pairing, notes, parquetParts: parts };
}

function choosePairing(md: TableMetadata, schema: Schema, opts: ChangelogOptions): Pairing {
  const cols = opts.identifierColumns ?? [];
  const names = schema.struct.fields.map((f) => f.name);
  if (cols.length > 0) {
    for (const c of cols) {
      if (!names.includes(c)) throw new IpsError('INVALID_ARGUMENT', `identifier column ${c} is not a top-level column of the table (columns: ${names.join(', ')})`);
    }
    return { kind: 'columns', columns: cols };
  }
  const by = opts.pairBy ?? 'auto';
  if (by === 'none') return { kind: 'none' };
  // Identifier fields are top-level (or nested in structs, which --rows does not read).
  const fields = schema.identifierFieldIds.map((id) => schema.struct.fields.find((f) => f.id === id)?.name);
  const idCols = fields.every((n) => n !== undefined) ? fields as string[] : [];
  if (by === 'identifier-fields') {
    if (idCols.length === 0) throw new IpsError('INVALID_ARGUMENT', `schema ${schema.schemaId} has no top-level identifier fields (identifier-field-ids) to pair updates by; name them with --identifier-columns`);
    return { kind: 'columns', columns: idCols };
  }
  if (by === 'row-id') return { kind: 'row-id' };
  if (idCols.length > 0) return { kind: 'columns', columns: idCols };
  if (md.formatVersion >= 3) return { kind: 'row-id', orNone: true };
  return { kind: 'none' };
}
