import zlib from 'node:zlib';
import { IpsError } from '../errors.js';

/** Magic bytes of a `deletion-vector-v1` Puffin blob (spec, Puffin "deletion-vector-v1"). */
const DV_MAGIC = Buffer.from([0xd1, 0xd3, 0x39, 0x64]);
const SERIAL_COOKIE_NO_RUNCONTAINER = 12346;
const SERIAL_COOKIE = 12347;
const NO_OFFSET_THRESHOLD = 4;

/**
 * Decodes one deletion vector: the blob at `content_offset` / `content_size_in_bytes` of a
 * Puffin file. Layout: 4-byte big-endian length of magic + bitmap, magic `D1 D3 39 64`, a
 * Roaring "portable" 64-bit bitmap, 4-byte big-endian CRC-32 of magic + bitmap. Returns the
 * deleted row positions in ascending order. `where` names the blob in errors.
 */
export function decodeDeletionVector(blob: Buffer, where: string): bigint[] {
  const out: bigint[] = [];
  for (const chunk of deletionVectorChunks(blob, where)) for (const p of chunk) out.push(BigInt(p));
  return out;
}

/** What a deletion vector's manifest entries say it must hold, checked while it is decoded. */
export interface DeletionVectorBounds {
  /** Rows of the data file the vector applies to (its record_count): every position is below it. */
  rowCount: bigint;
  /** The vector's own record_count: how many positions it holds. */
  cardinality: bigint;
}

/**
 * The deleted positions of one deletion vector, ascending, a Roaring container (at most 65,536
 * positions) at a time, so that a vector of millions of positions is never held whole. Positions
 * are JS numbers: exact below 2^53, which a row position in one data file never reaches (checked).
 *
 * The blob is as hostile as any file another system wrote: a run container of a few bytes
 * stands for 65,536 positions, so a small blob can claim billions. Positions must be strictly
 * ascending (as the Roaring format requires), and with `bounds` below the data file's row count
 * and no more than the vector's record_count: work stops at the first container that breaks
 * them, so decoding costs at most what the data file's own rows would.
 */
export function* deletionVectorChunks(blob: Buffer, where: string, bounds?: DeletionVectorBounds): Generator<number[]> {
  const bad = (why: string): IpsError => new IpsError('CORRUPT_FILE', `${where}: not a valid deletion vector: ${why}`);
  if (blob.length < 12) throw bad(`${blob.length} bytes`);
  const len = blob.readUInt32BE(0);
  if (len + 8 !== blob.length) throw bad(`length field ${len} does not match the blob size ${blob.length} (content_size_in_bytes)`);
  if (!blob.subarray(4, 8).equals(DV_MAGIC)) throw bad(`magic ${blob.subarray(4, 8).toString('hex')} instead of d1d33964`);
  const crc = blob.readUInt32BE(4 + len);
  if ((zlib.crc32(blob.subarray(4, 4 + len)) >>> 0) !== crc) throw bad('CRC-32 mismatch');
  if (!bounds) {
    yield* roaring64Chunks(blob.subarray(8, 4 + len), where);
    return;
  }
  if (bounds.cardinality > bounds.rowCount) throw bad(`its manifest entry says it deletes ${bounds.cardinality} rows of a data file of ${bounds.rowCount}`);
  let count = 0n;
  for (const chunk of roaring64Chunks(blob.subarray(8, 4 + len), where)) {
    if (chunk.length === 0) continue;
    const last = chunk[chunk.length - 1]!;
    if (BigInt(last) >= bounds.rowCount) throw bad(`position ${last} is past the end of its data file (${bounds.rowCount} rows)`);
    count += BigInt(chunk.length);
    if (count > bounds.cardinality) throw bad(`it holds more than the ${bounds.cardinality} positions its manifest entry says`);
    yield chunk;
  }
  if (count !== bounds.cardinality) throw bad(`it holds ${count} positions, its manifest entry says ${bounds.cardinality}`);
}

/**
 * The most bytes a valid deletion vector of a data file of `rowCount` rows can take: positions
 * are below the row count, so it has at most one 16-bit container per 65,536 rows, each at most
 * a run container of 65,535 runs (its count is 16 bits: 262,142 bytes) with its descriptor and offset,
 * and one 32-bit bitmap header per 2^32 rows. A blob larger than this is refused before it is
 * read, whatever its manifest entry says.
 */
