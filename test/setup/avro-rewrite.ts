// Rewrites a real Avro container file (a manifest or manifest list an engine wrote) with its own
// schema and header, records changed by the caller: the way to build corrupt or hostile
// variants of fixture tables at test time.
import zlib from 'node:zlib';
import { avroType, readAvroFile } from '../../src/iceberg/avro.js';

function zz(v: number): Buffer {
  let u = v >= 0 ? v * 2 : -v * 2 - 1;
  const out: number[] = [];
  do {
    const low = u % 128;
    u = Math.floor(u / 128);
    out.push(u > 0 ? low + 128 : low);
  } while (u > 0);
  return Buffer.from(out);
}

const str = (s: string): Buffer => Buffer.concat([zz(Buffer.byteLength(s)), Buffer.from(s, 'utf8')]);

export interface AvroParts {
  meta: Map<string, string>;
  records: Record<string, unknown>[];
  sync: Buffer;
}

export function readParts(buf: Buffer): AvroParts {
  const f = readAvroFile<Record<string, unknown>>(buf, 'fixture.avro');
  return { meta: f.meta, records: f.records, sync: buf.subarray(buf.length - 16) };
}

/** Encoded records of a file's schema. */
export function encodeRecords(parts: AvroParts): Buffer[] {
  const type = avroType(parts.meta.get('avro.schema')!);
  return parts.records.map((r) => type.toBuffer(r));
}

/** The container header with `codec`. */
export function header(parts: AvroParts, codec: string): Buffer {
  const meta = [...parts.meta].map(([k, v]) => [k, k === 'avro.codec' ? codec : v] as const);
  if (!parts.meta.has('avro.codec')) meta.push(['avro.codec', codec]);
  return Buffer.concat([Buffer.from('Obj\x01', 'latin1'), zz(meta.length), ...meta.flatMap(([k, v]) => [str(k), str(v)]), Buffer.from([0]), parts.sync]);
}

/** One block: count, size, data, sync (count and size may be any value, for hostile blocks). */
export function block(parts: AvroParts, count: number, data: Buffer, size = data.length): Buffer {
  return Buffer.concat([zz(count), zz(size), data, parts.sync]);
}

/** The whole file again, records in one block, `codec` null or deflate. */
export function writeContainer(parts: AvroParts, codec: 'null' | 'deflate' = 'null'): Buffer {
  const raw = Buffer.concat(encodeRecords(parts));
  return Buffer.concat([header(parts, codec), block(parts, parts.records.length, codec === 'deflate' ? zlib.deflateRawSync(raw) : raw)]);
}
