import { IpsError } from '../errors.js';

/**
 * A hand-written Avro binary decoder, compiled once per writer schema. It reads straight from the
 * block's Buffer through a cursor: varints in double arithmetic while they are exact (≤ 7 bytes,
 * 49 bits), BigInt only past that; values nobody asked for are skipped by walking their encoding
 * without allocating. Every length and count is checked against the bytes left, so a hostile file
 * ends in a typed error instead of a huge allocation or a read past the end.
 *
 * Generic values are what avsc produced (with `wrapUnions: false` and longs as bigint): records as
 * objects by field name, maps as objects without a prototype, bytes and fixed as Buffers, enums as
 * their symbol; callers that map records by Iceberg field id (manifest.ts) use `compileSchema`'s
 * nodes directly instead.
 */

export interface Cursor {
  buf: Buffer;
  pos: number;
  end: number;
}

/** A decoding failure inside a block; readAvroFile turns it into CORRUPT_FILE with the file's name. */
export class AvroDecodeError extends Error {}

export const truncated = (): AvroDecodeError => new AvroDecodeError('truncated Avro record');

/** Avro `int`/`long` as a number: exact up to 7 encoded bytes (|v| < 2^48), rounded beyond. */
export function readVarNum(c: Cursor): number {
  const buf = c.buf;
  let pos = c.pos;
  if (pos >= c.end) throw truncated();
  let b = buf[pos++]!;
  if (b < 0x80) {
    c.pos = pos;
    return (b >>> 1) ^ -(b & 1);
  }
  let n = b & 0x7f;
  let mul = 128;
  let k = 1;
  for (;;) {
    if (pos >= c.end) throw truncated();
    b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    k++;
    if (b < 0x80) break;
    if (k >= 10) throw new AvroDecodeError('varint longer than 10 bytes');
    mul *= 128;
  }
  if (k <= 7) {
    c.pos = pos;
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }
  const start = c.pos;
  c.pos = pos;
  return Number(bigFromBytes(buf, start, pos));
}

/**
 * BigInts of recent small values, shared (bigints are immutable): manifests repeat the same counts
 * (value counts equal to the record count, null counts of 0) many times per entry, and each
 * distinct bigint is a heap object the garbage collector would otherwise copy.
 */
const BIG_CACHE_SIZE = 4096;
const bigCacheKeys = new Float64Array(BIG_CACHE_SIZE).fill(NaN);
const bigCacheValues: bigint[] = new Array<bigint>(BIG_CACHE_SIZE).fill(0n);

/** An exact number (|n| < 2^53) as a bigint, from the cache when it was seen recently. */
export function bigOf(n: number): bigint {
  const slot = (n ^ (n / 4294967296)) & (BIG_CACHE_SIZE - 1);
  if (bigCacheKeys[slot] === n) return bigCacheValues[slot]!;
  const b = BigInt(n);
  bigCacheKeys[slot] = n;
  bigCacheValues[slot] = b;
  return b;
}

/**
 * Recent longs that needed more than 7 bytes, by their two exact halves (direct-mapped on the low
 * bits): entries of one manifest repeat a few snapshot ids (its own, and those of its EXISTING
 * entries, interleaved), which would otherwise be rebuilt through BigInt arithmetic each time (a
 * single "last" slot missed on one entry in ten of a manifest holding existing entries).
 */
const LONG_CACHE_SIZE = 16;
const longCacheLo = new Float64Array(LONG_CACHE_SIZE).fill(-1);
const longCacheHi = new Float64Array(LONG_CACHE_SIZE).fill(-1);
const longCacheValues: bigint[] = new Array<bigint>(LONG_CACHE_SIZE).fill(0n);

/** Avro `int`/`long` as an exact bigint. */
export function readVarBig(c: Cursor): bigint {
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
    if (pos - start >= 7) return readLongTail(c, start, n);
    mul *= 128;
  }
  c.pos = pos;
  // Up to 7 bytes (49 bits) the double is exact.
  return bigOf(n % 2 === 0 ? n / 2 : -(n + 1) / 2);
}

/** A long of 8–10 bytes: `lo` holds the exact value of its first 7 bytes. */
function readLongTail(c: Cursor, start: number, lo: number): bigint {
  const buf = c.buf;
  let pos = start + 7;
  let hi = 0;
  let mul = 1;
  for (;;) {
    if (pos >= c.end) throw truncated();
    const b = buf[pos++]!;
    hi += (b & 0x7f) * mul;
    if (b < 0x80) break;
    if (pos - start >= 10) throw new AvroDecodeError('varint longer than 10 bytes');
    mul *= 128;
  }
  c.pos = pos;
  const slot = lo & (LONG_CACHE_SIZE - 1); // ToInt32 keeps the low bits exactly
  if (longCacheLo[slot] === lo && longCacheHi[slot] === hi) return longCacheValues[slot]!;
  // The zigzag value is hi·2^49 + lo (both exact): two BigInt conversions instead of one per byte.
  const z = (BigInt(hi) << 49n) + BigInt(lo);
  const v = (z >> 1n) ^ -(z & 1n);
  longCacheLo[slot] = lo;
  longCacheHi[slot] = hi;
  longCacheValues[slot] = v;
  return v;
}

