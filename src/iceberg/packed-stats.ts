import { AvroDecodeError, readBlockCount, skipVarint, truncated, type Cursor } from './avro-decoder.js';

/**
 * Column statistics of manifest entries (column sizes, value/null/NaN counts, lower/upper bounds),
 * decoded into shared typed-array slabs instead of one `Map`, one bigint and one Buffer per value.
 *
 * Why: a manifest of a 10-column table carries ~60 statistics per entry. As `Map`s of bigints and
 * Buffers they were most of the decoder's allocation, and since a manifest's entries live until the
 * whole file is decoded, V8's young-generation collector copied every one of them (about half the
 * decode CPU). Here each value is decoded in full (counts to exact doubles, bounds copied out of
 * the block) into slabs like Node's Buffer pool: keys in an Int32Array, counts in a Float64Array
 * (exact below 2^53; larger values are kept as bigints beside the slab), bound bytes in one Buffer.
 * Each map is a small read-only view (`PackedCounts`, `PackedBounds`) over a run of its slab; a
 * bigint or Buffer view is made when a value is read. A kept view pins its slab (a count slab is
 * 48 KB, a bound slab 56 KB; larger only for a map that needs more), not its manifest or its block.
 *
 * Views are used when the keys come in strictly ascending order (every writer seen writes them so);
 * otherwise, or for a type that is not an int → long / int → bytes pair, the decoder builds a Map.
 */

const COUNT_SLAB_VALUES = 4096;
const BOUND_SLAB_VALUES = 2048;
const BOUND_SLAB_BYTES = 32 * 1024;

class CountSlab {
  readonly keys: Int32Array;
  readonly vals: Float64Array;
  used = 0;
  /** Values ≥ 2^53 in magnitude, by slot (their slot in `vals` holds NaN). */
  bigs: Map<number, bigint> | null = null;
  constructor(readonly capacity: number) {
    this.keys = new Int32Array(capacity);
    this.vals = new Float64Array(capacity);
  }
}

class BoundSlab {
  readonly keys: Int32Array;
  /** Value i's bytes are bytes[starts[i], ends[i]); the values of one map are contiguous. */
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly bytes: Buffer;
  /** `bytes`' ArrayBuffer and offset in it, kept: the `buffer` getter costs more than the view it serves. */
  readonly arrayBuffer: ArrayBuffer;
  readonly base: number;
  used = 0;
  bytesUsed = 0;
  constructor(readonly capacity: number, readonly byteCapacity: number) {
    this.keys = new Int32Array(capacity);
    this.starts = new Int32Array(capacity);
    this.ends = new Int32Array(capacity);
    // Not from Buffer's pool: the slab is ours alone.
    this.bytes = Buffer.allocUnsafeSlow(byteCapacity);
    this.arrayBuffer = this.bytes.buffer as ArrayBuffer;
    this.base = this.bytes.byteOffset;
  }
}

let countSlab = new CountSlab(COUNT_SLAB_VALUES);
let boundSlab = new BoundSlab(BOUND_SLAB_VALUES, BOUND_SLAB_BYTES);

/** 0n … 255n, made once: null and NaN counts are mostly 0 or small, and a shared bigint is no garbage. */
const SMALL_COUNTS: readonly bigint[] = Array.from({ length: 256 }, (_, i) => BigInt(i));

/** An exact count (a double below 2^53) as a bigint: a shared one when small, else a fresh one. */
function countBigInt(v: number): bigint {
  return v >= 0 && v < 256 && (v | 0) === v ? SMALL_COUNTS[v]! : BigInt(v);
}

/**
 * The count in `slot`: NaN marks a value kept exactly as a bigint beside the slab. A fresh bigint,
 * not the decoder's cache (bigOf): a value read back is usually dropped at once, and the cache
 * would keep it alive (an old-space array pointing at young bigints), turning cheap garbage into
 * objects the collector copies and promotes; reading every count back cost ~10 % more with it.
 */
function countAt(s: CountSlab, slot: number): bigint {
  const v = s.vals[slot]!;
  return v === v ? countBigInt(v) : s.bigs!.get(slot)!;
}

type BufferClass = new (buffer: ArrayBuffer, byteOffset: number, length: number) => Buffer;

/**
 * Node's own Buffer class (internally FastBuffer), which `Buffer[Symbol.species]` names: a view
 * made with it is a Buffer like any Node makes, at half the cost of `Buffer.from(arrayBuffer,
 * offset, length)`, which first asks C++ what kind of object it was given. Checked once at load
 * (a Buffer, Buffer's prototype, the right bytes of the right memory); `Buffer.from` otherwise.
 * (A class of ips's own with Buffer's prototype was tried before: in the decode loop V8 kept
 * aborting its optimisation, "dependency change", on the second map it made for Buffers.)
 */
