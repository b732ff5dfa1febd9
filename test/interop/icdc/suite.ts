// Acceptance tests of change capture + ICDC tables against real engines, on one storage.
//
// Source tables are written by PyIceberg and by Spark (catalog `src` on the test PostgreSQL).
// ips computes the change set of (from, to] and writes the zero-copy ICDC table, registered in the
// SQL catalog `icdc`. The ICDC table is then read back by PyIceberg (SqlCatalog.load_table,
// StaticTable.from_metadata, and the version-hint directory) and Spark (JdbcCatalog, metadata-file
// path), and must hold exactly the rows the engines themselves say the range holds.
//
// One Python process (icdc_engines.py, one Spark session) serves the whole file.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../setup/env.js';
import { commitSqlTable, ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { ipsFileIO } from '../engine-report.js';
import { DAY0_US, DAY_US, RowGen } from './data.js';
import { EngineServer, type Engine, type Row, type TableMeta } from './engines.js';
import {
  bag, expectedIcdcFiles, expectIcdc, ICDC_CATALOG, ipsBatch, ipsChangesCli, isoDay, isoMicros, minus, rangeOutcome,
  loadSource, refOf, refOfJson, runIps, utf8MinMax, type IpsContext,
} from './ips-steps.js';
import { resolveRangeWithHistory } from '../../../src/capture/range.js';
import { ManifestReader } from '../../../src/capture/manifest-reader.js';
import { isIpsError } from '../../../src/errors.js';

const LONG = 10 * 60_000;
const FULL_METRICS = { 'write.metadata.metrics.default': 'full' };
const COW = { 'write.delete.mode': 'copy-on-write', 'write.update.mode': 'copy-on-write', 'write.merge.mode': 'copy-on-write' };
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const MERGE = `MERGE INTO {t} t USING batch_rows s ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *`;

const short = (e: Engine): string => (e === 'spark' ? 'spark' : 'py');

export function defineIcdcSuite(storage: 'local' | 's3'): void {
  describe(`ICDC tables written by ips, read by PyIceberg and Spark (${storage})`, () => {
    let server: EngineServer;
    let ctx: IpsContext;
    let work: string;
    let v0db: string;
    const timings: string[] = [];

    const sourceMeta = async (table: string): Promise<{ spark: TableMeta; pyiceberg: TableMeta }> => ({
      spark: await server.tableMeta('spark', table),
      pyiceberg: await server.tableMeta('pyiceberg', table),
    });

    beforeAll(async () => {
      const t0 = Date.now();
      const env = testEnv();
      work = await fs.mkdtemp(path.join(os.tmpdir(), `ips-icdc-${storage}-`));
      const ns = `icdc_${storage}_${process.pid}_${Date.now().toString(36)}`;
      const root = storage === 'local' ? `file://${work}` : `s3://${env.s3Bucket}/${ns}`;
      ctx = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage };
      v0db = `${ns}_v0`;
      await ctx.pool.query(`CREATE DATABASE ${v0db}`);
      server = EngineServer.start({ storage, warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns, v0Database: v0db });
      // Iceberg Java's JdbcCatalog creates its tables in the V0 layout (no iceberg_type column)
      // unless told jdbc.schema-version=V1; commitSqlTable writes whichever layout it finds (the
      // 'JDBC catalog created by Spark (schema V0)' test below covers a V0-only catalog).
      await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool)); // another file may create them concurrently
      const v = await server.call<Record<string, string>>('versions', { spark: true });
      timings.push(`setup (Spark session) ${((Date.now() - t0) / 1000).toFixed(1)}s: ${JSON.stringify(v)}`);
    });

    afterAll(async () => {
      await server?.close();
      if (v0db) await ctx.pool.query(`DROP DATABASE IF EXISTS ${v0db} WITH (FORCE)`);
      await ctx?.pool.end();
      ctx?.io.close();
      if (work) await fs.rm(work, { recursive: true, force: true });
      process.stderr.write(`[icdc ${storage}] ${timings.join('\n[icdc ' + storage + '] ')}\n`);
    });

    const timed = (name: string, fn: () => Promise<void>) => async () => {
      const t0 = Date.now();
      try {
        await fn();
      } finally {
        timings.push(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      }
    };

    // ------------------------------------------------------------------------------------------
    // 1. Daily appends with ~3% late rows into old day partitions
    for (const engine of ['pyiceberg', 'spark'] as const) {
      const name = `${engine}: daily appends with late rows (day(ts)), two ICDC batches via the CLI`;
      it(name, timed(name, async () => {
        const T = `${short(engine)}_days`;
        const icdc = `${T}_icdc`;
        await server.create(engine, T, 'day', FULL_METRICS);
        const gen = new RowGen(engine === 'spark' ? 11 : 12);
        const snaps: string[] = [];
        snaps.push(await server.append(engine, T, [0, 1, 2, 3, 4].flatMap((d) => gen.rows(d, 20, 1))));
        for (let b = 2; b <= 6; b++) snaps.push(await server.append(engine, T, gen.daily(b + 3, 100, b))); // days 5..9
        const [from, to, next] = [snaps[2]!, snaps[4]!, snaps[5]!];

        // Expected rows: the engines' own incremental append reads, which must agree with each
        // other and with EXCEPT ALL between the two versions (appends only).
        const expected = await server.incremental(engine, T, from, to);
        const other: Engine = engine === 'spark' ? 'pyiceberg' : 'spark';
        expect(bag(await server.incremental(other, T, from, to)), 'both engines agree on the increment').toEqual(bag(expected));
        expect(bag(await server.exceptAll(engine, T, from, to)), 'EXCEPT ALL agrees').toEqual(bag(expected));
        expect(expected.length).toBe(2 * 103);

        const j = await ipsChangesCli(ctx, T, from, to, icdc);
        expect(j.snapshots.map((s) => [s.operation, s.action])).toEqual([['append', 'included'], ['append', 'included']]);
        const files = expectedIcdcFiles(await server.rangeFiles(engine, T, from, to));
        const sameLoc = (p: string): string => p.replace(/^file:(\/\/)?(?=\/)/, 'file://');
        expect(j.added_files.map((f) => sameLoc(f.file_path)).sort()).toEqual([...files.keys()].map(sameLoc).sort());
        for (const f of j.added_files) expect(f.file_size_in_bytes).toBe([...files.values()].find((e) => sameLoc(e.file_path) === sameLoc(f.file_path))!.file_size_in_bytes);
        expect(j.removed_files).toEqual([]);

        // Ranges from metrics (full) are exact and equal the engine rows' min/max; the changed
        // partitions are exactly the days the rows fall on, late days included.
        const ts = expected.map((r) => r[1]);
        expect(j.ranges['ts']).toEqual({ min: isoMicros(Math.min(...ts)), max: isoMicros(Math.max(...ts)), flag: 'exact' });
        const ids = expected.map((r) => r[0]);
        expect(j.ranges['id']).toEqual({ min: String(Math.min(...ids)), max: String(Math.max(...ids)), flag: 'exact' });
        const [nmin, nmax] = utf8MinMax(expected.map((r) => r[2]!));
        expect(j.ranges['name']).toEqual({ min: nmin, max: nmax, flag: 'exact' });
        const days = [...new Set(expected.map((r) => isoDay(r[1])))].sort();
        expect(j.changed_partitions.map((p) => p.partition['ts_day']).sort()).toEqual(days);
        const lateDays = days.filter((d) => d < '2026-03-08'); // batches 4 and 5 write days 03-08 and 03-09
        expect(lateDays.length, 'late rows landed in older day partitions').toBeGreaterThan(0);

        const meta = await sourceMeta(T);
        const readers = ['py_catalog', 'py_static', 'py_static_dir', 'spark_catalog', 'spark_path'] as const;
        const first = refOfJson(ctx, j);
        expect(first.metadataLocation).toMatch(/\/metadata\/v1\.metadata\.json$/);
        const lateCut = DAY0_US + 6 * DAY_US; // 2026-03-07: late rows of batch 5 fall on both sides
        await expectIcdc(server, { batch: first, expected, sourceMeta: meta, files, version: 1, readers: [...readers], tsFromUs: lateCut, where: `${T} batch 1` });

        // Second batch: a second snapshot of the same ICDC table holding only that batch's rows.
        const expected2 = await server.incremental(engine, T, to, next);
        const j2 = await ipsChangesCli(ctx, T, to, next, icdc);
        const second = refOfJson(ctx, j2);
        expect(second.metadataLocation).toMatch(/\/metadata\/v2\.metadata\.json$/);
        const files2 = expectedIcdcFiles(await server.rangeFiles(engine, T, to, next));
        const reads = await expectIcdc(server, { batch: second, expected: expected2, sourceMeta: meta, files: files2, version: 2, readers: [...readers], where: `${T} batch 2` });
        // Batch 2's snapshot follows a `delete` snapshot that removed batch 1's files, whose parent is batch 1's.
        for (const v of Object.values(reads)) {
          if (!('snapshots' in v)) continue;
          const parent = v.snapshots.find((s) => s.snapshot_id === v.snapshots.find((x) => x.snapshot_id === second.snapshotId)?.parent_id);
          expect(parent?.operation).toBe('delete');
          expect(parent?.parent_id).toBe(first.snapshotId);
        }
        const row = await ctx.pool.query('SELECT metadata_location, previous_metadata_location FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3', [ICDC_CATALOG, ctx.ns, icdc]);
        expect(row.rows).toEqual([{ metadata_location: second.metadataLocation, previous_metadata_location: first.metadataLocation }]);
        // The ICDC history is the consumer's batch history: time travel to batch 1 gives batch 1.
        const back = await server.readIcdc(second.ident, second.metadataLocation, { snapshotId: first.snapshotId, readers: ['py_catalog', 'spark_catalog'] });
        for (const [reader, v] of Object.entries(back)) {
          expect(v, reader).not.toHaveProperty('error');
          expect(bag((v as { rows: Row[] }).rows), `${reader}: batch 1 by time travel`).toEqual(bag(expected));
        }
      }), LONG);
    }

    // ------------------------------------------------------------------------------------------
    // 2. Row-level changes: the ICDC rows equal the rows the range added, with the source's
    //    deletes applied, as the engine computes them (icdc_engines.py op_added_live_rows: the
    //    table as of `to`, narrowed to the data files added in the range and still live at `to`).
    //    EXCEPT ALL cannot be the expectation: copy-on-write carries unchanged rows into the new
    //    files, and a file-level change set hands them over. So we also check the two relations
    //    that must hold: every net new/changed row (to EXCEPT ALL from) is in the ICDC table, and
    //    every other ICDC row is a carry-over that existed at `from`.
    async function expectRowLevel(engine: Engine, T: string, from: string, to: string): Promise<Row[]> {
      const { rows } = await server.addedLiveRows(engine, T, from, to);
      const net = await server.exceptAll(engine, T, from, to);
      expect(minus(net, rows), `${T} (${from}, ${to}]: changed rows missing from the added files`).toEqual([]);
      const carried = minus(rows, net);
      expect(minus(carried, await server.rowsAt(engine, T, from)), `${T}: rows in added files that are neither new nor carried over`).toEqual([]);
      return rows;
    }

    const cow = 'spark: MERGE INTO copy-on-write, DELETE copy-on-write';
    it(cow, timed(cow, async () => {
      const T = 'spark_merge_cow';
      await server.create('spark', T, null, { ...COW, ...FULL_METRICS });
      const gen = new RowGen(21);
      const base = [0, 1, 2].flatMap((d) => gen.rows(d, 20, 1));
      await server.append('spark', T, base);
      const late = gen.rows(3, 20, 2);
      const from = await server.append('spark', T, late);
      await server.sparkSql(T, [MERGE], [...gen.updates([...base.slice(0, 10), ...late.slice(0, 5)], 3), ...gen.rows(4, 10, 3)]);
      const to = (await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 17 = 0'])).snapshot_id!;
      const expected = await expectRowLevel('spark', T, from, to);
      const b = await ipsBatch(ctx, T, from, to, `${T}_icdc`);
      expect(b.json.snapshots.map((s) => [s.operation, s.action])).toEqual([['overwrite', 'included'], ['overwrite', 'included']]);
      const rf = await server.rangeFiles('spark', T, from, to);
      const removedBefore = new Set(rf.flatMap((s) => s.removed.map((r) => r.file_path)));
      expect(b.json.removed_files.length).toBeGreaterThan(0);
      for (const f of b.json.removed_files) expect(removedBefore.has(f.file_path), `removed ${f.file_path}`).toBe(true);
      const meta = await sourceMeta(T);
      await expectIcdc(server, { batch: refOf(b), expected, sourceMeta: meta, files: expectedIcdcFiles(rf), version: 1, where: `${T} batch 1` });

      const next = (await server.sparkSql(T, [MERGE], [...gen.updates(base.slice(20, 25), 4), ...gen.rows(5, 5, 4)])).snapshot_id!;
      const expected2 = await expectRowLevel('spark', T, to, next);
      const b2 = await ipsBatch(ctx, T, to, next, `${T}_icdc`);
      await expectIcdc(server, { batch: refOf(b2), expected: expected2, sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('spark', T, to, next)), version: 2, where: `${T} batch 2` });
    }), LONG);

    const mor = 'spark: MERGE, UPDATE and DELETE merge-on-read (position deletes in the ICDC table)';
    it(mor, timed(mor, async () => {
      const T = 'spark_merge_mor';
      await server.create('spark', T, 'day', { ...MOR, ...FULL_METRICS });
      const gen = new RowGen(31);
      const base = [0, 1, 2].flatMap((d) => gen.rows(d, 30, 1));
      const from = await server.append('spark', T, base);
      const inRange = gen.rows(3, 30, 2);
      await server.append('spark', T, inRange);
      // Updates rows of files from before the range and of files the range added.
      await server.sparkSql(T, [MERGE], [...gen.updates([...base.slice(0, 10), ...inRange.slice(0, 10)], 3), ...gen.rows(4, 10, 3)]);
      await server.sparkSql(T, ['UPDATE {t} SET qty = qty + 1000 WHERE id % 10 = 3']);
      const to = (await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 7 = 0'])).snapshot_id!;
      const expected = await expectRowLevel('spark', T, from, to);
      const b = await ipsBatch(ctx, T, from, to, `${T}_icdc`);
      expect(b.json.snapshots.map((s) => s.operation)).toEqual(['append', 'overwrite', 'overwrite', 'delete']);
      const rf = await server.rangeFiles('spark', T, from, to);
      const files = expectedIcdcFiles(rf);
      expect([...files.values()].some((f) => f.content === 1), 'the batch carries position delete files').toBe(true);
      // The deletes must matter: without them the added files hold more rows than the answer.
      const addedRecords = [...files.values()].filter((f) => f.content === 0).reduce((n, f) => n + Number(f.record_count), 0);
      expect(addedRecords).toBeGreaterThan(expected.length);
      const meta = await sourceMeta(T);
      await expectIcdc(server, { batch: refOf(b), expected, sourceMeta: meta, files, version: 1, tsFromUs: DAY0_US + 3 * DAY_US, where: `${T} batch 1` });

      const next = (await server.sparkSql(T, ["UPDATE {t} SET name = concat(name, '-u2') WHERE id % 5 = 1"])).snapshot_id!;
      const expected2 = await expectRowLevel('spark', T, to, next);
      const b2 = await ipsBatch(ctx, T, to, next, `${T}_icdc`);
      await expectIcdc(server, { batch: refOf(b2), expected: expected2, sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('spark', T, to, next)), version: 2, where: `${T} batch 2` });
    }), LONG);

    const pyCow = 'pyiceberg: upsert and delete (copy-on-write)';
    it(pyCow, timed(pyCow, async () => {
      const T = 'py_upsert';
      await server.create('pyiceberg', T, 'day', FULL_METRICS);
      const gen = new RowGen(41);
      const base = [0, 1, 2].flatMap((d) => gen.rows(d, 20, 1));
      await server.append('pyiceberg', T, base);
      const late = gen.rows(3, 20, 2);
      const from = await server.append('pyiceberg', T, late);
      const up = await server.call<{ snapshot_id: string; updated: number; inserted: number }>('py_upsert', {
        table: T, rows: [...gen.updates([...base.slice(0, 10), ...late.slice(0, 5)], 3), ...gen.rows(4, 10, 3)],
      });
      expect([up.updated, up.inserted]).toEqual([15, 10]);
      const lo = base[30]![0];
      const to = (await server.call<{ snapshot_id: string }>('py_delete', { table: T, filter: `id >= ${lo} and id < ${lo + 5}` })).snapshot_id;
      const expected = await expectRowLevel('pyiceberg', T, from, to);
      // Spark, reading the same PyIceberg table through the shared catalog, agrees.
      expect(bag((await server.addedLiveRows('spark', T, from, to)).rows)).toEqual(bag(expected));
      const b = await ipsBatch(ctx, T, from, to, `${T}_icdc`);
      expect(b.json.snapshots.every((s) => s.action === 'included')).toBe(true);
      const meta = await sourceMeta(T);
      await expectIcdc(server, { batch: refOf(b), expected, sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('pyiceberg', T, from, to)), version: 1, where: `${T} batch 1` });
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // 3. Compaction
    const compaction = 'spark: compaction between reads re-emits nothing; compaction of unread appends loses nothing';
    it(compaction, timed(compaction, async () => {
      const T = 'spark_compact';
      await server.create('spark', T, null, FULL_METRICS);
      const gen = new RowGen(51);
      const s1 = await server.append('spark', T, gen.rows(0, 20, 1));
      await server.append('spark', T, gen.rows(1, 20, 2));
      const s3 = await server.append('spark', T, gen.rows(2, 20, 3));
      const rewrite = `CALL src.system.rewrite_data_files(table => '{ns}.${T}', options => map('rewrite-all', 'true', 'min-input-files', '2'))`;
      const meta = await sourceMeta(T);
      const icdc = `${T}_icdc`;

      const e1 = await server.incremental('spark', T, s1, s3);
      const b1 = await ipsBatch(ctx, T, s1, s3, icdc);
      await expectIcdc(server, { batch: refOf(b1), expected: e1, sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('spark', T, s1, s3)), version: 1, where: `${T} batch 1` });

      // (s3, c1] holds only the compaction: an empty change set, an empty ICDC snapshot.
      const c1 = (await server.sparkSql(T, [rewrite])).snapshot_id!;
      const info = await server.snapshots('spark', T);
      expect(info.snapshots.find((s) => s.snapshot_id === c1)?.operation).toBe('replace');
      expect(await server.incremental('spark', T, s3, c1)).toEqual([]);
      const b2 = await ipsBatch(ctx, T, s3, c1, icdc);
      expect(b2.json.snapshots.map((s) => [s.operation, s.action])).toEqual([['replace', 'skipped']]);
      expect([b2.json.added_files, b2.json.removed_files]).toEqual([[], []]);
      await expectIcdc(server, { batch: refOf(b2), expected: [], sourceMeta: meta, files: new Map(), version: 2, where: `${T} batch 2 (compaction only)` });

      // Two appends the consumer has not read, then a compaction that rewrites them: (c1, c2]
      // still holds exactly their rows (the original files, which the compaction left in place).
      await server.append('spark', T, gen.rows(3, 20, 5));
      await server.append('spark', T, gen.rows(4, 20, 6));
      const c2 = (await server.sparkSql(T, [rewrite])).snapshot_id!;
      const e3 = await server.incremental('spark', T, c1, c2);
      expect(bag(await server.exceptAll('spark', T, c1, c2)), 'incremental read = EXCEPT ALL').toEqual(bag(e3));
      expect(e3.length).toBe(40);
      const b3 = await ipsBatch(ctx, T, c1, c2, icdc);
      expect(b3.json.snapshots.map((s) => s.action)).toEqual(['included', 'included', 'skipped']);
      await expectIcdc(server, { batch: refOf(b3), expected: e3, sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('spark', T, c1, c2)), version: 3, where: `${T} batch 3` });

      // Over the three batches: every row appended after s1 exactly once.
      expect(bag([...e1, ...e3])).toEqual(bag(await server.exceptAll('spark', T, s1, c2)));
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // 4. History problems are typed errors, never a wrong answer
    const fiveAppends = async (engine: Engine, T: string): Promise<[string, string, string, string, string]> => {
      await server.create(engine, T, null);
      const gen = new RowGen(61);
      const s: string[] = [];
      for (let b = 1; b <= 5; b++) s.push(await server.append(engine, T, gen.rows(b, 10, b)));
      return s as [string, string, string, string, string];
    };

    const sparkExpire = 'spark: expire_snapshots past from → LINEAGE_BROKEN / FROM_EXPIRED; an expired exclusive start with a kept child still works';
    it(sparkExpire, timed(sparkExpire, async () => {
      const T = 'spark_expire';
      const [s1, s2, s3, , s5] = await fiveAppends('spark', T);
      const expire = (ids: string[]) => server.sparkSql(T, [`CALL src.system.expire_snapshots(table => '{ns}.${T}', snapshot_ids => array(${ids.join(', ')}))`]);
      // A snapshot in the middle expires: from (s2) still exists, the chain to it is cut.
      await expire([s3]);
      expect((await server.snapshots('spark', T)).snapshots.find((x) => x.parent_id === s3), 'Java keeps the dangling parent id').toBeDefined();
      expect(await rangeOutcome(ctx, T, s2, s5)).toBe('LINEAGE_BROKEN');
      expect(await rangeOutcome(ctx, T, s1, s5)).toBe('LINEAGE_BROKEN');
      await expect(server.incremental('spark', T, s2, s5), 'Spark refuses (s2, s5] too').rejects.toThrow(/not a parent ancestor/);
      // from = s3 is expired but its child s4 is kept: the range is still well defined (as in Java).
      expect(await rangeOutcome(ctx, T, s3, s5)).toBe('OK');
      const expected = await server.incremental('spark', T, s3, s5);
      expect(expected.map((r) => r[4]).sort()).toEqual([...Array(10).fill(4), ...Array(10).fill(5)]);
      const b = await ipsBatch(ctx, T, s3, s5, `${T}_icdc`);
      await expectIcdc(server, {
        batch: refOf(b), expected, sourceMeta: await sourceMeta(T), files: expectedIcdcFiles(await server.rangeFiles('spark', T, s3, s5)),
        version: 1, readers: ['py_catalog', 'spark_catalog'], where: `${T} (expired exclusive start)`,
      });
      // from itself expires (older than the oldest retained snapshot).
      await expire([s1, s2]);
      expect(await rangeOutcome(ctx, T, s2, s5)).toBe('FROM_EXPIRED');
      expect(await rangeOutcome(ctx, T, s1)).toBe('FROM_EXPIRED');
      const env = testEnv();
      const cli = await runIps(ctx, ['changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', 'src', '--from', s2, '--json']);
      expect(cli.code).toBe(1);
      expect(JSON.parse(cli.stderr.trim().split('\n').pop()!).error.code).toBe('FROM_EXPIRED');
    }), LONG);

    // PyIceberg's expire (RemoveSnapshotsUpdate) sets parent-snapshot-id of the expired
    // snapshots' children to null; Java keeps the dangling id. The surviving chain then looks
    // like a table that began at the oldest kept snapshot.
    /** The snapshots ips puts in (from, to], by the ids the engine reported when it wrote them. */
    const expectRangeSnapshots = async (T: string, from: string, to: string, ids: string[]): Promise<void> => {
      const md = await loadSource(ctx, T);
      const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, new ManifestReader(ctx.io));
      expect(range.snapshots.map((x) => x.snapshotId.toString()), `(${from}, ${to}]`).toEqual(ids);
    };
    const pyExpire = 'pyiceberg: expire_snapshots past from → a typed error, never an answer';
    it(pyExpire, timed(pyExpire, async () => {
      const T = 'py_expire';
      const [s1, s2, s3, s4, s5] = await fiveAppends('pyiceberg', T);
      await server.call('py_expire', { table: T, snapshot_ids: [s3] });
      expect((await server.snapshots('pyiceberg', T)).snapshots.find((x) => x.snapshot_id === s4)?.parent_id, 'PyIceberg cleared the parent id').toBeNull();
      await expect(server.incremental('pyiceberg', T, s2, s5), 'PyIceberg refuses (s2, s5]').rejects.toThrow(/ancestor/);
      await expect(server.incremental('spark', T, s3, s5), 'Spark refuses (s3, s5]: the link to s3 is gone').rejects.toThrow(/ancestor/);
      for (const from of [s1, s2]) expect(await rangeOutcome(ctx, T, from, s5), `(${from}, s5]`).not.toBe('OK');
      // s3 itself is expired but its child s4 survives, and s4's manifest list still records s3
      // as its parent: (s3, s5] is exactly the changes of s4 and s5, as Java allows for an expired
      // exclusive start. ips recovers the link the engines lost and answers with those two.
      await expectRangeSnapshots(T, s3, s5, [s4, s5]);
      // What the kept lineage still holds reads normally.
      const expected = await server.incremental('pyiceberg', T, s4, s5);
      const b = await ipsBatch(ctx, T, s4, s5, `${T}_icdc`);
      await expectIcdc(server, {
        batch: refOf(b), expected, sourceMeta: await sourceMeta(T), files: expectedIcdcFiles(await server.rangeFiles('pyiceberg', T, s4, s5)),
        version: 1, readers: ['py_static', 'spark_catalog'], where: `${T} (kept lineage)`,
      });
      await server.call('py_expire', { table: T, snapshot_ids: [s1, s2] });
      for (const from of [s1, s2]) expect(await rangeOutcome(ctx, T, from, s5), `(${from}, s5] after more expiry`).not.toBe('OK');
      await expectRangeSnapshots(T, s3, s5, [s4, s5]);
    }), LONG);

    // The acceptance codes for PyIceberg-expired tables: PyIceberg's expiry clears the surviving
    // child's parent-snapshot-id, so ips recovers the lost parent from the child's manifest-list
    // header (resolveRangeWithHistory) and reports the same codes as for Java-expired tables.
    const pyExpireCodes = 'pyiceberg: expiry that clears parent ids → LINEAGE_BROKEN / FROM_EXPIRED / HISTORY_TRUNCATED';
    it(pyExpireCodes, timed(pyExpireCodes, async () => {
      const T = 'py_expire_codes';
      const [s1, s2, s3, , s5] = await fiveAppends('pyiceberg', T);
      await server.call('py_expire', { table: T, snapshot_ids: [s3] });
      expect.soft(await rangeOutcome(ctx, T, s2, s5), '(s2, s5]: s2 kept, the chain to it cut').toBe('LINEAGE_BROKEN');
      expect.soft(await rangeOutcome(ctx, T, s3, s5), '(s3, s5]: s3 expired, its child s4 kept').toBe('OK');
      await server.call('py_expire', { table: T, snapshot_ids: [s1, s2] });
      expect.soft(await rangeOutcome(ctx, T, s2, s5), '(s2, s5]: s2 expired').toBe('FROM_EXPIRED');
      const md = await loadSource(ctx, T);
      let code = 'OK';
      try {
        await resolveRangeWithHistory(md, { from: null, to: BigInt(s5) }, new ManifestReader(ctx.io));
      } catch (e) {
        code = isIpsError(e) ? e.code : String(e);
      }
      expect.soft(code, 'from the beginning: history before s4 is gone').toBe('HISTORY_TRUNCATED');
    }), LONG);

    for (const engine of ['pyiceberg', 'spark'] as const) {
      const rb = `${engine}: rollback then a new append → FROM_NOT_ANCESTOR`;
      it(rb, timed(rb, async () => {
        const T = `${short(engine)}_rollback`;
        await server.create(engine, T, null);
        const gen = new RowGen(71);
        const s1 = await server.append(engine, T, gen.rows(1, 10, 1));
        const s2 = await server.append(engine, T, gen.rows(2, 10, 2));
        const s3 = await server.append(engine, T, gen.rows(3, 10, 3));
        if (engine === 'spark') await server.sparkSql(T, [`CALL src.system.rollback_to_snapshot('{ns}.${T}', ${s1})`]);
        else await server.call('py_rollback', { table: T, snapshot_id: s1 });
        const s4 = await server.append(engine, T, gen.rows(4, 10, 4));
        const info = await server.snapshots(engine, T);
        expect(info.lineage).toEqual([s1, s4]);
        expect(info.snapshots.map((x) => x.snapshot_id)).toEqual(expect.arrayContaining([s2, s3]));
        expect(await rangeOutcome(ctx, T, s3)).toBe('FROM_NOT_ANCESTOR');
        expect(await rangeOutcome(ctx, T, s2, s4)).toBe('FROM_NOT_ANCESTOR');
        await expect(server.incremental(engine, T, s3, s4), 'the engine refuses (s3, s4] too').rejects.toThrow(/ancestor/i);
        // A consumer reset to the current lineage reads exactly the new append.
        const expected = await server.incremental(engine, T, s1, s4);
        expect(expected.map((r) => r[4])).toEqual(Array(10).fill(4));
        const b = await ipsBatch(ctx, T, s1, s4, `${T}_icdc`);
        // Default metrics (truncate(16)) on names longer than 16 characters: the name range is
        // only conservative, yet still contains every changed value; ts stays exact.
        const names = expected.map((r) => r[2]!);
        const [nmin, nmax] = utf8MinMax(names);
        const nr = b.json.ranges['name']!;
        expect(nr.flag).toBe('conservative');
        expect(Buffer.compare(Buffer.from(String(nr.min)), Buffer.from(nmin))).toBeLessThanOrEqual(0);
        expect(Buffer.compare(Buffer.from(String(nr.max)), Buffer.from(nmax))).toBeGreaterThanOrEqual(0);
        expect(b.json.ranges['ts']!.flag).toBe('exact');
        await expectIcdc(server, {
          batch: refOf(b), expected, sourceMeta: await sourceMeta(T), files: expectedIcdcFiles(await server.rangeFiles(engine, T, s1, s4)),
          version: 1, readers: ['py_static', 'spark_path'], where: `${T} after reset`,
        });
      }), LONG);
    }

    // ------------------------------------------------------------------------------------------
    // Registration into a JDBC catalog that Spark created with its defaults (schema version V0:
    // iceberg_tables without iceberg_type): commitSqlTable must write the layout it finds.
    const v0 = 'spark: ips registers an ICDC table in a JDBC catalog Spark created (schema V0), and Spark loads it';
    it(v0, timed(v0, async () => {
      const T = 'spark_v0';
      await server.create('spark', T, null);
      const gen = new RowGen(81);
      const s1 = await server.append('spark', T, gen.rows(0, 10, 1));
      const s2 = await server.append('spark', T, gen.rows(1, 10, 2));
      const b = await ipsBatch(ctx, T, s1, s2, `${T}_icdc`);
      await server.sparkSql(null, [`CREATE NAMESPACE IF NOT EXISTS v0cat.${ctx.ns}`]); // JdbcCatalog creates its tables
      const url = new URL(testEnv().pgUrl);
      url.pathname = `/${v0db}`;
      const v0pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
      try {
        const cols = await v0pool.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'iceberg_tables'");
        expect(cols.rows.map((r) => r.column_name), 'Spark created the V0 layout').not.toContain('iceberg_type');
        await commitSqlTable(v0pool, 'v0cat', b.ident, b.write.metadataLocation, null);
      } finally {
        await v0pool.end();
      }
      const reads = await server.readIcdc(b.ident, b.write.metadataLocation, { readers: ['spark_catalog'], sparkCatalog: 'v0cat' });
      expect(reads.spark_catalog).not.toHaveProperty('error');
      expect(bag((reads.spark_catalog as { rows: Row[] }).rows)).toEqual(bag(await server.incremental('spark', T, s1, s2)));
    }), LONG);
  });
}
