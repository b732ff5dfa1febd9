import { IpsError } from '../errors.js';
import type { DataFile } from '../iceberg/manifest.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import { addStats, emptyStats, type ScanStats } from '../engine/duckdb.js';
import { dayNumber, isoDate, profileRangeWidth, TABLES, watchSecondsSql, type DailyLogic, type PlaybackOptions } from './model.js';
import { filesOfDayRange, partitionKey, type Lake } from './lake.js';

/**
 * The pipeline's two stages, each in an incremental and a lookback form. Every stage reads
 * only the files it plans from Iceberg metadata and says what that cost (files, rows, bytes);
 * the SQL runs in the embedded engine and the result is committed by ips's table writer.
 */
export interface StageContext {
  lake: Lake;
  options: PlaybackOptions;
  /** The run's logical day (days since epoch): the newest day of data. */
  runDay: number;
  /** Stage 1's business logic (default: the original). */
  logic?: DailyLogic;
  /** The logic the live runs applied before it changed (a backfill corrects from it to `logic`). */
  previousLogic?: DailyLogic;
}

export interface StageResult {
  read: ScanStats;
  rowsWritten: bigint;
  filesWritten: number;
  /** The snapshot the run committed to its target (null: it committed nothing). */
  snapshotId?: bigint | null;
}

/** The ICDC table a trigger named: its current snapshot holds exactly the batch's files. */
export interface IcdcInput {
  metadata: TableMetadata;
  files: DataFile[];
}

const dateLit = (day: number): string => `DATE '${isoDate(day)}'`;

function windowStart(ctx: StageContext): number {
  return ctx.runDay - (ctx.options.lookbackDays - 1);
}

function truncSql(ctx: StageContext, col: string): string {
  const w = profileRangeWidth(ctx.options);
  return `(${col} - (((${col} % ${w}) + ${w}) % ${w}))`;
}

/** Partition keys (`day/profile range`) of the rows of `relation`, as partitionKey() spells them. */
async function partitionsOf(ctx: StageContext, relation: string): Promise<{ keys: Set<string>; lo: number; hi: number } | null> {
  const rows = await ctx.lake.all<{ d: number; p: string }>(
    `SELECT DISTINCT (event_date - DATE '1970-01-01')::INTEGER AS d, ${truncSql(ctx, 'profile_id')}::BIGINT AS p FROM ${relation}`);
  if (rows.length === 0) return null;
  return {
    keys: new Set(rows.map((r) => `${r.d}/${r.p}`)),
    lo: Math.min(...rows.map((r) => r.d)),
    hi: Math.max(...rows.map((r) => r.d)),
  };
}

/** Live files of the partitions in `parts` (a copy-on-write MERGE rewrites exactly these). */
async function filesOfPartitions(ctx: StageContext, md: TableMetadata, parts: { keys: Set<string>; lo: number; hi: number }): Promise<DataFile[]> {
  const candidates = await ctx.lake.plan(md, [{ field: 'event_date', op: 'between', lo: parts.lo, hi: parts.hi }]);
  return candidates.filter((f) => parts.keys.has(partitionKey(md, f)));
}

/** Live files whose day is within [lo, hi] (identity partitions: exact). */
async function filesOfDays(ctx: StageContext, md: TableMetadata, lo: number, hi: number): Promise<DataFile[]> {
  return ctx.lake.plan(md, [{ field: 'event_date', op: 'between', lo, hi }]);
}

/** Stage 1's projection of events into daily rows, under the run's business logic. */
export function dailyFromEvents(logic: DailyLogic = ORIGINAL): string {
  return `SELECT event_date, profile_id, title_id, count(*)::BIGINT AS plays, sum(${watchSecondsSql(logic)})::BIGINT AS watch_seconds`;
}
const ORIGINAL: DailyLogic = { consoleMillisFrom: null };
const AGG_FROM_DAILY = `SELECT event_date, profile_id, count(DISTINCT title_id)::BIGINT AS titles, sum(plays)::BIGINT AS plays, sum(watch_seconds)::BIGINT AS watch_seconds`;

/**
 * Stage 1, incremental (`playback_daily`): MERGE the batch's new events into the daily table.
 * Copy-on-write: the daily files of the partitions the batch touches are read and rewritten.
 */
