// Avro container files as an attacker writes them: negative or oversized block counts and
// sizes, bytes left over in a block, and decompression bombs for every codec (deflate, snappy,
// zstd). Each must end in a typed error, quickly and within a small heap; each case runs in a
// worker with a deadline and a heap limit, so a decoder that loops or balloons fails the test.
import { describe, expect, it } from 'vitest';
import { runBounded } from '../setup/bounded.js';

const CASES = 'test/unit/avro-hostile-cases.ts';

describe('readAvroFile on hostile blocks', () => {
  it.each([
    ['negative block size', 'CORRUPT_FILE', /invalid size/],
    ['negative block size, large', 'CORRUPT_FILE', /invalid size/],
    ['negative record count', 'CORRUPT_FILE', /invalid record count/],
    ['record count beyond 2^53', 'CORRUPT_FILE', /record count|cannot decode/],
    ['more records than bytes', 'CORRUPT_FILE', /claims 1000 records/],
    ['left-over bytes in a block', 'CORRUPT_FILE', /3 byte\(s\) left over/],
    ['deflate bomb', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['deflate bomb against the default limit', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['deflate blocks that add up past the limit', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['snappy bomb', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['zstd bomb (RLE blocks)', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['zstd frame declaring a huge content size', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['zstd frame with a 2 GiB window', 'FILE_TOO_LARGE', /decompresses to more than/],
    ['map block count beyond the bytes left', 'CORRUPT_FILE', /truncated Avro header/],
    ['array block count beyond the bytes left', 'CORRUPT_FILE', /truncated Avro record/],
  ])('%s: %s', async (name, code, message) => {
    const out = await runBounded(CASES, 'decodeCase', [name], { timeoutMs: 20_000, heapMb: 192 });
    expect(out).toMatchObject({ kind: 'error', name: 'IpsError', code });
    if (out.kind === 'error') expect(out.message).toMatch(message);
  });

  it('still decodes well-formed deflate and zstd blocks', async () => {
    expect(await runBounded(CASES, 'decodeCase', ['deflate good'])).toEqual({ kind: 'value', value: ['s3://b/f1.parquet'] });
    expect(await runBounded(CASES, 'decodeCase', ['zstd good'])).toEqual({ kind: 'value', value: ['s3://b/f1.parquet', 's3://b/f2.parquet'] });
  });
});
