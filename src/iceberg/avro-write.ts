import zlib from 'node:zlib';
import type avro from 'avsc';
import { AVRO_MAGIC, HEADER_TYPE, PLAIN_LONG as LONG, avroType } from './avro.js';
import { randomBytes } from '../random.js';
import { AvroEncoder } from './avro-encoder.js';

/**
 * Writes an Avro object container file (deflate codec, as Iceberg Java does; small blocks stored) with the given
 * writer schema and header metadata. Records are encoded by avsc; longs may be bigint.
 */
const BLOCK_RECORDS = 1000;

/**
 * Blocks smaller than this are written as one stored deflate block (deflate's uncompressed block
 * type, RFC 1951 §3.2.4) rather than compressed: an ICDC batch's manifests are often a few hundred
 * bytes, where compression saves a few hundred bytes beside a header of several KB and a zlib
 * stream per block cost more than encoding the entries. The codec stays `deflate`, as Iceberg
 * Java writes it, and any inflater reads a stored block.
 */
const STORE_BELOW_BYTES = 4096;

/**
 * zlib's fastest level: the manifests ips writes (ICDC tables, the table writer's) are read a few
 * times and then expire. On a 100,000-entry ICDC manifest it wrote 4 % more bytes than the default
 * level 6 (20.5 against 19.7 MB) for about a third of the compression CPU, which had been 14 % of
 * that batch's prepare.
 */
const DEFLATE_LEVEL = zlib.constants.Z_BEST_SPEED;

/** `raw` (< 65,536 bytes) as a final stored deflate block: header byte, LEN, NLEN (little-endian), the bytes. */
function storedDeflateBlock(raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(raw.length + 5);
  out[0] = 0x01; // BFINAL = 1, BTYPE = 00 (no compression)
  out.writeUInt16LE(raw.length, 1);
  out.writeUInt16LE(~raw.length & 0xffff, 3);
  raw.copy(out, 5);
  return out;
}

/** A writer schema as its JSON text and its avsc type, built once per schema (see writerSchema). */
export interface WriterSchema {
  text: string;
  type: avro.Type;
}

/**
 * Schema objects the writers build (a manifest list's per format version, a manifest's per
 * partition type) → their text and type: an ICDC table writes four Avro files per batch, and
 * printing a manifest schema (a few KB) and looking its type up by that text cost more than
 * encoding the entries. Bounded: few schemas are ever live.
 */
const schemas = new Map<string, WriterSchema>();
const MAX_SCHEMAS = 256;

/** The writer schema under `key` (what determines it), built by `build` the first time. */
export function writerSchema(key: string, build: () => object): WriterSchema {
  let s = schemas.get(key);
  if (!s) {
    const text = JSON.stringify(build());
    s = { text, type: avroType(text) };
    if (schemas.size >= MAX_SCHEMAS) schemas.clear();
    schemas.set(key, s);
  }
  return s;
}

/**
 * `records` is iterated once, a block at a time: a caller that makes each record as it is asked
 * for (a generator) keeps one block's records alive, not the file's. `encode` writes a record
 * itself (the hot writers, manifest entries); otherwise avsc encodes it with the schema's type.
 */
export function writeAvroFile<T>(schema: object | WriterSchema, meta: Record<string, string>, records: Iterable<T>, encode?: (record: T, w: AvroEncoder) => void): Buffer {
  const ws: WriterSchema = 'text' in schema && 'type' in schema ? schema as WriterSchema : { text: JSON.stringify(schema), type: avroType(schema) };
  const type = ws.type;
  const sync = randomBytes(16);
  const header: Record<string, Buffer> = {
    'avro.schema': Buffer.from(ws.text, 'utf8'),
    'avro.codec': Buffer.from('deflate', 'utf8'),
  };
  for (const [k, v] of Object.entries(meta)) header[k] = Buffer.from(v, 'utf8');
  const parts: Buffer[] = [HEADER_TYPE.toBuffer({ magic: AVRO_MAGIC, meta: header, sync })];
  const w = new AvroEncoder();
  let count = 0;
  const flush = (): void => {
    const raw = w.take();
    // Both copy the block out of the encoder's buffer, which the next block reuses.
    const data = raw.length < STORE_BELOW_BYTES ? storedDeflateBlock(raw) : zlib.deflateRawSync(raw, { level: DEFLATE_LEVEL });
    parts.push(LONG.toBuffer(count), LONG.toBuffer(data.length), data, sync);
    count = 0;
  };
  for (const r of records) {
    if (encode) encode(r, w);
    else w.raw(type.toBuffer(r));
    if (++count === BLOCK_RECORDS) flush();
  }
  if (count > 0) flush();
  return Buffer.concat(parts);
}
