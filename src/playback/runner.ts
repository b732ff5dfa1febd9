import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { IpsError, describeError } from '../errors.js';
import { RoutingFileIO } from '../io/routing-file-io.js';
import type { S3Settings } from '../io/s3-file-io.js';
import { HadoopCatalog, SqlWritableCatalog, type WritableCatalog } from '../catalog/table-catalog.js';
import { startServer, type RunningServer } from '../api/server.js';
import { loadServiceConfig } from '../service/config.js';
import { addStats, emptyStats, SqlEngine, type ScanStats } from '../engine/duckdb.js';
import { Lake } from './lake.js';
import { z } from 'zod';
import { aggTableSpec, dailyTableSpec, dayNumber, ipsName, isoDate, ORIGINAL_LOGIC, sourceTableSpec, TABLES, type DailyLogic, type PlaybackOptions } from './model.js';
import { appendDay } from './generate.js';
import { aggIncremental, aggLookback, dailyBackfillChunk, dailyIncremental, dailyLookback, type ChunkRange, type IcdcInput, type StageContext, type StageResult } from './stages.js';
import { IpsHttpClient } from './ips-client.js';
import { RunReceiver, type TriggerData } from './receiver.js';
import { verifyPipelines, type Verification } from './verify.js';
import { PeakRss } from './peak-rss.js';
import { PhaseClock, type Phase } from './phase-clock.js';

export type Pipeline = 'incremental' | 'lookback';

export interface StageDef {
  /** Consumer name in ips and the stage's name in the report. */
  consumer: string;
  stage: 'playback_daily' | 'playback_daily_agg';
  pipeline: Pipeline;
  source: string;
  target: string;
}

export const STAGES: StageDef[] = [
  { consumer: 'playback_daily', stage: 'playback_daily', pipeline: 'incremental', source: TABLES.source, target: TABLES.incremental.daily },
  { consumer: 'playback_daily_agg', stage: 'playback_daily_agg', pipeline: 'incremental', source: TABLES.incremental.daily, target: TABLES.incremental.agg },
  { consumer: 'playback_daily_lookback', stage: 'playback_daily', pipeline: 'lookback', source: TABLES.source, target: TABLES.lookback.daily },
  { consumer: 'playback_daily_agg_lookback', stage: 'playback_daily_agg', pipeline: 'lookback', source: TABLES.lookback.daily, target: TABLES.lookback.agg },
];

/**
 * The demo compares CPU, so both pipelines run on the engine's CPU-cheapest setting: one thread.
 * More threads shorten a large query's wall time but cost CPU in coordination (measured by
 * `npm run bench -- --only playback-ratio`: the lookback 63 % more CPU with 2 threads than with 1,
 * the incremental 25 % more, on 2 busy cores), which would flatter the ratio with the lookback's overhead.
 */
export const DEFAULT_ENGINE_THREADS = 1;

export interface StageRun {
  consumer: string;
  day: string;
  batchId: string;
  read: ScanStats;
  rowsWritten: bigint;
  filesWritten: number;
  wallMs: number;
  /** CPU of this process during the run (the engine's threads included; runs never overlap). */
  cpuMs: number;
  /** CPU milliseconds by phase (phase-clock.ts); they add up to at most cpuMs. */
  phases: Partial<Record<Phase, number>>;
  /** Peak RSS of this process during the run (bytes; the whole process's, see peak-rss.ts). */
  peakRssBytes: number;
  /** From the commit that changed the run's source table to the trigger's arrival: ips's part. */
  triggerDelayMs: number;
  /** Set when the run was a backfill chunk. */
  backfill?: { name: string; chunk: number };
}

export interface DayProgress {
  dayIndex: number;
  days: number;
  date: string;
  eventsAppended: bigint;
  runs: StageRun[];
}

/** Replaces the demo's stage 1 of the incremental pipeline, e.g. with Spark's MERGE INTO. */
export type DailyStageOverride = (input: { icdc: IcdcInput; icdcMetadataLocation: string; ctx: StageContext; target: string }) => Promise<StageResult>;

/** Replaces stage 1's run of a backfill chunk (`ips demo backfill`), e.g. with Spark's MERGE INTO; returns the snapshot it committed. */
export type BackfillStageOverride = (input: { icdc: IcdcInput; icdcMetadataLocation: string; ctx: StageContext; target: string; range: ChunkRange }) => Promise<StageResult>;

