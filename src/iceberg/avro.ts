import zlib from 'node:zlib';
import avro from 'avsc';
import { decompress as zstdDecompress } from 'fzstd';
import snappy from 'snappyjs';
import { IpsError, describeError } from '../errors.js';
import { inflateRawBlock, inflateRawBlockInWasm, inflateRawInto } from './inflate.js';
import { AvroDecodeError, compiledSchema, readBlockCount, readBytes, readString, readVarNum, type AvroSchemaNode, type Cursor } from './avro-decoder.js';

/**
 * Avro object container files (the format of manifests and manifest lists): container framing,
 * codecs, and record decoding with the compiled decoder of avro-decoder.ts (Avro `long` as bigint,
 * because snapshot ids and sequence numbers exceed 2^53). avsc is kept for writing (avroType,
 * HEADER_TYPE) and for tests that decode with it as a second implementation.
 */

/** Decode a zigzag varint (Avro long) from its raw bytes to bigint. */
function varintToBigInt(buf: Buffer): bigint {
  // Fast path: up to 7 bytes is at most 49 bits, exact in a double.
  if (buf.length <= 7) {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < buf.length; i++) {
      n += (buf[i]! & 0x7f) * mul;
      mul *= 128;
    }
    const half = Math.floor(n / 2);
    return BigInt(n % 2 === 0 ? half : -half - 1);
  }
  let n = 0n;
  let shift = 0n;
  for (let i = 0; i < buf.length; i++) {
    n |= BigInt(buf[i]! & 0x7f) << shift;
    shift += 7n;
  }
  return (n >> 1n) ^ -(n & 1n);
}

function bigIntToVarint(v: bigint): Buffer {
  let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return Buffer.from(out);
}

const BIGINT_LONG = avro.types.LongType.__with(
  {
    fromBuffer: varintToBigInt,
    toBuffer: (v: bigint | number) => bigIntToVarint(BigInt(v)),
    fromJSON: (v: unknown) => BigInt(v as string),
    toJSON: (v: bigint) => Number(v),
    isValid: (v: unknown) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)),
    compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
  },
  true,
);

/**
 * avsc trusts the item counts of array and map blocks: a count of 2^31 makes it allocate a
 * 2^31-slot array and then read 2^31 items past the end of the buffer, which never finishes.
 * Every item of an Iceberg array or map takes at least one byte, so a count larger than the
 * bytes left is corruption: the reader then stops and marks the read invalid (position past the
 * end), which `decode` reports as a truncated record. Map values go into objects without a
 * prototype, so a `__proto__` key is just a key.
 */
interface AvscTap { buf: Buffer; pos: number; readLong(): number; skipLong(): void; readString(): string }
interface AvscReader { _read(tap: AvscTap): unknown }
function boundedCount(tap: AvscTap, n: number): number | null {
  let count = n;
  if (count < 0) {
    count = -count;
    tap.skipLong(); // the block's size in bytes
  }
  if (!Number.isSafeInteger(count) || count > tap.buf.length - tap.pos) {
    tap.pos = tap.buf.length + 1;
    return null;
  }
  return count;
}
(avro.types.ArrayType.prototype as unknown as { _read: (this: { itemsType: AvscReader }, tap: AvscTap) => unknown[] })._read = function (tap) {
  const out: unknown[] = [];
  for (let n = tap.readLong(); n; n = tap.readLong()) {
    let count = boundedCount(tap, n);
    if (count === null) return out;
    while (count--) out.push(this.itemsType._read(tap));
  }
  return out;
};
(avro.types.MapType.prototype as unknown as { _read: (this: { valuesType: AvscReader }, tap: AvscTap) => Record<string, unknown> })._read = function (tap) {
  const out = Object.create(null) as Record<string, unknown>;
  for (let n = tap.readLong(); n; n = tap.readLong()) {
    let count = boundedCount(tap, n);
    if (count === null) return out;
    while (count--) {
      const key = tap.readString();
      out[key] = this.valuesType._read(tap);
    }
  }
  return out;
};

