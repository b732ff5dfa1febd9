// The Parquet footer check of row-level changes: a walk of the footer's Thrift bytes that builds
// nothing. On files DuckDB writes it must find the row, row group, column chunk, schema and
// key-value counts DuckDB's own footer reader reports; on hostile footers (lists of millions of
// empty structs, cut short, nested without end, varints without end) it must refuse with
// CORRUPT_FILE, having built nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FOOTER_BOUNDS, parquetFooterRowCount, summarizeFooter } from '../../src/rows/parquet-footer.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import type { IpsError } from '../../src/errors.js';
import { Duck } from '../unit/duckdb-parquet.js';
import { rejection } from '../setup/errors.js';

let dir: string;
let duck: Duck;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-footer-'));
  duck = await Duck.open();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function footerOf(file: string): Buffer {
  const b = fs.readFileSync(file);
  const n = b.readUInt32LE(b.length - 8);
  return b.subarray(b.length - 8 - n, b.length - 8);
}

function dataFile(p: string, size = BigInt(fs.statSync(p).size)): DataFile {
  return {
    content: 0, filePath: p, fileFormat: 'PARQUET', partition: new Map(), recordCount: 0n, fileSizeInBytes: size,
    columnSizes: null, valueCounts: null, nullValueCounts: null, nanValueCounts: null, lowerBounds: null, upperBounds: null,
    keyMetadata: null, splitOffsets: null, equalityIds: null, sortOrderId: null, firstRowId: null, referencedDataFile: null,
    contentOffset: null, contentSizeInBytes: null,
  };
}

/** DuckDB's reading of the footer: rows, row groups, column chunks, schema elements, key-values. */
async function duckCounts(file: string): Promise<Record<string, number>> {
  const q = `'${file.replace(/'/g, "''")}'`;
  const [m] = await duck.rows(`SELECT num_rows::BIGINT::VARCHAR AS r, num_row_groups::INTEGER AS g FROM parquet_file_metadata(${q})`);
  const [c] = await duck.rows(`SELECT count(*)::INTEGER AS n FROM parquet_metadata(${q})`);
  const [s] = await duck.rows(`SELECT count(*)::INTEGER AS n FROM parquet_schema(${q})`);
  const [k] = await duck.rows(`SELECT count(*)::INTEGER AS n FROM parquet_kv_metadata(${q})`);
  return { numRows: Number(m!['r']), rowGroups: m!['g'] as number, columnChunks: c!['n'] as number, schemaElements: s!['n'] as number, keyValues: k!['n'] as number };
}

describe('summarizeFooter', () => {
  const cases: [string, string, string][] = [
    ['one row group, three columns', 'SELECT range AS id, range::VARCHAR AS s, range * 0.5 AS d FROM range(1000)', ''],
    ['many row groups, nested and wide columns', 'SELECT range AS id, [range, range + 1] AS l, {a: range, b: range::VARCHAR} AS st, repeat(\'x\', 3000) AS big FROM range(20000)', ', ROW_GROUP_SIZE 1000'],
    ['key-value metadata', 'SELECT range AS id FROM range(5)', ', KV_METADATA {owner: \'ips\', purpose: \'footer test\'}'],
    ['no rows', 'SELECT range AS id FROM range(0)', ''],
  ];
  it.each(cases)('%s: the counts DuckDB reads', async (name, select, opts) => {
    const file = path.join(dir, `${name.replace(/\W+/g, '-')}.parquet`);
    await duck.rows(`COPY (${select}) TO '${file}' (FORMAT PARQUET${opts})`);
    const got = summarizeFooter(footerOf(file), file);
    expect({ ...got, numRows: Number(got.numRows) }).toEqual(await duckCounts(file));
    expect(await parquetFooterRowCount(new LocalFileIO(), dataFile(file))).toBe(got.numRows);
  });

  /** A footer: FileMetaData { 1: version 2, 2: list<struct> of `n` empty structs }. */
  function emptyStructs(n: number): Buffer {
    const v: number[] = [];
    for (let x = n; ; x >>>= 7) { if (x < 0x80) { v.push(x); break; } v.push((x & 0x7f) | 0x80); }
    return Buffer.concat([Buffer.from([0x15, 0x04, 0x19, 0xfc]), Buffer.from(v), Buffer.alloc(n, 0), Buffer.from([0x16, 0x02, 0x00])]);
  }

  it('a list of more empty structs than the bound: refused, nothing built', () => {
    expect(() => summarizeFooter(emptyStructs(FOOTER_BOUNDS.schemaElements + 1), 'f')).toThrow(/lists 100001 schemaElements, above the bound of 100000/);
    // Below the bound the same shape reads (row count 1, from field 3 after the list).
    expect(summarizeFooter(emptyStructs(1000), 'f')).toMatchObject({ numRows: 1n, schemaElements: 1000 });
  });

  it('fields it does not know are skipped by their type, booleans in collections a byte each', () => {
    // { 9: map<bool, bool> of 3, 10: list<bool> of 3, 2: list<struct> of 2 empty, 3: num_rows 7 }
    // (ids below the last written long-form). Read as no bytes, the booleans would be headers.
    const footer = Buffer.from([0x9b, 0x03, 0x11, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x19, 0x31, 0x02, 0x02, 0x02,
      0x09, 0x04, 0x2c, 0x00, 0x00, 0x16, 0x0e, 0x00]);
    expect(summarizeFooter(footer, 'f')).toEqual({ numRows: 7n, schemaElements: 2, rowGroups: 0, columnChunks: 0, keyValues: 0 });
  });

  it('hostile shapes: every prefix of a real footer, deep nesting, endless varints, lying list sizes', async () => {
    const file = path.join(dir, 'prefixes.parquet');
    await duck.rows(`COPY (SELECT range AS id, range::VARCHAR AS s FROM range(100)) TO '${file}' (FORMAT PARQUET)`);
    const real = footerOf(file);
    for (let n = 0; n < real.length; n++) {
      // A prefix either reads as a footer with a row count or is refused; nothing else escapes.
      try {
        summarizeFooter(real.subarray(0, n), 'f');
      } catch (e) {
        expect((e as IpsError).code).toBe('CORRUPT_FILE');
      }
    }
    const deep = Buffer.concat([Buffer.alloc(40, 0x1c), Buffer.alloc(41, 0)]); // field 1 struct, 40 deep
    expect(() => summarizeFooter(deep, 'f')).toThrow(/nests deeper than 32/);
    expect(() => summarizeFooter(Buffer.concat([Buffer.from([0x16]), Buffer.alloc(20, 0xff)]), 'f')).toThrow(/varint runs past ten bytes/);
    expect(() => summarizeFooter(Buffer.from([0x19, 0xfc, 0xff, 0xff, 0xff, 0x7f, 0x00]), 'f')).toThrow(/list claims 268435455 elements in 1 bytes/);
  });

  it('parquetFooterRowCount: a footer claiming more bytes than the bound is CORRUPT_FILE before it is read', async () => {
    const file = path.join(dir, 'huge-claim.parquet');
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(FOOTER_BOUNDS.bytes + 1, 0);
    tail.write('PAR1', 4);
    fs.writeFileSync(file, Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(FOOTER_BOUNDS.bytes + 16), tail]));
    const e = await rejection(parquetFooterRowCount(new LocalFileIO(), dataFile(file)));
    expect(e.code).toBe('CORRUPT_FILE');
    expect(e.message).toMatch(/claims 16777217 bytes, more than the bound of 16777216 on footers/);
  });
});
