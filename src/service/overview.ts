import type { Snapshot } from '../iceberg/metadata.js';
import type { Backfill, Batch, Consumer, SourceTable, Subscription } from '../state/index.js';
import type { IpsService, TableView } from './ips-service.js';
import { lagHistory, type LagPoint } from './lag-history.js';
import type { LagResult } from './lag.js';

/**
 * Everything an operator on call asks first, in one read: the tables, the consumers with their
 * lag, open batches and triggers, and the problems, worst first. Scoped like the API: an admin
 * sees everything, a consumer's token its own consumer and the tables it reads (its row only).
 */

export type Severity = 'error' | 'warn';
export type ProblemKind = 'stale' | 'dead_triggers' | 'files_missing' | 'lag_growing' | 'lag_unknown' | 'table_unavailable' | 'subscription_error' | 'backfill_failed';

export interface OverviewProblem {
  severity: Severity;
  kind: ProblemKind;
  consumer: string | null;
  table: string | null;
  subscription: string | null;
  backfill: string | null;
  message: string;
}

export interface OverviewTable {
  table: SourceTable;
  head: Snapshot | null;
  oldestNeeded: TableView['oldestNeeded'];
  loadError: TableView['loadError'];
  consumers: string[];
}

export interface OverviewConsumerTable {
  table: string;
  watermarkSnapshotId: bigint | null;
  lag: LagResult;
  /** Lag in snapshots `growingWindowSeconds` ago, when it was smaller than now. */
  growingFrom: number | null;
}

export interface OverviewConsumer {
  consumer: Consumer;
  tables: OverviewConsumerTable[];
  outputs: string[];
  openBatches: Batch[];
  lastCommitAt: Date | null;
  subscriptions: { subscription: Subscription; pending: number; dead: number; delivered: number }[];
  health: 'ok' | Severity;
}

export interface Overview {
  generatedAt: Date;
  growingWindowSeconds: number;
  tables: OverviewTable[];
  consumers: OverviewConsumer[];
  backfills: Backfill[];
  problems: OverviewProblem[];
}

export interface OverviewOptions {
  /** null: everything (admin); a name: that consumer's view. */
  consumer: string | null;
  now?: Date;
  /** Lag "growing": more snapshots behind now than this long ago (default 15 minutes). */
  growingWindowSeconds?: number;
  /** How a sink's error is shown to this caller (a consumer's token: without the orchestrator's response body). */
  shownError?: (message: string | null) => string | null;
}

const SEVERITY_RANK: Record<'ok' | Severity, number> = { error: 0, warn: 1, ok: 2 };

function problem(p: Partial<OverviewProblem> & Pick<OverviewProblem, 'severity' | 'kind' | 'message'>): OverviewProblem {
  return { consumer: null, table: null, subscription: null, backfill: null, ...p };
}