export async function dailyIncremental(ctx: StageContext, icdc: IcdcInput, target: string = TABLES.incremental.daily): Promise<StageResult> {
  const { lake } = ctx;
  let read = await lake.view('icdc', icdc.metadata, icdc.files);
  await lake.run(`CREATE OR REPLACE TEMP TABLE chg AS ${dailyFromEvents(ctx.logic)} FROM icdc GROUP BY ALL`);
  const parts = await partitionsOf(ctx, 'chg');
  if (parts === null) return { read, rowsWritten: 0n, filesWritten: 0 };
  const md = await lake.load(target);
  const old = await filesOfPartitions(ctx, md, parts);
  read = addStats(read, await lake.view('old_daily', md, old));
  const merged = `
    SELECT coalesce(o.event_date, c.event_date) AS event_date, coalesce(o.profile_id, c.profile_id) AS profile_id,
           coalesce(o.title_id, c.title_id) AS title_id,
           (coalesce(o.plays, 0) + coalesce(c.plays, 0))::BIGINT AS plays,
           (coalesce(o.watch_seconds, 0) + coalesce(c.watch_seconds, 0))::BIGINT AS watch_seconds
      FROM old_daily o FULL OUTER JOIN chg c
        ON o.event_date = c.event_date AND o.profile_id = c.profile_id AND o.title_id = c.title_id`;
  const w = await lake.write(target, merged, old, { 'ips-demo.stage': 'playback_daily', 'ips-demo.run-day': isoDate(ctx.runDay) }, md);
  return { read, rowsWritten: w.rows, filesWritten: w.files, snapshotId: w.metadata.currentSnapshotId };
}

/** A backfill chunk's range of days (inclusive), from the `--where` range ips hands out (validated by the runner). */
export interface ChunkRange {
  field: string;
  /** ISO dates, inclusive. */
  min: string;
  max: string;
  /** `<backfill>/<chunk>`: recorded in the snapshot summary, so a re-run of an applied chunk applies nothing twice. */
  key: string;
}

export const BACKFILL_CHUNK_PROPERTY = 'ips-demo.backfill-chunk';

/** The snapshot on the table's current lineage that applied `key` already, if any (cycle-safe). */
function appliedBy(md: TableMetadata, key: string): bigint | null {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const seen = new Set<bigint>();
  for (let cur = md.currentSnapshotId === null ? undefined : byId.get(md.currentSnapshotId); cur && !seen.has(cur.snapshotId);
    cur = cur.parentSnapshotId === null ? undefined : byId.get(cur.parentSnapshotId)) {
    if (cur.summary[BACKFILL_CHUNK_PROPERTY] === key) return cur.snapshotId;
    seen.add(cur.snapshotId);
  }
  return null;
}

/**
 * Stage 1 re-run for one backfill chunk, as a correction: the chunk's ICDC table holds the
 * event files of its days as of the snapshot the backfill was planned on (pinned: every retry
 * sees the same rows); their rows, filtered by the chunk's days, give per daily row what the new
 * logic changes against the logic the live runs applied to them (new − previous). That
 * difference is merged into the daily table (copy-on-write by partition, like the live MERGE).
 * Adding a difference commutes with the live runs that merge newer events of the same days
 * meanwhile, in whatever order they commit, so the backfill never loses or double-counts them;
 * and the commit records the chunk in its snapshot summary, so a re-run of a chunk whose output
 * was committed (the run died before telling ips) applies nothing twice.
 */
