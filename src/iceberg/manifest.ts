import { readAvroContainer, type AvroReadOptions } from './avro.js';
import { AvroDecodeError, compiledSchema, nonNull, readBlockCount, readVarNum, type AvroSchemaNode, type Cursor, type FieldNode, type RecordNode, type TypeNode } from './avro-decoder.js';
import { readIntKeyedMap } from './avro-fields.js';
import { readBoundsArray, readCountsArray } from './packed-stats.js';
import type { ManifestFile } from './manifest-list.js';
import { IpsError } from '../errors.js';

export const EntryStatus = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;
export type EntryStatus = (typeof EntryStatus)[keyof typeof EntryStatus];

export type FileContent = 0 | 1 | 2; // data, position deletes, equality deletes

export interface DataFile {
  content: FileContent;
  filePath: string;
  fileFormat: string;
  /**
   * Raw partition tuple keyed by partition field id, as stored (decode with the manifest's spec).
   * Read-only: decoded entries of one manifest with the same tuple share one Map (see PartitionInterner).
   */
  partition: Map<number, unknown>;
  recordCount: bigint;
  fileSizeInBytes: bigint;
  /**
   * Column statistics by field id. Decoded manifests give read-only views over shared slabs
   * (packed-stats.ts: `PackedCounts`, `PackedBounds`); treat every map as read-only.
   */
  columnSizes: ReadonlyMap<number, bigint> | null;
  valueCounts: ReadonlyMap<number, bigint> | null;
  nullValueCounts: ReadonlyMap<number, bigint> | null;
  nanValueCounts: ReadonlyMap<number, bigint> | null;
  lowerBounds: ReadonlyMap<number, Buffer> | null;
  upperBounds: ReadonlyMap<number, Buffer> | null;
  keyMetadata: Buffer | null;
  /** Read-only: entries of one manifest may share one array (see OffsetsInterner). */
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

/**
 * Which column statistics (column_sizes, value_counts, null/nan value counts, lower/upper bounds)
 * `decodeManifest` decodes: all of them (the default), none (the maps are null), or only those of
 * the given field ids (the other keys are skipped without allocating; a map the writer wrote is a
 * Map, possibly empty, and null only when the writer wrote none).
 */
export type StatsSelection = 'all' | 'none' | ReadonlySet<number>;

export interface ManifestReadOptions extends AvroReadOptions {
  stats?: StatsSelection | undefined;
}

/**
 * Partition tuples of one file, shared between its entries. A manifest's entries mostly repeat a
 * few tuples (files of one commit land in a few partitions), and a Map per entry (two heap objects)
 * was a fifth of the decode's CPU once the garbage collector had copied and promoted it with the
 * rest of the manifest. Tuples of primitive values are looked up among the last few distinct ones
 * (exact `===`, so NaN never matches and gets a Map of its own); a tuple holding a Buffer (binary,
 * fixed, decimal values) always gets a new Map.
 */
class PartitionInterner {
  private static readonly SIZE = 16;
  private readonly tuples: unknown[][] = [];
  private readonly maps: Map<number, unknown>[] = [];
  private last = 0;
  /** The tuple being read (filled by the partition step, then looked up). */
  readonly scratch: unknown[];

  constructor(private readonly ids: number[]) {
    this.scratch = new Array<unknown>(ids.length).fill(null);
  }

  /** The Map for the tuple in `scratch`. */
  get(): Map<number, unknown> {
    const v = this.scratch;
    const n = v.length;
    for (let k = 0; k < n; k++) {
      const x = v[k];
      if (typeof x === 'object' && x !== null) return this.build();
    }
    const tuples = this.tuples;
    for (let j = 0, i = this.last; j < tuples.length; j++, i = i + 1 === tuples.length ? 0 : i + 1) {
      const t = tuples[i]!;
      let k = 0;
      while (k < n && t[k] === v[k]) k++;
      if (k === n) {
        this.last = i;
        return this.maps[i]!;
      }
    }
    const m = this.build();
    const slot = tuples.length < PartitionInterner.SIZE ? tuples.length : (this.last + 1) % PartitionInterner.SIZE;
    tuples[slot] = v.slice();
    this.maps[slot] = m;
    this.last = slot;
    return m;
  }

