import fs from 'node:fs';
import {
  AsyncByteQueue, Bool, DataType, DateDay, Decimal, Field, FixedSizeBinary, Float32, Float64, Int32, Int64,
  LargeBinary, LargeUtf8, RecordBatch, RecordBatchStreamWriter, Schema as ArrowSchema, Struct, TimeMicrosecond,
  Timestamp, TimeUnit, makeData, type Data,
} from 'apache-arrow';
import type { BytesColumn, FixedColumn } from '../engine/duckdb.js';
import { IpsError } from '../errors.js';
import type { PrimitiveType, Schema } from '../iceberg/types.js';
import type { RowChange } from './net-rows.js';
import { bytesValues, fixedValues, type NativeBatch, type NativeColumn, type NativeValue } from './native.js';

/**
 * Row changes as Apache Arrow: the Iceberg → Arrow type mapping of PyIceberg's
 * `schema_to_pyarrow` (large_string, large_binary, decimal128, date32, time64[us],
 * timestamp[us] / timestamp[us, UTC], fixed_size_binary, uuid as the canonical `arrow.uuid`
 * extension over fixed_size_binary(16)), each field carrying its Iceberg id as
 * `PARQUET:field_id` metadata, then the changelog columns with the ids Iceberg reserves for
 * them (MetadataColumns.CHANGE_TYPE, CHANGE_ORDINAL, COMMIT_SNAPSHOT_ID).
 *
 * Values arrive as the row computation renders them (`ips inspect --json` forms: 64-bit
 * integers and decimals as strings, timestamps ISO-8601, binary as hex) and are parsed back
 * into exact Arrow buffers here, never through a JavaScript number for 64-bit values.
 */
export const CHANGELOG_FIELD_IDS = { _change_type: 2147483543, _change_ordinal: 2147483542, _commit_snapshot_id: 2147483541 } as const;

export const FIELD_ID_KEY = 'PARQUET:field_id';

/** Rows per record batch: bounds the memory one batch takes. */
export const DEFAULT_BATCH_ROWS = 8192;

type ColumnKind = PrimitiveType | { kind: 'changelog_ordinal' } | { kind: 'snapshot_id' };

interface Column {
  name: string;
  kind: ColumnKind;
  type: DataType;
}

function arrowType(t: PrimitiveType, name: string): DataType {
  switch (t.kind) {
    case 'boolean': return new Bool();
    case 'int': return new Int32();
    case 'long': return new Int64();
    case 'float': return new Float32();
    case 'double': return new Float64();
    case 'decimal': return new Decimal(t.scale, t.precision, 128);
    case 'date': return new DateDay();
    case 'time': return new TimeMicrosecond();
    case 'timestamp': return new Timestamp(TimeUnit.MICROSECOND);
    case 'timestamptz': return new Timestamp(TimeUnit.MICROSECOND, 'UTC');
    case 'timestamp_ns': return new Timestamp(TimeUnit.NANOSECOND);
    case 'string': return new LargeUtf8();
    case 'uuid': return new FixedSizeBinary(16);
    case 'fixed': return new FixedSizeBinary(t.length);
    case 'binary': return new LargeBinary();
    default:
      throw new IpsError('UNSUPPORTED_TYPE', `column ${name} is ${t.kind}: row changes cannot be written as Arrow for it`);
  }
}

