import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { IpsError, describeError, isIpsError } from '../errors.js';
import { changeKey, partitionKey } from '../capture/file-key.js';
import { mayHoldPartition } from '../capture/delete-footprint.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import { bindSpec, type BoundPartitionField } from '../iceberg/partition-values.js';
import type { SnapshotRange } from '../capture/range.js';
import type { FileChange } from '../capture/snapshot-changes.js';
import { SqlEngine, sqlIdent, sqlString, type BytesColumn, type FixedColumn } from '../engine/duckdb.js';
import { EntryStatus, type DataFile } from '../iceberg/manifest.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import { schemaById, snapshotById, specById, type Snapshot, type TableMetadata } from '../iceberg/metadata.js';
import { typeToString, type NestedField, type PrimitiveType, type Schema } from '../iceberg/types.js';
import { readRange, type FileIO } from '../io/file-io.js';
import { currentReadLimits } from '../io/limits.js';
import { groupRangeReads } from '../io/range-reads.js';
import { parquetFooterRowCount } from './parquet-footer.js';
import { deletionVectorChunks, maxDeletionVectorBytes } from './deletion-vector.js';
import { renderValue, selectExpr } from './render.js';
import { changeTypeColumn, constantColumn, jsonExpr, jsonValues, nativeColumn, nativeExpr, type NativeBatch } from './native.js';

/** Field ids of `file_path` and `pos` in position delete files (spec, reserved ids). */
const POS_FILE_PATH_ID = 2147483546;
const POS_POS_ID = 2147483545;

/** Field ids of the v3 row lineage metadata columns (spec "Row Lineage"). */
const ROW_ID_ID = 2147483540;
const LAST_UPDATED_SEQ_ID = 2147483539;

/**
 * Default bound on the data rows one `--rows` answer may read (both ends together). A safety
 * against a mistyped range, not a memory bound: the work is streamed and spilled (memoryLimit).
 */
export const DEFAULT_MAX_ROWS = 1_000_000_000n;

/** Default DuckDB memory budget of one answer; past it the engine spills to the scratch dir. */
export const DEFAULT_MEMORY_LIMIT = '1GB';

export interface NetRowOptions {
  /** Refuse (ROW_BUDGET_EXCEEDED) when the data files to read hold more rows than this. */
  maxRows?: bigint;
  /** Progress lines (stderr in the CLI): the plan, then every few seconds on long work. */
  progress?: (line: string) => void;
  /** How the answer was computed when it matters to the reader (a schema change, lineage): stderr in the CLI. */
  note?: (line: string) => void;
  /** Scratch directory for DuckDB and staged S3 files (default: a fresh one under the OS temp dir, removed after). */
  scratchDir?: string;
  /** DuckDB memory budget, e.g. `512MB` (default DEFAULT_MEMORY_LIMIT); larger work spills to the scratch dir. */
  memoryLimit?: string;
  /** DuckDB threads (default 2). */
  threads?: number;
  /**
   * Typed delivery: instead of `emit`, the rows go here a chunk at a time as columns of native
   * values (the table's, then the changelog columns), with nothing rendered as text.
   */
  nativeOut?: (batch: NativeBatch) => void;
}

/**
 * How a DELETE and an INSERT of one answer become UPDATE_BEFORE / UPDATE_AFTER: by equal values
 * of identifier columns (Spark's `compute_updates`), by equal v3 `_row_id` (row lineage), or not.
 */
export type Pairing =
  | { kind: 'none' }
  | { kind: 'columns'; columns: string[] }
  /** `orNone`: when the files read have no lineage, pair nothing (and say so) instead of failing. */
  | { kind: 'row-id'; orNone?: boolean };

export interface RowDiffOptions extends NetRowOptions {
  pairing?: Pairing;
  /** `_change_ordinal` of the emitted rows (default 0). */
  ordinal?: number;
  /** Read and give rows in this schema (default: the schema of `to`); columns are matched by field id. */
  outputSchema?: Schema;
  /**
   * Write the answer as the Parquet file `path` (local) instead of emitting rows: one DuckDB COPY
   * of the typed columns, so no value is rendered and parsed back on its way out. Columns carry
   * the schema's field ids, and `changelogIds` on the three changelog columns.
   */
  parquetOut?: { path: string; changelogIds: ChangelogFieldIds };
}

/** Field ids of `_change_type`, `_change_ordinal` and `_commit_snapshot_id` in a written file. */
export interface ChangelogFieldIds { _change_type: number; _change_ordinal: number; _commit_snapshot_id: number }

/** One changed row: the table's columns by name (JSON values as `ips inspect --json`) plus the changelog columns. */
export type RowChange = Record<string, unknown>;

export interface NetRowPlan {
  from: bigint | null;
  to: bigint;
  schema: Schema;
  /** Data files read at `to` (added by the range, or whose deletes changed) and at `from`. */
  readAtTo: number;
  readAtFrom: number;
  /** Of those, the files read at both ends (live at both, their deletes changed). */
  readAtBoth: number;
  /** Data rows those files hold before deletes. */
  rowsToRead: bigint;
  /**
   * Rows of the position and equality delete files applied to them, each file counted once
   * (deletion vectors are bounded by their data files). The row budget holds both.
   */
  deleteRowsToRead: bigint;
  manifestsRead: number;
}

export interface NetRowResult {
  plan: NetRowPlan;
  /** Rows emitted as INSERT or UPDATE_AFTER, and as DELETE or UPDATE_BEFORE. */
  inserts: number;
  deletes: number;
  /** Update pairs among them. */
  updates: number;
  /** Whether v3 row lineage was used (carry-over rows skipped by `_last_updated_sequence_number`). */
  lineage: boolean;
  /** What `note` was told. */
  notes: string[];
}

interface LiveFile {
  fc: FileChange;
  seq: bigint;
}

