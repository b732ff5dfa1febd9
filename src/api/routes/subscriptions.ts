import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireAdmin, requireConsumer } from '../auth.js';
import type { ApiContext } from '../context.js';
import { idParams, int64, name, nameParams, policy } from '../schemas.js';
import { conditionToJson, int64ToJson, type OutboxEntry, type Subscription } from '../../state/index.js';
import { createSubscription, deleteSubscription, describeStoredSink } from '../../service/subscription-admin.js';
import { apiError } from '../problem.js';
import { conditionExtrasFromInput } from '../../service/conditions.js';
import { withoutResponseBody } from '../../sinks/http.js';

const conditionBody = z.object({
  interval_seconds: z.number().int().nonnegative().max(31 * 86_400).optional().describe('fire at most once per interval (micro-batches), e.g. 900'),
  min_files: z.number().int().positive().optional(),
  min_bytes: int64.optional(),
  min_records: int64.optional(),
  max_delay_seconds: z.number().int().positive().optional().describe('fire anyway once the oldest unfired change is this old'),
  all: z.array(name).min(1).max(100).optional().describe('an all-of group: fire only when every one of these tables (of the subscription\'s) has changes'),
  partition: z.object({
    field: z.string().min(1).max(200).describe('a partition field with a year/month/day/hour transform, e.g. event_ts_day'),
    quiet_seconds: z.number().int().positive().max(366 * 86_400).optional().describe('fire a value anyway once no commit wrote it for this long'),
  }).strict().optional().describe('partition-complete: fire once per value of the field, when every table of the group has data for it (or it went quiet)'),
  signals: z.array(z.object({
    name: z.string().max(200).describe('a safe identifier, e.g. upstream_done'),
    params: z.record(z.string().max(200), z.string().max(2000)).optional().describe('the signal must carry these values, e.g. {"date": "2026-11-02"}'),
  }).strict()).max(16).optional().describe('signals that must be there; each firing consumes one matching signal of each'),
  fire_on_signals: z.boolean().optional().describe('with signals: fire on them alone when the tables have no changes (that trigger has no batch)'),
}).strict();

const createBody = z.object({
  name,
  consumer: name,
  tables: z.array(name).min(1).max(100),
  condition: conditionBody.optional(),
  limits: z.object({ max_files: z.number().int().positive().optional(), max_bytes: int64.optional(), max_records: int64.optional() }).strict().optional(),
  sink: z.record(z.string(), z.unknown()).describe('{"type":"webhook"|"maestro"|"airflow", …}: see the README'),
  max_in_flight: z.number().int().positive().optional(),
  max_attempts: z.number().int().positive().max(1000).optional(),
  enabled: z.boolean().optional(),
  range_fields: z.array(z.string().min(1)).max(64).optional().describe("set on the consumer's watermarks of these tables: fields to get change ranges for"),
  policy: policy.optional().describe('set on the consumer: overwrite include|added-only|fail, delete include|skip|fail'),
}).strict();

/**
 * Errors as the caller may see them: the orchestrator's response body (redacted, but still the
 * orchestrator's words) only for admins; a consumer's token gets the status line.
 */
function shownError(message: string | null, admin: boolean): string | null {
  return admin ? message : withoutResponseBody(message);
}

function subscriptionJson(s: Subscription, admin = true): Record<string, unknown> {
  return {
    name: s.name,
    consumer: s.consumer,
    tables: s.tables,
    condition: conditionToJson(s.condition),
    limits: { max_files: s.limits.maxFiles ?? null, max_bytes: int64ToJson(s.limits.maxBytes), max_records: int64ToJson(s.limits.maxRecords) },
    sink: describeStoredSink(s),
    max_in_flight: s.maxInFlight,
    max_attempts: s.maxAttempts,
    enabled: s.enabled,
    next_check_at: s.nextCheckAt.toISOString(),
    pending_since: s.pendingSince?.toISOString() ?? null,
    last_fired_at: s.lastFiredAt?.toISOString() ?? null,
    fired: s.fireSeq.toString(),
    last_error: shownError(s.lastError, admin),
    created_at: s.createdAt.toISOString(),
  };
}

function triggerJson(e: OutboxEntry, admin = true): Record<string, unknown> {
  return {
    id: e.id.toString(), subscription: e.subscription, batch_id: e.batchId?.toString() ?? null, seq: e.seq.toString(), dedup_key: e.dedupKey,
    state: e.state, attempts: e.attempts, next_attempt_at: e.nextAttemptAt.toISOString(), last_error: shownError(e.lastError, admin),
    outcome: e.outcome, run_id: e.runId, delivered_at: e.deliveredAt?.toISOString() ?? null, created_at: e.createdAt.toISOString(),
    ...(e.detail.partition ? { partition: e.detail.partition } : {}),
    ...(e.detail.signals ? { signal_ids: e.detail.signals.map(String) } : {}),
  };
}

