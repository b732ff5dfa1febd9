import type { ScanStats } from '../engine/duckdb.js';
import { ORIGINAL_LOGIC, TABLES, watchSecondsSql, type DailyLogic } from './model.js';
import type { Lake } from './lake.js';

export interface TableCheck {
  table: string;
  rows: bigint;
  /** Rows of the incremental table not in the lookback one, and the other way round (multisets); null when the lookback pipeline did not run. */
  differencesVsLookback: bigint | null;
  /** The same against a full recomputation from every event in playback_table. */
  differencesVsRecomputation: bigint;
}

export interface Verification {
  identical: boolean;
  daily: TableCheck;
  agg: TableCheck;
  /**
   * What a full rebuild of each stage reads, as planned from Iceberg metadata: stage 1 every
   * event, stage 2 the whole daily table (the recomputation here reads exactly that).
   */
  rebuild: { daily: ScanStats; agg: ScanStats };
}

async function symmetricDifference(lake: Lake, a: string, b: string): Promise<bigint> {
  const [r] = await lake.engine.all<{ n: string }>(
    `SELECT ((SELECT count(*) FROM (SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b})) +
             (SELECT count(*) FROM (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a})))::BIGINT AS n`);
  return BigInt(r!.n);
}

async function view(lake: Lake, name: string, identifier: string): Promise<ScanStats> {
  const md = await lake.load(identifier);
  return lake.view(name, md, await lake.plan(md));
}

/**
 * The check that the pipelines produced the right tables: every live row of the incremental
 * outputs (and the lookback ones, when that pipeline ran) is compared with an independent
 * one-shot computation over all events under stage 1's `logic` (so two pipelines that are wrong
 * the same way would still be caught), and the two pipelines with each other.
 */
export async function verifyPipelines(lake: Lake, opts: { lookback?: boolean; logic?: DailyLogic } = {}): Promise<Verification> {
  const lookback = opts.lookback ?? true;
  const rebuildDaily = await view(lake, 'all_events', TABLES.source);
  const rebuildAgg = await view(lake, 'inc_daily', TABLES.incremental.daily);
  await view(lake, 'inc_agg', TABLES.incremental.agg);
  if (lookback) {
    await view(lake, 'lb_daily', TABLES.lookback.daily);
    await view(lake, 'lb_agg', TABLES.lookback.agg);
  }
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE truth_daily AS
    SELECT event_date, profile_id, title_id, count(*)::BIGINT AS plays, sum(${watchSecondsSql(opts.logic ?? ORIGINAL_LOGIC)})::BIGINT AS watch_seconds FROM all_events GROUP BY ALL`);
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE truth_agg AS
    SELECT event_date, profile_id, count(*)::BIGINT AS titles, sum(plays)::BIGINT AS plays, sum(watch_seconds)::BIGINT AS watch_seconds FROM truth_daily GROUP BY ALL`);
  const check = async (table: string, inc: string, lb: string, truth: string): Promise<TableCheck> => {
    const [r] = await lake.engine.all<{ n: string }>(`SELECT count(*)::BIGINT AS n FROM ${inc}`);
    const vsLookback = lookback ? await symmetricDifference(lake, inc, lb) : null;
    const vsTruth = (await symmetricDifference(lake, inc, truth)) + (lookback ? await symmetricDifference(lake, lb, truth) : 0n);
    return { table, rows: BigInt(r!.n), differencesVsLookback: vsLookback, differencesVsRecomputation: vsTruth };
  };
  const daily = await check('playback_daily_table', 'inc_daily', 'lb_daily', 'truth_daily');
  const agg = await check('playback_daily_agg_table', 'inc_agg', 'lb_agg', 'truth_agg');
  const identical = [daily, agg].every((c) => (c.differencesVsLookback ?? 0n) === 0n && c.differencesVsRecomputation === 0n && c.rows > 0n);
  return { identical, daily, agg, rebuild: { daily: rebuildDaily, agg: rebuildAgg } };
}