export async function dailyBackfillChunk(ctx: StageContext, icdc: IcdcInput, range: ChunkRange, target: string = TABLES.incremental.daily): Promise<StageResult> {
  const { lake } = ctx;
  if (range.field !== 'event_date') throw new IpsError('DEMO_ERROR', `the demo backfills by event_date, not ${range.field}`);
  const md = await lake.load(target);
  const applied = appliedBy(md, range.key);
  if (applied !== null) return { read: emptyStats(), rowsWritten: 0n, filesWritten: 0, snapshotId: applied };
  let read = await lake.view('icdc', icdc.metadata, icdc.files);
  const lo = dayNumber(range.min);
  const hi = dayNumber(range.max);
  await lake.run(`CREATE OR REPLACE TEMP TABLE delta AS
    SELECT event_date, profile_id, title_id, (sum(${watchSecondsSql(ctx.logic ?? ORIGINAL)}) - sum(${watchSecondsSql(ctx.previousLogic ?? ORIGINAL)}))::BIGINT AS delta
      FROM icdc WHERE event_date BETWEEN ${dateLit(lo)} AND ${dateLit(hi)} GROUP BY ALL HAVING delta <> 0`);
  const parts = await partitionsOf(ctx, 'delta');
  if (parts === null) return { read, rowsWritten: 0n, filesWritten: 0, snapshotId: null };
  const old = await filesOfPartitions(ctx, md, parts);
  read = addStats(read, await lake.view('old_daily', md, old));
  const [missing] = await lake.all<{ n: number }>(`SELECT count(*)::INTEGER AS n FROM delta d ANTI JOIN old_daily o
    ON o.event_date = d.event_date AND o.profile_id = d.profile_id AND o.title_id = d.title_id`);
  if (missing!.n > 0) throw new IpsError('DEMO_ERROR', `backfill chunk ${range.key}: ${missing!.n} daily rows to correct were never written by the live runs`);
  const merged = `
    SELECT o.event_date, o.profile_id, o.title_id, o.plays, (o.watch_seconds + coalesce(d.delta, 0))::BIGINT AS watch_seconds
      FROM old_daily o LEFT JOIN delta d ON o.event_date = d.event_date AND o.profile_id = d.profile_id AND o.title_id = d.title_id`;
  const w = await lake.write(target, merged, old, { 'ips-demo.stage': 'playback_daily_backfill', [BACKFILL_CHUNK_PROPERTY]: range.key }, md);
  return { read, rowsWritten: w.rows, filesWritten: w.files, snapshotId: w.metadata.currentSnapshotId };
}

/** Stage 1, lookback: recompute the last `lookbackDays` days from the events and overwrite them. */
export async function dailyLookback(ctx: StageContext, target: string = TABLES.lookback.daily): Promise<StageResult> {
  const { lake } = ctx;
  const lo = windowStart(ctx);
  const src = await lake.load(TABLES.source);
  const read = await lake.view('src', src, await filesOfDays(ctx, src, lo, ctx.runDay));
  const md = await lake.load(target);
  const old = await filesOfDays(ctx, md, lo, ctx.runDay);
  const sql = `${dailyFromEvents(ctx.logic)} FROM src WHERE event_date BETWEEN ${dateLit(lo)} AND ${dateLit(ctx.runDay)} GROUP BY ALL`;
  const w = await lake.write(target, sql, old, { 'ips-demo.stage': 'playback_daily_lookback', 'ips-demo.run-day': isoDate(ctx.runDay) }, md);
  return { read, rowsWritten: w.rows, filesWritten: w.files, snapshotId: w.metadata.currentSnapshotId };
}

/**
 * Stage 2, incremental (`playback_daily_agg`): the batch's ICDC rows of the daily table give the
 * aggregation keys that changed; days 2..14 are re-aggregated for those keys only (the keys are a
 * row-level filter, and the scan planner skips daily files whose bounds hold none of them),
 * the current day in full. The aggregate table's rows for those keys are replaced.
 */
