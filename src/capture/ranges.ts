import { IpsError } from '../errors.js';
import { currentSchema, type TableMetadata } from '../iceberg/metadata.js';
import { EntryStatus } from '../iceberg/manifest.js';
import { partitionValueFromAvro } from '../iceberg/partition-values.js';
import { indexById, isPrimitive, type PrimitiveType } from '../iceberg/types.js';
import { humanPartitionValue, type Transform } from '../iceberg/transforms.js';
import { compareValues, decodeBinaryValue, toJsonValue, type JsonValue, type Value } from '../iceberg/values.js';
import type { FileDescriber } from './file-json.js';
import type { FileChange } from './snapshot-changes.js';

/**
 * `exact`: every file has column metrics and they cannot be truncated; `conservative`: the range
 * contains every changed value but may be wider (truncated string bounds, partition-derived
 * bounds, rows that delete files can remove, bounded by the files they apply to); `unbounded`:
 * some file has neither metrics nor a partition value for the field.
 */
export type RangeFlag = 'exact' | 'conservative' | 'unbounded';

export interface FieldRange {
  min: JsonValue;
  max: JsonValue;
  flag: RangeFlag;
  /** For `unbounded`: the files that lack a bound. */
  missing_in?: string[];
}

export interface ChangedPartition {
  spec_id: number;
  partition: Record<string, JsonValue>;
  /** `event_day=2026-11-18/region=eu`, as engines name partition directories. */
  name: string;
}

interface Interval {
  lo: Value;
  hi: Value;
  exact: boolean;
}

const US_PER_DAY = 86_400_000_000n;
const US_PER_HOUR = 3_600_000_000n;

function perUnit(t: PrimitiveType): bigint {
  return t.kind === 'timestamp_ns' || t.kind === 'timestamptz_ns' ? 1000n : 1n;
}

function daysToSource(t: PrimitiveType, firstDay: number, lastDayExclusive: number): Interval | null {
  if (t.kind === 'date') return { lo: firstDay, hi: lastDayExclusive - 1, exact: false };
  if (t.kind === 'timestamp' || t.kind === 'timestamptz' || t.kind === 'timestamp_ns' || t.kind === 'timestamptz_ns') {
    const u = perUnit(t);
    return { lo: BigInt(firstDay) * US_PER_DAY * u, hi: BigInt(lastDayExclusive) * US_PER_DAY * u - 1n, exact: false };
  }
  return null;
}

function daysFromCivil(y: number, m0: number): number {
  return Math.floor(Date.UTC(y, m0, 1) / 86_400_000);
}

/** The interval of source values that a partition value of an order-preserving transform covers. */
export function partitionInterval(transform: Transform, source: PrimitiveType, v: Value | null): Interval | null {
  if (v === null) return null;
  switch (transform.kind) {
    case 'identity':
      return { lo: v, hi: v, exact: true };
    case 'day':
      return daysToSource(source, v as number, (v as number) + 1);
    case 'month': {
      const m = v as number;
      const y = 1970 + Math.floor(m / 12);
      const mo = ((m % 12) + 12) % 12;
      return daysToSource(source, daysFromCivil(y, mo), daysFromCivil(y, mo + 1));
    }
    case 'year': {
      const y = 1970 + (v as number);
      return daysToSource(source, daysFromCivil(y, 0), daysFromCivil(y + 1, 0));
    }
    case 'hour': {
      const u = perUnit(source);
      const h = BigInt(v as number);
      return { lo: h * US_PER_HOUR * u, hi: (h + 1n) * US_PER_HOUR * u - 1n, exact: false };
    }
    case 'truncate':
      if (source.kind === 'int') return { lo: v, hi: (v as number) + transform.width - 1, exact: false };
      if (source.kind === 'long' || source.kind === 'decimal') return { lo: v, hi: (v as bigint) + BigInt(transform.width) - 1n, exact: false };
      return null; // string/binary prefixes give no finite upper bound
    default:
      return null;
  }
}

/** Metrics truncation length for string/binary columns from table properties (default truncate(16)). */
function truncationLength(md: TableMetadata, columnName: string): number | null {
  const mode = md.properties[`write.metadata.metrics.column.${columnName}`] ?? md.properties['write.metadata.metrics.default'] ?? 'truncate(16)';
  if (mode === 'full') return null;
  const m = /^truncate\((\d+)\)$/.exec(mode);
  return m ? Number(m[1]) : 16;
}

function mayBeTruncated(t: PrimitiveType, v: Value, truncLen: number | null): boolean {
  if (truncLen === null) return false;
  if (t.kind === 'string') return Array.from(v as string).length >= truncLen;
  if (t.kind === 'binary') return (v as Buffer).length >= truncLen;
  return false;
}

/** Resolve a caller's field name (dotted for nested fields) to its id through the current schema. */
export function resolveFieldId(md: TableMetadata, name: string): { id: number; type: PrimitiveType; path: string } {
  for (const [id, f] of indexById(currentSchema(md).struct)) {
    if (f.path === name) {
      if (!isPrimitive(f.field.type) || f.field.type.kind === 'other') throw new IpsError('INVALID_ARGUMENT', `field "${name}" is not a primitive column; ranges need a primitive column`);
      return { id, type: f.field.type, path: f.path };
    }
  }
  const names = [...indexById(currentSchema(md).struct).values()].filter((f) => isPrimitive(f.field.type)).map((f) => f.path);
  throw new IpsError('UNKNOWN_FIELD', `no column "${name}" in the table's current schema (columns: ${names.join(', ')})`);
}

