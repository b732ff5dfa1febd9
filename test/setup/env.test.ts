// Sanity checks of the test environment built by test/setup/global-setup.ts: each service the
// interop and integration suites rely on answers, and behaves the way the product relies on.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runPython, testEnv } from './env.js';

const env = testEnv();
const runId = `${process.pid}-${Date.now()}`;

describe('test environment', () => {
  it('exposes the IPS_TEST_* variables to test workers', () => {
    for (const name of [
      'IPS_TEST_PG_URL',
      'IPS_TEST_S3_ENDPOINT',
      'IPS_TEST_S3_REGION',
      'IPS_TEST_S3_ACCESS_KEY',
      'IPS_TEST_S3_SECRET_KEY',
      'IPS_TEST_S3_BUCKET',
      'IPS_TEST_PYTHON',
      'IPS_TEST_SPARK_JARS',
      'IPS_CACHE_DIR',
    ]) {
      expect(process.env[name], name).toBeTruthy();
    }
    expect(env.pgUrl).toMatch(/^postgres:\/\/[^:]+:[^@]+@[^:]+:\d+\/\w+$/);
    expect(env.sparkJars.length).toBe(3);
    for (const j of env.sparkJars) expect(path.isAbsolute(j), j).toBe(true);
  });

  it('PostgreSQL answers select 1', async () => {
    const client = new pg.Client({ connectionString: env.pgUrl });
    await client.connect();
    try {
      const res = await client.query<{ one: number }>('select 1 as one');
      expect(res.rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });

  describe('S3 (MinIO)', () => {
    const s3 = new S3Client({
      endpoint: env.s3Endpoint,
      region: env.s3Region,
      forcePathStyle: true,
      credentials: { accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey },
    });
    afterAll(() => s3.destroy());
    const key = `sanity/${runId}/object.bin`;

    it('round-trips an object with PutObject/GetObject', async () => {
      const body = new Uint8Array([0, 1, 2, 254, 255]);
      await s3.send(new PutObjectCommand({ Bucket: env.s3Bucket, Key: key, Body: body }));
      const got = await s3.send(new GetObjectCommand({ Bucket: env.s3Bucket, Key: key }));
      expect(Array.from(await got.Body!.transformToByteArray())).toEqual(Array.from(body));
    });

    it('rejects a conditional PutObject (If-None-Match: *) on an existing key with 412', async () => {
      const fresh = `sanity/${runId}/conditional.txt`;
      // First create-if-absent succeeds...
      await s3.send(new PutObjectCommand({ Bucket: env.s3Bucket, Key: fresh, Body: 'first', IfNoneMatch: '*' }));
      // ...the second one must fail with 412 Precondition Failed and leave the object alone.
      const err = await s3
        .send(new PutObjectCommand({ Bucket: env.s3Bucket, Key: fresh, Body: 'second', IfNoneMatch: '*' }))
        .then(
          () => undefined,
          (e: unknown) => e as { name?: string; $metadata?: { httpStatusCode?: number } },
        );
      expect(err, 'conditional PUT on an existing key must fail').toBeDefined();
      expect(err!.$metadata?.httpStatusCode).toBe(412);
      const got = await s3.send(new GetObjectCommand({ Bucket: env.s3Bucket, Key: fresh }));
      expect(await got.Body!.transformToString()).toBe('first');
    });
  });

  describe('Python engines', () => {
    it('the venv python imports pyiceberg, pyspark and pyarrow', async () => {
      const out = await runPython('test/setup/python/sanity_versions.py');
      const versions = JSON.parse(out) as Record<string, string>;
      process.stderr.write(`[ips-test] engine versions: ${out.trim()}\n`);
      expect(versions.pyiceberg).toBe('0.12.0');
      expect(versions.pyspark).toMatch(/^3\.5\./);
      expect(versions.pyarrow).toMatch(/^\d+\./);
    });

    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-sanity-'));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    it('Spark with the Iceberg jars writes and reads tables (Hadoop catalog; JDBC catalog on PostgreSQL + S3), pyiceberg reads them back', async () => {
      const ns = `sanity_${runId.replace(/\W/g, '_')}`; // the compose database outlives runs
      const out = await runPython('test/setup/python/sanity_spark.py', [path.join(tmp, 'warehouse'), `sanity/${runId}/wh`, ns]);
      const res = JSON.parse(out.trim().split('\n').pop()!) as {
        spark: string;
        hadoop_rows: [number, string][];
        hadoop_snapshots: number;
        s3_rows: [number, number][];
        s3_metadata_location: string;
        pyiceberg_rows: [number, number][];
      };
      expect(res.spark).toMatch(/^3\.5\./);
      expect(res.hadoop_rows).toEqual([
        [1, 'a'],
        [2, 'b'],
        [3, 'c'],
      ]);
      expect(res.hadoop_snapshots).toBe(2);
      expect(res.s3_rows).toEqual([
        [10, 1.5],
        [20, 2.5],
      ]);
      expect(res.s3_metadata_location).toMatch(new RegExp(`^s3://${env.s3Bucket}/sanity/`));
      expect(res.pyiceberg_rows).toEqual(res.s3_rows);
    }, 300_000);
  });
});
