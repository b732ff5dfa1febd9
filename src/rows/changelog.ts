import { IpsError } from '../errors.js';
import { compactionRecordCheck } from '../capture/change-set.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import type { SnapshotRange } from '../capture/range.js';
import { schemaById, snapshotById, type TableMetadata } from '../iceberg/metadata.js';
import { typeToString } from '../iceberg/types.js';
import type { FileIO } from '../io/file-io.js';
import { DEFAULT_MAX_ROWS, netRowChanges, type NetRowOptions, type RowChange } from './net-rows.js';

export interface ChangelogOptions extends NetRowOptions {
  /**
   * Columns that identify a row. When given, a DELETE and an INSERT of one snapshot with the
   * same values in them become UPDATE_BEFORE and UPDATE_AFTER (Spark's `create_changelog_view`
   * with `compute_updates`).
   */
  identifierColumns?: string[];
  /** Notes for stderr (compactions skipped, mislabelled rewrites). */
  warn?: (line: string) => void;
}

export interface ChangelogResult {
  snapshots: number;
  rows: number;
  rowsRead: bigint;
}

/**
 * The changelog of (from, to], snapshot by snapshot, as Iceberg's changelog scan defines it:
 * every snapshot except `replace` (compactions change no rows) gets the next `_change_ordinal`
 * (from 0) and its own changes, the net row changes between its parent and itself
 * (netRowChanges), so that rows a copy-on-write rewrite carried over unchanged cancel
 * (Spark's carry-over removal) and a row changed twice in the range appears in both snapshots.
 * With identifier columns, a DELETE and an INSERT of one snapshot with equal identifiers are an
 * update; two or more of either with equal identifiers cannot be paired and are refused.
 */
export async function rowChangelog(
  io: FileIO, md: TableMetadata, reader: ManifestReader, range: SnapshotRange, emit: (row: RowChange) => void, opts: ChangelogOptions = {},
): Promise<ChangelogResult> {
  const toSnap = snapshotById(md, range.to);
  if (!toSnap) throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${range.to} is not in the table metadata`);
  const schema = schemaById(md, toSnap.schemaId);
  const cols = (id: number | null) => schemaById(md, id).struct.fields.map((f) => `${f.id}:${f.name}:${typeToString(f.type)}`).join(',');
  for (const s of range.snapshots) {
    if (cols(s.schemaId) !== cols(toSnap.schemaId)) {
      throw new IpsError('SCHEMA_CHANGED', `the schema changed inside (${range.from ?? 'start'}, ${range.to}] (snapshot ${s.snapshotId} has schema ${s.schemaId}, ${range.to} has ${schema.schemaId}); a changelog across a schema change is not supported: split the range at the schema change`);
    }
  }
  const ids = opts.identifierColumns ?? [];
  for (const c of ids) {
    if (!schema.struct.fields.some((f) => f.name === c)) throw new IpsError('INVALID_ARGUMENT', `identifier column ${c} is not a top-level column of the table (columns: ${schema.struct.fields.map((f) => f.name).join(', ')})`);
  }
  let budget = opts.maxRows ?? DEFAULT_MAX_ROWS;
  let rowsRead = 0n;
  let ordinal = 0;
  let rows = 0;
  let parent = range.from;
  for (const s of range.snapshots) {
    const prev = parent;
    parent = s.snapshotId;
    if (s.operation === 'replace') {
      const w = compactionRecordCheck(s, prev !== null ? snapshotById(md, prev) : undefined);
      opts.warn?.(`rows: snapshot ${s.snapshotId} is a replace (compaction): no changes, no ordinal${w ? `; warning: ${w}` : ''}`);
      continue;
    }
    const out: RowChange[] = [];
    const r = await netRowChanges(io, md, reader, { from: prev, to: s.snapshotId, snapshots: [s] }, (row) => out.push(row), { ...opts, maxRows: budget });
    budget -= r.plan.rowsToRead;
    rowsRead += r.plan.rowsToRead;
    const commit = s.snapshotId.toString();
    for (const row of out) {
      row['_change_ordinal'] = ordinal;
      row['_commit_snapshot_id'] = commit;
    }
    if (ids.length > 0) pairUpdates(out, ids, s.snapshotId);
    for (const row of out) emit(row);
    rows += out.length;
    ordinal++;
  }
  return { snapshots: ordinal, rows, rowsRead };
}

/** DELETE + INSERT with equal identifier values → UPDATE_BEFORE + UPDATE_AFTER (in place). */
function pairUpdates(rows: RowChange[], ids: string[], snapshot: bigint): void {
  const groups = new Map<string, { del: RowChange[]; ins: RowChange[] }>();
  for (const r of rows) {
    const k = JSON.stringify(ids.map((c) => r[c] ?? null));
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { del: [], ins: [] }));
    (r['_change_type'] === 'DELETE' ? g.del : g.ins).push(r);
  }
  for (const [k, g] of groups) {
    if (g.del.length > 1 || g.ins.length > 1) {
      throw new IpsError('UPDATE_AMBIGUOUS', `snapshot ${snapshot} deletes ${g.del.length} and inserts ${g.ins.length} rows with the same identifier (${ids.join(', ')}) = ${k}, so they cannot be paired into updates; choose identifier columns that are unique, or leave out --identifier-columns`);
    }
    if (g.del.length === 1 && g.ins.length === 1) {
      g.del[0]!['_change_type'] = 'UPDATE_BEFORE';
      g.ins[0]!['_change_type'] = 'UPDATE_AFTER';
    }
  }
}
