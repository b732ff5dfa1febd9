// Deletion vectors (Puffin `deletion-vector-v1`): the blob framing and the Roaring portable
// 64-bit format, built here byte by byte from the specs (Iceberg Puffin spec, RoaringFormatSpec),
// so that every container kind is covered: array, bitmap and run containers, with and without
// the offset header, several 32-bit buckets. Spark-written DVs are checked end to end against
// Spark in test/interop/icdc/rows-net.test.ts.
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeDeletionVector, decodeRoaring64Portable } from '../../src/rows/deletion-vector.js';

const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };

type Container = { key: number; kind: 'array'; values: number[] } | { key: number; kind: 'bitmap'; values: number[] } | { key: number; kind: 'run'; runs: [number, number][] };

function card(c: Container): number {
  return c.kind === 'run' ? c.runs.reduce((n, [, len]) => n + len + 1, 0) : c.values.length;
}

/** A 32-bit Roaring bitmap in the portable format; `runs` chooses the cookie with run containers. */
function roaring32(cs: Container[], withRunCookie: boolean): Buffer {
  const parts: Buffer[] = [];
  if (withRunCookie) {
    parts.push(u32(12347 | ((cs.length - 1) << 16)));
    const bits = Buffer.alloc(Math.ceil(cs.length / 8));
    cs.forEach((c, i) => { if (c.kind === 'run') bits[i >> 3]! |= 1 << (i & 7); });
    parts.push(bits);
  } else {
    parts.push(u32(12346), u32(cs.length));
  }
  for (const c of cs) parts.push(u16(c.key), u16(card(c) - 1));
  const bodies = cs.map((c) => {
    if (c.kind === 'array') return Buffer.concat(c.values.map(u16));
    if (c.kind === 'run') return Buffer.concat([u16(c.runs.length), ...c.runs.flatMap(([s, l]) => [u16(s), u16(l)])]);
    const words = Buffer.alloc(8192);
    for (const v of c.values) words[v >> 3]! |= 1 << (v & 7);
    return words;
  });
  if (!withRunCookie || cs.length >= 4) {
    let off = parts.reduce((n, b) => n + b.length, 0) + 4 * cs.length;
    for (const b of bodies) { parts.push(u32(off)); off += b.length; }
  }
  return Buffer.concat([...parts, ...bodies]);
}

function roaring64(buckets: [number, Buffer][]): Buffer {
  return Buffer.concat([u64(BigInt(buckets.length)), ...buckets.flatMap(([k, b]) => [u32(k), b])]);
}

function dvBlob(bitmap: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([0xd1, 0xd3, 0x39, 0x64]), bitmap]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

describe('deletion vectors: Puffin blob and Roaring portable 64-bit bitmap', () => {
  const evens = Array.from({ length: 5000 }, (_, i) => i * 2); // 5000 > 4096: a bitmap container
  const cs: Container[] = [
    { key: 0, kind: 'array', values: [0, 3, 65535] },
    { key: 1, kind: 'bitmap', values: evens },
    { key: 7, kind: 'run', runs: [[10, 4], [100, 0]] },
    { key: 65535, kind: 'array', values: [1] },
  ];
  const expected32 = [0, 3, 65535, ...evens.map((v) => 65536 + v), 7 * 65536 + 10, 7 * 65536 + 11, 7 * 65536 + 12, 7 * 65536 + 13, 7 * 65536 + 14, 7 * 65536 + 100, 65535 * 65536 + 1];

  it('array, bitmap and run containers, with the run cookie and offsets (>= 4 containers), in two 32-bit buckets', () => {
    const bm = roaring64([[0, roaring32(cs, true)], [2, roaring32([{ key: 0, kind: 'array', values: [5] }], false)]]);
    const got = decodeDeletionVector(dvBlob(bm), 'test');
    expect(got).toEqual([...expected32.map(BigInt), (2n << 32n) | 5n]);
  });

  it('the cookie without run containers, and run containers without the offset header (< 4 containers)', () => {
    const noRuns = cs.filter((c) => c.kind !== 'run');
    expect(decodeRoaring64Portable(roaring64([[0, roaring32(noRuns, false)]]), 't').map(Number)).toEqual(expected32.filter((v) => v >> 16 !== 7));
    const few: Container[] = [{ key: 3, kind: 'run', runs: [[0, 2]] }, { key: 4, kind: 'array', values: [9] }];
    expect(decodeRoaring64Portable(roaring64([[1, roaring32(few, true)]]), 't')).toEqual([
      (1n << 32n) | (3n << 16n), (1n << 32n) | (3n << 16n) | 1n, (1n << 32n) | (3n << 16n) | 2n, (1n << 32n) | (4n << 16n) | 9n,
    ]);
    expect(decodeRoaring64Portable(roaring64([]), 't')).toEqual([]);
  });

  it('refuses a blob with a wrong length, magic or CRC, and a truncated or unknown bitmap (CORRUPT_FILE)', () => {
    const good = dvBlob(roaring64([[0, roaring32(cs.slice(0, 1), false)]]));
    const bad = (mutate: (b: Buffer) => Buffer) => () => decodeDeletionVector(mutate(Buffer.from(good)), 'f.puffin at offset 4');
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(/CORRUPT_FILE|length field/);
    expect(bad((b) => { b[5] = 0; return b; })).toThrow(/magic/);
    expect(bad((b) => { b[b.length - 1]! ^= 1; return b; })).toThrow(/CRC-32 mismatch/);
    try {
      bad((b) => { b[b.length - 6]! ^= 1; return b; })();
      expect.unreachable();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('CORRUPT_FILE');
    }
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(1n), u32(0), u32(99)]), 't')).toThrow(/unknown cookie 99/);
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(1n), u32(0), u32(12346), u32(1), u16(0), u16(9)]), 't')).toThrow(/truncated/);
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(2n), u32(1), roaring32(cs.slice(0, 1), false), u32(1), roaring32(cs.slice(0, 1), false)]), 't')).toThrow(/not ascending/);
  });
});
