import { IpsError } from '../errors.js';
import type { PrimitiveType } from '../iceberg/types.js';
import { formatTimestamp, type JsonValue } from '../iceberg/values.js';

/**
 * SQL (DuckDB) giving a column's value as text that `renderValue` turns into the JSON value
 * `ips inspect --json` uses for the type: the engine hands over text only, so no value goes
 * through a JavaScript number on the way (64-bit integers, decimals, µs timestamps).
 */
export function selectExpr(column: string, t: PrimitiveType): string {
  const c = `"${column}"`;
  let e: string;
  switch (t.kind) {
    case 'float': e = `CAST(CAST(${c} AS DOUBLE) AS VARCHAR)`; break;
    case 'time': e = `CAST((hour(${c}) * 3600 + minute(${c}) * 60) * 1000000 + microsecond(${c}) AS VARCHAR)`; break;
    case 'timestamp':
    case 'timestamptz': e = `CAST(epoch_us(${c}) AS VARCHAR)`; break;
    case 'timestamp_ns': e = `CAST(epoch_ns(${c}) AS VARCHAR)`; break;
    case 'fixed':
    case 'binary': e = `lower(hex(${c}))`; break;
    default: e = `CAST(${c} AS VARCHAR)`;
  }
  return `${e} AS "${column}"`;
}

/** The JSON value of one column from its `selectExpr` text. */
export function renderValue(t: PrimitiveType, text: string | null): JsonValue {
  if (text === null) return null;
  switch (t.kind) {
    case 'boolean': return text === 'true';
    case 'int': return Number(text);
    case 'float':
    case 'double': {
      // JSON has no NaN or infinities: as text, like Spark's JSON writer (DuckDB says nan, inf, -inf).
      const special: Record<string, string> = { nan: 'NaN', '-nan': 'NaN', inf: 'Infinity', infinity: 'Infinity', '-inf': '-Infinity', '-infinity': '-Infinity' };
      const s = special[text.toLowerCase()];
      if (s !== undefined) return s;
      const n = Number(text);
      if (!Number.isFinite(n)) throw new IpsError('ROWS_FAILED', `cannot read the floating-point value "${text}"`);
      return n;
    }
    case 'long':
    case 'decimal':
    case 'string':
    case 'uuid':
    case 'date':
    case 'fixed':
    case 'binary': return text;
    case 'time': {
      const us = BigInt(text);
      return formatTimestamp(us, 1_000_000n, 6, false).slice(11);
    }
    case 'timestamp': return formatTimestamp(BigInt(text), 1_000_000n, 6, false);
    case 'timestamptz': return formatTimestamp(BigInt(text), 1_000_000n, 6, true);
    case 'timestamp_ns': return formatTimestamp(BigInt(text), 1_000_000_000n, 9, false);
    default:
      throw new IpsError('UNSUPPORTED_TYPE', `cannot render ${t.kind} values`);
  }
}

export function renderRow(columns: { name: string; key: string; type: PrimitiveType }[], row: Record<string, string | null>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const c of columns) out[c.name] = renderValue(c.type, row[c.key] ?? null);
  return out;
}