type FileBound = Interval | 'no-values' | null;

/** The interval of a data file's values of a field: its column metrics, else its partition value. */
function dataFileInterval(describer: FileDescriber, fc: FileChange, id: number, type: PrimitiveType, truncLen: number | null): FileBound {
  const df = fc.entry.dataFile;
  const nulls = df.nullValueCounts?.get(id);
  const values = df.valueCounts?.get(id);
  if (values !== undefined && nulls !== undefined && values === nulls) return 'no-values'; // only nulls: no values to bound
  const lb = df.lowerBounds?.get(id);
  const ub = df.upperBounds?.get(id);
  if (lb !== undefined && ub !== undefined) {
    const l = decodeBinaryValue(type, lb);
    const u = decodeBinaryValue(type, ub);
    return { lo: l, hi: u, exact: !mayBeTruncated(type, l, truncLen) && !mayBeTruncated(type, u, truncLen) };
  }
  return partitionBound(describer, fc, id, type);
}

function partitionBound(describer: FileDescriber, fc: FileChange, id: number, type: PrimitiveType): Interval | null {
  for (const pf of describer.boundSpec(fc.manifest.partitionSpecId)) {
    if (pf.field.sourceId !== id || pf.sourceType === null) continue;
    const pv = partitionValueFromAvro(pf.resultType, fc.entry.dataFile.partition.get(pf.field.fieldId));
    const cand = partitionInterval(pf.transform, type, pv);
    if (cand) return { ...cand, exact: false };
  }
  return null;
}

/**
 * The values a delete file can remove. An equality delete on the field says so itself (its
 * bounds over the deleted keys); otherwise the rows it deletes lie in the data files it can
 * touch (its footprint), so their intervals bound it; failing both, its own partition value.
 * Always an over-approximation, hence never exact.
 */
function deleteFileBounds(describer: FileDescriber, fc: FileChange, id: number, type: PrimitiveType, truncLen: number | null): FileBound[] {
  const df = fc.entry.dataFile;
  if (df.content === 2 && df.equalityIds?.includes(id)) {
    const own = dataFileInterval(describer, fc, id, type, truncLen);
    if (own !== null) return [own === 'no-values' ? own : { ...own, exact: false }];
  }
  const fp = fc.footprint;
  if (fp !== undefined && 'files' in fp) {
    return fp.files.map((t) => {
      const b = dataFileInterval(describer, t, id, type, truncLen);
      return b === null || b === 'no-values' ? b : { ...b, exact: false };
    });
  }
  return [partitionBound(describer, fc, id, type)];
}

/**
 * min/max of a field over a set of files: the data files added and removed, and the rows that
 * the added delete files (position deletes, deletion vectors, equality deletes) can delete.
 * Data files are bounded by column metrics, falling back to partition values where the field
 * is the source of an order-preserving transform; delete files as deleteFileBounds says.
 * Removed delete files are left out: they delete nothing new (a DV is replaced by one holding
 * all of its deletes, and a data file's deletes go with it).
 */
export function fieldRange(md: TableMetadata, describer: FileDescriber, files: FileChange[], name: string): FieldRange {
  const { id, type, path } = resolveFieldId(md, name);
  const truncLen = truncationLength(md, path);
  let lo: Value | null = null;
  let hi: Value | null = null;
  let exact = true;
  const missing: string[] = [];
  for (const fc of files) {
    const df = fc.entry.dataFile;
    let bounds: FileBound[];
    if (df.content === 0) bounds = [dataFileInterval(describer, fc, id, type, truncLen)];
    else if (fc.entry.status === EntryStatus.DELETED) continue;
    else bounds = deleteFileBounds(describer, fc, id, type, truncLen);
    for (const iv of bounds) {
      if (iv === 'no-values') continue;
      if (iv === null) {
        missing.push(df.filePath);
        break;
      }
      exact &&= iv.exact;
      if (lo === null || compareValues(type, iv.lo, lo) < 0) lo = iv.lo;
      if (hi === null || compareValues(type, iv.hi, hi) > 0) hi = iv.hi;
    }
  }
  if (missing.length > 0) return { min: null, max: null, flag: 'unbounded', missing_in: [...new Set(missing)] };
  return { min: toJsonValue(type, lo), max: toJsonValue(type, hi), flag: exact ? 'exact' : 'conservative' };
}

export function changedPartitions(describer: FileDescriber, files: FileChange[]): ChangedPartition[] {
  const out = new Map<string, ChangedPartition>();
  for (const fc of files) {
    const specId = fc.manifest.partitionSpecId;
    const bound = describer.boundSpec(specId);
    if (bound.length === 0) continue;
    const parts: string[] = [];
    for (const pf of bound) {
      const v = partitionValueFromAvro(pf.resultType, fc.entry.dataFile.partition.get(pf.field.fieldId));
      parts.push(`${pf.field.name}=${humanPartitionValue(pf.transform, v, (x) => toJsonValue(pf.resultType, x) as string | number | boolean)}`);
    }
    const name = parts.join('/');
    const key = `${specId}:${name}`;
    if (!out.has(key)) out.set(key, { spec_id: specId, partition: describer.partitionJson(specId, fc.entry.dataFile.partition), name });
  }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.spec_id - b.spec_id));
}
