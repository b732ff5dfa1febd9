// Avro longs as bigint: zigzag varints beyond 2^53, and whole container files decoded through
// avsc with the bigint long type. Known encodings come from the Avro spec's zigzag table and
// hand-computed base-128 groups; container files are assembled byte by byte in the test.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { avroType, bigIntToVarint, readAvroFile, varintToBigInt } from '../../src/iceberg/avro.js';
import { writeAvroFile } from '../../src/iceberg/avro-write.js';
import { readWithAvsc } from '../setup/avsc-reference.js';
import { avroString, container, zz } from './avro-builder.js';

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');

// Known encodings: Avro spec ("zig-zag encoding" table) and hand-derived 64-bit extremes.
const KNOWN: [bigint, string][] = [
  [0n, '00'],
  [-1n, '01'],
  [1n, '02'],
  [-2n, '03'],
  [2n, '04'],
  [-64n, '7f'],
  [64n, '8001'],
  [8191n, 'fe7f'],
  [-8193n, '818001'],
  // 2^53 + 1: zigzag 2^54 + 2 = 2 + 32 * 128^7 -> 82, 80 x6, 20
  [2n ** 53n + 1n, '8280808080808020'],
  // -(2^53) - 1: zigzag 2^54 + 1 -> 81, 80 x6, 20
  [-(2n ** 53n) - 1n, '8180808080808020'],
  [9223372036854775807n, 'feffffffffffffffff01'],
  [-9223372036854775808n, 'ffffffffffffffffff01'],
];

describe('Avro long varints', () => {
  it('the test encoder agrees with the known encodings', () => {
    for (const [v, h] of KNOWN) expect(zz(v).toString('hex'), String(v)).toBe(h);
  });

  it('varintToBigInt decodes known encodings exactly, incl. beyond 2^53', () => {
    for (const [v, h] of KNOWN) expect(varintToBigInt(hex(h)), h).toBe(v);
  });

  it('bigIntToVarint produces the known encodings', () => {
    for (const [v, h] of KNOWN) expect(bigIntToVarint(v).toString('hex'), String(v)).toBe(h);
  });

  it('round-trips values around the 7-byte (49-bit) fast-path boundary and 2^53', () => {
    const vals: bigint[] = [];
    for (const p of [48n, 49n, 52n, 53n, 54n, 55n, 56n, 62n, 63n]) {
      for (const d of [-1n, 0n, 1n]) {
        vals.push(2n ** p + d, -(2n ** p) + d);
      }
    }
    for (const v of vals) {
      if (v > 9223372036854775807n || v < -9223372036854775808n) continue;
      const enc = bigIntToVarint(v);
      expect(enc.equals(zz(v)), String(v)).toBe(true);
      expect(varintToBigInt(enc), String(v)).toBe(v);
    }
  });

  it('avroType decodes and encodes schema longs as exact bigints', () => {
    const t = avroType({ type: 'record', name: 'r', fields: [{ name: 'id', type: 'long' }, { name: 'n', type: ['null', 'long'] }] });
    const buf = Buffer.concat([zz(5173553188971266738n), hex('02'), zz(-9223372036854775808n)]);
    const v = t.fromBuffer(buf) as { id: bigint; n: bigint };
    expect(v.id).toBe(5173553188971266738n);
    expect(v.n).toBe(-9223372036854775808n);
    expect(t.toBuffer({ id: 9007199254740993n, n: null }).equals(Buffer.concat([zz(9007199254740993n), hex('00')]))).toBe(true);
  });
});

/** Two fields of a manifest list's record: a 64-bit id and a path. */
const MANIFEST_FILE_SCHEMA = {
  type: 'record',
  name: 'manifest_file',
  fields: [
    { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
    { name: 'path', type: 'string', 'field-id': 500 },
  ],
};

describe('readAvroFile', () => {
  const schema = MANIFEST_FILE_SCHEMA;
  const recs = [
    Buffer.concat([zz(7505300640432048841n), avroString('s3://b/m0.avro')]),
    Buffer.concat([zz(-9223372036854775808n), avroString('s3://b/m1.avro')]),
  ];

  for (const codec of ['null', 'deflate'] as const) {
    it(`decodes records with 64-bit longs exactly (codec ${codec}) and exposes header metadata`, () => {
      const f = readAvroFile(container(schema, recs, codec, { 'snapshot-id': '7505300640432048841', 'format-version': '2' }), 'ml.avro');
      expect(f.records).toEqual([
        { added_snapshot_id: 7505300640432048841n, path: 's3://b/m0.avro' },
        { added_snapshot_id: -9223372036854775808n, path: 's3://b/m1.avro' },
      ]);
      expect(f.meta.get('snapshot-id')).toBe('7505300640432048841');
      expect(f.meta.get('format-version')).toBe('2');
      expect((f.schema as { name: string }).name).toBe('manifest_file');
    });
  }

  it('rejects a file that is not an Avro container with CORRUPT_FILE', () => {
    let err: unknown;
    try {
      readAvroFile(Buffer.from('PAR1....'), 'x.parquet');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpsError);
    expect((err as IpsError).code).toBe('CORRUPT_FILE');
    expect((err as IpsError).message).toContain('x.parquet');
  });

  it('rejects a block whose sync marker is wrong, and a truncated block', () => {
    const good = container(schema, recs, 'null');
    const badSync = Buffer.from(good);
    badSync[badSync.length - 1] = badSync[badSync.length - 1]! ^ 0xff;
    for (const b of [badSync, good.subarray(0, good.length - 5)]) {
      let err: unknown;
      try {
        readAvroFile(b, 'm.avro');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IpsError);
      expect((err as IpsError).code).toBe('CORRUPT_FILE');
    }
  });
});

describe('writeAvroFile', () => {
  const schema = MANIFEST_FILE_SCHEMA;
  const recordsOf = (n: number): { added_snapshot_id: bigint; path: string }[] =>
    Array.from({ length: n }, (_, i) => ({ added_snapshot_id: 9223372036854775807n - BigInt(i), path: `s3://bucket/warehouse/db/t/data/part-${i}-${'x'.repeat(40)}.parquet` }));

  it('writes small blocks stored and large ones compressed, codec deflate; read back by ips and by the avsc reference reader', async () => {
    for (const n of [1, 3, 200]) {
      const recs = recordsOf(n);
      const file = writeAvroFile(schema, { 'format-version': '2' }, recs);
      const mine = readAvroFile(file, 'x.avro');
      expect(mine.meta.get('avro.codec')).toBe('deflate');
      expect(mine.records).toEqual(recs);
      // A second reader: avsc's header type, zlib.inflateRawSync, avsc's record decoding.
      expect(readWithAvsc(file).records).toEqual(recs);
      // The one block's deflate data (before the 16-byte sync marker): stored (BTYPE 00, the
      // records' bytes as they are) for a few records, compressed for many.
      const raw = Buffer.concat(recs.map((r) => avroType(schema).toBuffer(r)));
      if (raw.length < 4096) {
        const block = file.subarray(file.length - 16 - (raw.length + 5), file.length - 16);
        expect(block[0], `${n} records`).toBe(0x01);
        expect(block.subarray(5).equals(raw)).toBe(true);
      } else {
        expect(file.length, `${n} records compress`).toBeLessThan(raw.length);
      }
    }
  });
});