const NodeBuffer: BufferClass | null = (() => {
  try {
    const C = (Buffer as unknown as Record<symbol, unknown>)[Symbol.species];
    if (typeof C !== 'function') return null;
    const ab = new ArrayBuffer(4);
    new Uint8Array(ab).set([1, 2, 3, 4]);
    const b = new (C as BufferClass)(ab, 1, 2);
    const ok = Buffer.isBuffer(b) && Object.getPrototypeOf(b) === Buffer.prototype && b.buffer === ab &&
      b.byteOffset === 1 && b.length === 2 && b[0] === 2 && b[1] === 3 && b.toString('hex') === '0203';
    return ok ? (C as BufferClass) : null;
  } catch {
    return null;
  }
})();

/** A Buffer view of a bound (no copy). */
function boundView(ab: ArrayBuffer, offset: number, length: number): Buffer {
  return NodeBuffer !== null ? new NodeBuffer(ab, offset, length) : Buffer.from(ab, offset, length);
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** Binary search of `key` in the strictly ascending keys[start, start + size); the slot or -1. */
function find(keys: Int32Array, start: number, size: number, key: number): number {
  if (!Number.isInteger(key) || key < -2147483648 || key > 2147483647) return -1;
  let lo = start;
  let hi = start + size - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid]!;
    if (k === key) return mid;
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A read-only map of field id → count (Avro long), over a count slab. Iterates in key order. */
export class PackedCounts implements ReadonlyMap<number, bigint> {
  constructor(
    private readonly slab: CountSlab,
    private readonly start: number,
    readonly size: number,
  ) {}

  private at(slot: number): bigint {
    return countAt(this.slab, slot);
  }

  get(key: number): bigint | undefined {
    const i = find(this.slab.keys, this.start, this.size, key);
    return i < 0 ? undefined : this.at(i);
  }

  has(key: number): boolean {
    return find(this.slab.keys, this.start, this.size, key) >= 0;
  }

  forEach(cb: (value: bigint, key: number, map: ReadonlyMap<number, bigint>) => void, thisArg?: unknown): void {
    // The value is read inline (no call per value): this is the loop that reads every stat.
    const s = this.slab;
    const keys = s.keys;
    const vals = s.vals;
    for (let i = this.start, end = this.start + this.size; i < end; i++) {
      const v = vals[i]!;
      const value = v === v ? countBigInt(v) : s.bigs!.get(i)!;
      if (thisArg === undefined) cb(value, keys[i]!, this);
      else cb.call(thisArg, value, keys[i]!, this);
    }
  }

  *entries(): MapIterator<[number, bigint]> {
    const keys = this.slab.keys;
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield [keys[i]!, this.at(i)];
  }

  *keys(): MapIterator<number> {
    const keys = this.slab.keys;
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield keys[i]!;
  }

  *values(): MapIterator<bigint> {
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield this.at(i);
  }

  [Symbol.iterator](): MapIterator<[number, bigint]> {
    return this.entries();
  }

  /** Like a Map: JSON has no form for it (callers convert explicitly). */
  toJSON(): Record<string, never> {
    return {};
  }

  [INSPECT](): Map<number, bigint> {
    return new Map(this);
  }
}

/** A read-only map of field id → bound (Avro bytes), over a bound slab. Each read makes a Buffer view of the slab. */
export class PackedBounds implements ReadonlyMap<number, Buffer> {
  constructor(
    private readonly slab: BoundSlab,
    private readonly start: number,
    readonly size: number,
  ) {}

  private at(slot: number): Buffer {
    const s = this.slab;
    const from = s.starts[slot]!;
    return boundView(s.arrayBuffer, s.base + from, s.ends[slot]! - from);
  }

  get(key: number): Buffer | undefined {
    const i = find(this.slab.keys, this.start, this.size, key);
    return i < 0 ? undefined : this.at(i);
  }

  has(key: number): boolean {
    return find(this.slab.keys, this.start, this.size, key) >= 0;
  }

  /** Byte length of the bound of `key` without making a view (-1 when absent). */
  byteLength(key: number): number {
    const i = find(this.slab.keys, this.start, this.size, key);
    return i < 0 ? -1 : this.slab.ends[i]! - this.slab.starts[i]!;
  }

  forEach(cb: (value: Buffer, key: number, map: ReadonlyMap<number, Buffer>) => void, thisArg?: unknown): void {
    // The view is made inline (no call per value): this is the loop that reads every stat.
    const s = this.slab;
    const keys = s.keys;
    const starts = s.starts;
    const ends = s.ends;
    const ab = s.arrayBuffer;
    const base = s.base;
    for (let i = this.start, end = this.start + this.size; i < end; i++) {
      const from = starts[i]!;
      const value = boundView(ab, base + from, ends[i]! - from);
      if (thisArg === undefined) cb(value, keys[i]!, this);
      else cb.call(thisArg, value, keys[i]!, this);
    }
  }

  *entries(): MapIterator<[number, Buffer]> {
    const keys = this.slab.keys;
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield [keys[i]!, this.at(i)];
  }

  *keys(): MapIterator<number> {
    const keys = this.slab.keys;
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield keys[i]!;
  }

  *values(): MapIterator<Buffer> {
    for (let i = this.start, end = this.start + this.size; i < end; i++) yield this.at(i);
  }

  [Symbol.iterator](): MapIterator<[number, Buffer]> {
    return this.entries();
  }

  toJSON(): Record<string, never> {
    return {};
  }

  [INSPECT](): Map<number, Buffer> {
    return new Map(this);
  }
}

/** Which keys to keep: null = all. */
export type KeyFilter = ReadonlySet<number> | null;

/** An Avro int (the key) as a number, checked to be a 32-bit int. */
function readKey(c: Cursor): number {
  const buf = c.buf;
  let pos = c.pos;
  let n = 0;
  let mul = 1;
  for (let k = 0; ; k++) {
    if (pos >= c.end) throw truncated();
    const b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) break;
    if (k >= 4) throw new AvroDecodeError('int varint longer than 5 bytes');
    mul *= 128;
  }
  c.pos = pos;
  const v = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  if (v < -2147483648 || v > 2147483647) throw new AvroDecodeError(`int ${v} out of range`);
  return v;
}

