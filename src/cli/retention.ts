import { Command } from 'commander';
import { addClientOptions, IpsClient, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';

/** `ips retention status|run`: bounded state, by hand (the service also runs it on its own). */

interface Counts {
  batch_file_lists_pruned: number;
  /** Absent from the result of a pass run by an ips older than batch archives. */
  batches_archived?: number;
  chunk_file_lists_pruned: number;
  batches_deleted: number;
  outbox_deleted: number;
  watermark_moves_deleted: number;
  backfills_deleted: number;
  // Absent from the result of a pass run by an ips older than these rules (read back by `status`).
  partition_arrivals_deleted?: number;
  partition_firings_deleted?: number;
  signals_deleted?: number;
  signal_consumptions_deleted?: number;
}

function renderCounts(c: Counts, verb: string): string {
  return [
    `  closed batches ${verb === 'would' ? 'would be ' : ''}archived (file lists dropped, summary, trigger and moves folded into one row): ${c.batches_archived ?? 0}`,
    `  batch file lists ${verb === 'would' ? 'would be ' : ''}dropped: ${c.batch_file_lists_pruned}`,
    `  backfill chunk file lists ${verb === 'would' ? 'would be ' : ''}dropped: ${c.chunk_file_lists_pruned}`,
    `  batches ${verb === 'would' ? 'would be ' : ''}deleted: ${c.batches_deleted}`,
    `  delivered/cancelled triggers ${verb === 'would' ? 'would be ' : ''}deleted: ${c.outbox_deleted}`,
    `  watermark moves ${verb === 'would' ? 'would be ' : ''}deleted: ${c.watermark_moves_deleted}`,
    `  finished backfills ${verb === 'would' ? 'would be ' : ''}deleted: ${c.backfills_deleted}`,
    `  fired partition values ${verb === 'would' ? 'would be ' : ''}deleted: ${c.partition_firings_deleted ?? 0} (arrivals: ${c.partition_arrivals_deleted ?? 0})`,
    `  signals ${verb === 'would' ? 'would be ' : ''}deleted: ${c.signals_deleted ?? 0} (consumptions: ${c.signal_consumptions_deleted ?? 0})`,
  ].join('\n') + '\n';
}

function renderPolicy(p: Record<string, number>): string {
  return `policy: file lists ${p.batch_files_days} d, batches ${p.batch_days} d, triggers ${p.outbox_days} d, ` +
    `watermark moves ${p.watermark_moves_days} d, backfills ${p.backfill_days} d\n`;
}

export function retentionCommand(): Command {
  const cmd = new Command('retention').description('bounded state: what the service keeps and for how long (admin)');
  cmd.addCommand(addClientOptions(new Command('status').description('the policy, whether a pass is running, and the last pass'))
    .action(async (opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const s = await new IpsClient(opts).get<{ policy: Record<string, number>; interval_seconds: number; running: boolean; claimed_by: string | null;
          last_started_at: string | null; last_finished_at: string | null; last_result: (Counts & { duration_ms?: number; completed?: boolean; error?: string }) | null }>('/v1/retention');
        if (opts.json) return printJson(s);
        let out = renderPolicy(s.policy) + `a pass every ${s.interval_seconds} s; ${s.running ? `running now on ${s.claimed_by}` : 'not running now'}\n`;
        if (s.last_result && s.last_finished_at) {
          out += `last pass finished ${s.last_finished_at} in ${s.last_result.duration_ms ?? '?'} ms${s.last_result.completed === false ? ' (cut short: the next pass goes on)' : ''}${s.last_result.error ? `, failed: ${s.last_result.error}` : ''}:\n` +
            renderCounts(s.last_result, 'did');
        } else out += 'no pass has finished yet\n';
        process.stdout.write(out);
      });
    }));
  cmd.addCommand(addClientOptions(new Command('run').description('run a pass now (--dry-run: count what it would remove, remove nothing)')
    .option('--dry-run', 'count only'))
    .action(async (opts: ClientOptions & { dryRun?: boolean }) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).post<{ dry_run: boolean; policy: Record<string, number>; counts: Counts }>('/v1/retention/run', { dry_run: opts.dryRun === true });
        if (opts.json) return printJson(r);
        process.stdout.write(renderPolicy(r.policy) + (r.dry_run ? 'a pass now would remove:\n' : 'removed:\n') + renderCounts(r.counts, r.dry_run ? 'would' : 'did'));
      });
    }));
  return cmd;
}
