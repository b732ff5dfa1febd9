import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeIcdcSnapshot, type IcdcWriteResult } from '../capture/icdc-table.js';
import { stringifyJsonLossless } from '../iceberg/json.js';
import { EntryStatus } from '../iceberg/manifest.js';
import { parseTableMetadata, type TableMetadata } from '../iceberg/metadata.js';
import { dataFileFromParquet } from '../iceberg/parquet-metrics.js';
import { typeToString } from '../iceberg/types.js';
import { joinLocation } from '../io/file-io.js';
import type { FileChange } from '../capture/snapshot-changes.js';
import { readMetadataFile } from '../catalog/table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { SqlEngine, sqlString } from '../engine/duckdb.js';
import { snapshotById, schemaById } from '../iceberg/metadata.js';
import type { DataFile } from '../iceberg/manifest.js';
import type { NestedField, PrimitiveType, Schema } from '../iceberg/types.js';
import type { FileIO } from '../io/file-io.js';
import { changeTypeColumn, nativeColumn, nativeExpr, type NativeBatch } from './native.js';
import { readType } from './net-rows.js';
import { rowSchema, writeRowsFile, type RowQuery } from './output.js';

/**
 * A batch's row changelog as an Iceberg table beside its ICDC table (`<icdc name>__changelog`):
 * one snapshot per batch holding exactly that batch's rows (as the ICDC table holds exactly its
 * files), in Parquet files ips writes with the Iceberg field ids and full metrics computed from
 * their footers. The schema is the source's columns (same ids) and `_change_type`,
 * `_change_ordinal`, `_commit_snapshot_id` with the next free ids.
 *
 * Crash safety: the data files are written first and the snapshot is committed by one
 * compare-and-set of the metadata pointer (writeIcdcSnapshot), before the batch is stored; a
 * crash in between leaves unreferenced files, never a visible half table.
 */
export function changelogTableName(icdcName: string): string {
  return `${icdcName}__changelog`;
}

/** Metadata describing the changelog table's schema (the writer's "source"): unpartitioned, full metrics. */
function changelogMetadata(source: TableMetadata, schemaId: number, location: string): TableMetadata {
  const schema = source.schemas.find((s) => s.schemaId === schemaId)!;
  const next = source.lastColumnId;
  const fields = [
    ...schema.struct.fields.map((f) => ({ id: f.id, name: f.name, required: f.required, type: typeToString(f.type) })),
    { id: next + 1, name: '_change_type', required: true, type: 'string' },
    { id: next + 2, name: '_change_ordinal', required: true, type: 'int' },
    { id: next + 3, name: '_commit_snapshot_id', required: true, type: 'long' },
  ];
  const json = {
    'format-version': 2,
    'table-uuid': source.tableUuid ?? crypto.randomUUID(),
    location,
    'last-sequence-number': 0,
    'last-updated-ms': Date.now(),
    'last-column-id': next + 3,
    'current-schema-id': 0,
    schemas: [{ type: 'struct', 'schema-id': 0, fields }],
    'default-spec-id': 0,
    'partition-specs': [{ 'spec-id': 0, fields: [] }],
    'last-partition-id': 999,
    'default-sort-order-id': 0,
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    properties: { 'write.metadata.metrics.default': 'full' },
    'current-snapshot-id': -1,
    refs: {},
    snapshots: [],
    'snapshot-log': [],
    'metadata-log': [],
  };
  return parseTableMetadata(stringifyJsonLossless(json), `changelog table ${location}`);
}

export interface ChangelogTableWrite extends IcdcWriteResult {
  location: string;
  rows: number;
}

