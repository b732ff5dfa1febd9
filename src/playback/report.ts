import { STAGES, totals, type PlaybackResult, type StageRun } from './runner.js';
import { PHASES } from './phase-clock.js';

interface Side {
  consumer: string; runs: number; files: number; rows: string; bytes: string; wall_ms: number; cpu_ms: number; peak_rss_bytes: number;
  /** The in-process ips preparing this consumer's batches, apart from its runs (runner.ts IpsWindows). */
  ips_cpu_ms: number;
}

export interface StageComparison {
  stage: string;
  incremental: Side;
  lookback: Side;
  /**
   * `cpu`: (incremental runs + ips's work for them) ÷ lookback runs. ips's work for the lookback
   * consumers is left out: it stands in for the scheduler a lookback pipeline would have anyway.
   */
  ratio: { files: number; rows: number; bytes: number; wall: number; cpu: number; peak_rss: number };
}

const ratio = (a: bigint | number, b: bigint | number): number => (Number(b) === 0 ? 0 : Number(a) / Number(b));

function side(r: PlaybackResult, consumer: string): Side {
  const t = totals(r.runs, consumer);
  return {
    consumer, runs: t.runs, files: t.read.files, rows: t.read.rows.toString(), bytes: t.read.bytes.toString(), wall_ms: Math.round(t.wallMs), cpu_ms: Math.round(t.cpuMs),
    peak_rss_bytes: t.peakRssBytes, ips_cpu_ms: Math.round(r.ipsCpuMs[consumer] ?? 0),
  };
}

function ratios(a: Side, b: Side): StageComparison['ratio'] {
  return { files: ratio(a.files, b.files), rows: ratio(BigInt(a.rows), BigInt(b.rows)), bytes: ratio(BigInt(a.bytes), BigInt(b.bytes)), wall: ratio(a.wall_ms, b.wall_ms), cpu: ratio(a.cpu_ms + a.ips_cpu_ms, b.cpu_ms), peak_rss: ratio(a.peak_rss_bytes, b.peak_rss_bytes) };
}

/** Per stage and in total: what each pipeline read and how long it ran, and the ratio. */
export function compareStages(r: PlaybackResult): StageComparison[] {
  const out: StageComparison[] = [];
  for (const stage of ['playback_daily', 'playback_daily_agg'] as const) {
    const inc = STAGES.find((s) => s.stage === stage && s.pipeline === 'incremental')!;
    const lb = STAGES.find((s) => s.stage === stage && s.pipeline === 'lookback')!;
    const a = side(r, inc.consumer);
    const b = side(r, lb.consumer);
    out.push({ stage, incremental: a, lookback: b, ratio: ratios(a, b) });
  }
  const sum = (k: 'incremental' | 'lookback'): Side => ({
    consumer: '*', runs: out.reduce((n, s) => n + s[k].runs, 0), files: out.reduce((n, s) => n + s[k].files, 0),
    rows: out.reduce((n, s) => n + BigInt(s[k].rows), 0n).toString(), bytes: out.reduce((n, s) => n + BigInt(s[k].bytes), 0n).toString(),
    wall_ms: out.reduce((n, s) => n + s[k].wall_ms, 0),
    cpu_ms: out.reduce((n, s) => n + s[k].cpu_ms, 0),
    ips_cpu_ms: out.reduce((n, s) => n + s[k].ips_cpu_ms, 0),
    peak_rss_bytes: out.reduce((n, s) => Math.max(n, s[k].peak_rss_bytes), 0),
  });
  const a = sum('incremental');
  const b = sum('lookback');
  out.push({ stage: 'total', incremental: a, lookback: b, ratio: ratios(a, b) });
  return out;
}

/**
 * CPU milliseconds per run by phase, for each consumer (month runs only, not backfill chunks):
 * PHASES in order, then `other` (the run's CPU outside every phase) and `run`.
 */
export function phaseBreakdown(runs: StageRun[]): { phase: string; ms_per_run: Record<string, number> }[] {
  const consumers = STAGES.map((s) => s.consumer).filter((c) => runs.some((r) => r.consumer === c && !r.backfill));
  const perRun = (c: string, f: (r: StageRun) => number): number => {
    const mine = runs.filter((r) => r.consumer === c && !r.backfill);
    return Math.round((mine.reduce((n, r) => n + f(r), 0) / mine.length) * 10) / 10;
  };
  const row = (phase: string, f: (r: StageRun) => number) => ({ phase, ms_per_run: Object.fromEntries(consumers.map((c) => [c, perRun(c, f)])) });
  const inPhases = (r: StageRun): number => PHASES.reduce((n, p) => n + (r.phases[p] ?? 0), 0);
  return [
    ...PHASES.map((p) => row(p, (r) => r.phases[p] ?? 0)),
    row('other (the run\'s own glue, ips in the background)', (r) => r.cpuMs - inPhases(r)),
    row('run', (r) => r.cpuMs),
  ];
}

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** The trigger path: from the commit that changed a run's source table to the webhook's arrival. */
export function triggerDelays(r: PlaybackResult): { runs: number; p50_ms: number; p99_ms: number; max_ms: number } {
  const d = r.runs.map((x) => x.triggerDelayMs).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const round = (x: number) => Math.round(x);
  return { runs: d.length, p50_ms: round(percentile(d, 0.5)), p99_ms: round(percentile(d, 0.99)), max_ms: round(d.at(-1) ?? Number.NaN) };
}

