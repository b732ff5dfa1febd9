import { writeAvroFile } from './avro-write.js';
import type { DataFile } from './manifest.js';
import type { FieldSummary, ManifestFile } from './manifest-list.js';
import { avroName, decimalBytes, manifestEntrySchema, manifestListSchema, partitionRecord } from './manifest-schemas.js';
import type { BoundPartitionField } from './partition-values.js';
import { partitionValueFromAvro } from './partition-values.js';
import type { PrimitiveType } from './types.js';
import { bigIntToTwosComplementBE, compareValues, encodeBinaryValue, type Value } from './values.js';

/** An entry to write: always ADDED, with an explicit data sequence number when one must be kept. */
export interface EntryToWrite {
  dataFile: DataFile;
  /** Null: inherit the manifest's sequence number on read. */
  sequenceNumber: bigint | null;
}

export interface ManifestToWrite {
  formatVersion: 1 | 2 | 3;
  /** Current table schema JSON text, for the `schema` header key. */
  schemaJson: string;
  schemaId: number;
  specId: number;
  /** The spec's fields array JSON text, for the `partition-spec` header key. */
  specFieldsJson: string;
  spec: BoundPartitionField[];
  content: 0 | 1;
  snapshotId: bigint;
  entries: EntryToWrite[];
}

function avroPartitionValue(t: PrimitiveType, v: Value | null): unknown {
  if (v === null) return null;
  if (t.kind === 'decimal') {
    const raw = bigIntToTwosComplementBE(v as bigint);
    const size = decimalBytes(t.precision);
    const out = Buffer.alloc(size, (raw[0]! & 0x80) !== 0 ? 0xff : 0x00); // sign-extend to the fixed size
    raw.copy(out, size - raw.length);
    return out;
  }
  return v;
}

const mapToArray = <V>(m: Map<number, V> | null): { key: number; value: V }[] | null =>
  m === null ? null : [...m].map(([key, value]) => ({ key, value }));

function dataFileRecord(fv: 1 | 2 | 3, spec: BoundPartitionField[], df: DataFile): Record<string, unknown> {
  const partition: Record<string, unknown> = {};
  for (const pf of spec) {
    partition[avroName(pf.field.name)] = avroPartitionValue(pf.resultType, partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId)));
  }
  const r: Record<string, unknown> = {
    file_path: df.filePath,
    file_format: df.fileFormat.toUpperCase(),
    partition,
    record_count: df.recordCount,
    file_size_in_bytes: df.fileSizeInBytes,
    column_sizes: mapToArray(df.columnSizes),
    value_counts: mapToArray(df.valueCounts),
    null_value_counts: mapToArray(df.nullValueCounts),
    nan_value_counts: mapToArray(df.nanValueCounts),
    lower_bounds: mapToArray(df.lowerBounds),
    upper_bounds: mapToArray(df.upperBounds),
    key_metadata: df.keyMetadata,
    split_offsets: df.splitOffsets,
    sort_order_id: df.sortOrderId,
  };
  if (fv === 1) r['block_size_in_bytes'] = 64n * 1024n * 1024n; // spec: "always write a default in v1"
  if (fv >= 2) {
    r['content'] = df.content;
    r['equality_ids'] = df.equalityIds;
    r['referenced_data_file'] = df.referencedDataFile;
  }
  if (fv >= 3) {
    r['first_row_id'] = df.firstRowId;
    r['content_offset'] = df.contentOffset;
    r['content_size_in_bytes'] = df.contentSizeInBytes;
  }
  return r;
}

export interface WrittenManifest {
  bytes: Buffer;
  /** The manifest-list row, with path and length filled in by the caller's location. */
  row: Omit<ManifestFile, 'path' | 'length'>;
}

/** Partition field summaries (manifest list field 507) over the files of one manifest. */
function summarize(spec: BoundPartitionField[], files: DataFile[]): FieldSummary[] {
  return spec.map((pf) => {
    let containsNull = false;
    let containsNan = false;
    let lo: Value | null = null;
    let hi: Value | null = null;
    for (const df of files) {
      const v = partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId));
      if (v === null) {
        containsNull = true;
        continue;
      }
      if (typeof v === 'number' && Number.isNaN(v)) {
        containsNan = true;
        continue;
      }
      if (lo === null || compareValues(pf.resultType, v, lo) < 0) lo = v;
      if (hi === null || compareValues(pf.resultType, v, hi) > 0) hi = v;
    }
    const enc = (v: Value | null): Buffer | null => (v === null || pf.resultType.kind === 'other' ? null : encodeBinaryValue(pf.resultType, v));
    return { containsNull, containsNan, lowerBound: enc(lo), upperBound: enc(hi) };
  });
}

