import { readAvroFile } from './avro.js';
import { fieldsById, optionalField, readIntKeyedMap, requireField, unwrapRecord } from './avro-fields.js';
import type { ManifestFile } from './manifest-list.js';
import { IpsError } from '../errors.js';

export const EntryStatus = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;
export type EntryStatus = (typeof EntryStatus)[keyof typeof EntryStatus];

export type FileContent = 0 | 1 | 2; // data, position deletes, equality deletes

export interface DataFile {
  content: FileContent;
  filePath: string;
  fileFormat: string;
  /** Raw partition tuple keyed by partition field id, as stored (decode with the manifest's spec). */
  partition: Map<number, unknown>;
  recordCount: bigint;
  fileSizeInBytes: bigint;
  columnSizes: Map<number, bigint> | null;
  valueCounts: Map<number, bigint> | null;
  nullValueCounts: Map<number, bigint> | null;
  nanValueCounts: Map<number, bigint> | null;
  lowerBounds: Map<number, Buffer> | null;
  upperBounds: Map<number, Buffer> | null;
  keyMetadata: Buffer | null;
  splitOffsets: bigint[] | null;
  equalityIds: number[] | null;
  sortOrderId: number | null;
  firstRowId: bigint | null;
  referencedDataFile: string | null;
  contentOffset: bigint | null;
  contentSizeInBytes: bigint | null;
}

/** A manifest entry with snapshot id and sequence numbers already inherited per spec. */
export interface ManifestEntry {
  status: EntryStatus;
  snapshotId: bigint;
  /** Data sequence number; null only when a non-ADDED entry of a v2+ manifest omitted it (invalid). */
  sequenceNumber: bigint | null;
  fileSequenceNumber: bigint | null;
  dataFile: DataFile;
}

export interface Manifest {
  /** Avro header: `schema`, `partition-spec`, `partition-spec-id`, `format-version`, `content`. */
  meta: Map<string, string>;
  entries: ManifestEntry[];
}

interface EntryLayout {
  status: string; snapshotId: string | null; seq: string | null; fileSeq: string | null; dataFile: string;
  df: Record<string, string | null>;
  /** Writer's partition field name → partition field id. */
  partition: [string, number | null][];
}

const DF_IDS: Record<string, number> = {
  content: 134, filePath: 100, fileFormat: 101, partition: 102, recordCount: 103, fileSize: 104,
  columnSizes: 108, valueCounts: 109, nullValueCounts: 110, nanValueCounts: 137, lowerBounds: 125,
  upperBounds: 128, keyMetadata: 131, splitOffsets: 132, equalityIds: 135, sortOrderId: 140,
  firstRowId: 142, referencedDataFile: 143, contentOffset: 144, contentSize: 145,
};

const layoutCache = new WeakMap<object, EntryLayout>();

function layoutOf(schema: object, where: string): EntryLayout {
  const cached = layoutCache.get(schema);
  if (cached) return cached;
  const rec = unwrapRecord(schema as never, where);
  if (!rec) throw new IpsError('INVALID_MANIFEST', `${where}: root schema is not a record`);
  const ids = fieldsById(rec);
  const dfRec = unwrapRecord(ids.get(2)?.type, where);
  if (!dfRec) throw new IpsError('INVALID_MANIFEST', `${where}: data_file (field-id 2) is missing or not a record`);
  const dfIds = fieldsById(dfRec);
  const df: Record<string, string | null> = {};
  for (const [k, id] of Object.entries(DF_IDS)) df[k] = optionalField(dfIds, id);
  for (const req of ['filePath', 'fileFormat', 'recordCount', 'fileSize'] as const) {
    if (!df[req]) requireField(dfIds, DF_IDS[req]!, req, where);
  }
  const partRec = unwrapRecord(dfIds.get(102)?.type, where);
  const layout: EntryLayout = {
    status: requireField(ids, 0, 'status', where),
    snapshotId: optionalField(ids, 1),
    seq: optionalField(ids, 3),
    fileSeq: optionalField(ids, 4),
    dataFile: requireField(ids, 2, 'data_file', where),
    df,
    partition: (partRec?.fields ?? []).map((f) => [f.name, f['field-id'] === undefined ? null : Number(f['field-id'])]),
  };
  layoutCache.set(schema, layout);
  return layout;
}

const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));

/**
 * Decode a manifest and apply inheritance (spec "Sequence Number Inheritance"; Java
 * `InheritableMetadataFactory`): a null snapshot_id is the manifest's added_snapshot_id; a
 * null data/file sequence number is the manifest's sequence number when the entry is ADDED, or
 * when the manifest is v1 (sequence number 0). v3 first_row_id is assigned to live data files
 * that lack one, in manifest order, from the manifest's first_row_id.
 */
