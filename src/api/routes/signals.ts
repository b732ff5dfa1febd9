import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireAdmin } from '../auth.js';
import type { ApiContext } from '../context.js';
import { apiError } from '../problem.js';
import { checkSignalName, checkSignalParams, type Signal } from '../../state/index.js';

export function signalJson(s: Signal): Record<string, unknown> {
  return {
    id: s.id.toString(), name: s.name, params: s.params, sender: s.sender, consumer: s.consumer,
    batch_id: s.batchId?.toString() ?? null, created_at: s.createdAt.toISOString(),
  };
}

// The name is checked by checkSignalName (INVALID_SIGNAL_NAME, saying what a safe name is), not by the route schema.
const signalParams = z.object({ name: z.string().max(1000) }).strict();
const sendBody = z.object({
  params: z.record(z.string().max(200), z.string().max(2000)).optional().describe('string parameters that subscriptions match on, e.g. {"date": "2026-11-02"}'),
}).strict();

/**
 * Custom signals (issue 18). Who may send: an admin token, any name. A consumer token announces
 * signals only as output signals of its own batches (the commit body's `signals`), so one
 * pipeline cannot release another's subscriptions by name. An admin lists every signal; a consumer
 * token lists its consumer's output signals and the signals its subscriptions require.
 */
export function signalRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/v1/signals/:name', {
      schema: { tags: ['signals'], params: signalParams, body: sendBody.nullish(), summary: 'Send a signal with parameters; subscriptions requiring it (matched on parameters) may fire (admin)' },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      if (!p.admin) {
        throw apiError('FORBIDDEN', 'a consumer token announces signals only as output signals of its own batches: `ips step commit ID --signal name:k=v` (POST /v1/batches/{id}/commit with "signals"); sending a signal by name needs an admin token');
      }
      requireAdmin(p);
      const name = checkSignalName(req.params.name);
      const params = checkSignalParams(req.body?.params ?? {});
      const s = await ctx.service.state.repos.signals.record({ name, params, sender: p.actor });
      ctx.triggers?.poke('fire');
      return reply.code(201).send(signalJson(s));
    });

    app.get('/v1/signals', {
      schema: {
        tags: ['signals'], summary: 'Signals, newest first, with their parameters, time and sender (a consumer token: its own output signals and those its subscriptions require)',
        querystring: z.object({ name: z.string().max(1000).optional(), limit: z.coerce.number().int().positive().max(10_000).optional() }).strict(),
      },
    }, async (req) => {
      const p = ctx.principal(req);
      const name = req.query.name === undefined ? undefined : checkSignalName(req.query.name);
      // A signal's name, params and sender describe another pipeline's work: a consumer token sees
      // only its own output signals and the signals its subscriptions wait for.
      if (!p.admin && p.consumer === null) return { signals: [] };
      const list = await ctx.service.state.repos.signals.list({
        ...(name !== undefined ? { name } : {}), ...(req.query.limit ? { limit: req.query.limit } : {}),
        ...(p.admin ? {} : { visibleTo: p.consumer! }),
      });
      return { signals: list.map(signalJson) };
    });
  };
}
