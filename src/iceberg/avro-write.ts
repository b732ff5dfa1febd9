import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { AVRO_MAGIC, HEADER_TYPE, PLAIN_LONG as LONG, avroType } from './avro.js';

/**
 * Writes an Avro object container file (deflate codec, as Iceberg Java does) with the given
 * writer schema and header metadata. Records are encoded by avsc; longs may be bigint.
 */
const BLOCK_RECORDS = 1000;

export function writeAvroFile(schema: object, meta: Record<string, string>, records: readonly unknown[]): Buffer {
  const type = avroType(schema);
  const sync = crypto.randomBytes(16);
  const header: Record<string, Buffer> = {
    'avro.schema': Buffer.from(JSON.stringify(schema), 'utf8'),
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
