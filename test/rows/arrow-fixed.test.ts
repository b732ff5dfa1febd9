// Arrow row output copies columns as DuckDB's bytes (SqlEngine.streamChunks) instead of a
// JavaScript value per row: fixed-width ones (numbers, dates, times, timestamps, decimals,
// booleans) from the vector, strings and binary from DuckDB's string_t's (inlined or not).
// The same rows go through both paths: the bytes, and DuckDB's values converted one by one
// (the path rows-formats.test.ts checks against PyIceberg). apache-arrow decodes both streams,
// and every value of every column must agree: across chunk boundaries that fall inside a byte
// of the validity bitmap, across record batches, with nulls and without, for every decimal
// width DuckDB stores (2, 4, 8 and 16 bytes), negative values included, and strings empty,
// short and long.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlEngine } from '../../src/engine/duckdb.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import { parseSchema, type PrimitiveType } from '../../src/iceberg/types.js';
import { ArrowRowWriter } from '../../src/rows/arrow.js';
import { constantColumn, fixedLayout, nativeColumn, nativeExpr, nativeValues, type NativeColumn, type NativeValue } from '../../src/rows/native.js';

// [name, Iceberg type, DuckDB type, value of row i (SQL over i), which rows are null]
const COLUMNS: [string, string, string, string, string | null][] = [
  ['b', 'boolean', 'BOOLEAN', 'i % 3 = 0', 'i % 7 = 3'],
  ['i', 'int', 'INTEGER', '(i * 7919 % 4000001 - 2000000)::INTEGER', 'i % 5 = 1'],
  ['l', 'long', 'BIGINT', '(i::BIGINT * 3037000493 - 4611686018427387904)', null],
  ['f', 'float', 'FLOAT', '(i / 3.0 - 100)::FLOAT', 'i % 11 = 0'],
  ['d', 'double', 'DOUBLE', "CASE WHEN i % 97 = 5 THEN 'NaN'::DOUBLE ELSE i * -1.1 END", 'i % 13 = 2'],
  ['d4', 'decimal(4, 2)', 'DECIMAL(4,2)', '((i % 19999) - 9999)::DECIMAL(4,0) / 100', 'i % 4 = 0'],
  ['d9', 'decimal(9, 3)', 'DECIMAL(9,3)', '((i * 104729) % 999999999 - 499999999)::DECIMAL(9,0) / 1000', 'i % 9 = 8'],
  ['d18', 'decimal(18, 2)', 'DECIMAL(18,2)', '((i::HUGEINT * 2305843009213693951) % 999999999999999999 - 499999999999999999)::DECIMAL(18,0) / 100', 'i % 6 = 5'],
  ['d38', 'decimal(38, 6)', 'DECIMAL(38,6)', "(CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END) * ('1' || repeat('7', 30) || '.' || lpad((i % 1000000)::VARCHAR, 6, '0'))::DECIMAL(38,6)", 'i % 8 = 7'],
  ['dt', 'date', 'DATE', "DATE '1969-12-01' + (i % 40000)::INTEGER", 'i % 10 = 9'],
  ['t', 'time', 'TIME', "TIME '00:00:00' + to_microseconds((i * 1000003) % 86400000000)", 'i % 17 = 0'],
  ['ts', 'timestamp', 'TIMESTAMP', "TIMESTAMP '1960-01-01' + to_microseconds(i::BIGINT * 86400000123)", null],
  ['tz', 'timestamptz', 'TIMESTAMP WITH TIME ZONE', "TIMESTAMPTZ '2026-01-01 00:00:00+00' - to_microseconds(i::BIGINT * 999999937)", 'i % 3 = 2'],
  // Strings of 0 to 40 bytes: DuckDB inlines up to 12 in the vector, longer ones are read through their pointer.
  ['s', 'string', 'VARCHAR', "CASE WHEN i % 9 = 4 THEN '' ELSE 'r' || i::VARCHAR || ' é' || repeat('✓', i % 11) END", 'i % 14 = 0'],
  ['bin', 'binary', 'BLOB', "encode(repeat('ab', i % 20))", 'i % 6 = 1'],
  ['fx', 'fixed[4]', 'BLOB', "encode(lpad((i % 10000)::VARCHAR, 4, '0'))", 'i % 5 = 3'],
];

const SCHEMA = parseSchema({
  type: 'struct', 'schema-id': 0,
  fields: COLUMNS.map(([name, type], k) => ({ id: k + 1, name, required: false, type })),
});
const TYPES = SCHEMA.struct.fields.map((f) => f.type as PrimitiveType);