  private build(): Map<number, unknown> {
    const m = new Map<number, unknown>();
    for (let k = 0; k < this.ids.length; k++) m.set(this.ids[k]!, this.scratch[k]);
    return m;
  }
}

/**
 * Split offsets equal to the previous entry's are that entry's array (read-only, like the
 * partition tuples): most files of a manifest have the same offsets (one row group at byte 4), and
 * an array kept per entry was two more heap objects for the garbage collector to copy.
 */
class OffsetsInterner {
  private last: bigint[] | null = null;
  get(v: bigint[] | null): bigint[] | null {
    const last = this.last;
    if (v === null || last === null || v.length !== last.length) return (this.last = v);
    for (let i = 0; i < v.length; i++) if (v[i] !== last[i]) return (this.last = v);
    return last;
  }
}

/** What one file's entries share while they are decoded (passed, not captured, so the compiled plan is reused across files). */
interface FileContext {
  partIds: number[];
  partitions: PartitionInterner;
  splitOffsets: OffsetsInterner;
  /** Stats keys wanted; null = all. */
  want: ReadonlySet<number> | null;
  skipStats: boolean;
  where: string;
}

/** Decoded fields of one entry before validation and inheritance (reused: one per plan). */
class EntryScratch {
  status: unknown = null;
  snapshotId: unknown = null;
  seq: unknown = null;
  fileSeq: unknown = null;
  dataFile: DataFile | null = null;
}

type EntryStep = (c: Cursor, s: EntryScratch, ctx: FileContext) => void;
type FileStep = (c: Cursor, d: DataFile, ctx: FileContext) => void;

const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));

const formats = new Map<string, string>();
function formatName(raw: unknown): string {
  const s = String(raw);
  let f = formats.get(s);
  if (f === undefined) {
    if (formats.size > 64) formats.clear();
    formats.set(s, (f = s.toLowerCase()));
  }
  return f;
}

/** The partition of entries whose schema has no partition field (read-only, shared like the interned tuples). */
const NO_PARTITION = new Map<number, unknown>();

/** A DataFile with every field present (one hidden class for all entries), filled by the steps. */
function emptyDataFile(): DataFile {
  return {
    content: 0, filePath: '', fileFormat: '', partition: NO_PARTITION, recordCount: 0n, fileSizeInBytes: 0n,
    columnSizes: null, valueCounts: null, nullValueCounts: null, nanValueCounts: null, lowerBounds: null, upperBounds: null,
    keyMetadata: null, splitOffsets: null, equalityIds: null, sortOrderId: null, firstRowId: null, referencedDataFile: null,
    contentOffset: null, contentSizeInBytes: null,
  };
}

type StatsKey = 'columnSizes' | 'valueCounts' | 'nullValueCounts' | 'nanValueCounts' | 'lowerBounds' | 'upperBounds';
const STATS_FIELDS: [number, StatsKey][] = [[108, 'columnSizes'], [109, 'valueCounts'], [110, 'nullValueCounts'], [137, 'nanValueCounts'], [125, 'lowerBounds'], [128, 'upperBounds']];

/**
 * Reads an int-keyed map (an Avro array of {key, value} records; key and value resolved by
 * position, as Java and PyIceberg name them differently), keeping only the keys asked for:
 * int → long and int → bytes pairs into packed views (packed-stats.ts), other shapes into a Map.
 * A native Avro map from a non-conforming writer is read generically.
 */
