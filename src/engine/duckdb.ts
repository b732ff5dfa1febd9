import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Types only: the native module (tens of MB) is loaded by the first SqlEngine.open, so a process
// that never runs SQL (an idle `ips serve`) never maps it.
import type { DuckDBInstance, DuckDBConnection, DuckDBDecimalType, DuckDBResult, DuckDBType } from '@duckdb/node-api';
import pLimit from 'p-limit';
import { IpsError, describeError } from '../errors.js';
import { copyToFile, type FileIO } from '../io/file-io.js';
import { openRegularFile } from '../io/local-file-io.js';
import { currentReadLimits } from '../io/limits.js';
import type { DataFile } from '../iceberg/manifest.js';
import type { NestedField, PrimitiveType } from '../iceberg/types.js';

/**
 * An embedded SQL engine (DuckDB) that reads Iceberg data files and writes Parquet for ips's
 * table writer. It reads exactly the files it is given (the caller plans them from Iceberg
 * metadata), maps columns by Iceberg field id as the spec requires (not by name), and counts
 * what it was asked to read: files, rows and bytes are the resources a pipeline stage costs.
 *
 * DuckDB's httpfs cannot be installed everywhere ips runs, so objects on S3 are staged to a
 * local scratch directory through ips's FileIO first (a data file never changes, so a staged
 * copy is reused).
 */
export interface ScanStats {
  files: number;
  rows: bigint;
  bytes: bigint;
}

/** Objects a view stages from remote storage at once. */
export const STAGE_CONCURRENCY = 8;

/**
 * A column of a result chunk whose values DuckDB stores flat at a fixed width (numbers, dates,
 * times, timestamps, decimals, booleans): its bytes as DuckDB holds them (little-endian),
 * copied out of the chunk, so no value is made a JavaScript object on the way.
 */
/** The C API bindings under @duckdb/node-api (loaded with it), for raw vector reads. */
type Bindings = typeof import('@duckdb/node-bindings');

export interface FixedColumn {
  readonly kind: 'fixed';
  /** Bytes per value: 1 (BOOLEAN), 2, 4, 8 or 16 (HUGEINT, DECIMAL over 18 digits). */
  width: number;
  /** DuckDB's type, e.g. `BIGINT`, `DECIMAL(12,3)`, `TIMESTAMP WITH TIME ZONE`. */
  type: string;
  /** `rowCount × width` bytes; a null row's bytes are unspecified. */
  data: Uint8Array;
  /** Bit i (least significant first) set when row i holds a value; null when every row does. */
  valid: Uint8Array | null;
}

/**
 * A BLOB column of a result chunk as bytes: every value's bytes one after the other, and where
 * each starts (DuckDB's `string_t`s read in place: inlined ones from the vector, longer ones
 * through their pointer), so no value becomes a JavaScript object.
 */
export interface BytesColumn {
  readonly kind: 'bytes';
  type: string;
  /** `rowCount + 1` offsets into `data`; a null row is empty. */
  offsets: Int32Array;
  data: Uint8Array;
  /** As FixedColumn's. */
  valid: Uint8Array | null;
}

/** The bytes a BytesColumn of one chunk may hold (offsets are 32-bit). */
const MAX_CHUNK_BYTES = 2 ** 31 - 1;

export interface WrittenParquet {
  localPath: string;
  /** Hive-style directory of its partition values (`a=1/b=2`), '' when unpartitioned. */
  partitionDir: string;
  rows: bigint;
}

export interface PartitionColumn {
  /** Directory key, e.g. `event_date`. */
  name: string;
  /** SQL over the selected columns giving the value, e.g. `profile_id - profile_id % 32`. */
  expr: string;
}

export function emptyStats(): ScanStats {
  return { files: 0, rows: 0n, bytes: 0n };
}

export function addStats(a: ScanStats, b: ScanStats): ScanStats {
  return { files: a.files + b.files, rows: a.rows + b.rows, bytes: a.bytes + b.bytes };
}