/** Computes the changelog of the query's range and commits it as the next snapshot of the table at `location`. */
export async function writeChangelogTable(q: RowQuery, location: string, summary: Record<string, string>, retainBatches?: number): Promise<ChangelogTableWrite> {
  const schema = rowSchema(q.md, q.range);
  const cl = changelogMetadata(q.md, schema.schemaId, location.replace(/\/+$/, ''));
  const ids = { _change_type: cl.lastColumnId - 2, _change_ordinal: cl.lastColumnId - 1, _commit_snapshot_id: cl.lastColumnId };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-changelog-'));
  try {
    const local = path.join(dir, 'rows.parquet');
    const { rows } = await writeRowsFile({ ...q, net: false }, 'parquet', local, ids);
    const files: FileChange[] = [];
    if (rows > 0) {
      const bytes = fs.readFileSync(local);
      const filePath = joinLocation(joinLocation(cl.location, 'data'), `${crypto.randomUUID()}.parquet`);
      const dataFile = dataFileFromParquet(bytes, { filePath, md: cl });
      await q.io.write(filePath, bytes, { ifAbsent: true });
      files.push({
        entry: { status: EntryStatus.ADDED, snapshotId: 0n, sequenceNumber: null, fileSequenceNumber: null, dataFile },
        manifest: {
          path: '', length: 0n, partitionSpecId: 0, content: 0, sequenceNumber: 0n, minSequenceNumber: 0n, addedSnapshotId: null,
          addedFilesCount: 1, existingFilesCount: 0, deletedFilesCount: 0, addedRowsCount: dataFile.recordCount, existingRowsCount: 0n, deletedRowsCount: 0n,
          partitions: null, keyMetadata: null, firstRowId: null,
        },
      });
    }
    const w = await writeIcdcSnapshot({ io: q.io, source: cl, location: cl.location, files, summary, ...(retainBatches !== undefined ? { retainBatches } : {}) });
    return { ...w, location: cl.location, rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CHANGELOG_COLUMNS = new Set(['_change_type', '_change_ordinal', '_commit_snapshot_id']);

/**
 * Reads one batch's snapshot of a changelog table back as row changes, in chunks of typed
 * columns (what the computation hands `nativeOut`), and the source schema its rows are in.
 * Undefined when the snapshot or its files are gone, or the table is not as ips writes it (the
 * caller computes the rows instead).
 */
export async function readChangelogSnapshot(io: FileIO, metadataLocation: string, snapshotId: bigint): Promise<{ schema: Schema; produce: (out: (batch: NativeBatch) => void) => Promise<number> } | undefined> {
  let md: TableMetadata;
  try {
    md = await readMetadataFile(io, metadataLocation);
  } catch {
    return undefined;
  }
  const snap = snapshotById(md, snapshotId);
  if (!snap) return undefined;
  const full = schemaById(md, snap.schemaId);
  const reader = new ManifestReader(io);
  const files: DataFile[] = [];
  for (const mf of (await reader.manifestList(snap)).manifests) {
    for (const e of (await reader.manifest(mf)).entries) {
      if (e.status !== EntryStatus.DELETED && e.dataFile.content === 0) files.push(e.dataFile);
    }
  }
  for (const f of files) if (!(await io.exists(f.filePath))) return undefined;
  const schema: Schema = { ...full, struct: { kind: 'struct', fields: full.struct.fields.filter((f) => !CHANGELOG_COLUMNS.has(f.name)) } };
  const changelogFields = full.struct.fields.filter((f) => CHANGELOG_COLUMNS.has(f.name));
  // The three changelog columns with the types ips writes them with.
  const byName = new Map(changelogFields.map((f) => [f.name, f]));
  for (const [name, kind] of [['_change_type', 'string'], ['_change_ordinal', 'int'], ['_commit_snapshot_id', 'long']] as const) {
    if (byName.get(name)?.type.kind !== kind) return undefined;
  }
  const produce = async (out: (batch: NativeBatch) => void): Promise<number> => {
    if (files.length === 0) return 0;
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-changelog-read-'));
    const engine = await SqlEngine.open({ io, scratchDir: scratch, threads: 1, memoryLimit: '512MB' });
    try {
      // Columns by field id under names of ips's own (the source's names are other systems' text).
      const key = (f: NestedField) => (CHANGELOG_COLUMNS.has(f.name) ? f.name : `c${f.id}`);
      const map = full.struct.fields.map((f) => `${f.id}: {name: ${sqlString(key(f))}, type: ${sqlString(readType(f))}, default_value: NULL}`).join(', ');
      const locals = await engine.localCopies(files.map((f) => f.filePath));
      const select = [...schema.struct.fields.map((f) => nativeExpr(key(f), f.type as PrimitiveType)), '_change_type', '_change_ordinal', '_commit_snapshot_id'].join(', ');
      const from = `read_parquet([${locals.map(sqlString).join(', ')}], hive_partitioning = false, schema = MAP {${map}})`;
      const changeTypes = changeTypeColumn();
      let rows = 0;
      // A chunk at a time, typed: never the whole snapshot in memory.
      for await (const chunk of engine.streamChunks(`SELECT ${select} FROM ${from}`)) {
        const n = chunk.rowCount;
        const cols = chunk.columns;
        const k = schema.struct.fields.length;
        out({
          columns: [
            ...schema.struct.fields.map((f, i) => nativeColumn(f.type as PrimitiveType, cols[i]!)),
            changeTypes(cols[k] as unknown[]), nativeColumn({ kind: 'int' }, cols[k + 1]!), nativeColumn({ kind: 'long' }, cols[k + 2]!),
          ],
          rowCount: n,
        });
        rows += n;
      }
      return rows;
    } finally {
      engine.close();
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  };
  return { schema, produce };
}
