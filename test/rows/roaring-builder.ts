// Deletion vectors (Puffin `deletion-vector-v1`) built byte by byte from the specs (Iceberg
// Puffin spec, RoaringFormatSpec), for the decoder's tests and its fuzz target: every container
// kind (array, bitmap, run), with and without the offset header, and shapes no writer makes.
import zlib from 'node:zlib';

export const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
export const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
export const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };

export type Container = { key: number; kind: 'array'; values: number[] } | { key: number; kind: 'bitmap'; values: number[] } | { key: number; kind: 'run'; runs: [number, number][] };

export function card(c: Container): number {
  return c.kind === 'run' ? c.runs.reduce((n, [, len]) => n + len + 1, 0) : c.values.length;
}

/** A 32-bit Roaring bitmap in the portable format; `withRunCookie` chooses the cookie that allows run containers. */
export function roaring32(cs: Container[], withRunCookie: boolean): Buffer {
  const parts: Buffer[] = [];
  if (withRunCookie) {
    parts.push(u32((12347 | ((cs.length - 1) << 16)) >>> 0));
    const bits = Buffer.alloc(Math.ceil(cs.length / 8));
    cs.forEach((c, i) => { if (c.kind === 'run') bits[i >> 3]! |= 1 << (i & 7); });
    parts.push(bits);
  } else {
    parts.push(u32(12346), u32(cs.length));
  }
  for (const c of cs) parts.push(u16(c.key), u16(Math.min(card(c), 65536) - 1)); // a hostile run list can claim more
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

/** A 64-bit Roaring bitmap in the portable format: a count, then per 32-bit bucket its high key and bitmap. */
export function roaring64(buckets: [number, Buffer][]): Buffer {
  return Buffer.concat([u64(BigInt(buckets.length)), ...buckets.flatMap(([k, b]) => [u32(k), b])]);
}

/** The Puffin blob: big-endian length of magic + bitmap, magic, bitmap, big-endian CRC-32 of magic + bitmap. */
export function dvBlob(bitmap: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([0xd1, 0xd3, 0x39, 0x64]), bitmap]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

