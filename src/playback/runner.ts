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
import { aggTableSpec, dailyTableSpec, dayNumber, ipsName, isoDate, sourceTableSpec, TABLES, type PlaybackOptions } from './model.js';
import { appendDay } from './generate.js';
import { aggIncremental, aggLookback, dailyIncremental, dailyLookback, type IcdcInput, type StageContext, type StageResult } from './stages.js';
import { IpsHttpClient } from './ips-client.js';
import { RunReceiver, type TriggerData } from './receiver.js';
import { verifyPipelines, type Verification } from './verify.js';

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
  /** From the commit that changed the run's source table to the trigger's arrival: ips's part. */
  triggerDelayMs: number;
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
}

export interface PlaybackResult {
  options: PlaybackOptions;
  ipsUrl: string;
  warehouse: string;
  runs: StageRun[];
  eventsAppended: bigint;
  wallMs: number;
  verification: Verification;
  duplicateDeliveries: number;
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

/**
 * Runs the two-stage playback pipeline for a simulated month, incrementally and with a
 * lookback window side by side, every run started by an ips subscription's webhook trigger.
 */
export async function runPlayback(run: PlaybackRunOptions): Promise<PlaybackResult> {
  const o = run.options;
  const log = run.onLog ?? (() => {});
  fs.mkdirSync(run.workDir, { recursive: true });
  const warehouse = run.warehouse ?? path.join(run.workDir, 'warehouse');
  const io = new RoutingFileIO({ s3: run.s3 ?? {} });
  const catalog: WritableCatalog = run.catalogUri
    ? new SqlWritableCatalog(run.catalogUri, run.catalogName ?? 'ips_demo', warehouse, io)
    : new HadoopCatalog(io, warehouse);
  const engine = await SqlEngine.open({ io, scratchDir: path.join(run.workDir, 'engine') });
  const lake = new Lake(catalog, io, engine);
  let server: RunningServer | null = null;
  const secret = crypto.randomBytes(24).toString('hex');
  const runs: StageRun[] = [];
  let failure: Error | null = null;
  let runDay = dayNumber(o.startDate);
  let queue = Promise.resolve();
  let execute: (consumer: string, data: TriggerData, triggerDelayMs: number) => Promise<void> = () => Promise.reject(new IpsError('DEMO_ERROR', 'a trigger arrived before the demo was set up'));
  // When each table last changed (its commit returned), to time the trigger path.
  const changedAt = new Map<string, number>();
  const receiver = new RunReceiver(secret, (consumer, data) => {
    const source = STAGES.find((s) => s.consumer === consumer)?.source;
    const delay = source !== undefined && changedAt.has(source) ? performance.now() - changedAt.get(source)! : Number.NaN;
    queue = queue.then(() => execute(consumer, data, delay)).catch((e: unknown) => {
      failure ??= e instanceof Error ? e : new Error(String(e));
    });
  });
  const started = performance.now();
  try {
    let ipsUrl = run.ipsUrl;
    if (!ipsUrl) {
      const env = run.env ?? process.env;
      const config = loadServiceConfig({
        env: run.adminToken ? { ...env, IPS_ADMIN_TOKEN: run.adminToken } : env,
        overrides: { host: '127.0.0.1', port: run.port ?? 0, data_dir: path.join(run.workDir, 'ips'), log_level: 'warn' },
      });
      server = await startServer(config, { log });
      ipsUrl = server.url;
    }
    const client = new IpsHttpClient(ipsUrl, run.ipsToken ?? run.adminToken);
    // A separate ips (another container) reaches the receiver by a name of this host: listen on
    // every interface then; otherwise on loopback only.
    const external = run.callbackHost !== undefined && !/^(127\.|localhost$|\[?::1\]?$)/.test(run.callbackHost);
    const receiverUrl = await receiver.listen(external ? '0.0.0.0' : '127.0.0.1');
    const callback = run.callbackHost ? receiverUrl.replace(/\/\/[^/]+:/, `//${run.callbackHost}:`) : receiverUrl;
    log(`ips at ${ipsUrl}; runs are started at ${callback}/runs/<consumer>; tables in ${warehouse}`);

    await lake.create(TABLES.source, sourceTableSpec());
    for (const p of [TABLES.incremental, TABLES.lookback]) {
      await lake.create(p.daily, dailyTableSpec(o));
      await lake.create(p.agg, aggTableSpec(o));
    }
    const s3 = s3Registration(run.s3);
    // Every table, the stages' outputs too: each consumer declares what it writes, so ips knows
    // the pipeline's graph (the console's lineage, backfills that follow a change downstream).
    for (const t of [TABLES.source, TABLES.incremental.daily, TABLES.lookback.daily, TABLES.incremental.agg, TABLES.lookback.agg]) {
      await client.call('POST', '/v1/tables', { name: ipsName(t), ref: catalog.registration(t), verify: false, ...(s3 ? { s3 } : {}) });
    }
    for (const s of STAGES) {
      await client.call('POST', '/v1/consumers', {
        name: s.consumer, description: `${s.pipeline} ${s.stage} (ips demo playback)`, tables: [{ table: ipsName(s.source), from: 'start' }], outputs: [ipsName(s.target)],
      });
      await client.call('POST', '/v1/subscriptions', {
        name: s.consumer, consumer: s.consumer, tables: [ipsName(s.source)],
        sink: { type: 'webhook', url: `${callback}/runs/${s.consumer}`, secret },
        range_fields: ['event_date'],
      });
    }

    execute = async (consumer: string, data: TriggerData, triggerDelayMs: number): Promise<void> => {
      const def = STAGES.find((s) => s.consumer === consumer);
      if (!def) throw new IpsError('DEMO_ERROR', `a trigger arrived for unknown consumer ${consumer}`);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const ctx: StageContext = { lake, options: o, runDay };
      try {
        let result: StageResult;
        if (def.pipeline === 'incremental') {
          const loc = data.tables[0]?.icdc_metadata_location;
          if (!loc) throw new IpsError('DEMO_ERROR', `trigger for ${consumer} names no ICDC table`);
          const metadata = await lake.readMetadata(loc);
          const icdc: IcdcInput = { metadata, files: await lake.plan(metadata) };
          if (def.stage === 'playback_daily') {
            result = run.dailyStage ? await run.dailyStage({ icdc, icdcMetadataLocation: loc, ctx, target: def.target }) : await dailyIncremental(ctx, icdc, def.target);
          } else result = await aggIncremental(ctx, icdc, def.source, def.target);
        } else {
          result = def.stage === 'playback_daily' ? await dailyLookback(ctx, def.target) : await aggLookback(ctx, def.source, def.target);
        }
        changedAt.set(def.target, performance.now());
        await client.call('POST', `/v1/batches/${data.batch_id}/commit`, {});
        // Event-driven: tell ips the stage's output changed, so downstream runs start now.
        if (STAGES.some((s) => s.source === def.target)) await client.call('POST', `/v1/tables/${ipsName(def.target)}/events`, {});
        runs.push({ consumer, day: isoDate(runDay), batchId: data.batch_id, ...result, wallMs: performance.now() - t0, cpuMs: cpuMs(process.cpuUsage(cpu0)), triggerDelayMs });
      } catch (e) {
        await client.call('POST', `/v1/batches/${data.batch_id}/abort`, { reason: describeError(e).slice(0, 1900) }).catch(() => {});
        throw e;
      }
    };

    let events = 0n;
    const dayTimeout = run.dayTimeoutMs ?? 300_000;
    for (let k = 0; k < o.days; k++) {
      runDay = dayNumber(o.startDate) + k;
      const date = isoDate(runDay);
      const appended = await appendDay(lake, o, k);
      changedAt.set(TABLES.source, performance.now());
      events += appended;
      await client.call('POST', `/v1/tables/${ipsName(TABLES.source)}/events`, {});
      const deadline = Date.now() + dayTimeout;
      const done = () => STAGES.every((s) => runs.some((r) => r.consumer === s.consumer && r.day === date));
      while (!done()) {
        if (failure) throw failure;
        if (Date.now() > deadline) {
          const missing = STAGES.filter((s) => !runs.some((r) => r.consumer === s.consumer && r.day === date)).map((s) => s.consumer);
          const triggers = await Promise.all(missing.map(async (m) => `${m}: ${JSON.stringify(await client.call('GET', `/v1/subscriptions/${m}/triggers?limit=3`).catch((e: unknown) => describeError(e)))}`));
          throw new IpsError('DEMO_TIMEOUT', `day ${date}: no run of ${missing.join(', ')} within ${dayTimeout / 1000} s. Their latest triggers: ${triggers.join('; ')}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await queue;
      if (failure) throw failure;
      run.onProgress?.({ dayIndex: k, days: o.days, date, eventsAppended: appended, runs: runs.filter((r) => r.day === date) });
    }
    const verification = await verifyPipelines(lake);
    const kept = run.keepServer && server ? server : undefined;
    return {
      options: o, ipsUrl, warehouse, runs, eventsAppended: events, wallMs: performance.now() - started,
      verification, duplicateDeliveries: receiver.duplicates, ...(kept ? { server: kept } : {}),
    };
  } catch (e) {
    await server?.close();
    throw e;
  } finally {
    await receiver.close();
    await queue.catch(() => {});
    if (!run.keepServer) await server?.close();
    engine.close();
    await catalog.close();
  }
}

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

/** Totals per consumer over the month. */
export function totals(runs: StageRun[], consumer: string): { runs: number; read: ScanStats; wallMs: number; cpuMs: number; rowsWritten: bigint } {
  const mine = runs.filter((r) => r.consumer === consumer);
  return {
    runs: mine.length,
    read: mine.reduce((s, r) => addStats(s, r.read), emptyStats()),
    wallMs: mine.reduce((s, r) => s + r.wallMs, 0),
    cpuMs: mine.reduce((s, r) => s + r.cpuMs, 0),
    rowsWritten: mine.reduce((s, r) => s + r.rowsWritten, 0n),
  };
}
