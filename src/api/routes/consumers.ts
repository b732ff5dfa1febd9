import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireAdmin, requireConsumer } from '../auth.js';
import type { ApiContext } from '../context.js';
import { createConsumerBody, idParams, nameParams, resetBody, subscription, tokenBody } from '../schemas.js';
import { consumerJson, consumerViewJson, tokenJson } from '../views.js';
import type { SubscriptionInput } from '../../service/ips-service.js';

function toSubscription(s: z.output<typeof subscription>): SubscriptionInput {
  return { table: s.table, ...(s.from !== undefined ? { from: s.from } : {}), ...(s.range_fields ? { rangeFields: s.range_fields } : {}) };
}

export function consumerRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/v1/consumers', {
      schema: { tags: ['consumers'], summary: 'Create a consumer with its subscriptions (admin)', body: createConsumerBody },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      requireAdmin(p);
      const b = req.body;
      const view = await ctx.service.createConsumer({
        name: b.name,
        ...(b.description !== undefined ? { description: b.description } : {}),
        ...(b.policy ? { policy: b.policy } : {}),
        ...(b.lease_seconds !== undefined ? { leaseSeconds: b.lease_seconds } : {}),
        ...(b.mode !== undefined ? { mode: b.mode } : {}),
        ...(b.properties ? { properties: b.properties } : {}),
        tables: (b.tables ?? []).map(toSubscription),
        ...(b.outputs ? { outputs: b.outputs } : {}),
      }, p.actor);
      const out: Record<string, unknown> = consumerViewJson(view);
      if (b.issue_token) {
        const t = await ctx.service.issueToken({ consumer: b.name, scopes: ['consumer'], description: 'issued with the consumer' });
        out.token = { ...tokenJson(t.record), token: t.token };
      }
      return reply.code(201).send(out);
    });

    app.get('/v1/consumers', { schema: { tags: ['consumers'], summary: 'List consumers (admin)' } }, async (req) => {
      requireAdmin(ctx.principal(req));
      return { consumers: (await ctx.service.listConsumers()).map(consumerJson) };
    });

    app.get('/v1/consumers/:name', {
      schema: { tags: ['consumers'], summary: 'A consumer: state, watermark per table, open batches', params: nameParams },
    }, async (req) => {
      requireConsumer(ctx.principal(req), req.params.name);
      return consumerViewJson(await ctx.service.getConsumer(req.params.name));
    });

    app.post('/v1/consumers/:name/subscriptions', {
      schema: { tags: ['consumers'], summary: 'Subscribe a consumer to one more table (admin)', params: nameParams, body: subscription },
    }, async (req, reply) => {
      const p = ctx.principal(req);
      requireAdmin(p);
      return reply.code(201).send(consumerViewJson(await ctx.service.subscribe(req.params.name, toSubscription(req.body), p.actor)));
    });

    app.post('/v1/consumers/:name/reset', {
      schema: {
        tags: ['consumers'], params: nameParams, body: resetBody,
        summary: 'Move the watermark(s) to "now", "start" or a snapshot id; aborts open batches and clears a stale state (admin)',
      },
    }, async (req) => {
      const p = ctx.principal(req);
      requireAdmin(p);
      const view = await ctx.service.resetConsumer(req.params.name, { to: req.body.to, ...(req.body.table ? { table: req.body.table } : {}) }, p.actor);
      return consumerViewJson(view);
    });

    app.post('/v1/consumers/:name/tokens', {
      schema: { tags: ['tokens'], summary: 'Issue a token for this consumer only; the token is shown once (admin)', params: nameParams, body: tokenBody },
    }, async (req, reply) => {
      requireAdmin(ctx.principal(req));
      const t = await ctx.service.issueToken({ consumer: req.params.name, scopes: ['consumer'], description: req.body.description ?? null });
      return reply.code(201).send({ ...tokenJson(t.record), token: t.token });
    });

    app.get('/v1/consumers/:name/tokens', {
      schema: { tags: ['tokens'], summary: 'Tokens of a consumer, without their secrets (admin)', params: nameParams },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      return { tokens: (await ctx.service.listTokens(req.params.name)).map(tokenJson) };
    });

    app.delete('/v1/tokens/:id', {
      schema: { tags: ['tokens'], summary: 'Revoke a token (admin)', params: idParams },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      const revoked = await ctx.service.revokeToken(req.params.id);
      // This replica stops honouring it at once; others within their token cache time.
      ctx.auth.forgetToken(revoked.id);
      return tokenJson(revoked);
    });
  };
}
