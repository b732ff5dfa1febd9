// Hostile Avro container files for test/unit/avro-hostile.test.ts, built byte by byte; each case
// runs in a bounded worker, because the unguarded decoder loops for ever or exhausts memory on them.
import zlib from 'node:zlib';
import snappy from 'snappyjs';
import { readAvroFile } from '../../src/iceberg/avro.js';
import { avroString, zz } from './avro-builder.js';

const SCHEMA = { type: 'record', name: 'r', fields: [{ name: 'id', type: 'long' }, { name: 'path', type: 'string' }] };
const SYNC = Buffer.from('0123456789abcdef', 'latin1');

function header(codec: string): Buffer {
  const meta: [string, string][] = [['avro.schema', JSON.stringify(SCHEMA)], ['avro.codec', codec]];
  return Buffer.concat([Buffer.from('Obj\x01', 'latin1'), zz(meta.length), ...meta.flatMap(([k, v]) => [avroString(k), avroString(v)]), Buffer.from([0]), SYNC]);
}

const rec = (id: number, p: string): Buffer => Buffer.concat([zz(id), avroString(p)]);
const block = (count: number | bigint, data: Buffer, size: number | bigint = data.length): Buffer => Buffer.concat([zz(count), zz(size), data, SYNC]);

/** A zstd frame of RLE blocks (RFC 8878): `blocks` blocks of 128 KiB of `byte` each, no content size. */
function zstdRle(blocks: number, byte: number): Buffer {
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])]; // no FCS, not single segment, window 128 KiB
  for (let i = 0; i < blocks; i++) {
    const h = ((i === blocks - 1 ? 1 : 0) | (1 << 1) | ((128 * 1024) << 3)) >>> 0;
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, byte]));
  }
  return Buffer.concat(parts);
}

/** A zstd frame holding `data` as one raw block, with its content size declared. */
function zstdRaw(data: Buffer): Buffer {
  const h = (1 | (0 << 1) | (data.length << 3)) >>> 0;
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, data.length]), Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), data]);
}

function files(): Record<string, () => { buf: Buffer; limit?: number }> {
  const good = rec(1, 's3://b/f1.parquet');
  const h = header('null');
  // Size chosen so that the block "ends" on the header's sync marker: the next block starts where this one did.
  const back = -(zz(1).length + 1 + good.length) - 16;
  return {
    'negative block size': () => ({ buf: Buffer.concat([h, zz(1), zz(back), good, SYNC]) }),
    'negative block size, large': () => ({ buf: Buffer.concat([h, zz(1), zz(-(2n ** 40n)), good, SYNC]) }),
    'negative record count': () => ({ buf: Buffer.concat([h, block(-5, good)]) }),
    'record count beyond 2^53': () => ({ buf: Buffer.concat([h, block(2n ** 60n, good)]) }),
    'more records than bytes': () => ({ buf: Buffer.concat([h, block(1000, good)]) }),
    'left-over bytes in a block': () => ({ buf: Buffer.concat([h, block(1, Buffer.concat([good, Buffer.from([0, 0, 0])]))]) }),
    'deflate bomb': () => ({ buf: Buffer.concat([header('deflate'), block(1, zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024)))]), limit: 8 * 1024 * 1024 }),
    'deflate bomb against the default limit': () => ({ buf: Buffer.concat([header('deflate'), block(1, zlib.deflateRawSync(Buffer.alloc(160 * 1024 * 1024)))]) }),
    'deflate blocks that add up past the limit': () => ({
      buf: Buffer.concat([header('deflate'), ...Array.from({ length: 12 }, () => block(1, zlib.deflateRawSync(Buffer.concat([good, Buffer.alloc(0)]))))]),
      limit: 12 * good.length - 1,
    }),
    'snappy bomb': () => ({
      buf: (() => {
        const raw = Buffer.alloc(16 * 1024 * 1024);
        const c = Buffer.from(snappy.compress(raw));
        const crc = Buffer.alloc(4);
        crc.writeUInt32BE(zlib.crc32(raw) >>> 0);
        return Buffer.concat([header('snappy'), block(1, Buffer.concat([c, crc]))]);
      })(),
      limit: 1024 * 1024,
    }),
    'zstd bomb (RLE blocks)': () => ({ buf: Buffer.concat([header('zstandard'), block(1, zstdRle(2000, 0))]), limit: 16 * 1024 * 1024 }),
    'zstd frame declaring a huge content size': () => ({
      buf: Buffer.concat([header('zstandard'), block(1, Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0]), Buffer.from([0, 0, 0, 0x40]), Buffer.from([1, 0, 0])]))]),
    }),
    'zstd frame with a 2 GiB window': () => ({ buf: Buffer.concat([header('zstandard'), block(1, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 1, 0, 0]))]) }),
    'zstd good': () => ({ buf: Buffer.concat([header('zstandard'), block(2, zstdRaw(Buffer.concat([good, rec(2, 's3://b/f2.parquet')])))]) }),
    // Found by test/fuzz: a header map (and any array or map) whose item count exceeds the bytes left.
    'map block count beyond the bytes left': () => ({ buf: Buffer.concat([Buffer.from('Obj\x01', 'latin1'), zz(2 ** 31 - 1), avroString('avro.schema'), avroString(JSON.stringify(SCHEMA)), Buffer.from([0]), SYNC]) }),
    'array block count beyond the bytes left': () => {
      const schema = { type: 'record', name: 'r', fields: [{ name: 'xs', type: { type: 'array', items: 'long' } }] };
      const meta: [string, string][] = [['avro.schema', JSON.stringify(schema)], ['avro.codec', 'null']];
      const hdr = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), zz(meta.length), ...meta.flatMap(([k, v]) => [avroString(k), avroString(v)]), Buffer.from([0]), SYNC]);
      const recBytes = Buffer.concat([zz(2 ** 31 - 1), zz(5), zz(0)]);
      return { buf: Buffer.concat([hdr, block(1, recBytes)]) };
    },
    'deflate good': () => ({ buf: Buffer.concat([header('deflate'), block(1, zlib.deflateRawSync(good))]) }),
  };
}

export function decodeCase(name: string): unknown {
  const make = files()[name];
  if (!make) throw new Error(`no case ${name}`);
  const c = make();
  const f = readAvroFile(c.buf, `${name}.avro`, undefined, c.limit === undefined ? {} : { maxDecompressedBytes: c.limit });
  return (f.records as { path: string }[]).map((r) => r.path);
}