/** The Arrow schema of a row-change stream over an Iceberg schema of primitive columns. */
export function rowChangeColumns(schema: Schema): { schema: ArrowSchema; columns: Column[] } {
  const columns: Column[] = [];
  const fields: Field[] = [];
  for (const f of schema.struct.fields) {
    if (f.type.kind === 'struct' || f.type.kind === 'list' || f.type.kind === 'map') {
      throw new IpsError('UNSUPPORTED_TYPE', `column ${f.name} is ${f.type.kind}: row changes read primitive columns only`);
    }
    const type = arrowType(f.type, f.name);
    const md = new Map([[FIELD_ID_KEY, String(f.id)]]);
    // pyarrow (and other readers) rebuild the canonical UUID type from these keys.
    if (f.type.kind === 'uuid') md.set('ARROW:extension:name', 'arrow.uuid').set('ARROW:extension:metadata', '');
    fields.push(new Field(f.name, type, !f.required, md));
    columns.push({ name: f.name, kind: f.type, type });
  }
  const extra: [keyof typeof CHANGELOG_FIELD_IDS, ColumnKind, DataType, boolean][] = [
    ['_change_type', { kind: 'string' }, new LargeUtf8(), false],
    ['_change_ordinal', { kind: 'changelog_ordinal' }, new Int32(), true],
    ['_commit_snapshot_id', { kind: 'snapshot_id' }, new Int64(), true],
  ];
  for (const [name, kind, type, nullable] of extra) {
    fields.push(new Field(name, type, nullable, new Map([[FIELD_ID_KEY, String(CHANGELOG_FIELD_IDS[name])]])));
    columns.push({ name, kind, type });
  }
  return { schema: new ArrowSchema(fields), columns };
}

const TS_RE = /^([+-]?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(\+00:00)?$/;
const DATE_RE = /^([+-]?\d{4,})-(\d{2})-(\d{2})$/;
const TIME_RE = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function bad(col: string, t: string, v: unknown): never {
  throw new IpsError('ROWS_FAILED', `column ${col}: cannot write ${JSON.stringify(v)} as Arrow ${t}`);
}

function parseDays(col: string, v: unknown): number {
  const m = typeof v === 'string' ? DATE_RE.exec(v) : null;
  if (!m) bad(col, 'date32', v);
  return daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3]));
}

/** Units since the epoch of an ISO-8601 timestamp with up to `digits` fractional digits. */
function parseTimestamp(col: string, v: unknown, digits: number, zone: boolean): bigint {
  const m = typeof v === 'string' ? TS_RE.exec(v) : null;
  if (!m || Boolean(m[8]) !== zone || (m[7] ?? '').length > digits) bad(col, zone ? 'timestamp with zone' : 'timestamp', v);
  const days = BigInt(daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3])));
  const secs = days * 86_400n + BigInt(Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]));
  return secs * 10n ** BigInt(digits) + BigInt((m[7] ?? '').padEnd(digits, '0') || '0');
}

function parseTime(col: string, v: unknown): bigint {
  const m = typeof v === 'string' ? TIME_RE.exec(v) : null;
  if (!m) bad(col, 'time64[us]', v);
  return BigInt(Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1_000_000n + BigInt((m[4] ?? '').padEnd(6, '0'));
}

function parseFloat(col: string, v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return bad(col, 'floating point', v);
}

/** Unscaled value of a decimal's text at `scale` (exact: digits only, no floating point). */
export function unscaledDecimal(col: string, v: unknown, scale: number): bigint {
  const m = typeof v === 'string' ? /^(-?)(\d+)(?:\.(\d+))?$/.exec(v) : null;
  if (!m || (m[3] ?? '').length > scale) bad(col, `decimal with scale ${scale}`, v);
  const u = BigInt(m[2]! + (m[3] ?? '').padEnd(scale, '0'));
  return m[1] ? -u : u;
}

function hexBytes(col: string, v: unknown, length: number | null): Uint8Array {
  const s = typeof v === 'string' ? v.replace(/-/g, '') : '';
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(s) || (length !== null && s.length !== length * 2)) bad(col, length === null ? 'binary' : `fixed_size_binary(${length})`, v);
  return Buffer.from(s, 'hex');
}

function bitmap(n: number, valid: (i: number) => boolean): { bits: Uint8Array; nulls: number } {
  const bits = new Uint8Array(Math.ceil(n / 8));
  let nulls = 0;
  for (let i = 0; i < n; i++) {
    if (valid(i)) bits[i >> 3]! |= 1 << (i & 7);
    else nulls++;
  }
  return { bits, nulls };
}

