// The bounded reader of src/io: only regular files are read (a FIFO, /dev/zero, a directory are
// refused by the open handle's own stat, before any byte is read), each kind of file has its
// size limit (a 1 GiB sparse metadata file fails without being read; a gzip metadata bomb and an
// S3 object whose ContentLength exceeds the limit too), malformed file:// URIs are typed errors,
// and ranged reads give exactly the bytes asked for under the same rules.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMetadataFile } from '../../src/catalog/table.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from '../../src/io/limits.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { S3FileIO } from '../../src/io/s3-file-io.js';
import { testEnv } from '../setup/env.js';
import { rejection } from '../setup/errors.js';

const limits = (over: Partial<ReadLimits>): ReadLimits => ({ ...DEFAULT_READ_LIMITS, ...over });

/** The harness's MinIO as S3FileIO settings. */
function s3Settings(): { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string } {
  const env = testEnv();
  return { endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey };
}

/** Puts `body` at a fresh key under `prefix` in the test bucket (with the SDK, not the code under test); returns its s3:// location. */
async function putObject(prefix: string, name: string, body: Buffer): Promise<string> {
  const env = testEnv();
  const s3 = new S3Client({ endpoint: env.s3Endpoint, region: env.s3Region, forcePathStyle: true, credentials: { accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey } });
  const key = `${prefix}-${process.pid}-${Date.now()}/${name}`;
  try {
    await s3.send(new PutObjectCommand({ Bucket: env.s3Bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
  return `s3://${env.s3Bucket}/${key}`;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-bounds-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('local reads: regular files only', () => {
  const io = new RoutingFileIO();

  it('refuses a FIFO without waiting for a writer', async () => {
    const fifo = path.join(tmp, 'v1.metadata.json');
    execFileSync('mkfifo', [fifo]);
    try {
      const e = await rejection(io.read(fifo, 'metadata'));
      expect(e.code).toBe('NOT_A_FILE');
      expect(e.message).toContain('a FIFO');
    } finally {
      // Had the read blocked on open, a writer would release it (a non-blocking open for writing fails without a reader).
      try {
        fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch { /* no reader waiting: the expected case */ }
    }
  });

  it('refuses a device (/dev/zero) and a directory', async () => {
    const dev = await rejection(io.read('file:///dev/zero', 'manifest'));
    expect(dev.code).toBe('NOT_A_FILE');
    expect(dev.message).toContain('a device');
    const dir = await rejection(io.read(tmp, 'metadata'));
    expect(dir.code).toBe('NOT_A_FILE');
    expect(dir.message).toContain('a directory');
  });

  it('a missing file is FILE_NOT_FOUND, a file://host URI INVALID_LOCATION', async () => {
    expect((await rejection(io.read(path.join(tmp, 'nope.avro'), 'manifest'))).code).toBe('FILE_NOT_FOUND');
    expect((await rejection(io.read('file://otherhost/t/metadata/v1.metadata.json', 'metadata'))).code).toBe('INVALID_LOCATION');
  });
});

describe('size limits per kind of file', () => {
  it('a 1 GiB sparse metadata file fails on its size, without being read', async () => {
    const f = path.join(tmp, 'sparse.metadata.json');
    fs.writeFileSync(f, '');
    fs.truncateSync(f, 1024 ** 3);
    const before = process.memoryUsage().rss;
    const e = await rejection(new RoutingFileIO().read(f, 'metadata'));
    expect(e.code).toBe('FILE_TOO_LARGE');
    expect(e.message).toContain('max_metadata_bytes');
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('each kind has its own limit, and a file at the limit is read whole', async () => {
    const f = path.join(tmp, 'm.avro');
    fs.writeFileSync(f, Buffer.alloc(1000, 7));
    const io = new RoutingFileIO({ limits: limits({ manifestBytes: 1000, manifestListBytes: 999, versionHintBytes: 10 }) });
    expect((await io.read(f, 'manifest')).length).toBe(1000);
    const list = await rejection(io.read(f, 'manifest-list'));
    expect(list.code).toBe('FILE_TOO_LARGE');
    expect(list.message).toContain('max_manifest_list_bytes');
    expect((await rejection(io.read(f, 'version-hint'))).code).toBe('FILE_TOO_LARGE');
  });

  it('a gzip metadata file that unpacks past the metadata limit is FILE_TOO_LARGE', async () => {
    const f = path.join(tmp, 'v2.gz.metadata.json');
    fs.writeFileSync(f, zlib.gzipSync(Buffer.alloc(32 * 1024 * 1024, 32)));
    const e = await rejection(readMetadataFile(new RoutingFileIO({ limits: limits({ metadataBytes: 1024 * 1024 }) }), f));
    expect(e.code).toBe('FILE_TOO_LARGE');
  });
});

describe('S3 errors are typed by whose fault they are', () => {
  it('credentials the store refuses are S3_CREDENTIALS (the table settings), not an internal error', async () => {
    const env = testEnv();
    const io = new S3FileIO({ endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: 'not-the-secret-key', maxAttempts: 1 });
    try {
      const e = await rejection(io.read(`s3://${env.s3Bucket}/any/m.avro`, 'manifest'));
      expect(e.code).toBe('S3_CREDENTIALS');
    } finally {
      io.destroy();
    }
  });
});

describe('S3 reads check ContentLength against the limit', () => {
  it('refuses an object larger than the kind allows, and reads one within it', async () => {
    const loc = await putObject('bounds', 'm.avro', Buffer.alloc(4096, 1));
    const io = new S3FileIO({ ...s3Settings(), limits: limits({ manifestBytes: 4095, manifestListBytes: 4096 }) });
    try {
      const e = await rejection(io.read(loc, 'manifest'));
      expect(e.code).toBe('FILE_TOO_LARGE');
      expect(e.details).toMatchObject({ sizeBytes: '4096', limitBytes: 4095 });
      expect((await io.read(loc, 'manifest-list')).length).toBe(4096);
    } finally {
      io.destroy();
    }
  });
});

// Ranged reads (one deletion vector of a Puffin file): the bytes asked for, fewer where the file
// ends, the same rules on what is a file, and the kind's limit on the length. Expected bytes are
// slices of what the test wrote.
describe('ranged reads, local and S3', () => {
  const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) & 0xff));

  it('local: the range, a short read at the end, an empty one past it; FIFOs and devices refused; the limit held', async () => {
    const io = new RoutingFileIO({ limits: limits({ dataBytes: 4096 }) });
    const f = path.join(tmp, 'blobs.puffin');
    fs.writeFileSync(f, bytes);
    expect(await io.readRange(f, 1234, 100)).toEqual(bytes.subarray(1234, 1334));
    expect(await io.readRange(`file://${f}`, 0, 4096)).toEqual(bytes.subarray(0, 4096));
    expect(await io.readRange(f, 9_990, 100)).toEqual(bytes.subarray(9_990));
    expect((await io.readRange(f, 20_000, 100)).length).toBe(0);
    const big = await rejection(io.readRange(f, 0, 4097));
    expect(big.code).toBe('FILE_TOO_LARGE');
    const fifo = path.join(tmp, 'blobs.fifo');
    execFileSync('mkfifo', [fifo]);
    expect((await rejection(io.readRange(fifo, 0, 10))).code).toBe('NOT_A_FILE');
    expect((await rejection(io.readRange('file:///dev/zero', 0, 10))).code).toBe('NOT_A_FILE');
    expect((await rejection(io.readRange(path.join(tmp, 'gone.puffin'), 0, 10))).code).toBe('FILE_NOT_FOUND');
  });

  it('S3 (MinIO): the range, a short read at the end, an empty one past it; a missing object FILE_NOT_FOUND', async () => {
    const loc = await putObject('ranges', 'blobs.puffin', bytes);
    const io = new S3FileIO({ ...s3Settings(), limits: limits({ dataBytes: 4096 }) });
    try {
      expect(await io.readRange(loc, 1234, 100)).toEqual(bytes.subarray(1234, 1334));
      expect(await io.readRange(loc, 0, 10)).toEqual(bytes.subarray(0, 10));
      expect(await io.readRange(loc, 9_990, 100)).toEqual(bytes.subarray(9_990));
      expect((await io.readRange(loc, 20_000, 100)).length).toBe(0);
      expect((await rejection(io.readRange(loc, 0, 4097))).code).toBe('FILE_TOO_LARGE');
      expect((await rejection(io.readRange(`${loc}.gone`, 0, 10))).code).toBe('FILE_NOT_FOUND');
    } finally {
      io.destroy();
    }
  });
});

// Staging an S3 data file for the SQL engine: streamed to a new local file under the data limit;
// a refused object leaves no partial file.
describe('S3 (MinIO) copies to a local file', () => {
  it('copies the bytes, refuses an object past the limit without leaving a file, and never overwrites', async () => {
    const bytes = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 13) & 0xff));
    const loc = await putObject('copies', 'data.parquet', bytes);
    const settings = s3Settings();
    const io = new RoutingFileIO({ s3: settings });
    const small = new S3FileIO({ ...settings, limits: limits({ dataBytes: 1024 * 1024 }) });
    try {
      const out = path.join(tmp, 'staged.parquet');
      expect(await io.copyToFile(loc, out)).toBe(bytes.length);
      expect(fs.readFileSync(out).equals(bytes)).toBe(true);
      const again = await rejection(io.copyToFile(loc, out));
      expect([again.code, again.message]).toEqual(['IO_ERROR', expect.stringMatching(/EEXIST/)]);
      expect(fs.readFileSync(out).equals(bytes)).toBe(true);
      const refused = path.join(tmp, 'refused.parquet');
      expect((await rejection(small.copyToFile(loc, refused))).code).toBe('FILE_TOO_LARGE');
      expect(fs.existsSync(refused)).toBe(false);
    } finally {
      io.close();
      small.destroy();
    }
  });
});
