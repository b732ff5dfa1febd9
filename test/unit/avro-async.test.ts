// decompressAvroFile (what the service's manifest reader uses): the same records as the
// synchronous decoder on the PyIceberg-written manifests, the same refusals of bombs and bad
// framing, and deflate blocks past the WebAssembly inflater's 8 MB inflate off the event loop, so
// a server keeps answering while it refuses a bomb (ordering asserted, not timed).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decompressAvroFile, readAvroFile } from '../../src/iceberg/avro.js';
import { block, header, readParts } from '../setup/avro-rewrite.js';
import { REPO_ROOT } from '../setup/env.js';
import { rejection } from '../setup/errors.js';

const META = path.join(REPO_ROOT, 'fixtures/tables/playback/metadata');
const avroFiles = fs.readdirSync(META).filter((f) => f.endsWith('.avro')).map((f) => path.join(META, f));

const plain = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));

describe('decompressAvroFile', () => {
  it('decodes to the same records as the synchronous decoder, for every fixture file', async () => {
    for (const f of avroFiles) {
      const buf = fs.readFileSync(f);
      const direct = readAvroFile(buf, f);
      const viaAsync = readAvroFile(await decompressAvroFile(buf, f), f);
      expect(plain(viaAsync.records), f).toBe(plain(direct.records));
      expect(viaAsync.meta.get('avro.schema')).toBe(direct.meta.get('avro.schema'));
      expect(direct.meta.get('avro.codec')).toBe('deflate');
    }
  });

  it('refuses a deflate bomb off the event loop: other callbacks run before it is refused', async () => {
    const parts = readParts(fs.readFileSync(avroFiles[0]!));
    const bomb = Buffer.concat([header(parts, 'deflate'), block(parts, 1, zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024)))]);
    const order: string[] = [];
    const p = decompressAvroFile(bomb, 'bomb.avro', { maxDecompressedBytes: 16 * 1024 * 1024 }).catch((e: unknown) => {
      order.push('refused');
      throw e;
    });
    setImmediate(() => order.push('other work'));
    const e = await rejection(p);
    expect(e.code).toBe('FILE_TOO_LARGE');
    expect(order).toEqual(['other work', 'refused']);
  });

  it('refuses a bomb under a budget below 8 MB as well (inflated inline by the WebAssembly engine)', async () => {
    const parts = readParts(fs.readFileSync(avroFiles[0]!));
    const bomb = Buffer.concat([header(parts, 'deflate'), block(parts, 1, zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024)))]);
    expect((await rejection(decompressAvroFile(bomb, 'bomb.avro', { maxDecompressedBytes: 1024 * 1024 }))).code).toBe('FILE_TOO_LARGE');
    // A large block under the budget comes back whole, byte for byte.
    const data = Buffer.alloc(3 * 1024 * 1024, 'entry ');
    const big = Buffer.concat([header(parts, 'deflate'), block(parts, 1, zlib.deflateRawSync(data))]);
    const out = await decompressAvroFile(big, 'big.avro', { maxDecompressedBytes: 4 * 1024 * 1024 });
    expect(out.includes(data)).toBe(true);
  });

  it('checks the framing before it decompresses anything', async () => {
    const parts = readParts(fs.readFileSync(avroFiles[0]!));
    const negative = Buffer.concat([header(parts, 'deflate'), block(parts, 1, zlib.deflateRawSync(Buffer.alloc(100)), -50)]);
    expect((await rejection(decompressAvroFile(negative, 'neg.avro'))).code).toBe('CORRUPT_FILE');
    expect((await rejection(decompressAvroFile(Buffer.from('nope'), 'x.avro'))).code).toBe('CORRUPT_FILE');
  });
});
