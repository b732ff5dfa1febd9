import { readAvroFile, type AvroReadOptions, type AvroSchemaNode } from './avro.js';
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
  content: string | null; filePath: string; fileFormat: string; partitionField: string | null;
  recordCount: string; fileSize: string;
  columnSizes: MapLayout | null; valueCounts: MapLayout | null; nullValueCounts: MapLayout | null;
  nanValueCounts: MapLayout | null; lowerBounds: MapLayout | null; upperBounds: MapLayout | null;
  keyMetadata: string | null; splitOffsets: string | null; equalityIds: string | null; sortOrderId: string | null;
  firstRowId: string | null; referencedDataFile: string | null; contentOffset: string | null; contentSize: string | null;
  /** Writer's partition field name → partition field id (null when the writer recorded none). */
  partition: [string, number | null][];
}

/** An int-keyed map field: its name, and the names of its key and value in the pair records. */
interface MapLayout {
  field: string;
  key: string;
  value: string;
}

const layoutCache = new WeakMap<object, EntryLayout>();

function mapLayout(ids: Map<number, { name: string; type: AvroSchemaNode }>, id: number, where: string): MapLayout | null {
  const f = ids.get(id);
  if (!f) return null;
  const branch = Array.isArray(f.type) ? f.type.find((b) => typeof b === 'object' && b !== null) : f.type;
  const pair = unwrapRecord((branch as { items?: AvroSchemaNode } | undefined)?.items, where);
  // Java and PyIceberg name them key/value; resolve by position so other names work too.
  return { field: f.name, key: pair?.fields[0]?.name ?? 'key', value: pair?.fields[1]?.name ?? 'value' };
}

function layoutOf(schema: object, where: string): EntryLayout {
  const cached = layoutCache.get(schema);
  if (cached) return cached;
  const rec = unwrapRecord(schema as never, where);
  if (!rec) throw new IpsError('INVALID_MANIFEST', `${where}: root schema is not a record`);
  const ids = fieldsById(rec);
  const dfRec = unwrapRecord(ids.get(2)?.type, where);
  if (!dfRec) throw new IpsError('INVALID_MANIFEST', `${where}: data_file (field-id 2) is missing or not a record`);
  const d = fieldsById(dfRec);
  const partRec = unwrapRecord(d.get(102)?.type, where);
  const layout: EntryLayout = {
    status: requireField(ids, 0, 'status', where),
    snapshotId: optionalField(ids, 1),
    seq: optionalField(ids, 3),
    fileSeq: optionalField(ids, 4),
    dataFile: requireField(ids, 2, 'data_file', where),
    content: optionalField(d, 134),
    filePath: requireField(d, 100, 'file_path', where),
    fileFormat: requireField(d, 101, 'file_format', where),
    partitionField: optionalField(d, 102),
    recordCount: requireField(d, 103, 'record_count', where),
    fileSize: requireField(d, 104, 'file_size_in_bytes', where),
    columnSizes: mapLayout(d, 108, where),
    valueCounts: mapLayout(d, 109, where),
    nullValueCounts: mapLayout(d, 110, where),
    nanValueCounts: mapLayout(d, 137, where),
    lowerBounds: mapLayout(d, 125, where),
    upperBounds: mapLayout(d, 128, where),
    keyMetadata: optionalField(d, 131),
    splitOffsets: optionalField(d, 132),
    equalityIds: optionalField(d, 135),
    sortOrderId: optionalField(d, 140),
    firstRowId: optionalField(d, 142),
    referencedDataFile: optionalField(d, 143),
    contentOffset: optionalField(d, 144),
    contentSize: optionalField(d, 145),
    partition: (partRec?.fields ?? []).map((f) => [f.name, f['field-id'] === undefined ? null : Number(f['field-id'])]),
  };
  layoutCache.set(schema, layout);
  return layout;
}

const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));

function readMap<V>(d: Record<string, unknown>, m: MapLayout | null): Map<number, V> | null {
  if (m === null) return null;
  const raw = d[m.field];
  if (raw === null || raw === undefined) return null;
  if (!Array.isArray(raw)) return readIntKeyedMap<V>(raw); // a native Avro map from a non-conforming writer
  const out = new Map<number, V>();
  for (let i = 0; i < raw.length; i++) {
    const kv = raw[i] as Record<string, unknown>;
    out.set(kv[m.key] as number, kv[m.value] as V);
  }
  return out;
}

const formats = new Map<string, string>();
function formatName(raw: unknown): string {
  const s = String(raw);
  let f = formats.get(s);
  if (f === undefined) formats.set(s, (f = s.toLowerCase()));
  return f;
}

const opt = <T>(d: Record<string, unknown>, name: string | null): T | null => (name === null ? null : ((d[name] as T | undefined) ?? null));

