// `ips demo backfill`'s stage 1 for one chunk (src/playback/stages.ts dailyBackfillChunk), on real
// Iceberg tables written by ips's table writer and read back by PyIceberg: it merges what the new
// logic changes into the daily table, keeps rows a live run merged meanwhile, and a re-run of a
// chunk whose output was committed applies nothing twice. Expected values are PyIceberg's own
// aggregation of the events.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HadoopCatalog } from '../../src/catalog/table-catalog.js';
import { SqlEngine } from '../../src/engine/duckdb.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { appendDay } from '../../src/playback/generate.js';
import { Lake } from '../../src/playback/lake.js';
import { dailyTableSpec, parsePlaybackOptions, sourceTableSpec, TABLES } from '../../src/playback/model.js';
import { BACKFILL_CHUNK_PROPERTY, dailyBackfillChunk, dailyIncremental, type StageContext } from '../../src/playback/stages.js';
import { runPythonCode } from '../setup/env.js';

let dir: string;
let lake: Lake;
const io = new RoutingFileIO({});
// Four days; console plays are reported in milliseconds from day 2 (2026-10-03) on.
const o = parsePlaybackOptions({ days: 4, rowsPerDay: 400, profiles: 40, titles: 5, profileRanges: 4, consoleMillisFromDay: 2 });
const NEW = { consoleMillisFrom: '2026-10-03' };
const OLD = { consoleMillisFrom: null };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-chunk-'));
  lake = new Lake(new HadoopCatalog(io, path.join(dir, 'wh')), io, await SqlEngine.open({ io, scratchDir: path.join(dir, 'engine') }));
  await lake.create(TABLES.source, sourceTableSpec());
  await lake.create(TABLES.incremental.daily, dailyTableSpec(o));
});

afterAll(async () => {
  lake?.engine.close();
  await lake?.catalog.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The source table's current files as the "ICDC table" of a run (what a batch of all of it holds). */
async function allOf(identifier: string) {
  const metadata = await lake.load(identifier);
  return { metadata, files: await lake.plan(metadata) };
}

/** PyIceberg: the daily table, and the daily aggregation of the events with the corrected logic. */
async function pyCheck(): Promise<{ daily: number; truth: number; equal: boolean }> {
  const out = await runPythonCode(String.raw`
import json, os, sys
import pyarrow as pa, pyarrow.compute as pc, datetime as dt
from pyiceberg.table import StaticTable
def load(ident):
    ns, name = ident.split(".")
    meta = os.path.join(sys.argv[1], ns, name, "metadata")
    v = open(os.path.join(meta, "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(meta, f"v{v}.metadata.json")).scan().to_arrow()
ev = load("demo.playback_table")
ms = pc.and_(pc.equal(ev.column("device"), "console"), pc.greater_equal(ev.column("event_date"), pa.scalar(dt.date(2026, 10, 3), pa.date32())))
w = pc.if_else(ms, pc.divide(ev.column("watch_seconds"), 1000), ev.column("watch_seconds"))
t = ev.select(["event_date", "profile_id", "title_id"]).append_column("w", w).group_by(["event_date", "profile_id", "title_id"]).aggregate([([], "count_all"), ("w", "sum")])
rows = lambda t, cols: sorted(tuple(str(x) for x in r) for r in zip(*[t.column(c).to_pylist() for c in cols]))
truth = rows(t, ["event_date", "profile_id", "title_id", "count_all", "w_sum"])
daily = rows(load("demo.playback_daily_table"), ["event_date", "profile_id", "title_id", "plays", "watch_seconds"])
print(json.dumps({"daily": len(daily), "truth": len(truth), "equal": daily == truth}))
`, [path.join(dir, 'wh')]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as { daily: number; truth: number; equal: boolean };
}

describe('a backfill chunk of stage 1', () => {
  test('merges the correction, keeps a live run merged meanwhile, and applies nothing twice', async () => {
    const ctx = (logic: typeof NEW | typeof OLD): StageContext => ({ lake, options: o, runDay: 0, logic, previousLogic: OLD });
    // Three days processed live with the original logic.
    for (let k = 0; k < 3; k++) await appendDay(lake, o, k);
    await dailyIncremental(ctx(OLD), await allOf(TABLES.source));
    expect((await pyCheck()).equal).toBe(false); // the milliseconds were summed as seconds
    // The chunk's rows: the events as planned (before day 4 arrives).
    const planned = await allOf(TABLES.source);
    // Day 4 arrives and runs live with the new logic, its late rows landing in days 2 and 3,
    // before the chunks that correct those days run.
    const before = planned.files.map((f) => f.filePath);
    await appendDay(lake, o, 3);
    const fresh = await allOf(TABLES.source);
    await dailyIncremental(ctx(NEW), { metadata: fresh.metadata, files: fresh.files.filter((f) => !before.includes(f.filePath)) });
    // The chunks, one per planned day: 2026-10-02 has nothing to correct (no milliseconds before
    // the release) and writes nothing; 2026-10-03 merges its correction.
    const quiet = await dailyBackfillChunk(ctx(NEW), planned, { field: 'event_date', min: '2026-10-02', max: '2026-10-02', key: 'fix/0' });
    expect(quiet).toMatchObject({ snapshotId: null, rowsWritten: 0n, filesWritten: 0 });
    const r1 = await dailyBackfillChunk(ctx(NEW), planned, { field: 'event_date', min: '2026-10-03', max: '2026-10-03', key: 'fix/1' });
    expect(r1.snapshotId).not.toBeNull();
    const py = await pyCheck();
    expect(py.daily).toBe(py.truth);
    expect(py.equal).toBe(true);
    // A re-run of an applied chunk (its run died before committing the chunk in ips) changes nothing.
    const md = await lake.load(TABLES.incremental.daily);
    const again = await dailyBackfillChunk(ctx(NEW), planned, { field: 'event_date', min: '2026-10-03', max: '2026-10-03', key: 'fix/1' });
    expect(again).toMatchObject({ snapshotId: r1.snapshotId, rowsWritten: 0n, filesWritten: 0 });
    expect(again.read.files).toBe(0);
    expect((await lake.load(TABLES.incremental.daily)).currentSnapshotId).toBe(md.currentSnapshotId);
    expect(md.snapshots.find((s) => s.snapshotId === r1.snapshotId)!.summary[BACKFILL_CHUNK_PROPERTY]).toBe('fix/1');
    expect((await pyCheck()).equal).toBe(true);
  });
});