function bigFromBytes(buf: Buffer, start: number, end: number): bigint {
  let n = 0n;
  let shift = 0n;
  for (let i = start; i < end; i++) {
    n |= BigInt(buf[i]! & 0x7f) << shift;
    shift += 7n;
  }
  return (n >> 1n) ^ -(n & 1n);
}

export function skipVarint(c: Cursor): void {
  const buf = c.buf;
  let pos = c.pos;
  const stop = Math.min(c.end, pos + 10);
  while (pos < stop) {
    if (buf[pos++]! < 0x80) {
      c.pos = pos;
      return;
    }
  }
  throw pos >= c.end ? truncated() : new AvroDecodeError('varint longer than 10 bytes');
}

/** Length of a string/bytes value, checked against the bytes left. */
export function readLength(c: Cursor): number {
  const len = readVarNum(c);
  if (len < 0) throw new AvroDecodeError(`negative length ${len}`);
  if (len > c.end - c.pos) throw truncated();
  return len;
}

export function readString(c: Cursor): string {
  const len = readLength(c);
  const start = c.pos;
  c.pos = start + len;
  return c.buf.toString('utf8', start, start + len);
}

/** A copy, so a kept bound does not pin the whole decompressed block in memory. */
export function copyBytes(buf: Buffer, start: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len);
  if (len <= 32) for (let i = 0; i < len; i++) out[i] = buf[start + i]!;
  else buf.copy(out, 0, start, start + len);
  return out;
}

export function readBytes(c: Cursor): Buffer {
  const len = readLength(c);
  const start = c.pos;
  c.pos = start + len;
  return copyBytes(c.buf, start, len);
}

export function skipBytes(c: Cursor): void {
  const len = readLength(c);
  c.pos += len;
}

/**
 * Item count of the next array/map block (0 = end). A negative count is followed by the block's
 * size in bytes (skipped here). Every item of an Iceberg array or map takes at least one byte, so a
 * count beyond the bytes left is corruption, refused before anything is allocated for it.
 */
export function readBlockCount(c: Cursor): number {
  let n = readVarNum(c);
  if (n < 0) {
    n = -n;
    const size = readVarNum(c);
    if (size < 0) throw new AvroDecodeError(`negative block size ${size}`);
  }
  if (!Number.isSafeInteger(n) || n > c.end - c.pos) throw truncated();
  return n;
}

// ---- schema compilation -------------------------------------------------------------------------

export type AvroSchemaNode = string | AvroSchemaNode[] | { [k: string]: unknown };

export interface FieldNode {
  name: string;
  /** Iceberg field id (`field-id` annotation), or null. */
  fieldId: number | null;
  type: TypeNode;
}

/** One compiled schema node: its decoder, its skipper, and what it is (for callers that specialise). */
export type TypeNode =
  | { kind: 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'bytes' | 'string'; read: Read; skip: Skip }
  | { kind: 'fixed'; size: number; read: Read; skip: Skip }
  | { kind: 'enum'; symbols: string[]; read: Read; skip: Skip }
  | { kind: 'array'; items: TypeNode; read: Read; skip: Skip }
  | { kind: 'map'; values: TypeNode; read: Read; skip: Skip }
  | { kind: 'union'; branches: TypeNode[]; read: Read; skip: Skip }
  | RecordNode;

export interface RecordNode {
  kind: 'record';
  name: string;
  fields: FieldNode[];
  read: Read;
  skip: Skip;
}

export type Read = (c: Cursor) => unknown;
export type Skip = (c: Cursor) => void;

/** Bounds on a writer schema (it comes from the file): nodes compiled and nesting depth. */
const MAX_SCHEMA_NODES = 20_000;
const MAX_SCHEMA_DEPTH = 64;

function schemaError(msg: string): IpsError {
  return new IpsError('CORRUPT_FILE', `invalid Avro schema: ${msg}`);
}

