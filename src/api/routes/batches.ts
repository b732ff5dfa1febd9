import fs from 'node:fs';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isIpsError } from '../../errors.js';
import { requireConsumer } from '../auth.js';
import type { ApiContext } from '../context.js';
import { abortBody, batchState, idParams, nameParams, prepareBody } from '../schemas.js';
import { batchJson, watermarkJson } from '../views.js';
import { commitBody } from './backfills.js';
import { signalJson } from './signals.js';

export function batchRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  /** The batch, when the caller may act on it: 403 for another consumer's batch. */
  async function ownBatch(req: FastifyRequest, id: bigint) {
    const batch = await ctx.service.getBatch(id);
    requireConsumer(ctx.principal(req), batch.consumer);
    return batch;
  }

  return async (app) => {
    app.post('/v1/consumers/:name/batches', {
      schema: {
        tags: ['batches'], params: nameParams, body: prepareBody,
        summary: 'Prepare the next batch (idempotent on instance_id): 201 a new batch, 200 the existing one, 200 with status no_changes',
      },
    }, async (req, reply) => {
      requireConsumer(ctx.principal(req), req.params.name);
      const b = req.body;
      const limits = b.limits && {
        ...(b.limits.max_files !== undefined ? { maxFiles: b.limits.max_files } : {}),
        ...(b.limits.max_bytes !== undefined ? { maxBytes: b.limits.max_bytes } : {}),
        ...(b.limits.max_records !== undefined ? { maxRecords: b.limits.max_records } : {}),
      };
      const r = await ctx.service.prepare({
        consumer: req.params.name, instanceId: b.instance_id,
        ...(b.table !== undefined ? { table: b.table } : {}),
        ...(b.tables !== undefined ? { tables: b.tables } : {}),
        ...(b.max_in_flight !== undefined ? { maxInFlight: b.max_in_flight } : {}),
        ...(limits ? { limits } : {}),
      });
      if (r.kind === 'no-changes') {
        ctx.metrics.batches.inc({ event: 'no_changes' });
        return reply.code(200).send({ status: 'no_changes', batch: null, consumer: r.consumer, table: r.table, watermark: watermarkJson(r.watermark) });
      }
      ctx.metrics.batches.inc({ event: r.created ? 'prepared' : 'reused' });
      return reply.code(r.created ? 201 : 200).send({ status: r.created ? 'created' : 'existing', batch: batchJson(r.batch) });
    });

    app.get('/v1/consumers/:name/batches', {
      schema: {
        tags: ['batches'], params: nameParams,
        querystring: z.object({
          state: batchState.optional(),
          limit: z.coerce.number().int().positive().max(1000).optional(),
          order: z.enum(['oldest', 'newest']).optional().describe('oldest first (default), or the newest `limit` newest first'),
          include_files: z.enum(['true', 'false']).optional().describe('true adds each table\'s file list (default false: a batch may hold thousands; GET /v1/batches/{id} has them)'),
        }).strict(),
        summary: 'Batches of a consumer, oldest first (or newest first); file lists only with include_files=true',
      },
    }, async (req) => {
      requireConsumer(ctx.principal(req), req.params.name);
      const batches = await ctx.service.listBatches({
        consumer: req.params.name,
        ...(req.query.state ? { state: req.query.state } : {}),
        ...(req.query.limit ? { limit: req.query.limit } : {}),
        ...(req.query.order === 'newest' ? { newestFirst: true } : {}),
        files: req.query.include_files === 'true',
      });
      // Without include_files the lists are not even read (batchJson leaves out what was not loaded).
      return { batches: batches.map(batchJson) };
    });

    app.get('/v1/batches/:id', { schema: { tags: ['batches'], summary: 'A batch with its files, ranges and ICDC snapshot', params: idParams } }, async (req) => {
      return batchJson(await ownBatch(req, req.params.id));
    });

    app.get('/v1/batches/:id/rows', {
      schema: {
        tags: ['batches'], params: idParams,
        querystring: z.object({
          table: z.string().min(1).max(256).optional().describe('the source table (needed when the batch covers several)'),
          net: z.enum(['true', 'false']).optional().describe('true: the net change of the range (one ordinal); default: the changelog per snapshot'),
        }).strict(),
        produces: ['application/vnd.apache.arrow.stream'],
        summary: 'The batch\'s row changes as an Apache Arrow IPC stream (application/vnd.apache.arrow.stream): the table\'s columns (Iceberg field ids as PARQUET:field_id) and _change_type, _change_ordinal, _commit_snapshot_id; computed whole before the first byte, so errors are problem+json',
      },
    }, async (req, reply) => {
      const batch = await ownBatch(req, req.params.id);
      const r = await ctx.service.batchRows(batch, {
        ...(req.query.table !== undefined ? { table: req.query.table } : {}),
        net: req.query.net === 'true',
      });
      const stream = fs.createReadStream('', { fd: r.fd, autoClose: true });
      return reply
        .header('content-type', 'application/vnd.apache.arrow.stream')
        .header('content-length', String(r.bytes))
        .header('x-ips-rows', String(r.rows))
        .header('x-ips-rows-source', r.fromChangelogTable ? 'changelog-table' : 'computed')
        .send(stream);
    });

    app.post('/v1/batches/:id/commit', {
      schema: { tags: ['batches'], params: idParams, body: commitBody.nullish(), summary: 'Commit: move the watermark by compare-and-set; a replay is a no-op (409 CONFLICT when the base moved); a backfill chunk records its output snapshots instead' },
    }, async (req) => {
      // The caller's right to the batch is checked on its owner as the commit's transaction reads
      // it, before anything changes (a batch of another consumer is left as it was).
      const principal = ctx.principal(req);
      try {
        const r = await ctx.service.commit(req.params.id, principal.actor, req.body?.outputs ?? {},
          (req.body?.signals ?? []).map((sg) => ({ name: sg.name, params: sg.params ?? {} })), { authorize: (consumer) => requireConsumer(principal, consumer) });
        ctx.metrics.batches.inc({ event: r.alreadyCommitted ? 'commit_replayed' : 'committed' });
        if (r.signals.length > 0) ctx.triggers?.poke('fire');
        return { batch: batchJson(r.batch), already_committed: r.alreadyCommitted, watermarks: r.watermarks.map(watermarkJson), signals: r.signals.map(signalJson) };
      } catch (e) {
        if (isIpsError(e) && e.code === 'CONFLICT') ctx.metrics.batches.inc({ event: 'conflict' });
        throw e;
      }
    });

    app.post('/v1/batches/:id/abort', {
      schema: { tags: ['batches'], params: idParams, body: abortBody.nullish(), summary: 'Abort: release the batch; the next prepare hands out the same changes' },
    }, async (req) => {
      await ownBatch(req, req.params.id);
      const r = await ctx.service.abort(req.params.id, req.body?.reason ?? null);
      if (r.changed) ctx.metrics.batches.inc({ event: 'aborted' });
      return { batch: batchJson(r.batch), changed: r.changed };
    });
  };
}