/**
 * Reads an Avro long into slot `slot` of the slab: a double when exact (|v| ≤ 2^53), else NaN
 * and the bigint beside the slab.
 */
function readCount(c: Cursor, s: CountSlab, slot: number): void {
  const buf = c.buf;
  const start = c.pos;
  let pos = start;
  let n = 0;
  let mul = 1;
  for (;;) {
    if (pos >= c.end) throw truncated();
    const b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) break;
    if (pos - start >= 10) throw new AvroDecodeError('varint longer than 10 bytes');
    mul *= 128;
  }
  c.pos = pos;
  if (pos - start <= 7) {
    // ≤ 49 bits: exact in a double.
    s.vals[slot] = n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    return;
  }
  let z = 0n;
  let shift = 0n;
  for (let i = start; i < pos; i++) {
    z |= BigInt(buf[i]! & 0x7f) << shift;
    shift += 7n;
  }
  z = BigInt.asIntN(64, (z >> 1n) ^ -(z & 1n));
  if (z >= -(2n ** 53n) && z <= 2n ** 53n) {
    s.vals[slot] = Number(z);
    return;
  }
  s.vals[slot] = NaN;
  (s.bigs ??= new Map()).set(slot, z);
}

/** Moves the current run (`have` values from `from`) to a fresh slab with room for `more`. */
function newCountSlab(from: number, have: number, more: number): CountSlab {
  const old = countSlab;
  const s = new CountSlab(Math.max(COUNT_SLAB_VALUES, (have + more) * 2));
  s.keys.set(old.keys.subarray(from, from + have));
  s.vals.set(old.vals.subarray(from, from + have));
  if (old.bigs) for (let i = 0; i < have; i++) if (old.bigs.has(from + i)) (s.bigs ??= new Map()).set(i, old.bigs.get(from + i)!);
  countSlab = s;
  return s;
}

/**
 * Reads an Avro array of {key: int, value: long} records (the array's blocks; the union branch is
 * the caller's) into a PackedCounts, or a Map when keys are not strictly ascending. `extra` skips
 * any further fields of the pair record.
 */
