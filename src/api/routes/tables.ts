import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { chunkStream } from '../chunk-stream.js';
import { requireAdmin } from '../auth.js';
import type { ApiContext } from '../context.js';
import { apiError } from '../problem.js';
import { nameParams, previewQuery, registerTableBody } from '../schemas.js';
import { tableViewJson } from '../views.js';
import { describeSourceTable, type SourceTableInput } from '../../state/index.js';

export function tableRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/v1/tables', {
      schema: { tags: ['tables'], summary: 'Register a source table (admin)', body: registerTableBody },
    }, async (req, reply) => {
      requireAdmin(ctx.principal(req));
      const b = req.body;
      const ref: SourceTableInput['ref'] = b.ref.kind === 'sql'
        ? { kind: 'sql', uri: b.ref.uri, catalogName: b.ref.catalog_name ?? null, identifier: b.ref.identifier }
        : b.ref.kind === 'rest'
          ? { kind: 'rest', uri: b.ref.uri, warehouse: b.ref.warehouse ?? null, token: b.ref.token ?? null, identifier: b.ref.identifier }
          : { kind: b.ref.kind, location: b.ref.location };
      const input: SourceTableInput = { name: b.name, ref };
      if (b.branch !== undefined) input.branch = b.branch;
      if (b.properties !== undefined) input.properties = b.properties;
      if (b.s3 !== undefined) {
        input.s3 = {
          endpoint: b.s3.endpoint ?? null, region: b.s3.region ?? null, pathStyle: b.s3.path_style ?? null,
          accessKeyId: b.s3.access_key_id ?? null, secretAccessKey: b.s3.secret_access_key ?? null, sessionToken: b.s3.session_token ?? null,
        };
      }
      const view = await ctx.service.registerTable(input, { verify: b.verify !== false, ...(b.poll_interval_seconds ? { pollIntervalSeconds: b.poll_interval_seconds } : {}) });
      ctx.triggers?.poke('watch');
      return reply.code(201).send(tableViewJson(view));
    });

    app.get('/v1/tables', {
      schema: { tags: ['tables'], summary: 'List source tables (admin)' },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      return { tables: (await ctx.service.listTables()).map(describeSourceTable) };
    });

    app.get('/v1/tables/:name', {
      schema: {
        tags: ['tables'], params: nameParams,
        summary: 'A source table: its head, the oldest snapshot any consumer needs, and each consumer\'s watermark and lag in snapshots, files, bytes and records',
      },
    }, async (req) => {
      const p = ctx.principal(req);
      const view = await ctx.service.getTable(req.params.name);
      if (p.admin) return tableViewJson(view);
      // A consumer token sees the tables its consumer subscribes to, with its own row only.
      if (p.consumer === null || !view.consumers.some((c) => c.watermark.consumer === p.consumer)) {
        throw apiError('FORBIDDEN', `consumer "${p.consumer}" does not subscribe to "${req.params.name}"`);
      }
      return tableViewJson(view, p.consumer);
    });

    app.get('/v1/tables/:name/changes', {
      schema: {
        tags: ['tables'], params: nameParams, querystring: previewQuery,
        summary: 'Preview what changed in (from, to], without creating a batch or moving anything',
      },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      const q = req.query;
      const consumer = q.consumer ?? (p.admin ? undefined : p.consumer ?? undefined);
      if (!p.admin) {
        if (consumer === undefined || consumer !== p.consumer) throw apiError('FORBIDDEN', 'a consumer token previews only for its own consumer');
      }
      const policy = q.overwrite !== undefined || q.delete !== undefined
        ? { overwrite: q.overwrite ?? 'include', delete: q.delete ?? 'include' } as const
        : undefined;
      // Planned before the first byte (so its errors are problem+json), then streamed as written.
      const write = await ctx.service.preview({
        table: req.params.name,
        ...(q.from !== undefined ? { from: q.from } : {}),
        ...(q.to !== undefined ? { to: q.to } : {}),
        ...(consumer !== undefined ? { consumer } : {}),
        ...(policy ? { policy } : {}),
        ...(q.range !== undefined ? { rangeFields: q.range.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      });
      return reply.header('content-type', 'application/json; charset=utf-8').send(chunkStream(write));
    });
  };
}