const readNull: Read = () => null;
const skipNothing: Skip = () => {};
const readBoolean: Read = (c) => {
  if (c.pos >= c.end) throw truncated();
  return c.buf[c.pos++] !== 0;
};
const skipOne: Skip = (c) => {
  if (c.pos >= c.end) throw truncated();
  c.pos++;
};
const readFloat: Read = (c) => {
  if (c.pos + 4 > c.end) throw truncated();
  const v = c.buf.readFloatLE(c.pos);
  c.pos += 4;
  return v;
};
const skip4: Skip = (c) => {
  if (c.pos + 4 > c.end) throw truncated();
  c.pos += 4;
};
const readDouble: Read = (c) => {
  if (c.pos + 8 > c.end) throw truncated();
  const v = c.buf.readDoubleLE(c.pos);
  c.pos += 8;
  return v;
};
const skip8: Skip = (c) => {
  if (c.pos + 8 > c.end) throw truncated();
  c.pos += 8;
};

const PRIMITIVES: Record<string, TypeNode> = {
  null: { kind: 'null', read: readNull, skip: skipNothing },
  boolean: { kind: 'boolean', read: readBoolean, skip: skipOne },
  int: { kind: 'int', read: readVarNum, skip: skipVarint },
  long: { kind: 'long', read: readVarBig, skip: skipVarint },
  float: { kind: 'float', read: readFloat, skip: skip4 },
  double: { kind: 'double', read: readDouble, skip: skip8 },
  bytes: { kind: 'bytes', read: readBytes, skip: skipBytes },
  string: { kind: 'string', read: readString, skip: (c) => skipBytes(c) },
};

/**
 * Compile a writer schema. Named types (records, enums, fixed) are registered by full name and by
 * short name before their fields are compiled, so references (recursive ones too) resolve.
 */