/** A JSON value (the row computation's `emit` form) as the native value of its column's kind. */
function nativeOfJson(c: Column, v: unknown): NativeValue {
  if (v === null || v === undefined) return null;
  const k = c.kind;
  switch (k.kind) {
    case 'boolean': return typeof v === 'boolean' ? v : bad(c.name, 'bool', v);
    case 'int':
    case 'changelog_ordinal': return typeof v === 'number' && Number.isInteger(v) ? v : bad(c.name, 'int32', v);
    case 'long':
    case 'snapshot_id': return typeof v === 'string' && /^-?\d+$/.test(v) ? BigInt.asIntN(64, BigInt(v)) : bad(c.name, 'int64', v);
    case 'float':
    case 'double': return parseFloat(c.name, v);
    case 'decimal': return unscaledDecimal(c.name, v, k.scale);
    case 'date': return parseDays(c.name, v);
    case 'time': return parseTime(c.name, v);
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns': return parseTimestamp(c.name, v, k.kind === 'timestamp_ns' ? 9 : 6, k.kind === 'timestamptz');
    case 'uuid': return hexBytes(c.name, v, 16);
    case 'fixed': return hexBytes(c.name, v, k.length);
    case 'binary': return hexBytes(c.name, v, null);
    case 'string': return typeof v === 'string' ? Buffer.from(v, 'utf8') : bad(c.name, 'string', v);
    default: return bad(c.name, String(k.kind), v);
  }
}

/** One column of a record batch from its JSON values. */
function columnData(c: Column, values: unknown[]): Data {
  return columnDataNative(c, values.map((v) => nativeOfJson(c, v)));
}

/** Offsets and bytes of a (large) binary or string column from each value's bytes. */
function largeBinary(values: readonly NativeValue[], n: number, name: string): { valueOffsets: BigInt64Array; data: Uint8Array } {
  let size = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== null) size += v instanceof Uint8Array ? v.length : bad(name, 'bytes', v);
  }
  const data = new Uint8Array(size);
  const valueOffsets = new BigInt64Array(n + 1);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] as Uint8Array | null;
    if (v !== null) {
      data.set(v, at);
      at += v.length;
    }
    valueOffsets[i + 1] = BigInt(at);
  }
  return { valueOffsets, data };
}

/** One column of a record batch from native values (src/rows/native.ts): typed, no text to parse. */
function columnDataNative(c: Column, values: readonly NativeValue[]): Data {
  const n = values.length;
  const { bits, nulls } = bitmap(n, (i) => values[i] !== null);
  const base = { type: c.type, length: n, nullCount: nulls, nullBitmap: nulls > 0 ? bits : null };
  const fill = <T>(arr: { [i: number]: T }, ok: (v: NativeValue) => v is NativeValue & T, t: string) => {
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v !== null) arr[i] = ok(v) ? v : bad(c.name, t, v);
    }
  };
  const isNumber = (v: NativeValue): v is number => typeof v === 'number';
  const isBigint = (v: NativeValue): v is bigint => typeof v === 'bigint';
  const k = c.kind;
  switch (k.kind) {
    case 'boolean': return makeData({ ...base, type: c.type as Bool, data: bitmap(n, (i) => values[i] === true).bits });
    case 'int':
    case 'changelog_ordinal':
    case 'date': {
      const a = new Int32Array(n);
      fill(a, isNumber, 'int32');
      return makeData({ ...base, type: c.type as Int32, data: a });
    }
    case 'float': {
      const a = new Float32Array(n);
      fill(a, isNumber, 'float');
      return makeData({ ...base, type: c.type as Float32, data: a });
    }
    case 'double': {
      const a = new Float64Array(n);
      fill(a, isNumber, 'double');
      return makeData({ ...base, type: c.type as Float64, data: a });
    }
    case 'long':
    case 'snapshot_id':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns': {
      const a = new BigInt64Array(n);
      fill(a, isBigint, 'int64');
      return makeData({ ...base, type: c.type as Int64, data: a as unknown as Int32Array });
    }
    case 'decimal': {
      // 128-bit little-endian two's complement, as four 32-bit words per value.
      const a = new BigInt64Array(n * 2);
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (v === null) continue;
        const u = BigInt.asUintN(128, isBigint(v) ? v : bad(c.name, 'decimal', v));
        a[2 * i] = BigInt.asIntN(64, u & 0xffff_ffff_ffff_ffffn);
        a[2 * i + 1] = BigInt.asIntN(64, u >> 64n);
      }
      return makeData({ ...base, type: c.type as Decimal, data: new Uint32Array(a.buffer) });
    }
    case 'uuid':
    case 'fixed': {
      const len = k.kind === 'uuid' ? 16 : k.length;
      const a = new Uint8Array(n * len);
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (v === null) continue;
        if (!(v instanceof Uint8Array) || v.length !== len) bad(c.name, `fixed_size_binary(${len})`, v);
        a.set(v, i * len);
      }
      return makeData({ ...base, type: c.type as FixedSizeBinary, data: a });
    }
    case 'string': return makeData({ ...base, type: c.type as LargeUtf8, ...largeBinary(values, n, c.name) });
    case 'binary': return makeData({ ...base, type: c.type as LargeBinary, ...largeBinary(values, n, c.name) });
    default:
      return bad(c.name, String(k.kind), values[0]);
  }
}