export function maxDeletionVectorBytes(rowCount: bigint): bigint {
  const rows = rowCount > 0n ? rowCount : 1n;
  const containers = (rows + 65535n) >> 16n;
  const buckets = (rows + 0xffffffffn) >> 32n;
  return 12n + 8n + buckets * (4n + 4n + 8192n) + containers * (8n + 2n + 4n * 65535n);
}

/** A Roaring 64-bit bitmap in the portable format: 8-byte LE count, then per 32-bit bitmap a 4-byte LE high key and the bitmap. */
export function decodeRoaring64Portable(buf: Buffer, where: string): bigint[] {
  const out: bigint[] = [];
  for (const chunk of roaring64Chunks(buf, where)) for (const p of chunk) out.push(BigInt(p));
  return out;
}

function* roaring64Chunks(buf: Buffer, where: string): Generator<number[]> {
  const r = new Reader(buf, where);
  const count = r.u64();
  if (count > BigInt(buf.length)) throw r.bad(`bitmap count ${count}`);
  let lastKey = -1;
  for (let i = 0n; i < count; i++) {
    const key = r.u32();
    if (key <= lastKey) throw r.bad('32-bit bitmap keys are not ascending');
    lastKey = key;
    // key * 2^32 + low stays exact below 2^53: keys up to 2^21 - 1.
    if (key >= 1 << 21) throw r.bad(`position above 2^53 (high key ${key})`);
    const high = key * 4294967296;
    for (const chunk of roaring32Chunks(r)) yield high === 0 ? chunk : chunk.map((low) => high + low);
  }
  if (r.pos !== buf.length) throw r.bad(`${buf.length - r.pos} trailing bytes`);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly where: string) {}
  bad(why: string): IpsError {
    return new IpsError('CORRUPT_FILE', `${this.where}: not a valid Roaring bitmap: ${why}`);
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw this.bad('truncated');
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
}

/** One 32-bit Roaring bitmap (portable serialization, as CRoaring and RoaringBitmap Java write it), a container at a time. */
function* roaring32Chunks(r: Reader): Generator<number[]> {
  const cookie = r.u32();
  let size: number;
  let runBits: Buffer | null = null;
  if ((cookie & 0xffff) === SERIAL_COOKIE) {
    size = (cookie >>> 16) + 1;
    const n = Math.ceil(size / 8);
    r.need(n);
    runBits = r.buf.subarray(r.pos, r.pos + n);
    r.pos += n;
  } else if (cookie === SERIAL_COOKIE_NO_RUNCONTAINER) {
    size = r.u32();
  } else {
    throw r.bad(`unknown cookie ${cookie}`);
  }
  if (size > 65536) throw r.bad(`${size} containers`);
  const keys: number[] = [];
  const cards: number[] = [];
  for (let i = 0; i < size; i++) {
    keys.push(r.u16());
    cards.push(r.u16() + 1);
    if (i > 0 && keys[i]! <= keys[i - 1]!) throw r.bad('container keys are not ascending');
  }
  if (runBits === null || size >= NO_OFFSET_THRESHOLD) {
    r.need(4 * size);
    r.pos += 4 * size; // offset header: containers follow in order anyway
  }
  for (let i = 0; i < size; i++) {
    const out: number[] = [];
    const high = keys[i]! * 65536;
    const isRun = runBits !== null && (runBits[i >> 3]! & (1 << (i & 7))) !== 0;
    // Values must be strictly ascending (the format requires it): so a container holds at most
    // 65,536 positions however its runs or values are spelled.
    let next = 0;
    if (isRun) {
      const runs = r.u16();
      for (let j = 0; j < runs; j++) {
        const start = r.u16();
        const length = r.u16();
        if (start < next) throw r.bad('runs overlap or are not ascending');
        if (start + length > 0xffff) throw r.bad('run past the container');
        for (let v = start; v <= start + length; v++) out.push(high + v);
        next = start + length + 1;
      }
    } else if (cards[i]! > 4096) {
      r.need(8192);
      const base = r.pos;
      for (let w = 0; w < 2048; w++) {
        const word = r.buf.readUInt32LE(base + w * 4);
        if (word === 0) continue;
        for (let b = 0; b < 32; b++) if ((word >>> b) & 1) out.push(high + w * 32 + b);
      }
      r.pos += 8192;
    } else {
      for (let j = 0; j < cards[i]!; j++) {
        const v = r.u16();
        if (v < next) throw r.bad('array container values are not ascending');
        out.push(high + v);
        next = v + 1;
      }
    }
    yield out;
  }
}
