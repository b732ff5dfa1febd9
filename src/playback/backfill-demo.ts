import { IpsError } from '../errors.js';
import { addStats, emptyStats, type ScanStats } from '../engine/duckdb.js';
import { dayNumber, ipsName, isoDate, ORIGINAL_LOGIC, parsePlaybackOptions, TABLES, type DailyLogic, type PlaybackOptions } from './model.js';
import { PlaybackSession, type PlaybackRunOptions, type StageRun } from './runner.js';
import { verifyPipelines, type Verification } from './verify.js';

/**
 * `ips demo backfill`: the playback month (the incremental pipeline of `ips demo playback`,
 * same session code), then a change of stage 1's business logic re-applied to the last days by
 * ONE managed backfill, followed downstream by lineage.
 *
 * 1. The month runs as in the playback demo, every run started by an ips webhook trigger. From
 *    the first day of the backfill window on, a console client release reported watch time in
 *    milliseconds, and the original stage 1 summed them as seconds.
 * 2. The logic is corrected (milliseconds of console plays from the release on → seconds), and
 *    the demo does what a user does: `ips backfills create fix_console_ms --consumer
 *    playback_daily --where 'event_date >= <release> and event_date < <end>' --chunk day`.
 * 3. ips hands each chunk (one day) to stage 1 through its subscription's webhook, like any
 *    trigger; the run reads the chunk's ICDC table, recomputes the day with the new logic,
 *    overwrites its partitions and commits naming the snapshot it wrote. Stage 2 is started by
 *    its ordinary incremental triggers on the daily table's changes; ips records when it passed
 *    each chunk's output. The terminal shows the backfill's progress per stage.
 * 4. Both tables are compared row by row with a one-shot recomputation under the new logic, and
 *    the report sets what the backfill re-read against a full rebuild of both stages.
 */
export interface BackfillDemoRunOptions extends Omit<PlaybackRunOptions, 'pipelines' | 'dailyStage'> {
  /** Days re-processed, the newest ones (default 14, at most the lookback window and --days). */
  backfillDays: number;
  /** Chunks in flight (default 2). */
  concurrency: number;
  /**
   * Days that arrive while the backfill is open (default 0): it is paused, the days run through
   * the live pipeline beside it (their late rows land in the days being backfilled), and it
   * resumes, so live batches commit before most of its chunks.
   */
  liveDays?: number;
  /** Longest wait for the backfill to complete, ms (default 30 min). */
  backfillTimeoutMs?: number;
  /** Called whenever the backfill's view changes (the API's JSON of GET /v1/backfills/{name}). */
  onBackfill?: (view: BackfillViewJson) => void;
}

/** What the demo reads of GET /v1/backfills/{name}. */
export interface BackfillViewJson {
  name: string;
  status: string;
  state: string;
  state_reason: string | null;
  complete: boolean;
  totals: { chunks: number; by_state: Record<string, number>; files: number; records: string; bytes: string };
  stages: { consumer: string; depth: number; table: string | null; blocked: string | null; chunks: { index: number; state: string }[] }[];
  chunks: { index: number; state: string; range: Record<string, unknown>; files: number; records: string; outputs: Record<string, string>; error: string | null }[];
  [k: string]: unknown;
}

export interface ReRead {
  /** Runs of the stage during the backfill (chunks for stage 1, incremental batches for stage 2). */
  runs: number;
  backfill: ScanStats;
  rebuild: ScanStats;
}

export interface BackfillDemoResult {
  options: PlaybackOptions;
  ipsUrl: string;
  warehouse: string;
  events: bigint;
  name: string;
  /** The command the demo ran through the API. */
  command: string;
  where: string;
  logic: DailyLogic;
  /** Before the backfill: the tables against the original logic (0 differences) and against the new one. */
  before: { original: Verification; corrected: Verification };
  /** After it: against a one-shot recomputation with the new logic. */
  after: Verification;
  view: BackfillViewJson;
  reread: { daily: ReRead; agg: ReRead };
  /** Whether stage 1's live watermark moved other than by its live batches (a chunk commit must never move it). */
  liveWatermarkMoved: boolean;
  /** Live batches of stage 1 committed while the backfill ran (the --live-days). */
  liveBatches: number;
  liveDays: number;
  monthRuns: StageRun[];
  backfillRuns: StageRun[];
  duplicateDeliveries: number;
  wallMs: number;
}

