// The manifest writer encodes entries by hand (src/iceberg/manifest-writer.ts, avro-encoder.ts).
// Read back by a second implementation (avsc's decoder of the file's own schema, zlib's inflate:
// test/setup/avsc-reference.ts), every field of every entry must be what the entry said, laid
// out as the schema names it: v1, v2 and v3, null, empty and full maps, longs past 2^52 and 2^63's
// edges, negative values, every partition type the writer turns into Avro (decimal fixed, uuid,
// string, date, long, boolean, double), deletion-vector and equality-delete fields, and both block
// kinds (stored and deflated).
import { describe, expect, it } from 'vitest';
import type { DataFile } from '../../src/iceberg/manifest.js';
import { EntryStatus } from '../../src/iceberg/manifest.js';
import { writeManifest, type EntryToWrite } from '../../src/iceberg/manifest-writer.js';
import type { BoundPartitionField } from '../../src/iceberg/partition-values.js';
import type { PrimitiveType } from '../../src/iceberg/types.js';
import { AvroEncoder } from '../../src/iceberg/avro-encoder.js';
import { avroType } from '../../src/iceberg/avro.js';
import { readWithAvsc } from '../setup/avsc-reference.js';

function bound(fieldId: number, name: string, resultType: PrimitiveType): BoundPartitionField {
  return { field: { fieldId, name, sourceId: fieldId - 999, transform: 'identity' }, transform: { kind: 'identity' }, sourceType: resultType, resultType } as unknown as BoundPartitionField;
}

const SPEC: BoundPartitionField[] = [
  bound(1000, 'day', { kind: 'date' }),
  bound(1001, 'user id', { kind: 'long' }),
  bound(1002, 'amt', { kind: 'decimal', precision: 10, scale: 2 }),
  bound(1003, 'region', { kind: 'string' }),
  bound(1004, 'u', { kind: 'uuid' }),
  bound(1005, 'flag', { kind: 'boolean' }),
  bound(1006, 'score', { kind: 'double' }),
];

const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);

function dataFile(i: number, over: Partial<DataFile> = {}): DataFile {
  return {
    content: 0, filePath: `s3://b/t/data/é-${i}.parquet`, fileFormat: 'parquet',
    partition: new Map<number, unknown>([[1000, 20000 + i], [1001, BigInt(i % 1024) * 2n ** 52n - 1n], [1002, -12345n * BigInt(i)], [1003, i % 3 === 0 ? null : `r${i}`],
      [1004, Buffer.alloc(16, i)], [1005, i % 2 === 0], [1006, i / 3]]),
    recordCount: BigInt(i) * 1000n, fileSizeInBytes: 2n ** 40n + BigInt(i),
    columnSizes: new Map([[1, 100n], [2, 2n ** 53n + 1n]]),
    valueCounts: new Map([[1, BigInt(i)], [3, MAX]]),
    nullValueCounts: new Map(),
    nanValueCounts: null,
    lowerBounds: new Map([[1, Buffer.from([0, 1, 2])], [2, Buffer.alloc(0)]]),
    upperBounds: new Map([[1, Buffer.alloc(300, 7)]]),
    keyMetadata: null, splitOffsets: [4n, 2n ** 60n], equalityIds: null, sortOrderId: 0,
    firstRowId: null, referencedDataFile: null, contentOffset: null, contentSizeInBytes: null,
    ...over,
  };
}

function entries(n: number): EntryToWrite[] {
  const out: EntryToWrite[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) out.push({ dataFile: dataFile(i), sequenceNumber: null });
    else if (kind === 1) out.push({ dataFile: dataFile(i, { nanValueCounts: new Map([[9, MIN]]), sortOrderId: null, keyMetadata: Buffer.from('key'), splitOffsets: null, firstRowId: 2n ** 62n }), sequenceNumber: 7n, status: EntryStatus.EXISTING, snapshotId: MAX, fileSequenceNumber: 6n });
    else if (kind === 2) out.push({ dataFile: dataFile(i, { content: 1, referencedDataFile: `s3://b/t/data/é-${i - 1}.parquet`, contentOffset: 4n, contentSizeInBytes: 2n ** 33n, columnSizes: null, valueCounts: null, splitOffsets: [] }), sequenceNumber: 3n, status: EntryStatus.DELETED, snapshotId: -1n, fileSequenceNumber: 2n });
    else out.push({ dataFile: dataFile(i, { content: 2, equalityIds: [1, -2, 2147483647], sortOrderId: -5 }), sequenceNumber: 9n });
  }
  return out;
}

