// Avro deflate blocks are inflated by libdeflate in WebAssembly (src/iceberg/inflate-wasm.ts),
// with Node's zlib for what it does not take. Both engines are checked against the data that was
// compressed (zlib's deflate at every level and strategy: stored, fixed and dynamic Huffman
// blocks, several blocks per stream, flush points), against zlib's own inflate on corrupted
// streams (the same verdict, the same bytes), and on the limit (exactly the limit passes, one byte
// less is refused). The WebAssembly module must be what its vendored sources build to.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { testEnv } from '../setup/env.js';
import { mulberry32 } from '../setup/random.js';

type InflateModule = typeof import('../../src/iceberg/inflate.js');

const REPO = path.resolve(__dirname, '../..');

/** Data of several kinds: incompressible, text-like, runs, mixed. */
function corpus(): { name: string; data: Buffer }[] {
  const rnd = mulberry32(42);
  const random = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const text = (n: number) => {
    const words = ['iceberg', 'manifest', 'snapshot', 'partition', 'file_path', 's3://warehouse/db/t/data/', '00042', 'parquet', '\u00e9t\u00e9'];
    const parts: string[] = [];
    let len = 0;
    while (len < n) {
      const w = words[Math.floor(rnd() * words.length)]!;
      parts.push(w);
      len += w.length + 1;
    }
    return Buffer.from(parts.join(' ')).subarray(0, n);
  };
  const runs = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n;) {
      const len = 1 + Math.floor(rnd() * 300);
      b.fill(Math.floor(rnd() * 4), i, Math.min(n, i + len));
      i += len;
    }
    return b;
  };
  return [
    { name: 'empty', data: Buffer.alloc(0) },
    { name: 'one byte', data: Buffer.from([7]) },
    { name: 'random 500 B', data: random(500) },
    { name: 'text 600 B (a one-entry manifest block)', data: text(600) },
    { name: 'text 64 KB exactly', data: text(65536) },
    { name: 'text 64 KB + 1', data: text(65537) },
    { name: 'mixed 300 KB', data: Buffer.concat([text(100_000), random(100_000), runs(100_000)]) },
    { name: 'runs 3 MB', data: runs(3 * 1024 * 1024) },
  ];
}

const STRATEGIES: [string, zlib.ZlibOptions][] = [
  ['level 0 (stored blocks)', { level: 0 }],
  ['level 1', { level: 1 }],
  ['level 6', { level: 6 }],
  ['level 9', { level: 9, memLevel: 9 }],
  ['fixed Huffman', { strategy: zlib.constants.Z_FIXED }],
  ['Huffman only', { strategy: zlib.constants.Z_HUFFMAN_ONLY }],
  ['RLE', { strategy: zlib.constants.Z_RLE }],
  ['small window', { windowBits: 9, level: 9 }],
];

/**
 * One stream from three independent compressors: the first two end with a sync flush (an empty
 * stored block, no final bit), the last with the final block, as a streaming writer's output looks.
 */
