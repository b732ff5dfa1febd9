import { parquetMetadata } from 'hyparquet';
import type { ColumnChunk, FileMetaData, SchemaElement } from 'hyparquet';
import { IpsError, describeError } from '../errors.js';
import type { DataFile } from './manifest.js';
import { currentSchema, specById, type TableMetadata } from './metadata.js';
import { bindSpec } from './partition-values.js';
import { applyTransform, preservesOrder } from './transforms.js';
import { isPrimitive, type NestedField, type PrimitiveType } from './types.js';
import { compareValues, encodeBinaryValue, type Value } from './values.js';

/**
 * Iceberg data-file metadata of a Parquet file, from its footer alone (as Java's
 * `ParquetUtil.fileMetrics`): record count, per-column sizes, value and null counts, lower and
 * upper bounds (single-value binary form), split offsets, and the partition tuple of the
 * table's default spec, derived from the source columns' bounds.
 *
 * Columns are matched to the table schema by the Parquet `field_id`, never by name. Only
 * top-level primitive columns are supported.
 */
export interface ParquetDataFileOptions {
  /** Full location the file is (or will be) stored at; becomes `file_path`. */
  filePath: string;
  md: TableMetadata;
}

// Identity parsers: hyparquet's defaults turn dates and timestamps into JS Dates (lossy) and
// strings into JS strings (the type decides how to read bytes here).
const id = <T>(x: T): T => x;
const PARQUET_PARSERS = {
  timestampFromMilliseconds: id, timestampFromMicroseconds: id, timestampFromNanoseconds: id,
  dateFromDays: id, stringFromBytes: id, uuidFromBytes: id, jsonFromBytes: id,
  geometryFromBytes: id, geographyFromBytes: id,
};

type MetricsMode = { kind: 'none' } | { kind: 'counts' } | { kind: 'truncate'; length: number } | { kind: 'full' };

function parseMode(text: string, where: string): MetricsMode {
  const s = text.trim().toLowerCase();
  if (s === 'none' || s === 'counts' || s === 'full') return { kind: s };
  const m = /^truncate\((\d+)\)$/.exec(s);
  if (m && Number(m[1]) > 0) return { kind: 'truncate', length: Number(m[1]) };
  throw new IpsError('INVALID_PROPERTY', `${where} = "${text}" is not a metrics mode: use none, counts, truncate(N) or full`);
}

/** `write.metadata.metrics.default` (default truncate(16)) and `write.metadata.metrics.column.<name>`. */
function metricsMode(md: TableMetadata, column: string): MetricsMode {
  const colKey = `write.metadata.metrics.column.${column}`;
  const col = md.properties[colKey];
  if (col !== undefined) return parseMode(col, colKey);
  const def = md.properties['write.metadata.metrics.default'];
  return def !== undefined ? parseMode(def, 'write.metadata.metrics.default') : { kind: 'truncate', length: 16 };
}

