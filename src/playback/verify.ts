import { TABLES } from './model.js';
import type { Lake } from './lake.js';

export interface TableCheck {
  table: string;
  rows: bigint;
  /** Rows of the incremental table not in the lookback one, and the other way round (multisets). */
  differencesVsLookback: bigint;
  /** The same against a full recomputation from every event in playback_table. */
  differencesVsRecomputation: bigint;
}

export interface Verification {
  identical: boolean;
  daily: TableCheck;
  agg: TableCheck;
}

async function symmetricDifference(lake: Lake, a: string, b: string): Promise<bigint> {
  const [r] = await lake.engine.all<{ n: string }>(
    `SELECT ((SELECT count(*) FROM (SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b})) +
             (SELECT count(*) FROM (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a})))::BIGINT AS n`);
  return BigInt(r!.n);
}

/**
 * The check that both pipelines produced the same tables: every live row of the incremental
 * and lookback outputs is compared, and both against an independent one-shot computation over
 * all events (so two pipelines that are wrong the same way would still be caught).
 */
export async function verifyPipelines(lake: Lake): Promise<Verification> {
  const view = async (name: string, identifier: string): Promise<void> => {
    const md = await lake.load(identifier);
    await lake.view(name, md, await lake.plan(md));
  };
  await view('all_events', TABLES.source);
  await view('inc_daily', TABLES.incremental.daily);
  await view('inc_agg', TABLES.incremental.agg);
  await view('lb_daily', TABLES.lookback.daily);
  await view('lb_agg', TABLES.lookback.agg);
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE truth_daily AS
    SELECT event_date, profile_id, title_id, count(*)::BIGINT AS plays, sum(watch_seconds)::BIGINT AS watch_seconds FROM all_events GROUP BY ALL`);
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE truth_agg AS
    SELECT event_date, profile_id, count(*)::BIGINT AS titles, sum(plays)::BIGINT AS plays, sum(watch_seconds)::BIGINT AS watch_seconds FROM truth_daily GROUP BY ALL`);
  const check = async (table: string, inc: string, lb: string, truth: string): Promise<TableCheck> => {
    const [r] = await lake.engine.all<{ n: string }>(`SELECT count(*)::BIGINT AS n FROM ${inc}`);
    const vsLookback = await symmetricDifference(lake, inc, lb);
    const vsTruth = (await symmetricDifference(lake, inc, truth)) + (await symmetricDifference(lake, lb, truth));
    return { table, rows: BigInt(r!.n), differencesVsLookback: vsLookback, differencesVsRecomputation: vsTruth };
  };
  const daily = await check('playback_daily_table', 'inc_daily', 'lb_daily', 'truth_daily');
  const agg = await check('playback_daily_agg_table', 'inc_agg', 'lb_agg', 'truth_agg');
  const identical = [daily, agg].every((c) => c.differencesVsLookback === 0n && c.differencesVsRecomputation === 0n && c.rows > 0n);
  return { identical, daily, agg };
}