/**
 * Decode a manifest and apply inheritance (spec "Sequence Number Inheritance"; Java
 * `InheritableMetadataFactory`): a null snapshot_id is the manifest's added_snapshot_id; a
 * null data/file sequence number is the manifest's sequence number when the entry is ADDED, or
 * when the manifest is v1 (sequence number 0). v3 first_row_id is assigned to live data files
 * that lack one, in manifest order, from the manifest's first_row_id.
 */
export function decodeManifest(buf: Buffer, manifest: ManifestFile, where: string, options: AvroReadOptions = {}): Manifest {
  const isV1Seq = manifest.sequenceNumber === 0n;
  let nextRowId = manifest.content === 0 ? manifest.firstRowId : null;
  const file = readAvroFile<ManifestEntry>(buf, where, (schema, meta) => {
    const L = layoutOf(schema as object, where);
    // Partition fields without ids (very old writers) take the spec's ids by position.
    const specFieldIds = partitionIdsFromHeader(meta.get('partition-spec'));
    const partIds = L.partition.map(([, id], idx) => id ?? specFieldIds?.[idx] ?? 1000 + idx);
    return (r0, i) => {
      const r = r0 as Record<string, unknown>;
      const status = Number(r[L.status]) as EntryStatus;
      if (status !== EntryStatus.EXISTING && status !== EntryStatus.ADDED && status !== EntryStatus.DELETED) {
        throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has status ${String(r[L.status])} (0 existing, 1 added, 2 deleted)`);
      }
      const d = r[L.dataFile] as Record<string, unknown>;
      const filePath = d[L.filePath];
      // A zero-filled record decodes as an entry with an empty path: corruption, never a file.
      if (typeof filePath !== 'string' || filePath === '') throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has an empty file_path`);
      const content = L.content ? Number(d[L.content] ?? 0) : 0;
      if (content !== 0 && content !== 1 && content !== 2) throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has content ${content} (0 data, 1 position deletes, 2 equality deletes)`);
      const partRaw = (L.partitionField ? (d[L.partitionField] as Record<string, unknown> | null) : null) ?? {};
      const partition = new Map<number, unknown>();
      for (let k = 0; k < L.partition.length; k++) partition.set(partIds[k]!, partRaw[L.partition[k]![0]] ?? null);
      const sortOrderId = opt<number>(d, L.sortOrderId);
      const dataFile: DataFile = {
        content: content as FileContent,
        filePath,
        fileFormat: formatName(d[L.fileFormat]),
        partition,
        recordCount: BigInt(d[L.recordCount] as bigint),
        fileSizeInBytes: BigInt(d[L.fileSize] as bigint),
        columnSizes: readMap<bigint>(d, L.columnSizes),
        valueCounts: readMap<bigint>(d, L.valueCounts),
        nullValueCounts: readMap<bigint>(d, L.nullValueCounts),
        nanValueCounts: readMap<bigint>(d, L.nanValueCounts),
        lowerBounds: readMap<Buffer>(d, L.lowerBounds),
        upperBounds: readMap<Buffer>(d, L.upperBounds),
        keyMetadata: opt<Buffer>(d, L.keyMetadata),
        splitOffsets: opt<bigint[]>(d, L.splitOffsets),
        equalityIds: opt<number[]>(d, L.equalityIds)?.map(Number) ?? null,
        sortOrderId: sortOrderId === null ? null : Number(sortOrderId),
        firstRowId: big(opt(d, L.firstRowId)),
        referencedDataFile: opt<string>(d, L.referencedDataFile),
        contentOffset: big(opt(d, L.contentOffset)),
        contentSizeInBytes: big(opt(d, L.contentSize)),
      };
      const inherits = status === EntryStatus.ADDED || isV1Seq;
      const seq = L.seq ? big(r[L.seq]) : null;
      const fileSeq = L.fileSeq ? big(r[L.fileSeq]) : null;
      const snapshotId = (L.snapshotId ? big(r[L.snapshotId]) : null) ?? manifest.addedSnapshotId;
      if (snapshotId === null) throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has no snapshot_id and nothing to inherit it from`);
      if (nextRowId !== null && status !== EntryStatus.DELETED && dataFile.firstRowId === null) {
        dataFile.firstRowId = nextRowId;
        nextRowId += dataFile.recordCount;
      }
      if (dataFile.recordCount < 0n || dataFile.fileSizeInBytes < 0n) {
        throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} (${filePath}) has a negative record count or file size`);
      }
      return {
        status,
        snapshotId,
        sequenceNumber: seq ?? (inherits ? manifest.sequenceNumber : null),
        fileSequenceNumber: fileSeq ?? (inherits ? manifest.sequenceNumber : null),
        dataFile,
      };
    };
  }, options);
  const specIdHeader = file.meta.get('partition-spec-id');
  if (specIdHeader !== undefined && Number(specIdHeader) !== manifest.partitionSpecId) {
    throw new IpsError('INVALID_MANIFEST', `${where}: header partition-spec-id ${specIdHeader} differs from the manifest list's ${manifest.partitionSpecId}`);
  }
  return { meta: file.meta, entries: file.records };
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
