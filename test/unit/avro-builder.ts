// Hand-rolled Avro encoding for unit tests (Avro 1.11 spec: "Binary Encoding" and "Object
// Container Files"), independent of avsc and of src/iceberg/avro.ts.
import zlib from 'node:zlib';

/** long / int: zigzag, then little-endian base-128 groups. */
export function zz(v: bigint | number): Buffer {
  const x = BigInt(v);
  let u = x >= 0n ? x * 2n : -x * 2n - 1n;
  const out: number[] = [];
  do {
    const low = Number(u % 128n);
    u /= 128n;
    out.push(u > 0n ? low + 128 : low);
  } while (u > 0n);
  return Buffer.from(out);
}

/** string / bytes: length, then the bytes. */
export function avroString(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  return Buffer.concat([zz(b.length), b]);
}

/** A `["null", T]` union value: branch 0 for null, branch 1 followed by the encoded value. */
export function opt(encoded: Buffer | null): Buffer {
  return encoded === null ? Buffer.from([0]) : Buffer.concat([Buffer.from([2]), encoded]);
}

/** An Avro array in one block: count, items, terminating 0. */
export function array(items: Buffer[]): Buffer {
  return items.length === 0 ? Buffer.from([0]) : Buffer.concat([zz(items.length), ...items, Buffer.from([0])]);
}

/** An object container file holding the records in one block. */
export function container(schema: object, records: Buffer[], codec: 'null' | 'deflate', extraMeta: Record<string, string> = {}): Buffer {
  const meta: [string, string][] = [['avro.schema', JSON.stringify(schema)], ['avro.codec', codec], ...Object.entries(extraMeta)];
  const sync = Buffer.from('0123456789abcdef', 'latin1');
  const header = Buffer.concat([
    Buffer.from('Obj\x01', 'latin1'),
    zz(meta.length),
    ...meta.flatMap(([k, v]) => [avroString(k), avroString(v)]),
    Buffer.from([0]),
    sync,
  ]);
  const raw = Buffer.concat(records);
  const data = codec === 'deflate' ? zlib.deflateRawSync(raw) : raw;
  return Buffer.concat([header, zz(records.length), zz(data.length), data, sync]);
}
