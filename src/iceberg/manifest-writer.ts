import type avro from 'avsc';
import { avroType } from './avro.js';
import type { AvroEncoder } from './avro-encoder.js';
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

function partitionRecordValue(spec: BoundPartitionField[], df: DataFile): Record<string, unknown> {
  const partition: Record<string, unknown> = {};
  for (const pf of spec) {
    partition[avroName(pf.field.name)] = avroPartitionValue(pf.resultType, partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId)));
  }
  return partition;
}

// Avro unions ['null', T]: branch 0 is null, branch 1 the value (then its encoding).
function optLong(w: AvroEncoder, v: bigint | null | undefined): void {
  if (v === null || v === undefined) w.int(0);
  else {
    w.int(1);
    w.long(v);
  }
}

function optInt(w: AvroEncoder, v: number | null): void {
  if (v === null) w.int(0);
  else {
    w.int(1);
    w.int(v);
  }
}

// Value writers for the maps and arrays below, module-level: no closure per entry.
const writeLong = (w: AvroEncoder, v: bigint): void => w.long(v);
const writeInt = (w: AvroEncoder, v: number): void => w.int(v);
const writeBytes = (w: AvroEncoder, v: Buffer): void => w.bytes(v);

/** An int-keyed map as Iceberg writes it (an array of key/value records), optional; one block, as avsc writes arrays. */
function optIntMap<V>(w: AvroEncoder, m: ReadonlyMap<number, V> | null, value: (w: AvroEncoder, v: V) => void): void {
  if (m === null) {
    w.int(0);
    return;
  }
  w.int(1);
  if (m.size > 0) {
    w.int(m.size);
    m.forEach((v, key) => {
      w.int(key);
      value(w, v);
    });
  }
  w.int(0);
}

function optArray<T>(w: AvroEncoder, items: readonly T[] | null, item: (w: AvroEncoder, v: T) => void): void {
  if (items === null) {
    w.int(0);
    return;
  }
  w.int(1);
  if (items.length > 0) {
    w.int(items.length);
    for (const v of items) item(w, v);
  }
  w.int(0);
}

/**
 * One manifest entry in the binary layout of manifestEntrySchema(fv) (field by field, in schema
 * order), encoded straight from the entry: no record object per entry, no object per statistic
 * and no Buffer per long, which avsc's generic writer needed (a quarter of a 100,000-file
 * prepare's CPU). `partitionType`: avsc's type of the partition record (r102), few values a file.
 */
function encodeEntry(w: AvroEncoder, m: ManifestToWrite, partitionType: avro.Type, e: EntryToWrite): void {
  const fv = m.formatVersion;
  const df = e.dataFile;
  w.int(e.status ?? EntryStatus.ADDED);
  if (fv === 1) w.long(e.snapshotId ?? m.snapshotId);
  else {
    optLong(w, e.snapshotId); // null: inherited from the manifest list
    optLong(w, e.sequenceNumber);
    optLong(w, e.fileSequenceNumber);
  }
  if (fv >= 2) w.int(df.content);
  w.string(df.filePath);
  w.string(df.fileFormat.toUpperCase());
  w.raw(partitionType.toBuffer(partitionRecordValue(m.spec, df)));
  w.long(df.recordCount);
  w.long(df.fileSizeInBytes);
  if (fv === 1) w.long(64n * 1024n * 1024n); // block_size_in_bytes; spec: "always write a default in v1"
  optIntMap(w, df.columnSizes, writeLong);
  optIntMap(w, df.valueCounts, writeLong);
  optIntMap(w, df.nullValueCounts, writeLong);
  optIntMap(w, df.nanValueCounts, writeLong);
  optIntMap(w, df.lowerBounds, writeBytes);
  optIntMap(w, df.upperBounds, writeBytes);
  if (df.keyMetadata === null) w.int(0);
  else {
    w.int(1);
    w.bytes(df.keyMetadata);
  }
  optArray(w, df.splitOffsets, writeLong);
  if (fv >= 2) optArray(w, df.equalityIds, writeInt);
  optInt(w, df.sortOrderId);
  if (fv >= 3) optLong(w, df.firstRowId);
  if (fv >= 2) {
    if (df.referencedDataFile === null) w.int(0);
    else {
      w.int(1);
      w.string(df.referencedDataFile);
    }
  }
  if (fv >= 3) {
    optLong(w, df.contentOffset);
    optLong(w, df.contentSizeInBytes);
  }
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
  // The partition record's avsc type, looked up once per manifest (its schema text is the key).
  const partitionType = avroType(partitionRecord(partitionFields));
  const meta: Record<string, string> = {
    schema: m.schemaJson,
    'schema-id': String(m.schemaId),
    'partition-spec': m.specFieldsJson,
    'partition-spec-id': String(m.specId),
    'format-version': String(m.formatVersion),
  };
  if (m.formatVersion >= 2) meta['content'] = m.content === 0 ? 'data' : 'deletes';
  const bytes = writeAvroFile(schema, meta, m.entries, (e, w) => encodeEntry(w, m, partitionType, e));
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