export function reportJson(r: PlaybackResult): Record<string, unknown> {
  const v = r.verification;
  const check = (c: typeof v.daily) => ({ table: c.table, rows: c.rows.toString(), differences_vs_lookback: c.differencesVsLookback?.toString() ?? null, differences_vs_recomputation: c.differencesVsRecomputation.toString() });
  return {
    options: r.options,
    engine_threads: r.engineThreads,
    ips_url: r.ipsUrl,
    warehouse: r.warehouse,
    events: r.eventsAppended.toString(),
    wall_ms: Math.round(r.wallMs),
    stages: compareStages(r),
    cpu_by_phase: phaseBreakdown(r.runs),
    identical: v.identical,
    checks: [check(v.daily), check(v.agg)],
    duplicate_deliveries: r.duplicateDeliveries,
    trigger_delay: triggerDelays(r),
    ...(r.ipsDatabase ? { ips_database: { driver: r.ipsDatabase.driver, ...ipsDatabasePerBatch(r), statements: r.ipsDatabase.statements, round_trips: r.ipsDatabase.roundTrips, transactions: r.ipsDatabase.transactions } } : {}),
  };
}

/** The in-process ips's state database work per batch (each run is one batch), over the month's days. */
export function ipsDatabasePerBatch(r: PlaybackResult): { batches: number; statements_per_batch: number; transactions_per_batch: number } {
  const n = Math.max(1, r.runs.length);
  const per = (x: number): number => Math.round((x / n) * 10) / 10;
  return { batches: r.runs.length, statements_per_batch: per(r.ipsDatabase?.statements ?? 0), transactions_per_batch: per(r.ipsDatabase?.transactions ?? 0) };
}

export const fmtInt = (v: bigint | number | string): string => BigInt(v).toLocaleString('en-US');
export function fmtBytes(v: bigint | string): string {
  const n = Number(v);
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
export const fmtSec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function reportText(r: PlaybackResult): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(`Simulated ${o.days} days from ${o.startDate}: ${fmtInt(r.eventsAppended)} playback events (${pct(o.lateFraction)} late, up to ${o.maxLatenessDays} days), lookback window ${o.lookbackDays} days; both pipelines on DuckDB with ${r.engineThreads} thread${r.engineThreads === 1 ? '' : 's'}.`);
  lines.push('');
  const rows: string[][] = [['stage', 'pipeline', 'runs', 'files read', 'rows read', 'bytes read', 'wall time', 'CPU time', 'ips CPU', 'peak RSS']];
  for (const s of compareStages(r)) {
    for (const [name, x] of [['incremental', s.incremental], ['lookback', s.lookback]] as const) {
      rows.push([name === 'incremental' ? s.stage : '', name, String(x.runs), fmtInt(x.files), fmtInt(x.rows), fmtBytes(x.bytes), fmtSec(x.wall_ms), fmtSec(x.cpu_ms),
        name === 'incremental' ? fmtSec(x.ips_cpu_ms) : `(${fmtSec(x.ips_cpu_ms)})`, fmtBytes(BigInt(x.peak_rss_bytes))]);
    }
    rows.push(['', 'incremental / lookback', '', pct(s.ratio.files), pct(s.ratio.rows), pct(s.ratio.bytes), pct(s.ratio.wall), pct(s.ratio.cpu), '', pct(s.ratio.peak_rss)]);
  }
  lines.push(table(rows));
  lines.push('CPU time: the runs\' (the engine\'s threads included). ips CPU: the in-process ips preparing the stage\'s batches apart from its runs; the ratio counts it on the incremental side and leaves out the lookback\'s (in parentheses: it stands in for the scheduler a lookback pipeline has anyway).');
  lines.push('');
  const v = r.verification;
  for (const c of [v.daily, v.agg]) {
    const ok = (c.differencesVsLookback ?? 0n) === 0n && c.differencesVsRecomputation === 0n;
    lines.push(`${ok ? '✓' : '✗'} ${c.table}: incremental and lookback ${ok ? 'identical' : 'DIFFER'} (${fmtInt(c.rows)} rows; ${fmtInt(c.differencesVsLookback ?? 0n)} rows differ between them, ${fmtInt(c.differencesVsRecomputation)} from a full recomputation)`);
  }
  const t = triggerDelays(r);
  lines.push(`Every run was started by an ips subscription's webhook trigger (${r.runs.length} runs${r.duplicateDeliveries ? `, ${r.duplicateDeliveries} redeliveries ignored` : ''}); from a table's commit to its runs' triggers: p50 ${t.p50_ms} ms, p99 ${t.p99_ms} ms.`);
  if (r.ipsDatabase) {
    const d = ipsDatabasePerBatch(r);
    lines.push(`ips's state database (${r.ipsDatabase.driver === 'pglite' ? 'embedded PGlite' : 'PostgreSQL'}): ${d.statements_per_batch} statements in ${d.transactions_per_batch} transactions per batch, triggers, deliveries and commits included (${fmtInt(r.ipsDatabase.statements)} over ${d.batches} batches).`);
  }
  lines.push(`Total ${fmtSec(r.wallMs)}. Tables: ${r.warehouse}`);
  return lines.join('\n');
}

export function progressLine(p: { dayIndex: number; days: number; date: string; eventsAppended: bigint; runs: StageRun[] }): string {
  const by = (c: string): StageRun | undefined => p.runs.find((r) => r.consumer === c);
  const pair = (a: string, b: string): string => {
    const x = by(a);
    const y = by(b);
    return `${fmtInt((x?.read.rows ?? 0n) + (y?.read.rows ?? 0n))} rows, ${fmtSec((x?.wallMs ?? 0) + (y?.wallMs ?? 0))}`;
  };
  return `day ${String(p.dayIndex + 1).padStart(String(p.days).length)}/${p.days} ${p.date}: +${fmtInt(p.eventsAppended)} events · incremental read ${pair('playback_daily', 'playback_daily_agg')} · lookback read ${pair('playback_daily_lookback', 'playback_daily_agg_lookback')}`;
}

