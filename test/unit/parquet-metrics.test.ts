// Data-file metrics of Parquet files written by DuckDB, checked against DuckDB's own view of
// the same files: parquet_metadata() for sizes, counts and row-group offsets, and SQL min/max
// over the rows for bounds. Bounds are decoded here by hand (spec Appendix D), not with ips code.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIpsError } from '../../src/errors.js';
import { stringifyJsonLossless } from '../../src/iceberg/json.js';
import { parseTableMetadata, type TableMetadata } from '../../src/iceberg/metadata.js';
import { dataFileFromParquet, truncateBinaryUpper, truncateStringUpper } from '../../src/iceberg/parquet-metrics.js';
import { Duck, days } from './duckdb-parquet.js';

const FIELDS = [
  { id: 1, name: 'event_id', required: false, type: 'long' },
  { id: 2, name: 'profile_id', required: false, type: 'long' },
  { id: 3, name: 'title_id', required: false, type: 'int' },
  { id: 4, name: 'event_date', required: false, type: 'date' },
  { id: 5, name: 'watch_seconds', required: false, type: 'int' },
  { id: 6, name: 'device', required: false, type: 'string' },
  { id: 7, name: 'score', required: false, type: 'double' },
  { id: 8, name: 'flag', required: false, type: 'boolean' },
];
const IDS = Object.fromEntries(FIELDS.map((f) => [f.name, f.id]));

function tableMd(partitionFields: { name: string; transform: string; 'source-id': number; 'field-id': number }[], properties: Record<string, string> = {}): TableMetadata {
  return parseTableMetadata(stringifyJsonLossless({
    'format-version': 2, 'table-uuid': '9c12d441-03fe-4693-9a96-a0705ddf69c1', location: 'file:///lake/t',
    'last-sequence-number': 0, 'last-updated-ms': 1, 'last-column-id': 8, 'current-schema-id': 0,
    schemas: [{ type: 'struct', 'schema-id': 0, fields: FIELDS }],
    'default-spec-id': 0, 'partition-specs': [{ 'spec-id': 0, fields: partitionFields }], 'last-partition-id': 1001,
    'default-sort-order-id': 0, 'sort-orders': [{ 'order-id': 0, fields: [] }], properties, 'current-snapshot-id': -1,
  }), 'test metadata');
}

const BY_DATE = [{ name: 'event_date', transform: 'identity', 'source-id': 4, 'field-id': 1000 }];
const BY_DATE_AND_PROFILE = [...BY_DATE, { name: 'profile_id_trunc', transform: 'truncate[10]', 'source-id': 2, 'field-id': 1001 }];

let duck: Duck;
let dir: string;

beforeAll(async () => {
  duck = await Duck.open();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-pqmetrics-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const file = (name: string): string => path.join(dir, name);

function expectError(fn: () => unknown, code: string, text?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isIpsError(e) ? e.code : String(e)).toBe(code);
    if (text) expect((e as Error).message).toMatch(text);
    return;
  }
  throw new Error(`expected an IpsError ${code}`);
}

/** Hand decoders of the binary single-value form. */
const dec = {
  long: (b: Buffer) => b.readBigInt64LE(0).toString(),
  int: (b: Buffer) => b.readInt32LE(0),
  string: (b: Buffer) => b.toString('utf8'),
  double: (b: Buffer) => b.readDoubleLE(0),
  boolean: (b: Buffer) => b.length === 1 && b[0] !== 0,
};

