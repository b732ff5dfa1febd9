import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import client from 'prom-client';
import { z } from 'zod';
import { requireAdmin, requireConsumer } from '../auth.js';
import type { ApiContext } from '../context.js';
import { int64, name, nameParams } from '../schemas.js';
import { batchJson } from '../views.js';
import type { BackfillView } from '../../backfill/service.js';
import type { Backfill, BackfillChunk } from '../../state/index.js';

/**
 * Lineage and managed backfills over HTTP: GET /v1/lineage, PUT /v1/consumers/{name}/outputs,
 * /v1/backfills (admin creates and controls; a consumer's token sees and pulls only its own).
 */

export const createBackfillBody = z.object({
  name,
  consumer: name,
  table: name.optional().describe('the source table (default: the consumer\'s only one)'),
  where: z.string().min(1).max(2000).optional().describe('a field range over the table\'s current data, e.g. "event_date >= 2026-10-01 and event_date < 2026-10-15"'),
  snapshots: z.string().min(2).max(100).optional().describe('FROM..TO snapshot ids (FROM exclusive): replay that history with the consumer\'s policy'),
  chunk: z.string().min(1).max(40).optional().describe('day, hour, month, files:N or snapshots:N (default day for where, snapshots:1 for snapshots); a plan of more than 10,000 chunks is refused'),
  concurrency: z.number().int().positive().max(10).optional().describe('chunks in flight (default 1)'),
  order: z.enum(['oldest-first', 'newest-first']).optional(),
  max_attempts: z.number().int().positive().max(100).optional().describe('attempts per chunk before the backfill stops in failed (default 3)'),
  dry_run: z.boolean().optional().describe('plan and return the chunks without creating anything'),
  validate: z.string().min(1).max(4000).optional().describe('a shell command run once per committed chunk, with the chunk\'s range in the environment (exit 0 = valid), by `ips step commit --validate`, `ips backfills validate`, or `ips serve` when its configuration has backfill_validation on; complete needs every chunk valid'),
  validate_timeout_seconds: z.number().int().min(1).max(86_400).optional().describe('longest a validation run may take per chunk (default 600); then it is killed and the chunk is invalid'),
}).strict();

export const outputsBody = z.object({ outputs: z.array(name).max(100) }).strict();
export const backfillPrepareBody = z.object({
  instance_id: z.string().min(1).max(500).describe("the orchestrator's run id: a retried run gets the same chunk"),
}).strict();
export const retryBody = z.object({ chunk: z.number().int().nonnegative().max(2_147_483_647).optional() }).strict();
export const validationBody = z.object({
  passed: z.boolean(),
  exit_code: z.number().int().min(-2_147_483_648).max(2_147_483_647).nullable().optional(),
  output: z.string().max(100_000).optional().describe('the command\'s output (the last 4000 characters are kept)'),
}).strict();
const chunkParams = z.object({ name, index: z.coerce.number().int().nonnegative().max(2_147_483_647) }).strict();
export const commitBody = z.object({
  outputs: z.record(name, int64).optional().describe('output table → the snapshot id this run committed there (backfill chunks; default: found on the declared output tables)'),
  signals: z.array(z.object({
    name: z.string().max(200).describe('a safe identifier, e.g. daily_done'),
    params: z.record(z.string().max(200), z.string().max(2000)).optional().describe('string parameters, e.g. {"date": "2026-11-02"}'),
  }).strict()).max(16).optional().describe('output signals: announced once, by the commit that moves the batch (a replayed commit announces nothing)'),
}).strict();

function chunkJson(c: BackfillChunk): Record<string, unknown> {
  return {
    index: c.idx, state: c.state, range: c.range, files: c.fileCount, records: c.recordCount.toString(), bytes: c.byteCount.toString(),
    from_snapshot_id: c.fromSnapshotId?.toString() ?? null, to_snapshot_id: c.toSnapshotId?.toString() ?? null,
    attempts: c.attempts, batch_id: c.batchId?.toString() ?? null, instance_id: c.instanceId, error: c.lastError,
    outputs: Object.fromEntries(Object.entries(c.outputs).map(([k, v]) => [k, v.toString()])),
    validation: c.validation === null ? null : { passed: c.validation.passed, exit_code: c.validation.exitCode, output: c.validation.output, at: c.validation.at, by: c.validation.by ?? null },
    started_at: c.startedAt?.toISOString() ?? null, finished_at: c.finishedAt?.toISOString() ?? null,
    duration_seconds: c.startedAt && c.finishedAt ? (c.finishedAt.getTime() - c.startedAt.getTime()) / 1000 : null,
  };
}

