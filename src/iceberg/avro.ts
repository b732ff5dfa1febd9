import zlib from 'node:zlib';
import avro from 'avsc';
import { decompress as zstdDecompress } from 'fzstd';
import snappy from 'snappyjs';
import { IpsError, describeError } from '../errors.js';

/**
 * Avro object container files (the format of manifests and manifest lists). avsc decodes the
 * records; this module handles the container framing and codecs, and maps Avro `long` to
 * bigint, because snapshot ids and sequence numbers exceed 2^53.
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

export type AvroSchemaNode = string | AvroSchemaNode[] | { [k: string]: unknown };

function decompressBlock(codec: string, data: Buffer, where: string): Buffer {
  switch (codec) {
    case 'null':
      return data;
    case 'deflate':
      // Output buffers sized to the block: tiny blocks (PyIceberg writes one entry per block)
      // otherwise pay for a 16 KiB buffer each.
      return zlib.inflateRawSync(data, { chunkSize: Math.min(65536, Math.max(1024, data.length * 4)) });
    case 'snappy': {
      // Avro's snappy framing: the compressed block is followed by a 4-byte CRC32 of the output.
      const out = Buffer.from(snappy.uncompress(data.subarray(0, data.length - 4)));
      const crc = data.readUInt32BE(data.length - 4);
      if ((zlib.crc32(out) >>> 0) !== crc) throw new IpsError('CORRUPT_FILE', `${where}: snappy block checksum mismatch`);
      return out;
    }
    case 'zstandard':
      return Buffer.from(zstdDecompress(data));
    default:
      throw new IpsError('UNSUPPORTED_CODEC', `${where}: Avro codec "${codec}" is not supported (null, deflate, snappy and zstandard are)`);
  }
}

/**
 * Decodes every record. With `mapper`, each record is converted as soon as it is decoded, so the
 * decoder's intermediate objects die young instead of living until the whole file is read.
 */
export function readAvroFile<T = unknown>(buf: Buffer, where: string, mapper?: RecordMapper<T>): AvroFile<T> {
  try {
    if (buf.length < 4 || !buf.subarray(0, 4).equals(AVRO_MAGIC)) {
      throw new IpsError('CORRUPT_FILE', `${where} is not an Avro container file (bad magic bytes)`);
    }
    const { value: header, offset } = HEADER_TYPE.decode(buf, 0) as { value: { meta: Record<string, Buffer>; sync: Buffer }; offset: number };
    if (offset < 0) throw new IpsError('CORRUPT_FILE', `${where}: truncated Avro header`);
    const meta = new Map<string, string>();
    for (const [k, v] of Object.entries(header.meta)) meta.set(k, v.toString('utf8'));
    const schemaText = meta.get('avro.schema');
    if (!schemaText) throw new IpsError('CORRUPT_FILE', `${where}: Avro header has no avro.schema`);
    const codec = meta.get('avro.codec') ?? 'null';
    const type = avroType(schemaText);
    const schema = parsedSchema(schemaText);
    const map = mapper ? mapper(schema, meta) : null;
    const records: T[] = [];
    let pos = offset;
    while (pos < buf.length) {
      const count = PLAIN_LONG.decode(buf, pos);
      const size = PLAIN_LONG.decode(buf, count.offset);
      if (count.offset < 0 || size.offset < 0) throw new IpsError('CORRUPT_FILE', `${where}: truncated Avro block header`);
      const start = size.offset;
      const end = start + (size.value as number);
      if (end + 16 > buf.length) throw new IpsError('CORRUPT_FILE', `${where}: truncated Avro block`);
      if (!buf.subarray(end, end + 16).equals(header.sync)) throw new IpsError('CORRUPT_FILE', `${where}: Avro sync marker mismatch`);
      const block = decompressBlock(codec, buf.subarray(start, end), where);
      let p = 0;
      for (let i = 0; i < (count.value as number); i++) {
        const r = type.decode(block, p);
        if (r.offset < 0) throw new IpsError('CORRUPT_FILE', `${where}: truncated Avro record`);
        records.push(map ? map(r.value, records.length) : (r.value as T));
        p = r.offset;
      }
      pos = end + 16;
    }
    return { meta, schema, records };
  } catch (e) {
    if (e instanceof IpsError) throw e;
    throw new IpsError('CORRUPT_FILE', `${where}: cannot decode Avro file: ${describeError(e)}`, { cause: e });
  }
}

export { varintToBigInt, bigIntToVarint };
