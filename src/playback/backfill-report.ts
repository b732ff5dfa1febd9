import type { ScanStats } from '../engine/duckdb.js';
import type { BackfillDemoResult, BackfillViewJson, ReRead } from './backfill-demo.js';
import type { TableCheck } from './verify.js';
import { fmtBytes, fmtInt, fmtSec, pct, table } from './report.js';

/** `ips demo backfill`'s report: the backfill, the checks, and what it re-read against a full rebuild. */

const ratio = (a: bigint | number, b: bigint | number): number => (Number(b) === 0 ? 0 : Number(a) / Number(b));
const stats = (s: ScanStats) => ({ files: s.files, rows: s.rows.toString(), bytes: s.bytes.toString() });

function reread(r: ReRead): Record<string, unknown> {
  return {
    runs: r.runs, backfill: stats(r.backfill), full_rebuild: stats(r.rebuild),
    ratio: { files: ratio(r.backfill.files, r.rebuild.files), rows: ratio(r.backfill.rows, r.rebuild.rows), bytes: ratio(r.backfill.bytes, r.rebuild.bytes) },
  };
}

const check = (c: TableCheck) => ({ table: c.table, rows: c.rows.toString(), differences_vs_recomputation: c.differencesVsRecomputation.toString() });

export function backfillReportJson(r: BackfillDemoResult): Record<string, unknown> {
  return {
    options: r.options,
    ips_url: r.ipsUrl,
    warehouse: r.warehouse,
    events: r.events.toString(),
    wall_ms: Math.round(r.wallMs),
    month_runs: r.monthRuns.length,
    logic_change: { console_millis_from: r.logic.consoleMillisFrom },
    backfill: { name: r.name, command: r.command, where: r.where, status: r.view.status, complete: r.view.complete, chunks: r.view.totals.chunks, view: r.view },
    before: {
      vs_original_logic: [check(r.before.original.daily), check(r.before.original.agg)],
      vs_new_logic: [check(r.before.corrected.daily), check(r.before.corrected.agg)],
    },
    checks: [check(r.after.daily), check(r.after.agg)],
    identical: r.after.identical,
    reread: { playback_daily: reread(r.reread.daily), playback_daily_agg: reread(r.reread.agg) },
    live_days: r.liveDays,
    live_batches: r.liveBatches,
    live_watermark_moved: r.liveWatermarkMoved,
    duplicate_deliveries: r.duplicateDeliveries,
  };
}

export function bar(done: number, total: number, width = 20): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

/** One line per change of the backfill: chunks per state, then each stage's progress. */
export function backfillProgressLine(v: BackfillViewJson): string {
  const t = v.totals;
  const states = Object.entries(t.by_state).map(([k, n]) => `${n} ${k}`).join(', ');
  const stages = v.stages.map((s) => {
    const done = s.chunks.filter((c) => c.state === (s.depth === 0 ? 'committed' : 'propagated')).length;
    return `${s.consumer} ${bar(done, s.chunks.length, 14)}`;
  });
  return `backfill ${v.name} ${v.status}: ${states} · ${stages.join(' · ')}`;
}

export function backfillReportText(r: BackfillDemoResult): string {
  const lines: string[] = [];
  const o = r.options;
  lines.push(`Simulated ${o.days} days from ${o.startDate}: ${fmtInt(r.events)} playback events, ${r.monthRuns.length} incremental runs started by ips triggers.`);
  lines.push(`From ${r.logic.consoleMillisFrom} console clients reported watch time in milliseconds; stage 1's logic was corrected and one backfill re-ran the last ${r.view.totals.chunks} days:`);
  lines.push(`  $ ${r.command}`);
  if (r.liveDays > 0) lines.push(`Meanwhile ${r.liveDays} more day(s) arrived and ran through the live pipeline beside it (${r.liveBatches} live batches of playback_daily).`);
  lines.push('');
  const rows: string[][] = [['stage', 'run by', 'runs', 'files read', 'rows read', 'bytes read']];
  for (const [stage, x] of [['playback_daily', r.reread.daily], ['playback_daily_agg', r.reread.agg]] as const) {
    rows.push([stage, stage === 'playback_daily' ? 'backfill chunks' : 'incremental batches', String(x.runs), fmtInt(x.backfill.files), fmtInt(x.backfill.rows), fmtBytes(x.backfill.bytes)]);
    rows.push(['', 'full rebuild', '1', fmtInt(x.rebuild.files), fmtInt(x.rebuild.rows), fmtBytes(x.rebuild.bytes)]);
    rows.push(['', 'backfill / rebuild', '', pct(ratio(x.backfill.files, x.rebuild.files)), pct(ratio(x.backfill.rows, x.rebuild.rows)), pct(ratio(x.backfill.bytes, x.rebuild.bytes))]);
  }
  lines.push(table(rows));
  lines.push('');
  for (const [b, a] of [[r.before.corrected.daily, r.after.daily], [r.before.corrected.agg, r.after.agg]] as const) {
    const ok = a.differencesVsRecomputation === 0n && a.rows > 0n;
    lines.push(`${ok ? '✓' : '✗'} ${a.table}: ${ok ? 'equals' : 'DIFFERS FROM'} a one-shot recomputation with the new logic (${fmtInt(a.rows)} rows, ${fmtInt(a.differencesVsRecomputation)} differ; before the backfill ${fmtInt(b.differencesVsRecomputation)} did)`);
  }
  lines.push(`${r.liveWatermarkMoved ? '✗' : '✓'} the live watermark of playback_daily ${r.liveWatermarkMoved ? 'MOVED' : 'did not move'} for the backfill${r.liveBatches ? ` (only its ${r.liveBatches} live batches moved it)` : ''}; stage 2 followed through its ordinary incremental batches`);
  lines.push(`Total ${fmtSec(r.wallMs)}. Tables: ${r.warehouse}`);
  return lines.join('\n');
}

/** The month's progress, a line per day (the incremental pipeline only). */
export function monthProgressLine(p: { dayIndex: number; days: number; date: string; eventsAppended: bigint; runs: { consumer: string; read: ScanStats; wallMs: number }[] }): string {
  const by = (c: string) => p.runs.find((r) => r.consumer === c);
  const part = (c: string) => `${c} read ${fmtInt(by(c)?.read.rows ?? 0n)} rows`;
  return `day ${String(p.dayIndex + 1).padStart(String(p.days).length)}/${p.days} ${p.date}: +${fmtInt(p.eventsAppended)} events · ${part('playback_daily')} · ${part('playback_daily_agg')}`;
}
