// The demo pipeline's resource ratio, incremental (ips) / 14-day lookback, at two data sizes: the
// figure the Netflix article reports as "about 10%". Both pipelines run in the same process in
// the same run, stage after stage on the same simulated day (never at once), so they see the
// same machine; each run is timed from its trigger's arrival to its batch commit, CPU is the
// process's (DuckDB's threads included) over the run, and peak memory is the process's RSS
// sampled during the pipeline's runs (the in-process ips included, the same for both).
//
// - Workload: `ips demo playback` (src/playback): --days days of --sizes events a day (3% late,
//   backlogs of two devices a day), state in embedded PGlite, tables in the Hadoop layout under a
//   temporary directory (tmpfs where there is one: --work-dir), runs started by ips webhook triggers.
// - Printed per size and stage: rows, bytes and files read, wall and CPU time of each pipeline
//   and their ratio; and that both pipelines' tables are identical.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePlaybackOptions } from '../src/playback/model.js';
import { runPlayback } from '../src/playback/runner.js';
import { compareStages, ipsDatabasePerBatch, phaseBreakdown } from '../src/playback/report.js';
import { STAGES } from '../src/playback/runner.js';
import { defaultScratchDir, fileCreateMicros, fmtInt, intOption, meets, table, type BenchContext, type Benchmark } from './lib/common.js';

const OPTIONS: Record<string, string> = {
  sizes: 'comma-separated events per day, one run each (default 11000,110000: about 0.33M and 3.3M events a month)',
  days: 'simulated days (default 30)',
  profiles: 'distinct profiles (default 1000)',
  'work-dir': 'where both pipelines\' tables are written (default /dev/shm where it is a writable tmpfs, else the temp dir; see defaultScratchDir in bench/lib/common.ts)',
  'engine-threads': 'comma-separated DuckDB thread counts of both pipelines, one run of every size each (default 1,2; the demo\'s default is 1)',
};

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const sec = (ms: number): string => (ms / 1000).toFixed(1);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

async function run(ctx: BenchContext): Promise<void> {
  const sizes = (ctx.options.get('sizes') ?? '11000,110000').split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 10)) throw new Error('--sizes takes whole numbers of events per day');
  const days = intOption(ctx, 'days', 30);
  const profiles = intOption(ctx, 'profiles', 1000);
  const threadCounts = (ctx.options.get('engine-threads') ?? '1,2').split(',').map((s) => Number(s.trim()));
  if (threadCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) throw new Error('--engine-threads takes whole numbers 1..64');
  const rows: (string | number)[][] = [];
  const scratch = ctx.options.get('work-dir') ?? defaultScratchDir();
  ctx.log(`tables under ${scratch}: a file create costs ${fileCreateMicros(scratch).toFixed(0)} µs of CPU there, ${fileCreateMicros(os.tmpdir()).toFixed(0)} µs in ${os.tmpdir()} (see --work-dir)`);
  for (const threads of threadCounts) for (const perDay of sizes) {
    const workDir = fs.mkdtempSync(path.join(scratch, 'ips-bench-playback-'));
    try {
      ctx.log(`${fmtInt(perDay)} events a day for ${days} days, ${threads} engine thread${threads === 1 ? '' : 's'}…`);
      const options = parsePlaybackOptions({ days, rowsPerDay: perDay, profiles });
      const r = await runPlayback({
        options, workDir, engineThreads: threads, env: { ...process.env, DATABASE_URL: undefined },
        onProgress: (p) => { if ((p.dayIndex + 1) % 10 === 0) ctx.log(`  day ${p.dayIndex + 1}/${p.days}`); },
      });
      if (!r.verification.identical) throw new Error(`the pipelines' tables differ at ${perDay} events a day: ${JSON.stringify(r.verification, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
      const stages = compareStages(r);
      // Result row (bench/table.ts): the whole pipeline (both stages) at this size; the ratio is the target's, incremental ÷ lookback CPU.
      const total = stages.find((s) => s.stage === 'total')!;
      ctx.result({
        measure: `the demo pipeline (ips demo playback), ${fmtInt(perDay)} events a day for ${days} days, DuckDB threads ${threads}, both stages: CPU of the incremental runs and of ips's work for them ÷ the ${options.lookbackDays}-day lookback runs (identical tables checked)`,
        ips: `incremental ${sec(total.incremental.cpu_ms)} s CPU + ips ${sec(total.incremental.ips_cpu_ms)} s (rows read ${pct(total.ratio.rows)} of lookback's, wall ${pct(total.ratio.wall)}; ips's embedded database ${ipsDatabasePerBatch(r).statements_per_batch} statements a batch), peak RSS ${mib(total.incremental.peak_rss_bytes)} MiB`,
        peer: `${options.lookbackDays}-day lookback: ${sec(total.lookback.cpu_ms)} s CPU (ips's triggers for it, left out: ${sec(total.lookback.ips_cpu_ms)} s), peak RSS ${mib(total.lookback.peak_rss_bytes)} MiB (same process)`,
        ratio: pct(total.ratio.cpu),
        target: '≤ 15 %',
        met: meets(total.ratio.cpu, '<=', 0.15),
      });
      // Where each run's CPU goes (src/playback/phase-clock.ts), per stage and pipeline.
      const byPhase = phaseBreakdown(r.runs);
      console.log(`\nCPU ms per run by phase, ${fmtInt(perDay)} events a day, DuckDB threads ${threads}:\n`);
      console.log(table(['phase', ...STAGES.map((s) => `${s.pipeline} ${s.stage === 'playback_daily' ? 'stage 1' : 'stage 2'}`)],
        byPhase.map((p) => [p.phase, ...STAGES.map((s) => (p.ms_per_run[s.consumer] ?? 0).toFixed(1))])));
      for (const s of stages) {
        rows.push([
          fmtInt(perDay * days), threads, s.stage,
          fmtInt(Number(s.incremental.rows)), fmtInt(Number(s.lookback.rows)), pct(s.ratio.rows),
          pct(s.ratio.bytes), pct(s.ratio.files),
          sec(s.incremental.wall_ms), sec(s.lookback.wall_ms), pct(s.ratio.wall),
          sec(s.incremental.cpu_ms), sec(s.incremental.ips_cpu_ms), sec(s.lookback.cpu_ms), sec(s.lookback.ips_cpu_ms), pct(s.ratio.cpu),
          mib(s.incremental.peak_rss_bytes), mib(s.lookback.peak_rss_bytes),
        ]);
      }
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  }
  console.log(`\nplayback-ratio: incremental / ${14}-day lookback, ${days} simulated days, identical tables checked\n`);
  console.log(table([
    'events', 'threads', 'stage', 'rows inc', 'rows lookback', 'rows', 'bytes', 'files',
    'wall inc s', 'wall lookback s', 'wall', 'CPU inc s', 'ips inc s', 'CPU lookback s', '(ips lookback s)', 'CPU', 'peak RSS inc MiB', 'peak RSS lookback MiB',
  ], rows));
}

export const playbackRatio: Benchmark = {
  name: 'playback-ratio',
  description: 'the demo pipeline: incremental / 14-day lookback rows read, wall and CPU time, at two data sizes',
  byDefault: true,
  options: OPTIONS,
  run,
};
