// Equality deletes written by Iceberg Java's own API (test/interop/java/EqualityDeletesTable.java:
// GenericAppenderFactory data and equality-delete writers, RowDelta commits), which neither Spark
// nor PyIceberg write. ips's change sets over them are read back by Spark (PyIceberg 0.12 cannot
// read equality deletes, which is checked on the source table), and the ranges must cover every
// row the deletes removed. Expected rows come from Spark: time travel and EXCEPT ALL, and the
// source's rows narrowed to the data files the range added (op_added_live_rows).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWithEqualityDeletes, type EqualityDeleteOp } from '../java/equality-deletes-table.js';
import { RowGen } from './data.js';
import type { EngineServer, Row } from './engines.js';
import { startSparkContext, stopSparkContext, type SparkContext } from './spark-context.js';
import { bag, expectedIcdcFiles, expectIcdc, ipsBatch, microsOfIso, minus, refOf, type IpsBatch, type IpsContext } from './ips-steps.js';

const LONG = 10 * 60_000;
describe('equality deletes written by Iceberg Java: change sets, ICDC tables read by Spark, ranges', () => {
  let spark: SparkContext | undefined;
  let server: EngineServer;
  let ctx: IpsContext;
  let warehouse: string;

  beforeAll(async () => {
    spark = await startSparkContext('eqdel');
    ({ server, ctx } = spark);
    warehouse = `${spark.root}/wh/java`;
  }, LONG);

  afterAll(() => stopSparkContext(spark));

  /** Runs the Java writer on one table; the snapshot id after each op (null for create). */
  const javaWrite = (table: string, ops: EqualityDeleteOp[]): (string | null)[] =>
    writeWithEqualityDeletes({ catalogName: 'src', warehouse, namespace: ctx.ns, table, ops });

  /** Every inserted and deleted row's ts and id lie inside the ranges ips reported. */
  async function expectRangesCover(T: string, from: string, to: string, b: IpsBatch, where: string): Promise<{ deleted: Row[] }> {
    const inserted = await server.exceptAll('spark', T, from, to);
    const deleted = await server.exceptAll('spark', T, to, from);
    for (const [field, idx] of [['ts', 1], ['id', 0]] as const) {
      const r = b.json.ranges[field]!;
      expect(r.flag, `${where}: ${field} range`).not.toBe('unbounded');
      const lo = field === 'ts' ? microsOfIso(String(r.min)) : Number(r.min);
      const hi = field === 'ts' ? microsOfIso(String(r.max)) : Number(r.max);
      const outside = [...inserted, ...deleted].filter((x) => x[idx] < lo || x[idx] > hi).map((x) => `id=${x[0]} ts=${x[1]}`);
      expect(outside, `${where}: rows outside the ${field} range ${JSON.stringify(r)}`).toEqual([]);
      if (deleted.length > 0) expect(r.flag, `${where}: ${field} range over deleted rows`).toBe('conservative');
    }
    return { deleted };
  }

  for (const partition of ['day', 'none'] as const) {
    const name = `${partition === 'day' ? 'day(ts)-partitioned' : 'unpartitioned (global deletes)'}: equality deletes on id and on name, then an append`;
    it(name, async () => {
      const T = `java_eqdel_${partition}`;
      const gen = new RowGen(partition === 'day' ? 91 : 92);
      const b1 = [0, 1, 2].flatMap((d) => gen.rows(d, 20, 1));
      const b2 = [2, 3, 4].flatMap((d) => gen.rows(d, 20, 2));
      const b3 = gen.rows(5, 20, 3);
      // Deletes by id: rows of the first batch (older files) and of the second (files the range adds);
      // then by name, in the second batch only.
      const byId = [b1[3]!, b1[25]!, b1[47]!, b2[5]!, b2[30]!];
      const byName = [b2[10]!, b2[50]!];
      const [, s1, s2, s3, s4, s5] = javaWrite(T, [
        { op: 'create', partition }, { op: 'append', rows: b1 }, { op: 'append', rows: b2 },
        { op: 'delete', fields: ['id'], rows: byId }, { op: 'delete', fields: ['name'], rows: byName }, { op: 'append', rows: b3 },
      ]) as [null, string, string, string, string, string];

      // The engines on the source: Spark applies the deletes; PyIceberg 0.12 refuses equality deletes.
      const atS4 = await server.rowsAt('spark', T, s4);
      expect(atS4.length).toBe(b1.length + b2.length - byId.length - byName.length);
      await expect(server.rowsAt('pyiceberg', T, s4), 'PyIceberg 0.12 cannot read equality deletes (engine limit)').rejects.toThrow(/equality/i);

      const meta = { spark: await server.tableMeta('spark', T), pyiceberg: await server.tableMeta('pyiceberg', T) };
      const icdc = `${T}_icdc`;
      // (s1, s4]: the second batch's files and both delete files.
      const b = await ipsBatch(ctx, T, s1, s4, icdc);
      expect(b.json.snapshots.map((s) => [s.operation, s.action])).toEqual([['append', 'included'], ['delete', 'included'], ['delete', 'included']]);
      expect(b.json.added_files.filter((f) => f.content === 'equality_deletes').length, 'equality delete files handed over').toBeGreaterThan(0);
      const { rows: expected } = await server.addedLiveRows('spark', T, s1, s4);
      // The deletes matter: the added data files hold more rows than the answer.
      expect(expected.length).toBe(b2.length - 2 - byName.length);
      expect(minus(await server.exceptAll('spark', T, s1, s4), expected), 'net new rows are all in the answer').toEqual([]);
      const rf = await server.rangeFiles('spark', T, s1, s4);
      await expectIcdc(server, { batch: refOf(b), expected, sourceMeta: meta, files: expectedIcdcFiles(rf), version: 1, readers: ['spark_catalog', 'spark_path'], where: `${T} (s1, s4]` });
      const { deleted } = await expectRangesCover(T, s1, s4, b, `${T} (s1, s4]`);
      expect(bag(deleted), 'the rows the deletes removed (engine)').toEqual(bag([...byId.slice(0, 3)]));

      // (s2, s4]: deletes only; the deleted rows are in files from before the range.
      const d = await ipsBatch(ctx, T, s2, s4, icdc);
      expect(d.json.added_files.every((f) => f.content === 'equality_deletes')).toBe(true);
      await expectRangesCover(T, s2, s4, d, `${T} (s2, s4]`);
      expect(d.json.ranges['ts']!.min, 'a delete-only range is bounded').not.toBeNull();
      // The name range of a delete on name is bounded by the delete file's own bounds.
      const names = byName.map((r) => r[2]!).sort();
      const nr = d.json.ranges['name']!;
      expect(Buffer.compare(Buffer.from(String(nr.min)), Buffer.from(names[0]!))).toBeLessThanOrEqual(0);
      expect(Buffer.compare(Buffer.from(String(nr.max)), Buffer.from(names.at(-1)!))).toBeGreaterThanOrEqual(0);
      const deletedAll = await server.exceptAll('spark', T, s2, s4);
      expect(deletedAll).toEqual([]); // nothing inserted in (s2, s4]
      const rf2 = await server.rangeFiles('spark', T, s2, s4);
      await expectIcdc(server, { batch: refOf(d), expected: [], sourceMeta: meta, files: expectedIcdcFiles(rf2), version: 2, readers: ['spark_catalog'], where: `${T} (s2, s4]` });

      // (s4, s5]: a plain append after the deletes.
      const a = await ipsBatch(ctx, T, s4, s5, icdc);
      await expectIcdc(server, { batch: refOf(a), expected: await server.incremental('spark', T, s4, s5), sourceMeta: meta, files: expectedIcdcFiles(await server.rangeFiles('spark', T, s4, s5)), version: 3, readers: ['spark_catalog'], where: `${T} (s4, s5]` });
      expect(s3).not.toBe(s4);
    }, LONG);
  }

  it('the day partitions of the deleted rows are changed partitions', async () => {
    const T = 'java_eqdel_day';
    const info = await server.snapshots('spark', T);
    const ids = info.lineage;
    const b = await ipsBatch(ctx, T, ids[2]!, ids[3]!, `${T}_parts`);
    const deleted = await server.exceptAll('spark', T, ids[3]!, ids[2]!);
    const days = [...new Set(deleted.map((r) => new Date(Math.floor(r[1] / 1000)).toISOString().slice(0, 10)))].sort();
    expect(b.json.changed_partitions.map((p) => String(p.partition['ts_day'])).sort()).toEqual(days);
    expect(days.length).toBeGreaterThan(0);
  }, LONG);
});