/** Live data and delete files of one snapshot's manifests, keyed by file key. */
interface LiveSet {
  data: Map<string, LiveFile>;
  deletes: Map<string, LiveFile>;
}

/** The delete files live at one snapshot, indexed for "which of them apply to this data file". */
class DeleteIndex {
  readonly byReferenced = new Map<string, LiveFile[]>();
  readonly byPartition = new Map<string, LiveFile[]>();
  readonly global: LiveFile[] = [];

  constructor(md: TableMetadata, deletes: Iterable<LiveFile>) {
    for (const d of deletes) {
      const df = d.fc.entry.dataFile;
      if (df.content === 1 && df.referencedDataFile !== null) {
        push(this.byReferenced, df.referencedDataFile, d);
      } else if (df.content === 2 && specById(md, d.fc.manifest.partitionSpecId).fields.length === 0) {
        this.global.push(d);
      } else {
        push(this.byPartition, partitionKey(d.fc), d);
      }
    }
  }

  /** The delete files that apply to data file `f` (spec "Scan Planning": sequence numbers and partitions). */
  applying(f: LiveFile): LiveFile[] {
    const path = f.fc.entry.dataFile.filePath;
    const out: LiveFile[] = [];
    for (const d of this.byReferenced.get(path) ?? []) if (d.seq >= f.seq) out.push(d);
    for (const d of [...(this.byPartition.get(partitionKey(f.fc)) ?? []), ...this.global]) {
      const df = d.fc.entry.dataFile;
      if (df.content === 1) {
        if (d.seq >= f.seq && pathWithinBounds(d, path)) out.push(d);
      } else if (d.seq > f.seq) {
        out.push(d);
      }
    }
    return out;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

/** Whether a position delete file's `file_path` bounds admit this data file path (no bounds: yes). */
function pathWithinBounds(d: LiveFile, filePath: string): boolean {
  const df = d.fc.entry.dataFile;
  const p = Buffer.from(filePath, 'utf8');
  const lo = df.lowerBounds?.get(POS_FILE_PATH_ID);
  const hi = df.upperBounds?.get(POS_FILE_PATH_ID);
  // Upper bounds may be truncated and incremented: still an upper bound under byte order.
  return (lo === undefined || Buffer.compare(p, lo) >= 0) && (hi === undefined || Buffer.compare(p, hi) <= 0);
}

function seqOf(fc: FileChange, where: string): bigint {
  const s = fc.entry.sequenceNumber;
  if (s === null) throw new IpsError('INVALID_METADATA', `${fc.entry.dataFile.filePath}: its manifest entry in ${where} has no data sequence number; row-level changes need it to apply deletes`);
  return s;
}

async function readLive(reader: ManifestReader, manifests: ManifestFile[], into: LiveSet, where: string): Promise<void> {
  for (const mf of manifests) {
    const m = await reader.manifest(mf);
    for (const entry of m.entries) {
      if (entry.status === EntryStatus.DELETED) continue;
      const fc: FileChange = { entry, manifest: mf };
      const lf: LiveFile = { fc, seq: seqOf(fc, where) };
      (mf.content === 0 ? into.data : into.deletes).set(changeKey(fc), lf);
    }
  }
}

/** What changed in the top-level columns from schema `a` to `b` (by field id), or null when nothing did. */
export function schemaChange(a: Schema, b: Schema): string | null {
  const before = new Map(a.struct.fields.map((f) => [f.id, f]));
  const after = new Map(b.struct.fields.map((f) => [f.id, f]));
  const parts: string[] = [];
  const added = b.struct.fields.filter((f) => !before.has(f.id)).map((f) => f.name);
  const dropped = a.struct.fields.filter((f) => !after.has(f.id)).map((f) => f.name);
  const renamed = b.struct.fields.filter((f) => before.has(f.id) && before.get(f.id)!.name !== f.name).map((f) => `${before.get(f.id)!.name} → ${f.name}`);
  const retyped = b.struct.fields.filter((f) => before.has(f.id) && typeToString(before.get(f.id)!.type) !== typeToString(f.type)).map((f) => `${f.name} ${typeToString(before.get(f.id)!.type)} → ${typeToString(f.type)}`);
  if (added.length) parts.push(`added ${added.join(', ')}`);
  if (dropped.length) parts.push(`dropped ${dropped.join(', ')}`);
  if (renamed.length) parts.push(`renamed ${renamed.join(', ')}`);
  if (retyped.length) parts.push(`promoted ${retyped.join(', ')}`);
  return parts.length ? `schema ${a.schemaId} → ${b.schemaId} (${parts.join('; ')})` : null;
}

/** DuckDB type of a column for reading Parquet by field id. */
export function readType(f: NestedField): string {
  const t = f.type;
  if (t.kind === 'struct' || t.kind === 'list' || t.kind === 'map') {
    throw new IpsError('UNSUPPORTED_TYPE', `column ${f.name} is ${t.kind}: row-level changes (--rows) read primitive columns only; use the file-level change set (without --rows) for this table`);
  }
  switch (t.kind) {
    case 'boolean': return 'BOOLEAN';
    case 'int': return 'INTEGER';
    case 'long': return 'BIGINT';
    case 'float': return 'FLOAT';
    case 'double': return 'DOUBLE';
    case 'decimal': return `DECIMAL(${t.precision}, ${t.scale})`;
    case 'date': return 'DATE';
    case 'time': return 'TIME';
    case 'timestamp': return 'TIMESTAMP';
    case 'timestamptz': return 'TIMESTAMPTZ';
    case 'timestamp_ns': return 'TIMESTAMP_NS';
    case 'string': return 'VARCHAR';
    case 'uuid': return 'UUID';
    case 'fixed':
    case 'binary': return 'BLOB';
    default:
      throw new IpsError('UNSUPPORTED_TYPE', `column ${f.name} is ${typeToString(t)}: row-level changes (--rows) cannot read it yet; use the file-level change set (without --rows)`);
  }
}

const col = (id: number): string => `c${id}`;

function schemaMap(fields: { id: number; type: string }[]): string {
  return `MAP {${fields.map((f) => `${f.id}: {name: ${sqlString(col(f.id))}, type: ${sqlString(f.type)}, default_value: NULL}`).join(', ')}}`;
}

/**
 * The net row changes of (from, to]: rows of the table at `to` that are not at `from`
 * (INSERT) and the reverse (DELETE), as multisets, i.e. Spark's
 * `(SELECT * FROM t VERSION AS OF to) EXCEPT ALL (… VERSION AS OF from)` and its reverse.
 *
 * Proportional to the change: the live files of both ends are compared through the manifests
 * the two manifest lists do not share (a manifest path always has the same content), so only
 * data files one end has and the other has not (added, removed, compaction inputs and outputs)
 * are read, plus data files live at both ends that a delete file added or removed in between
 * applies to. Every other data file holds the same live rows at both ends and cancels out of
 * the difference. Each file is read with the deletes live at its end (position deletes,
 * deletion vectors, equality deletes, by the spec's sequence-number and partition rules), and
 * DuckDB computes EXCEPT ALL in both directions.
 */
export async function netRowChanges(
  io: FileIO, md: TableMetadata, reader: ManifestReader, range: SnapshotRange, emit: (row: RowChange) => void, opts: NetRowOptions & Pick<RowDiffOptions, 'parquetOut'> = {},
): Promise<NetRowResult> {
  return rowDiff(io, md, reader, range, emit, { ...opts, pairing: { kind: 'none' } });
}

/**
 * The rows of (from, to] as netRowChanges computes them, with updates paired (`pairing`) and the
 * rows tagged with `ordinal`: one snapshot's part of the changelog (rowChangelog) or the net change.
 *
 * On v3 tables whose files all carry row lineage, rows read at `to` whose
 * `_last_updated_sequence_number` is not after `from` are carry-over (unchanged since `from`,
 * spec "Row Lineage"): they are not kept, and the rows at `from` with their `_row_id` cancel
 * with them, so only changed rows take part in the difference.
 */
export async function rowDiff(
  io: FileIO, md: TableMetadata, reader: ManifestReader, range: SnapshotRange, emit: (row: RowChange) => void, opts: RowDiffOptions = {},
): Promise<NetRowResult> {
  const progress = opts.progress ?? (() => {});
  const notes: string[] = [];
  const note = (line: string) => {
    notes.push(line);
    opts.note?.(line);
  };
  const toSnap = snapshotById(md, range.to);
  if (!toSnap) throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${range.to} is not in the table metadata`);
  let fromSnap: Snapshot | null = null;
  if (range.from !== null) {
    fromSnap = snapshotById(md, range.from) ?? null;
    if (!fromSnap) {
      throw new IpsError('FROM_EXPIRED', `snapshot ${range.from} (--from) has expired: row-level changes read the table as of --from, which needs its manifests; pick a --from that still exists (ips inspect lists them)`);
    }
  }
  // Every file is read by field id in one schema (that of `to`): a column added in the range
  // reads as null in rows written before it, a renamed one under its new name, a dropped one
  // not at all, as Spark's time travel to each end shows them once projected on that schema.
  const schema = opts.outputSchema ?? schemaById(md, toSnap.schemaId);
  if (!opts.outputSchema && fromSnap) {
    const change = schemaChange(schemaById(md, fromSnap.schemaId), schema);
    if (change) note(`rows: the schema changed in (${range.from}, ${range.to}]: ${change}; each file is read by field id and rows are given in schema ${schema.schemaId} (columns added in the range are null in rows written before them)`);
  }
  const columns = schema.struct.fields.map((f) => ({ field: f, id: f.id, type: readType(f), prim: f.type as PrimitiveType }));
  const byId = new Map(columns.map((c) => [c.id, c]));

  // Live files at both ends, through the manifests the two lists do not share.
  const listTo = (await reader.manifestList(toSnap)).manifests;
  const listFrom = fromSnap ? (await reader.manifestList(fromSnap)).manifests : [];
  const inTo = new Set(listTo.map((m) => m.path));
  const inFrom = new Set(listFrom.map((m) => m.path));
  const toOnly: LiveSet = { data: new Map(), deletes: new Map() };
  const fromOnly: LiveSet = { data: new Map(), deletes: new Map() };
  const unique = (l: ManifestFile[]) => [...new Map(l.map((m) => [m.path, m])).values()];
  await readLive(reader, unique(listTo.filter((m) => !inFrom.has(m.path))), toOnly, `snapshot ${range.to}`);
  await readLive(reader, unique(listFrom.filter((m) => !inTo.has(m.path))), fromOnly, `snapshot ${range.from}`);
  const common = unique(listTo.filter((m) => inFrom.has(m.path)));
  const commonLive: LiveSet = { data: new Map(), deletes: new Map() };
  await readLive(reader, common.filter((m) => m.content === 1), commonLive, `snapshots ${range.from} and ${range.to}`);

  const added = [...toOnly.data].filter(([k]) => !fromOnly.data.has(k)).map(([, f]) => f);
  const removed = [...fromOnly.data].filter(([k]) => !toOnly.data.has(k)).map(([, f]) => f);
  const deletesAddedOrRemoved = [
    ...[...toOnly.deletes].filter(([k]) => !fromOnly.deletes.has(k)).map(([, f]) => f),
    ...[...fromOnly.deletes].filter(([k]) => !toOnly.deletes.has(k)).map(([, f]) => f),
  ];
  const deletesAt = (only: LiveSet) => new DeleteIndex(md, [...commonLive.deletes.values(), ...only.deletes.values()]);
  const atTo = deletesAt(toOnly);
  const atFrom = deletesAt(fromOnly);

  // Data files live at both ends that a changed delete file applies to.
  const changed: LiveFile[] = [];
  if (deletesAddedOrRemoved.length > 0) {
    const both: LiveSet = { data: new Map(), deletes: new Map() };
    // Only manifests that may hold a partition a changed delete applies to (all for a global equality delete).
    const global = deletesAddedOrRemoved.some((d) => d.fc.entry.dataFile.content === 2 && specById(md, d.fc.manifest.partitionSpecId).fields.length === 0);
    const bound = new Map<number, BoundPartitionField[]>();
    const bind = (specId: number) => {
      let b = bound.get(specId);
      if (!b) bound.set(specId, (b = bindSpec(md, specById(md, specId))));
      return b;
    };
    const mayHold = (mf: ManifestFile) => global || deletesAddedOrRemoved.some((d) =>
      d.fc.manifest.partitionSpecId === mf.partitionSpecId && mayHoldPartition(bind(mf.partitionSpecId), mf.partitions, d.fc.entry.dataFile.partition));
    await readLive(reader, common.filter((m) => m.content === 0 && mayHold(m)), both, `snapshots ${range.from} and ${range.to}`);
    for (const [k, f] of toOnly.data) if (fromOnly.data.has(k)) both.data.set(k, f);
    const index = new DeleteIndex(md, deletesAddedOrRemoved);
    for (const f of both.data.values()) if (index.applying(f).length > 0) changed.push(f);
  }

  const xFiles = [...added, ...changed];
  const yFiles = [...removed, ...changed];
  // Every data file to read, numbered (k), with the deletes that apply to it at its end; the
  // `to` side (x) first, so that its carry-over row ids are known when the `from` side is read.
  const work = [
    ...xFiles.map((f) => ({ side: 'x' as const, f, dels: atTo.applying(f) })),
    ...yFiles.map((f) => ({ side: 'y' as const, f, dels: atFrom.applying(f) })),
  ].map((w, i) => ({ ...w, k: i + 1 }));
  const plan: NetRowPlan = {
    from: range.from, to: range.to, schema,
    readAtTo: xFiles.length, readAtFrom: yFiles.length, readAtBoth: changed.length,
    rowsToRead: [...xFiles, ...yFiles].reduce((n, f) => n + f.fc.entry.dataFile.recordCount, 0n),
    deleteRowsToRead: [...new Map(work.flatMap((w) => w.dels)
      .filter((d) => d.fc.entry.dataFile.fileFormat.toUpperCase() !== 'PUFFIN')
      .map((d) => [changeKey(d.fc), d.fc.entry.dataFile.recordCount] as const)).values()].reduce((n, c) => n + c, 0n),
    manifestsRead: reader.manifestsRead,
  };
  const maxRows = opts.maxRows ?? DEFAULT_MAX_ROWS;
  const rowsInAll = plan.rowsToRead + plan.deleteRowsToRead;
  if (rowsInAll > maxRows) {
    const deletes = plan.deleteRowsToRead > 0n ? ` and ${plan.deleteRowsToRead} rows of delete files` : '';
    throw new IpsError('ROW_BUDGET_EXCEEDED', `row-level changes of (${range.from ?? 'start'}, ${range.to}] need to read ${plan.rowsToRead} rows in ${xFiles.length + yFiles.length} data files${deletes}, above the budget of ${maxRows}; raise it with --max-rows (or IPS_ROWS_MAX_ROWS), or split the range`, { details: { rows: rowsInAll.toString(), max_rows: maxRows.toString() } });
  }
  progress(`rows: (${range.from ?? 'start'}, ${range.to}]: reading ${xFiles.length} data file(s) at ${range.to} and ${yFiles.length} at ${range.from ?? 'start'} (${plan.rowsToRead} rows before deletes; ${changed.length} file(s) whose deletes changed)`);

  // Every file this answer reads must exist: never a partial answer.
  const toRead = new Map<string, string>();
  for (const { f, dels } of work) {
    const df = f.fc.entry.dataFile;
    if (df.fileFormat.toUpperCase() !== 'PARQUET') throw new IpsError('UNSUPPORTED_FILE_FORMAT', `data file ${df.filePath} is ${df.fileFormat}: row-level changes read Parquet data files only`);
    toRead.set(df.filePath, 'data file');
    for (const d of dels) {
      const dd = d.fc.entry.dataFile;
      const fmt = dd.fileFormat.toUpperCase();
      const ok = dd.content === 1 ? fmt === 'PARQUET' || (fmt === 'PUFFIN' && dd.contentOffset !== null && dd.contentSizeInBytes !== null) : fmt === 'PARQUET';
      if (!ok) throw new IpsError('UNSUPPORTED_DELETE_FORMAT', `delete file ${dd.filePath} (${['data', 'position deletes', 'equality deletes'][dd.content] ?? `content ${dd.content}`}, ${dd.fileFormat}) applies to ${df.filePath}, and row-level changes read Parquet position and equality deletes and Puffin deletion vectors only`);
      toRead.set(dd.filePath, dd.content === 2 ? 'equality delete file' : fmt === 'PUFFIN' ? 'deletion vector file' : 'position delete file');
      if (dd.content === 2) {
        for (const id of dd.equalityIds ?? []) {
          if (!byId.has(id)) throw new IpsError('UNSUPPORTED', `equality delete file ${dd.filePath} compares field ${id}, which is not a column of schema ${schema.schemaId}; row-level changes cannot apply it`);
        }
        if (!dd.equalityIds || dd.equalityIds.length === 0) throw new IpsError('INVALID_METADATA', `equality delete file ${dd.filePath} lists no equality field ids`);
      }
    }
  }
  const missing: string[] = [];
  for (const [loc, kind] of toRead) if (!(await io.exists(loc))) missing.push(`${kind} ${loc}`);
  if (missing.length > 0) {
    throw new IpsError('FILES_MISSING', `${missing.length} file(s) needed for the row-level changes no longer exist (expired snapshots or orphan-file removal), e.g. ${missing[0]}; raise the source's snapshot retention, or pick a newer --from`, { details: { missing } });
  }

  // Row lineage: a v3 table whose every file read has a first_row_id (files of a table upgraded
  // from v2 may have none: "no lineage"). Without it, pairing by row id is impossible.
  let pairing = opts.pairing ?? { kind: 'none' };
  const lineage = md.formatVersion >= 3 && [...xFiles, ...yFiles].every((f) => f.fc.entry.dataFile.firstRowId !== null);
  if (pairing.kind === 'row-id' && !lineage && pairing.orNone) {
    if (md.formatVersion >= 3) note(`rows: (${range.from ?? 'start'}, ${range.to}]: some data files carry no first_row_id (written before an upgrade to v3), so updates are not paired by _row_id: they show as DELETE and INSERT`);
    pairing = { kind: 'none' };
  }
  if (pairing.kind === 'row-id' && !lineage) {
    throw new IpsError('NO_ROW_LINEAGE', `(${range.from ?? 'start'}, ${range.to}]: ${md.formatVersion < 3 ? `the table is format v${md.formatVersion}` : 'some data files carry no first_row_id (written before an upgrade to v3)'}, so rows have no _row_id to pair updates by; pair by --identifier-columns, or not at all`);
  }
  const fromSeq = fromSnap ? fromSnap.sequenceNumber : -1n;
  const pairCols = pairing.kind === 'columns' ? pairing.columns.map((name) => {
    const c = columns.find((x) => x.field.name === name);
    if (!c) throw new IpsError('INVALID_ARGUMENT', `identifier column ${name} is not a top-level column of schema ${schema.schemaId} (columns: ${columns.map((x) => x.field.name).join(', ')})`);
    return c;
  }) : [];

  // The budget above counted the rows the manifests say the files hold: the files must hold
  // exactly those (the spec's record_count), or a lying entry would make the engine read
  // without bound. Checked from the footers before any file is read.
  const parquet = work.flatMap((w) => [w.f, ...w.dels])
    .map((x) => x.fc.entry.dataFile).filter((df) => df.fileFormat.toUpperCase() === 'PARQUET');
  await checkRecordCounts(io, [...new Map(parquet.map((df) => [df.filePath, df] as const)).values()]);
  const scratch = opts.scratchDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-'));
  const engine = await SqlEngine.open({ io, scratchDir: scratch, threads: opts.threads ?? 2, memoryLimit: opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT, preserveInsertionOrder: false });
  const tick = ticker(progress);
  try {
    const colList = columns.map((c) => col(c.id)).join(', ');
    const lineageFields = lineage ? [{ id: ROW_ID_ID, type: 'BIGINT' }, { id: LAST_UPDATED_SEQ_ID, type: 'BIGINT' }] : [];
    const dataSchema = schemaMap([...columns, ...lineageFields]);
    await engine.run(`CREATE TEMP TABLE __pos (k INTEGER, pos BIGINT)`);
    // Position delete files: each read once, its positions routed to every data file it names.
    const posTargets = new Map<string, { file: LiveFile; targets: { k: number; path: string }[] }>();
    for (const w of work) {
      for (const d of w.dels) {
        const dd = d.fc.entry.dataFile;
        if (dd.content !== 1 || dd.fileFormat.toUpperCase() === 'PUFFIN') continue;
        const key = changeKey(d.fc);
        let e = posTargets.get(key);
        if (!e) posTargets.set(key, (e = { file: d, targets: [] }));
        e.targets.push({ k: w.k, path: w.f.fc.entry.dataFile.filePath });
      }
    }
    for (const { file, targets } of posTargets.values()) {
      const local = await localFile(engine, io, file.fc.entry.dataFile.filePath);
      const values = targets.map((t) => `(${t.k}, ${sqlString(t.path)})`).join(', ');
      await engine.run(
        `INSERT INTO __pos SELECT m.k, p.pos FROM read_parquet(${sqlString(local)}, hive_partitioning = false, schema = MAP {${POS_FILE_PATH_ID}: {name: 'file_path', type: 'VARCHAR', default_value: NULL}, ${POS_POS_ID}: {name: 'pos', type: 'BIGINT', default_value: NULL}}) p ` +
        `JOIN (VALUES ${values}) m(k, path) ON p.file_path = m.path`);
      engine.release(file.fc.entry.dataFile.filePath);
      tick(() => `rows: reading position deletes (${posTargets.size} file(s))`);
    }
    // Equality delete files: each loaded once into a table of its equality columns.
    const eqTables = new Map<string, string>();
    for (const w of work) {
      for (const d of w.dels) {
        const dd = d.fc.entry.dataFile;
        const key = changeKey(d.fc);
        if (dd.content !== 2 || eqTables.has(key)) continue;
        const name = `__eq${eqTables.size}`;
        const local = await localFile(engine, io, dd.filePath);
        await engine.run(`CREATE TEMP TABLE ${name} AS SELECT DISTINCT * FROM read_parquet(${sqlString(local)}, hive_partitioning = false, schema = ${schemaMap(dd.equalityIds!.map((id) => byId.get(id)!))})`);
        engine.release(dd.filePath);
        eqTables.set(key, name);
      }
    }
    const dvBlobs = await readDeletionVectorBlobs(io, work.flatMap((w) => w.dels
      .filter((d) => d.fc.entry.dataFile.content === 1 && d.fc.entry.dataFile.fileFormat.toUpperCase() === 'PUFFIN')
      .map((d) => ({ key: changeKey(d.fc), vector: d.fc.entry.dataFile, data: w.f.fc.entry.dataFile }))));
    let done = 0;
    const total = work.length;
    const rid = lineage ? ', NULL::BIGINT AS _rid' : '';
    for (const side of ['x', 'y']) {
      await engine.run(`CREATE TEMP TABLE ${side} AS SELECT ${columns.map((c) => `NULL::${c.type} AS ${col(c.id)}`).join(', ')}${rid} WHERE false`);
    }
    // Row ids of carry-over rows at `to` (unchanged since `from`).
    if (lineage) await engine.run('CREATE TEMP TABLE __same (_rid BIGINT)');
    // A data file is staged (S3) for its reads and freed after its last, so the scratch disk
    // never holds the whole range's files. Without lineage a file read at both ends has its two
    // reads back to back (they are independent): one file staged at a time. With lineage every
    // `to` read must come first, and such files wait staged for their `from` read.
    const readsLeft = new Map<string, number>();
    for (const w of work) readsLeft.set(w.f.fc.entry.dataFile.filePath, (readsLeft.get(w.f.fc.entry.dataFile.filePath) ?? 0) + 1);
    let order = work;
    if (!lineage) {
      const fromReads = new Map(work.filter((w) => w.side === 'y').map((w) => [w.f.fc.entry.dataFile.filePath, w] as const));
      order = work.filter((w) => w.side === 'x').flatMap((w) => {
        const y = fromReads.get(w.f.fc.entry.dataFile.filePath);
        fromReads.delete(w.f.fc.entry.dataFile.filePath);
        return y ? [w, y] : [w];
      });
      order.push(...fromReads.values());
    }
    for (const { side, f, k, dels } of order) {
      const df = f.fc.entry.dataFile;
      // Deletion vectors: decoded here.
      for (const d of dels) {
        const dd = d.fc.entry.dataFile;
        if (dd.content !== 1 || dd.fileFormat.toUpperCase() !== 'PUFFIN') continue;
        const blob = dvBlobs.get(changeKey(d.fc))!;
        // Decoded a container at a time and inserted in batches: never the whole vector in memory.
        // The decoder holds it to the data file's rows and its own record count (the row budget
        // above bounds those), whatever the blob claims.
        let batch: number[] = [];
        const flush = async () => {
          if (batch.length) await engine.run(`INSERT INTO __pos SELECT ${k}, unnest([${batch.join(',')}]::BIGINT[])`);
          batch = [];
        };
        const bounds = { rowCount: df.recordCount, cardinality: dd.recordCount };
        for (const chunk of deletionVectorChunks(blob, `${dd.filePath} at offset ${dd.contentOffset}`, bounds)) {
          for (const p of chunk) batch.push(p);
          if (batch.length >= 50_000) await flush();
        }
        await flush();
      }
      const eq = dels.filter((d) => d.fc.entry.dataFile.content === 2).map((d) => {
        const ids = d.fc.entry.dataFile.equalityIds!;
        return ` AND NOT EXISTS (SELECT 1 FROM ${eqTables.get(changeKey(d.fc))!} e WHERE ${ids.map((id) => `e.${col(id)} IS NOT DISTINCT FROM t.${col(id)}`).join(' AND ')})`;
      });
      const local = await localFile(engine, io, df.filePath);
      const live = `FROM read_parquet(${sqlString(local)}, hive_partitioning = false, file_row_number = true, schema = ${dataSchema}) t ` +
        `WHERE t.file_row_number NOT IN (SELECT pos FROM __pos WHERE k = ${k})${eq.join('')}`;
      const cols = columns.map((c) => `t.${col(c.id)}`).join(', ');
      if (!lineage) {
        await engine.run(`INSERT INTO ${side} SELECT ${cols} ${live}`);
      } else {
        // Spec: a null _row_id is the file's first_row_id plus the position; a null
        // _last_updated_sequence_number is the file's data sequence number.
        const ridExpr = `coalesce(t.${col(ROW_ID_ID)}, ${df.firstRowId!}::BIGINT + t.file_row_number)`;
        const lusExpr = `coalesce(t.${col(LAST_UPDATED_SEQ_ID)}, ${f.seq}::BIGINT)`;
        if (side === 'x') {
          await engine.run(`INSERT INTO x SELECT ${cols}, ${ridExpr} ${live} AND ${lusExpr} > ${fromSeq}`);
          await engine.run(`INSERT INTO __same SELECT ${ridExpr} ${live} AND ${lusExpr} <= ${fromSeq}`);
        } else {
          await engine.run(`INSERT INTO y SELECT ${cols}, ${ridExpr} ${live} AND NOT EXISTS (SELECT 1 FROM __same s WHERE s._rid = ${ridExpr})`);
        }
      }
      await engine.run(`DELETE FROM __pos WHERE k = ${k}`);
      const left = readsLeft.get(df.filePath)! - 1;
      readsLeft.set(df.filePath, left);
      if (left === 0) engine.release(df.filePath);
      done++;
      tick(() => `rows: read ${done}/${total} data files`);
    }
    if (lineage) {
      const [same] = await engine.all<{ n: string }>('SELECT count(*)::VARCHAR AS n FROM __same');
      progress(`rows: row lineage (v3): ${same?.n ?? 0} carry-over row(s) at ${range.to} unchanged since ${range.from ?? 'start'} skipped by _last_updated_sequence_number`);
    }

    // The answer: DELETE-side rows (d) and INSERT-side rows (i), tagged by the pairing.
    let dTable: string;
    let iTable: string;
    let dKind = `'DELETE'`;
    let iKind = `'INSERT'`;
    if (pairing.kind === 'row-id') {
      // By lineage: what is left at `to` changed in the range; at `from`, what is not carried over.
      dTable = 'y';
      iTable = 'x';
      await engine.run('CREATE TEMP TABLE __xr AS SELECT DISTINCT _rid FROM x');
      await engine.run('CREATE TEMP TABLE __yr AS SELECT DISTINCT _rid FROM y');
      dKind = `CASE WHEN _rid IN (SELECT _rid FROM __xr) THEN 'UPDATE_BEFORE' ELSE 'DELETE' END`;
      iKind = `CASE WHEN _rid IN (SELECT _rid FROM __yr) THEN 'UPDATE_AFTER' ELSE 'INSERT' END`;
    } else {
      await engine.run(`CREATE TEMP TABLE __d AS SELECT ${colList} FROM y EXCEPT ALL SELECT ${colList} FROM x`);
      await engine.run(`CREATE TEMP TABLE __i AS SELECT ${colList} FROM x EXCEPT ALL SELECT ${colList} FROM y`);
      dTable = '__d';
      iTable = '__i';
      if (pairing.kind === 'columns') {
        const keys = pairCols.map((c) => col(c.id)).join(', ');
        const amb = await engine.all<Record<string, string | null>>(
          `SELECT ${pairCols.map((c) => selectExpr(col(c.id), c.prim)).join(', ')}, nd::VARCHAR AS nd, ni::VARCHAR AS ni FROM (` +
          `SELECT ${keys}, sum(d) AS nd, sum(i) AS ni FROM (SELECT ${keys}, 1 AS d, 0 AS i FROM __d UNION ALL SELECT ${keys}, 0, 1 FROM __i) GROUP BY ${keys} HAVING sum(d) > 1 OR sum(i) > 1 LIMIT 1)`);
        if (amb.length > 0) {
          const a = amb[0]!;
          const key = JSON.stringify(pairCols.map((c) => renderValue(c.prim, a[col(c.id)] ?? null)));
          throw new IpsError('UPDATE_AMBIGUOUS', `snapshot ${range.to} deletes ${a['nd']} and inserts ${a['ni']} rows with the same identifier (${pairing.columns.join(', ')}) = ${key}, so they cannot be paired into updates; choose identifier columns that are unique, or leave out --identifier-columns`);
        }
        const match = (a: string, b: string) => pairCols.map((c) => `${a}.${col(c.id)} IS NOT DISTINCT FROM ${b}.${col(c.id)}`).join(' AND ');
        dKind = `CASE WHEN EXISTS (SELECT 1 FROM __i o WHERE ${match('o', '__d')}) THEN 'UPDATE_BEFORE' ELSE 'DELETE' END`;
        iKind = `CASE WHEN EXISTS (SELECT 1 FROM __d o WHERE ${match('o', '__i')}) THEN 'UPDATE_AFTER' ELSE 'INSERT' END`;
      }
    }
    const commit = range.to.toString();
    const ordinal = opts.ordinal ?? 0;
    let inserts = 0;
    let deletes = 0;
    let updates = 0;
    // The answer leaves the engine one of three ways: written by it as Parquet, or streamed a
    // chunk at a time as typed columns (never whole in JavaScript) to `nativeOut` or to `emit`.
    // Fixed-width and binary columns come as the engine's bytes (SqlEngine.streamChunks).
    const streamAnswer = async (exprOf: (column: string, t: PrimitiveType) => string, onChunk: (values: (unknown[] | FixedColumn | BytesColumn)[], kinds: string[], n: number) => void) => {
      const select = columns.map((c) => exprOf(col(c.id), c.prim)).join(', ');
      for (const [table, kind, isDelete] of [[dTable, dKind, true], [iTable, iKind, false]] as const) {
        for await (const chunk of engine.streamChunks(`SELECT ${select}, ${kind} AS __kind FROM ${table}`)) {
          const kinds = chunk.columns[columns.length] as unknown as string[];
          if (!isDelete) for (const k of kinds) if (k === 'UPDATE_AFTER') updates++;
          onChunk(chunk.columns, kinds, chunk.rowCount);
          if (isDelete) deletes += chunk.rowCount;
          else inserts += chunk.rowCount;
          tick(() => `rows: ${deletes + inserts} row(s) written`);
        }
      }
    };
    if (opts.parquetOut) {
      const out = opts.parquetOut;
      const [n] = await engine.all<{ d: string; i: string; u: string }>(
        `SELECT (SELECT count(*) FROM ${dTable})::VARCHAR AS d, (SELECT count(*) FROM ${iTable})::VARCHAR AS i, ` +
        (pairing.kind === 'none' ? `'0' AS u` : `(SELECT count(*) FROM ${iTable} WHERE ${iKind} = 'UPDATE_AFTER')::VARCHAR AS u`));
      deletes = Number(n!.d);
      inserts = Number(n!.i);
      updates = Number(n!.u);
      const typed = columns.map((c) => `${col(c.id)} AS ${sqlIdent(c.field.name)}`).join(', ');
      const tail = (kind: string) => `${kind} AS _change_type, ${ordinal}::INTEGER AS _change_ordinal, ${commit}::BIGINT AS _commit_snapshot_id`;
      const ids = [
        ...columns.map((c) => `${sqlIdent(c.field.name)}: ${c.id}`),
        `_change_type: ${out.changelogIds._change_type}`, `_change_ordinal: ${out.changelogIds._change_ordinal}`, `_commit_snapshot_id: ${out.changelogIds._commit_snapshot_id}`,
      ].join(', ');
      await engine.run(`COPY (SELECT ${typed}, ${tail(dKind)} FROM ${dTable} UNION ALL SELECT ${typed}, ${tail(iKind)} FROM ${iTable}) ` +
        `TO ${sqlString(out.path)} (FORMAT PARQUET, FIELD_IDS {${ids}}, COMPRESSION ZSTD)`);
    } else if (opts.nativeOut) {
      const nativeOut = opts.nativeOut;
      const changeTypes = changeTypeColumn();
      const commitId = BigInt(commit);
      await streamAnswer(nativeExpr, (values, kinds, n) => {
        const types = changeTypes(kinds);
        nativeOut({
          columns: [...columns.map((c, i) => nativeColumn(c.prim, values[i]!)), types, constantColumn('INTEGER', n, ordinal), constantColumn('BIGINT', n, commitId)],
          rowCount: n,
        });
      });
    } else {
      await streamAnswer(jsonExpr, (values, kinds, n) => {
        const json = columns.map((c, i) => jsonValues(c.prim, values[i]!));
        for (let r = 0; r < n; r++) {
          const row: RowChange = {};
          for (let i = 0; i < columns.length; i++) row[columns[i]!.field.name] = json[i]![r]!;
          row['_change_type'] = kinds[r]!;
          row['_change_ordinal'] = ordinal;
          row['_commit_snapshot_id'] = commit;
          emit(row);
        }
      });
    }
    progress(`rows: ${inserts} inserted, ${deletes} deleted${updates ? ` (${updates} update pair(s))` : ''}`);
    return { plan, inserts, deletes, updates, lineage, notes };
  } catch (e) {
    if (e instanceof IpsError) throw e;
    throw new IpsError('ROWS_FAILED', `row-level changes failed: ${describeError(e)}`, { cause: e });
  } finally {
    engine.close();
    if (!opts.scratchDir) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** A progress reporter that speaks at most every few seconds (long work shows it is alive). */
function ticker(progress: (line: string) => void, everyMs = 5000): (line: () => string) => void {
  let last = Date.now();
  return (line) => {
    const now = Date.now();
    if (now - last >= everyMs) {
      last = now;
      progress(line());
    }
  };
}

/**
 * Every file's row count in its Parquet footer must be the record_count its manifest entry
 * gives, and the footer must end where its file_size_in_bytes says (INVALID_MANIFEST otherwise).
 */
async function checkRecordCounts(io: FileIO, files: DataFile[]): Promise<void> {
  // Footers by range (two small reads at most), a few at a time: nothing is staged for this.
  const limit = pLimit(8);
  await Promise.all(files.map((f) => limit(async () => {
    const n = await parquetFooterRowCount(io, f);
    if (n !== f.recordCount) {
      throw new IpsError('INVALID_MANIFEST', `${f.filePath} holds ${n} rows and its manifest entry says ${f.recordCount}: the table's metadata does not describe its files`, { details: { file: f.filePath, record_count: f.recordCount.toString(), rows: n.toString() } });
    }
  })));
}

/** A local path DuckDB can read for a table file: relocations and mappings applied, S3 objects staged. */
function localFile(engine: SqlEngine, io: FileIO, loc: string): Promise<string> {
  const resolved = io.resolve?.(loc) ?? loc;
  const isLocal = resolved.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:\/\//i.test(resolved);
  return engine.localCopy(isLocal ? resolved : loc);
}

/**
 * The blobs of these deletion vectors, by key, read by range: a Puffin file holds many (one per
 * data file a DELETE touched), and the answer needs only some. Blobs of one file that lie close
 * together (Spark writes a commit's vectors side by side) are read in one request. Offsets and
 * sizes come from manifests, so a size no valid vector of its data file can have is refused
 * before anything is read, and a blob past the end of its file is CORRUPT_FILE.
 */
async function readDeletionVectorBlobs(io: FileIO, vectors: { key: string; vector: DataFile; data: DataFile }[]): Promise<Map<string, Buffer>> {
  const byFile = new Map<string, { key: string; offset: number; size: number }[]>();
  const seen = new Set<string>();
  for (const { key, vector, data } of vectors) {
    if (seen.has(key)) continue;
    seen.add(key);
    const off = Number(vector.contentOffset!);
    const size = Number(vector.contentSizeInBytes!);
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(size) || off < 0 || size < 0) {
      throw new IpsError('CORRUPT_FILE', `deletion vector at offset ${vector.contentOffset} (${vector.contentSizeInBytes} bytes) lies outside ${vector.filePath}`);
    }
    const max = maxDeletionVectorBytes(data.recordCount);
    if (BigInt(size) > max) {
      throw new IpsError('CORRUPT_FILE', `deletion vector at offset ${off} of ${vector.filePath} is ${size} bytes, more than any deletion vector of a data file of ${data.recordCount} rows can take (${max})`);
    }
    let list = byFile.get(vector.filePath);
    if (!list) byFile.set(vector.filePath, (list = []));
    list.push({ key, offset: off, size });
  }
  // Spark writes a commit's vectors side by side: neighbours share a request of up to 8 MiB, and
  // never one over the read limit that each blob alone meets.
  const maxSpan = Math.min(8 * 1024 * 1024, (io.limits ?? currentReadLimits()).dataBytes);
  const blobs = new Map<string, Buffer>();
  for (const [file, list] of byFile) {
    for (const read of groupRangeReads(list, 64 * 1024, maxSpan)) {
      let buf: Buffer;
      try {
        buf = await readRange(io, file, read.offset, read.size, 'data');
      } catch (e) {
        if (isIpsError(e) && e.code !== 'FILE_NOT_FOUND') throw e;
        throw new IpsError('FILES_MISSING', `cannot read ${file}: ${describeError(e)}`, { cause: e });
      }
      for (const { key, offset, size } of read.ranges) {
        if (offset + size > read.offset + buf.length) throw new IpsError('CORRUPT_FILE', `deletion vector at offset ${offset} (${size} bytes) lies outside ${file}, which ends before byte ${offset + size}`);
        blobs.set(key, buf.subarray(offset - read.offset, offset - read.offset + size));
      }
    }
  }
  return blobs;
}