/** Whether a Parquet column can hold an Iceberg type, and how its statistics read as an Iceberg value. */
function checkColumnType(el: SchemaElement, t: PrimitiveType): string | null {
  const lt = el.logical_type;
  const ct = el.converted_type;
  const unsigned = (ct?.startsWith('UINT_') ?? false) || (lt?.type === 'INTEGER' && !lt.isSigned);
  const tsUnit = lt?.type === 'TIMESTAMP' ? lt.unit : ct === 'TIMESTAMP_MICROS' ? 'MICROS' : ct === 'TIMESTAMP_MILLIS' ? 'MILLIS' : null;
  switch (t.kind) {
    case 'boolean': return el.type === 'BOOLEAN' ? null : 'BOOLEAN';
    case 'int': return el.type === 'INT32' && !unsigned && lt?.type !== 'DATE' && ct !== 'DATE' && ct !== 'DECIMAL' && ct !== 'TIME_MILLIS' ? null : 'INT32 (signed integer)';
    case 'long': return el.type === 'INT64' && !unsigned && tsUnit === null && ct !== 'DECIMAL' && lt?.type !== 'TIME' ? null : 'INT64 (signed integer)';
    case 'float': return el.type === 'FLOAT' ? null : 'FLOAT';
    case 'double': return el.type === 'DOUBLE' ? null : 'DOUBLE';
    case 'date': return el.type === 'INT32' && (ct === 'DATE' || lt?.type === 'DATE') ? null : 'INT32 annotated DATE';
    case 'time': return el.type === 'INT64' && (ct === 'TIME_MICROS' || (lt?.type === 'TIME' && lt.unit === 'MICROS')) ? null : 'INT64 annotated TIME(MICROS)';
    case 'timestamp':
    case 'timestamptz': {
      const utc = lt?.type === 'TIMESTAMP' ? lt.isAdjustedToUTC : true; // the legacy annotation means UTC
      const want = `INT64 annotated TIMESTAMP(MICROS, isAdjustedToUTC=${t.kind === 'timestamptz'})`;
      return el.type === 'INT64' && tsUnit === 'MICROS' && utc === (t.kind === 'timestamptz') ? null : want;
    }
    case 'timestamp_ns':
    case 'timestamptz_ns': {
      const want = `INT64 annotated TIMESTAMP(NANOS, isAdjustedToUTC=${t.kind === 'timestamptz_ns'})`;
      return el.type === 'INT64' && lt?.type === 'TIMESTAMP' && lt.unit === 'NANOS' && lt.isAdjustedToUTC === (t.kind === 'timestamptz_ns') ? null : want;
    }
    case 'string': return el.type === 'BYTE_ARRAY' && (ct === 'UTF8' || lt?.type === 'STRING' || lt?.type === 'ENUM' || lt?.type === 'JSON') ? null : 'BYTE_ARRAY annotated STRING';
    case 'binary': return el.type === 'BYTE_ARRAY' && ct !== 'UTF8' && lt?.type !== 'STRING' ? null : 'BYTE_ARRAY without STRING annotation';
    case 'uuid': return el.type === 'FIXED_LEN_BYTE_ARRAY' && el.type_length === 16 ? null : 'FIXED_LEN_BYTE_ARRAY(16)';
    case 'fixed': return el.type === 'FIXED_LEN_BYTE_ARRAY' && el.type_length === t.length ? null : `FIXED_LEN_BYTE_ARRAY(${t.length})`;
    case 'decimal': return ct === 'DECIMAL' || lt?.type === 'DECIMAL' ? (el.precision === t.precision && el.scale === t.scale ? null : `DECIMAL(${t.precision},${t.scale})`) : `DECIMAL(${t.precision},${t.scale})`;
    case 'other': return `(${t.name} is not supported)`;
  }
}

function describeParquetType(el: SchemaElement): string {
  const ann = el.logical_type ? JSON.stringify(el.logical_type) : el.converted_type;
  return `${el.type ?? 'group'}${ann ? ` ${ann}` : ''}`;
}

/**
 * A statistics value (as hyparquet returns it with identity parsers) as an Iceberg value, or
 * null when the value cannot be used exactly (decimals, which hyparquet converts to floats).
 */
function statValue(t: PrimitiveType, raw: unknown): Value | null {
  if (raw === undefined || raw === null) return null;
  switch (t.kind) {
    case 'boolean': return Boolean(raw);
    case 'int':
    case 'date': return typeof raw === 'number' ? raw : Number(raw);
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns': return typeof raw === 'bigint' ? raw : BigInt(raw as number);
    case 'float':
    case 'double': {
      const n = Number(raw);
      return Number.isNaN(n) ? null : n; // NaN is never a bound
    }
    case 'string': return raw instanceof Uint8Array ? Buffer.from(raw).toString('utf8') : String(raw);
    case 'binary':
    case 'fixed':
    case 'uuid': return raw instanceof Uint8Array ? Buffer.from(raw) : null;
    case 'decimal':
    case 'other': return null;
  }
}

/** Physical types whose deprecated min/max fields use the same (signed) order as min_value/max_value. */
const LEGACY_STATS_OK = new Set(['BOOLEAN', 'INT32', 'INT64', 'FLOAT', 'DOUBLE']);

