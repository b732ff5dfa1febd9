// Change sets on merge-on-read and v3 tables (issue 10), against real engines, on one storage.
//
// Source tables are written by Spark 3.5 + Iceberg 1.10 (format v3 with deletion vectors, several
// DVs per Puffin file; v2 merge-on-read with position deletes) and by PyIceberg 0.12, in the
// catalog `src`. ips computes (from, to] and writes the ICDC table (catalog `icdc`), which Spark
// and PyIceberg read back. Every expected value comes from the engines (time travel, EXCEPT ALL,
// the rows of the expected files read by `_file`, the `entries` metadata table), never from ips.
//
//   A  v3 DVs sharing Puffin files / v2 partition-scoped position deletes: ICDC rows and entries
//   B  ranges: every inserted and deleted row lies inside the reported range (A and C)
//   C  a compaction inside the range, then deletes against its outputs (DV, position, CoW)
//   D  a compaction that applied deletes is not reported as a mislabelled rewrite
//   E  the sequence-number fallback includes compaction outputs
//   F  `ips inspect --json` lists each DV with its offset, size and referenced data file
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { computeChangeSet } from '../../../src/capture/change-set.js';
import { changeKey } from '../../../src/capture/file-key.js';
import { ManifestReader } from '../../../src/capture/manifest-reader.js';
import { ownManifestsFromNewest } from '../../../src/capture/own-manifests.js';
import { DEFAULT_POLICY } from '../../../src/capture/policy.js';
import { resolveRange } from '../../../src/capture/range.js';
import { ipsFileIO } from '../engine-report.js';
import { DAY0_US, DAY_US, RowGen } from './data.js';
import { EngineServer, type Engine, type EngineEntry, type IcdcReader, type IcdcView, type RangeSnapshotFiles, type Row, type TableMeta } from './engines.js';
import {
  bag, changeSetShape, entryKey, expectedIcdcFilesByKey, expectIcdc, icdcLocation, ICDC_CATALOG, ipsBatch, loadSource, minus, rangeOutcome, refOf, runIps,
  SOURCE_CATALOG, type IcdcRef, type IpsBatch, type IpsContext,
} from './ips-steps.js';

const LONG = 10 * 60_000;
const FULL_METRICS = { 'write.metadata.metrics.default': 'full' };
const COW = { 'write.delete.mode': 'copy-on-write', 'write.update.mode': 'copy-on-write', 'write.merge.mode': 'copy-on-write' };
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const REWRITE_ALL = (T: string) => `CALL src.system.rewrite_data_files(table => '{ns}.${T}', options => map('rewrite-all', 'true', 'min-input-files', '2'))`;
const LABELLED = /labelled as compaction/;
/** PyIceberg 0.12 metadata tables that fail on a table with DVs (engine limit, asserted on the source). */
const PY_DV_FAILING = ['entries'];

/** µs since epoch from ips's ISO-8601 rendering of a timestamp(tz) bound. */
function isoToMicros(s: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/.exec(s);
  if (!m) throw new Error(`not an ISO timestamp: ${s}`);
  const frac = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  let ms = Date.parse(`${m[1]}Z`);
  if (m[3] && m[3] !== 'Z') {
    const sign = m[3][0] === '-' ? -1 : 1;
    const [h, mi] = m[3].slice(1).split(':').map(Number);
    ms -= sign * (h! * 60 + mi!) * 60_000;
  }
  return BigInt(ms) * 1000n + BigInt(frac);
}

const deleteFilesOf = (entries: EngineEntry[]): EngineEntry[] => entries.filter((e) => e.content !== 0);

/** An assertion error as text, with the multiset difference of actual and expected arrays. */
function failureText(e: unknown): string {
  const err = e as { message?: string; actual?: unknown; expected?: unknown };
  let t = err?.message ?? String(e);
  if (err && Array.isArray(err.actual) && Array.isArray(err.expected)) {
    const a = err.actual.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    const b = err.expected.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    const onlyA = minus(a.map((x) => [x] as unknown as Row), b.map((x) => [x] as unknown as Row)).map((x) => x[0]);
    const onlyB = minus(b.map((x) => [x] as unknown as Row), a.map((x) => [x] as unknown as Row)).map((x) => x[0]);
    const show = (xs: unknown[]) => xs.slice(0, 25).map((x) => `\n      ${String(x)}`).join('') + (xs.length > 25 ? `\n      … ${xs.length - 25} more` : '');
    t += `\n    received ${a.length}, expected ${b.length}\n    received − expected (${onlyA.length}):${show(onlyA)}\n    expected − received (${onlyB.length}):${show(onlyB)}`;
  } else if (err && 'actual' in err && 'expected' in err && typeof err.actual !== 'boolean') {
    t += `\n    received: ${JSON.stringify(err.actual)?.slice(0, 3000)}\n    expected: ${JSON.stringify(err.expected)?.slice(0, 3000)}`;
  }
  return t;
}

/** Runs every check of a scenario even when one fails, then fails with all of them. */
class Failures {
  private readonly list: string[] = [];
  async check(what: string, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.list.push(`--- ${what}\n${failureText(e)}`);
    }
  }
  assertNone(): void {
    if (this.list.length > 0) throw new Error(`${this.list.length} check(s) failed:\n${this.list.join('\n\n')}`);
  }
}