/** Type for a schema, with longs as bigint. Cached by schema text: manifests share schemas. */
const typeCache = new Map<string, avro.Type>();
export function avroType(schemaJson: unknown): avro.Type {
  const key = typeof schemaJson === 'string' ? schemaJson : JSON.stringify(schemaJson);
  let t = typeCache.get(key);
  if (!t) {
    const schema = typeof schemaJson === 'string' ? JSON.parse(schemaJson) : schemaJson;
    t = avro.Type.forSchema(schema, { registry: { long: BIGINT_LONG } as never, wrapUnions: false });
    if (typeCache.size > 256) typeCache.clear();
    typeCache.set(key, t);
  }
  return t;
}

/** The Avro object container header (magic, metadata map, sync marker). */
export const HEADER_TYPE = avro.Type.forSchema({
  type: 'record',
  name: 'org.apache.avro.file.Header',
  fields: [
    { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
  ],
});
export const PLAIN_LONG = avro.Type.forSchema('long');
export const AVRO_MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]);

export interface AvroFile<T = unknown> {
  /** Header key/value metadata as UTF-8 strings (Iceberg keys: schema, partition-spec, …). */
  meta: Map<string, string>;
  /** The writer's Avro schema (JSON), with Iceberg `field-id` annotations. */
  schema: AvroSchemaNode;
  records: T[];
}

/** Builds, once per file, the function that turns each decoded record into the caller's form. */
export type RecordMapper<T> = (schema: AvroSchemaNode, meta: Map<string, string>) => (record: unknown, index: number) => T;

const schemaCache = new Map<string, AvroSchemaNode>();
function parsedSchema(text: string): AvroSchemaNode {
  let s = schemaCache.get(text);
  if (!s) {
    s = JSON.parse(text) as AvroSchemaNode;
    if (schemaCache.size > 256) schemaCache.clear();
    schemaCache.set(text, s);
  }
  return s;
}

export type { AvroSchemaNode, Cursor };

/**
 * Default bound on what one Avro file may decompress to (all blocks together). Manifests are
 * written at a few MiB; a file that inflates past this is a decompression bomb or corrupt.
 */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 128 * 1024 * 1024;

export interface AvroReadOptions {
  /** Bytes all blocks of the file may decompress to together (default DEFAULT_MAX_DECOMPRESSED_BYTES). */
  maxDecompressedBytes?: number | undefined;
}

/** snappyjs checks the declared uncompressed length against `maxLength` before allocating (its types omit the parameter). */
const snappyUncompress = snappy.uncompress as (data: Uint8Array, maxLength?: number) => Uint8Array;

function tooLarge(where: string, limit: number): IpsError {
  return new IpsError('FILE_TOO_LARGE',
    `${where}: an Avro block decompresses to more than the ${limit} bytes left of the limit for one file (a decompression bomb or a corrupt block); raise max_avro_decompressed_bytes if the file is genuine`,
    { details: { limitBytes: limit } });
}

