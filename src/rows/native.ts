import type { BytesColumn, FixedColumn } from '../engine/duckdb.js';
import { IpsError } from '../errors.js';
import type { PrimitiveType } from '../iceberg/types.js';
import { formatTimestamp, type JsonValue } from '../iceberg/values.js';
import { renderValue, selectExpr } from './render.js';

/**
 * Column values as the engine holds them, for writers that want them typed (Arrow): no text is
 * rendered and parsed back. A value is a boolean, a number (int, float, double, date as days
 * since the epoch), a bigint (long, decimal's unscaled value, time and timestamps in their
 * units since midnight or the epoch) or bytes (string as UTF-8, binary, fixed, uuid), or null.
 */
export type NativeValue = boolean | number | bigint | Uint8Array | null;

/**
 * A column of a chunk: its values, or the engine's bytes of them (fixed-width kinds, checked
 * against the column's kind by `fixedLayout`; strings and binary as one buffer with offsets),
 * which an Arrow writer copies in bulk.
 */
export type NativeColumn = NativeValue[] | FixedColumn | BytesColumn;

/** A chunk of rows as columns (the table's, then `_change_type`, `_change_ordinal`, `_commit_snapshot_id`). */
export interface NativeBatch {
  columns: NativeColumn[];
  rowCount: number;
}

/**
 * The engine layout of a fixed-width kind: the DuckDB type the column has (as `nativeExpr`
 * selects it from a table typed by the Iceberg schema) and its width; null for the others
 * (strings, binary and fixed come as a BytesColumn, uuids as their text).
 */
export function fixedLayout(t: PrimitiveType): { type: string; width: number } | null {
  switch (t.kind) {
    case 'boolean': return { type: 'BOOLEAN', width: 1 };
    case 'int': return { type: 'INTEGER', width: 4 };
    case 'long': return { type: 'BIGINT', width: 8 };
    case 'float': return { type: 'FLOAT', width: 4 };
    case 'double': return { type: 'DOUBLE', width: 8 };
    case 'date': return { type: 'DATE', width: 4 };
    case 'time': return { type: 'TIME', width: 8 };
    case 'timestamp': return { type: 'TIMESTAMP', width: 8 };
    case 'timestamptz': return { type: 'TIMESTAMP WITH TIME ZONE', width: 8 };
    case 'timestamp_ns': return { type: 'TIMESTAMP_NS', width: 8 };
    case 'decimal': {
      const p = t.precision;
      return { type: `DECIMAL(${p},${t.scale})`, width: p <= 4 ? 2 : p <= 9 ? 4 : p <= 18 ? 8 : 16 };
    }
    default: return null;
  }
}

/** SQL (DuckDB) selecting a column so that `nativeValues` can read its values without text. */
export function nativeExpr(column: string, t: PrimitiveType): string {
  const c = `"${column}"`;
  switch (t.kind) {
    // encode(): the string's UTF-8 bytes as a BLOB, exactly (a cast would read escapes).
    case 'string': return `encode(${c}) AS ${c}`;
    // DuckDB's UUID is a flipped hugeint: its canonical text is the one exact form at hand.
    case 'uuid': return `CAST(${c} AS VARCHAR) AS ${c}`;
    default: return `${c} AS ${c}`;
  }
}

function bad(t: PrimitiveType, v: unknown): never {
  throw new IpsError('ROWS_FAILED', `the engine gave ${typeof v} ${String(v)} for a ${t.kind} column`);
}

/** The values of a BytesColumn, each a view of its bytes (null where the row is null). */
export function bytesValues(c: BytesColumn): NativeValue[] {
  const n = c.offsets.length - 1;
  const out: NativeValue[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = c.valid !== null && !(c.valid[i >> 3]! & (1 << (i & 7))) ? null : c.data.subarray(c.offsets[i]!, c.offsets[i + 1]!);
  }
  return out;
}

/**
 * The values of a FixedColumn as native values (`kind` tells a float from an int of the same
 * width, and a decimal's unscaled value, a bigint, from an int).
 */
