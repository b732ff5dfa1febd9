import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IpsError } from '../errors.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import type { SnapshotRange } from '../capture/range.js';
import { schemaById, snapshotById, type TableMetadata } from '../iceberg/metadata.js';
import type { Schema } from '../iceberg/types.js';
import type { FileIO } from '../io/file-io.js';
import { arrowToFd, CHANGELOG_FIELD_IDS } from './arrow.js';
import { rowChangelog, type PairBy } from './changelog.js';
import { netRowChanges, type ChangelogFieldIds, type RowChange } from './net-rows.js';
import type { NativeBatch } from './native.js';
import { concatParquet, jsonlToParquet, rowChangeParquetColumns } from './parquet.js';

export const ROW_FORMATS = ['jsonl', 'arrow', 'parquet'] as const;
export type RowFormat = (typeof ROW_FORMATS)[number];

export interface RowQuery {
  io: FileIO;
  md: TableMetadata;
  reader: ManifestReader;
  range: SnapshotRange;
  /** The net change of the range (one ordinal) instead of the changelog per snapshot. */
  net: boolean;
  identifierColumns?: string[];
  /** How updates are paired per snapshot (default auto: identifier fields, else v3 _row_id). */
  pairBy?: PairBy;
  maxRows?: bigint;
  /** The embedded engine's memory budget (e.g. `512MB`); larger work spills. */
  memoryLimit?: string;
  progress?: (line: string) => void;
  /** How the answer was computed when it matters (a schema change, the pairing). */
  note?: (line: string) => void;
}