export const BACKFILL_NAME = 'fix_console_ms';
const STAGE1 = 'playback_daily';
const STAGE2 = 'playback_daily_agg';

/** Checks the backfill knobs against the month; returns the options with the release day set. */
export function backfillDemoOptions(o: PlaybackOptions, backfillDays: number, concurrency: number, liveDays = 0): PlaybackOptions {
  if (!Number.isSafeInteger(liveDays) || liveDays < 0 || liveDays > 366) throw new IpsError('INVALID_ARGUMENT', '--live-days must be 0..366');
  if (!Number.isSafeInteger(backfillDays) || backfillDays < 1 || backfillDays > o.days) {
    throw new IpsError('INVALID_ARGUMENT', `--backfill-days must be 1..${o.days} (the simulated days)`);
  }
  if (backfillDays + liveDays > o.lookbackDays) {
    // Stage 2 re-aggregates keys within its window of lookbackDays days: a backfilled day must stay in it until the end.
    throw new IpsError('INVALID_ARGUMENT', `--backfill-days plus --live-days must be at most --lookback-days (${o.lookbackDays}): stage 2 re-aggregates within that window`);
  }
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 10) throw new IpsError('INVALID_ARGUMENT', '--concurrency must be 1..10');
  return parsePlaybackOptions({ ...o, consoleMillisFromDay: o.days - backfillDays });
}

/** The version of stage 1's live watermark on the events table: every move of it counts one. */
async function watermarkVersion(session: PlaybackSession): Promise<bigint> {
  const c = await session.client.call<{ tables: { version: string }[] }>('GET', `/v1/consumers/${STAGE1}`);
  return BigInt(c.tables[0]!.version);
}

const sumRead = (runs: StageRun[]): ScanStats => runs.reduce((s, r) => addStats(s, r.read), emptyStats());