/** Both writers' streams decoded: per column, every value as JSON text (bigint exact). */
function decoded(bytes: Uint8Array): Record<string, string[]> {
  const table = tableFromIPC(bytes);
  const out: Record<string, string[]> = {};
  for (const f of table.schema.fields) {
    const col = table.getChild(f.name)!;
    const values: string[] = [];
    for (let i = 0; i < table.numRows; i++) {
      const v: unknown = col.get(i);
      values.push(typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array || ArrayBuffer.isView(v) ? Buffer.from((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength).toString('hex') : JSON.stringify(v));
    }
    out[f.name] = values;
  }
  return out;
}

describe('Arrow output of fixed-width columns as the engine\'s bytes', () => {
  let engine: SqlEngine;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-arrow-fixed-'));
    engine = await SqlEngine.open({ io: new LocalFileIO(), scratchDir: dir, threads: 1 });
    await engine.run(`CREATE TABLE rows AS SELECT ${COLUMNS.map(([name, , type, value, nulls]) =>
      `CAST(${nulls ? `CASE WHEN ${nulls} THEN NULL ELSE ${value} END` : value} AS ${type}) AS "${name}"`).join(', ')} FROM range(0, 20011) r(i) ORDER BY i`);
  });
  afterAll(() => {
    engine?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the layout each kind is checked against is the type DuckDB reports', async () => {
    const chunks = engine.streamChunks(`SELECT ${COLUMNS.map(([name], k) => nativeExpr(name, TYPES[k]!)).join(', ')} FROM rows LIMIT 3`);
    const first = (await chunks.next()).value as { columns: unknown[] };
    await chunks.return(undefined);
    COLUMNS.forEach(([name], k) => {
      const layout = fixedLayout(TYPES[k]!);
      const col = first.columns[k] as { kind?: string; type?: string; width?: number };
      if (layout === null) expect([col.kind, col.type], name).toEqual(['bytes', 'BLOB']);
      else expect({ type: col.type, width: col.width }, name).toEqual(layout);
    });
    // A column whose engine type is not the kind's is refused, not reinterpreted.
    expect(() => nativeColumn({ kind: 'long' }, first.columns[1] as never)).toThrow(/INTEGER .* for a long column/);
  });

  it('bytes and values give the same Arrow stream contents, across chunks and batches', async () => {
    const streams: Uint8Array[] = [];
    for (const bytes of [true, false]) {
      const parts: Uint8Array[] = [];
      // Small batches, so record batches end inside chunks and chunks inside batches.
      const writer = new ArrowRowWriter(SCHEMA, (c) => parts.push(c.slice()), 3000);
      // As the row answer comes: a short first query (its last chunk ends mid-byte), then the rest.
      for (const [where, kind, ordinal] of [['rowid < 13', 'DELETE', 0], ['rowid >= 13', 'INSERT', 7]] as const) {
        const sql = `SELECT ${COLUMNS.map(([name], k) => nativeExpr(name, TYPES[k]!)).join(', ')} FROM rows WHERE ${where} ORDER BY rowid`;
        const kindBytes = Buffer.from(kind);
        if (bytes) {
          for await (const chunk of engine.streamChunks(sql)) {
            const n = chunk.rowCount;
            const columns: NativeColumn[] = TYPES.map((t, k) => nativeColumn(t, chunk.columns[k]!));
            writer.pushColumns({ columns: [...columns, new Array<NativeValue>(n).fill(kindBytes), constantColumn('INTEGER', n, ordinal), constantColumn('BIGINT', n, -5n)], rowCount: n });
          }
        } else {
          for await (const chunk of engine.streamColumns(sql)) {
            const n = chunk.rowCount;
            const columns = TYPES.map((t, k) => nativeValues(t, chunk.columns[k]!));
            writer.pushColumns({ columns: [...columns, new Array<NativeValue>(n).fill(kindBytes), new Array<NativeValue>(n).fill(ordinal), new Array<NativeValue>(n).fill(-5n)], rowCount: n });
          }
        }
      }
      writer.finish();
      expect(writer.rows).toBe(20011);
      streams.push(Buffer.concat(parts));
    }
    const [fromBytes, fromValues] = streams.map(decoded);
    expect(Object.keys(fromBytes!)).toEqual([...COLUMNS.map(([n]) => n), '_change_type', '_change_ordinal', '_commit_snapshot_id']);
    for (const name of Object.keys(fromValues!)) {
      const a = fromBytes![name]!;
      const b = fromValues![name]!;
      expect(a.length, name).toBe(20011);
      const differ = a.findIndex((v, i) => v !== b[i]);
      expect(differ, `${name}: first difference at row ${differ}: ${a[differ]} (bytes) vs ${b[differ]} (values)`).toBe(-1);
    }
    // The data really has what the comparison is about: nulls where the SQL put them, negatives.
    expect(fromValues!['d4']!.filter((v) => v === 'null').length).toBe(Math.ceil(20011 / 4));
    expect(fromValues!['b']![3]).toBe('null');
    expect(fromValues!['_change_ordinal']![12]).toBe('0');
    expect(fromValues!['_change_ordinal']![13]).toBe('7');
  });
});
