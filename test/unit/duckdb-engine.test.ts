// The embedded SQL engine reads Iceberg data files by field id (the spec's rule: names may have
// changed since a file was written) and writes one Parquet file per partition with field ids.
// Field ids and partition contents are checked with hyparquet, independently of DuckDB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SqlEngine } from '../../src/engine/duckdb.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import type { NestedField } from '../../src/iceberg/types.js';

let dir: string;
let engine: SqlEngine;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-engine-'));
  engine = await SqlEngine.open({ io: new RoutingFileIO({}), scratchDir: path.join(dir, 'scratch') });
});

afterAll(() => {
  engine?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function dataFile(p: string, records: bigint): DataFile {
  return {
    content: 0, filePath: p, fileFormat: 'PARQUET', partition: new Map(), recordCount: records, fileSizeInBytes: BigInt(fs.statSync(p).size),
    columnSizes: null, valueCounts: null, nullValueCounts: null, nanValueCounts: null, lowerBounds: null, upperBounds: null,
    keyMetadata: null, splitOffsets: null, equalityIds: null, sortOrderId: null, firstRowId: null, referencedDataFile: null,
    contentOffset: null, contentSizeInBytes: null,
  };
}

const field = (id: number, name: string, kind: 'long' | 'date' | 'string'): NestedField => ({ id, name, required: false, type: { kind } });

describe('SqlEngine', () => {
  test('writes one file per partition, with field ids, partition keys only in the path', async () => {
    const written = await engine.writeParquet(
      `SELECT (i % 3)::BIGINT AS k, DATE '2026-01-01' + (i % 2)::INTEGER AS d, 'v' || i AS s FROM range(100) t(i)`,
      { fieldIds: { k: 1, d: 2, s: 3 }, partitionBy: [{ name: 'day', expr: 'd' }, { name: 'k_bucket', expr: 'k - k % 2' }] });
    expect(written.map((w) => w.partitionDir).sort()).toEqual([
      'day=2026-01-01/k_bucket=0', 'day=2026-01-01/k_bucket=2', 'day=2026-01-02/k_bucket=0', 'day=2026-01-02/k_bucket=2']);
    expect(written.reduce((n, w) => n + w.rows, 0n)).toBe(100n);
    for (const w of written) {
      const buf = fs.readFileSync(w.localPath);
      const md = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
      expect(md.schema.slice(1).map((s) => [s.name, s.field_id])).toEqual([['k', 1], ['d', 2], ['s', 3]]);
      expect(BigInt(md.num_rows)).toBe(w.rows);
    }
  });

  test('reads by field id: a renamed column keeps its values, a column added later reads as NULL', async () => {
    const [w] = await engine.writeParquet(`SELECT i::BIGINT AS old_name, 'x' || i AS s FROM range(5) t(i)`, { fieldIds: { old_name: 1, s: 2 }, partitionBy: [] });
    const stats = await engine.registerFiles('t', [dataFile(w!.localPath, w!.rows)], [field(1, 'new_name', 'long'), field(2, 's', 'string'), field(7, 'added', 'date')]);
    expect(stats).toEqual({ files: 1, rows: 5n, bytes: BigInt(fs.statSync(w!.localPath).size) });
    const rows = await engine.all<{ new_name: string; s: string; added: string | null }>('SELECT * FROM t ORDER BY new_name');
    expect(rows).toEqual([0, 1, 2, 3, 4].map((i) => ({ new_name: String(i), s: `x${i}`, added: null })));
  });

  test('no files is an empty relation with the table\'s columns, not an error', async () => {
    expect(await engine.registerFiles('empty', [], [field(1, 'a', 'long'), field(2, 'b', 'date')])).toEqual({ files: 0, rows: 0n, bytes: 0n });
    expect(await engine.all('SELECT count(*)::INTEGER AS n, count(a)::INTEGER AS na FROM empty')).toEqual([{ n: 0, na: 0 }]);
    expect((await engine.all<{ column_type: string }>('DESCRIBE empty')).map((c) => c.column_type)).toEqual(['BIGINT', 'DATE']);
  });

  test('delete files and nested columns are refused with a clear error', async () => {
    const [w] = await engine.writeParquet('SELECT 1::BIGINT AS a', { fieldIds: { a: 1 }, partitionBy: [] });
    await expect(engine.registerFiles('x', [{ ...dataFile(w!.localPath, 1n), content: 1 }], [field(1, 'a', 'long')]))
      .rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('delete file') });
    await expect(engine.registerFiles('x', [dataFile(w!.localPath, 1n)], [{ id: 1, name: 'st', required: false, type: { kind: 'struct', fields: [] } }]))
      .rejects.toMatchObject({ code: 'UNSUPPORTED_TYPE' });
    await expect(engine.all('SELECT * FROM no_such_view')).rejects.toMatchObject({ code: 'ENGINE_ERROR' });
  });
});