export async function overview(service: IpsService, opts: OverviewOptions): Promise<Overview> {
  const repos = service.state.repos;
  const now = opts.now ?? new Date();
  const windowSeconds = opts.growingWindowSeconds ?? 900;
  await repos.batches.expireDue();
  const allConsumers = await repos.consumers.list();
  const consumers = opts.consumer === null ? allConsumers : allConsumers.filter((c) => c.name === opts.consumer);
  const visible = new Set(consumers.map((c) => c.name));
  const tableNames = opts.consumer === null
    ? (await repos.sourceTables.list()).map((t) => t.name)
    : (await repos.watermarks.listByConsumer(opts.consumer)).map((w) => w.sourceTable);
  const views = await Promise.all(tableNames.map((n) => service.getTable(n)));
  const outputs = await repos.backfills.listOutputs();
  const subscriptions = (await repos.subscriptions.list(opts.consumer === null ? {} : { consumer: opts.consumer }));
  const counts = await repos.outbox.countByState(subscriptions.map((s) => s.name));
  const backfills = (await repos.backfills.list(opts.consumer === null ? {} : { consumer: opts.consumer }));
  const problems: OverviewProblem[] = [];

  const tables: OverviewTable[] = views.map((v) => {
    if (v.loadError) {
      problems.push(problem({ severity: 'error', kind: 'table_unavailable', table: v.table.name, message: `table ${v.table.name} cannot be loaded: ${v.loadError.code}: ${v.loadError.message}` }));
    }
    return {
      table: v.table, head: v.head, loadError: v.loadError,
      oldestNeeded: opts.consumer === null ? v.oldestNeeded : null,
      consumers: v.consumers.map((c) => c.watermark.consumer).filter((c) => visible.has(c)),
    };
  });

  const out: OverviewConsumer[] = [];
  for (const c of consumers) {
    const mine: OverviewConsumerTable[] = [];
    let lastCommit: Date | null = null;
    for (const v of views) {
      const row = v.consumers.find((r) => r.watermark.consumer === c.name);
      if (!row) continue;
      let growingFrom: number | null = null;
      const moves = await repos.watermarks.recentMoves(c.name, v.table.name, 50);
      if (row.lag.ok && v.metadata && row.lag.lag.snapshots > 0) {
        const nowMs = now.getTime();
        const series = lagHistory(v.metadata, v.table.branch, moves, { since: nowMs - windowSeconds * 1000, until: nowMs });
        const then = series[0]?.snapshots ?? 0; // the lag at the window's start
        if (row.lag.lag.snapshots > then && row.lag.lag.snapshots >= 2) growingFrom = then;
      }
      const lastCommitHere = moves.filter((m) => m.reason === 'commit').at(-1)?.movedAt;
      if (lastCommitHere && (!lastCommit || lastCommitHere > lastCommit)) lastCommit = lastCommitHere;
      mine.push({ table: v.table.name, watermarkSnapshotId: row.watermark.snapshotId, lag: row.lag, growingFrom });
      if (!row.lag.ok && !v.loadError) {
        problems.push(problem({ severity: 'error', kind: row.lag.code === 'FILES_MISSING' ? 'files_missing' : 'lag_unknown', consumer: c.name, table: v.table.name, message: `${c.name} on ${v.table.name}: ${row.lag.code}: ${row.lag.message}` }));
      }
      if (growingFrom !== null && row.lag.ok) {
        problems.push(problem({ severity: 'warn', kind: 'lag_growing', consumer: c.name, table: v.table.name, message: `${c.name} falls behind on ${v.table.name}: ${growingFrom} → ${row.lag.lag.snapshots} snapshots in the last ${Math.round(windowSeconds / 60)} min` }));
      }
    }
    if (c.state === 'stale') {
      problems.push(problem({ severity: 'error', kind: 'stale', consumer: c.name, message: `${c.name} is stale: ${c.stateReason ?? 'its history broke'}; reset or backfill it` }));
    }
    const subs = subscriptions.filter((s) => s.consumer === c.name).map((s) => {
      const n = (state: string) => counts.find((x) => x.subscription === s.name && x.state === state)?.n ?? 0;
      const r = { subscription: s, pending: n('pending'), dead: n('dead'), delivered: n('delivered') };
      if (r.dead > 0) {
        problems.push(problem({ severity: 'error', kind: 'dead_triggers', consumer: c.name, subscription: s.name, message: `${r.dead} dead trigger${r.dead === 1 ? '' : 's'} of subscription ${s.name}: their runs never started; retry them once the sink works` }));
      }
      if (s.lastError) {
        const missing = s.lastError.startsWith('FILES_MISSING');
        const shown = opts.shownError ? opts.shownError(s.lastError) : s.lastError;
        problems.push(problem({ severity: 'error', kind: missing ? 'files_missing' : 'subscription_error', consumer: c.name, subscription: s.name, message: `subscription ${s.name} cannot fire: ${shown}` }));
      }
      return r;
    });
    const open = await repos.batches.list({ consumer: c.name, state: 'open' });
    out.push({
      consumer: c, tables: mine, outputs: outputs.filter((o) => o.consumer === c.name).map((o) => o.sourceTable),
      openBatches: open, lastCommitAt: lastCommit, subscriptions: subs, health: 'ok',
    });
  }
  for (const b of backfills) {
    if (b.state === 'failed') problems.push(problem({ severity: 'error', kind: 'backfill_failed', consumer: b.consumer, backfill: b.name, message: `backfill ${b.name} failed: ${b.stateReason ?? 'a chunk ran out of attempts'}; retry it` }));
  }
  for (const c of out) {
    const worst = problems.filter((p) => p.consumer === c.consumer.name).map((p) => p.severity).sort((a, b) => SEVERITY_RANK[a] - SEVERITY_RANK[b])[0];
    c.health = worst ?? 'ok';
  }
  // Problems first, then the longest behind.
  const behind = (c: OverviewConsumer) => Math.max(0, ...c.tables.map((t) => (t.lag.ok ? t.lag.lag.snapshots : 0)));
  out.sort((a, b) => SEVERITY_RANK[a.health] - SEVERITY_RANK[b.health] || behind(b) - behind(a) || a.consumer.name.localeCompare(b.consumer.name));
  problems.sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]);
  return { generatedAt: now, growingWindowSeconds: windowSeconds, tables, consumers: out, backfills, problems };
}

/** A consumer's watermark history and lag series per table, over the last `windowSeconds`. */
export async function consumerHistory(service: IpsService, consumer: string, opts: { windowSeconds: number; moves: number; now?: Date }): Promise<{
  table: string;
  moves: Awaited<ReturnType<IpsService['state']['repos']['watermarks']['recentMoves']>>;
  lag: LagPoint[];
  error: { code: string; message: string } | null;
}[]> {
  const repos = service.state.repos;
  await repos.consumers.require(consumer);
  const now = (opts.now ?? new Date()).getTime();
  const out = [];
  for (const w of await repos.watermarks.listByConsumer(consumer)) {
    const moves = await repos.watermarks.recentMoves(consumer, w.sourceTable, opts.moves);
    const table = await repos.sourceTables.require(w.sourceTable);
    try {
      const md = (await service.load(table)).metadata;
      out.push({ table: w.sourceTable, moves, lag: lagHistory(md, table.branch, moves, { since: now - opts.windowSeconds * 1000, until: now }), error: null });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      out.push({ table: w.sourceTable, moves, lag: [], error: { code: err.code ?? 'INTERNAL', message: err.message ?? String(e) } });
    }
  }
  return out;
}