export function backfillJson(b: Backfill): Record<string, unknown> {
  return {
    name: b.name, consumer: b.consumer, table: b.sourceTable, kind: b.kind, state: b.state, state_reason: b.stateReason, spec: b.spec,
    planned_on_snapshot_id: b.pinnedSnapshotId?.toString() ?? null, concurrency: b.concurrency, max_attempts: b.maxAttempts, order: b.order,
    created_by: b.createdBy, created_at: b.createdAt.toISOString(), updated_at: b.updatedAt.toISOString(), finished_at: b.finishedAt?.toISOString() ?? null,
  };
}

export function backfillViewJson(v: BackfillView): Record<string, unknown> {
  return {
    ...backfillJson(v.backfill),
    status: v.status,
    complete: v.complete,
    validation: v.validation,
    totals: {
      chunks: v.totals.chunks, by_state: v.totals.byState, files: v.totals.files, records: v.totals.records.toString(), bytes: v.totals.bytes.toString(),
      committed_records: v.totals.committedRecords.toString(), committed_bytes: v.totals.committedBytes.toString(),
    },
    throughput: { records_per_second: v.throughput.recordsPerSecond, bytes_per_second: v.throughput.bytesPerSecond, eta_seconds: v.throughput.etaSeconds },
    chunks: v.chunks.map((c, i) => {
      const d = v.deliveries.get(c.idx);
      return { ...chunkJson(c), outputs_in_lineage: v.outputsInLineage[i], trigger: d ? { subscription: d.subscription, state: d.state, run_id: d.runId } : null };
    }),
    stages: v.stages.map((s) => ({
      consumer: s.consumer, depth: s.depth, table: s.table, tracked: s.tracked, blocked: s.blocked,
      chunks: s.chunks.map((c) => ({ index: c.idx, state: c.state, snapshot_id: c.snapshotId?.toString() ?? null, passed_at: c.passedAt?.toISOString() ?? null, reason: c.reason })),
    })),
  };
}