function statsReader(t: TypeNode): (c: Cursor, ctx: FileContext) => ReadonlyMap<number, unknown> | null {
  const nn = nonNull(t);
  const arr = nn?.type;
  const pair = arr?.kind === 'array' && arr.items.kind === 'record' && arr.items.fields.length >= 2 ? arr.items : null;
  if (!nn || !pair) {
    return (c, ctx) => {
      const m = readIntKeyedMap<unknown>(t.read(c));
      if (m === null || ctx.want === null) return m;
      for (const k of [...m.keys()]) if (!ctx.want.has(k)) m.delete(k);
      return m;
    };
  }
  const key = pair.fields[0]!.type;
  const value = pair.fields[1]!.type;
  const extra = pair.fields.slice(2).map((f) => f.type.skip);
  const nullIndex = nn.nullIndex;
  const isUnion = t.kind === 'union';
  const packed = key.kind === 'int' ? (value.kind === 'long' ? readCountsArray : value.kind === 'bytes' ? readBoundsArray : null) : null;
  if (packed) {
    return (c, ctx) => {
      if (isUnion && readVarNum(c) === nullIndex) return null;
      return packed(c, ctx.want, extra);
    };
  }
  return (c, ctx) => {
    if (isUnion && readVarNum(c) === nullIndex) return null;
    const want = ctx.want;
    const out = new Map<number, unknown>();
    for (let n = readBlockCount(c); n; n = readBlockCount(c)) {
      while (n--) {
        const k = Number(key.read(c));
        if (want === null || want.has(k)) out.set(k, value.read(c));
        else value.skip(c);
        for (let i = 0; i < extra.length; i++) extra[i]!(c);
      }
    }
    return out;
  };
}

/** The union branch index read for a nullable record, checked. */
function checkedBranch(c: Cursor, t: TypeNode): TypeNode {
  if (t.kind !== 'union') return t;
  const i = readVarNum(c);
  const b = t.branches[i];
  if (b === undefined || i < 0) throw new AvroDecodeError(`union index ${i} out of range`);
  return b;
}

function dataFileSteps(rec: RecordNode): FileStep[] {
  return rec.fields.map((f): FileStep => {
    const t = f.type;
    const read = t.read;
    switch (f.fieldId) {
      case 134: return (c, d) => { d.content = Number(read(c) ?? 0) as FileContent; };
      case 100: return (c, d) => { d.filePath = read(c) as string; };
      case 101: return (c, d) => { d.fileFormat = formatName(read(c)); };
      case 102: {
        const nn = nonNull(t);
        const prec = nn?.type.kind === 'record' ? nn.type : null;
        if (!prec) return (c) => t.skip(c); // not a record: no partition values, as before
        const fields = prec.fields;
        return (c, d, ctx) => {
          const b = checkedBranch(c, t);
          const parts = ctx.partitions;
          const v = parts.scratch;
          if (b.kind !== 'record') v.fill(null);
          else for (let k = 0; k < fields.length; k++) v[k] = fields[k]!.type.read(c) ?? null;
          d.partition = parts.get();
        };
      }
      case 103: return (c, d) => { d.recordCount = BigInt(read(c) as bigint); };
      case 104: return (c, d) => { d.fileSizeInBytes = BigInt(read(c) as bigint); };
      case 131: return (c, d) => { d.keyMetadata = (read(c) as Buffer | null) ?? null; };
      case 132: return (c, d, ctx) => { d.splitOffsets = ctx.splitOffsets.get((read(c) as bigint[] | null) ?? null); };
      case 135: return (c, d) => { d.equalityIds = (read(c) as number[] | null)?.map(Number) ?? null; };
      case 140: return (c, d) => { const v = read(c); d.sortOrderId = v === null || v === undefined ? null : Number(v); };
      case 142: return (c, d) => { d.firstRowId = big(read(c)); };
      case 143: return (c, d) => { d.referencedDataFile = (read(c) as string | null) ?? null; };
      case 144: return (c, d) => { d.contentOffset = big(read(c)); };
      case 145: return (c, d) => { d.contentSizeInBytes = big(read(c)); };
      default: {
        const stat = STATS_FIELDS.find(([id]) => id === f.fieldId);
        if (!stat) return (c) => t.skip(c);
        const key = stat[1];
        const readStats = statsReader(t);
        const skip = t.skip;
        return (c, d, ctx) => {
          if (ctx.skipStats) skip(c);
          else (d as unknown as Record<StatsKey, ReadonlyMap<number, unknown> | null>)[key] = readStats(c, ctx);
        };
      }
    }
  });
}

