import { IpsError } from '../errors.js';
import type { FileIO } from '../io/file-io.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { EntryStatus, type DataFile } from '../iceberg/manifest.js';
import type { FieldSummary } from '../iceberg/manifest-list.js';
import { currentSchema, snapshotById, specById, type TableMetadata } from '../iceberg/metadata.js';
import { bindSpec, partitionValueFromAvro, type BoundPartitionField } from '../iceberg/partition-values.js';
import { applyTransform, preservesOrder } from '../iceberg/transforms.js';
import { indexById, isPrimitive, type PrimitiveType } from '../iceberg/types.js';
import { compareValues, decodeBinaryValue, type Value } from '../iceberg/values.js';

/**
 * Which live data files of a table's current snapshot can hold rows matching every predicate
 * (an AND). Pruning is conservative, it only drops a file when its metadata proves no row can
 * match: by partition values (manifest partition summaries first, then each file's tuple, through
 * the partition transforms) and by column lower/upper bounds and null counts. Rows are not
 * filtered: the caller still applies the predicates to the rows it reads.
 *
 * Values as in values.ts: int and date (days) are numbers, long/time/timestamps bigint, string
 * string, binary/fixed/uuid Buffer, decimal the unscaled bigint. `between` is inclusive.
 */
export type ScanPredicate =
  | { field: string; op: 'between'; lo: Value; hi: Value }
  | { field: string; op: 'in'; values: Value[] };

export interface ScanPlan {
  files: DataFile[];
  /** Live data files not returned (pruned one by one or with their whole manifest). */
  filesSkipped: number;
  manifestsRead: number;
}

interface BoundPredicate {
  fieldId: number;
  name: string;
  type: PrimitiveType;
  op: 'between' | 'in';
  lo: Value;
  hi: Value;
  values: Value[];
}

function coerce(type: PrimitiveType, v: Value, where: string): Value {
  const bad = (): never => {
    throw new IpsError('INVALID_ARGUMENT', `${where}: ${String(v)} (${typeof v}) is not a ${type.kind} value`);
  };
  switch (type.kind) {
    case 'int':
    case 'date': {
      const n = typeof v === 'bigint' ? Number(v) : v;
      return typeof n === 'number' && Number.isInteger(n) ? n : bad();
    }
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns':
    case 'decimal':
      if (typeof v === 'bigint') return v;
      return typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : bad();
    case 'float':
    case 'double':
      return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : bad();
    case 'boolean':
      return typeof v === 'boolean' ? v : bad();
    case 'string':
      return typeof v === 'string' ? v : bad();
    case 'binary':
    case 'fixed':
    case 'uuid':
      return Buffer.isBuffer(v) ? v : bad();
    case 'other':
      throw new IpsError('INVALID_ARGUMENT', `${where}: columns of type ${type.name} cannot be filtered`);
  }
}

function bindPredicates(md: TableMetadata, predicates: ScanPredicate[]): BoundPredicate[] {
  const byPath = new Map([...indexById(currentSchema(md).struct).values()].map((f) => [f.path, f.field] as const));
  return predicates.map((p) => {
    const field = byPath.get(p.field);
    if (!field) throw new IpsError('INVALID_ARGUMENT', `scan predicate on "${p.field}": the table has no such column (columns: ${currentSchema(md).struct.fields.map((f) => f.name).join(', ')})`);
    if (!isPrimitive(field.type)) throw new IpsError('INVALID_ARGUMENT', `scan predicate on "${p.field}": only primitive columns can be filtered`);
    const type = field.type;
    const where = `scan predicate on "${p.field}"`;
    if (p.op === 'between') {
      const lo = coerce(type, p.lo, where);
      const hi = coerce(type, p.hi, where);
      return { fieldId: field.id, name: p.field, type, op: 'between', lo, hi, values: [] };
    }
    if (p.op === 'in') {
      const values = p.values.map((v) => coerce(type, v, where));
      return { fieldId: field.id, name: p.field, type, op: 'in', lo: values[0] ?? 0, hi: values[0] ?? 0, values };
    }
    throw new IpsError('INVALID_ARGUMENT', `${where}: unknown op ${(p as { op: unknown }).op}; use between or in`);
  });
}

/** Can a value in [min, max] (null: unbounded on that side) satisfy the predicate? */
function rangeMayMatch(t: PrimitiveType, p: { op: 'between' | 'in'; lo: Value; hi: Value; values: Value[] }, min: Value | null, max: Value | null): boolean {
  const inRange = (v: Value): boolean => (min === null || compareValues(t, v, min) >= 0) && (max === null || compareValues(t, v, max) <= 0);
  if (p.op === 'in') return p.values.some(inRange);
  if (compareValues(t, p.lo, p.hi) > 0) return false; // empty interval
  return (max === null || compareValues(t, p.lo, max) <= 0) && (min === null || compareValues(t, p.hi, min) >= 0);
}

/**
 * The predicate mapped through a partition transform, or null when the transform cannot prune
 * it. Order-preserving transforms map [lo, hi] to [t(lo), t(hi)]; any transform maps a value
 * set to the set of its images.
 */