export function backfillRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    const svc = ctx.service.backfills;

    // Chunks by state, read from the database at scrape time (every replica reports the same).
    if (!ctx.metrics.registry.getSingleMetric('ips_backfill_chunks')) {
      const state = ctx.service.state;
      new client.Gauge({
        name: 'ips_backfill_chunks', help: 'Chunks of each backfill by state (pending, running, committed, failed, cancelled)',
        labelNames: ['backfill', 'state'], registers: [ctx.metrics.registry],
        async collect() {
          this.reset();
          for (const r of await state.repos.backfills.chunkCounts()) this.set({ backfill: r.backfill, state: r.state }, r.n);
        },
      });
    }

    app.get('/v1/lineage', { schema: { tags: ['lineage'], summary: 'The pipeline graph: table → consumer (subscriptions) → table (declared outputs), consumers in dependency order (admin: it names every consumer)' } }, async (req) => {
      requireAdmin(ctx.principal(req));
      const g = await svc.lineage();
      return {
        tables: g.tables,
        consumers: g.consumers,
        order: g.order,
        edges: [
          ...g.consumers.flatMap((c) => c.inputs.map((t) => ({ from: { table: t }, to: { consumer: c.name } }))),
          ...g.consumers.flatMap((c) => c.outputs.map((t) => ({ from: { consumer: c.name }, to: { table: t } }))),
        ],
      };
    });

    app.put('/v1/consumers/:name/outputs', {
      schema: { tags: ['lineage'], params: nameParams, body: outputsBody, summary: 'Declare the tables a consumer writes (replaces the list; 409 PIPELINE_CYCLE when the graph would loop) (admin)' },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      return { consumer: req.params.name, outputs: await svc.setOutputs(req.params.name, req.body.outputs) };
    });

    app.post('/v1/backfills', {
      schema: { tags: ['backfills'], body: createBackfillBody, summary: 'Plan and create a backfill (201), or with dry_run only plan it (200) (admin)' },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      requireAdmin(p);
      const b = req.body;
      const r = {
        name: b.name, consumer: b.consumer,
        ...(b.table !== undefined ? { table: b.table } : {}),
        ...(b.where !== undefined ? { where: b.where } : {}),
        ...(b.snapshots !== undefined ? { snapshots: b.snapshots } : {}),
        ...(b.chunk !== undefined ? { chunk: b.chunk } : {}),
        ...(b.concurrency !== undefined ? { concurrency: b.concurrency } : {}),
        ...(b.order !== undefined ? { order: b.order } : {}),
        ...(b.max_attempts !== undefined ? { maxAttempts: b.max_attempts } : {}),
        ...(b.validate !== undefined ? { validate: b.validate } : {}),
        ...(b.validate_timeout_seconds !== undefined ? { validateTimeoutSeconds: b.validate_timeout_seconds } : {}),
      };
      if (b.dry_run) return reply.code(200).send({ dry_run: true, ...(await svc.dryRun(r)) });
      await svc.create(r, p.actor);
      return reply.code(201).send(backfillViewJson(await svc.get(b.name)));
    });

    app.get('/v1/backfills', {
      schema: { tags: ['backfills'], querystring: z.object({ consumer: name.optional() }).strict(), summary: 'Backfills, newest first (a consumer token: its own)' },
    }, async (req) => {
      const p = ctx.principal(req);
      const consumer = p.admin ? req.query.consumer : p.consumer ?? '';
      if (!p.admin && req.query.consumer !== undefined) requireConsumer(p, req.query.consumer);
      const rows = await svc.list(consumer !== undefined ? { consumer } : {});
      return { backfills: rows.map((r) => ({ ...backfillJson(r.backfill), chunks: r.chunks, by_state: r.counts })) };
    });

    app.get('/v1/backfills/:name', {
      schema: { tags: ['backfills'], params: nameParams, summary: 'A backfill per stage and per chunk: states, files, records, bytes, durations, errors, totals, throughput, ETA' },
    }, async (req) => {
      const p = ctx.principal(req);
      const v = await svc.get(req.params.name);
      requireConsumer(p, v.backfill.consumer);
      return backfillViewJson(v);
    });

    app.post('/v1/backfills/:name/batches', {
      schema: { tags: ['backfills'], params: nameParams, body: backfillPrepareBody, summary: 'Prepare the next chunk as a batch (idempotent on instance_id): 201 new, 200 existing, 200 status no_chunk' },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      const bf = await ctx.service.state.repos.backfills.require(req.params.name);
      requireConsumer(p, bf.consumer);
      const r = await svc.prepare(req.params.name, req.body.instance_id);
      if (r.kind === 'none') {
        return reply.code(200).send({ status: 'no_chunk', reason: r.reason, batch: null, backfill: backfillJson(r.backfill) });
      }
      ctx.metrics.batches.inc({ event: r.created ? 'prepared' : 'reused' });
      return reply.code(r.created ? 201 : 200).send({
        status: r.created ? 'created' : 'existing',
        batch: { ...batchJson(r.batch), backfill: { name: r.backfill.name, chunk: r.chunk.idx, chunks: r.chunks, range: r.chunk.range } },
      });
    });

    for (const action of ['pause', 'resume', 'cancel'] as const) {
      app.post(`/v1/backfills/:name/${action}`, {
        schema: { tags: ['backfills'], params: nameParams, summary: `${action[0]!.toUpperCase()}${action.slice(1)} a backfill (admin)` },
      }, async (req) => {
        const p = ctx.principal(req);
        requireAdmin(p);
        const b = action === 'pause' ? await svc.pause(req.params.name) : action === 'resume' ? await svc.resume(req.params.name) : await svc.cancel(req.params.name, p.actor);
        return backfillJson(b);
      });
    }

    app.post('/v1/backfills/:name/chunks/:index/validation', {
      schema: { tags: ['backfills'], params: chunkParams, body: validationBody, summary: 'Record the validation command\'s result for a committed chunk (admin, or the backfill consumer\'s token: `ips step commit --validate` and `ips backfills validate` do this)' },
    }, async (req) => {
      const p = ctx.principal(req);
      // The consumer's own run validates the chunks it commits (the same trust as committing them).
      requireConsumer(p, (await ctx.service.state.repos.backfills.require(req.params.name)).consumer);
      const out = req.body.output ?? '';
      await ctx.service.state.repos.backfills.setValidation(req.params.name, req.params.index, { passed: req.body.passed, exitCode: req.body.exit_code ?? null, output: out.slice(-4000), by: p.actor });
      return backfillViewJson(await svc.get(req.params.name));
    });

    app.post('/v1/backfills/:name/retry', {
      schema: { tags: ['backfills'], params: nameParams, body: retryBody.nullish(), summary: 'Give failed (and cancelled) chunks, or one chunk, fresh attempts and run the backfill again (admin)' },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      return backfillJson(await svc.retry(req.params.name, req.body?.chunk));
    });
  };
}