/** zstd frame header (RFC 8878 3.1.1.1): the window and, when present, the declared content size. */
function zstdFrameHeader(data: Buffer, at: number, where: string): { headerEnd: number; windowSize: number; contentSize: number | null; checksum: boolean } {
  const fhd = data[at + 4];
  if (fhd === undefined) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd frame header`);
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = ((fhd >> 2) & 1) === 1;
  const dictFlag = fhd & 3;
  let p = at + 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = data[p++];
    if (wd === undefined) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd frame header`);
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  p += [0, 1, 2, 4][dictFlag]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (p + fcsBytes > data.length) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd frame header`);
  let contentSize: number | null = null;
  if (fcsBytes > 0) {
    contentSize = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) contentSize = contentSize * 256 + data[p + i]!;
    if (fcsBytes === 2) contentSize += 256;
  }
  if (singleSegment) windowSize = contentSize ?? 0;
  return { headerEnd: p + fcsBytes, windowSize, contentSize, checksum };
}

/**
 * The most a zstd payload can decompress to, from its frame and block headers alone (no
 * decoding): fzstd allocates the declared content size or window up front, so both are checked
 * before it runs, and every block's output is at most its regenerated size (raw, RLE) or 128 KiB.
 */
function zstdOutputBound(data: Buffer, where: string, limit: number): number {
  let total = 0;
  let at = 0;
  while (at < data.length) {
    if (at + 4 > data.length) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd frame`);
    const magic = data.readUInt32LE(at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // Skippable frame: magic, 4-byte size, user data.
      if (at + 8 > data.length) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd skippable frame`);
      at += 8 + data.readUInt32LE(at + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) throw new IpsError('CORRUPT_FILE', `${where}: bad zstd frame magic`);
    const h = zstdFrameHeader(data, at, where);
    if (h.contentSize !== null && h.contentSize > limit - total) throw tooLarge(where, limit);
    if (h.contentSize === null && h.windowSize > limit) throw tooLarge(where, limit);
    const blockMax = Math.min(h.windowSize || 128 * 1024, 128 * 1024);
    let p = h.headerEnd;
    let frameOut = 0;
    for (;;) {
      if (p + 3 > data.length) throw new IpsError('CORRUPT_FILE', `${where}: truncated zstd block`);
      const bh = data[p]! | (data[p + 1]! << 8) | (data[p + 2]! << 16);
      const last = bh & 1;
      const type = (bh >> 1) & 3;
      const size = bh >>> 3;
      p += 3;
      if (type === 3) throw new IpsError('CORRUPT_FILE', `${where}: reserved zstd block type`);
      frameOut += type === 2 ? blockMax : size;
      p += type === 1 ? 1 : size;
      if (last) break;
    }
    if (h.checksum) p += 4;
    total += h.contentSize ?? frameOut;
    if (total > limit) throw tooLarge(where, limit);
    at = p;
  }
  return total;
}

/** A deflate block data[start, end) inflated into the cursor (borrowed output; see inflateRawInto), with decompressBlock's errors. */
function inflateBlockInto(data: Buffer, start: number, end: number, where: string, limit: number, cur: Cursor): void {
  try {
    inflateRawInto(data, start, end, Math.max(1, limit), cur);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(where, limit);
    throw new IpsError('CORRUPT_FILE', `${where}: corrupt deflate block: ${describeError(e)}`, { cause: e });
  }
}

/** A block's bytes; with `borrowed`, a deflate block may be valid only until the next call (see inflateRawBlock). */
function decompressBlock(codec: string, data: Buffer, where: string, limit: number, borrowed = false): Buffer {
  switch (codec) {
    case 'null':
      if (data.length > limit) throw tooLarge(where, limit);
      return data;
    case 'deflate':
      try {
        const out = inflateRawBlock(data, Math.max(1, limit));
        return borrowed ? out : Buffer.from(out);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(where, limit);
        throw new IpsError('CORRUPT_FILE', `${where}: corrupt deflate block: ${describeError(e)}`, { cause: e });
      }
    case 'snappy': {
      // Avro's snappy framing: the compressed block is followed by a 4-byte CRC32 of the output.
      if (data.length < 4) throw new IpsError('CORRUPT_FILE', `${where}: truncated snappy block`);
      let out: Buffer;
      try {
        out = Buffer.from(snappyUncompress(data.subarray(0, data.length - 4), limit));
      } catch (e) {
        if (/too big/.test(describeError(e))) throw tooLarge(where, limit);
        throw new IpsError('CORRUPT_FILE', `${where}: corrupt snappy block: ${describeError(e)}`, { cause: e });
      }
      const crc = data.readUInt32BE(data.length - 4);
      if ((zlib.crc32(out) >>> 0) !== crc) throw new IpsError('CORRUPT_FILE', `${where}: snappy block checksum mismatch`);
      return out;
    }
    case 'zstandard': {
      zstdOutputBound(data, where, limit);
      const out = Buffer.from(zstdDecompress(data));
      if (out.length > limit) throw tooLarge(where, limit);
      return out;
    }
    default:
      throw new IpsError('UNSUPPORTED_CODEC', `${where}: Avro codec "${codec}" is not supported (null, deflate, snappy and zstandard are)`);
  }
}

interface Container {
  header: { magic: Buffer; meta: Record<string, Buffer>; sync: Buffer };
  meta: Map<string, string>;
  codec: string;
  /** Where the first block starts. */
  offset: number;
}

interface BlockFrame {
  /** Where the block's header starts (for messages). */
  pos: number;
  count: number;
  start: number;
  end: number;
}

function corruptError(where: string, what: string): IpsError {
  return new IpsError('CORRUPT_FILE', `${where}: ${what}`);
}

/** The container header (magic, metadata map of bytes, sync marker), read with the same bounds as records. */
function readHeader(buf: Buffer): Container['header'] | null {
  const c: Cursor = { buf, pos: 4, end: buf.length };
  try {
    const meta = Object.create(null) as Record<string, Buffer>;
    for (let n = readBlockCount(c); n; n = readBlockCount(c)) {
      while (n--) {
        const k = readString(c);
        meta[k] = readBytes(c);
      }
    }
    if (c.pos + 16 > c.end) return null;
    return { magic: buf.subarray(0, 4), meta, sync: buf.subarray(c.pos, c.pos + 16), offset: c.pos + 16 } as Container['header'] & { offset: number };
  } catch (e) {
    if (e instanceof AvroDecodeError) return null;
    throw e;
  }
}

function parseContainer(buf: Buffer, where: string): Container {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(AVRO_MAGIC)) {
    throw new IpsError('CORRUPT_FILE', `${where} is not an Avro container file (bad magic bytes)`);
  }
  const header = readHeader(buf) as (Container['header'] & { offset: number }) | null;
  if (!header) throw corruptError(where, 'truncated Avro header');
  const offset = header.offset;
  const meta = new Map<string, string>();
  for (const [k, v] of Object.entries(header.meta)) meta.set(k, v.toString('utf8'));
  const codec = meta.get('avro.codec') ?? 'null';
  // A container decompressed ahead of decoding (decompressAvroFile) says what its writer used.
  const original = meta.get(ORIGINAL_CODEC_KEY);
  if (original !== undefined) {
    meta.set('avro.codec', original);
    meta.delete(ORIGINAL_CODEC_KEY);
  }
  return { header: { magic: header.magic, meta: header.meta, sync: header.sync }, meta, codec, offset };
}

/**
 * The blocks of a container, checked before anything is decompressed or decoded: counts and
 * sizes are non-negative (the spec's negative counts belong to arrays and maps, not to container
 * blocks; a negative size would step backwards for ever), and each ends in the sync marker.
 */
function* containerBlocks(buf: Buffer, where: string, c: Container): Generator<BlockFrame> {
  const cur: Cursor = { buf, pos: c.offset, end: buf.length };
  const sync = c.header.sync;
  while (cur.pos < buf.length) yield nextBlock(cur, where, sync, { pos: 0, count: 0, start: 0, end: 0 });
}

/** The block at `cur.pos` (checked as containerBlocks says); moves `cur` past its sync marker. */
/** Frames the block at `cur` into `out` (reused by readAvroContainer: one block per entry for PyIceberg's manifests). */
function nextBlock(cur: Cursor, where: string, sync: Buffer, out: BlockFrame): BlockFrame {
  const buf = cur.buf;
  const pos = cur.pos;
  let n: number;
  let len: number;
  try {
    n = readVarNum(cur);
    len = readVarNum(cur);
  } catch (e) {
    if (e instanceof AvroDecodeError) throw corruptError(where, 'truncated Avro block header');
    throw e;
  }
  if (!Number.isSafeInteger(n) || n < 0) throw corruptError(where, `Avro block at byte ${pos} has an invalid record count ${n}`);
  if (!Number.isSafeInteger(len) || len < 0) throw corruptError(where, `Avro block at byte ${pos} has an invalid size ${len}`);
  const start = cur.pos;
  const end = start + len;
  if (end + 16 > buf.length) throw corruptError(where, 'truncated Avro block');
  // 16 bytes compared in place (a native compare per block costs more than the loop).
  for (let i = 0; i < 16; i++) if (buf[end + i] !== sync[i]) throw corruptError(where, 'Avro sync marker mismatch');
  cur.pos = end + 16;
  out.pos = pos;
  out.count = n;
  out.start = start;
  out.end = end;
  return out;
}

function wrapDecodeError(e: unknown, where: string): never {
  if (e instanceof IpsError) {
    // Schema errors are raised without the file's name.
    if (e.code === 'CORRUPT_FILE' && e.message.startsWith('invalid Avro schema')) throw new IpsError('CORRUPT_FILE', `${where}: ${e.message}`, { cause: e });
    throw e;
  }
  if (e instanceof AvroDecodeError) throw corruptError(where, e.message);
  throw new IpsError('CORRUPT_FILE', `${where}: cannot decode Avro file: ${describeError(e)}`, { cause: e });
}

/**
 * Builds, once per file, the function that decodes one record from the cursor into the caller's
 * form (given the writer schema as parsed and as text, and the header metadata).
 */
export type RecordDecoderFactory<T> = (schema: AvroSchemaNode, schemaText: string, meta: Map<string, string>) => (c: Cursor, index: number) => T;

/**
 * Frames, decompresses and decodes every record with the decoder `factory` builds for the file's
 * schema. Every block must be consumed exactly by its records.
 */
export function readAvroContainer<T>(buf: Buffer, where: string, factory: RecordDecoderFactory<T>, options: AvroReadOptions = {}): AvroFile<T> {
  try {
    const c = parseContainer(buf, where);
    const schemaText = c.meta.get('avro.schema');
    if (!schemaText) throw corruptError(where, 'Avro header has no avro.schema');
    const schema = parsedSchema(schemaText);
    const decode = factory(schema, schemaText, c.meta);
    const records: T[] = [];
    let budget = options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
    const cur: Cursor = { buf, pos: 0, end: 0 };
    // The framing of containerBlocks, inline: PyIceberg writes one block per record, so this loop
    // runs once per entry and a generator step per block was a measurable part of decoding.
    const frame: Cursor = { buf, pos: c.offset, end: buf.length };
    const sync = c.header.sync;
    const deflate = c.codec === 'deflate';
    const f: BlockFrame = { pos: 0, count: 0, start: 0, end: 0 };
    while (frame.pos < buf.length) {
      nextBlock(frame, where, sync, f);
      if (deflate) {
        inflateBlockInto(buf, f.start, f.end, where, budget, cur);
      } else {
        const block = decompressBlock(c.codec, buf.subarray(f.start, f.end), where, budget, true);
        cur.buf = block;
        cur.pos = 0;
        cur.end = block.length;
      }
      const size = cur.end;
      budget -= size;
      // Every Iceberg record takes at least one byte: more records than bytes is a lie.
      if (f.count > size) throw corruptError(where, `Avro block at byte ${f.pos} claims ${f.count} records in ${size} bytes`);
      for (let i = 0; i < f.count; i++) records.push(decode(cur, records.length));
      if (cur.pos !== size) throw corruptError(where, `Avro block at byte ${f.pos} has ${size - cur.pos} byte(s) left over after its ${f.count} record(s)`);
    }
    return { meta: c.meta, schema, records };
  } catch (e) {
    return wrapDecodeError(e, where);
  }
}

/**
 * Decodes every record as a generic value (records as objects by field name, longs as bigint).
 * With `mapper`, each record is converted as soon as it is decoded, so the decoder's intermediate
 * objects die young instead of living until the whole file is read.
 */
export function readAvroFile<T = unknown>(buf: Buffer, where: string, mapper?: RecordMapper<T>, options: AvroReadOptions = {}): AvroFile<T> {
  return readAvroContainer<T>(buf, where, (schema, text, meta) => {
    const read = compiledSchema(text, schema).read;
    if (!mapper) return (c) => read(c) as T;
    const map = mapper(schema, meta);
    return (c, i) => map(read(c), i);
  }, options);
}

/** Header key under which decompressAvroFile keeps the writer's codec (readers see `avro.codec` as written). */
const ORIGINAL_CODEC_KEY = 'ips.avro.original-codec';

const inflateRawAsync = (data: Buffer, opts: zlib.ZlibOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => zlib.inflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(out))));

/**
 * The same container with every block decompressed (codec null), for a service that must keep
 * answering while it reads: deflate blocks of more than 8 MB of output inflate on libuv's thread
 * pool instead of the event loop (smaller ones inline with libdeflate: a few ms at most), and the
 * loop gets a turn between blocks. Every check of `readAvroFile` applies
 * (framing before decompression, the budget over all blocks); the result then decodes cheaply.
 */
export async function decompressAvroFile(buf: Buffer, where: string, options: AvroReadOptions = {}): Promise<Buffer> {
  try {
    const c = parseContainer(buf, where);
    if (c.codec === 'null') return buf;
    const limit = options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
    let budget = limit;
    const meta = Object.assign(Object.create(null) as Record<string, Buffer>, c.header.meta, { 'avro.codec': Buffer.from('null'), [ORIGINAL_CODEC_KEY]: Buffer.from(c.codec) });
    const out = new ContainerWriter(HEADER_TYPE.toBuffer({ magic: c.header.magic, meta, sync: c.header.sync }), buf.length * 2);
    let slice = Date.now();
    for (const f of containerBlocks(buf, where, c)) {
      let block: Buffer;
      if (c.codec === 'deflate') {
        if (f.end - f.start >= 4096) {
          try {
            // libdeflate in WebAssembly here when it takes the block (output up to 8 MB: a few ms
            // on the event loop, a third of what the pool's inflate costs in CPU); zlib on
            // libuv's pool for larger ones.
            block = inflateRawBlockInWasm(buf, f.start, f.end, Math.max(1, budget)) ??
              await inflateRawAsync(buf.subarray(f.start, f.end), { chunkSize: 65536, maxOutputLength: Math.max(1, budget) });
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw tooLarge(where, budget);
            throw new IpsError('CORRUPT_FILE', `${where}: corrupt deflate block: ${describeError(e)}`, { cause: e });
          }
        } else {
          // Borrowed (valid until the next inflate): copied into the output at once.
          block = inflateSmallBlock(buf, f.start, f.end, where, budget);
        }
      } else {
        block = decompressBlock(c.codec, buf.subarray(f.start, f.end), where, budget);
      }
      out.block(f.count, block, c.header.sync);
      budget -= block.length;
      if (Date.now() - slice > 5) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
      }
    }
    return out.result();
  } catch (e) {
    return wrapDecodeError(e, where);
  }
}

/** A small deflate block, borrowed (see inflateRawBlock), with decompressBlock's errors. */
function inflateSmallBlock(buf: Buffer, start: number, end: number, where: string, budget: number): Buffer {
  const cur: Cursor = { buf, pos: 0, end: 0 };
  inflateBlockInto(buf, start, end, where, budget, cur);
  return cur.buf.subarray(cur.pos, cur.end);
}

/**
 * decompressAvroFile's output, written in place: one buffer grown by doubling, the header then
 * each block's count, size, bytes and sync marker (one copy of each block, no part per block:
 * with PyIceberg's one-entry blocks the parts and their concatenation cost more than the inflate).
 */
class ContainerWriter {
  private buf: Buffer;
  private len: number;

  constructor(header: Buffer, sizeHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64 * 1024, header.length + sizeHint));
    header.copy(this.buf, 0);
    this.len = header.length;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  /** An Avro long ≥ 0 (zigzag: 2n) as a varint. */
  private count(n: number): void {
    let z = n * 2;
    while (z >= 128) {
      this.buf[this.len++] = (z % 128) | 128;
      z = Math.floor(z / 128);
    }
    this.buf[this.len++] = z;
  }

  block(records: number, bytes: Buffer, sync: Buffer): void {
    this.reserve(20 + bytes.length + sync.length);
    this.count(records);
    this.count(bytes.length);
    this.len += bytes.copy(this.buf, this.len);
    this.len += sync.copy(this.buf, this.len);
  }

  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

export { varintToBigInt, bigIntToVarint };
