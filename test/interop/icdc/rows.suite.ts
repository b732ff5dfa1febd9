// Issue 17, first slice: `ips changes --rows`, row-level changes of (from, to], against Spark
// (rows-local.test.ts: every scenario on local disk; rows-s3.test.ts: scenarios 1, 2, 5 and the
// changelog on MinIO). The oracle is Spark alone: time travel and EXCEPT ALL in both directions,
//   inserts = (SELECT * FROM t VERSION AS OF to) EXCEPT ALL (SELECT * FROM t VERSION AS OF from)
//   deletes = (… VERSION AS OF from) EXCEPT ALL (… VERSION AS OF to)
// and ips's answer must equal both as multisets, for several ranges of each scenario:
//   1 Spark v2 merge-on-read MERGE / UPDATE / DELETE (position deletes, partition-scoped files)
//   2 Spark v3 deletion vectors (a DELETE writes several DVs into one Puffin file; DVs replaced)
//   3 copy-on-write MERGE and DELETE (carry-over rows must cancel)
//   4 equality deletes written by Iceberg Java (test/interop/java/EqualityDeletesTable.java),
//     day-partitioned and unpartitioned (global deletes)
//   5 a compaction inside the range (before and after deletes on its outputs)
// and, without --net, the changelog per snapshot: against Spark's create_changelog_view on
// copy-on-write tables (carry-over removal, update pairing by id) and against EXCEPT ALL per
// snapshot on merge-on-read tables (whose delete files Spark's changelog refuses); plus the
// typed refusals: row budget, a missing deletion-vector file, bad arguments (schema changes:
// rows-lineage.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../setup/env.js';
import { ManifestReader } from '../../../src/capture/manifest-reader.js';
import { resolveRangeWithHistory } from '../../../src/capture/range.js';
import { isIpsError } from '../../../src/errors.js';
import type { FileIO } from '../../../src/io/file-io.js';
import type { FileKind } from '../../../src/io/limits.js';
import { netRowChanges, type NetRowOptions, type NetRowResult, type RowChange } from '../../../src/rows/net-rows.js';
import { rowChangelog } from '../../../src/rows/changelog.js';
import { writeWithEqualityDeletes, type EqualityDeleteOp } from '../java/equality-deletes-table.js';
import { DAY0_US, DAY_US, RowGen } from './data.js';
import type { EngineServer, Row } from './engines.js';
import { startSparkContext, stopSparkContext, type SparkContext } from './spark-context.js';
import { bag, loadSource, rowOfChange as asRow, runIps, SOURCE_CATALOG, type IpsContext } from './ips-steps.js';

const LONG = 10 * 60_000;
const FULL_METRICS = { 'write.metadata.metrics.default': 'full' };
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const COW = { 'write.delete.mode': 'copy-on-write', 'write.update.mode': 'copy-on-write', 'write.merge.mode': 'copy-on-write' };
const MERGE = 'MERGE INTO {t} t USING batch_rows s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *';

interface IpsRows {
  inserts: Row[];
  deletes: Row[];
  result: NetRowResult;
  raw: RowChange[];
}

export type RowsScenario = 'v2' | 'v3' | 'big' | 'cow' | 'eq' | 'compact' | 'changelog' | 'refusals';

/**
 * Defines the suite on one storage. `only` picks scenarios (default: all); the equality-delete
 * writer and the refusals (which delete a file) need local storage.
 */