export interface PlaybackRunOptions {
  options: PlaybackOptions;
  /** Local scratch: the engine's files, the embedded state and, by default, the tables. */
  workDir: string;
  /** Where the demo's Iceberg tables go: a directory or s3://bucket/prefix (default <workDir>/warehouse). */
  warehouse?: string;
  /** postgresql://… : keep the tables in this JDBC/SQL catalog; otherwise the Hadoop layout (version-hint). */
  catalogUri?: string;
  catalogName?: string;
  s3?: S3Settings;
  /** Use this ips instead of starting one in-process (e.g. the docker-compose stack's). */
  ipsUrl?: string;
  ipsToken?: string;
  /** Host ips uses to reach this process's run receiver (default 127.0.0.1). */
  callbackHost?: string;
  /** Environment for the in-process ips (DATABASE_URL, IPS_WAREHOUSE, …); default process.env. */
  env?: Record<string, string | undefined>;
  dailyStage?: DailyStageOverride;
  backfillStage?: BackfillStageOverride;
  /** Which pipelines run (default both; `ips demo backfill` runs the incremental one). */
  pipelines?: Pipeline[];
  onProgress?: (p: DayProgress) => void;
  onLog?: (line: string) => void;
  /** Longest wait for one simulated day's four runs. */
  dayTimeoutMs?: number;
  /** The in-process ips requires this admin token (the demo's own calls send it). */
  adminToken?: string;
  /** Leave the in-process ips running (its trigger loops too) and return it: the caller closes it. */
  keepServer?: boolean;
  /** Port of the in-process ips (default: any free one). */
  port?: number;
  /** DuckDB worker threads of the pipelines' engine (default DEFAULT_ENGINE_THREADS). */
  engineThreads?: number;
}

export interface PlaybackResult {
  options: PlaybackOptions;
  /** DuckDB worker threads both pipelines ran with. */
  engineThreads: number;
  ipsUrl: string;
  warehouse: string;
  runs: StageRun[];
  eventsAppended: bigint;
  wallMs: number;
  verification: Verification;
  duplicateDeliveries: number;
  /** CPU of the in-process ips preparing each consumer's batches while no run executed (see IpsWindows). */
  ipsCpuMs: Record<string, number>;
  /**
   * What the in-process ips asked its state database over the month's days (setup left out),
   * in the counts of its /metrics; absent with `ipsUrl`. Load-independent, unlike CPU.
   */
  ipsDatabase?: { driver: 'pglite' | 'postgres'; statements: number; roundTrips: number; transactions: number };
  /** The in-process ips, still running, when `keepServer` was asked for. */
  server?: RunningServer;
}

function s3Registration(s3: S3Settings | undefined): Record<string, unknown> | undefined {
  if (!s3?.endpoint && !s3?.accessKeyId) return undefined;
  return {
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    ...(s3.region ? { region: s3.region } : {}),
    ...(s3.pathStyle !== undefined ? { path_style: s3.pathStyle } : {}),
    ...(s3.accessKeyId ? { access_key_id: s3.accessKeyId } : {}),
    ...(s3.secretAccessKey ? { secret_access_key: s3.secretAccessKey } : {}),
  };
}

/** A backfill chunk as the trigger's payload carries it (`backfill: {name, chunk, chunks, range}`). */
const chunkPayload = z.object({
  name: z.string().min(1).max(200),
  chunk: z.number().int().nonnegative(),
  chunks: z.number().int().positive().optional(),
  range: z.object({
    field: z.string().min(1).max(200),
    min: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'the demo backfills by day: the range\'s min is a date'),
    max: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'the demo backfills by day: the range\'s max is a date'),
  }).passthrough(),
}).passthrough();

/** Longest a run waits for ips to finish preparing the triggers it is expected to send. */
const IPS_SETTLE_MS = 5_000;

/**
 * ips's own CPU for each consumer, apart from the runs. After a commit that gives consumers new
 * changes (a day appended to the source, a stage's output committed), the in-process ips plans
 * their batches, writes their ICDC tables and sends their triggers. A window opens then for
 * those consumers; queued runs wait until every awaited trigger has arrived (at most
 * IPS_SETTLE_MS), and the CPU of the wait, split evenly, is ips's for them. So a run's CPU is
 * its own, never ips working for the other pipeline meanwhile, and what ips costs the
 * incremental pipeline is counted beside its runs. Measures the in-process ips only (none with
 * `ipsUrl`).
 */