export function decodeManifest(buf: Buffer, manifest: ManifestFile, where: string): Manifest {
  const file = readAvroFile(buf, where);
  const L = layoutOf(file.schema as object, where);
  const specIdHeader = file.meta.get('partition-spec-id');
  // Partition fields without ids (very old writers) take the spec's ids by position.
  const specFieldIds = partitionIdsFromHeader(file.meta.get('partition-spec'));
  const isV1Seq = manifest.sequenceNumber === 0n;
  let nextRowId = manifest.content === 0 ? manifest.firstRowId : null;
  const entries: ManifestEntry[] = new Array(file.records.length);
  for (let i = 0; i < file.records.length; i++) {
    const r = file.records[i] as Record<string, unknown>;
    const status = Number(r[L.status]) as EntryStatus;
    const d = r[L.dataFile] as Record<string, unknown>;
    const partRaw = (d[L.df['partition']!] as Record<string, unknown> | null) ?? {};
    const partition = new Map<number, unknown>();
    L.partition.forEach(([name, id], idx) => {
      const fid = id ?? specFieldIds?.[idx] ?? 1000 + idx;
      partition.set(fid, partRaw[name] ?? null);
    });
    const g = (k: string): unknown => (L.df[k] ? d[L.df[k]!] : null);
    const dataFile: DataFile = {
      content: (Number(g('content') ?? 0) as FileContent),
      filePath: g('filePath') as string,
      fileFormat: String(g('fileFormat')).toLowerCase(),
      partition,
      recordCount: BigInt(g('recordCount') as bigint),
      fileSizeInBytes: BigInt(g('fileSize') as bigint),
      columnSizes: readIntKeyedMap<bigint>(g('columnSizes')),
      valueCounts: readIntKeyedMap<bigint>(g('valueCounts')),
      nullValueCounts: readIntKeyedMap<bigint>(g('nullValueCounts')),
      nanValueCounts: readIntKeyedMap<bigint>(g('nanValueCounts')),
      lowerBounds: readIntKeyedMap<Buffer>(g('lowerBounds')),
      upperBounds: readIntKeyedMap<Buffer>(g('upperBounds')),
      keyMetadata: (g('keyMetadata') as Buffer | null) ?? null,
      splitOffsets: (g('splitOffsets') as bigint[] | null) ?? null,
      equalityIds: (g('equalityIds') as number[] | null)?.map(Number) ?? null,
      sortOrderId: g('sortOrderId') === null || g('sortOrderId') === undefined ? null : Number(g('sortOrderId')),
      firstRowId: big(g('firstRowId')),
      referencedDataFile: (g('referencedDataFile') as string | null) ?? null,
      contentOffset: big(g('contentOffset')),
      contentSizeInBytes: big(g('contentSize')),
    };
    const inherits = status === EntryStatus.ADDED || isV1Seq;
    const seq = L.seq ? big(r[L.seq]) : null;
    const fileSeq = L.fileSeq ? big(r[L.fileSeq]) : null;
    const snap = L.snapshotId ? big(r[L.snapshotId]) : null;
    const snapshotId = snap ?? manifest.addedSnapshotId;
    if (snapshotId === null) throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has no snapshot_id and nothing to inherit it from`);
    if (nextRowId !== null && status !== EntryStatus.DELETED && dataFile.firstRowId === null) {
      dataFile.firstRowId = nextRowId;
      nextRowId += dataFile.recordCount;
    }
    entries[i] = {
      status,
      snapshotId,
      sequenceNumber: seq ?? (inherits ? manifest.sequenceNumber : null),
      fileSequenceNumber: fileSeq ?? (inherits ? manifest.sequenceNumber : null),
      dataFile,
    };
  }
  if (specIdHeader !== undefined && Number(specIdHeader) !== manifest.partitionSpecId) {
    throw new IpsError('INVALID_MANIFEST', `${where}: header partition-spec-id ${specIdHeader} differs from the manifest list's ${manifest.partitionSpecId}`);
  }
  return { meta: file.meta, entries };
}

function partitionIdsFromHeader(text: string | undefined): number[] | null {
  if (!text) return null;
  try {
    const j = JSON.parse(text) as unknown;
    const fields = Array.isArray(j) ? j : (j as { fields?: unknown[] }).fields;
    if (!Array.isArray(fields)) return null;
    return fields.map((f, i) => Number((f as Record<string, unknown>)['field-id'] ?? 1000 + i));
  } catch {
    return null;
  }
}