export function defineRowsSuite(storage: 'local' | 's3', only?: RowsScenario[]): void {
describe(`ips changes --rows: net row changes and the changelog per snapshot equal Spark's (${storage})`, () => {
  let spark: SparkContext | undefined;
  let server: EngineServer;
  let ctx: IpsContext;
  let work: string;
  let warehouse: string;
  const timings: string[] = [];

  beforeAll(async () => {
    spark = await startSparkContext('rows', storage);
    ({ server, ctx, work } = spark);
    warehouse = `${spark.root}/wh/java`;
  }, LONG);

  afterAll(async () => {
    await stopSparkContext(spark);
    process.stderr.write(`[rows] ${timings.join('\n[rows] ')}\n`);
  });

  const scenario = (key: RowsScenario) => (name: string, fn: () => Promise<void>, timeout: number): void => {
    if (only === undefined || only.includes(key)) it(name, fn, timeout);
  };
  const timed = (name: string, fn: () => Promise<void>) => async () => {
    const t0 = Date.now();
    try {
      await fn();
    } finally {
      timings.push(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    }
  };

  /** Per S3 answer: the files staged on the scratch disk at once, at most, and in all. */
  const staging: { most: number; copies: number; atBoth: number }[] = [];

  async function ipsRows(T: string, from: string, to: string, opts: NetRowOptions = {}): Promise<IpsRows> {
    const md = await loadSource(ctx, T);
    const reader = new ManifestReader(ctx.io);
    const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
    const raw: RowChange[] = [];
    // On S3 the real FileIO, watched: after each copy to the scratch disk, how many staged
    // copies lie there (the one just made included).
    const scratch = storage === 's3' ? fs.mkdtempSync(path.join(work, 'scratch-')) : undefined;
    let most = 0;
    let copies = 0;
    const io = scratch === undefined ? ctx.io : Object.assign(Object.create(ctx.io) as FileIO, {
      copyToFile: async (loc: string, file: string, kind?: FileKind) => {
        const n = await ctx.io.copyToFile!(loc, file, kind);
        copies++;
        most = Math.max(most, fs.readdirSync(path.dirname(file)).length);
        return n;
      },
    });
    const result = await netRowChanges(io, md, reader, range, (r) => raw.push(r), { ...opts, ...(scratch ? { scratchDir: scratch } : {}) });
    if (scratch !== undefined) {
      staging.push({ most, copies, atBoth: result.plan.readAtBoth });
      // Freed after its last read: one at a time; with row lineage (v3) files read at both ends
      // wait for their second read beside the one being read.
      expect(most, `${T} (${from}, ${to}]: staged copies at once`).toBeLessThanOrEqual(md.formatVersion >= 3 ? result.plan.readAtBoth + 1 : 1);
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    for (const r of raw) {
      expect([r['_commit_snapshot_id'], r['_change_ordinal']], 'changelog columns of --net').toEqual([to, 0]);
      expect(Object.keys(r), 'columns by name, then the changelog columns').toEqual(['id', 'ts', 'name', 'qty', 'batch', '_change_type', '_change_ordinal', '_commit_snapshot_id']);
    }
    return {
      inserts: raw.filter((r) => r['_change_type'] === 'INSERT').map(asRow),
      deletes: raw.filter((r) => r['_change_type'] === 'DELETE').map(asRow),
      result, raw,
    };
  }

  /** ips's net rows of (from, to] equal Spark's EXCEPT ALL both ways; returns both. */
  async function expectNet(T: string, from: string, to: string, where: string): Promise<{ ips: IpsRows; inserts: Row[]; deletes: Row[] }> {
    const inserts = await server.exceptAll('spark', T, from, to);
    const deletes = await server.exceptAll('spark', T, to, from);
    const ips = await ipsRows(T, from, to);
    expect(bag(ips.inserts), `${where} (${from}, ${to}]: INSERT rows vs Spark to EXCEPT ALL from`).toEqual(bag(inserts));
    expect(bag(ips.deletes), `${where} (${from}, ${to}]: DELETE rows vs Spark from EXCEPT ALL to`).toEqual(bag(deletes));
    return { ips, inserts, deletes };
  }

  async function ipsChangelog(T: string, from: string, to: string, identifierColumns: string[] = []): Promise<RowChange[]> {
    const md = await loadSource(ctx, T);
    const reader = new ManifestReader(ctx.io);
    const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
    const out: RowChange[] = [];
    // Without identifier columns: no pairing (v3 tables would pair by _row_id: rows-lineage.test.ts).
    await rowChangelog(ctx.io, md, reader, range, (r) => out.push(r), identifierColumns.length ? { identifierColumns } : { pairBy: 'none' });
    return out;
  }

  /**
   * The changelog of (from, to] per snapshot against Spark: for each snapshot but compactions
   * (Iceberg's changelog skips `replace` and gives the others ordinals 0, 1, …), its rows
   * EXCEPT ALL its parent's (INSERT) and the reverse (DELETE), tagged with ordinal and snapshot.
   */
  async function expectChangelog(T: string, from: string, to: string): Promise<number> {
    const info = await server.snapshots('spark', T);
    const lineage = info.lineage;
    const ids = lineage.slice(lineage.indexOf(from) + 1, lineage.indexOf(to) + 1);
    expect(ids.length, `${T}: (${from}, ${to}] on the lineage`).toBeGreaterThan(0);
    const want: string[] = [];
    let parent = from;
    let ordinal = 0;
    for (const id of ids) {
      const prev = parent;
      parent = id;
      if (info.snapshots.find((x) => x.snapshot_id === id)!.operation === 'replace') continue;
      for (const [kind, a, b] of [['INSERT', prev, id], ['DELETE', id, prev]] as const) {
        for (const r of await server.exceptAll('spark', T, a, b)) want.push(JSON.stringify([...r, kind, ordinal, id]));
      }
      ordinal++;
    }
    const got = (await ipsChangelog(T, from, to)).map((x) => JSON.stringify([...asRow(x), x['_change_type'], x['_change_ordinal'], x['_commit_snapshot_id']]));
    expect(got.sort(), `${T} (${from}, ${to}]: changelog per snapshot vs Spark EXCEPT ALL per snapshot`).toEqual(want.sort());
    return want.length;
  }

  const sql = async (T: string, stmts: string[], rows?: Row[]): Promise<string> => (await server.sparkSql(T, stmts, rows)).snapshot_id!;
  const day = (d: number) => (r: Row) => r[1] >= DAY0_US + d * DAY_US && r[1] < DAY0_US + (d + 1) * DAY_US;

  // 1. v2 merge-on-read: MERGE, UPDATE, DELETE write position delete files (partition-scoped on
  //    local disk, file-scoped on S3).
  let v2Table: { T: string; s: string[] } | undefined;
  let compactTable: { T: string; s: string[] } | undefined;
  const v2 = '1 spark v2 merge-on-read MERGE / UPDATE / DELETE (position deletes)';
  scenario('v2')(v2, timed(v2, async () => {
    const T = 'rows_v2_mor';
    // Local: one position delete file per partition (no referenced_data_file when it covers
    // several data files); S3: Iceberg's default, one per data file (with referenced_data_file).
    const granularity = storage === 'local' ? 'partition' : 'file';
    await server.create('spark', T, 'day', { 'format-version': '2', ...MOR, ...FULL_METRICS, 'write.delete.granularity': granularity });
    const gen = new RowGen(1701);
    const b1 = [0, 1].flatMap((d) => gen.rows(d, 20, 1));
    const a1 = await server.append('spark', T, b1);
    const b2 = [0, 1, 2].flatMap((d) => gen.rows(d, 15, 2));
    const a2 = await server.append('spark', T, b2);
    const merged = [...gen.updates([...b1.slice(0, 4), ...b2.slice(20, 23)], 3), ...gen.rows(1, 5, 3)];
    const m = await sql(T, [MERGE], merged);
    const u = await sql(T, ['UPDATE {t} SET qty = qty + 1000, name = concat(name, \'-u\') WHERE id % 7 = 3']);
    const d = await sql(T, ['DELETE FROM {t} WHERE id % 5 = 0']);
    const rf = await server.rangeFiles('spark', T, a2, d, { dv: true });
    expect(rf.map((x) => x.operation), `${T}: operations`).toEqual(['overwrite', 'overwrite', 'delete']);
    const posDeletes = rf.flatMap((x) => x.added).filter((e) => e.content === 1);
    expect(posDeletes.length > 0 && posDeletes.every((e) => e.file_format === 'parquet'), `${T}: position delete files`).toBe(true);
    if (granularity === 'partition') expect(posDeletes.some((e) => e.referenced_data_file === null), `${T}: a position delete file covering several data files`).toBe(true);
    else expect(new Set(posDeletes.map((e) => e.file_path)).size, `${T}: file-scoped position delete files (one per data file, more than partitions)`).toBeGreaterThan(3);
    expect(rf[2]!.added.every((e) => e.content === 1), `${T}: the DELETE only adds delete files`).toBe(true);

    for (const [from, to] of [[a1, m], [a1, d], [m, d], [u, d], [a2, u]] as const) {
      const r = await expectNet(T, from, to, T);
      expect(r.inserts.length + r.deletes.length, `${T} (${from}, ${to}] changes rows`).toBeGreaterThan(0);
    }
    // The delete-only range reads only the data files its position deletes apply to, at both ends.
    const onlyDelete = await ipsRows(T, u, d);
    v2Table = { T, s: [a1, a2, m, u, d] };
    expect(onlyDelete.inserts, 'a DELETE inserts nothing').toEqual([]);
    expect(onlyDelete.result.plan.readAtTo).toBe(onlyDelete.result.plan.readAtFrom);
  }), LONG);

  // 2. v3 deletion vectors: three data files per day partition; a DELETE in day 0 touches all
  //    three (three DVs in one Puffin file); an UPDATE replaces one DV; a MERGE.
  const v3 = '2 spark v3 deletion vectors: several DVs per Puffin file, DVs replaced';
  let dvTable: { T: string; s: string[] } | undefined;
  scenario('v3')(v3, timed(v3, async () => {
    const T = 'rows_v3_dv';
    await server.create('spark', T, 'day', { 'format-version': '3', ...MOR, ...FULL_METRICS });
    const gen = new RowGen(1702);
    const batches = [1, 2, 3].map((b) => [0, 1].flatMap((d) => gen.rows(d, 20, b)));
    const a: string[] = [];
    for (const b of batches) a.push(await server.append('spark', T, b));
    const del = await sql(T, [`DELETE FROM {t} WHERE id % 5 = 0 AND ts < timestamp_micros(${DAY0_US + DAY_US})`]);
    const survivors = batches[1]!.filter(day(0)).filter((r) => r[0] % 5 !== 0).slice(0, 3).map((r) => r[0]);
    const upd = await sql(T, [`UPDATE {t} SET qty = qty + 1000 WHERE id IN (${survivors.join(', ')})`]);
    const merged = [...gen.updates(batches[0]!.filter(day(1)).slice(0, 3), 4), ...gen.rows(2, 4, 4)];
    const m = await sql(T, [MERGE], merged);
    const rf = await server.rangeFiles('spark', T, a[2]!, m, { dv: true });
    const dvs = rf[0]!.added.filter((e) => e.content === 1);
    expect(dvs.every((e) => e.file_format === 'puffin') && new Set(dvs.map((e) => e.file_path)).size === 1 && dvs.length === 3,
      `${T}: the DELETE wrote three DVs into one Puffin file: ${JSON.stringify(dvs)}`).toBe(true);
    const dvKeys = new Set(dvs.map((e) => `${e.file_path}#${e.content_offset}`));
    expect(rf[1]!.removed.some((e) => dvKeys.has(`${e.file_path}#${e.content_offset}`)), `${T}: the UPDATE replaced a DV of the shared Puffin file`).toBe(true);

    for (const [from, to] of [[a[2]!, del], [a[0]!, upd], [del, m], [a[0]!, m], [upd, m]] as const) {
      const r = await expectNet(T, from, to, T);
      expect(r.inserts.length + r.deletes.length, `${T} (${from}, ${to}] changes rows`).toBeGreaterThan(0);
    }
    // Proportional: the DELETE alone reads the three data files its DVs apply to, at both ends.
    const onlyDelete = await ipsRows(T, a[2]!, del);
    expect([onlyDelete.result.plan.readAtTo, onlyDelete.result.plan.readAtFrom], `${T}: data files read for the DELETE alone`).toEqual([3, 3]);
    expect(onlyDelete.deletes.length).toBe(batches.flatMap((b) => b.filter(day(0))).filter((r) => r[0] % 5 === 0).length);
    dvTable = { T, s: [...a, del, upd, m] };

    // The CLI: the same answer as JSON lines in a file, and --rows needs --net for now.
    const env = testEnv();
    const out = path.join(work, 'rows.jsonl');
    const cli = await runIps(ctx, ['changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--from', a[0]!, '--to', m, '--rows', '--net', '--format', 'jsonl', '--out', out]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr, 'progress on stderr').toMatch(/rows: \(/);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RowChange);
    expect(bag(lines.filter((l) => l['_change_type'] === 'INSERT').map(asRow))).toEqual(bag(await server.exceptAll('spark', T, a[0]!, m)));
    expect(bag(lines.filter((l) => l['_change_type'] === 'DELETE').map(asRow))).toEqual(bag(await server.exceptAll('spark', T, m, a[0]!)));
    const perSnapshot = await runIps(ctx, ['changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--from', a[0]!, '--to', m, '--rows', '--identifier-columns', 'id']);
    expect(perSnapshot.code, perSnapshot.stderr).toBe(0);
    const cl = perSnapshot.stdout.trim().split('\n').map((l) => JSON.parse(l) as RowChange);
    expect([...new Set(cl.map((x) => `${x['_change_ordinal']}@${x['_commit_snapshot_id']}`))].sort(), 'one ordinal per snapshot').toEqual([a[1]!, a[2]!, del, upd, m].map((id, i) => `${i}@${id}`).sort());
    expect(cl.filter((x) => x['_change_type'] === 'UPDATE_AFTER' && x['_commit_snapshot_id'] === upd).length, 'the UPDATE as update pairs').toBe(3);
    const bad = await runIps(ctx, ['changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--from', a[0]!, '--rows', '--net', '--identifier-columns', 'id']);
    expect([bad.code, bad.stdout], 'no partial answer').toEqual([1, '']);
    expect(bad.stderr).toMatch(/error \[INVALID_ARGUMENT\]: --identifier-columns/);
  }), LONG);

  // 2b. deletion vectors over a 70,000-row file: positions in two 64Ki chunks, a contiguous
  //     range (Iceberg run-length encodes it: a run container) and every other row (a bitmap
  //     container), then the DV replaced by their union.
  const big = '2b spark v3 deletion vectors of a 70,000-row file: run, bitmap and array containers';
  scenario('big')(big, timed(big, async () => {
    const T = 'rows_v3_big_dv';
    await server.create('spark', T, null, { 'format-version': '3', ...MOR, ...FULL_METRICS });
    const a = await sql(T, [`INSERT INTO {t} SELECT /*+ COALESCE(1) */ id + 1000000, timestamp_micros(${DAY0_US} + id * 1000000), concat('big-', id), CAST(id % 97 AS INT), 9 FROM range(70000)`]);
    const d1 = await sql(T, ['DELETE FROM {t} WHERE id BETWEEN 1000100 AND 1010100']);
    const d2 = await sql(T, ['DELETE FROM {t} WHERE id % 2 = 0 AND (id < 1020000 OR id >= 1066000)']);
    const rf = await server.rangeFiles('spark', T, a, d2, { dv: true });
    expect(rf.map((x) => [x.added.filter((e) => e.content === 0).length, x.added.filter((e) => e.file_format === 'puffin').length]), `${T}: one DV per DELETE on the one data file`).toEqual([[0, 1], [0, 1]]);
    const dv1 = rf[0]!.added[0]!;
    const blob = await ctx.io.read(dv1.file_path);
    const cookie = blob.readUInt32LE(Number(dv1.content_offset) + 8 + 8 + 4);
    expect(cookie & 0xffff, `${T}: the first DV holds a run container (Roaring cookie)`).toBe(12347);
    expect((await server.sparkSql(T, [`SELECT count(*) FROM {t} VERSION AS OF ${a}`])).result).toEqual([['70000']]);
    for (const [from, to] of [[a, d1], [d1, d2]] as const) {
      const t0 = Date.now();
      const r = await expectNet(T, from, to, T);
      timings.push(`${T} (${from}, ${to}]: ${r.deletes.length} deletes in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      expect(r.deletes.length, `${T} (${from}, ${to}] deletes rows`).toBeGreaterThan(5000);
      expect(r.inserts).toEqual([]);
    }
  }), LONG);

  // 3. copy-on-write: the MERGE and the DELETE rewrite whole files; their unchanged rows are
  //    removed and added again (carry-over) and must cancel.
  const cow = '3 spark v2 copy-on-write MERGE and DELETE: carry-over rows cancel';
  scenario('cow')(cow, timed(cow, async () => {
    const T = 'rows_cow';
    await server.create('spark', T, 'day', { 'format-version': '2', ...COW, ...FULL_METRICS });
    const gen = new RowGen(1703);
    const b1 = [0, 1].flatMap((d) => gen.rows(d, 25, 1));
    const a1 = await server.append('spark', T, b1);
    const a2 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 25, 2)));
    const m = await sql(T, [MERGE], [...gen.updates(b1.filter(day(0)).slice(0, 3), 3), ...gen.rows(0, 5, 3)]);
    const d = await sql(T, ['DELETE FROM {t} WHERE id % 9 = 0']);
    const rf = await server.rangeFiles('spark', T, a2, d);
    expect(rf.map((x) => [x.operation, x.added.every((e) => e.content === 0), x.removed.length > 0]), `${T}: copy-on-write rewrites`).toEqual([['overwrite', true, true], ['overwrite', true, true]]);
    for (const [from, to] of [[a2, m], [a1, d], [m, d]] as const) {
      const r = await expectNet(T, from, to, T);
      // Carry-over: the rewritten files hold many more rows than changed, and none of them is an answer.
      expect(r.ips.result.plan.rowsToRead, `${T} (${from}, ${to}]: rows read (with carry-over)`).toBeGreaterThan(BigInt(2 * (r.inserts.length + r.deletes.length)));
    }
    const r = await expectNet(T, a2, m, T);
    expect([r.inserts.length, r.deletes.length], `${T}: the MERGE updated 3 rows and inserted 5`).toEqual([8, 3]);

    // The changelog per snapshot (without --net) against Spark's own changelog view, which works
    // on copy-on-write tables: carry-over removal, and with identifier columns update pairing.
    for (const [from, to] of [[a1, d], [a2, m]] as const) {
      for (const ids of [[], ['id']]) {
        const view = `cl_${to}_${ids.length}`;
        const call = `CALL src.system.create_changelog_view(table => '{ns}.${T}', changelog_view => '${view}', options => map('start-snapshot-id', '${from}', 'end-snapshot-id', '${to}')${ids.length ? `, identifier_columns => array('id')` : ''})`;
        const spark = (await server.sparkSql(T, [call, `SELECT id, unix_micros(ts), name, qty, batch, _change_type, _change_ordinal, CAST(_commit_snapshot_id AS STRING) FROM ${view}`])).result;
        const want = spark.map((x) => JSON.stringify([Number(x[0]), Number(x[1]), x[2], Number(x[3]), Number(x[4]), x[5], Number(x[6]), x[7]])).sort();
        const got = (await ipsChangelog(T, from, to, ids)).map((x) => JSON.stringify([...asRow(x), x['_change_type'], x['_change_ordinal'], x['_commit_snapshot_id']])).sort();
        expect(got, `${T} (${from}, ${to}] changelog${ids.length ? ' with updates by id' : ''} vs Spark create_changelog_view`).toEqual(want);
        if (ids.length) expect(want.filter((x) => x.includes('UPDATE_AFTER')).length, 'Spark pairs the MERGE\'s updates').toBe(3);
      }
    }
  }), LONG);

  // 4. equality deletes, written by Iceberg Java's API (GenericAppenderFactory + RowDelta).
  const eq = '4 equality deletes (Iceberg Java): day-partitioned and unpartitioned (global)';
  scenario('eq')(eq, timed(eq, async () => {
    for (const partition of ['day', 'none'] as const) {
      const T = `rows_eqdel_${partition}`;
      const gen = new RowGen(partition === 'day' ? 1704 : 1705);
      const b1 = [0, 1, 2].flatMap((d) => gen.rows(d, 15, 1));
      const b2 = [2, 3].flatMap((d) => gen.rows(d, 15, 2));
      const b3 = gen.rows(3, 10, 3);
      const [, s1, s2, s3, s4, s5, s6] = javaWrite(T, [
        { op: 'create', partition }, { op: 'append', rows: b1 }, { op: 'append', rows: b2 },
        { op: 'delete', fields: ['id'], rows: [b1[3]!, b1[20]!, b1[40]!, b2[5]!, b2[25]!] },
        { op: 'delete', fields: ['name'], rows: [b2[10]!, b1[30]!] },
        { op: 'append', rows: b3 },
        // Deletes by id of rows appended later (b3) and of an id no row has any more.
        { op: 'delete', fields: ['id'], rows: [b3[2]!, b1[3]!] },
      ]) as [null, string, string, string, string, string, string];
      const rf = await server.rangeFiles('spark', T, s2, s4);
      expect(rf.flatMap((x) => x.added.map((e) => e.content)).every((c) => c === 2), `${T}: equality delete files`).toBe(true);
      for (const [from, to] of [[s1, s4], [s2, s4], [s3, s4], [s1, s6], [s4, s6], [s2, s5]] as const) {
        const r = await expectNet(T, from, to, T);
        expect(r.inserts.length + r.deletes.length, `${T} (${from}, ${to}] changes rows`).toBeGreaterThan(0);
      }
      // An equality delete on id applies only to older data: b3's row is deleted by s6 only.
      const late = await expectNet(T, s5, s6, T);
      expect(late.deletes.map((x) => x[0])).toEqual([b3[2]![0]]);
    }
  }), LONG);

  // 5. a compaction inside the range: appends, deletes, rewrite_data_files (which applies the
  //    deletes), then a DELETE on the compaction outputs (DVs); ranges across and around it.
  const compact = '5 spark v3: rewrite_data_files inside the range, before and after deletes on its outputs';
  scenario('compact')(compact, timed(compact, async () => {
    const T = 'rows_compact';
    await server.create('spark', T, 'day', { 'format-version': '3', ...MOR, ...FULL_METRICS });
    const gen = new RowGen(1706);
    const a1 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 15, 1)));
    const a2 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 15, 2)));
    const d1 = await sql(T, ['DELETE FROM {t} WHERE id % 6 = 0']);
    const a3 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 15, 3)));
    const rw = await sql(T, [`CALL src.system.rewrite_data_files(table => '{ns}.${T}', options => map('rewrite-all', 'true', 'min-input-files', '2'))`]);
    const d2 = await sql(T, ['DELETE FROM {t} WHERE id % 4 = 1']);
    const ops = (await server.rangeFiles('spark', T, a1, d2)).map((x) => x.operation);
    expect(ops, `${T}: operations`).toEqual(['append', 'delete', 'append', 'replace', 'delete']);
    for (const [from, to] of [[a1, d2], [a2, rw], [a3, d2], [d1, d2], [a1, rw]] as const) await expectNet(T, from, to, T);
    // The compaction alone changes no row, although it reads every file it rewrote.
    compactTable = { T, s: [a1, a2, d1, a3, rw, d2] };
    const alone = await ipsRows(T, a3, rw);
    expect([alone.inserts, alone.deletes]).toEqual([[], []]);
    expect(alone.result.plan.readAtTo, 'the compaction outputs are read').toBeGreaterThan(0);
    const across = await expectNet(T, a1, d2, T);
    expect(across.inserts.length > 0 && across.deletes.length > 0, `${T}: the range inserts and deletes`).toBe(true);
  }), LONG);

  // 6. The changelog per snapshot on merge-on-read tables, where Spark's changelog view refuses
  //    delete files: per snapshot EXCEPT ALL is the oracle; compactions get no ordinal.
  const changelog = '6 changelog per snapshot (without --net) on v2 position deletes, v3 DVs and across a compaction';
  scenario('changelog')(changelog, timed(changelog, async () => {
    expect(v2Table && dvTable && compactTable, 'scenarios 1, 2 and 5 ran').toBeTruthy();
    const counts: number[] = [];
    counts.push(await expectChangelog(v2Table!.T, v2Table!.s[0]!, v2Table!.s[4]!));
    counts.push(await expectChangelog(dvTable!.T, dvTable!.s[0]!, dvTable!.s[5]!));
    counts.push(await expectChangelog(compactTable!.T, compactTable!.s[0]!, compactTable!.s[5]!));
    expect(counts.every((n) => n > 0), `rows in every changelog: ${counts.join(', ')}`).toBe(true);
    // An update pairing that is not unique is refused: the v2 MERGE source updates ids that are
    // unique, so pairing by batch (not unique) must fail.
    await expect(ipsChangelog(v2Table!.T, v2Table!.s[1]!, v2Table!.s[2]!, ['batch'])).rejects.toThrow(/UPDATE_AMBIGUOUS|cannot be paired/);
    const paired = await ipsChangelog(v2Table!.T, v2Table!.s[1]!, v2Table!.s[2]!, ['id']);
    expect(paired.filter((x) => x['_change_type'] === 'UPDATE_AFTER').length, 'the MERGE updated 7 rows').toBe(7);
    expect(paired.filter((x) => x['_change_type'] === 'UPDATE_BEFORE').length).toBe(7);
  }), LONG);

  // Typed refusals: never a partial answer.
  const refusals = 'refusals: row budget, a missing deletion-vector file';
  scenario('refusals')(refusals, timed(refusals, async () => {
    expect(dvTable, 'scenario 2 ran').toBeDefined();
    const { T, s } = dvTable!;
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return 'OK';
      } catch (e) {
        if (isIpsError(e)) return `${e.code}: ${e.message}`;
        throw e;
      }
    };
    expect(await code(ipsRows(T, s[0]!, s[5]!, { maxRows: 10n }))).toMatch(/^ROW_BUDGET_EXCEEDED: .*--max-rows/);
    expect(await code(ipsRows(T, s[0]!, s[5]!, { maxRows: 100_000n }))).toBe('OK');

    // A DV file the answer needs is gone: FILES_MISSING, nothing emitted.
    const rf = await server.rangeFiles('spark', T, s[2]!, s[3]!, { dv: true });
    const puffin = rf[0]!.added.find((e) => e.file_format === 'puffin')!.file_path;
    fs.rmSync(fileURLToPath(puffin.replace(/^file:(?!\/\/)/, 'file://')));
    const emitted: RowChange[] = [];
    const md = await loadSource(ctx, T);
    const reader = new ManifestReader(ctx.io);
    const range = await resolveRangeWithHistory(md, { from: BigInt(s[2]!), to: BigInt(s[3]!) }, reader);
    expect(await code(netRowChanges(ctx.io, md, reader, range, (r) => emitted.push(r)))).toMatch(/^FILES_MISSING: .*deletion vector file/);
    expect(emitted).toEqual([]);
  }), LONG);

  if (storage === 's3') {
    it('S3 files are staged for their reads and freed after: never the whole range on the scratch disk', () => {
      // The scenarios above ran their answers through the watched FileIO; some staged more files
      // than they hold at once (else this proves nothing).
      expect(staging.length).toBeGreaterThan(0);
      expect(staging.some((x) => x.copies > x.most && x.copies > x.atBoth + 1), JSON.stringify(staging)).toBe(true);
    });
  }

  // ---- the Java writer of equality deletes (test/interop/java/equality-deletes-table.ts)

  const javaWrite = (table: string, ops: EqualityDeleteOp[]): (string | null)[] =>
    writeWithEqualityDeletes({ catalogName: SOURCE_CATALOG, warehouse, namespace: ctx.ns, table, ops });
});
}