/** Decoding plan of one writer schema: field ids resolved once, unused fields skipped. */
interface ManifestPlan {
  steps: EntryStep[];
  scratch: EntryScratch;
  /** Writer's partition field ids in order (null where the writer recorded none). */
  partitionFieldIds: (number | null)[];
  hasContent: boolean;
  hasSnapshotId: boolean;
  hasSeq: boolean;
  hasFileSeq: boolean;
}

const planCache = new Map<string, ManifestPlan>();

function planOf(schema: AvroSchemaNode, text: string, where: string): ManifestPlan {
  const hit = planCache.get(text);
  if (hit) return hit;
  const root = compiledSchema(text, schema);
  const rec = root.kind === 'record' ? root : null;
  if (!rec) throw new IpsError('INVALID_MANIFEST', `${where}: root schema is not a record`);
  const byId = (r: RecordNode, id: number): FieldNode | undefined => r.fields.find((f) => f.fieldId === id);
  const need = (r: RecordNode, id: number, label: string): FieldNode => {
    const f = byId(r, id);
    if (!f) throw new IpsError('INVALID_MANIFEST', `${where}: required field ${label} (field-id ${id}) is missing from the Avro schema`);
    return f;
  };
  need(rec, 0, 'status');
  const dfField = byId(rec, 2);
  const dfNn = dfField ? nonNull(dfField.type) : null;
  const dfType = dfNn?.type.kind === 'record' ? dfNn.type : null;
  if (!dfField || !dfType) throw new IpsError('INVALID_MANIFEST', `${where}: data_file (field-id 2) is missing or not a record`);
  need(dfType, 100, 'file_path');
  need(dfType, 101, 'file_format');
  need(dfType, 103, 'record_count');
  need(dfType, 104, 'file_size_in_bytes');
  const dfSteps = dataFileSteps(dfType);
  const partField = byId(dfType, 102);
  const partNn = partField ? nonNull(partField.type) : null;
  const partRec = partNn?.type.kind === 'record' ? partNn.type : null;
  const steps = rec.fields.map((f): EntryStep => {
    const t = f.type;
    const read = t.read;
    switch (f.fieldId) {
      case 0: return (c, s) => { s.status = read(c); };
      case 1: return (c, s) => { s.snapshotId = read(c); };
      case 3: return (c, s) => { s.seq = read(c); };
      case 4: return (c, s) => { s.fileSeq = read(c); };
      case 2: {
        const n = dfSteps.length;
        return (c, s, ctx) => {
          const b = checkedBranch(c, t);
          if (b.kind !== 'record') throw new IpsError('INVALID_MANIFEST', `${ctx.where}: an entry has a null data_file`);
          const d = emptyDataFile();
          for (let i = 0; i < n; i++) dfSteps[i]!(c, d, ctx);
          s.dataFile = d;
        };
      }
      default: return (c) => t.skip(c);
    }
  });
  const plan: ManifestPlan = {
    steps,
    scratch: new EntryScratch(),
    partitionFieldIds: (partRec?.fields ?? []).map((f) => f.fieldId),
    hasContent: byId(dfType, 134) !== undefined,
    hasSnapshotId: byId(rec, 1) !== undefined,
    hasSeq: byId(rec, 3) !== undefined,
    hasFileSeq: byId(rec, 4) !== undefined,
  };
  if (planCache.size > 256) planCache.clear();
  planCache.set(text, plan);
  return plan;
}

function decodeEntry(plan: ManifestPlan, c: Cursor, ctx: FileContext): EntryScratch {
  const s = plan.scratch;
  s.status = null;
  s.snapshotId = null;
  s.seq = null;
  s.fileSeq = null;
  s.dataFile = null;
  const steps = plan.steps;
  for (let i = 0; i < steps.length; i++) steps[i]!(c, s, ctx);
  return s;
}