function flushed(data: Buffer): Buffer {
  const third = Math.floor(data.length / 3);
  return Buffer.concat([
    zlib.deflateRawSync(data.subarray(0, third), { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
    zlib.deflateRawSync(data.subarray(third, 2 * third), { finishFlush: zlib.constants.Z_FULL_FLUSH, level: 1 }),
    zlib.deflateRawSync(data.subarray(2 * third)),
  ]);
}

function inflateCopy(m: InflateModule, data: Buffer, max: number): Buffer {
  return Buffer.from(m.inflateRawBlock(data, max));
}

function outcome(f: () => Buffer): Buffer | string {
  try {
    return f();
  } catch (e) {
    return `error ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

function checkEngine(load: () => Promise<InflateModule>, engine: string): void {
  let m: InflateModule;
  beforeAll(async () => {
    m = await load();
  });

  it(`is the engine in use (${engine})`, () => {
    expect(m.inflateEngine()).toBe(engine);
  });

  for (const { name, data } of corpus()) {
    it(`inflates ${name} as zlib deflated it, at every level and strategy`, () => {
      for (const [how, options] of STRATEGIES) {
        const packed = zlib.deflateRawSync(data, options);
        expect(inflateCopy(m, packed, Math.max(1, data.length)).equals(data), `${name}, ${how}`).toBe(true);
      }
      expect(inflateCopy(m, flushed(data), Math.max(1, data.length)).equals(data), `${name}, flush points`).toBe(true);
    });
  }

  it('inflates a block inside a larger buffer (an Avro file) by offsets, and ignores bytes after the final block', () => {
    const data = corpus()[3]!.data;
    const packed = zlib.deflateRawSync(data);
    const file = Buffer.concat([Buffer.from('header'), packed, Buffer.from('sync-marker-0123')]);
    const c = { buf: Buffer.alloc(0), pos: 0, end: 0 };
    m.inflateRawInto(file, 6, 6 + packed.length, 1 << 20, c);
    expect(c.buf.subarray(c.pos, c.end).equals(data)).toBe(true);
    expect(inflateCopy(m, Buffer.concat([packed, Buffer.from('trailing')]), 1 << 20).equals(data)).toBe(true);
  });

  it('refuses output past the limit, with the code zlib.inflateRawSync uses, and takes exactly the limit', () => {
    for (const { data } of corpus().filter((x) => x.data.length > 1)) {
      const packed = zlib.deflateRawSync(data);
      expect(outcome(() => inflateCopy(m, packed, data.length - 1))).toBe('error ERR_BUFFER_TOO_LARGE');
      expect(inflateCopy(m, packed, data.length).equals(data)).toBe(true);
    }
    // A bomb: 20 MB of zeros in ~20 KB, under a 1 MB limit, and whole under its own size.
    const bomb = zlib.deflateRawSync(Buffer.alloc(20 * 1024 * 1024));
    expect(outcome(() => inflateCopy(m, bomb, 1024 * 1024))).toBe('error ERR_BUFFER_TOO_LARGE');
    expect(inflateCopy(m, bomb, 20 * 1024 * 1024).length).toBe(20 * 1024 * 1024);
  });

  it('gives zlib\'s verdict on corrupted and truncated streams: the same bytes, or an error', () => {
    const rnd = mulberry32(7);
    const data = corpus()[6]!.data.subarray(0, 20_000);
    const packed = zlib.deflateRawSync(data);
    let failed = 0;
    for (let t = 0; t < 3000; t++) {
      const b = Buffer.from(packed);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let j = 0; j < flips; j++) b[Math.floor(rnd() * b.length)]! ^= 1 << Math.floor(rnd() * 8);
      const expected = outcome(() => zlib.inflateRawSync(b, { maxOutputLength: 1 << 20 }));
      const got = outcome(() => inflateCopy(m, b, 1 << 20));
      if (typeof expected === 'string') {
        failed++;
        expect(typeof got, `mutation ${t}`).toBe('string');
      } else {
        expect(Buffer.isBuffer(got) && got.equals(expected), `mutation ${t}`).toBe(true);
      }
    }
    // Not vacuous: mutations both break streams and leave some readable.
    expect(failed).toBeGreaterThan(300);
    expect(failed).toBeLessThan(2900);
    for (let cut = 0; cut < packed.length; cut += 97) {
      expect(typeof outcome(() => inflateCopy(m, packed.subarray(0, cut), 1 << 20)), `cut at ${cut}`).toBe('string');
    }
    expect(typeof outcome(() => inflateCopy(m, Buffer.from([0xff, 0xff, 0xff, 0xff]), 1 << 20))).toBe('string');
  });

  it('inflates a block over the WebAssembly engine\'s 8 MB of output through zlib, under the limit', () => {
    const data = Buffer.alloc(9 * 1024 * 1024, 'manifest ');
    const packed = zlib.deflateRawSync(data);
    expect(inflateCopy(m, packed, data.length).equals(data)).toBe(true);
    expect(outcome(() => inflateCopy(m, packed, data.length - 1))).toBe('error ERR_BUFFER_TOO_LARGE');
    // And small blocks after it still come back right.
    const small = corpus()[3]!.data;
    expect(inflateCopy(m, zlib.deflateRawSync(small), 1 << 20).equals(small)).toBe(true);
  });
}

describe('inflate: libdeflate in WebAssembly (the default)', () => {
  checkEngine(async () => {
    vi.resetModules();
    delete process.env.IPS_INFLATE;
    return import('../../src/iceberg/inflate.js');
  }, 'libdeflate-wasm');
});

describe('inflate: the reused zlib handle (IPS_INFLATE=zlib)', () => {
  checkEngine(async () => {
    vi.resetModules();
    process.env.IPS_INFLATE = 'zlib';
    try {
      return await import('../../src/iceberg/inflate.js');
    } finally {
      delete process.env.IPS_INFLATE;
    }
  }, 'zlib-handle');
});

describe('inflate: the WebAssembly module', () => {
  it('is what vendor/libdeflate and wasm/inflate.c build to (scripts/build-inflate-wasm.sh --check)', () => {
    // The clang the test setup provisioned (scripts/provision/clang-wasm.sh).
    const clangFile = path.join(testEnv().cacheDir, 'env', 'clang');
    if (!existsSync(clangFile)) throw new Error(`${clangFile} is missing: run scripts/provision/all.sh clang-wasm (the test setup does)`);
    const env = { ...process.env, IPS_CLANG: readFileSync(clangFile, 'utf8').trim() };
    const out = execFileSync('bash', [path.join(REPO, 'scripts', 'build-inflate-wasm.sh'), '--check'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(/matches its sources/);
  });
});