const opt = <T>(v: T | null | undefined): T | null => v ?? null;
const arr = <V>(m: ReadonlyMap<number, V> | null): { key: number; value: V }[] | null => (m === null ? null : [...m].map(([key, value]) => ({ key, value })));

/** What the schema says an entry is, field by field, built here from the entry (not by the writer). */
function expected(fv: 1 | 2 | 3, e: EntryToWrite, snapshotId: bigint): Record<string, unknown> {
  const df = e.dataFile;
  const p = df.partition;
  const amt = p.get(1002) as bigint;
  const amtBytes = Buffer.alloc(5, amt < 0n ? 0xff : 0);
  let x = BigInt.asUintN(40, amt);
  for (let i = 4; i >= 0; i--) { amtBytes[i] = Number(x & 0xffn); x >>= 8n; }
  const d: Record<string, unknown> = {
    ...(fv >= 2 ? { content: df.content } : {}),
    file_path: df.filePath, file_format: 'PARQUET',
    partition: { day: p.get(1000), user_x20id: p.get(1001), amt: amtBytes, region: p.get(1003), u: p.get(1004), flag: p.get(1005), score: p.get(1006) },
    record_count: df.recordCount, file_size_in_bytes: df.fileSizeInBytes,
    ...(fv === 1 ? { block_size_in_bytes: 64n * 1024n * 1024n } : {}),
    column_sizes: arr(df.columnSizes), value_counts: arr(df.valueCounts), null_value_counts: arr(df.nullValueCounts), nan_value_counts: arr(df.nanValueCounts),
    lower_bounds: arr(df.lowerBounds), upper_bounds: arr(df.upperBounds), key_metadata: df.keyMetadata, split_offsets: df.splitOffsets,
    ...(fv >= 2 ? { equality_ids: df.equalityIds } : {}),
    sort_order_id: df.sortOrderId,
    ...(fv >= 3 ? { first_row_id: df.firstRowId } : {}),
    ...(fv >= 2 ? { referenced_data_file: df.referencedDataFile } : {}),
    ...(fv >= 3 ? { content_offset: df.contentOffset, content_size_in_bytes: df.contentSizeInBytes } : {}),
  };
  return fv === 1
    ? { status: e.status ?? EntryStatus.ADDED, snapshot_id: e.snapshotId ?? snapshotId, data_file: d }
    : { status: e.status ?? EntryStatus.ADDED, snapshot_id: opt(e.snapshotId), sequence_number: e.sequenceNumber, file_sequence_number: opt(e.fileSequenceNumber), data_file: d };
}

describe('manifest entries encoded by hand, read back by avsc', () => {
  for (const fv of [1, 2, 3] as const) {
    for (const n of [3, 2500]) {
      it(`format v${fv}, ${n} entries (${n < 10 ? 'one stored block' : 'deflated blocks of 1,000'})`, () => {
        // v1 has no delete files: its entries are the data-file kinds only.
        const es = entries(n).filter((e) => fv >= 2 || e.dataFile.content === 0);
        const snapshotId = 5n;
        const written = writeManifest({
          formatVersion: fv, schemaJson: '{}', schemaId: 0, specId: 3, specFieldsJson: '[]', spec: SPEC, content: 0, snapshotId, entries: es,
        }, 11n);
        const back = readWithAvsc(written.bytes);
        expect(back.meta.get('partition-spec-id')).toBe('3');
        expect(back.records).toHaveLength(es.length);
        for (const [i, e] of es.entries()) expect(back.records[i], `entry ${i}`).toEqual(expected(fv, e, snapshotId));
      });
    }
  }
});

describe('AvroEncoder', () => {
  it('writes ints and longs as avsc does, at the edges of the double path and of 64 bits', () => {
    const long = avroType('"long"');
    const values = [0n, -1n, 1n, 63n, -64n, 64n, 2n ** 31n, -(2n ** 31n) - 1n, 2n ** 52n - 1n, -(2n ** 52n) + 1n, 2n ** 52n, -(2n ** 52n), 2n ** 53n + 1n, -(2n ** 53n) - 3n, MAX, MIN];
    for (const v of values) {
      const w = new AvroEncoder(1);
      w.long(v);
      expect(w.take().toString('hex'), String(v)).toBe(long.toBuffer(v).toString('hex'));
      if (v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n) {
        const u = new AvroEncoder(1);
        u.long(Number(v));
        expect(u.take().toString('hex'), `${v} as a number`).toBe(long.toBuffer(v).toString('hex'));
      }
    }
    expect(() => new AvroEncoder().long(2n ** 63n)).toThrow(RangeError);
    expect(() => new AvroEncoder().long(0.5)).toThrow(RangeError);
  });
});
