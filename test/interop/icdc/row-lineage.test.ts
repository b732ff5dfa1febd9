// v3 row lineage through the ICDC table. Spark 3.5 with Iceberg 1.10 writes v3 tables whose data
// files inherit `first_row_id`; a row's `_row_id` is its file's first_row_id plus its position,
// and `_last_updated_sequence_number` its file's data sequence number. An ICDC table references
// the source's files, so Spark must read the same `_row_id` and `_last_updated_sequence_number`
// from it as from the source: the expected values are Spark's own reads of the source.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { ipsFileIO } from '../engine-report.js';
import { RowGen } from './data.js';
import { EngineServer } from './engines.js';
import { ipsBatch, type IpsContext } from './ips-steps.js';

const LONG = 10 * 60_000;

describe('v3 row lineage: the ICDC table keeps the source rows\' _row_id and _last_updated_sequence_number (Spark)', () => {
  let server: EngineServer;
  let ctx: IpsContext;
  let work: string;

  beforeAll(async () => {
    const env = testEnv();
    work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ips-lineage-'));
    const ns = `lineage_${process.pid}_${Date.now().toString(36)}`;
    const root = `file://${work}`;
    ctx = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage: 'local' };
    await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool));
    server = EngineServer.start({ storage: 'local', warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns });
  }, LONG);

  afterAll(async () => {
    await server?.close();
    await ctx?.pool.end();
    ctx?.io.close();
    if (work) await fs.promises.rm(work, { recursive: true, force: true });
  });

  it('appends, a merge-on-read UPDATE (deletion vectors) and more appends: the lineage columns read from the ICDC table equal the source\'s', async () => {
    const T = 'spark_v3_lineage';
    await server.create('spark', T, 'day', { 'format-version': '3', 'write.update.mode': 'merge-on-read', 'write.delete.mode': 'merge-on-read' });
    const gen = new RowGen(101);
    const s1 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 15, 1)));
    await server.append('spark', T, [1, 2].flatMap((d) => gen.rows(d, 15, 2)));
    await server.sparkSql(T, ['UPDATE {t} SET qty = qty + 1000 WHERE id % 6 = 1']);
    const s4 = await server.append('spark', T, gen.rows(3, 15, 3));
    const lineageSql = (from: string): string =>
      `SELECT id, CAST(_row_id AS STRING), CAST(_last_updated_sequence_number AS STRING), qty FROM ${from}`;

    const b = await ipsBatch(ctx, T, s1, s4, `${T}_icdc`);
    const dataFiles = b.json.added_files.filter((f) => f.content === 'data');
    expect(dataFiles.length).toBeGreaterThan(0);
    expect(dataFiles.every((f) => f.first_row_id !== undefined), 'v3 data files carry first_row_id').toBe(true);
    expect(b.json.added_files.some((f) => f.content === 'position_deletes' && f.content_offset !== undefined), 'the UPDATE wrote deletion vectors').toBe(true);

    // Expected: the source as of s4, narrowed to the files the range added (Spark's _file).
    const files = dataFiles.map((f) => `'${f.file_path.replace(/'/g, "''")}'`).join(', ');
    const src = (await server.sparkSql(T, [`${lineageSql(`{t} VERSION AS OF ${s4}`)} WHERE _file IN (${files})`])).result;
    const icdc = (await server.sparkSql(null, [lineageSql(`icdc.${ctx.ns}.${T}_icdc`)])).result;
    const sorted = (rows: (string | null)[][]) => rows.map((r) => r.join('|')).sort();
    expect(src.length).toBeGreaterThan(0);
    expect(src.every((r) => r[1] !== null && r[2] !== null), 'the source rows have lineage values').toBe(true);
    expect(sorted(icdc)).toEqual(sorted(src));
    // Updated rows keep their _row_id and carry the UPDATE's sequence number in both.
    const updated = src.filter((r) => Number(r[3]) >= 1000);
    expect(updated.length).toBeGreaterThan(0);

    // A batch of appends only (no delete files): the same holds.
    const s5 = await server.append('spark', T, gen.rows(4, 15, 4));
    const b2 = await ipsBatch(ctx, T, s4, s5, `${T}_icdc`);
    expect(b2.json.added_files.every((f) => f.content === 'data')).toBe(true);
    const files2 = b2.json.added_files.map((f) => `'${f.file_path.replace(/'/g, "''")}'`).join(', ');
    const src2 = (await server.sparkSql(T, [`${lineageSql(`{t} VERSION AS OF ${s5}`)} WHERE _file IN (${files2})`])).result;
    const icdc2 = (await server.sparkSql(null, [lineageSql(`icdc.${ctx.ns}.${T}_icdc`)])).result;
    expect(src2.length).toBe(15);
    expect(sorted(icdc2)).toEqual(sorted(src2));
  }, LONG);
});