/** Largest code point that is not a surrogate, after `cp`; null past U+10FFFF. */
function nextCodePoint(cp: number): number | null {
  const n = cp + 1;
  if (n >= 0xd800 && n <= 0xdfff) return 0xe000;
  return n > 0x10ffff ? null : n;
}

/** Java `UnicodeUtil.truncateStringMax`: first N code points, last one incremented (carrying); null if impossible. */
export function truncateStringUpper(s: string, n: number): string | null {
  const cps = Array.from(s, (c) => c.codePointAt(0)!);
  if (cps.length <= n) return s;
  for (let i = n - 1; i >= 0; i--) {
    const next = nextCodePoint(cps[i]!);
    if (next !== null) return String.fromCodePoint(...cps.slice(0, i), next);
  }
  return null;
}

export function truncateBinaryUpper(b: Buffer, n: number): Buffer | null {
  if (b.length <= n) return b;
  for (let i = n - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out;
    }
  }
  return null;
}

function truncateLower(t: PrimitiveType, v: Value, n: number): Value {
  if (t.kind === 'string') return Array.from(v as string).slice(0, n).join('');
  if (t.kind === 'binary') return (v as Buffer).subarray(0, n);
  return v;
}

function truncateUpper(t: PrimitiveType, v: Value, n: number): Value | null {
  if (t.kind === 'string') return truncateStringUpper(v as string, n);
  if (t.kind === 'binary') return truncateBinaryUpper(v as Buffer, n);
  return v;
}

/** Per-column aggregate over the row groups. */
interface ColumnAgg {
  field: NestedField;
  type: PrimitiveType;
  size: bigint;
  values: bigint;
  nulls: bigint | null;
  /** Exact (untruncated) min/max over row groups; `bounded` false when some row group had none. */
  min: Value | null;
  max: Value | null;
  bounded: boolean;
}

function chunkStart(c: ColumnChunk): bigint {
  const md = c.meta_data!;
  const dict = md.dictionary_page_offset;
  return dict !== undefined && dict > 0n && dict < md.data_page_offset ? dict : md.data_page_offset;
}

