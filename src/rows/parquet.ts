import { IpsError } from '../errors.js';
import type { PrimitiveType, Schema } from '../iceberg/types.js';
import { SqlEngine, sqlIdent, sqlString } from '../engine/duckdb.js';
import type { FileIO } from '../io/file-io.js';
import { CHANGELOG_FIELD_IDS } from './arrow.js';

/**
 * Row changes spooled as JSON lines (the `ips inspect --json` value forms) written as Parquet
 * by DuckDB, with Iceberg field ids on the columns. Every column is read as text and cast
 * explicitly, so 64-bit integers, decimals and µs timestamps never pass through a float.
 */
function castExpr(column: string, t: PrimitiveType): string {
  const c = sqlIdent(column);
  switch (t.kind) {
    case 'boolean': return `CAST(${c} AS BOOLEAN)`;
    case 'int': return `CAST(${c} AS INTEGER)`;
    case 'long': return `CAST(${c} AS BIGINT)`;
    case 'float': return `CAST(${c} AS FLOAT)`;
    case 'double': return `CAST(${c} AS DOUBLE)`;
    case 'decimal': return `CAST(${c} AS DECIMAL(${t.precision}, ${t.scale}))`;
    case 'date': return `CAST(${c} AS DATE)`;
    case 'time': return `CAST(${c} AS TIME)`;
    case 'timestamp': return `CAST(${c} AS TIMESTAMP)`;
    case 'timestamptz': return `CAST(${c} AS TIMESTAMPTZ)`;
    case 'timestamp_ns': return `CAST(${c} AS TIMESTAMP_NS)`;
    case 'string': return c;
    case 'uuid': return `CAST(${c} AS UUID)`;
    case 'fixed':
    case 'binary': return `unhex(${c})`;
    default:
      throw new IpsError('UNSUPPORTED_TYPE', `column ${column} is ${t.kind}: row changes cannot be written as Parquet for it`);
  }
}

export interface ParquetColumn {
  name: string;
  id: number;
  type: PrimitiveType;
}

/** The columns of a row-change file: the table's, then the changelog columns with `ids`. */
export function rowChangeParquetColumns(schema: Schema, ids: Record<keyof typeof CHANGELOG_FIELD_IDS, number> = CHANGELOG_FIELD_IDS): ParquetColumn[] {
  const out: ParquetColumn[] = [];
  for (const f of schema.struct.fields) {
    if (f.type.kind === 'struct' || f.type.kind === 'list' || f.type.kind === 'map') {
      throw new IpsError('UNSUPPORTED_TYPE', `column ${f.name} is ${f.type.kind}: row changes read primitive columns only`);
    }
    out.push({ name: f.name, id: f.id, type: f.type });
  }
  out.push({ name: '_change_type', id: ids._change_type, type: { kind: 'string' } });
  out.push({ name: '_change_ordinal', id: ids._change_ordinal, type: { kind: 'int' } });
  out.push({ name: '_commit_snapshot_id', id: ids._commit_snapshot_id, type: { kind: 'long' } });
  return out;
}

/**
 * Writes the JSON-lines file `jsonl` as the Parquet file `target` (local paths). Row groups are
 * DuckDB's (bounded by its memory limit, spilling to `scratchDir`).
 */
export async function jsonlToParquet(opts: { io: FileIO; scratchDir: string; jsonl: string; target: string; columns: ParquetColumn[] }): Promise<bigint> {
  const engine = await SqlEngine.open({ io: opts.io, scratchDir: opts.scratchDir, threads: 1, memoryLimit: '512MB' });
  try {
    const cols = opts.columns;
    const read = `read_json(${sqlString(opts.jsonl)}, format = 'newline_delimited', records = true, maximum_object_size = 67108864, ` +
      `columns = {${cols.map((c) => `${sqlString(c.name)}: 'VARCHAR'`).join(', ')}})`;
    const select = `SELECT ${cols.map((c) => `${castExpr(c.name, c.type)} AS ${sqlIdent(c.name)}`).join(', ')} FROM ${read}`;
    const ids = cols.map((c) => `${sqlIdent(c.name)}: ${c.id}`).join(', ');
    const r = await engine.all<{ count: string }>(`COPY (${select}) TO ${sqlString(opts.target)} (FORMAT PARQUET, FIELD_IDS {${ids}}, COMPRESSION ZSTD, RETURN_STATS)`);
    return r.reduce((n, x) => n + BigInt(x.count), 0n);
  } finally {
    engine.close();
  }
}

/**
 * Concatenates Parquet files DuckDB wrote with the same columns (a changelog's snapshots, in
 * order) into `target`, with the columns' field ids set again (a COPY does not carry them over).
 */
export async function concatParquet(opts: { io: FileIO; scratchDir: string; parts: string[]; target: string; columns: ParquetColumn[] }): Promise<void> {
  const engine = await SqlEngine.open({ io: opts.io, scratchDir: opts.scratchDir, threads: 1, memoryLimit: '512MB' });
  try {
    const ids = opts.columns.map((c) => `${sqlIdent(c.name)}: ${c.id}`).join(', ');
    const files = `[${opts.parts.map((p) => sqlString(p)).join(', ')}]`;
    await engine.run(`COPY (SELECT * FROM read_parquet(${files})) TO ${sqlString(opts.target)} (FORMAT PARQUET, FIELD_IDS {${ids}}, COMPRESSION ZSTD)`);
  } finally {
    engine.close();
  }
}
