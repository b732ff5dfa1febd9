// `ips demo backfill` with Spark in it: every backfill chunk of stage 1 is Spark's MERGE INTO
// over the chunk's own ICDC table (the backfill's batch series, not the live one), into the daily
// table in a JDBC catalog on the test PostgreSQL. Stage 2 (DuckDB) is started by ips's ordinary
// incremental triggers when Spark's commits show up on the daily table. Checked against PyIceberg
// + pyarrow's own recomputation of both stages with the new logic (backfill_demo_check.py), and
// against the DuckDB recomputation the demo runs.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PythonWorker } from '../setup/python-worker.js';
import { runPython } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { runBackfillDemo } from '../../src/playback/backfill-demo.js';
import type { BackfillStageOverride } from '../../src/playback/runner.js';
import { parsePlaybackOptions, TABLES } from '../../src/playback/model.js';
import { SqlWritableCatalog } from '../../src/catalog/table-catalog.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { readMetadataFile } from '../../src/catalog/table.js';

const CATALOG = 'ips_demo';
const DAYS = 4;
const BACKFILL_DAYS = 3;

interface MergeResult {
  snapshot_id: string;
  operation: string;
  summary: Record<string, string>;
  icdc_rows: number;
  chunk_rows: number;
  icdc_files: number;
}

describe("ips demo backfill with Spark's MERGE INTO over each chunk's ICDC table", () => {
  const options = parsePlaybackOptions({ days: DAYS, rowsPerDay: 1200, profiles: 120 });
  let tmp: string;
  let spark: PythonWorker;
  let stateDb: Awaited<ReturnType<typeof createPgDatabase>>;
  let catalogDb: Awaited<ReturnType<typeof createPgDatabase>>;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-spark-'));
    stateDb = await createPgDatabase('backfill_spark_state');
    catalogDb = await createPgDatabase('backfill_spark_catalog');
    const u = new URL(catalogDb.url);
    spark = PythonWorker.start('spark_merge.py', ['test/playback/spark_merge.py',
      '--jdbc-url', `jdbc:postgresql://${u.hostname}:${u.port || 5432}${u.pathname}`,
      '--user', decodeURIComponent(u.username), '--password', decodeURIComponent(u.password),
      '--catalog', CATALOG, '--warehouse', path.join(tmp, 'warehouse'),
    ]);
    await spark.ready;
  }, 300_000);

  afterAll(async () => {
    await spark?.close();
    await stateDb?.drop();
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('Spark re-runs stage 1 per chunk, stage 2 follows, and both tables equal a recomputation with the new logic', async () => {
    const merges: (MergeResult & { icdc: string; min: string; max: string })[] = [];
    const sparkChunk: BackfillStageOverride = async ({ icdc, icdcMetadataLocation, target, range, ctx }) => {
      const m = await spark.call<MergeResult>('backfill_merge', {
        icdc: icdcMetadataLocation, target, min: range.min, max: range.max, console_millis_from: ctx.logic?.consoleMillisFrom ?? null,
      });
      merges.push({ ...m, icdc: icdcMetadataLocation, min: range.min, max: range.max });
      const n = (k: string): bigint => BigInt(m.summary[k] ?? '0');
      return {
        read: {
          files: icdc.files.length + Number(n('deleted-data-files')),
          rows: icdc.files.reduce((a, f) => a + f.recordCount, 0n) + n('deleted-records'),
          bytes: icdc.files.reduce((a, f) => a + f.fileSizeInBytes, 0n) + n('removed-files-size'),
        },
        rowsWritten: n('added-records'),
        filesWritten: Number(n('added-data-files')),
        snapshotId: BigInt(m.snapshot_id),
      };
    };

    const r = await runBackfillDemo({
      options, backfillDays: BACKFILL_DAYS, concurrency: 2,
      workDir: path.join(tmp, 'work'), warehouse: path.join(tmp, 'warehouse'),
      catalogUri: catalogDb.url, catalogName: CATALOG,
      env: { DATABASE_URL: stateDb.url },
      backfillStage: sparkChunk,
      dayTimeoutMs: 300_000,
    });

    // One MERGE per day of the window, each over that chunk's own ICDC table (the backfill's).
    const release = r.logic.consoleMillisFrom!;
    expect(merges.map((m) => m.min).sort()).toEqual(['2026-10-02', '2026-10-03', '2026-10-04']);
    expect(release).toBe('2026-10-02');
    for (const m of merges) {
      expect(m.max).toBe(m.min);
      expect(m.icdc).toContain('playback_daily__demo__playback_table__backfill__fix_console_ms');
      expect(m.operation).toBe('overwrite'); // copy-on-write: the day's files rewritten
      expect(Number(m.summary['deleted-data-files'])).toBeGreaterThan(0);
      expect(m.chunk_rows).toBeGreaterThan(0);
    }
    expect(r.view.status).toBe('complete');
    expect(r.view.chunks.every((c) => c.outputs['demo__playback_daily_table'] !== undefined)).toBe(true);
    // Each chunk's recorded output is the snapshot Spark committed for it.
    expect(r.view.chunks.map((c) => c.outputs['demo__playback_daily_table']).sort()).toEqual(merges.map((m) => m.snapshot_id).sort());
    expect(r.view.stages[1]!.chunks.every((c) => c.state === 'propagated')).toBe(true);
    expect(r.liveWatermarkMoved).toBe(false);
    expect(r.after.daily.differencesVsRecomputation).toBe(0n);
    expect(r.after.agg.differencesVsRecomputation).toBe(0n);
    expect(r.before.corrected.daily.differencesVsRecomputation).toBeGreaterThan(0n);

    // Independently: PyIceberg through the same SQL catalog, its own aggregation with the new logic.
    const py = JSON.parse(await runPython('test/backfill/backfill_demo_check.py', [
      '--release', release, '--catalog-uri', catalogDb.url, '--catalog-name', CATALOG, '--warehouse', path.join(tmp, 'warehouse'),
    ], { timeoutMs: 300_000 })) as { source_rows: number; window_rows: number; daily_equals_truth: boolean; agg_equals_truth: boolean; daily_equals_original: boolean; first_differences: unknown[] };
    expect(py.source_rows).toBe(DAYS * options.rowsPerDay);
    expect(py.daily_equals_truth, JSON.stringify(py.first_differences)).toBe(true);
    expect(py.agg_equals_truth, JSON.stringify(py.first_differences)).toBe(true);
    expect(py.daily_equals_original).toBe(false);
    // The chunks' rows (after the range filter) are exactly the window's events.
    expect(merges.reduce((a, m) => a + m.chunk_rows, 0)).toBe(py.window_rows);

    // The daily table's head is a Spark commit, in the catalog ips and Spark share.
    const io = new RoutingFileIO({});
    const catalog = new SqlWritableCatalog(catalogDb.url, CATALOG, path.join(tmp, 'warehouse'), io);
    try {
      const md = await readMetadataFile(io, (await catalog.currentMetadataLocation(TABLES.incremental.daily))!);
      expect(merges.map((m) => m.snapshot_id)).toContain(md.currentSnapshotId?.toString());
      expect(md.snapshots.find((s) => s.snapshotId === md.currentSnapshotId)!.summary['spark.app.id']).toBeDefined();
    } finally {
      await catalog.close();
      io.close();
    }
  }, 900_000);
});