export function writeManifest(m: ManifestToWrite, snapshotSequenceNumber: bigint): WrittenManifest {
  const schema = manifestEntrySchema(m.formatVersion, partitionRecord(m.spec.map((pf) => ({ name: pf.field.name, fieldId: pf.field.fieldId, type: pf.resultType }))));
  const records = m.entries.map((e) => {
    const rec: Record<string, unknown> = { status: 1, data_file: dataFileRecord(m.formatVersion, m.spec, e.dataFile) };
    if (m.formatVersion === 1) rec['snapshot_id'] = m.snapshotId;
    else {
      rec['snapshot_id'] = null; // inherited from the manifest list
      rec['sequence_number'] = e.sequenceNumber;
      rec['file_sequence_number'] = null;
    }
    return rec;
  });
  const meta: Record<string, string> = {
    schema: m.schemaJson,
    'schema-id': String(m.schemaId),
    'partition-spec': m.specFieldsJson,
    'partition-spec-id': String(m.specId),
    'format-version': String(m.formatVersion),
  };
  if (m.formatVersion >= 2) meta['content'] = m.content === 0 ? 'data' : 'deletes';
  const bytes = writeAvroFile(schema, meta, records);
  const seqs = m.entries.map((e) => e.sequenceNumber ?? snapshotSequenceNumber);
  const rows = m.entries.reduce((n, e) => n + e.dataFile.recordCount, 0n);
  return {
    bytes,
    row: {
      partitionSpecId: m.specId,
      content: m.content,
      sequenceNumber: snapshotSequenceNumber,
      minSequenceNumber: seqs.length ? seqs.reduce((a, b) => (b < a ? b : a)) : snapshotSequenceNumber,
      addedSnapshotId: m.snapshotId,
      addedFilesCount: m.entries.length,
      existingFilesCount: 0,
      deletedFilesCount: 0,
      addedRowsCount: rows,
      existingRowsCount: 0n,
      deletedRowsCount: 0n,
      partitions: summarize(m.spec, m.entries.map((e) => e.dataFile)),
      keyMetadata: null,
      firstRowId: null,
    },
  };
}

export interface ManifestListToWrite {
  formatVersion: 1 | 2 | 3;
  snapshotId: bigint;
  parentSnapshotId: bigint | null;
  sequenceNumber: bigint;
  /** v3: the table's next-row-id before this snapshot. */
  firstRowId: bigint | null;
  manifests: ManifestFile[];
}

/** Writes the manifest list; in v3, assigns first_row_id to data manifests as Java does. Returns rows assigned. */
export function writeManifestList(l: ManifestListToWrite): { bytes: Buffer; assignedRows: bigint } {
  let next = l.firstRowId ?? 0n;
  const records = l.manifests.map((mf) => {
    const r: Record<string, unknown> = {
      manifest_path: mf.path,
      manifest_length: mf.length,
      partition_spec_id: mf.partitionSpecId,
      added_snapshot_id: mf.addedSnapshotId,
      added_files_count: mf.addedFilesCount,
      existing_files_count: mf.existingFilesCount,
      deleted_files_count: mf.deletedFilesCount,
      added_rows_count: mf.addedRowsCount,
      existing_rows_count: mf.existingRowsCount,
      deleted_rows_count: mf.deletedRowsCount,
      partitions: mf.partitions?.map((p) => ({ contains_null: p.containsNull, contains_nan: p.containsNan, lower_bound: p.lowerBound, upper_bound: p.upperBound })) ?? null,
    };
    if (l.formatVersion >= 2) {
      r['content'] = mf.content;
      r['sequence_number'] = mf.sequenceNumber;
      r['min_sequence_number'] = mf.minSequenceNumber;
      r['key_metadata'] = mf.keyMetadata;
    }
    if (l.formatVersion >= 3) {
      if (mf.content === 0) {
        r['first_row_id'] = next;
        next += (mf.addedRowsCount ?? 0n) + (mf.existingRowsCount ?? 0n);
      } else r['first_row_id'] = null;
    }
    return r;
  });
  const meta: Record<string, string> = {
    'snapshot-id': l.snapshotId.toString(),
    'parent-snapshot-id': l.parentSnapshotId === null ? 'null' : l.parentSnapshotId.toString(),
    'format-version': String(l.formatVersion),
  };
  if (l.formatVersion >= 2) meta['sequence-number'] = l.sequenceNumber.toString();
  if (l.formatVersion >= 3) meta['first-row-id'] = (l.firstRowId ?? 0n).toString();
  return { bytes: writeAvroFile(manifestListSchema(l.formatVersion), meta, records), assignedRows: next - (l.firstRowId ?? 0n) };
}
