import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireConsumer } from '../auth.js';
import type { ApiContext } from '../context.js';
import { apiError } from '../problem.js';
import { nameParams } from '../schemas.js';
import { describeSourceTable, int64ToJson } from '../../state/index.js';
import { consumerHistory, overview, type Overview } from '../../service/overview.js';
import type { LagResult } from '../../service/lag.js';
import { withoutResponseBody } from '../../sinks/http.js';
import { snapshotJson } from '../views.js';

/**
 * What the console (and any dashboard) reads: GET /v1/overview, everything at a glance with the
 * problems first, and GET /v1/consumers/{name}/history, a consumer's watermark moves and its lag
 * over time. Both are scoped like the rest of the API.
 */

const iso = (d: Date | null): string | null => d?.toISOString() ?? null;

function lagJson(r: LagResult, growingFrom: number | null): Record<string, unknown> {
  if (!r.ok) return { lag: null, lag_error: { code: r.code, message: r.message }, growing_from: null };
  const l = r.lag;
  return {
    lag: {
      snapshots: l.snapshots, files: l.files.toString(), bytes: l.bytes.toString(), records: l.records.toString(), estimated: l.estimated,
      oldest_pending_at: l.oldestPendingMs === null ? null : new Date(Number(l.oldestPendingMs)).toISOString(),
    },
    lag_error: null,
    growing_from: growingFrom,
  };
}

export function overviewJson(o: Overview): Record<string, unknown> {
  return {
    generated_at: o.generatedAt.toISOString(),
    growing_window_seconds: o.growingWindowSeconds,
    problems: o.problems,
    tables: o.tables.map((t) => ({
      name: t.table.name,
      ref: describeSourceTable(t.table).ref,
      head: snapshotJson(t.head),
      last_commit_at: t.head === null ? null : new Date(Number(t.head.timestampMs)).toISOString(),
      oldest_needed: t.oldestNeeded === null ? null : {
        consumer: t.oldestNeeded.consumer, snapshot_id: int64ToJson(t.oldestNeeded.snapshotId), full_history: t.oldestNeeded.fullHistory,
        ...(t.oldestNeeded.backfill !== undefined ? { backfill: t.oldestNeeded.backfill } : {}),
      },
      load_error: t.loadError,
      consumers: t.consumers,
    })),
    consumers: o.consumers.map((c) => ({
      name: c.consumer.name,
      description: c.consumer.description,
      state: c.consumer.state,
      state_reason: c.consumer.stateReason,
      health: c.health,
      inputs: c.tables.map((t) => t.table),
      outputs: c.outputs,
      last_commit_at: iso(c.lastCommitAt),
      tables: c.tables.map((t) => ({ table: t.table, watermark_snapshot_id: int64ToJson(t.watermarkSnapshotId), ...lagJson(t.lag, t.growingFrom) })),
      open_batches: c.openBatches.map((b) => ({
        id: b.id.toString(), instance_id: b.instanceId, created_at: b.createdAt.toISOString(), lease_expires_at: b.leaseExpiresAt.toISOString(),
        backfill: b.backfill, files: b.tables.reduce((n, t) => n + t.fileCount, 0), records: b.tables.reduce((n, t) => n + t.recordCount, 0n).toString(),
      })),
      subscriptions: c.subscriptions.map((s) => ({ name: s.subscription.name, enabled: s.subscription.enabled, pending: s.pending, dead: s.dead, delivered: s.delivered })),
    })),
    backfills: o.backfills.map((b) => ({ name: b.name, consumer: b.consumer, table: b.sourceTable, state: b.state, state_reason: b.stateReason })),
  };
}

export function overviewRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/v1/overview', {
      schema: {
        tags: ['console'],
        summary: 'Everything at a glance, problems first: tables (head, age of the last commit, oldest snapshot needed), consumers (lag in snapshots, files, bytes, records and time, open batches, triggers), backfills (admin: all; a consumer token: its own consumer and tables)',
        querystring: z.object({
          growing_window_seconds: z.coerce.number().int().min(10).max(7 * 86_400).optional().describe('lag is "growing" when more snapshots are pending now than this long ago (default 900)'),
        }).strict(),
      },
    }, async (req) => {
      const p = ctx.principal(req);
      if (!p.admin && p.consumer === null) throw apiError('FORBIDDEN', 'this token has neither the admin scope nor a consumer');
      const o = await overview(ctx.service, {
        consumer: p.admin ? null : p.consumer,
        ...(req.query.growing_window_seconds !== undefined ? { growingWindowSeconds: req.query.growing_window_seconds } : {}),
        ...(p.admin ? {} : { shownError: withoutResponseBody }),
      });
      return { viewer: { admin: p.admin, consumer: p.consumer }, ...overviewJson(o) };
    });

    app.get('/v1/consumers/:name/history', {
      schema: {
        tags: ['console'], params: nameParams,
        summary: 'A consumer\'s watermark moves (latest first) and its lag over time per table, rebuilt from the table\'s snapshots and the watermark\'s audit trail',
        querystring: z.object({
          window_seconds: z.coerce.number().int().min(60).max(90 * 86_400).optional().describe('how far back the lag series goes (default 86400)'),
          moves: z.coerce.number().int().min(1).max(1000).optional().describe('latest watermark moves per table (default 200)'),
        }).strict(),
      },
    }, async (req) => {
      requireConsumer(ctx.principal(req), req.params.name);
      const h = await consumerHistory(ctx.service, req.params.name, { windowSeconds: req.query.window_seconds ?? 86_400, moves: req.query.moves ?? 200 });
      return {
        consumer: req.params.name,
        tables: h.map((t) => ({
          table: t.table,
          error: t.error,
          watermark_moves: [...t.moves].reverse().map((m) => ({
            moved_at: m.movedAt.toISOString(), reason: m.reason, actor: m.actor, batch_id: int64ToJson(m.batchId),
            from_snapshot_id: int64ToJson(m.from?.snapshotId ?? null), to_snapshot_id: int64ToJson(m.to.snapshotId),
            to_partial_snapshot_id: int64ToJson(m.to.partialSnapshotId),
          })),
          lag: t.lag.map((p) => ({ at: new Date(p.at).toISOString(), snapshots: p.snapshots, files: p.files.toString(), bytes: p.bytes.toString(), records: p.records.toString(), seconds: p.seconds })),
        })),
      };
    });
  };
}