interface InheritContext {
  where: string;
  manifest: ManifestFile;
  isV1Seq: boolean;
  nextRowId: bigint | null;
}

/** Validation and inheritance of one decoded entry (see decodeManifest). */
function finishEntry(s: EntryScratch, i: number, ic: InheritContext): ManifestEntry {
  const where = ic.where;
  const status = Number(s.status) as EntryStatus;
  if (status !== EntryStatus.EXISTING && status !== EntryStatus.ADDED && status !== EntryStatus.DELETED) {
    throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has status ${String(s.status)} (0 existing, 1 added, 2 deleted)`);
  }
  const dataFile = s.dataFile!;
  const filePath = dataFile.filePath as unknown;
  // A zero-filled record decodes as an entry with an empty path: corruption, never a file.
  if (typeof filePath !== 'string' || filePath === '') throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has an empty file_path`);
  const content = dataFile.content as number;
  if (content !== 0 && content !== 1 && content !== 2) throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has content ${content} (0 data, 1 position deletes, 2 equality deletes)`);
  const inherits = status === EntryStatus.ADDED || ic.isV1Seq;
  const seq = big(s.seq);
  const fileSeq = big(s.fileSeq);
  const snapshotId = big(s.snapshotId) ?? ic.manifest.addedSnapshotId;
  if (snapshotId === null) throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} has no snapshot_id and nothing to inherit it from`);
  if (ic.nextRowId !== null && status !== EntryStatus.DELETED && dataFile.firstRowId === null) {
    dataFile.firstRowId = ic.nextRowId;
    ic.nextRowId += dataFile.recordCount;
  }
  if (dataFile.recordCount < 0n || dataFile.fileSizeInBytes < 0n) {
    throw new IpsError('INVALID_MANIFEST', `${where}: entry ${i} (${filePath}) has a negative record count or file size`);
  }
  return {
    status,
    snapshotId,
    sequenceNumber: seq ?? (inherits ? ic.manifest.sequenceNumber : null),
    fileSequenceNumber: fileSeq ?? (inherits ? ic.manifest.sequenceNumber : null),
    dataFile,
  };
}

/**
 * Decode a manifest and apply inheritance (spec "Sequence Number Inheritance"; Java
 * `InheritableMetadataFactory`): a null snapshot_id is the manifest's added_snapshot_id; a
 * null data/file sequence number is the manifest's sequence number when the entry is ADDED, or
 * when the manifest is v1 (sequence number 0). v3 first_row_id is assigned to live data files
 * that lack one, in manifest order, from the manifest's first_row_id. Fields are resolved by
 * Iceberg field id once per writer schema; `options.stats` limits which column stats are decoded.
 */
export function decodeManifest(buf: Buffer, manifest: ManifestFile, where: string, options: ManifestReadOptions = {}): Manifest {
  const stats = options.stats ?? 'all';
  const ic: InheritContext = { where, manifest, isV1Seq: manifest.sequenceNumber === 0n, nextRowId: manifest.content === 0 ? manifest.firstRowId : null };
  const file = readAvroContainer<ManifestEntry>(buf, where, (schema, text, meta) => {
    const plan = planOf(schema, text, where);
    // Partition fields without ids (very old writers) take the spec's ids by position.
    const specFieldIds = partitionIdsFromHeader(meta.get('partition-spec'));
    const partIds = plan.partitionFieldIds.map((id, idx) => id ?? specFieldIds?.[idx] ?? 1000 + idx);
    const ctx: FileContext = {
      partIds,
      partitions: new PartitionInterner(partIds),
      splitOffsets: new OffsetsInterner(),
      want: stats === 'all' || stats === 'none' ? null : stats,
      skipStats: stats === 'none',
      where,
    };
    return (c, i) => finishEntry(decodeEntry(plan, c, ctx), i, ic);
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