describe('dataFileFromParquet', () => {
  it('matches DuckDB footer statistics over several row groups', async () => {
    const f = file('multi.parquet');
    // Strings include U+FF5A and U+1F600: by UTF-16 units 😀 sorts first, by UTF-8 bytes (Iceberg's order) last.
    await duck.writeParquet(f, `
      SELECT i::BIGINT AS event_id, (i * 7919 % 1000)::BIGINT AS profile_id, (i % 13)::INTEGER AS title_id,
             DATE '2026-03-04' AS event_date, CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 3600)::INTEGER END AS watch_seconds,
             CASE WHEN i % 5 = 0 THEN NULL WHEN i = 7001 THEN '😀x' WHEN i = 3 THEN 'ｚ' WHEN i = 9998 THEN 'Ωmega' ELSE 'dev-' || (i % 50) END AS device,
             CASE WHEN i % 17 = 0 THEN NULL ELSE (i - 5000) / 8.0 END::DOUBLE AS score,
             (i % 2 = 0) AS flag
        FROM range(0, 10000) t(i)`, IDS, { rowGroupSize: 2048 });
    const bytes = fs.readFileSync(f);
    const df = dataFileFromParquet(bytes, { filePath: 'file:///lake/t/data/multi.parquet', md: tableMd(BY_DATE, { 'write.metadata.metrics.default': 'full' }) });

    const footer = await duck.footer(f);
    const groups = new Set(footer.map((r) => r['row_group_id']));
    expect(groups.size).toBeGreaterThan(3); // really several row groups
    const [{ n }] = (await duck.rows(`SELECT count(*)::VARCHAR AS n FROM read_parquet('${f}')`)) as [{ n: string }];
    expect(df.recordCount).toBe(BigInt(n));
    expect(df.fileSizeInBytes).toBe(BigInt(fs.statSync(f).size));
    expect(df.content).toBe(0);
    expect(df.fileFormat).toBe('PARQUET');

    const perColumn = await duck.rows(`
      SELECT path_in_schema AS col, sum(total_compressed_size)::VARCHAR AS size, sum(num_values)::VARCHAR AS vals,
             sum(stats_null_count)::VARCHAR AS nulls
        FROM parquet_metadata('${f}') GROUP BY path_in_schema`);
    expect(perColumn).toHaveLength(8);
    for (const r of perColumn) {
      const id = IDS[r['col'] as string]!;
      expect(df.columnSizes!.get(id), `size of ${r['col']}`).toBe(BigInt(r['size'] as string));
      expect(df.valueCounts!.get(id), `values of ${r['col']}`).toBe(BigInt(r['vals'] as string));
      expect(df.nullValueCounts!.get(id), `nulls of ${r['col']}`).toBe(BigInt(r['nulls'] as string));
    }

    const [mm] = await duck.rows(`
      SELECT min(event_id)::VARCHAR AS lo1, max(event_id)::VARCHAR AS hi1, min(profile_id)::VARCHAR AS lo2, max(profile_id)::VARCHAR AS hi2,
             min(title_id) AS lo3, max(title_id) AS hi3, min(event_date)::VARCHAR AS lo4, max(event_date)::VARCHAR AS hi4,
             min(watch_seconds) AS lo5, max(watch_seconds) AS hi5, min(device) AS lo6, max(device) AS hi6,
             min(score) AS lo7, max(score) AS hi7, min(flag) AS lo8, max(flag) AS hi8
        FROM read_parquet('${f}')`);
    const lo = (id: number): Buffer => df.lowerBounds!.get(id)!;
    const hi = (id: number): Buffer => df.upperBounds!.get(id)!;
    expect([dec.long(lo(1)), dec.long(hi(1))]).toEqual([mm!['lo1'], mm!['hi1']]);
    expect([dec.long(lo(2)), dec.long(hi(2))]).toEqual([mm!['lo2'], mm!['hi2']]);
    expect([dec.int(lo(3)), dec.int(hi(3))]).toEqual([mm!['lo3'], mm!['hi3']]);
    expect([dec.int(lo(4)), dec.int(hi(4))]).toEqual([days(mm!['lo4'] as string), days(mm!['hi4'] as string)]);
    expect([dec.int(lo(5)), dec.int(hi(5))]).toEqual([mm!['lo5'], mm!['hi5']]);
    expect([dec.string(lo(6)), dec.string(hi(6))]).toEqual([mm!['lo6'], mm!['hi6']]);
    expect(dec.string(hi(6))).toBe('😀x');
    expect([dec.double(lo(7)), dec.double(hi(7))]).toEqual([mm!['lo7'], mm!['hi7']]);
    expect([dec.boolean(lo(8)), dec.boolean(hi(8))]).toEqual([mm!['lo8'], mm!['hi8']]);

    // Split offsets: where each row group starts (its first column chunk: dictionary page if any).
    const starts = footer.filter((r) => r['column_id'] === '0' || r['column_id'] === 0).map((r) => {
      const data = BigInt(r['data_page_offset'] as string);
      const dict = r['dictionary_page_offset'] === null ? null : BigInt(r['dictionary_page_offset'] as string);
      return dict !== null && dict > 0n && dict < data ? dict : data;
    });
    expect(df.splitOffsets).toEqual(starts);
    expect(df.partition).toEqual(new Map([[1000, days('2026-03-04')]]));
  });

  it('truncates string bounds to 16 code points by default, per column mode otherwise', async () => {
    const f = file('trunc.parquet');
    await duck.writeParquet(f, `
      SELECT * FROM (VALUES (1::BIGINT, DATE '2026-01-01', 'abcdefghijklmnopqrst'), (2::BIGINT, DATE '2026-01-01', 'bcdefghijklmnopqrstu'), (3::BIGINT, DATE '2026-01-01', 'b'))
        t(event_id, event_date, device)`, { event_id: 1, event_date: 4, device: 6 });
    const bytes = fs.readFileSync(f);
    const def = dataFileFromParquet(bytes, { filePath: 'x', md: tableMd(BY_DATE) });
    expect(def.lowerBounds!.get(6)!.toString('utf8')).toBe('abcdefghijklmnop');
    expect(def.upperBounds!.get(6)!.toString('utf8')).toBe('bcdefghijklmnopr'); // 16th code point q → r
    expect(def.lowerBounds!.get(1)!.readBigInt64LE(0)).toBe(1n); // non-strings are never truncated

    const full = dataFileFromParquet(bytes, { filePath: 'x', md: tableMd(BY_DATE, { 'write.metadata.metrics.column.device': 'full' }) });
    expect(full.lowerBounds!.get(6)!.toString('utf8')).toBe('abcdefghijklmnopqrst');
    expect(full.upperBounds!.get(6)!.toString('utf8')).toBe('bcdefghijklmnopqrstu');

    const counts = dataFileFromParquet(bytes, { filePath: 'x', md: tableMd(BY_DATE, { 'write.metadata.metrics.default': 'counts' }) });
    expect(counts.lowerBounds!.size).toBe(0);
    expect(counts.upperBounds!.size).toBe(0);
    expect(counts.valueCounts!.get(6)).toBe(3n);

    const none = dataFileFromParquet(bytes, { filePath: 'x', md: tableMd(BY_DATE, { 'write.metadata.metrics.default': 'none', 'write.metadata.metrics.column.device': 'truncate(2)' }) });
    expect([...none.valueCounts!.keys()]).toEqual([6]);
    expect(none.lowerBounds!.get(6)!.toString('utf8')).toBe('ab');
    expect(none.upperBounds!.get(6)!.toString('utf8')).toBe('bd');
    // The partition comes from exact statistics whatever the metrics mode.
    expect(none.partition).toEqual(new Map([[1000, days('2026-01-01')]]));
  });

  it('increments truncated upper bounds as Java does (carry, surrogates skipped, none when impossible)', () => {
    expect(truncateStringUpper('ab', 2)).toBe('ab');
    expect(truncateStringUpper('abz', 2)).toBe('ac');
    expect(truncateStringUpper('a\u{10FFFF}z', 2)).toBe('b');
    expect(truncateStringUpper('a\uD7FFz', 2)).toBe('a\uE000');
    expect(truncateStringUpper('😀😀😀', 2)).toBe('😀😁');
    expect(truncateStringUpper('\u{10FFFF}\u{10FFFF}z', 2)).toBeNull();
    expect(truncateBinaryUpper(Buffer.from([1, 0xff, 3]), 2)).toEqual(Buffer.from([2]));
    expect(truncateBinaryUpper(Buffer.from([0xff, 0xff, 3]), 2)).toBeNull();
  });

  it('derives identity and truncate partition values from the source columns', async () => {
    const f = file('part.parquet');
    await duck.writeParquet(f, `SELECT (20 + i % 10)::BIGINT AS profile_id, DATE '2026-02-28' AS event_date FROM range(0, 100) t(i)`, IDS);
    const df = dataFileFromParquet(fs.readFileSync(f), { filePath: 'x', md: tableMd(BY_DATE_AND_PROFILE) });
    expect(df.partition).toEqual(new Map<number, unknown>([[1000, days('2026-02-28')], [1001, 20n]]));

    const neg = file('part-neg.parquet');
    await duck.writeParquet(neg, `SELECT (-10 + i % 10)::BIGINT AS profile_id, DATE '2026-02-28' AS event_date FROM range(0, 100) t(i)`, IDS);
    expect(dataFileFromParquet(fs.readFileSync(neg), { filePath: 'x', md: tableMd(BY_DATE_AND_PROFILE) }).partition.get(1001)).toBe(-10n);

    const allNull = file('part-null.parquet');
    await duck.writeParquet(allNull, `SELECT i::BIGINT AS event_id, NULL::DATE AS event_date FROM range(0, 10) t(i)`, IDS);
    expect(dataFileFromParquet(fs.readFileSync(allNull), { filePath: 'x', md: tableMd(BY_DATE) }).partition).toEqual(new Map([[1000, null]]));
  });

  it('rejects files that span partitions', async () => {
    const twoDays = file('two-days.parquet');
    await duck.writeParquet(twoDays, `SELECT i::BIGINT AS event_id, DATE '2026-01-01' + (i % 2)::INTEGER AS event_date FROM range(0, 10) t(i)`, IDS);
    expectError(() => dataFileFromParquet(fs.readFileSync(twoDays), { filePath: 'x', md: tableMd(BY_DATE) }), 'PARTITION_MISMATCH', /file spans partitions/);

    const someNull = file('some-null.parquet');
    await duck.writeParquet(someNull, `SELECT i::BIGINT AS event_id, CASE WHEN i = 3 THEN NULL ELSE DATE '2026-01-01' END AS event_date FROM range(0, 10) t(i)`, IDS);
    expectError(() => dataFileFromParquet(fs.readFileSync(someNull), { filePath: 'x', md: tableMd(BY_DATE) }), 'PARTITION_MISMATCH', /null partition/);

    const twoBuckets = file('two-trunc.parquet');
    await duck.writeParquet(twoBuckets, `SELECT (5 + i)::BIGINT AS profile_id, DATE '2026-01-01' AS event_date FROM range(0, 10) t(i)`, IDS);
    expectError(() => dataFileFromParquet(fs.readFileSync(twoBuckets), { filePath: 'x', md: tableMd(BY_DATE_AND_PROFILE) }), 'PARTITION_MISMATCH', /profile_id_trunc=0 to 10/);
  });

  it('rejects files whose columns cannot be matched to the schema', async () => {
    const noIds = file('no-ids.parquet');
    await duck.writeParquet(noIds, `SELECT 1::BIGINT AS event_id`, {});
    expectError(() => dataFileFromParquet(fs.readFileSync(noIds), { filePath: 'x', md: tableMd([]) }), 'PARQUET_NO_FIELD_ID', /FIELD_IDS/);

    const wrongType = file('wrong-type.parquet');
    await duck.writeParquet(wrongType, `SELECT 1::BIGINT AS title_id`, IDS);
    expectError(() => dataFileFromParquet(fs.readFileSync(wrongType), { filePath: 'x', md: tableMd([]) }), 'PARQUET_TYPE_MISMATCH', /"title_id".*type int/);

    const unknownId = file('unknown-id.parquet');
    await duck.writeParquet(unknownId, `SELECT 1::BIGINT AS other`, { other: 99 });
    expectError(() => dataFileFromParquet(fs.readFileSync(unknownId), { filePath: 'x', md: tableMd([]) }), 'PARQUET_SCHEMA_MISMATCH', /field_id 99/);

    const nested = file('nested.parquet');
    await duck.writeParquet(nested, `SELECT {'a': 1} AS event_id`, { event_id: 1 });
    expectError(() => dataFileFromParquet(fs.readFileSync(nested), { filePath: 'x', md: tableMd([]) }), 'UNSUPPORTED_PARQUET', /nested/);

    expectError(() => dataFileFromParquet(Buffer.from('not parquet at all'), { filePath: 'x', md: tableMd([]) }), 'INVALID_PARQUET');
  });
});