function throughTransform(pf: BoundPartitionField, p: BoundPredicate): { op: 'between' | 'in'; lo: Value; hi: Value; values: Value[] } | null {
  const t = pf.transform;
  if (t.kind === 'void' || t.kind === 'unknown') return null;
  const apply = (v: Value): Value => applyTransform(t, p.type, v)!;
  if (p.op === 'in') return { op: 'in', lo: 0, hi: 0, values: p.values.map(apply) };
  if (compareValues(p.type, p.lo, p.hi) === 0) return { op: 'in', lo: 0, hi: 0, values: [apply(p.lo)] };
  if (!preservesOrder(t)) return null;
  return { op: 'between', lo: apply(p.lo), hi: apply(p.hi), values: [] };
}

function decodeOrNull(t: PrimitiveType, b: Buffer | null | undefined): Value | null {
  if (b === null || b === undefined) return null;
  try {
    return decodeBinaryValue(t, b);
  } catch {
    return null; // an unreadable bound bounds nothing
  }
}

/** Manifest-level: partition field summaries (bounds over the manifest's partition values). */
function manifestMayMatch(specFields: BoundPartitionField[], summaries: FieldSummary[] | null, preds: BoundPredicate[]): boolean {
  if (summaries === null) return true;
  for (const p of preds) {
    for (const [i, pf] of specFields.entries()) {
      if (pf.field.sourceId !== p.fieldId) continue;
      const s = summaries[i];
      if (!s) continue;
      const tp = throughTransform(pf, p);
      if (tp === null) continue;
      const lo = decodeOrNull(pf.resultType, s.lowerBound);
      const hi = decodeOrNull(pf.resultType, s.upperBound);
      // No bounds while nulls are present: every partition value is null, which matches nothing.
      if (lo === null && hi === null && s.containsNull && s.lowerBound === null && s.upperBound === null) return false;
      if (!rangeMayMatch(pf.resultType, tp, lo, hi)) return false;
    }
  }
  return true;
}

function fileMayMatch(specFields: BoundPartitionField[], df: DataFile, preds: BoundPredicate[]): boolean {
  for (const p of preds) {
    // Partition tuple.
    for (const pf of specFields) {
      if (pf.field.sourceId !== p.fieldId) continue;
      const tp = throughTransform(pf, p);
      if (tp === null) continue;
      const v = partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId));
      if (v === null) return false; // the source column is null in every row of this partition
      if (!rangeMayMatch(pf.resultType, tp, v, v)) return false;
    }
    // Column metrics.
    const values = df.valueCounts?.get(p.fieldId);
    const nulls = df.nullValueCounts?.get(p.fieldId);
    if (values !== undefined && nulls !== undefined && values === nulls) return false; // only nulls
    const lo = decodeOrNull(p.type, df.lowerBounds?.get(p.fieldId));
    const hi = decodeOrNull(p.type, df.upperBounds?.get(p.fieldId));
    if (!rangeMayMatch(p.type, p, lo, hi)) return false;
  }
  return true;
}

export async function planScan(io: FileIO, md: TableMetadata, predicates: ScanPredicate[], opts?: { reader?: ManifestReader }): Promise<ScanPlan> {
  const preds = bindPredicates(md, predicates);
  if (md.currentSnapshotId === null) return { files: [], filesSkipped: 0, manifestsRead: 0 };
  const snapshot = snapshotById(md, md.currentSnapshotId)!;
  const reader = opts?.reader ?? new ManifestReader(io);
  const list = await reader.manifestList(snapshot);
  const liveDeletes = list.manifests.filter((mf) => mf.content === 1 && !(mf.addedFilesCount === 0 && mf.existingFilesCount === 0));
  if (liveDeletes.length > 0) {
    throw new IpsError('UNSUPPORTED_DELETE_FILES', `snapshot ${snapshot.snapshotId} of the table at ${md.location} has delete files (${liveDeletes[0]!.path}); ips's scan planner does not apply row-level deletes yet`);
  }
  const files: DataFile[] = [];
  let skipped = 0;
  let manifestsRead = 0;
  const bound = new Map<number, BoundPartitionField[]>();
  for (const mf of list.manifests) {
    if (mf.content !== 0) continue;
    let specFields = bound.get(mf.partitionSpecId);
    if (!specFields) bound.set(mf.partitionSpecId, (specFields = bindSpec(md, specById(md, mf.partitionSpecId))));
    if (mf.addedFilesCount === 0 && mf.existingFilesCount === 0) continue; // nothing live in it
    if (!manifestMayMatch(specFields, mf.partitions, preds)) {
      skipped += (mf.addedFilesCount ?? 0) + (mf.existingFilesCount ?? 0);
      continue;
    }
    const m = await reader.manifest(mf);
    manifestsRead++;
    for (const e of m.entries) {
      if (e.status === EntryStatus.DELETED) continue;
      if (fileMayMatch(specFields, e.dataFile, preds)) files.push(e.dataFile);
      else skipped++;
    }
  }
  return { files, filesSkipped: skipped, manifestsRead };
}