/** The chunks' validity bits one after the other (each chunk's start at its bit 0), and the nulls. */
function joinValidity(parts: readonly { col: { valid: Uint8Array | null }; rows: number }[], n: number): { bits: Uint8Array; nulls: number } {
  const bits = new Uint8Array(Math.ceil(n / 8));
  let nulls = 0;
  let at = 0;
  for (const { col, rows } of parts) {
    if (col.valid === null && at % 8 === 0) {
      bits.fill(0xff, at >> 3, (at + rows) >> 3);
      for (let i = (at + rows) & ~7; i < at + rows; i++) bits[i >> 3]! |= 1 << (i & 7);
    } else {
      for (let i = 0; i < rows; i++) {
        if (col.valid === null || col.valid[i >> 3]! & (1 << (i & 7))) bits[(at + i) >> 3]! |= 1 << ((at + i) & 7);
        else nulls++;
      }
    }
    at += rows;
  }
  return { bits, nulls };
}

/** A (large) string or binary column from chunks of bytes: their data concatenated, offsets shifted. */
function bytesData(c: Column, parts: readonly { col: BytesColumn; rows: number }[], n: number): Data {
  const { bits, nulls } = joinValidity(parts, n);
  let size = 0;
  for (const { col } of parts) size += col.data.length;
  const data = new Uint8Array(size);
  // 64-bit offsets as pairs of 32-bit words (no bigint per value); the high word is set past 2^32.
  const words = new Uint32Array(2 * (n + 1));
  let row = 0;
  let base = 0;
  for (const { col, rows } of parts) {
    data.set(col.data, base);
    for (let i = 1; i <= rows; i++) {
      const off = base + col.offsets[i]!;
      words[2 * (row + i)] = off >>> 0;
      words[2 * (row + i) + 1] = Math.floor(off / 2 ** 32);
    }
    row += rows;
    base += col.data.length;
  }
  const valueOffsets = new BigInt64Array(words.buffer);
  const props = { length: n, nullCount: nulls, nullBitmap: nulls > 0 ? bits : null, valueOffsets, data };
  return c.kind.kind === 'string' ? makeData({ ...props, type: c.type as LargeUtf8 }) : makeData({ ...props, type: c.type as LargeBinary });
}

/**
 * One column of a record batch from its chunks: values go through columnDataNative; chunks of
 * bytes (fixed-width kinds) are copied in bulk, the validity bits shifted into place, booleans
 * packed into bits and narrower decimals sign-extended to 128 bits.
 */
