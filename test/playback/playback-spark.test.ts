// The playback demo with Spark in it: stage 1 of the incremental pipeline is Spark's
// copy-on-write MERGE INTO over the ICDC table an ips trigger names, into the daily table in a
// JDBC catalog on the test PostgreSQL. Stage 2 (DuckDB) is started by ips when Spark's commit
// shows up as changes of that table; the lookback pipeline runs on DuckDB as usual. The demo's
// own verification compares Spark's output with the lookback pipeline's and with a full
// recomputation from the events.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PythonWorker } from '../setup/python-worker.js';
import { createPgDatabase } from '../state/helpers.js';
import { runPlayback, totals, type DailyStageOverride, type PlaybackResult } from '../../src/playback/runner.js';
import { parsePlaybackOptions, TABLES } from '../../src/playback/model.js';
import { SqlWritableCatalog } from '../../src/catalog/table-catalog.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { readMetadataFile } from '../../src/catalog/table.js';

const CATALOG = 'ips_demo';

interface MergeResult {
  snapshot_id: string;
  operation: string;
  summary: Record<string, string>;
  icdc_rows: number;
  merge_mode: string;
}

describe('ips demo playback with Spark MERGE INTO as the incremental stage 1', () => {
  const options = parsePlaybackOptions({ days: 4, rowsPerDay: 1500, profiles: 150 });
  let tmp: string;
  let spark: PythonWorker;
  let stateDb: Awaited<ReturnType<typeof createPgDatabase>>;
  let catalogDb: Awaited<ReturnType<typeof createPgDatabase>>;
  const merges: MergeResult[] = [];

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-playback-spark-'));
    stateDb = await createPgDatabase('playback_spark_state');
    catalogDb = await createPgDatabase('playback_spark_catalog');
    const u = new URL(catalogDb.url);
    spark = PythonWorker.start('spark_merge.py', ['test/playback/spark_merge.py',
      '--jdbc-url', `jdbc:postgresql://${u.hostname}:${u.port || 5432}${u.pathname}`,
      '--user', decodeURIComponent(u.username), '--password', decodeURIComponent(u.password),
      '--catalog', CATALOG, '--warehouse', path.join(tmp, 'warehouse'),
    ]);
    await spark.ready; // one JVM for the whole file: ~20–40 s on two shared cores
  }, 300_000);

  afterAll(async () => {
    await spark?.close();
    await stateDb?.drop();
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("Spark's MERGE output feeds stage 2 through ips, and both pipelines and a recomputation agree", async () => {
    const sparkDaily: DailyStageOverride = async ({ icdc, icdcMetadataLocation, target }) => {
      const m = await spark.call<MergeResult>('merge', { icdc: icdcMetadataLocation, target });
      merges.push(m);
      const s = m.summary;
      const n = (k: string): bigint => BigInt(s[k] ?? '0');
      // What the stage read: the ICDC table's files (its current snapshot holds exactly the
      // batch's files), plus the daily files Spark's copy-on-write MERGE rewrote, as Spark's
      // snapshot summary reports them (deleted-data-files / deleted-records / removed-files-size).
      // Spark's scan of the target is pruned to the files that can match before the rewrite, so
      // the rewritten files are what it read of the target.
      return {
        read: {
          files: icdc.files.length + Number(n('deleted-data-files')),
          rows: icdc.files.reduce((a, f) => a + f.recordCount, 0n) + n('deleted-records'),
          bytes: icdc.files.reduce((a, f) => a + f.fileSizeInBytes, 0n) + n('removed-files-size'),
        },
        rowsWritten: n('added-records'),
        filesWritten: Number(n('added-data-files')),
      };
    };

    const result: PlaybackResult = await runPlayback({
      options,
      workDir: path.join(tmp, 'work'),
      warehouse: path.join(tmp, 'warehouse'),
      catalogUri: catalogDb.url,
      catalogName: CATALOG,
      env: { DATABASE_URL: stateDb.url },
      dailyStage: sparkDaily,
      dayTimeoutMs: 420_000,
    });

    expect(result.verification.daily.differencesVsLookback).toBe(0n);
    expect(result.verification.daily.differencesVsRecomputation).toBe(0n);
    expect(result.verification.agg.differencesVsLookback).toBe(0n);
    expect(result.verification.agg.differencesVsRecomputation).toBe(0n);
    expect(result.verification.identical).toBe(true);
    expect(result.eventsAppended).toBe(BigInt(options.days * options.rowsPerDay));
    for (const c of ['playback_daily', 'playback_daily_agg', 'playback_daily_lookback', 'playback_daily_agg_lookback']) {
      expect(totals(result.runs, c).runs, c).toBe(options.days);
    }

    // Spark ran every incremental stage 1: one copy-on-write MERGE a day, each reading that day's
    // ICDC rows, which add up to every event appended.
    expect(merges).toHaveLength(options.days);
    expect(merges.reduce((a, m) => a + m.icdc_rows, 0)).toBe(options.days * options.rowsPerDay);
    for (const m of merges) expect(m.merge_mode).toBe('copy-on-write');
    // The first MERGE into the empty table appends; later ones rewrite the partitions they touch.
    expect(merges[0]!.operation).toBe('append');
    for (const m of merges.slice(1)) {
      expect(m.operation).toBe('overwrite');
      expect(Number(m.summary['deleted-data-files'])).toBeGreaterThan(0);
    }

    // The daily table's head is Spark's last commit, in the SQL catalog ips and Spark share.
    const io = new RoutingFileIO({});
    const catalog = new SqlWritableCatalog(catalogDb.url, CATALOG, path.join(tmp, 'warehouse'), io);
    try {
      const loc = await catalog.currentMetadataLocation(TABLES.incremental.daily);
      const md = await readMetadataFile(io, loc!);
      expect(md.currentSnapshotId?.toString()).toBe(merges.at(-1)!.snapshot_id);
      expect(md.snapshots.find((s) => s.snapshotId === md.currentSnapshotId)!.summary['spark.app.id']).toBeDefined();
    } finally {
      await catalog.close();
      io.close();
    }
  }, 900_000);
});