export function fixedValues(kind: string, f: FixedColumn): NativeValue[] {
  const n = f.data.length / f.width;
  const out: NativeValue[] = new Array(n);
  const d = f.data;
  // Typed views of the copy (offset 0, so aligned); 16-byte values are read as two words.
  const typed: ArrayLike<NativeValue> | null = f.width === 2 ? new Int16Array(d.buffer, d.byteOffset, n)
    : f.width === 4 ? (kind === 'float' ? new Float32Array(d.buffer, d.byteOffset, n) : new Int32Array(d.buffer, d.byteOffset, n))
      : f.width === 8 ? (kind === 'double' ? new Float64Array(d.buffer, d.byteOffset, n) : new BigInt64Array(d.buffer, d.byteOffset, n))
        : null;
  const words = f.width === 16 ? new BigInt64Array(d.buffer, d.byteOffset, 2 * n) : null;
  if (f.width !== 1 && typed === null && words === null) throw new IpsError('ROWS_FAILED', `a ${f.type} column of ${f.width} bytes a value`);
  const widen = kind === 'decimal' && (f.width === 2 || f.width === 4);
  for (let i = 0; i < n; i++) {
    if (f.valid !== null && !(f.valid[i >> 3]! & (1 << (i & 7)))) out[i] = null;
    else if (f.width === 1) out[i] = d[i] !== 0;
    else if (words !== null) out[i] = (words[2 * i + 1]! << 64n) | BigInt.asUintN(64, words[2 * i]!);
    else out[i] = widen ? BigInt(typed![i] as number) : typed![i]!;
  }
  return out;
}

/** `_change_type` values as their UTF-8 bytes, one Buffer per distinct kind (a handful). */
export function changeTypeColumn(): (kinds: readonly unknown[]) => NativeValue[] {
  const bytes = new Map<string, Uint8Array>();
  return (kinds) => kinds.map((k) => {
    if (typeof k !== 'string') throw new IpsError('ROWS_FAILED', `a _change_type of ${String(k)}`);
    return bytes.get(k) ?? bytes.set(k, Buffer.from(k, 'utf8')).get(k)!;
  });
}

/** A column of `n` rows holding one value (the changelog's ordinal and snapshot id), as bytes. */
export function constantColumn(type: 'INTEGER' | 'BIGINT', n: number, value: number | bigint): FixedColumn {
  const data = type === 'INTEGER' ? new Int32Array(n).fill(Number(value)) : new BigInt64Array(n).fill(BigInt(value));
  return { kind: 'fixed', type, width: data.BYTES_PER_ELEMENT, data: new Uint8Array(data.buffer), valid: null };
}

/**
 * One column of an engine chunk (of a `nativeExpr` select) as native values; a column the engine
 * gave as bytes passes as it is once its type is the one the kind has there.
 */
export function nativeColumn(t: PrimitiveType, column: readonly unknown[] | FixedColumn | BytesColumn): NativeColumn {
  if (!Array.isArray(column) && (column as BytesColumn).kind === 'bytes') {
    const bytes = column as BytesColumn;
    // `nativeExpr` selects strings through encode(): BLOBs, as binary and fixed are.
    if (bytes.type !== 'BLOB' || (t.kind !== 'string' && t.kind !== 'binary' && t.kind !== 'fixed')) {
      throw new IpsError('ROWS_FAILED', `the engine gave ${bytes.type} bytes for a ${t.kind} column`);
    }
    return t.kind === 'fixed' ? bytesValues(bytes) : bytes;
  }
  if (!Array.isArray(column)) {
    const fixed = column as FixedColumn;
    const want = fixedLayout(t);
    if (want === null || want.type !== fixed.type || want.width !== fixed.width) {
      throw new IpsError('ROWS_FAILED', `the engine gave ${fixed.type} (${fixed.width} bytes a value) for a ${t.kind} column`);
    }
    return fixed;
  }
  return nativeValues(t, column);
}