/** DuckDB type of an Iceberg primitive; the demo's tables use only these. */
export function duckdbType(t: PrimitiveType): string {
  switch (t.kind) {
    case 'boolean': return 'BOOLEAN';
    case 'int': return 'INTEGER';
    case 'long': return 'BIGINT';
    case 'float': return 'FLOAT';
    case 'double': return 'DOUBLE';
    case 'date': return 'DATE';
    case 'string': return 'VARCHAR';
    case 'decimal': return `DECIMAL(${t.precision}, ${t.scale})`;
    default:
      throw new IpsError('UNSUPPORTED_TYPE', `the SQL engine does not read Iceberg ${t.kind} columns yet`);
  }
}

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function sqlIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function localPathOf(location: string): string | null {
  if (location.startsWith('file:')) return fileURLToPath(location.startsWith('file://') ? location : `file://${location.slice(5)}`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return null;
  return location;
}

export class SqlEngine {
  private staged = new Map<string, string>();
  private staging = new Map<string, Promise<string>>();

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly io: FileIO,
    private readonly scratchDir: string,
    private readonly bindings: Bindings,
  ) {}

  /**
   * `memoryLimit` bounds DuckDB's buffer memory; above it, joins, aggregates and temp tables
   * spill to `temp_directory` under the scratch dir. `preserveInsertionOrder: false` lets
   * unordered queries run in less memory (row order is then unspecified).
   */
  static async open(opts: { io: FileIO; scratchDir: string; threads?: number; memoryLimit?: string; preserveInsertionOrder?: boolean }): Promise<SqlEngine> {
    fs.mkdirSync(opts.scratchDir, { recursive: true });
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const bindings = (await import('@duckdb/node-bindings')).default;
    const instance = await DuckDBInstance.create(':memory:', {
      threads: String(opts.threads ?? 2),
      memory_limit: opts.memoryLimit ?? '2GB',
      temp_directory: path.join(opts.scratchDir, 'duckdb-tmp'),
      ...(opts.preserveInsertionOrder === false ? { preserve_insertion_order: 'false' } : {}),
    });
    const conn = await instance.connect();
    // Iceberg data files are write-once (a path never changes content), so DuckDB may keep their
    // Parquet footers across queries: a stage that reads the same files in several statements
    // parses each footer once.
    await conn.run('SET parquet_metadata_cache = true');
    return new SqlEngine(instance, conn, opts.io, opts.scratchDir, bindings);
  }

  async run(sql: string): Promise<void> {
    try {
      await this.conn.run(sql);
    } catch (e) {
      throw new IpsError('ENGINE_ERROR', `SQL failed: ${describeError(e)}\n${sql}`, { cause: e });
    }
  }

  /** Rows as JSON-friendly objects (BIGINT as decimal strings, DATE as ISO text). */
  async all<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    try {
      return (await this.conn.runAndReadAll(sql)).getRowObjectsJson() as T[];
    } catch (e) {
      throw new IpsError('ENGINE_ERROR', `SQL failed: ${describeError(e)}\n${sql}`, { cause: e });
    }
  }

  /**
   * The result a chunk (~2048 rows) at a time as columns of DuckDB's own values (bigint for
   * BIGINT, objects for decimals, dates, times and blobs, no conversion to text): streamed,
   * never held whole in JavaScript. A failure, at the start or midway, is an ENGINE_ERROR
   * naming the SQL.
   */
  streamColumns(sql: string): AsyncGenerator<{ columns: unknown[][]; rowCount: number }> {
    return this.chunksOf(sql, false) as AsyncGenerator<{ columns: unknown[][]; rowCount: number }>;
  }

  /**
   * As streamColumns, but each column of a fixed-width type (see FixedColumn) comes as its bytes,
   * the others as DuckDB's values: for writers of typed columns (Arrow), a bulk copy per column
   * instead of a JavaScript value per row.
   */
  streamChunks(sql: string): AsyncGenerator<{ columns: (unknown[] | FixedColumn | BytesColumn)[]; rowCount: number }> {
    return this.chunksOf(sql, true);
  }

  private async *chunksOf(sql: string, fixed: boolean): AsyncGenerator<{ columns: (unknown[] | FixedColumn | BytesColumn)[]; rowCount: number }> {
    const fail = (e: unknown) => new IpsError('ENGINE_ERROR', `SQL failed: ${describeError(e)}\n${sql}`, { cause: e });
    let result: DuckDBResult;
    try {
      result = await this.conn.stream(sql);
    } catch (e) {
      throw fail(e);
    }
    const b = this.bindings;
    const types = result.columnTypes();
    const widths = types.map((t) => (fixed ? fixedWidth(b, t) : null));
    try {
      for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
        const n = chunk.rowCount;
        const columns = widths.map((width, i): unknown[] | FixedColumn | BytesColumn => {
          const blob = fixed && (types[i]!.typeId as number) === b.Type.BLOB;
          if (width === null && !blob) return chunk.getColumnValues(i);
          // Result chunks are flat (what the C API hands out), so the data is n values wide.
          const vector = b.data_chunk_get_vector(chunk.chunk, i);
          const validity = b.vector_get_validity(vector, Math.ceil(n / 64) * 8);
          const valid = validity ? validity.slice(0, Math.ceil(n / 8)) : null;
          if (blob) return bytesColumn(b, vector, n, valid, types[i]!.toString());
          const data = b.vector_get_data(vector, n * width!).slice();
          return { kind: 'fixed', width: width!, type: types[i]!.toString(), data, valid };
        });
        yield { columns, rowCount: n };
      }
    } catch (e) {
      throw fail(e);
    }
  }

  /**
   * A local path of the file: itself when local, else a staged copy (read through the FileIO
   * once). A local file must be a regular file within the data limit, as a staged one must:
   * checked on an open handle here, since the engine opens paths with blocking calls (a FIFO
   * would hang it) and reads them without a byte limit.
   */
  async localCopy(location: string): Promise<string> {
    const local = localPathOf(location);
    if (local !== null) {
      fs.closeSync(openRegularFile(local, 'data', (this.io.limits ?? currentReadLimits()).dataBytes).fd);
      return local;
    }
    const hit = this.staged.get(location);
    if (hit) return hit;
    // One download per location, however many callers ask for it at once (a view may list a
    // file twice, two views may share one): a second download would race the first into its
    // temporary file.
    let staging = this.staging.get(location);
    if (!staging) {
      staging = this.stage(location).finally(() => this.staging.delete(location));
      this.staging.set(location, staging);
    }
    return staging;
  }

  private async stage(location: string): Promise<string> {
    const dir = path.join(this.scratchDir, 'staged');
    fs.mkdirSync(dir, { recursive: true });
    const target = path.join(dir, `${crypto.createHash('sha1').update(location).digest('hex')}${path.extname(location)}`);
    if (!fs.existsSync(target)) {
      // Streamed to disk: a data file of hundreds of MB never sits in memory whole.
      const tmp = `${target}.${process.pid}.part`;
      fs.rmSync(tmp, { force: true });
      await copyToFile(this.io, location, tmp, 'data');
      fs.renameSync(tmp, target);
    }
    this.staged.set(location, target);
    return target;
  }

  /**
   * localCopy of many files, a few staged at a time: a read over thousands of S3 files must not
   * open thousands of downloads (sockets, buffers) at once.
   */
  localCopies(locations: string[]): Promise<string[]> {
    const limit = pLimit(STAGE_CONCURRENCY);
    return Promise.all(locations.map((l) => limit(() => this.localCopy(l))));
  }

  /**
   * Frees the scratch disk a staged copy takes, once no statement will read it again (a local
   * file is read in place: nothing to free). A later localCopy stages it anew.
   */
  release(location: string): void {
    const staged = this.staged.get(location);
    if (staged === undefined) return;
    this.staged.delete(location);
    fs.rmSync(staged, { force: true });
  }

  /**
   * (Re)defines view `name` over exactly these data files, with the given Iceberg columns read
   * by field id (a column missing from a file reads as NULL, as after a schema change).
   */
  async registerFiles(name: string, files: DataFile[], columns: NestedField[]): Promise<ScanStats> {
    for (const f of files) {
      if (f.content !== 0) throw new IpsError('UNSUPPORTED', `${f.filePath} is a delete file: the SQL engine reads data files only`);
      if (f.fileFormat.toUpperCase() !== 'PARQUET') throw new IpsError('UNSUPPORTED', `${f.filePath} is ${f.fileFormat}: the SQL engine reads Parquet only`);
    }
    const cols = columns.map((c) => {
      if (c.type.kind === 'struct' || c.type.kind === 'list' || c.type.kind === 'map') {
        throw new IpsError('UNSUPPORTED_TYPE', `column ${c.name} is nested: the SQL engine reads primitive columns only`);
      }
      return { id: c.id, name: c.name, sqlType: duckdbType(c.type) };
    });
    let body: string;
    if (files.length === 0) {
      body = `SELECT ${cols.map((c) => `NULL::${c.sqlType} AS ${sqlIdent(c.name)}`).join(', ')} WHERE false`;
    } else {
      const paths = await this.localCopies(files.map((f) => f.filePath));
      const schema = cols.map((c) => `${c.id}: {name: ${sqlString(c.name)}, type: ${sqlString(c.sqlType)}, default_value: NULL}`).join(', ');
      body = `SELECT ${cols.map((c) => sqlIdent(c.name)).join(', ')} FROM read_parquet([${paths.map(sqlString).join(', ')}], hive_partitioning = false, schema = MAP {${schema}})`;
    }
    await this.run(`CREATE OR REPLACE TEMP VIEW ${sqlIdent(name)} AS ${body}`);
    return {
      files: files.length,
      rows: files.reduce((n, f) => n + f.recordCount, 0n),
      bytes: files.reduce((n, f) => n + f.fileSizeInBytes, 0n),
    };
  }

  /**
   * Writes the query's rows as Parquet files under a fresh local directory, one file per
   * partition, with Iceberg field ids on the columns. Partition keys are extra expressions,
   * not columns of the file.
   */
  async writeParquet(selectSql: string, opts: { fieldIds: Record<string, number>; partitionBy: PartitionColumn[]; orderBy?: string }): Promise<WrittenParquet[]> {
    const dir = path.join(this.scratchDir, 'out', crypto.randomUUID());
    fs.mkdirSync(dir, { recursive: true });
    const keys = opts.partitionBy.map((p, i) => ({ ...p, alias: `__ips_p${i}` }));
    const select = `SELECT *${keys.map((k) => `, ${k.expr} AS ${k.alias}`).join('')} FROM (${selectSql}) AS q${opts.orderBy ? ` ORDER BY ${opts.orderBy}` : ''}`;
    const fieldIds = Object.entries(opts.fieldIds).map(([c, id]) => `${sqlIdent(c)}: ${id}`).join(', ');
    const partition = keys.length ? `PARTITION_BY (${keys.map((k) => k.alias).join(', ')}), ` : '';
    const target = keys.length ? dir : path.join(dir, `${crypto.randomUUID()}.parquet`);
    const rows = await this.all<{ filename: string; count: string }>(
      `COPY (${select}) TO ${sqlString(target)} (FORMAT PARQUET, ${partition}FIELD_IDS {${fieldIds}}, COMPRESSION SNAPPY, FILENAME_PATTERN 'data_{uuid}', RETURN_STATS)`);
    return rows.map((r) => {
      const rel = path.relative(dir, path.dirname(r.filename));
      // Rename the engine's aliases back to the partition names in the directory.
      const partitionDir = rel === '' ? '' : rel.split(path.sep).map((seg) => {
        const eq = seg.indexOf('=');
        const k = keys.find((x) => x.alias === seg.slice(0, eq));
        return k ? `${k.name}=${seg.slice(eq + 1)}` : seg;
      }).join('/');
      return { localPath: r.filename, partitionDir, rows: BigInt(r.count) };
    });
  }

  /** Deletes the local output of `writeParquet` once it was uploaded. */
  discard(files: WrittenParquet[]): void {
    for (const f of files) fs.rmSync(f.localPath, { force: true });
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/** Bytes per value of a type DuckDB stores flat at a fixed width (see FixedColumn), or null. */
function fixedWidth(b: Bindings, t: DuckDBType): number | null {
  const T = b.Type;
  switch (t.typeId as number) {
    case T.BOOLEAN: return 1;
    case T.SMALLINT: return 2;
    case T.INTEGER:
    case T.FLOAT:
    case T.DATE: return 4;
    case T.BIGINT:
    case T.DOUBLE:
    case T.TIME:
    case T.TIMESTAMP:
    case T.TIMESTAMP_TZ:
    case T.TIMESTAMP_NS: return 8;
    case T.HUGEINT: return 16;
    case T.DECIMAL: {
      // DuckDB's physical type of a decimal follows its precision.
      const p = (t as DuckDBDecimalType).width;
      return p <= 4 ? 2 : p <= 9 ? 4 : p <= 18 ? 8 : 16;
    }
    default: return null;
  }
}

/** The `string_t`s of a flat BLOB vector (16 bytes each: a length, then 12 inlined bytes or a 4-byte prefix and a pointer) as one buffer. */
function bytesColumn(b: Bindings, vector: ReturnType<Bindings['data_chunk_get_vector']>, n: number, valid: Uint8Array | null, type: string): BytesColumn {
  const raw = b.vector_get_data(vector, n * 16);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const isValid = (i: number) => valid === null || (valid[i >> 3]! & (1 << (i & 7))) !== 0;
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (isValid(i)) total += view.getUint32(16 * i, true);
    if (total > MAX_CHUNK_BYTES) throw new IpsError('ROWS_FAILED', `a chunk of ${n} values holds more than ${MAX_CHUNK_BYTES} bytes of ${type}`);
    offsets[i + 1] = total;
  }
  const data = new Uint8Array(total);
  for (let i = 0; i < n; i++) {
    const len = offsets[i + 1]! - offsets[i]!;
    if (len === 0) continue;
    const at = raw.byteOffset + 16 * i;
    data.set(len <= 12 ? new Uint8Array(raw.buffer, at + 4, len) : b.get_data_from_pointer(raw.buffer as ArrayBuffer, at + 8, len), offsets[i]!);
  }
  return { kind: 'bytes', type, offsets, data, valid };
}
