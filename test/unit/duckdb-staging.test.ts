// The engine stages S3 data files to its scratch disk before DuckDB reads them. A view over many
// files stages a few at a time (STAGE_CONCURRENCY), and a file asked for twice at once (listed
// twice, or by two views) is downloaded once. The objects are real ones on the harness's MinIO,
// put there with the AWS SDK; the FileIO under the engine is the real S3FileIO, wrapped only to
// count the downloads in flight.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlEngine, STAGE_CONCURRENCY } from '../../src/engine/duckdb.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import type { FileIO } from '../../src/io/file-io.js';
import type { FileKind } from '../../src/io/limits.js';
import { S3FileIO } from '../../src/io/s3-file-io.js';
import { testEnv } from '../setup/env.js';

/** The real S3FileIO, counting downloads: how many at once at most, and per location. */
class CountingIO implements FileIO {
  inFlight = 0;
  maxInFlight = 0;
  readonly downloads = new Map<string, number>();
  constructor(private readonly inner: S3FileIO) {}
  read(location: string, kind?: FileKind): Promise<Buffer> { return this.inner.read(location, kind); }
  readRange(location: string, offset: number, length: number, kind?: FileKind): Promise<Buffer> { return this.inner.readRange(location, offset, length, kind); }
  exists(location: string): Promise<boolean> { return this.inner.exists(location); }
  list(dir: string): Promise<string[]> { return this.inner.list(dir); }
  write(location: string, data: Buffer, opts?: { ifAbsent?: boolean }): Promise<void> { return this.inner.write(location, data, opts); }
  async copyToFile(location: string, file: string, kind?: FileKind): Promise<number> {
    this.downloads.set(location, (this.downloads.get(location) ?? 0) + 1);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      return await this.inner.copyToFile(location, file, kind);
    } finally {
      this.inFlight--;
    }
  }
}

describe('staging S3 data files for the engine', () => {
  let dir: string;
  let s3io: S3FileIO;
  const locations: string[] = [];
  let size = 0;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-staging-'));
    const env = testEnv();
    const settings = { endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey };
    s3io = new S3FileIO(settings);
    // One small Parquet file (DuckDB writes it), put at 30 keys.
    const writer = await SqlEngine.open({ io: s3io, scratchDir: path.join(dir, 'writer'), threads: 1 });
    const [w] = await writer.writeParquet('SELECT i::BIGINT AS id FROM range(10) t(i)', { fieldIds: { id: 1 }, partitionBy: [] });
    writer.close();
    const body = fs.readFileSync(w!.localPath);
    size = body.length;
    const s3 = new S3Client({ endpoint: env.s3Endpoint, region: env.s3Region, forcePathStyle: true, credentials: { accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey } });
    const prefix = `staging-${process.pid}-${Date.now()}`;
    try {
      for (let i = 0; i < 30; i++) {
        const key = `${prefix}/f${i}.parquet`;
        await s3.send(new PutObjectCommand({ Bucket: env.s3Bucket, Key: key, Body: body }));
        locations.push(`s3://${env.s3Bucket}/${key}`);
      }
    } finally {
      s3.destroy();
    }
  }, 120_000);

  afterAll(() => {
    s3io?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const dataFile = (p: string): DataFile => ({
    content: 0, filePath: p, fileFormat: 'PARQUET', partition: new Map(), recordCount: 10n, fileSizeInBytes: BigInt(size),
    columnSizes: null, valueCounts: null, nullValueCounts: null, nanValueCounts: null, lowerBounds: null, upperBounds: null,
    keyMetadata: null, splitOffsets: null, equalityIds: null, sortOrderId: null, firstRowId: null, referencedDataFile: null,
    contentOffset: null, contentSizeInBytes: null,
  });

  it('a view over 30 objects downloads a few at a time, and a file listed twice once', async () => {
    const io = new CountingIO(s3io);
    const engine = await SqlEngine.open({ io, scratchDir: path.join(dir, 'reader'), threads: 1 });
    try {
      const files = [...locations, locations[0]!].map(dataFile);
      const stats = await engine.registerFiles('v', files, [{ id: 1, name: 'id', required: false, type: { kind: 'long' } }]);
      expect(stats.files).toBe(31);
      const [row] = await engine.all<{ n: string; s: string }>('SELECT count(*)::VARCHAR AS n, sum(id)::VARCHAR AS s FROM v');
      expect(row).toEqual({ n: '310', s: String(31 * 45) });
      expect([...io.downloads.values()].every((n) => n === 1), JSON.stringify([...io.downloads])).toBe(true);
      expect(io.downloads.size).toBe(30);
      expect(io.maxInFlight).toBeLessThanOrEqual(STAGE_CONCURRENCY);
      expect(io.maxInFlight, 'downloads do overlap').toBeGreaterThan(1);

      // Two views at once over the same new objects: each object downloaded once between them.
      engine.release(locations[5]!);
      engine.release(locations[6]!);
      io.downloads.clear();
      await Promise.all([
        engine.registerFiles('a', [dataFile(locations[5]!), dataFile(locations[6]!)], [{ id: 1, name: 'id', required: false, type: { kind: 'long' } }]),
        engine.registerFiles('b', [dataFile(locations[6]!), dataFile(locations[5]!)], [{ id: 1, name: 'id', required: false, type: { kind: 'long' } }]),
      ]);
      expect(Object.fromEntries(io.downloads)).toEqual({ [locations[5]!]: 1, [locations[6]!]: 1 });
      const [both] = await engine.all<{ n: string }>('SELECT ((SELECT count(*) FROM a) + (SELECT count(*) FROM b))::VARCHAR AS n');
      expect(both!.n).toBe('40');
      expect(fs.readdirSync(path.join(dir, 'reader', 'staged')).filter((f) => f.endsWith('.part'))).toEqual([]);
    } finally {
      engine.close();
    }
  }, 120_000);
});