export class IpsWindows {
  private readonly awaited = new Set<string>();
  private window: { consumers: string[]; cpu0: NodeJS.CpuUsage } | null = null;
  private readonly cpuMs = new Map<string, number>();
  private stopped = false;
  /** Resolves the pending settle(), if one waits. */
  private wake: (() => void) | null = null;

  open(consumers: string[]): void {
    if (consumers.length === 0 || this.stopped) return;
    this.close();
    for (const c of consumers) this.awaited.add(c);
    this.window = { consumers, cpu0: process.cpuUsage() };
  }

  arrived(consumer: string): void {
    this.awaited.delete(consumer);
    if (this.awaited.size === 0) {
      this.close();
      this.wake?.();
    }
  }

  /** Stops waiting, for good: a run failed or the session closes, so awaited triggers may never come. */
  abandon(): void {
    this.stopped = true;
    this.awaited.clear();
    this.close();
    this.wake?.();
  }

  /** Waits until every awaited trigger has arrived (or IPS_SETTLE_MS), then closes the window. */
  async settle(): Promise<void> {
    if (this.awaited.size > 0) {
      // Woken by the last arrival (or abandon), not by polling: the wait's CPU counts as ips's.
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, IPS_SETTLE_MS);
      });
      clearTimeout(timer);
      this.wake = null;
    }
    this.awaited.clear();
    this.close();
  }

  private close(): void {
    if (!this.window) return;
    const u = process.cpuUsage(this.window.cpu0);
    const share = (u.user + u.system) / 1000 / this.window.consumers.length;
    for (const c of this.window.consumers) this.cpuMs.set(c, (this.cpuMs.get(c) ?? 0) + share);
    this.window = null;
  }

  totals(): Record<string, number> {
    return Object.fromEntries(this.cpuMs);
  }
}

/**
 * The playback pipeline's running parts, set up once: the tables, ips (in-process or
 * `--ips-url`), the consumers (each declaring the table it writes, so ips knows the lineage)
 * with their webhook subscriptions, and the run receiver that executes each trigger. The month
 * is run with runDays(); `ips demo backfill` then keeps the same session for its backfill.
 */
export class PlaybackSession {
  readonly runs: StageRun[] = [];
  /** Stage 1's business logic for the runs from now on (the backfill demo corrects it). */
  logic: DailyLogic = ORIGINAL_LOGIC;
  /** The logic before the last change (what a backfill corrects from). */
  previousLogic: DailyLogic = ORIGINAL_LOGIC;
  ipsUrl = '';
  client!: IpsHttpClient;
  events = 0n;
  private failure: Error | null = null;
  private queue = Promise.resolve();
  private runDay: number;
  /** The in-process ips (null with `ipsUrl`). */
  server: RunningServer | null = null;
  private readonly receiver: RunReceiver;
  private readonly changedAt = new Map<string, number>();
  readonly ipsWindows = new IpsWindows();
  private readonly started = performance.now();

  private constructor(
    readonly run: PlaybackRunOptions,
    readonly lake: Lake,
    readonly catalog: WritableCatalog,
    readonly warehouse: string,
    readonly stages: StageDef[],
    private readonly secret: string,
  ) {
    this.runDay = dayNumber(run.options.startDate);
    this.receiver = new RunReceiver(secret, (consumer, data) => {
      const source = this.stages.find((s) => s.consumer === consumer)?.source;
      const delay = source !== undefined && this.changedAt.has(source) ? performance.now() - this.changedAt.get(source)! : Number.NaN;
      this.ipsWindows.arrived(consumer);
      this.queue = this.queue.then(() => this.ipsWindows.settle()).then(() => (this.failure ? this.release(data) : this.execute(consumer, data, delay))).catch((e: unknown) => {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
        this.ipsWindows.abandon();
      });
    });
  }

  get options(): PlaybackOptions {
    return this.run.options;
  }