/** S3 bucket notifications (also as relayed by SNS/EventBridge-style wrappers that keep `Records`). */
const s3Notification = z.object({
  Records: z.array(z.object({ s3: z.object({ bucket: z.object({ name: z.string() }), object: z.object({ key: z.string() }) }) }).passthrough()),
}).passthrough();

export function subscriptionRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/v1/subscriptions', {
      schema: { tags: ['subscriptions'], summary: 'Create a subscription: when its tables change and the condition holds, a batch is prepared and sent to the sink (admin)', body: createBody },
    }, async (req, reply) => {
      requireAdmin(ctx.principal(req));
      const b = req.body;
      const s = await createSubscription(ctx.service.state, {
        name: b.name, consumer: b.consumer, tables: b.tables, sink: b.sink,
        ...(b.condition ? {
          condition: {
            ...(b.condition.interval_seconds !== undefined ? { intervalSeconds: b.condition.interval_seconds } : {}),
            ...(b.condition.min_files !== undefined ? { minFiles: b.condition.min_files } : {}),
            ...(b.condition.min_bytes !== undefined ? { minBytes: b.condition.min_bytes } : {}),
            ...(b.condition.min_records !== undefined ? { minRecords: b.condition.min_records } : {}),
            ...(b.condition.max_delay_seconds !== undefined ? { maxDelaySeconds: b.condition.max_delay_seconds } : {}),
            ...conditionExtrasFromInput(b.condition),
          },
        } : {}),
        ...(b.limits ? {
          limits: {
            ...(b.limits.max_files !== undefined ? { maxFiles: b.limits.max_files } : {}),
            ...(b.limits.max_bytes !== undefined ? { maxBytes: b.limits.max_bytes } : {}),
            ...(b.limits.max_records !== undefined ? { maxRecords: b.limits.max_records } : {}),
          },
        } : {}),
        ...(b.max_in_flight !== undefined ? { maxInFlight: b.max_in_flight } : {}),
        ...(b.max_attempts !== undefined ? { maxAttempts: b.max_attempts } : {}),
        ...(b.enabled !== undefined ? { enabled: b.enabled } : {}),
        ...(b.range_fields !== undefined ? { rangeFields: b.range_fields } : {}),
        ...(b.policy !== undefined ? { policy: b.policy } : {}),
      }, ctx.sinkAllowedHosts, (t) => ctx.service.load(t));
      ctx.triggers?.poke('fire');
      return reply.code(201).send(subscriptionJson(s));
    });

    app.get('/v1/subscriptions', {
      schema: { tags: ['subscriptions'], summary: 'List subscriptions (admin: all; a consumer token: its own)', querystring: z.object({ consumer: name.optional() }).strict() },
    }, async (req) => {
      const p = ctx.principal(req);
      const consumer = p.admin ? req.query.consumer : p.consumer ?? undefined;
      if (!p.admin && consumer === undefined) throw apiError('FORBIDDEN', 'this token has no consumer');
      return { subscriptions: (await ctx.service.state.repos.subscriptions.list(consumer === undefined ? {} : { consumer })).map((s) => subscriptionJson(s, p.admin)) };
    });

    app.get('/v1/subscriptions/:name', { schema: { tags: ['subscriptions'], params: nameParams, summary: 'A subscription, its sink (secrets hidden) and its triggers not yet delivered' } }, async (req) => {
      const s = await ctx.service.state.repos.subscriptions.require(req.params.name);
      const p = ctx.principal(req);
      requireConsumer(p, s.consumer);
      const open = [
        ...(await ctx.service.state.repos.outbox.list({ subscription: s.name, state: 'pending' })),
        ...(await ctx.service.state.repos.outbox.list({ subscription: s.name, state: 'dead' })),
      ];
      return { ...subscriptionJson(s, p.admin), undelivered: open.map((e) => triggerJson(e, p.admin)) };
    });

    for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
      app.post(`/v1/subscriptions/:name/${action}`, { schema: { tags: ['subscriptions'], params: nameParams, summary: `${action[0]!.toUpperCase()}${action.slice(1)} a subscription (admin)` } }, async (req) => {
        requireAdmin(ctx.principal(req));
        const s = await ctx.service.state.repos.subscriptions.setEnabled(req.params.name, enabled);
        if (enabled) ctx.triggers?.poke('fire');
        return subscriptionJson(s);
      });
    }

    app.delete('/v1/subscriptions/:name', { schema: { tags: ['subscriptions'], params: nameParams, summary: 'Delete a subscription and its undelivered triggers, aborting their batches (no run has them); a batch whose trigger was delivered stays with its run (admin)' } }, async (req) => {
      requireAdmin(ctx.principal(req));
      const r = await deleteSubscription(ctx.service.state, req.params.name);
      if (!r.deleted) throw apiError('NOT_FOUND', `subscription "${req.params.name}" does not exist`);
      return { deleted: req.params.name, aborted_batches: r.abortedBatches.map(String) };
    });

    app.get('/v1/subscriptions/:name/triggers', {
      schema: {
        tags: ['subscriptions'], params: nameParams, summary: 'Triggers of a subscription in order: pending, delivered, dead (with the last error), cancelled',
        querystring: z.object({
          state: z.enum(['pending', 'delivered', 'dead', 'cancelled']).optional(),
          limit: z.coerce.number().int().positive().max(10_000).optional(),
          order: z.enum(['oldest', 'newest']).optional().describe('oldest first (default), or the newest `limit` newest first'),
        }).strict(),
      },
    }, async (req) => {
      const s = await ctx.service.state.repos.subscriptions.require(req.params.name);
      const p = ctx.principal(req);
      requireConsumer(p, s.consumer);
      const entries = await ctx.service.state.repos.outbox.list({
        subscription: s.name, ...(req.query.state ? { state: req.query.state } : {}), ...(req.query.limit ? { limit: req.query.limit } : {}),
        ...(req.query.order === 'newest' ? { newestFirst: true } : {}),
      });
      return { triggers: entries.map((e) => triggerJson(e, p.admin)) };
    });

    app.get('/v1/subscriptions/:name/partitions', {
      schema: { tags: ['subscriptions'], params: nameParams, summary: 'A partition-complete subscription: the values fired (with their trigger) and the values waiting, with the tables that have data for them' },
    }, async (req) => {
      const s = await ctx.service.state.repos.subscriptions.require(req.params.name);
      requireConsumer(ctx.principal(req), s.consumer);
      const repos = ctx.service.state.repos;
      const waiting = new Map<string, { tables: string[]; last_commit_at: string }>();
      for (const a of await repos.partitions.unfiredArrivals(s.name)) {
        const w = waiting.get(a.value) ?? { tables: [], last_commit_at: a.lastCommitAt.toISOString() };
        w.tables.push(a.sourceTable);
        if (a.lastCommitAt.toISOString() > w.last_commit_at) w.last_commit_at = a.lastCommitAt.toISOString();
        waiting.set(a.value, w);
      }
      return {
        field: s.condition.partition?.field ?? null,
        fired: (await repos.partitions.firings(s.name)).map((f) => ({ value: f.value, reason: f.reason, trigger_id: f.outboxId.toString(), fired_at: f.firedAt.toISOString() })),
        waiting: [...waiting].map(([value, w]) => ({ value, ...w })),
      };
    });

    app.post('/v1/triggers/:id/retry', { schema: { tags: ['subscriptions'], params: idParams, summary: 'Retry a dead trigger (admin)' } }, async (req) => {
      requireAdmin(ctx.principal(req));
      const e = await ctx.service.state.repos.outbox.retry(req.params.id);
      ctx.triggers?.poke('deliver');
      return triggerJson(e);
    });

    app.post('/v1/tables/:name/events', {
      schema: { tags: ['tables'], params: nameParams, body: z.unknown().optional(), summary: 'The table changed (any body, or an S3 bucket notification): poll it now (admin)' },
    }, async (req, reply) => {
      requireAdmin(ctx.principal(req));
      if (!(await ctx.service.state.repos.watch.wake(req.params.name))) {
        await ctx.service.state.repos.sourceTables.require(req.params.name);
        await ctx.service.state.repos.watch.ensure(req.params.name);
      }
      ctx.triggers?.poke('watch');
      return reply.code(202).send({ woken: [req.params.name] });
    });

    app.post('/v1/events/s3', {
      schema: { tags: ['tables'], body: s3Notification, summary: 'An S3 bucket notification: the tables owning the objects are polled now (admin)' },
    }, async (req, reply) => {
      requireAdmin(ctx.principal(req));
      const locations = req.body.Records.map((r, i) => {
        try {
          return `s3://${r.s3.bucket.name}/${decodeURIComponent(r.s3.object.key.replace(/\+/g, ' '))}`;
        } catch {
          throw apiError('INVALID_ARGUMENT', `Records[${i}].s3.object.key is not valid URL encoding (S3 notifications %-encode object keys)`);
        }
      });
      const woken = await ctx.service.state.repos.watch.wakeByLocations(locations);
      if (woken.length) ctx.triggers?.poke('watch');
      return reply.code(202).send({ woken });
    });
  };
}