export async function runBackfillDemo(run: BackfillDemoRunOptions): Promise<BackfillDemoResult> {
  const liveDays = run.liveDays ?? 0;
  const options = backfillDemoOptions(run.options, run.backfillDays, run.concurrency, liveDays);
  const release = isoDate(dayNumber(options.startDate) + (options.consoleMillisFromDay ?? 0));
  const end = isoDate(dayNumber(options.startDate) + options.days);
  const logic: DailyLogic = { consoleMillisFrom: release };
  const log = run.onLog ?? (() => {});
  const session = await PlaybackSession.open({ ...run, options, pipelines: ['incremental'] });
  try {
    // 1. The month, with the original logic.
    await session.runDays();
    const monthRuns = [...session.runs];
    const original = await verifyPipelines(session.lake, { lookback: false, logic: ORIGINAL_LOGIC });
    const corrected = await verifyPipelines(session.lake, { lookback: false, logic });
    log(`the month ran; from ${release} console plays were reported in milliseconds: ${corrected.daily.differencesVsRecomputation} daily rows and ${corrected.agg.differencesVsRecomputation} aggregate rows differ from the corrected logic`);

    // 2. The logic changes; one backfill re-runs stage 1 over the window, chunked by day.
    session.previousLogic = ORIGINAL_LOGIC;
    session.logic = logic;
    const before = await watermarkVersion(session);
    const where = `event_date >= ${release} and event_date < ${end}`;
    const command = `ips backfills create ${BACKFILL_NAME} --consumer ${STAGE1} --table ${ipsName(TABLES.source)} --where '${where}' --chunk day --concurrency ${run.concurrency}`;
    log(`$ ${command}`);
    const firstBackfillRun = session.runs.length;
    await session.client.call('POST', '/v1/backfills', {
      name: BACKFILL_NAME, consumer: STAGE1, table: ipsName(TABLES.source), where, chunk: 'day', concurrency: run.concurrency,
    });

    // 3. With --live-days, the backfill is paused at once (chunks already handed out finish) while
    //    new days arrive and run through the live pipeline: their batches commit while the
    //    backfill is open, before the rest of its chunks, and their late rows land in the days
    //    being backfilled. Then it resumes.
    if (liveDays > 0) {
      await session.client.call('POST', `/v1/backfills/${BACKFILL_NAME}/pause`);
      log(`$ ips backfills pause ${BACKFILL_NAME}   # while ${liveDays} more day(s) arrive`);
      await session.runDays(options.days, options.days + liveDays);
      await session.client.call('POST', `/v1/backfills/${BACKFILL_NAME}/resume`);
      log(`$ ips backfills resume ${BACKFILL_NAME}`);
    }
    // ips runs the chunks through the subscription; stage 2 follows. Watch until complete.
    const deadline = Date.now() + (run.backfillTimeoutMs ?? 30 * 60_000);
    let view: BackfillViewJson;
    let last = '';
    for (;;) {
      session.check();
      view = await session.client.call<BackfillViewJson>('GET', `/v1/backfills/${BACKFILL_NAME}`);
      const key = JSON.stringify([view.status, view.totals.by_state, view.stages.map((s) => s.chunks.map((c) => c.state))]);
      if (key !== last) {
        last = key;
        run.onBackfill?.(view);
      }
      if (view.status === 'complete') break;
      if (['failed', 'cancelled'].includes(view.status)) {
        throw new IpsError('DEMO_FAILED', `backfill ${BACKFILL_NAME} is ${view.status}: ${view.state_reason ?? ''}`);
      }
      const blocked = view.stages.find((s) => s.blocked);
      if (blocked) throw new IpsError('DEMO_FAILED', `backfill ${BACKFILL_NAME}: stage ${blocked.consumer} is blocked: ${blocked.blocked}`);
      if (Date.now() > deadline) throw new IpsError('DEMO_TIMEOUT', `backfill ${BACKFILL_NAME} did not complete in time: ${JSON.stringify(view.totals)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await session.settle();
    const after = await verifyPipelines(session.lake, { lookback: false, logic });
    // Only the live batches moved stage 1's watermark: one version each; the chunks' commits none.
    const liveBatches = session.runs.slice(firstBackfillRun).filter((r) => r.consumer === STAGE1 && !r.backfill).length;
    const liveWatermarkMoved = (await watermarkVersion(session)) - before !== BigInt(liveBatches);
    const backfillRuns = session.runs.slice(firstBackfillRun);
    // What the backfill cost: its chunks' runs, and stage 2's runs of the backfill phase (with
    // --live-days these also carry the live days' changes: one run can carry both).
    const stage = (c: string) => backfillRuns.filter((r) => r.consumer === c && (c === STAGE1 ? r.backfill !== undefined : true));
    log(`backfill ${BACKFILL_NAME} complete`);
    return {
      options, ipsUrl: session.ipsUrl, warehouse: session.warehouse, events: session.events, name: BACKFILL_NAME, command, where, logic,
      before: { original, corrected }, after, view,
      reread: {
        daily: { runs: stage(STAGE1).length, backfill: sumRead(stage(STAGE1)), rebuild: after.rebuild.daily },
        agg: { runs: stage(STAGE2).length, backfill: sumRead(stage(STAGE2)), rebuild: after.rebuild.agg },
      },
      liveWatermarkMoved, liveBatches, liveDays, monthRuns, backfillRuns, duplicateDeliveries: session.duplicateDeliveries, wallMs: session.elapsedMs(),
    };
  } finally {
    await session.close();
  }
}