  get duplicateDeliveries(): number {
    return this.receiver.duplicates;
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  static async open(run: PlaybackRunOptions): Promise<PlaybackSession> {
    const o = run.options;
    const log = run.onLog ?? (() => {});
    fs.mkdirSync(run.workDir, { recursive: true });
    const warehouse = run.warehouse ?? path.join(run.workDir, 'warehouse');
    const io = new RoutingFileIO({ s3: run.s3 ?? {} });
    const catalog: WritableCatalog = run.catalogUri
      ? new SqlWritableCatalog(run.catalogUri, run.catalogName ?? 'ips_demo', warehouse, io)
      : new HadoopCatalog(io, warehouse);
    const engine = await SqlEngine.open({ io, scratchDir: path.join(run.workDir, 'engine'), threads: run.engineThreads ?? DEFAULT_ENGINE_THREADS });
    const pipelines = run.pipelines ?? ['incremental', 'lookback'];
    const stages = STAGES.filter((s) => pipelines.includes(s.pipeline));
    const session = new PlaybackSession(run, new Lake(catalog, io, engine), catalog, warehouse, stages, crypto.randomBytes(24).toString('hex'));
    try {
      let ipsUrl = run.ipsUrl;
      if (!ipsUrl) {
        const env = run.env ?? process.env;
        const config = loadServiceConfig({
          env: run.adminToken ? { ...env, IPS_ADMIN_TOKEN: run.adminToken } : env,
          overrides: { host: '127.0.0.1', port: run.port ?? 0, data_dir: path.join(run.workDir, 'ips'), log_level: 'warn' },
        });
        session.server = await startServer(config, { log });
        ipsUrl = session.server.url;
      }
      session.ipsUrl = ipsUrl;
      const client = new IpsHttpClient(ipsUrl, run.ipsToken ?? run.adminToken);
      session.client = client;
      // A separate ips (another container) reaches the receiver by a name of this host: listen on
      // every interface then; otherwise on loopback only.
      const external = run.callbackHost !== undefined && !/^(127\.|localhost$|\[?::1\]?$)/.test(run.callbackHost);
      const receiverUrl = await session.receiver.listen(external ? '0.0.0.0' : '127.0.0.1');
      const callback = run.callbackHost ? receiverUrl.replace(/\/\/[^/]+:/, `//${run.callbackHost}:`) : receiverUrl;
      log(`ips at ${ipsUrl}; runs are started at ${callback}/runs/<consumer>; tables in ${warehouse}`);

      const { lake } = session;
      await lake.create(TABLES.source, sourceTableSpec());
      for (const p of pipelines) {
        await lake.create(TABLES[p].daily, dailyTableSpec(o));
        await lake.create(TABLES[p].agg, aggTableSpec(o));
      }
      const s3 = s3Registration(run.s3);
      // Every table, the stages' outputs too: each consumer declares what it writes, so ips knows
      // the pipeline's graph (the console's lineage, backfills that follow a change downstream).
      const registered = [TABLES.source, ...pipelines.flatMap((p) => [TABLES[p].daily, TABLES[p].agg])];
      for (const t of registered) {
        await client.call('POST', '/v1/tables', { name: ipsName(t), ref: catalog.registration(t), verify: false, ...(s3 ? { s3 } : {}) });
      }
      for (const s of stages) {
        await client.call('POST', '/v1/consumers', {
          name: s.consumer, description: `${s.pipeline} ${s.stage} (ips demo playback)`, tables: [{ table: ipsName(s.source), from: 'start' }],
          // Lineage: each stage declares the table it writes, so a backfill of stage 1 is followed to stage 2.
          ...((registered as string[]).includes(s.target) ? { outputs: [ipsName(s.target)] } : {}),
        });
        await client.call('POST', '/v1/subscriptions', {
          name: s.consumer, consumer: s.consumer, tables: [ipsName(s.source)],
          sink: { type: 'webhook', url: `${callback}/runs/${s.consumer}`, secret: session.secret },
          range_fields: ['event_date'],
        });
      }
      return session;
    } catch (e) {
      await session.close();
      throw e;
    }
  }

  /** A run queued behind a failed one is not started: its batch is released for a later run. */
  private async release(data: TriggerData): Promise<void> {
    await this.client.call('POST', `/v1/batches/${data.batch_id}/abort`, { reason: 'not run: the demo stopped after an earlier run failed' }).catch(() => {});
  }

  private async execute(consumer: string, data: TriggerData, triggerDelayMs: number): Promise<void> {
    const { lake, client, run } = this;
    const def = this.stages.find((s) => s.consumer === consumer);
    if (!def) throw new IpsError('DEMO_ERROR', `a trigger arrived for unknown consumer ${consumer}`);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const rss = new PeakRss();
    const clock = new PhaseClock();
    lake.clock = clock;
    const ctx: StageContext = { lake, options: this.options, runDay: this.runDay, logic: this.logic, previousLogic: this.previousLogic };
    let chunk: z.infer<typeof chunkPayload> | null = null;
    try {
      let result: StageResult;
      if (def.pipeline === 'incremental') {
        const loc = data.tables[0]?.icdc_metadata_location;
        if (!loc) throw new IpsError('DEMO_ERROR', `trigger for ${consumer} names no ICDC table`);
        const icdc: IcdcInput = await clock.time('ICDC metadata + plan', async () => {
          const metadata = await lake.readMetadata(loc);
          return { metadata, files: await lake.plan(metadata) };
        });
        if (data.backfill) {
          // A backfill chunk, delivered through the same subscription as the live batches.
          const parsed = chunkPayload.safeParse(data.backfill);
          if (!parsed.success || def.stage !== 'playback_daily') {
            throw new IpsError('DEMO_ERROR', `backfill trigger for ${consumer}: ${parsed.success ? 'only stage 1 is backfilled in the demo' : parsed.error.issues.map((i) => i.message).join('; ')}`);
          }
          chunk = parsed.data;
          const range = { field: chunk.range.field, min: chunk.range.min, max: chunk.range.max, key: `${chunk.name}/${chunk.chunk}` };
          result = run.backfillStage
            ? await run.backfillStage({ icdc, icdcMetadataLocation: loc, ctx, target: def.target, range })
            : await dailyBackfillChunk(ctx, icdc, range, def.target);
        } else if (def.stage === 'playback_daily') {
          result = run.dailyStage ? await run.dailyStage({ icdc, icdcMetadataLocation: loc, ctx, target: def.target }) : await dailyIncremental(ctx, icdc, def.target);
        } else result = await aggIncremental(ctx, icdc, def.source, def.target);
      } else {
        result = def.stage === 'playback_daily' ? await dailyLookback(ctx, def.target) : await aggLookback(ctx, def.source, def.target);
      }
      this.changedAt.set(def.target, performance.now());
      // The commit names the snapshot the run wrote to its declared output (lineage follows it).
      const outputs = result.snapshotId != null && this.stages.some((s) => s.source === def.target) ? { outputs: { [ipsName(def.target)]: result.snapshotId.toString() } } : {};
      await clock.time('ips batch commit', () => client.call('POST', `/v1/batches/${data.batch_id}/commit`, outputs));
      // Event-driven: tell ips the stage's output changed, so downstream runs start now.
      if (this.stages.some((s) => s.source === def.target)) await clock.time('ips events call', () => client.call('POST', `/v1/tables/${ipsName(def.target)}/events`, {}));
      this.runs.push({
        consumer, day: isoDate(this.runDay), batchId: data.batch_id, read: result.read, rowsWritten: result.rowsWritten, filesWritten: result.filesWritten,
        wallMs: performance.now() - t0, cpuMs: cpuMs(process.cpuUsage(cpu0)), phases: clock.totals(), peakRssBytes: rss.stop(), triggerDelayMs,
        ...(chunk ? { backfill: { name: chunk.name, chunk: chunk.chunk } } : {}),
      });
      lake.clock = null;
      // ips now prepares the downstream stages' batches: their CPU until the triggers arrive is theirs.
      this.ipsWindows.open(this.stages.filter((s) => s.source === def.target).map((s) => s.consumer));
    } catch (e) {
      rss.stop();
      lake.clock = null;
      await client.call('POST', `/v1/batches/${data.batch_id}/abort`, { reason: describeError(e).slice(0, 1900) }).catch(() => {});
      throw e;
    }
  }

  /** Throws the first run's failure, if any. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits for the runs queued so far. */
  async idle(): Promise<void> {
    await this.queue;
    this.check();
  }

  /**
   * Waits until every stage has committed everything of its source table (its watermark is at
   * the table's head) and no run is queued: nothing is left to run.
   */
  async settle(timeoutMs = this.run.dayTimeoutMs ?? 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.check();
      const behind: string[] = [];
      for (const s of this.stages) {
        const head = (await this.lake.load(s.source)).currentSnapshotId?.toString() ?? null;
        const c = await this.client.call<{ tables: { snapshot_id: string | null; partial_snapshot_id: string | null }[] }>('GET', `/v1/consumers/${s.consumer}`);
        const wm = c.tables[0];
        if (!wm || wm.snapshot_id !== head || wm.partial_snapshot_id !== null) behind.push(s.consumer);
      }
      if (behind.length === 0) return this.idle();
      if (Date.now() > deadline) throw new IpsError('DEMO_TIMEOUT', `${behind.join(', ')} did not catch up with their source tables within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Appends the simulated days [from, to) (default the month) and waits, day by day, for every stage's run. */
  async runDays(from = 0, to = this.options.days): Promise<void> {
    const o = this.options;
    const { client } = this;
    const dayTimeout = this.run.dayTimeoutMs ?? 300_000;
    for (let k = from; k < to; k++) {
      this.runDay = dayNumber(o.startDate) + k;
      const date = isoDate(this.runDay);
      const appended = await appendDay(this.lake, o, k);
      this.changedAt.set(TABLES.source, performance.now());
      this.ipsWindows.open(this.stages.filter((s) => s.source === TABLES.source).map((s) => s.consumer));
      this.events += appended;
      await client.call('POST', `/v1/tables/${ipsName(TABLES.source)}/events`, {});
      const deadline = Date.now() + dayTimeout;
      const ran = (s: StageDef) => this.runs.some((r) => r.consumer === s.consumer && r.day === date && !r.backfill);
      while (!this.stages.every(ran)) {
        this.check();
        if (Date.now() > deadline) {
          const missing = this.stages.filter((s) => !ran(s)).map((s) => s.consumer);
          const triggers = await Promise.all(missing.map(async (m) => `${m}: ${JSON.stringify(await client.call('GET', `/v1/subscriptions/${m}/triggers?limit=3`).catch((e: unknown) => describeError(e)))}`));
          throw new IpsError('DEMO_TIMEOUT', `day ${date}: no run of ${missing.join(', ')} within ${dayTimeout / 1000} s. Their latest triggers: ${triggers.join('; ')}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await this.idle();
      this.run.onProgress?.({ dayIndex: k, days: to, date, eventsAppended: appended, runs: this.runs.filter((r) => r.day === date && !r.backfill) });
    }
  }

  /** Closes everything but, with `keepServer`, the in-process ips (the caller closes it). */
  async close(): Promise<void> {
    await this.receiver.close();
    this.ipsWindows.abandon();
    await this.queue.catch(() => {});
    if (!this.run.keepServer) await this.server?.close();
    this.lake.engine.close();
    await this.catalog.close();
  }
}

/**
 * Runs the two-stage playback pipeline for a simulated month, incrementally and with a
 * lookback window side by side, every run started by an ips subscription's webhook trigger.
 */
export async function runPlayback(run: PlaybackRunOptions): Promise<PlaybackResult> {
  const session = await PlaybackSession.open(run);
  try {
    const db = session.server?.state.db;
    const before = db ? { ...db.stats } : null;
    await session.runDays();
    const ipsDatabase = db && before ? {
      driver: db.driver, statements: db.stats.statements - before.statements, roundTrips: db.stats.roundTrips - before.roundTrips, transactions: db.stats.transactions - before.transactions,
    } : undefined;
    const verification = await verifyPipelines(session.lake, { lookback: session.stages.some((s) => s.pipeline === 'lookback') });
    const kept = run.keepServer && session.server ? session.server : undefined;
    return {
      options: run.options, engineThreads: run.engineThreads ?? DEFAULT_ENGINE_THREADS, ipsUrl: session.ipsUrl, warehouse: session.warehouse, runs: session.runs, eventsAppended: session.events,
      wallMs: session.elapsedMs(), verification, duplicateDeliveries: session.duplicateDeliveries, ipsCpuMs: session.ipsWindows.totals(), ...(ipsDatabase ? { ipsDatabase } : {}), ...(kept ? { server: kept } : {}),
    };
  } catch (e) {
    await session.server?.close();
    throw e;
  } finally {
    await session.close();
  }
}

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

/** Totals per consumer over the month. */
export function totals(runs: StageRun[], consumer: string): { runs: number; read: ScanStats; wallMs: number; cpuMs: number; peakRssBytes: number; rowsWritten: bigint } {
  const mine = runs.filter((r) => r.consumer === consumer);
  return {
    runs: mine.length,
    read: mine.reduce((s, r) => addStats(s, r.read), emptyStats()),
    wallMs: mine.reduce((s, r) => s + r.wallMs, 0),
    cpuMs: mine.reduce((s, r) => s + r.cpuMs, 0),
    peakRssBytes: mine.reduce((m, r) => Math.max(m, r.peakRssBytes), 0),
    rowsWritten: mine.reduce((s, r) => s + r.rowsWritten, 0n),
  };
}