export function compileSchema(schema: AvroSchemaNode): TypeNode {
  const named = new Map<string, TypeNode>();
  let nodes = 0;
  const fullName = (name: string, ns: string | undefined): string => (name.includes('.') || !ns ? name : `${ns}.${name}`);
  const register = (name: string, ns: string | undefined, node: TypeNode): void => {
    named.set(fullName(name, ns), node);
    const short = name.slice(name.lastIndexOf('.') + 1);
    if (!named.has(short)) named.set(short, node);
  };

  const compile = (s: AvroSchemaNode, ns: string | undefined, depth: number): TypeNode => {
    if (++nodes > MAX_SCHEMA_NODES) throw schemaError(`more than ${MAX_SCHEMA_NODES} types`);
    if (depth > MAX_SCHEMA_DEPTH) throw schemaError(`nested deeper than ${MAX_SCHEMA_DEPTH}`);
    if (typeof s === 'string') {
      const p = PRIMITIVES[s];
      if (p && Object.hasOwn(PRIMITIVES, s)) return p;
      const ref = named.get(fullName(s, ns)) ?? named.get(s);
      if (!ref) throw schemaError(`unknown type ${JSON.stringify(s.slice(0, 100))}`);
      return ref;
    }
    if (Array.isArray(s)) return unionNode(s.map((b) => compile(b, ns, depth + 1)));
    if (s === null || typeof s !== 'object') throw schemaError('a type is neither a name, a union nor an object');
    const type = s['type'];
    const ownNs = typeof s['namespace'] === 'string' ? s['namespace'] : ns;
    switch (type) {
      case 'record':
      case 'error': {
        const name = s['name'];
        if (typeof name !== 'string') throw schemaError('a record has no name');
        const rawFields = s['fields'];
        if (!Array.isArray(rawFields)) throw schemaError(`record ${name} has no fields`);
        const node: RecordNode = { kind: 'record', name, fields: [], read: readNull, skip: skipNothing };
        const recNs = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : ownNs;
        register(name, ownNs, node);
        for (const f of rawFields as unknown[]) {
          if (f === null || typeof f !== 'object') throw schemaError(`record ${name} has a field that is not an object`);
          const fo = f as Record<string, unknown>;
          if (typeof fo['name'] !== 'string') throw schemaError(`record ${name} has a field without a name`);
          const id = fo['field-id'];
          const fieldId = typeof id === 'number' || (typeof id === 'string' && /^-?\d+$/.test(id)) ? Number(id) : null;
          node.fields.push({ name: fo['name'], fieldId, type: compile(fo['type'] as AvroSchemaNode, recNs, depth + 1) });
        }
        finishRecord(node);
        return node;
      }
      case 'enum': {
        const symbols = s['symbols'];
        if (typeof s['name'] !== 'string' || !Array.isArray(symbols) || !symbols.every((x) => typeof x === 'string')) throw schemaError('an enum needs a name and string symbols');
        const node: TypeNode = {
          kind: 'enum', symbols: symbols as string[], skip: skipVarint,
          read: (c) => {
            const i = readVarNum(c);
            const v = (symbols as string[])[i];
            if (v === undefined || i < 0) throw new AvroDecodeError(`enum index ${i} out of range`);
            return v;
          },
        };
        register(s['name'], ownNs, node);
        return node;
      }
      case 'fixed': {
        const size = s['size'];
        if (typeof s['name'] !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw schemaError('a fixed type needs a name and a size');
        const node: TypeNode = {
          kind: 'fixed', size,
          read: (c) => {
            if (c.pos + size > c.end) throw truncated();
            const start = c.pos;
            c.pos += size;
            return copyBytes(c.buf, start, size);
          },
          skip: (c) => {
            if (c.pos + size > c.end) throw truncated();
            c.pos += size;
          },
        };
        register(s['name'], ownNs, node);
        return node;
      }
      case 'array': {
        const items = compile(s['items'] as AvroSchemaNode, ownNs, depth + 1);
        return {
          kind: 'array', items,
          read: (c) => {
            let n = readBlockCount(c);
            if (n === 0) return [];
            // Sized by the first block's count (bounded by the bytes left, as every count is): a
            // push onto an empty array reserved 17 slots, for split offsets of one or two values.
            const out: unknown[] = new Array<unknown>(n);
            let i = 0;
            for (; n; n = readBlockCount(c)) while (n--) out[i++] = items.read(c);
            return out;
          },
          skip: (c) => skipBlocks(c, items.skip, false),
        };
      }
      case 'map': {
        const values = compile(s['values'] as AvroSchemaNode, ownNs, depth + 1);
        return {
          kind: 'map', values,
          read: (c) => {
            // No prototype: a `__proto__` key is just a key.
            const out = Object.create(null) as Record<string, unknown>;
            for (let n = readBlockCount(c); n; n = readBlockCount(c)) {
              while (n--) {
                const k = readString(c);
                out[k] = values.read(c);
              }
            }
            return out;
          },
          skip: (c) => skipBlocks(c, values.skip, true),
        };
      }
      default:
        // {"type": "long", "logicalType": …} and the like: logical types are read as their base type.
        if (typeof type === 'string' || Array.isArray(type) || (type !== null && typeof type === 'object')) return compile(type as AvroSchemaNode, ownNs, depth + 1);
        throw schemaError('a type object has no type');
    }
  };
  return compile(schema, undefined, 0);
}

/**
 * Skip an array's or map's blocks. A block with a negative count carries its size in bytes, so it
 * is jumped over whole; otherwise each item is walked.
 */
function skipBlocks(c: Cursor, skipItem: Skip, isMap: boolean): void {
  for (;;) {
    let n = readVarNum(c);
    if (n === 0) return;
    if (n < 0) {
      const size = readVarNum(c);
      if (size < 0) throw new AvroDecodeError(`negative block size ${size}`);
      if (size > c.end - c.pos) throw truncated();
      c.pos += size;
      continue;
    }
    if (!Number.isSafeInteger(n) || n > c.end - c.pos) throw truncated();
    while (n--) {
      if (isMap) skipBytes(c);
      skipItem(c);
    }
  }
}

function unionNode(branches: TypeNode[]): TypeNode {
  const pick = (c: Cursor): TypeNode => {
    const i = readVarNum(c);
    const b = branches[i];
    if (b === undefined || i < 0) throw new AvroDecodeError(`union index ${i} out of range`);
    return b;
  };
  return { kind: 'union', branches, read: (c) => pick(c).read(c), skip: (c) => pick(c).skip(c) };
}

function finishRecord(node: RecordNode): void {
  const fields = node.fields;
  const n = fields.length;
  node.read = (c) => {
    // No prototype: a field named `__proto__` is just a field.
    const out = Object.create(null) as Record<string, unknown>;
    for (let i = 0; i < n; i++) {
      const f = fields[i]!;
      out[f.name] = f.type.read(c);
    }
    return out;
  };
  node.skip = (c) => {
    for (let i = 0; i < n; i++) fields[i]!.type.skip(c);
  };
}

/** The non-null branch of `["null", X]` (or X itself), with whether null is allowed. */
export function nonNull(t: TypeNode): { type: TypeNode; nullIndex: number } | null {
  if (t.kind !== 'union') return { type: t, nullIndex: -1 };
  const real = t.branches.filter((b) => b.kind !== 'null');
  if (t.branches.length > 2 || real.length !== 1) return null;
  return { type: real[0]!, nullIndex: t.branches.findIndex((b) => b.kind === 'null') };
}

const compiledCache = new Map<string, TypeNode>();
/** Compiled schema by its text (files of one table share their schema text). */
export function compiledSchema(text: string, parsed: AvroSchemaNode): TypeNode {
  let t = compiledCache.get(text);
  if (!t) {
    t = compileSchema(parsed);
    if (compiledCache.size > 256) compiledCache.clear();
    compiledCache.set(text, t);
  }
  return t;
}
