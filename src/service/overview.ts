import { groupBy } from '../collections.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import type { Backfill, Batch, Consumer, SourceTable, Subscription } from '../state/index.js';
import type { IpsService, TableView } from './ips-service.js';
import { chainOf, lagAt, lagHistory, type Chain, type LagPoint } from './lag-history.js';
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

/**
 * The overview in a fixed number of state statements and in time linear in tables and
 * consumers: the console polls it every few seconds, and a fleet has thousands of each. Each
 * list is read once and grouped by consumer; nothing is read per consumer or per table but the
 * tables' metadata (cached per version).
 */
export async function overview(service: IpsService, opts: OverviewOptions): Promise<Overview> {
  const repos = service.state.repos;
  const now = opts.now ?? new Date();
  const windowSeconds = opts.growingWindowSeconds ?? 900;
  const since = now.getTime() - windowSeconds * 1000;
  const scope = opts.consumer === null ? {} : { consumer: opts.consumer };
  await repos.batches.expireDue();
  const allConsumers = await repos.consumers.list();
  const consumers = opts.consumer === null ? allConsumers : allConsumers.filter((c) => c.name === opts.consumer);
  const visible = new Set(consumers.map((c) => c.name));
  const sourceTables = opts.consumer === null
    ? await repos.sourceTables.list()
    : (await repos.watermarks.listByConsumerWithSources(opts.consumer)).map((w) => w.source);
  const views = await service.tableViews(sourceTables, { ...scope, consumers: allConsumers });
  const outputs = groupBy(await repos.backfills.listOutputs(), (o) => o.consumer);
  const subscriptions = groupBy(await repos.subscriptions.list(scope), (s) => s.consumer);
  const counts = new Map<string, number>();
  for (const c of await repos.outbox.countByState([...subscriptions.values()].flat().map((s) => s.name))) counts.set(`${c.subscription}\u0000${c.state}`, c.n);
  const backfills = await repos.backfills.list(scope);
  const openBatches = groupBy(await repos.batches.list({ state: 'open', files: false, ...scope }), (b) => b.consumer);
  const lastCommits = await repos.batches.lastCommits(scope);
  // Where each watermark stood when the window opened: the first move since, or where it is now.
  const firstMoves = new Map((await repos.watermarks.firstMovesSince(new Date(since), scope)).map((m) => [`${m.consumer}\u0000${m.sourceTable}`, m] as const));
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

  // Each consumer's rows of the table views, in the views' (table) order; one lag chain per table.
  const rowsOf = groupBy(views.flatMap((view) => view.consumers.map((row) => ({ view, row }))), (r) => r.row.watermark.consumer);
  const chains = new Map<TableView, Chain>();
  const chainFor = (v: TableView & { metadata: TableMetadata }): Chain => {
    let c = chains.get(v);
    if (!c) chains.set(v, (c = chainOf(v.metadata, v.table.branch)));
    return c;
  };

  const out: OverviewConsumer[] = [];
  for (const c of consumers) {
    const mine: OverviewConsumerTable[] = [];
    const own: OverviewProblem[] = [];
    for (const { view: v, row } of rowsOf.get(c.name) ?? []) {
      let growingFrom: number | null = null;
      if (row.lag.ok && v.metadata && row.lag.lag.snapshots > 0) {
        const first = firstMoves.get(`${c.name}\u0000${v.table.name}`);
        const then = lagAt(chainFor(v as TableView & { metadata: TableMetadata }), first ? first.from : row.watermark, since).snapshots;
        if (row.lag.lag.snapshots > then && row.lag.lag.snapshots >= 2) growingFrom = then;
      }
      mine.push({ table: v.table.name, watermarkSnapshotId: row.watermark.snapshotId, lag: row.lag, growingFrom });
      if (!row.lag.ok && !v.loadError) {
        own.push(problem({ severity: 'error', kind: row.lag.code === 'FILES_MISSING' ? 'files_missing' : 'lag_unknown', consumer: c.name, table: v.table.name, message: `${c.name} on ${v.table.name}: ${row.lag.code}: ${row.lag.message}` }));
      }
      if (growingFrom !== null && row.lag.ok) {
        own.push(problem({ severity: 'warn', kind: 'lag_growing', consumer: c.name, table: v.table.name, message: `${c.name} falls behind on ${v.table.name}: ${growingFrom} → ${row.lag.lag.snapshots} snapshots in the last ${Math.round(windowSeconds / 60)} min` }));
      }
    }
    if (c.state === 'stale') {
      own.push(problem({ severity: 'error', kind: 'stale', consumer: c.name, message: `${c.name} is stale: ${c.stateReason ?? 'its history broke'}; reset or backfill it` }));
    }
    const subs = (subscriptions.get(c.name) ?? []).map((s) => {
      const n = (state: string) => counts.get(`${s.name}\u0000${state}`) ?? 0;
      const r = { subscription: s, pending: n('pending'), dead: n('dead'), delivered: n('delivered') };
      if (r.dead > 0) {
        own.push(problem({ severity: 'error', kind: 'dead_triggers', consumer: c.name, subscription: s.name, message: `${r.dead} dead trigger${r.dead === 1 ? '' : 's'} of subscription ${s.name}: their runs never started; retry them once the sink works` }));
      }
      if (s.lastError) {
        const missing = s.lastError.startsWith('FILES_MISSING');
        const shown = opts.shownError ? opts.shownError(s.lastError) : s.lastError;
        own.push(problem({ severity: 'error', kind: missing ? 'files_missing' : 'subscription_error', consumer: c.name, subscription: s.name, message: `subscription ${s.name} cannot fire: ${shown}` }));
      }
      return r;
    });
    const worst = own.map((p) => p.severity).sort((a, b) => SEVERITY_RANK[a] - SEVERITY_RANK[b])[0];
    problems.push(...own);
    out.push({
      consumer: c, tables: mine, outputs: (outputs.get(c.name) ?? []).map((o) => o.sourceTable),
      openBatches: openBatches.get(c.name) ?? [], lastCommitAt: lastCommits.get(c.name) ?? null, subscriptions: subs, health: 'ok',
    });
    out[out.length - 1]!.health = worst ?? 'ok';
  }
  for (const b of backfills) {
    if (b.state === 'failed') problems.push(problem({ severity: 'error', kind: 'backfill_failed', consumer: b.consumer, backfill: b.name, message: `backfill ${b.name} failed: ${b.stateReason ?? 'a chunk ran out of attempts'}; retry it` }));
  }
  // A failed backfill counts toward its consumer's health too.
  const failed = new Set(backfills.filter((b) => b.state === 'failed').map((b) => b.consumer));
  for (const c of out) if (failed.has(c.consumer.name)) c.health = 'error';
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