function columnDataChunks(c: Column, chunks: readonly { col: NativeColumn; rows: number }[], n: number): Data {
  const kindOf = (col: NativeColumn) => (Array.isArray(col) ? 'values' : (col as FixedColumn | BytesColumn).kind);
  const kinds = new Set(chunks.map((x) => kindOf(x.col)));
  if (kinds.size === 1 && kinds.has('bytes') && (c.kind.kind === 'string' || c.kind.kind === 'binary')) {
    return bytesData(c, chunks as readonly { col: BytesColumn; rows: number }[], n);
  }
  if (kinds.size !== 1 || !kinds.has('fixed')) {
    const values: NativeValue[] = [];
    for (const { col } of chunks) {
      const vs = Array.isArray(col) ? col : kindOf(col) === 'bytes' ? bytesValues(col as BytesColumn) : fixedValues(c.kind.kind, col as FixedColumn);
      for (const v of vs) values.push(v);
    }
    return columnDataNative(c, values);
  }
  const parts = chunks as readonly { col: FixedColumn; rows: number }[];
  const width = parts[0]!.col.width;
  if (parts.some((p) => p.col.width !== width)) bad(c.name, 'one width', parts.map((p) => p.col.width));
  const kind = c.kind.kind;
  const { bits, nulls } = joinValidity(parts, n);
  const base = { type: c.type, length: n, nullCount: nulls, nullBitmap: nulls > 0 ? bits : null };
  if (kind === 'boolean') {
    const data = new Uint8Array(Math.ceil(n / 8));
    let row = 0;
    for (const { col, rows } of parts) {
      for (let i = 0; i < rows; i++, row++) if (col.data[i] !== 0) data[row >> 3]! |= 1 << (row & 7);
    }
    return makeData({ ...base, type: c.type as Bool, data });
  }
  if (kind === 'decimal' && width < 16) {
    // 128-bit little-endian two's complement: the value's words, then its sign in the rest.
    const out = new Int32Array(n * 4);
    let row = 0;
    for (const { col, rows } of parts) {
      const d = col.data;
      if (width === 8) {
        const w = new Int32Array(d.buffer, d.byteOffset, rows * 2);
        for (let i = 0; i < rows; i++, row++) {
          const hi = w[2 * i + 1]!;
          const s = hi >> 31;
          out[4 * row] = w[2 * i]!;
          out[4 * row + 1] = hi;
          out[4 * row + 2] = s;
          out[4 * row + 3] = s;
        }
      } else {
        const w = width === 4 ? new Int32Array(d.buffer, d.byteOffset, rows) : new Int16Array(d.buffer, d.byteOffset, rows);
        for (let i = 0; i < rows; i++, row++) {
          const v = w[i]!;
          const s = v >> 31;
          out[4 * row] = v;
          out[4 * row + 1] = s;
          out[4 * row + 2] = s;
          out[4 * row + 3] = s;
        }
      }
    }
    return makeData({ ...base, type: c.type as Decimal, data: new Uint32Array(out.buffer) });
  }
  // The engine's bytes are Arrow's: concatenated (once their width is the Arrow type's).
  const arrowWidth = kind === 'double' || kind === 'long' || kind === 'snapshot_id' || kind === 'time' || kind.startsWith('timestamp') ? 8
    : kind === 'decimal' ? 16 : 4;
  if (width !== arrowWidth) bad(c.name, `${kind} from ${width}-byte values`, parts[0]!.col.type);
  const data = new Uint8Array(n * width);
  let at = 0;
  for (const { col, rows } of parts) {
    data.set(col.data.subarray(0, rows * width), at);
    at += rows * width;
  }
  switch (kind) {
    case 'int':
    case 'changelog_ordinal':
    case 'date': return makeData({ ...base, type: c.type as Int32, data: new Int32Array(data.buffer) });
    case 'float': return makeData({ ...base, type: c.type as Float32, data: new Float32Array(data.buffer) });
    case 'double': return makeData({ ...base, type: c.type as Float64, data: new Float64Array(data.buffer) });
    case 'decimal': return makeData({ ...base, type: c.type as Decimal, data: new Uint32Array(data.buffer) });
    case 'long':
    case 'snapshot_id':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns': return makeData({ ...base, type: c.type as Int64, data: new Int32Array(data.buffer) });
    default: return bad(c.name, `${parts[0]!.col.type} as bytes`, kind);
  }
}