export function defineMergeOnReadSuite(storage: 'local' | 's3'): void {
  describe(`change sets on merge-on-read and v3 tables, read back by Spark and PyIceberg (${storage})`, () => {
    let server: EngineServer;
    let ctx: IpsContext;
    let work: string;
    const timings: string[] = [];

    const sourceMeta = async (table: string): Promise<{ spark: TableMeta; pyiceberg: TableMeta }> => ({
      spark: await server.tableMeta('spark', table),
      pyiceberg: await server.tableMeta('pyiceberg', table),
    });

    beforeAll(async () => {
      const t0 = Date.now();
      const env = testEnv();
      work = await fs.mkdtemp(path.join(os.tmpdir(), `ips-mor-${storage}-`));
      const ns = `mor_${storage}_${process.pid}_${Date.now().toString(36)}`;
      const root = storage === 'local' ? `file://${work}` : `s3://${env.s3Bucket}/${ns}`;
      ctx = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage };
      server = EngineServer.start({ storage, warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns });
      await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool)); // another file may create them concurrently
      // Iceberg Java's JdbcCatalog may have created iceberg_tables without iceberg_type (schema V0)
      // in this shared database; commitSqlTable writes either layout (see suite.ts).
      const v = await server.call<Record<string, string>>('versions', { spark: true });
      timings.push(`setup (Spark session) ${((Date.now() - t0) / 1000).toFixed(1)}s: ${JSON.stringify(v)}`);
    });

    afterAll(async () => {
      await server?.close();
      await ctx?.pool.end();
      ctx?.io.close();
      if (work) await fs.rm(work, { recursive: true, force: true });
      process.stderr.write(`[mor ${storage}] ${timings.join('\n[mor ' + storage + '] ')}\n`);
    });

    const timed = (name: string, fn: () => Promise<void>) => async () => {
      const t0 = Date.now();
      try {
        await fn();
      } finally {
        timings.push(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      }
    };

    // ---- oracles (engines only)

    /**
     * The ICDC rows of a range without a compaction: the table as of `to` (deletes applied by the
     * engine) narrowed to the data files the range added (op_added_live_rows). Checked against
     * EXCEPT ALL as two relations, because copy-on-write carry-overs sit in the added files.
     */
    async function expectRowLevel(engine: Engine, T: string, from: string, to: string): Promise<Row[]> {
      const { rows } = await server.addedLiveRows(engine, T, from, to);
      const net = await server.exceptAll(engine, T, from, to);
      expect(minus(net, rows), `${T} (${from}, ${to}]: changed rows missing from the added files`).toEqual([]);
      const carried = minus(rows, net);
      expect(minus(carried, await server.rowsAt(engine, T, from)), `${T}: rows in added files that are neither new nor carried over`).toEqual([]);
      return rows;
    }

    /**
     * B: every inserted row (rows(to) EXCEPT ALL rows(from)) and every deleted row (rows(from)
     * EXCEPT ALL rows(to)), as the engine computes them, lies inside ips's range of `ts` and `id`,
     * unless the range is `unbounded`. A range whose snapshots added delete files cannot be
     * `exact` when rows were deleted (the deletes widen it by the data files they reference).
     */
    async function expectRangesCover(engine: Engine, T: string, from: string, to: string, b: IpsBatch, where: string, addedDeleteFiles: boolean): Promise<{ inserted: Row[]; deleted: Row[] }> {
      const inserted = await server.exceptAll(engine, T, from, to);
      const deleted = await server.exceptAll(engine, T, to, from);
      const problems: string[] = [];
      for (const [field, idx] of [['ts', 1], ['id', 0]] as const) {
        const r = b.json.ranges[field];
        if (!r) {
          problems.push(`${field}: no range reported`);
          continue;
        }
        if (r.flag === 'unbounded') continue;
        const shown = `${field} range ${JSON.stringify(r)}`;
        if (r.min === null || r.max === null) {
          if (inserted.length + deleted.length > 0) problems.push(`${shown}, yet the engine reports ${inserted.length} inserted and ${deleted.length} deleted rows`);
          continue;
        }
        const lo = field === 'ts' ? isoToMicros(String(r.min)) : BigInt(String(r.min));
        const hi = field === 'ts' ? isoToMicros(String(r.max)) : BigInt(String(r.max));
        const outside = (kind: string, rows: Row[]) => rows
          .filter((x) => BigInt(x[idx]) < lo || BigInt(x[idx]) > hi)
          .map((x) => `${kind} row id=${x[0]} ts=${new Date(Math.floor(x[1] / 1000)).toISOString()} (µs ${x[1]}, batch ${x[4]}) outside ${shown}`);
        const out = [...outside('inserted', inserted), ...outside('deleted', deleted)];
        problems.push(...out.slice(0, 8), ...(out.length > 8 ? [`… and ${out.length - 8} more ${field} values outside`] : []));
        if (deleted.length > 0 && addedDeleteFiles && r.flag === 'exact') problems.push(`${shown}: flag exact although the range deletes ${deleted.length} rows through delete files (expected conservative)`);
      }
      const ipsSide = `ips: snapshots ${JSON.stringify(b.json.snapshots.map((x) => `${x.operation}:${x.action}(+${x.added_files}/-${x.removed_files})`))}, ` +
        `${b.json.added_files.length} added files (${b.json.added_files.filter((f) => f.content !== 'data').length} delete files), removed ${JSON.stringify(b.json.removed_files.map((f) => `${f.content} ${f.file_path.split('/').pop()}`))}`;
      expect(problems, `${where}: ranges vs the engine's inserted (${inserted.length}) and deleted (${deleted.length}) rows; ${ipsSide}`).toEqual([]);
      return { inserted, deleted };
    }

    /**
     * C/E: what a file-level change set may hand over when a compaction sits inside the range:
     * never a row that is not in the table at `to` (deleted or duplicated), never fewer than the
     * net new rows, and nothing else than carry-overs (rows that exist at `from` too).
     */
    function expectHandOver(rows: Row[], o: { atTo: Row[]; atFrom: Row[]; net: Row[] }, where: string): void {
      expect(minus(rows, o.atTo), `${where}: ICDC rows not in rows(to) (deleted in the range, or handed over twice)`).toEqual([]);
      expect(minus(o.net, rows), `${where}: net new rows (rows(to) EXCEPT ALL rows(from)) missing from the ICDC table`).toEqual([]);
      expect(minus(minus(rows, o.net), o.atFrom), `${where}: ICDC rows that are neither new nor carried over from rows(from)`).toEqual([]);
    }

    /** Reads an ICDC table with each reader; no reader may fail. */
    async function readAll(ref: IcdcRef, readers: IcdcReader[], where: string): Promise<Record<string, Row[]>> {
      // dv: PyIceberg's entries come from the manifests (its inspect.entries fails on DVs).
      const reads = await server.readIcdc(ref.ident, ref.metadataLocation, { readers, dv: true });
      const out: Record<string, Row[]> = {};
      for (const [reader, v] of Object.entries(reads)) {
        expect(v, `${where} [${reader}]: engine error`).not.toHaveProperty('error');
        out[reader] = (v as IcdcView).rows;
      }
      return out;
    }

    // ------------------------------------------------------------------------------------------
    // A (+ B, F). Spark merge-on-read, partitioned by day, three data files per day partition.
    //   s0 append b1 | s1 append b2 | s2 append b3 | s3 DELETE id % 5 = 0 (every file of both days)
    //   s4 UPDATE two rows of b2's day-0 file (its DV is replaced) | s5 DELETE two rows (b1, b3): delete-only
    // v3: s3 writes one Puffin file per partition holding a DV per data file; s4/s5 replace DVs.
    // v2: write.delete.granularity=partition: one position-delete file per partition covering
    //     several data files, hence without referenced_data_file (file_path bounds span them).
    interface MorTable {
      T: string;
      fv: 2 | 3;
      s: [string, string, string, string, string, string];
      history: RangeSnapshotFiles[];
    }
    const morTables = new Map<number, Promise<MorTable>>();
    const morTable = (fv: 2 | 3): Promise<MorTable> => {
      let p = morTables.get(fv);
      if (!p) {
        p = (async () => {
          const T = `spark_mor_v${fv}`;
          await server.create('spark', T, 'day', {
            'format-version': String(fv), ...MOR, ...FULL_METRICS, ...(fv === 2 ? { 'write.delete.granularity': 'partition' } : {}),
          });
          const gen = new RowGen(100 + fv);
          const batch = (b: number) => [0, 1].flatMap((d) => gen.rows(d, 20, b));
          const b1 = batch(1);
          const s0 = await server.append('spark', T, b1);
          const b2 = batch(2);
          const s1 = await server.append('spark', T, b2);
          const b3 = batch(3);
          const s2 = await server.append('spark', T, b3);
          const s3 = (await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 5 = 0'])).snapshot_id!;
          const day0 = (rows: Row[]) => rows.filter((r) => r[1] < DAY0_US + DAY_US && r[0] % 5 !== 0);
          const upd = day0(b2).slice(0, 2).map((r) => r[0]);
          const s4 = (await server.sparkSql(T, [`UPDATE {t} SET qty = qty + 1000, name = concat(name, '-u4') WHERE id IN (${upd.join(', ')})`])).snapshot_id!;
          const del = [b1.filter((r) => r[1] >= DAY0_US + DAY_US && r[0] % 5 !== 0)[0]![0], day0(b3)[0]![0]];
          const s5 = (await server.sparkSql(T, [`DELETE FROM {t} WHERE id IN (${del.join(', ')})`])).snapshot_id!;
          const history = await server.rangeFiles('spark', T, s0, s5, { dv: true });
          expect(history.map((h) => h.operation), `${T}: operations of (s0, s5]`).toEqual(['append', 'append', 'delete', 'overwrite', 'delete']);
          return { T, fv, s: [s0, s1, s2, s3, s4, s5], history };
        })();
        morTables.set(fv, p);
      }
      return p;
    };

    for (const fv of [3, 2] as const) {
      const name = fv === 3
        ? 'A/B spark v3 merge-on-read: several DVs per Puffin file, DVs replaced later; ICDC rows, DV entries and ranges'
        : 'A/B spark v2 merge-on-read: partition-scoped position deletes without referenced data file; ICDC rows, entries and ranges';
      it(name, timed(name, async () => {
        const { T, s: [s0, , s2, s3, s4, s5], history } = await morTable(fv);
        const snap = (id: string) => history.find((h) => h.snapshot_id === id)!;
        // Engine evidence that the table has what the scenario is about.
        const s3Deletes = deleteFilesOf(snap(s3).added);
        if (fv === 3) {
          expect(s3Deletes.every((e) => e.file_format === 'puffin'), `${T}: s3 wrote DVs (puffin): ${JSON.stringify(s3Deletes)}`).toBe(true);
          const perPuffin = new Map<string, number>();
          for (const e of s3Deletes) perPuffin.set(e.file_path, (perPuffin.get(e.file_path) ?? 0) + 1);
          expect(Math.max(...perPuffin.values()), `${T}: Spark wrote several DVs into one Puffin file (entries of s3)`).toBeGreaterThanOrEqual(2);
          expect(s3Deletes.every((e) => e.content_offset !== null && e.referenced_data_file !== null), `${T}: every DV has an offset and a referenced data file`).toBe(true);
          // s4 and s5 replace DVs that s3 wrote into a shared Puffin file.
          const s3Keys = new Set(s3Deletes.map(entryKey));
          for (const sid of [s4, s5]) {
            const replaced = deleteFilesOf(snap(sid).removed).filter((e) => s3Keys.has(entryKey(e)));
            expect(replaced.length, `${T}: snapshot ${sid} replaced a DV of s3 (removed entries ${JSON.stringify(snap(sid).removed)})`).toBeGreaterThanOrEqual(1);
            expect(replaced.every((e) => (perPuffin.get(e.file_path) ?? 0) >= 2), `${T}: the replaced DV shared its Puffin file`).toBe(true);
          }
        } else {
          expect(s3Deletes.length, `${T}: s3 wrote position delete files`).toBeGreaterThan(0);
          expect(s3Deletes.every((e) => e.file_format === 'parquet' && e.content === 1)).toBe(true);
          expect(s3Deletes.some((e) => e.referenced_data_file === null), `${T}: a position-delete file covers several data files (no referenced_data_file): ${JSON.stringify(s3Deletes)}`).toBe(true);
        }
        expect(snap(s5).added.every((e) => e.content !== 0), `${T}: s5 only deletes`).toBe(true);

        // PyIceberg 0.12 reads the source (v3 DVs included) exactly as Spark does: the engine
        // capability the PyIceberg readers of the ICDC table below rely on.
        expect(bag(await server.rowsAt('pyiceberg', T, s5)), `${T}: PyIceberg reads the source as Spark does`).toEqual(bag(await server.rowsAt('spark', T, s5)));
        // Engine limit: PyIceberg 0.12's metadata tables that list delete files fail on DVs (a DV
        // entry has no column_sizes: inspect.py does dict(None)). Recorded on the source; the ICDC
        // table's may fail with exactly the same error, and nothing else may fail.
        const pyTables = await server.call<Record<string, number | string>>('py_metadata_tables', { table: T });
        const pyFailing = Object.entries(pyTables).filter(([, n]) => typeof n === 'string');
        if (fv === 3) {
          expect(pyFailing.map(([t]) => t).sort(), `${T}: PyIceberg 0.12 metadata tables failing on DVs: ${JSON.stringify(pyFailing)}`).toEqual(PY_DV_FAILING);
          expect(pyFailing.every(([, n]) => /NoneType' object is not iterable/.test(String(n))), JSON.stringify(pyFailing)).toBe(true);
        } else {
          expect(pyFailing, `${T}: PyIceberg loads every metadata table of a v2 merge-on-read table`).toEqual([]);
        }

        const meta = await sourceMeta(T);
        // Ranges: (s0, s5] both deletes and the update; (s3, s5] only the second stretch;
        // (s4, s5] and (s2, s3] delete-only (the latter: the shared-Puffin DVs alone).
        const ranges: [string, string, string, IcdcReader[]][] = [
          [s0, s5, 'r1', ['py_catalog', 'py_static', 'spark_catalog', 'spark_path']],
          [s3, s5, 'r2', ['py_catalog', 'spark_catalog']],
          [s4, s5, 'r3', ['py_catalog', 'spark_catalog']],
          [s2, s3, 'r4', ['py_catalog', 'spark_catalog']],
        ];
        const failures = new Failures();
        for (const [from, to, tag, readers] of ranges) {
          const where = `${T} ${tag} (${from}, ${to}]`;
          const expected = await expectRowLevel('spark', T, from, to);
          expect(bag((await server.addedLiveRows('pyiceberg', T, from, to, { dv: true })).rows), `${where}: PyIceberg's oracle agrees with Spark's`).toEqual(bag(expected));
          const rf = await server.rangeFiles('spark', T, from, to, { dv: true });
          const files = expectedIcdcFilesByKey(rf);
          const b = await ipsBatch(ctx, T, from, to, `${T}_${tag}_icdc`);
          // Each check runs even when an earlier one failed, so one run reports them all.
          for (const reader of readers) {
            await failures.check(`ICDC read-back ${where} [${reader}]`, () => expectIcdc(server, {
              batch: refOf(b), expected, sourceMeta: meta, files, version: 1, readers: [reader], dv: true, where, engineLimits: { py: pyTables },
            }));
          }
          await failures.check(`ranges ${where}`, () => expectRangesCover('spark', T, from, to, b, where, rf.some((x) => x.added.some((e) => e.content !== 0))));
        }
        failures.assertNone();
      }), LONG);
    }

    // F. ips inspect --json lists each DV with its offset, size and referenced data file, equal to
    // Spark's entries table, snapshot by snapshot (added and removed).
    const inspect = 'F spark v3: ips inspect --json lists every DV with content_offset, content_size_in_bytes, referenced_data_file as Spark\'s entries';
    it(inspect, timed(inspect, async () => {
      const { T, history } = await morTable(3);
      const env = testEnv();
      const r = await runIps(ctx, ['inspect', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout) as { snapshots: { snapshot_id: string; added_files: Record<string, unknown>[]; removed_files: Record<string, unknown>[] }[] };
      const norm = (v: unknown) => (v === undefined || v === null ? null : String(v));
      const ipsDv = (f: Record<string, unknown>) => ({
        file_path: String(f['file_path']), record_count: String(f['record_count']), file_format: String(f['file_format']).toLowerCase(),
        referenced_data_file: norm(f['referenced_data_file']), content_offset: norm(f['content_offset']), content_size_in_bytes: norm(f['content_size_in_bytes']),
      });
      const engineDv = (e: EngineEntry) => ({
        file_path: e.file_path, record_count: e.record_count, file_format: String(e.file_format).toLowerCase(),
        referenced_data_file: e.referenced_data_file ?? null, content_offset: e.content_offset ?? null, content_size_in_bytes: e.content_size_in_bytes ?? null,
      });
      const order = (xs: ReturnType<typeof engineDv>[]) => [...xs].sort((a, b) => (`${a.file_path}#${a.content_offset}` < `${b.file_path}#${b.content_offset}` ? -1 : 1));
      let dvs = 0;
      for (const h of history) {
        const s = j.snapshots.find((x) => x.snapshot_id === h.snapshot_id);
        expect(s, `snapshot ${h.snapshot_id} in ips inspect`).toBeDefined();
        for (const side of ['added', 'removed'] as const) {
          const want = order(deleteFilesOf(h[side]).map(engineDv));
          dvs += want.length;
          const got = order(s![`${side}_files`].filter((f) => f['content'] !== 'data').map(ipsDv));
          expect(got, `${T} snapshot ${h.snapshot_id} (${h.operation}): ${side} DVs (path, offset, size, referenced data file) as in Spark's entries`).toEqual(want);
        }
      }
      expect(dvs, 'the table has DVs to compare').toBeGreaterThan(3);
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // B with equality deletes. Neither Spark SQL nor PyIceberg 0.12 writes them: the Iceberg Java
    // API in the Spark session does (icdc_engines.py java_eq_delete).
    //   s2: on qty (day 0): the range fields ts and id are not equality fields, so ips must widen
    //       by the data files the deletes apply to (same partition, lower data sequence number);
    //   s3: on id (day 1): the delete file's own id bounds can bound id; ts still needs the files.
    // ids start at 5e9 so that py4j hands the Java writer longs.
    const eq = 'B spark v2 equality deletes (Iceberg Java API): ranges cover the deleted rows; ICDC rows with the deletes applied (Spark readers)';
    it(eq, timed(eq, async () => {
      const T = 'spark_eq_deletes';
      await server.create('spark', T, 'day', { ...MOR, ...FULL_METRICS });
      const gen = new RowGen(500);
      const big = (rows: Row[]): Row[] => rows.map(([id, ...rest]) => [5_000_000_000 + id, ...rest]);
      const b1 = big([0, 1].flatMap((d) => gen.rows(d, 20, 1)));
      const s0 = await server.append('spark', T, b1);
      const b2 = big([0, 1].flatMap((d) => gen.rows(d, 20, 2)));
      const s1 = await server.append('spark', T, b2);
      const day0 = (rows: Row[]) => rows.filter((r) => r[1] < DAY0_US + DAY_US);
      const day1 = (rows: Row[]) => rows.filter((r) => r[1] >= DAY0_US + DAY_US);
      const qtys = [...day0(b1).slice(0, 3), ...day0(b2).slice(0, 3)].map((r) => r[3]!);
      const s2 = (await server.call<{ snapshot_id: string }>('java_eq_delete', { table: T, column: 'qty', values: qtys, day: Math.floor(DAY0_US / DAY_US) })).snapshot_id;
      const ids = [...day1(b1).slice(0, 2), ...day1(b2).slice(0, 2)].map((r) => r[0]);
      const s3 = (await server.call<{ snapshot_id: string }>('java_eq_delete', { table: T, column: 'id', values: ids, day: Math.floor(DAY0_US / DAY_US) + 1 })).snapshot_id;
      // Engine evidence: an equality delete file, which Spark applies (6 rows gone) and PyIceberg 0.12 cannot read.
      const rf = await server.rangeFiles('spark', T, s1, s2, { dv: true });
      expect(rf.map((x) => [x.operation, x.added.map((e) => e.content)]), `${T}: one equality delete file`).toEqual([['delete', [2]]]);
      const gone = await server.exceptAll('spark', T, s2, s1);
      expect(gone.map((r) => r[0]).sort((a, b) => a - b), `${T}: Spark applies the equality deletes on qty`).toEqual([...day0(b1).slice(0, 3), ...day0(b2).slice(0, 3)].map((r) => r[0]).sort((a, b) => a - b));
      expect((await server.exceptAll('spark', T, s3, s2)).map((r) => r[0]).sort((a, b) => a - b), `${T}: Spark applies the equality deletes on id`).toEqual([...ids].sort((a, b) => a - b));
      await expect(server.rowsAt('pyiceberg', T, s2), 'engine limit: PyIceberg 0.12 reads no equality deletes').rejects.toThrow(/does not yet support equality deletes/);
      const meta = await sourceMeta(T);
      const failures = new Failures();
      for (const [from, to, tag] of [[s0, s3, 'r1'], [s1, s2, 'r2'], [s2, s3, 'r3'], [s1, s3, 'r4']] as const) {
        const where = `${T} ${tag} (${from}, ${to}]`;
        const expected = await expectRowLevel('spark', T, from, to);
        const rfr = await server.rangeFiles('spark', T, from, to, { dv: true });
        const b = await ipsBatch(ctx, T, from, to, `${T}_${tag}_icdc`);
        for (const reader of ['spark_catalog', 'spark_path'] as const) {
          await failures.check(`ICDC read-back ${where} [${reader}]`, () => expectIcdc(server, {
            batch: refOf(b), expected, sourceMeta: meta, files: expectedIcdcFilesByKey(rfr), version: 1, readers: [reader], dv: true, where,
          }));
        }
        await failures.check(`ranges ${where}`, () => expectRangesCover('spark', T, from, to, b, where, true));
      }
      failures.assertNone();
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // C (+ B). A compaction inside the range, then changes against its outputs:
    //   s0 append b1 (from) | appends b2, b3, b4 (small files) | rewrite_data_files (replace)
    //   | DELETE id % 4 = 1 against the compaction outputs (to): v3 DVs, v2 position deletes, or
    //   copy-on-write (rewrites the outputs).
    // `_day0`: the DELETE touches only day 0's compaction output; day 1's output is left alone.
    const variants = [
      { tag: 'v3_dv', fv: 3, props: MOR, content: 'DV', where: 'id % 4 = 1' },
      { tag: 'v3_dv_day0', fv: 3, props: MOR, content: 'DV', where: `id % 4 = 1 AND ts < timestamp_micros(${DAY0_US + DAY_US})` },
      { tag: 'v2_pos', fv: 2, props: MOR, content: 'position deletes', where: 'id % 4 = 1' },
      { tag: 'v2_cow', fv: 2, props: COW, content: 'copy-on-write', where: 'id % 4 = 1' },
    ] as const;
    for (const v of variants) {
      const name = `C/B spark ${v.tag}: appends, rewrite_data_files, then a ${v.content} DELETE on the compaction output, all in one range`;
      it(name, timed(name, async () => {
        const T = `spark_compact_${v.tag}`;
        await server.create('spark', T, 'day', { 'format-version': String(v.fv), ...v.props, ...FULL_METRICS });
        const gen = new RowGen(200 + v.fv + (v.props === COW ? 10 : 0));
        const from = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 10, 1)));
        for (let b = 2; b <= 4; b++) await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 10, b)));
        const rewrite = (await server.sparkSql(T, [REWRITE_ALL(T)])).snapshot_id!;
        const to = (await server.sparkSql(T, [`DELETE FROM {t} WHERE ${v.where}`])).snapshot_id!;

        // Engine evidence: the replace rewrote the range's appends, and the DELETE targets its outputs.
        const rf = await server.rangeFiles('spark', T, from, to, { dv: true });
        expect(rf.map((x) => x.operation), `${T}: operations`).toEqual(['append', 'append', 'append', 'replace', v.props === COW ? 'overwrite' : 'delete']);
        const outputs = new Set(rf[3]!.added.filter((e) => e.content === 0).map((e) => e.file_path));
        // The rows the DELETE removes all sit in compaction outputs (Spark's _file at the replace).
        const hit = (await server.sparkSql(T, [`SELECT DISTINCT _file FROM {t} VERSION AS OF ${rewrite} WHERE ${v.where}`])).result.map((r) => r[0]!);
        expect(hit.length > 0 && hit.every((f) => outputs.has(f)), `${T}: the DELETE targets compaction outputs only: ${JSON.stringify(hit)} vs ${JSON.stringify([...outputs])}`).toBe(true);
        if (v.tag.endsWith('_day0')) expect([hit.length, outputs.size], `${T}: one output (day 0) of two is touched`).toEqual([1, 2]);
        const last = rf[4]!;
        if (v.props === COW) {
          expect(last.removed.some((e) => outputs.has(e.file_path)), `${T}: the copy-on-write DELETE rewrote a compaction output`).toBe(true);
        } else {
          const dels = deleteFilesOf(last.added);
          expect(dels.length, `${T}: the DELETE wrote delete files`).toBeGreaterThan(0);
          if (v.fv === 3) {
            expect(dels.every((e) => e.file_format === 'puffin' && outputs.has(e.referenced_data_file!)), `${T}: its DVs reference compaction outputs: ${JSON.stringify(dels.map((e) => e.referenced_data_file))}`).toBe(true);
          }
        }

        const o = {
          atTo: await server.rowsAt('spark', T, to),
          atFrom: await server.rowsAt('spark', T, from),
          net: await server.exceptAll('spark', T, from, to),
        };
        expect(o.net.length, `${T}: the range adds rows (b2..b4 minus the deleted ones)`).toBeGreaterThan(0);
        expect(bag(await server.rowsAt('pyiceberg', T, to)), `${T}: PyIceberg reads the source as Spark does`).toEqual(bag(o.atTo));
        const b = await ipsBatch(ctx, T, from, to, `${T}_icdc`);
        const failures = new Failures();
        const attempt = (what: string, f: () => unknown) => failures.check(what, f);
        await attempt(`${T} (${from}, ${to}]: ICDC rows`, async () => {
          const reads = await readAll(refOf(b), ['py_catalog', 'spark_catalog', 'spark_path'], `${T} (${from}, ${to}]`);
          for (const [reader, rows] of Object.entries(reads)) expectHandOver(rows, o, `${T} (${from}, ${to}] [${reader}]`);
        });
        await attempt(`${T} (${from}, ${to}]: ranges`, () => expectRangesCover('spark', T, from, to, b, `${T} (${from}, ${to}]`, rf.some((x) => x.added.some((e) => e.content !== 0))));
        // (rewrite, to]: only the DELETE (delete-only for merge-on-read).
        const b2 = await ipsBatch(ctx, T, rewrite, to, `${T}_del_icdc`);
        const rf2 = await server.rangeFiles('spark', T, rewrite, to, { dv: true });
        await attempt(`${T} (${rewrite}, ${to}]: ranges`, () => expectRangesCover('spark', T, rewrite, to, b2, `${T} (${rewrite}, ${to}] (the DELETE alone)`, rf2.some((x) => x.added.some((e) => e.content !== 0))));
        await attempt(`${T} (${rewrite}, ${to}]: ICDC rows`, async () => {
          const o2 = { atTo: o.atTo, atFrom: await server.rowsAt('spark', T, rewrite), net: await server.exceptAll('spark', T, rewrite, to) };
          const reads = await readAll(refOf(b2), ['py_catalog', 'spark_catalog'], `${T} (${rewrite}, ${to}]`);
          for (const [reader, rows] of Object.entries(reads)) expectHandOver(rows, o2, `${T} (${rewrite}, ${to}] [${reader}]`);
        });
        failures.assertNone();
      }), LONG);
    }

    // ------------------------------------------------------------------------------------------
    // D. A compaction that applied deletes (300 rows in, 270 out) is a legit compaction.
    for (const fv of [2, 3] as const) {
      const name = `D spark v${fv}: rewrite_data_files that applies merge-on-read deletes (300 rows in, 270 out) carries no "labelled as compaction" warning`;
      it(name, timed(name, async () => {
        const T = `spark_compact_deletes_v${fv}`;
        await server.create('spark', T, null, { 'format-version': String(fv), ...MOR, ...FULL_METRICS });
        const gen = new RowGen(300 + fv);
        const s1 = await server.append('spark', T, gen.rows(0, 100, 1));
        for (let b = 2; b <= 3; b++) await server.append('spark', T, gen.rows(b - 1, 100, b));
        const del = (await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 10 = 0'])).snapshot_id!;
        const rewrite = (await server.sparkSql(T, [REWRITE_ALL(T)])).snapshot_id!;
        // Engine evidence: a replace that read 300 rows and wrote the 270 live ones.
        const info = await server.snapshots('spark', T);
        const r = info.snapshots.find((x) => x.snapshot_id === rewrite)!;
        expect([r.operation, r.summary['deleted-records'], r.summary['added-records']], `${T}: the replace summary ${JSON.stringify(r.summary)}`).toEqual(['replace', '300', '270']);
        expect(await server.exceptAll('spark', T, del, rewrite), 'the compaction changed no row (to EXCEPT ALL from)').toEqual([]);
        expect(await server.exceptAll('spark', T, rewrite, del), 'the compaction changed no row (from EXCEPT ALL to)').toEqual([]);

        const failures: string[] = [];
        const soft = new Failures();
        for (const [from, to, tag] of [[del, rewrite, 'c'], [s1, rewrite, 'all']] as const) {
          const b = await ipsBatch(ctx, T, from, to, `${T}_${tag}_icdc`);
          const d = b.cs.snapshots.find((x) => x.snapshot.snapshotId.toString() === rewrite);
          const labelled = b.cs.warnings.filter((w) => LABELLED.test(w));
          if (labelled.length > 0 || !d) failures.push(`(${from}, ${to}]: replace decision ${JSON.stringify(d ? { action: d.action, reason: d.reason } : null)}, warnings ${JSON.stringify(b.cs.warnings)}`);
          if (tag === 'c') {
            const reads = await readAll(refOf(b), ['py_catalog', 'spark_catalog'], `${T} (${from}, ${to}]`);
            for (const [reader, rows] of Object.entries(reads)) if (rows.length !== 0) failures.push(`(${from}, ${to}] [${reader}]: the compaction alone handed over ${rows.length} rows`);
          } else {
            const o = { atTo: await server.rowsAt('spark', T, to), atFrom: await server.rowsAt('spark', T, from), net: await server.exceptAll('spark', T, from, to) };
            const reads = await readAll(refOf(b), ['py_catalog', 'spark_catalog'], `${T} (${from}, ${to}]`);
            for (const [reader, rows] of Object.entries(reads)) await soft.check(`${T} (${from}, ${to}] [${reader}]`, () => expectHandOver(rows, o, `${T} (${from}, ${to}] [${reader}]`));
          }
        }
        expect(failures, failures.join('\n')).toEqual([]);
        soft.assertNone();
      }), LONG);
    }

    // The negative control of D: a `replace` that loses rows without applying any delete is still
    // reported as a mislabelled rewrite (Iceberg Java RewriteFiles: two files in, a copy of one out).
    const lossy = 'D spark v2: a replace that loses rows without deletes (Java RewriteFiles) is still reported as "labelled as compaction"';
    it(lossy, timed(lossy, async () => {
      const T = 'spark_lossy_rewrite';
      await server.create('spark', T, null, { ...MOR, ...FULL_METRICS });
      const gen = new RowGen(350);
      await server.append('spark', T, gen.rows(0, 50, 1));
      const s2 = await server.append('spark', T, gen.rows(1, 50, 2));
      const r = await server.call<{ snapshot_id: string; records_in: number; records_out: number }>('java_lossy_rewrite', { table: T });
      const info = await server.snapshots('spark', T);
      const rs = info.snapshots.find((x) => x.snapshot_id === r.snapshot_id)!;
      expect([rs.operation, rs.summary['deleted-records'], rs.summary['added-records']], `${T}: the replace summary ${JSON.stringify(rs.summary)}`).toEqual(['replace', '100', '50']);
      expect((await server.exceptAll('spark', T, r.snapshot_id, s2)).length, 'the replace lost 50 rows').toBe(50);
      const b = await ipsBatch(ctx, T, s2, r.snapshot_id, `${T}_icdc`);
      expect(b.cs.warnings.filter((w) => LABELLED.test(w)), `${T}: warnings ${JSON.stringify(b.cs.warnings)}`).toHaveLength(1);
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // E. --allow-sequence-fallback on a PyIceberg table whose snapshots around `from` expired,
    //    with a Spark compaction after `from`: the rows appended after `from` are all handed over.
    const fallback = 'E pyiceberg appends + spark rewrite_data_files, PyIceberg expiry past from: ips changes --allow-sequence-fallback hands over every row appended after from';
    it(fallback, timed(fallback, async () => {
      const T = 'py_fallback_compact';
      await server.create('pyiceberg', T, null, FULL_METRICS);
      const gen = new RowGen(400);
      const a1 = await server.append('pyiceberg', T, gen.rows(0, 10, 1));
      const a2 = await server.append('pyiceberg', T, gen.rows(1, 10, 2));
      const a3 = await server.append('pyiceberg', T, gen.rows(2, 10, 3));
      const rewrite = (await server.sparkSql(T, [REWRITE_ALL(T)])).snapshot_id!;
      const a4 = await server.append('pyiceberg', T, gen.rows(3, 10, 4));
      const from = a2;
      const to = a4;
      const before = await server.snapshots('pyiceberg', T);
      expect(before.snapshots.find((x) => x.snapshot_id === rewrite)?.operation, 'Spark compacted the PyIceberg table').toBe('replace');
      const fromSeq = before.snapshots.find((x) => x.snapshot_id === from)!.sequence_number;
      // The oracle, recorded while the history still exists.
      const o = { atTo: await server.rowsAt('pyiceberg', T, to), atFrom: await server.rowsAt('pyiceberg', T, from), net: await server.exceptAll('pyiceberg', T, from, to) };
      expect(bag(o.net), 'batches 3 and 4 are new').toEqual(bag(o.atTo.filter((r) => r[4] >= 3)));
      expect(bag(await server.exceptAll('spark', T, from, to)), 'Spark agrees').toEqual(bag(o.net));

      await server.call('py_expire', { table: T, snapshot_ids: [a1, a2, a3] });
      expect(await rangeOutcome(ctx, T, from, to), '(from, to] after the expiry').not.toBe('OK');
      expect(bag(await server.rowsAt('pyiceberg', T, to)), 'the table at `to` is unchanged by the expiry').toEqual(bag(o.atTo));

      const env = testEnv();
      const icdc = `${T}_icdc`;
      const cli = await runIps(ctx, [
        'changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--from', from, '--to', to,
        '--allow-sequence-fallback', '--from-sequence-number', fromSeq, '--range', 'ts,id',
        '--icdc', `${ctx.ns}.${icdc}`, '--icdc-location', icdcLocation(ctx, icdc), '--icdc-catalog', env.pgUrl, '--icdc-catalog-name', ICDC_CATALOG, '--json',
      ]);
      expect(cli.code, `ips changes --allow-sequence-fallback failed:\n${cli.stderr}`).toBe(0);
      const j = JSON.parse(cli.stdout) as { fallback?: unknown; warnings: string[]; icdc: { table: string; metadata_location: string; snapshot_id: string } };
      expect(j.fallback, 'the answer says it came from the fallback').toBeDefined();
      const reads = await readAll({ ident: j.icdc.table, metadataLocation: j.icdc.metadata_location, snapshotId: j.icdc.snapshot_id }, ['py_catalog', 'spark_catalog'], `${T} fallback`);
      const failures = new Failures();
      for (const [reader, rows] of Object.entries(reads)) {
        await failures.check(`${T} fallback (${from}, ${to}] [${reader}] (warnings: ${JSON.stringify(j.warnings)})`, () => {
          expectHandOver(rows, o, `${T} fallback (${from}, ${to}] [${reader}]`);
          // Carry-over rows (batches 1, 2 in the compaction output) are allowed but must be reported.
          if (minus(rows, o.net).length > 0) expect(j.warnings.some((w) => /compaction/i.test(w)), `${T} [${reader}]: carry-over rows reported in warnings ${JSON.stringify(j.warnings)}`).toBe(true);
        });
      }
      failures.assertNone();
    }), LONG);

    // ------------------------------------------------------------------------------------------
    // G. Manifest churn. ips finds each snapshot's manifests in the range's newest manifest list
    //    when that list still names them all (src/capture/own-manifests.ts), and reads the
    //    snapshot's own list otherwise. Spark merges manifests on append (min-count-to-merge 3),
    //    rewrite_manifests replaces them, a copy-on-write DELETE rewrites files: every range must
    //    plan as the engine's `entries` of each snapshot say, and as planning from every
    //    snapshot's own list (Iceberg Java's way) does, in both plan forms.
    const churn = 'G spark: merged appends, rewrite_manifests and a copy-on-write delete: every range plans from the newest manifest list as from each snapshot\'s own, and as the engine\'s entries say';
    it(churn, timed(churn, async () => {
      const T = 'spark_manifest_churn';
      await server.create('spark', T, null, { ...COW, 'commit.manifest-merge.enabled': 'true', 'commit.manifest.min-count-to-merge': '3' });
      const gen = new RowGen(700);
      const ids: string[] = [];
      for (let b = 1; b <= 4; b++) ids.push(await server.append('spark', T, gen.rows(b - 1, 20, b)));
      ids.push((await server.sparkSql(T, [`CALL src.system.rewrite_manifests('{ns}.${T}')`])).snapshot_id!);
      ids.push((await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 7 = 0'])).snapshot_id!);
      for (let b = 5; b <= 7; b++) ids.push(await server.append('spark', T, gen.rows(b - 1, 20, b)));
      const info = await server.snapshots('spark', T);
      expect(info.snapshots.map((x) => x.snapshot_id), `${T}: one snapshot per step`).toEqual(ids);
      expect(info.snapshots[4]!.operation, 'rewrite_manifests committed a replace').toBe('replace');

      // The engine's own entries of every snapshot after the first, read once.
      const perSnapshot = await server.rangeFiles('spark', T, ids[0]!, ids.at(-1)!);
      const norm = (p: string): string => p.replace(/^file:(\/\/)?(?=\/)/, 'file://');
      const md = await loadSource(ctx, T);
      let fewerLists = 0;
      for (let i = 0; i < ids.length; i++) {
        for (let j = i + 1; j < ids.length; j++) {
          const where = `${T} (${ids[i]}, ${ids[j]}] (steps ${i + 1}..${j + 1})`;
          const range = resolveRange(md, { from: BigInt(ids[i]!), to: BigInt(ids[j]!) });
          const plan = async (newestList: boolean, compact: boolean) => {
            const reader = new ManifestReader(ctx.io);
            const cs = await computeChangeSet(reader, range, DEFAULT_POLICY, md, { newestList, ...(compact ? { compact: { stats: { fields: 'none' as const } } } : {}) });
            return { cs, lists: reader.manifestListsRead };
          };
          const [fast, slow, fastCompact, slowCompact] = [await plan(true, false), await plan(false, false), await plan(true, true), await plan(false, true)];
          expect(changeSetShape(fast.cs), `${where}: from the newest list vs each snapshot's own`).toEqual(changeSetShape(slow.cs));
          expect(changeSetShape(fastCompact.cs), `${where}, compact plan: from the newest list vs each snapshot's own`).toEqual(changeSetShape(slowCompact.cs));
          if (fast.lists < slow.lists) fewerLists++;
          // The engine: files added in the range and live at its end; files it removed that were there before.
          const range0 = perSnapshot.filter((x) => ids.indexOf(x.snapshot_id) > i && ids.indexOf(x.snapshot_id) <= j);
          const added = [...expectedIcdcFilesByKey(range0).keys()].sort();
          const addedInRange = new Set(range0.flatMap((x) => x.added.map(entryKey)));
          const removed = [...new Set(range0.filter((x) => x.operation !== 'replace').flatMap((x) => x.removed.map(entryKey)).filter((k) => !addedInRange.has(k)))].sort();
          expect({ added: fast.cs.added.map((c) => norm(changeKey(c))).sort(), removed: fast.cs.removed.map((c) => norm(changeKey(c))).sort() }, `${where}: as the engine's entries say`)
            .toEqual({ added, removed });
        }
      }
      // Both ways were taken: some snapshots answered from the newest list, some from their own.
      const whole = resolveRange(md, { from: BigInt(ids[0]!), to: BigInt(ids.at(-1)!) });
      const answered = await ownManifestsFromNewest(new ManifestReader(ctx.io), whole, { compact: false });
      expect(answered.size, `${T}: snapshots answered from the newest list`).toBeGreaterThan(0);
      expect(answered.size, `${T}: snapshots whose manifests were merged or rewritten away are read from their own lists`).toBeLessThan(whole.snapshots.length);
      expect(fewerLists, `${T}: ranges planned with fewer manifest lists read`).toBeGreaterThan(0);
    }), LONG);
  });
}
