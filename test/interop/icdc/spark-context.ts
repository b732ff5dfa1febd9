// One Spark (and PyIceberg) engine process per test file, with its own namespace, catalogs on the
// test PostgreSQL and a warehouse on local disk or MinIO: what the interop files' beforeAll and
// afterAll share.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { ipsFileIO } from '../engine-report.js';
import { EngineServer } from './engines.js';
import type { IpsContext } from './ips-steps.js';

export interface SparkContext {
  server: EngineServer;
  ctx: IpsContext;
  /** The local scratch directory (removed by stopSparkContext). */
  work: string;
  /** file://<work> or s3://<bucket>/<namespace>: the warehouse is `<root>/wh`. */
  root: string;
}

export async function startSparkContext(prefix: string, storage: 'local' | 's3' = 'local'): Promise<SparkContext> {
  const env = testEnv();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `ips-${prefix}-`));
  const ns = `${prefix}_${storage}_${process.pid}_${Date.now().toString(36)}`;
  const root = storage === 'local' ? `file://${work}` : `s3://${env.s3Bucket}/${ns}`;
  const ctx: IpsContext = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage };
  await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool)); // another file may create them concurrently
  const server = EngineServer.start({ storage, warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns });
  await server.call('versions', { spark: true }); // the Spark session
  return { server, ctx, work, root };
}

export async function stopSparkContext(s: SparkContext | undefined): Promise<void> {
  await s?.server.close();
  await s?.ctx.pool.end();
  s?.ctx.io.close();
  if (s?.work) await fs.rm(s.work, { recursive: true, force: true });
}