export function dataFileFromParquet(file: Uint8Array, opts: ParquetDataFileOptions): DataFile {
  const { md, filePath } = opts;
  let pq: FileMetaData;
  try {
    pq = parquetMetadata(file, { parsers: PARQUET_PARSERS, geoparquet: false });
  } catch (e) {
    throw new IpsError('INVALID_PARQUET', `${filePath} is not a readable Parquet file: ${describeError(e)}`, { cause: e });
  }
  const schema = currentSchema(md);
  const byId = new Map(schema.struct.fields.map((f) => [f.id, f] as const));

  // Top-level columns: the root's children, in order. A group child means a nested column.
  const root = pq.schema[0];
  if (!root) throw new IpsError('INVALID_PARQUET', `${filePath} has an empty Parquet schema`);
  const nChildren = root.num_children ?? 0;
  const aggs: ColumnAgg[] = [];
  const seen = new Set<number>();
  for (let i = 1; i <= nChildren; i++) {
    const el = pq.schema[i];
    if (!el) throw new IpsError('INVALID_PARQUET', `${filePath}: Parquet schema is truncated`);
    if ((el.num_children ?? 0) > 0 || el.type === undefined) {
      throw new IpsError('UNSUPPORTED_PARQUET', `${filePath}: column "${el.name}" is nested (struct, list or map); only top-level primitive columns are supported`);
    }
    if (el.repetition_type === 'REPEATED') {
      throw new IpsError('UNSUPPORTED_PARQUET', `${filePath}: column "${el.name}" is repeated; only top-level primitive columns are supported`);
    }
    if (el.field_id === undefined || el.field_id === null) {
      throw new IpsError('PARQUET_NO_FIELD_ID', `${filePath}: column "${el.name}" has no Parquet field_id, so it cannot be matched to the table schema; write the file with field ids (DuckDB: COPY ... (FORMAT PARQUET, FIELD_IDS {${el.name}: <id>, ...}))`);
    }
    const field = byId.get(el.field_id);
    if (!field) {
      throw new IpsError('PARQUET_SCHEMA_MISMATCH', `${filePath}: column "${el.name}" has field_id ${el.field_id}, which is not a top-level field of the table's current schema (${schema.struct.fields.map((f) => `${f.name}=${f.id}`).join(', ')})`);
    }
    if (seen.has(field.id)) throw new IpsError('PARQUET_SCHEMA_MISMATCH', `${filePath}: field_id ${field.id} appears twice`);
    seen.add(field.id);
    if (!isPrimitive(field.type)) {
      throw new IpsError('UNSUPPORTED_PARQUET', `${filePath}: table field "${field.name}" is nested; only top-level primitive columns are supported`);
    }
    const want = checkColumnType(el, field.type);
    if (want !== null) {
      throw new IpsError('PARQUET_TYPE_MISMATCH', `${filePath}: column "${el.name}" (field_id ${field.id}) is ${describeParquetType(el)} but table field "${field.name}" has type ${field.type.kind}, which needs ${want}; cast the column when writing the file`);
    }
    aggs.push({ field, type: field.type, size: 0n, values: 0n, nulls: 0n, min: null, max: null, bounded: true });
  }
  for (const f of schema.struct.fields) {
    if (f.required && !seen.has(f.id)) {
      throw new IpsError('PARQUET_SCHEMA_MISMATCH', `${filePath}: required table field "${f.name}" (id ${f.id}) is not in the file`);
    }
  }

  const splitOffsets: bigint[] = [];
  for (const [g, rg] of pq.row_groups.entries()) {
    if (rg.columns.length !== aggs.length) {
      throw new IpsError('INVALID_PARQUET', `${filePath}: row group ${g} has ${rg.columns.length} column chunks for ${aggs.length} columns`);
    }
    if (rg.columns.length > 0) splitOffsets.push(chunkStart(rg.columns[0]!));
    for (const [c, chunk] of rg.columns.entries()) {
      const a = aggs[c]!;
      const cm = chunk.meta_data;
      if (!cm) throw new IpsError('UNSUPPORTED_PARQUET', `${filePath}: row group ${g} column "${a.field.name}" has no column metadata (encrypted or external columns are not supported)`);
      a.size += BigInt(cm.total_compressed_size);
      a.values += BigInt(cm.num_values);
      const st = cm.statistics;
      const nullCount = st?.null_count;
      if (a.nulls !== null) a.nulls = nullCount === undefined ? null : a.nulls + BigInt(nullCount);
      const legacy = LEGACY_STATS_OK.has(cm.type);
      const lo = statValue(a.type, st?.min_value ?? (legacy ? st?.min : undefined));
      const hi = statValue(a.type, st?.max_value ?? (legacy ? st?.max : undefined));
      const allNull = nullCount !== undefined && BigInt(nullCount) === BigInt(cm.num_values);
      if (lo === null || hi === null) {
        if (!allNull) a.bounded = false; // a chunk with values but no usable min/max: no bound for the file
        continue;
      }
      if (a.min === null || compareValues(a.type, lo, a.min) < 0) a.min = lo;
      if (a.max === null || compareValues(a.type, hi, a.max) > 0) a.max = hi;
    }
  }
  splitOffsets.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

  const columnSizes = new Map<number, bigint>();
  const valueCounts = new Map<number, bigint>();
  const nullValueCounts = new Map<number, bigint>();
  const lowerBounds = new Map<number, Buffer>();
  const upperBounds = new Map<number, Buffer>();
  for (const a of aggs) {
    if (a.field.required && a.nulls !== null && a.nulls > 0n) {
      throw new IpsError('PARQUET_SCHEMA_MISMATCH', `${filePath}: required field "${a.field.name}" has ${a.nulls} null value(s)`);
    }
    const mode = metricsMode(md, a.field.name);
    if (mode.kind === 'none') continue;
    columnSizes.set(a.field.id, a.size);
    valueCounts.set(a.field.id, a.values);
    if (a.nulls !== null) nullValueCounts.set(a.field.id, a.nulls);
    if (mode.kind === 'counts' || !a.bounded || a.min === null || a.max === null) continue;
    const n = mode.kind === 'truncate' ? mode.length : Infinity;
    lowerBounds.set(a.field.id, encodeBinaryValue(a.type, Number.isFinite(n) ? truncateLower(a.type, a.min, n) : a.min));
    const up = Number.isFinite(n) ? truncateUpper(a.type, a.max, n) : a.max;
    if (up !== null) upperBounds.set(a.field.id, encodeBinaryValue(a.type, up));
  }

  return {
    content: 0,
    filePath,
    fileFormat: 'PARQUET',
    partition: partitionOf(md, aggs, filePath),
    recordCount: BigInt(pq.num_rows),
    fileSizeInBytes: BigInt(file.length),
    columnSizes,
    valueCounts,
    nullValueCounts,
    nanValueCounts: null,
    lowerBounds,
    upperBounds,
    keyMetadata: null,
    splitOffsets,
    equalityIds: null,
    sortOrderId: null,
    firstRowId: null,
    referencedDataFile: null,
    contentOffset: null,
    contentSizeInBytes: null,
  };
}