/** The schema row changes of a range are in: the `to` snapshot's. */
export function rowSchema(md: TableMetadata, range: SnapshotRange): Schema {
  const s = snapshotById(md, range.to);
  if (!s) throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${range.to} is not in the table metadata`);
  return schemaById(md, s.schemaId);
}

function engineOptions(q: RowQuery) {
  return {
    ...(q.maxRows !== undefined ? { maxRows: q.maxRows } : {}),
    ...(q.memoryLimit !== undefined ? { memoryLimit: q.memoryLimit } : {}),
    ...(q.progress ? { progress: q.progress } : {}),
    ...(q.note ? { note: q.note } : {}),
  };
}

function changelogOptions(q: RowQuery) {
  return { ...engineOptions(q), identifierColumns: q.identifierColumns ?? [], ...(q.pairBy ? { pairBy: q.pairBy } : {}), ...(q.progress ? { warn: q.progress } : {}) };
}

/** Runs the row computation, each row to `emit`. */
export async function computeRows(q: RowQuery, emit: (row: RowChange) => void): Promise<number> {
  if (q.net) {
    const r = await netRowChanges(q.io, q.md, q.reader, q.range, emit, engineOptions(q));
    return r.inserts + r.deletes;
  }
  return (await rowChangelog(q.io, q.md, q.reader, q.range, emit, changelogOptions(q))).rows;
}

/** JSON lines into a file descriptor, a few hundred rows a write. */
function jsonlToFd(fd: number): { push: (row: RowChange) => void; finish: () => void } {
  let buf: string[] = [];
  const flush = () => {
    if (buf.length === 0) return;
    fs.writeSync(fd, buf.join(''));
    buf = [];
  };
  return {
    push: (row) => {
      // Row values are JSON values already (64-bit integers and decimals as strings), so
      // JSON.stringify is exact, and several times faster than the lossless writer.
      buf.push(JSON.stringify(row) + '\n');
      if (buf.length >= 512) flush();
    },
    finish: flush,
  };
}

/**
 * Writes the row changes of a range to the local file `target` in `format`, whole or not at
 * all: the rows go to `<target>.<pid>.part` beside it (Parquet: spooled as JSON lines in a
 * scratch directory first), renamed to `target` only once complete; on failure nothing is left.
 * Memory is one record batch (Arrow) or a few hundred lines (JSON lines), whatever the rows.
 */
export async function writeRowsFile(q: RowQuery, format: RowFormat, target: string, changelogIds?: ChangelogFieldIds): Promise<{ rows: number }> {
  if (format === 'parquet') return writeRowsParquet(q, target, changelogIds ?? CHANGELOG_FIELD_IDS);
  if (format === 'arrow' && changelogIds === undefined) return writeRowsArrow(q, target);
  return writeRowsFileFrom(q.io, rowSchema(q.md, q.range), (emit) => computeRows(q, emit), format, target, changelogIds);
}

/** Arrow from the engine's typed columns (native values): nothing rendered as text and parsed back. */
function writeRowsArrow(q: RowQuery, target: string): Promise<{ rows: number }> {
  return writeArrowFrom(rowSchema(q.md, q.range), async (nativeOut) => {
    if (q.net) {
      const r = await netRowChanges(q.io, q.md, q.reader, q.range, () => {}, { ...engineOptions(q), nativeOut });
      return r.inserts + r.deletes;
    }
    return (await rowChangelog(q.io, q.md, q.reader, q.range, () => {}, { ...changelogOptions(q), nativeOut })).rows;
  }, target);
}

/** An Arrow file of row changes over `schema` from any producer of typed column chunks (a changelog table already written, say), whole or not at all. */
export async function writeArrowFrom(schema: Schema, produce: (out: (batch: NativeBatch) => void) => Promise<number>, target: string): Promise<{ rows: number }> {
  const part = `${target}.${process.pid}.part`;
  try {
    const fd = fs.openSync(part, 'w');
    let rows: number;
    try {
      const w = arrowToFd(schema, fd);
      rows = await produce((b) => w.pushColumns(b));
      w.finish();
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(part, target);
    return { rows };
  } finally {
    fs.rmSync(part, { force: true });
  }
}

/**
 * Parquet straight from the engines that computed the rows: no value is rendered to JSON and
 * parsed back. The net change is one answer, written by one COPY; the changelog is one answer per
 * snapshot, each written as a part, then concatenated in order.
 */
async function writeRowsParquet(q: RowQuery, target: string, changelogIds: ChangelogFieldIds): Promise<{ rows: number }> {
  const part = `${target}.${process.pid}.part`;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-out-'));
  try {
    let rows: number;
    if (q.net) {
      const r = await netRowChanges(q.io, q.md, q.reader, q.range, () => {}, { ...engineOptions(q), parquetOut: { path: part, changelogIds } });
      rows = r.inserts + r.deletes;
    } else {
      const r = await rowChangelog(q.io, q.md, q.reader, q.range, () => {}, {
        ...changelogOptions(q), parquetParts: { part: (ordinal) => path.join(scratch, `part-${ordinal}.parquet`), changelogIds },
      });
      rows = r.rows;
      if (r.parquetParts.length === 0) {
        // Only compactions in the range: no snapshot has an ordinal, and the file has no rows.
        return await writeRowsFileFrom(q.io, rowSchema(q.md, q.range), async () => 0, 'parquet', target, changelogIds);
      }
      if (r.parquetParts.length === 1) fs.renameSync(r.parquetParts[0]!, part);
      else await concatParquet({ io: q.io, scratchDir: scratch, parts: r.parquetParts, target: part, columns: rowChangeParquetColumns(rowSchema(q.md, q.range), changelogIds) });
    }
    fs.renameSync(part, target);
    return { rows };
  } finally {
    fs.rmSync(part, { force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** writeRowsFile for any producer of rows over `schema`. */
async function writeRowsFileFrom(
  io: FileIO, schema: Schema, produce: (emit: (row: RowChange) => void) => Promise<number>, format: RowFormat, target: string,
  changelogIds?: Parameters<typeof rowChangeParquetColumns>[1],
): Promise<{ rows: number }> {
  const part = `${target}.${process.pid}.part`;
  const scratch = format === 'parquet' ? fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-out-')) : null;
  const spool = scratch ? path.join(scratch, 'rows.jsonl') : part;
  try {
    const fd = fs.openSync(spool, 'w');
    let rows: number;
    try {
      const w = format === 'arrow' ? arrowToFd(schema, fd) : jsonlToFd(fd);
      rows = await produce((r) => w.push(r));
      w.finish();
    } finally {
      fs.closeSync(fd);
    }
    if (scratch) {
      await jsonlToParquet({ io, scratchDir: scratch, jsonl: spool, target: part, columns: rowChangeParquetColumns(schema, changelogIds) });
    }
    fs.renameSync(part, target);
    return { rows };
  } finally {
    fs.rmSync(part, { force: true });
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}
