import { writeAvroFile, writerSchema } from './avro-write.js';
import { IpsError } from '../errors.js';
import { EntryStatus, type DataFile } from './manifest.js';
import type { FieldSummary, ManifestFile } from './manifest-list.js';
import { avroName, decimalBytes, manifestEntrySchema, manifestListSchema, partitionRecord } from './manifest-schemas.js';
import type { BoundPartitionField } from './partition-values.js';
import { partitionValueFromAvro } from './partition-values.js';
import type { PrimitiveType } from './types.js';
import { bigIntToTwosComplementBE, compareValues, encodeBinaryValue, type Value } from './values.js';

/**
 * An entry to write. ADDED (the default) entries inherit the snapshot id and file sequence
 * number from the manifest list, and the data sequence number too unless one is given.
 * EXISTING and DELETED entries must carry their snapshot id and both sequence numbers (spec
 * "Sequence Number Inheritance": inheritance applies to ADDED entries only): EXISTING keeps
 * the values of the snapshot that added the file; DELETED names the deleting snapshot and keeps
 * the file's sequence numbers.
 */
export interface EntryToWrite {
  dataFile: DataFile;
  /** Null: inherit the manifest's sequence number on read (ADDED only). */
  sequenceNumber: bigint | null;
  /** Default ADDED. */
  status?: EntryStatus;
  /** Required for EXISTING and DELETED; ADDED entries leave it null to inherit. */
  snapshotId?: bigint | null;
  /** Required for EXISTING and DELETED; ADDED entries leave it null to inherit. */
  fileSequenceNumber?: bigint | null;
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

const mapToArray = <V>(m: ReadonlyMap<number, V> | null): { key: number; value: V }[] | null =>
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
  const partitionFields = m.spec.map((pf) => ({ name: pf.field.name, fieldId: pf.field.fieldId, type: pf.resultType }));
  // The schema depends on the format version and the partition type only: built and printed once for each.
  const schema = writerSchema(`manifest|${m.formatVersion}|${JSON.stringify(partitionFields)}`,
    () => manifestEntrySchema(m.formatVersion, partitionRecord(partitionFields)));
  const counts = { files: [0, 0, 0], rows: [0n, 0n, 0n] }; // indexed by status: EXISTING, ADDED, DELETED
  let minLiveSeq: bigint | null = null;
  // Checked and counted first; the Avro records are made a block at a time as they are written.
  for (const e of m.entries) {
    const status = e.status ?? EntryStatus.ADDED;
    counts.files[status]!++;
    counts.rows[status]! += e.dataFile.recordCount;
    if (status !== EntryStatus.ADDED) {
      const missing = [e.snapshotId == null && 'snapshot id', m.formatVersion >= 2 && e.sequenceNumber === null && 'data sequence number', m.formatVersion >= 2 && e.fileSequenceNumber == null && 'file sequence number'].filter(Boolean);
      if (missing.length > 0) {
        throw new IpsError('INTERNAL', `manifest entry for ${e.dataFile.filePath} has status ${status === EntryStatus.EXISTING ? 'EXISTING' : 'DELETED'} but no explicit ${missing.join(', ')}: only ADDED entries inherit them`);
      }
    }
    if (status !== EntryStatus.DELETED) {
      const seq = e.sequenceNumber ?? snapshotSequenceNumber;
      if (minLiveSeq === null || seq < minLiveSeq) minLiveSeq = seq;
    }
  }
  function* records(): Generator<Record<string, unknown>> {
    for (const e of m.entries) {
      const rec: Record<string, unknown> = { status: e.status ?? EntryStatus.ADDED, data_file: dataFileRecord(m.formatVersion, m.spec, e.dataFile) };
      if (m.formatVersion === 1) rec['snapshot_id'] = e.snapshotId ?? m.snapshotId;
      else {
        rec['snapshot_id'] = e.snapshotId ?? null; // null: inherited from the manifest list
        rec['sequence_number'] = e.sequenceNumber;
        rec['file_sequence_number'] = e.fileSequenceNumber ?? null;
      }
      yield rec;
    }
  }
  const meta: Record<string, string> = {
    schema: m.schemaJson,
    'schema-id': String(m.schemaId),
    'partition-spec': m.specFieldsJson,
    'partition-spec-id': String(m.specId),
    'format-version': String(m.formatVersion),
  };
  if (m.formatVersion >= 2) meta['content'] = m.content === 0 ? 'data' : 'deletes';
  const bytes = writeAvroFile(schema, meta, records());
  return {
    bytes,
    row: {
      partitionSpecId: m.specId,
      content: m.content,
      sequenceNumber: snapshotSequenceNumber,
      // Java: the minimum data sequence number of the live entries; the snapshot's when none.
      minSequenceNumber: minLiveSeq ?? snapshotSequenceNumber,
      addedSnapshotId: m.snapshotId,
      addedFilesCount: counts.files[EntryStatus.ADDED]!,
      existingFilesCount: counts.files[EntryStatus.EXISTING]!,
      deletedFilesCount: counts.files[EntryStatus.DELETED]!,
      addedRowsCount: counts.rows[EntryStatus.ADDED]!,
      existingRowsCount: counts.rows[EntryStatus.EXISTING]!,
      deletedRowsCount: counts.rows[EntryStatus.DELETED]!,
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
  return { bytes: writeAvroFile(writerSchema(`manifest-list|${l.formatVersion}`, () => manifestListSchema(l.formatVersion)), meta, records), assignedRows: next - (l.firstRowId ?? 0n) };
}