/** The bytes the IPC writer produces, handed on synchronously (a file descriptor, a socket). */
class SyncSink extends AsyncByteQueue {
  constructor(private readonly out: (chunk: Uint8Array) => void) {
    super();
  }

  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.out(value);
  }
}

/**
 * Writes row changes as an Arrow IPC stream (`application/vnd.apache.arrow.stream`) in record
 * batches of `batchRows`: memory is one batch, whatever the number of rows. `push` is
 * synchronous so it can be the row computation's emit callback.
 */
export class ArrowRowWriter {
  private readonly writer: RecordBatchStreamWriter;
  private readonly columns: Column[];
  private readonly schema: ArrowSchema;
  private pending: RowChange[] = [];
  private native: { col: NativeColumn; rows: number }[][] | null = null;
  private nativeRows = 0;
  rows = 0;

  constructor(schema: Schema, out: (chunk: Uint8Array) => void, private readonly batchRows = DEFAULT_BATCH_ROWS) {
    const s = rowChangeColumns(schema);
    this.schema = s.schema;
    this.columns = s.columns;
    this.writer = new RecordBatchStreamWriter();
    this.writer.reset(new SyncSink(out), this.schema);
  }

  push(row: RowChange): void {
    this.pending.push(row);
    if (this.pending.length >= this.batchRows) this.flush();
  }

  /**
   * Rows as native columns (the row computation's `nativeOut`), gathered into batches of
   * `batchRows`. Not to be mixed with `push` in one stream.
   */
  pushColumns(batch: NativeBatch): void {
    if (this.native === null) this.native = this.columns.map(() => []);
    if (batch.columns.length !== this.columns.length) throw new IpsError('ROWS_FAILED', `a batch of ${batch.columns.length} columns for a stream of ${this.columns.length}`);
    for (let i = 0; i < this.columns.length; i++) this.native[i]!.push({ col: batch.columns[i]!, rows: batch.rowCount });
    this.nativeRows += batch.rowCount;
    if (this.nativeRows >= this.batchRows) this.flushNative();
  }

  private flushNative(): void {
    if (this.native === null || this.nativeRows === 0) return;
    const cols = this.native;
    const n = this.nativeRows;
    this.native = this.columns.map(() => []);
    this.nativeRows = 0;
    const children = this.columns.map((c, i) => columnDataChunks(c, cols[i]!, n));
    const struct = makeData({ type: new Struct(this.schema.fields), length: n, nullCount: 0, children });
    this.writer.write(new RecordBatch(this.schema, struct));
    this.rows += n;
  }

  private flush(): void {
    this.flushNative();
    if (this.pending.length === 0) return;
    const rows = this.pending;
    this.pending = [];
    const children = this.columns.map((c) => columnData(c, rows.map((r) => r[c.name])));
    const struct = makeData({ type: new Struct(this.schema.fields), length: rows.length, nullCount: 0, children });
    this.writer.write(new RecordBatch(this.schema, struct));
    this.rows += rows.length;
  }

  /** Writes what is pending and the end-of-stream marker. */
  finish(): void {
    this.flush();
    this.writer.finish();
  }
}

/** An Arrow writer into a file descriptor (synchronous writes: no buffering beyond one batch). */
export function arrowToFd(schema: Schema, fd: number, batchRows?: number): ArrowRowWriter {
  return new ArrowRowWriter(schema, (chunk) => {
    let off = 0;
    while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off);
  }, batchRows);
}
