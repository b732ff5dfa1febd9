// `ips demo backfill` end to end (what the command runs), on embedded PGlite and on the real
// PostgreSQL: daily_totals must equal DuckDB's recomputation from every event (cents inside the
// backfilled days, units elsewhere), the backfill must be complete (every chunk committed, its
// output in lineage, the downstream consumer past it) and the live watermark untouched.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runBackfillDemo } from '../../src/backfill/demo.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';
import { testEnv } from '../setup/env.js';

describe.each([...DRIVERS, 'postgres+minio'] as const)('ips demo backfill (%s)', (driver) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-demo-'));
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await drop?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the backfilled days hold the new logic, the others the old; complete; the watermark did not move', async () => {
    let database;
    if (driver !== 'pglite') {
      const db = await createPgDatabase('backfill_demo');
      drop = db.drop;
      database = { driver: 'postgres' as const, url: db.url, poolMax: 4 };
    } else {
      database = { driver: 'pglite' as const, dataDir: null, loadDataDir: await pgliteTemplate() };
    }
    const env = testEnv();
    const minio = driver === 'postgres+minio'
      ? {
        warehouse: `s3://${env.s3Bucket}/backfill-demo-${path.basename(dir)}`,
        s3: { endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey, pathStyle: true },
      }
      : {};
    const r = await runBackfillDemo({ dir, days: 6, rowsPerDay: 300, from: 1, to: 3, startDate: '2026-10-01', database, ...minio });
    if (driver === 'postgres+minio') {
      // The chunks' ICDC tables and the tables themselves are on MinIO.
      expect(r.view.chunks.every((c) => c.files.added.every((f) => f.file_path.startsWith(`s3://${env.s3Bucket}/`)))).toBe(true);
    }
    expect(r.rows).toBe(6);
    expect(r.rowsDiffering).toBe(0);
    expect(r.view.chunks.map((c) => (c.range as { min: string }).min)).toEqual(['2026-10-02', '2026-10-03', '2026-10-04']);
    expect(r.view.status).toBe('complete');
    expect(r.view.stages.map((s) => s.consumer)).toEqual(['daily', 'summary']);
    expect(r.liveWatermarkMoved).toBe(false);
    expect(r.liveBatches).toBe(6);
  });
});