/**
 * The file's partition tuple under the default spec: each transform applied to the source
 * column's exact min and max. Order-preserving transforms prove a single partition when both
 * ends agree; other transforms (bucket) need min = max. A column of only nulls is the null
 * partition; nulls beside values span two partitions.
 */
function partitionOf(md: TableMetadata, aggs: ColumnAgg[], filePath: string): Map<number, unknown> {
  const out = new Map<number, unknown>();
  const spec = specById(md, md.defaultSpecId);
  for (const pf of bindSpec(md, spec)) {
    const name = pf.field.name;
    if (pf.transform.kind === 'void') {
      out.set(pf.field.fieldId, null);
      continue;
    }
    if (pf.transform.kind === 'unknown' || pf.sourceType === null) {
      throw new IpsError('UNSUPPORTED_TRANSFORM', `partition field "${name}" uses transform ${pf.field.transform} on field ${pf.field.sourceId}, which ips cannot compute`);
    }
    const a = aggs.find((x) => x.field.id === pf.field.sourceId);
    if (!a) {
      // Absent column = all nulls for an optional field.
      out.set(pf.field.fieldId, null);
      continue;
    }
    if (a.nulls === null) {
      throw new IpsError('PARTITION_UNKNOWN', `${filePath}: column "${a.field.name}" has no null counts in the Parquet statistics, so its partition "${name}" cannot be derived`);
    }
    if (a.nulls === a.values) {
      out.set(pf.field.fieldId, null);
      continue;
    }
    if (!a.bounded || a.min === null || a.max === null) {
      throw new IpsError('PARTITION_UNKNOWN', `${filePath}: column "${a.field.name}" has no min/max statistics in some row group, so its partition "${name}" cannot be derived; write the file with statistics`);
    }
    const lo = applyTransform(pf.transform, a.type, a.min);
    const hi = applyTransform(pf.transform, a.type, a.max);
    const fmt = (v: Value | null): string => (Buffer.isBuffer(v) ? v.toString('hex') : String(v));
    if (a.nulls > 0n) {
      throw new IpsError('PARTITION_MISMATCH', `file spans partitions: ${filePath} has ${a.nulls} null and ${a.values - a.nulls} non-null value(s) in "${a.field.name}", so it belongs to both the null partition and ${name}=${fmt(lo)}; write one file per partition`);
    }
    const same = preservesOrder(pf.transform)
      ? lo !== null && hi !== null && compareValues(pf.resultType, lo, hi) === 0
      : compareValues(a.type, a.min, a.max) === 0;
    if (!same) {
      throw new IpsError('PARTITION_MISMATCH', `file spans partitions: ${filePath} has "${a.field.name}" from ${fmt(a.min)} to ${fmt(a.max)}, which gives ${name}=${fmt(lo)} to ${fmt(hi)}; write one file per partition`);
    }
    out.set(pf.field.fieldId, lo);
  }
  return out;
}