/** One column of an engine chunk (DuckDB values of a `nativeExpr` select) as native values. */
export function nativeValues(t: PrimitiveType, values: readonly unknown[]): NativeValue[] {
  const out: NativeValue[] = new Array(values.length);
  const each = (f: (v: unknown) => NativeValue): NativeValue[] => {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = v === null || v === undefined ? null : f(v);
    }
    return out;
  };
  const field = <K extends string>(key: K) => (v: unknown) => {
    const x = (v as Record<K, unknown>)[key];
    return typeof x === 'bigint' || typeof x === 'number' || x instanceof Uint8Array ? x : bad(t, v);
  };
  switch (t.kind) {
    case 'boolean': return each((v) => (typeof v === 'boolean' ? v : bad(t, v)));
    case 'int':
    case 'float':
    case 'double': return each((v) => (typeof v === 'number' ? v : bad(t, v)));
    case 'long': return each((v) => (typeof v === 'bigint' ? v : bad(t, v)));
    case 'decimal': return each(field('value'));
    case 'date': return each(field('days'));
    case 'time':
    case 'timestamp':
    case 'timestamptz': return each(field('micros'));
    case 'timestamp_ns': return each(field('nanos'));
    case 'string':
    case 'binary':
    case 'fixed': return each(field('bytes'));
    case 'uuid': return each((v) => (typeof v === 'string' && /^[0-9a-f-]{36}$/i.test(v) ? Buffer.from(v.replace(/-/g, ''), 'hex') : bad(t, v)));
    default: return bad(t, values[0]);
  }
}

/**
 * For JSON values (`ips inspect --json` forms): the SQL of a column whose values `jsonValues`
 * turns into them. Decimals, dates and uuids come as DuckDB's text, exactly the forms wanted;
 * the others as typed values, formatted here (no text rendered by the engine and parsed back).
 */
export function jsonExpr(column: string, t: PrimitiveType): string {
  if (t.kind === 'decimal' || t.kind === 'date' || t.kind === 'uuid') return selectExpr(column, t);
  return `"${column}" AS "${column}"`;
}

const SPECIAL_FLOATS = new Map<number, string>([[Infinity, 'Infinity'], [-Infinity, '-Infinity']]);

/** One column of an engine chunk of a `jsonExpr` select as JSON values (what renderValue gives for the text). */
export function jsonValues(t: PrimitiveType, column: readonly unknown[] | FixedColumn | BytesColumn): JsonValue[] {
  if (!Array.isArray(column)) {
    // The engine's bytes (numbers, times, binary): read without a DuckDB value object each.
    const c = nativeColumn(t, column as FixedColumn | BytesColumn);
    return jsonOfNative(t, Array.isArray(c) ? c : (c as FixedColumn | BytesColumn).kind === 'bytes' ? bytesValues(c as BytesColumn) : fixedValues(t.kind, c as FixedColumn));
  }
  const values = column as readonly unknown[];
  const n = values.length;
  const out: JsonValue[] = new Array(n);
  if (t.kind === 'decimal' || t.kind === 'date' || t.kind === 'uuid') {
    for (let i = 0; i < n; i++) out[i] = renderValue(t, (values[i] ?? null) as string | null);
    return out;
  }
  if (t.kind === 'string') {
    for (let i = 0; i < n; i++) {
      const v = values[i] ?? null;
      out[i] = v === null || typeof v === 'string' ? v : bad(t, v);
    }
    return out;
  }
  return jsonOfNative(t, nativeValues(t, values));
}

/** Native values of a column in their JSON forms (as renderValue gives them for the text). */
function jsonOfNative(t: PrimitiveType, native: readonly NativeValue[]): JsonValue[] {
  const n = native.length;
  const out: JsonValue[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = native[i]!;
    if (v === null) {
      out[i] = null;
      continue;
    }
    switch (t.kind) {
      case 'boolean':
      case 'int': out[i] = v as boolean | number; break;
      case 'float':
      case 'double': {
        const x = v as number;
        // JSON has no NaN or infinities: as text, like Spark's JSON writer.
        out[i] = Number.isNaN(x) ? 'NaN' : SPECIAL_FLOATS.get(x) ?? x;
        break;
      }
      case 'long': out[i] = (v as bigint).toString(); break;
      case 'time': out[i] = formatTimestamp(v as bigint, 1_000_000n, 6, false).slice(11); break;
      case 'timestamp': out[i] = formatTimestamp(v as bigint, 1_000_000n, 6, false); break;
      case 'timestamptz': out[i] = formatTimestamp(v as bigint, 1_000_000n, 6, true); break;
      case 'timestamp_ns': out[i] = formatTimestamp(v as bigint, 1_000_000_000n, 9, false); break;
      case 'fixed':
      case 'binary': {
        const b = v as Uint8Array;
        out[i] = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
        break;
      }
      default: bad(t, v);
    }
  }
  return out;
}