export function readCountsArray(c: Cursor, want: KeyFilter, extra: ((c: Cursor) => void)[]): ReadonlyMap<number, bigint> {
  let s = countSlab;
  let start = s.used;
  let at = start;
  let ascending = true;
  let last = -Infinity;
  for (let n = readBlockCount(c); n; n = readBlockCount(c)) {
    if (at + n > s.capacity) {
      s = newCountSlab(start, at - start, n);
      at -= start;
      start = 0;
    }
    while (n--) {
      const k = readKey(c);
      if (want !== null && !want.has(k)) {
        skipVarint(c);
      } else {
        if (k <= last) ascending = false;
        last = k;
        s.keys[at] = k;
        readCount(c, s, at);
        at++;
      }
      for (let i = 0; i < extra.length; i++) extra[i]!(c);
    }
  }
  if (ascending) {
    s.used = at;
    return new PackedCounts(s, start, at - start);
  }
  // Out of order (or repeated) keys: a Map, with a Map's last-wins semantics; the slab run is reused.
  const m = new Map<number, bigint>();
  for (let i = start; i < at; i++) m.set(s.keys[i]!, countAt(s, i));
  if (s.bigs) for (let i = start; i < at; i++) s.bigs.delete(i);
  return m;
}

/** Moves the current bounds run to a fresh slab with room for `more` values and `moreBytes` bytes. */
function newBoundSlab(from: number, have: number, more: number, moreBytes: number): BoundSlab {
  const old = boundSlab;
  const byteFrom = have > 0 ? old.starts[from]! : old.bytesUsed;
  const haveBytes = old.bytesUsed - byteFrom;
  const s = new BoundSlab(Math.max(BOUND_SLAB_VALUES, (have + more) * 2), Math.max(BOUND_SLAB_BYTES, (haveBytes + moreBytes) * 2));
  s.keys.set(old.keys.subarray(from, from + have));
  for (let i = 0; i < have; i++) {
    s.starts[i] = old.starts[from + i]! - byteFrom;
    s.ends[i] = old.ends[from + i]! - byteFrom;
  }
  old.bytes.copy(s.bytes, 0, byteFrom, byteFrom + haveBytes);
  s.bytesUsed = haveBytes;
  boundSlab = s;
  return s;
}

/** Reads an Avro array of {key: int, value: bytes} records into a PackedBounds (or a Map when keys are not strictly ascending). */
export function readBoundsArray(c: Cursor, want: KeyFilter, extra: ((c: Cursor) => void)[]): ReadonlyMap<number, Buffer> {
  let s = boundSlab;
  let start = s.used;
  let at = start;
  let ascending = true;
  let last = -Infinity;
  for (let n = readBlockCount(c); n; n = readBlockCount(c)) {
    if (at + n > s.capacity) {
      s = newBoundSlab(start, at - start, n, 0);
      at -= start;
      start = 0;
    }
    while (n--) {
      const k = readKey(c);
      // The bytes' length, checked against what is left of the block.
      const buf = c.buf;
      let pos = c.pos;
      let len = 0;
      let mul = 1;
      for (let j = 0; ; j++) {
        if (pos >= c.end) throw truncated();
        const b = buf[pos++]!;
        len += (b & 0x7f) * mul;
        if (b < 0x80) break;
        if (j >= 9) throw new AvroDecodeError('varint longer than 10 bytes');
        mul *= 128;
      }
      if (len % 2 === 1) throw new AvroDecodeError('negative length');
      len /= 2;
      if (len > c.end - pos) throw truncated();
      c.pos = pos + len;
      if (want === null || want.has(k)) {
        if (k <= last) ascending = false;
        last = k;
        if (s.bytesUsed + len > s.byteCapacity) {
          s = newBoundSlabKeeping(start, at, len);
          at -= start;
          start = 0;
        }
        const to = s.bytesUsed;
        const dst = s.bytes;
        if (len <= 32) for (let i = 0; i < len; i++) dst[to + i] = buf[pos + i]!;
        else buf.copy(dst, to, pos, pos + len);
        s.keys[at] = k;
        s.starts[at] = to;
        s.ends[at] = to + len;
        s.bytesUsed = to + len;
        at++;
      }
      for (let i = 0; i < extra.length; i++) extra[i]!(c);
    }
  }
  if (ascending) {
    s.used = at;
    return new PackedBounds(s, start, at - start);
  }
  const m = new Map<number, Buffer>();
  for (let i = start; i < at; i++) m.set(s.keys[i]!, Buffer.from(s.bytes.subarray(s.starts[i]!, s.ends[i]!)));
  s.bytesUsed = at > start ? s.starts[start]! : s.bytesUsed;
  return m;
}

function newBoundSlabKeeping(start: number, at: number, moreBytes: number): BoundSlab {
  return newBoundSlab(start, at - start, Math.max(1, boundSlab.capacity - at), moreBytes);
}
