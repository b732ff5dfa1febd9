import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { IpsError } from '../../errors.js';
import { requireAdmin } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { RetentionPolicy } from '../../state/index.js';
import { countsToJson, type RetentionService } from '../../service/retention.js';

/** Bounded state over HTTP (admin): the policy and the last pass, a pass by hand, a dry run. */

export function policyJson(p: RetentionPolicy): Record<string, number> {
  return {
    batch_files_days: p.batchFilesDays, batch_days: p.batchDays, outbox_days: p.outboxDays,
    watermark_moves_days: p.watermarkMovesDays, backfill_days: p.backfillDays,
  };
}

const runBody = z.object({
  dry_run: z.boolean().optional().describe('count what a pass would remove, remove nothing'),
}).strict();

export function retentionRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  function service(): RetentionService {
    if (!ctx.retention) throw new IpsError('NOT_READY', 'retention is not configured in this process (it is in every `ips serve`)');
    return ctx.retention;
  }
  return async (app) => {
    app.get('/v1/retention', { schema: { tags: ['retention'], summary: 'The retention policy, whether a pass is running, and the last pass (admin)' } }, async (req) => {
      requireAdmin(ctx.principal(req));
      const s = await service().status();
      return {
        policy: policyJson(s.policy), interval_seconds: s.intervalSeconds, running: s.running, claimed_by: s.claimedBy,
        last_started_at: s.lastStartedAt?.toISOString() ?? null, last_finished_at: s.lastFinishedAt?.toISOString() ?? null,
        last_result: s.lastResult,
      };
    });
    app.post('/v1/retention/run', {
      schema: { tags: ['retention'], body: runBody.nullish(), summary: 'Run a retention pass now on this replica, or count what it would remove (dry_run) (admin)' },
    }, async (req) => {
      requireAdmin(ctx.principal(req));
      const dryRun = req.body?.dry_run ?? false;
      const counts = await service().runNow({ dryRun });
      return { dry_run: dryRun, policy: policyJson(service().policy), counts: countsToJson(counts) };
    });
  };
}
