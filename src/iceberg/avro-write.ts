import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type avro from 'avsc';
import { AVRO_MAGIC, HEADER_TYPE, PLAIN_LONG as LONG, avroType } from './avro.js';

/**
 * Writes an Avro object container file (deflate codec, as Iceberg Java does) with the given
 * writer schema and header metadata. Records are encoded by avsc; longs may be bigint.
 */
const BLOCK_RECORDS = 1000;

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

export function writeAvroFile(schema: object | WriterSchema, meta: Record<string, string>, records: readonly unknown[]): Buffer {
  const ws: WriterSchema = 'text' in schema && 'type' in schema ? schema as WriterSchema : { text: JSON.stringify(schema), type: avroType(schema) };
  const type = ws.type;
  const sync = crypto.randomBytes(16);
  const header: Record<string, Buffer> = {
    'avro.schema': Buffer.from(ws.text, 'utf8'),
    'avro.codec': Buffer.from('deflate', 'utf8'),
  };
  for (const [k, v] of Object.entries(meta)) header[k] = Buffer.from(v, 'utf8');
  const parts: Buffer[] = [HEADER_TYPE.toBuffer({ magic: AVRO_MAGIC, meta: header, sync })];
  for (let i = 0; i < records.length; i += BLOCK_RECORDS) {
    const chunk = records.slice(i, i + BLOCK_RECORDS);
    const data = zlib.deflateRawSync(Buffer.concat(chunk.map((r) => type.toBuffer(r))));
    parts.push(LONG.toBuffer(chunk.length), LONG.toBuffer(data.length), data, sync);
  }
  return Buffer.concat(parts);
}
