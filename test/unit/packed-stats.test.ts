// The packed column-stats maps of decoded manifests (src/iceberg/packed-stats.ts), on Avro bytes
// encoded here by a separate zigzag-varint encoder: exact 64-bit counts (beyond 2^53, the extremes),
// keys out of order or repeated (a Map with a Map's last-wins), the key filter, maps that outgrow a
// slab (counts, bound bytes), a bound larger than a slab, and hostile input (a key beyond 32 bits,
// a length past the end) refused with a decode error. Real manifests are covered by
// avro-decoder.test.ts and the shared corpus (decoder-vs-avsc.suite.ts).
import { describe, expect, it } from 'vitest';
import { AvroDecodeError, type Cursor } from '../../src/iceberg/avro-decoder.js';
import { PackedBounds, PackedCounts, readBoundsArray, readCountsArray } from '../../src/iceberg/packed-stats.js';

function varint(v: bigint): number[] {
  let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return out;
}

/** An Avro array of {key: int, value: long} records, in blocks of `blockSize` items. */
function countsBytes(pairs: [number, bigint][], blockSize = 1000): Buffer {
  const out: number[] = [];
  for (let i = 0; i < pairs.length; i += blockSize) {
    const block = pairs.slice(i, i + blockSize);
    out.push(...varint(BigInt(block.length)));
    for (const [k, v] of block) out.push(...varint(BigInt(k)), ...varint(v));
  }
  out.push(0);
  return Buffer.from(out);
}

function boundsBytes(pairs: [number, Buffer][]): Buffer {
  const out: number[] = [...varint(BigInt(pairs.length))];
  for (const [k, v] of pairs) out.push(...varint(BigInt(k)), ...varint(BigInt(v.length)), ...v);
  out.push(0);
  return Buffer.from(out);
}

const cursor = (buf: Buffer): Cursor => ({ buf, pos: 0, end: buf.length });

function readCounts(buf: Buffer, want: ReadonlySet<number> | null = null): ReadonlyMap<number, bigint> {
  const c = cursor(buf);
  const m = readCountsArray(c, want, []);
  expect(c.pos).toBe(buf.length);
  return m;
}

describe('packed counts', () => {
  it('keeps every 64-bit value exact, the extremes included', () => {
    const values = [0n, 1n, -1n, 2n ** 48n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 1234567890123456789n];
    const pairs = values.map((v, i): [number, bigint] => [i + 1, v]);
    const m = readCounts(countsBytes(pairs));
    expect(m).toBeInstanceOf(PackedCounts);
    expect(m.size).toBe(values.length);
    expect([...m]).toEqual(pairs);
    for (const [k, v] of pairs) expect(m.get(k)).toBe(v);
    const seen: [number, bigint][] = [];
    const self = {};
    m.forEach(function (this: unknown, v, k, map) {
      expect(this).toBe(self);
      expect(map).toBe(m);
      seen.push([k, v]);
    }, self);
    expect(seen).toEqual(pairs);
    expect([...m.values()]).toEqual(values);
    expect(m.get(0)).toBeUndefined();
    expect(m.has(11)).toBe(false);
    expect(m.get(1.5)).toBeUndefined();
  });

  it('out-of-order or repeated keys give a Map with last-wins values', () => {
    const pairs: [number, bigint][] = [[5, 50n], [2, 20n], [5, 51n], [9, 2n ** 60n]];
    const m = readCounts(countsBytes(pairs));
    expect(m).toBeInstanceOf(Map);
    expect(m).toEqual(new Map(pairs));
    // The slab run was given back: the next map still reads right.
    expect([...readCounts(countsBytes([[1, 7n], [2, 2n ** 62n]]))]).toEqual([[1, 7n], [2, 2n ** 62n]]);
  });

  it('keeps only the wanted keys', () => {
    const pairs: [number, bigint][] = Array.from({ length: 20 }, (_, i) => [i * 3, BigInt(i) * 1000n]);
    const m = readCounts(countsBytes(pairs, 7), new Set([3, 30, 31, 57]));
    expect([...m]).toEqual([[3, 1000n], [30, 10000n], [57, 19000n]]);
  });

  it('maps that outgrow a slab, across Avro blocks and across maps, stay whole', () => {
    const maps: [number, bigint][][] = [];
    for (let j = 0; j < 5; j++) maps.push(Array.from({ length: 3000 + j * 1000 }, (_, i) => [i, BigInt(i * (j + 1)) + (i % 7 === 0 ? 2n ** 55n : 0n)]));
    const read = maps.map((pairs) => readCounts(countsBytes(pairs, 1500)));
    for (let j = 0; j < maps.length; j++) expect([...read[j]!]).toEqual(maps[j]);
  });

  it('refuses a key beyond 32 bits and a truncated value', () => {
    const bad = Buffer.from([...varint(1n), ...varint(2n ** 40n), ...varint(1n), 0]);
    expect(() => readCountsArray(cursor(bad), null, [])).toThrow(AvroDecodeError);
    const cut = countsBytes([[1, 2n ** 60n]]);
    expect(() => readCountsArray(cursor(cut.subarray(0, cut.length - 3)), null, [])).toThrow(AvroDecodeError);
  });
});

describe('packed bounds', () => {
  it('gives Buffers equal to the bytes written, across slabs and for a bound larger than a slab', () => {
    const maps: [number, Buffer][][] = [];
    for (let j = 0; j < 300; j++) maps.push(Array.from({ length: 10 }, (_, i) => [i + 1, Buffer.from(`bound ${j}.${i} `.repeat(1 + ((i * j) % 5)))]));
    maps.push([[1, Buffer.alloc(100_000, 0xab)], [2, Buffer.from('after')]]);
    const read = maps.map((pairs) => {
      const buf = boundsBytes(pairs);
      const c = cursor(buf);
      const m = readBoundsArray(c, null, []);
      expect(c.pos).toBe(buf.length);
      return m;
    });
    for (let j = 0; j < maps.length; j++) {
      const m = read[j]!;
      expect(m).toBeInstanceOf(PackedBounds);
      expect([...m.keys()]).toEqual(maps[j]!.map(([k]) => k));
      const seen: [number, string][] = [];
      m.forEach((v, k) => seen.push([k, v.toString('hex')]));
      expect(seen).toEqual(maps[j]!.map(([k, v]) => [k, v.toString('hex')]));
      for (const [k, v] of maps[j]!) {
        const got = m.get(k)!;
        expect(Buffer.isBuffer(got)).toBe(true);
        expect(got.toString('hex')).toBe(v.toString('hex'));
        expect(got).toEqual(v);
        expect((m as PackedBounds).byteLength(k)).toBe(v.length);
      }
    }
  });

  it('out-of-order keys give a Map of copies; a length past the end is refused', () => {
    const pairs: [number, Buffer][] = [[3, Buffer.from('c')], [1, Buffer.from('a')]];
    const m = readBoundsArray(cursor(boundsBytes(pairs)), null, []);
    expect(m).toBeInstanceOf(Map);
    expect(m).toEqual(new Map(pairs));
    const bad = Buffer.from([...varint(1n), ...varint(1n), ...varint(1000n), 1, 2, 3, 0]);
    expect(() => readBoundsArray(cursor(bad), null, [])).toThrow(AvroDecodeError);
  });
});