export async function aggIncremental(ctx: StageContext, icdc: IcdcInput, source: string = TABLES.incremental.daily, target: string = TABLES.incremental.agg): Promise<StageResult> {
  const { lake, runDay } = ctx;
  const lo = windowStart(ctx);
  const daily = await lake.load(source);
  // One plan of the daily table's window (metadata only): the days are identity partitions, so
  // the live files of the older days and of the current day are picked from it by partition value.
  const windowFiles = await filesOfDays(ctx, daily, lo, runDay);
  const pick = async (md: TableMetadata, files: DataFile[], from: number, to: number): Promise<DataFile[]> =>
    filesOfDayRange(md, files, from, to) ?? filesOfDays(ctx, md, from, to);
  // The ICDC table is a real Iceberg table: its files of the current day (recomputed in full
  // below anyway) are left out by their partition values and never read.
  const icdcOlder = await pick(icdc.metadata, icdc.files, lo, runDay - 1);
  // ICDC files still live in the daily table are the current rows of their partitions: read once,
  // for the changed keys and for the re-aggregation.
  const liveDaily = new Set((await pick(daily, windowFiles, lo, runDay - 1)).map((f) => f.filePath));
  const icdcLive = icdcOlder.filter((f) => liveDaily.has(f.filePath));
  const reused = new Set(icdcLive.map((f) => f.filePath));
  let read = addStats(await lake.view('icdc_live', icdc.metadata, icdcLive), await lake.view('icdc_gone', icdc.metadata, icdcOlder.filter((f) => !reused.has(f.filePath))));
  await lake.run(`CREATE OR REPLACE TEMP TABLE agg_keys AS SELECT DISTINCT event_date, profile_id FROM (
      SELECT event_date, profile_id FROM icdc_live UNION ALL SELECT event_date, profile_id FROM icdc_gone)
    WHERE event_date BETWEEN ${dateLit(lo)} AND ${dateLit(runDay - 1)}`);
  // The current day is re-aggregated in full when the batch changed it (every live batch does);
  // a batch that only rewrote older days (a backfill's output) leaves it alone.
  const changesToday = (await pick(icdc.metadata, icdc.files, runDay, runDay)).length > 0;
  read = addStats(read, await lake.view('today', daily, changesToday ? await pick(daily, windowFiles, runDay, runDay) : []));
  // Only the daily files that can hold a changed (day, profile) key: the planner prunes by the
  // profiles' bounds, then each file's partition tuple must be one the keys fall in; the ones
  // the ICDC table had are read already. One query gives the keys' profiles and partitions.
  const keyRows = await lake.all<{ d: number; r: string; p: string }>(
    `SELECT DISTINCT (event_date - DATE '1970-01-01')::INTEGER AS d, ${truncSql(ctx, 'profile_id')}::BIGINT AS r, profile_id AS p FROM agg_keys`);
  const profiles = [...new Set(keyRows.map((k) => k.p))].map((p) => BigInt(p)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const keyParts = keyRows.length === 0 ? null : {
    keys: new Set(keyRows.map((k) => `${k.d}/${k.r}`)), lo: Math.min(...keyRows.map((k) => k.d)), hi: Math.max(...keyRows.map((k) => k.d)),
  };
  const older = keyParts === null ? [] : (await lake.plan(daily, [
    { field: 'event_date', op: 'between', lo: keyParts.lo, hi: keyParts.hi },
    { field: 'profile_id', op: 'in', values: profiles },
  ])).filter((f) => keyParts.keys.has(partitionKey(daily, f)) && !reused.has(f.filePath));
  read = addStats(read, await lake.view('older', daily, older));
  await lake.run(`CREATE OR REPLACE TEMP TABLE fresh AS ${AGG_FROM_DAILY} FROM (
      SELECT * FROM today WHERE event_date = ${dateLit(runDay)}
      UNION ALL
      SELECT o.* FROM (SELECT * FROM older UNION ALL SELECT * FROM icdc_live) o
        SEMI JOIN agg_keys k ON o.event_date = k.event_date AND o.profile_id = k.profile_id
    ) GROUP BY event_date, profile_id`);
  const parts = await partitionsOf(ctx, 'fresh');
  if (parts === null) return { read, rowsWritten: 0n, filesWritten: 0 };
  const md = await lake.load(target);
  const old = await filesOfPartitions(ctx, md, parts);
  read = addStats(read, await lake.view('old_agg', md, old));
  const merged = `
    SELECT * FROM old_agg o WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.event_date = o.event_date AND f.profile_id = o.profile_id)
    UNION ALL SELECT * FROM fresh`;
  const w = await lake.write(target, merged, old, { 'ips-demo.stage': 'playback_daily_agg', 'ips-demo.run-day': isoDate(runDay) }, md);
  return { read, rowsWritten: w.rows, filesWritten: w.files };
}

/** Stage 2, lookback: re-aggregate the last `lookbackDays` days of the daily table and overwrite them. */
export async function aggLookback(ctx: StageContext, source: string = TABLES.lookback.daily, target: string = TABLES.lookback.agg): Promise<StageResult> {
  const { lake } = ctx;
  const lo = windowStart(ctx);
  const daily = await lake.load(source);
  const read = await lake.view('daily_window', daily, await filesOfDays(ctx, daily, lo, ctx.runDay));
  const md = await lake.load(target);
  const old = await filesOfDays(ctx, md, lo, ctx.runDay);
  const sql = `${AGG_FROM_DAILY} FROM daily_window WHERE event_date BETWEEN ${dateLit(lo)} AND ${dateLit(ctx.runDay)} GROUP BY event_date, profile_id`;
  const w = await lake.write(target, sql, old, { 'ips-demo.stage': 'playback_daily_agg_lookback', 'ips-demo.run-day': isoDate(ctx.runDay) }, md);
  return { read, rowsWritten: w.rows, filesWritten: w.files };
}

