// Planning the change sets of the newest 100, 500 and 1,900 snapshots (--ranges) of a large generated
// table (bench/py/change_table.py: 2,000 fast appends × 500 data files, written by Iceberg Java),
// side by side in one run, each planner in a process of its own so that its peak RSS is its own:
//   ips              resolveRange + computeChangeSet as `ips changes` plans (compact entries, manifests
//                    read 4 at a time, uncached), in bench/lib/plan-worker.ts at Node's default heap
//   PyIceberg        tbl.incremental_append_scan(from_snapshot_id_exclusive, to_snapshot_id_inclusive).plan_files()
//   Iceberg Java     table.newIncrementalAppendScan().fromSnapshotExclusive(a).toSnapshot(b).planFiles()
//   Spark DataFrame  spark.read.format("iceberg").option("start-snapshot-id", a).option("end-snapshot-id", b)
// and, for what an incremental run replaces, the planning of a 14-day lookback full scan
// (event_ts >= start of the day 13 days before the newest) by PyIceberg, Iceberg Java and Spark.
// The engines run in long-lived workers (bench/py/plan_worker.py): interpreter, JVM and Spark
// start-up are never timed. Rounds interleave all planners, rotating the order; medians are printed.
// Every round checks that the incremental file sets agree (SHA-256 of the sorted paths), and the
// lookback sets agree between engines and with the generator's per-day file counts. Peak memory:
// each planning process's kernel high-water mark (VmHWM), reset just before the timed span
// (/proc/<pid>/clear_refs), so it is at least the RSS the process already held (printed beside it).
// PyIceberg plans only ranges up to --pyiceberg-max-range (default 500: 1,900 took 67 s and 5.4 GB).
// The `ips changes` CLI itself (plan and output) runs once per output form on the longest range,
// `node bin/ips.js changes <table> --from a --to b [--json]` under /usr/bin/time at Node's default
// heap (peak RSS = its maximum resident set); its stdout is counted as it streams past (one
// listed file per `"file_path"` or `  + ` line), never stored.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTable } from '../src/catalog/load-table.js';
import type { TableMetadata } from '../src/iceberg/metadata.js';
import { RoutingFileIO } from '../src/io/routing-file-io.js';
import {
  REPO_ROOT, cacheDir, fmtInt, intOption, intOptions, lastJsonLine, machineSummary, median, runCommand, table,
  type BenchContext, type Benchmark,
} from './lib/common.js';
import { allMet, fmtRatio, meets } from './lib/common.js'; // result rows
import { JsonChild } from './lib/json-child.js';

interface ChangeTable {
  table_dir: string;
  warehouse: string;
  identifier: string;
  table_path: string;
  location: string;
  metadata: string;
  snapshots: number;
  files_per_snapshot: number;
  data_files: number;
  snapshots_per_day: number;
  late_percent: number;
  day0: string;
  files_per_day: number[];
  avro_files: number;
  avro_bytes: number;
  iceberg: string;
  generation_seconds: number;
  cached: boolean;
}

interface Timing {
  seconds: number;
  cpu_seconds: number;
  rss_before_mb: number;
  peak_rss_mb: number;
}

interface PlanResult extends Timing {
  files: number;
  digest: string;
}

/** A planning worker: JSON commands on stdin, `@@bench <JSON>` answers on stdout (bench/lib/json-child.ts). */
function worker(name: string, cmd: string, args: string[]): JsonChild {
  // A plan takes seconds to a minute; a peer's JVM thrashing near its heap limit takes forever.
  return new JsonChild(name, cmd, args, { what: 'worker', stderr: 'lines', requestTimeoutMs: 10 * 60_000 });
}

async function ask<T>(w: JsonChild, cmd: Record<string, unknown>): Promise<T> {
  const r = await w.request<T & { error?: string }>(cmd);
  if (r.error) throw new Error(`${w.name}: ${r.error}`);
  return r;
}

/** The ancestor `n` parent steps behind the head of main, and the head. */
function lastRange(md: TableMetadata, n: number): { from: bigint; to: bigint } {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const to = md.currentSnapshotId;
  if (to === null) throw new Error('the generated table has no current snapshot');
  let cur = to;
  for (let i = 0; i < n; i++) {
    const p = byId.get(cur)?.parentSnapshotId ?? null;
    if (p === null) throw new Error(`the table's lineage is shorter than ${n} snapshots`);
    cur = p;
  }
  return { from: cur, to };
}

type Planner = 'ips' | 'java' | 'spark' | 'pyiceberg';
const PLANNERS: Planner[] = ['ips', 'java', 'spark', 'pyiceberg'];
const INC_LABEL: Record<Planner, string> = {
  ips: 'ips (resolveRange + computeChangeSet, compact)',
  java: 'Iceberg Java newIncrementalAppendScan',
  spark: 'Spark DataFrame start/end-snapshot-id',
  pyiceberg: 'PyIceberg incremental_append_scan',
};
type Other = 'java lookback' | 'spark lookback' | 'pyiceberg lookback' | 'ips load' | 'java load' | 'pyiceberg load';
const OTHER_LABEL: Record<Other, string> = {
  'pyiceberg lookback': 'PyIceberg scan(row_filter)',
  'java lookback': 'Iceberg Java newScan().filter()',
  'spark lookback': 'Spark DataFrame .where(event_ts >= …)',
  'ips load': 'ips loadTable',
  'pyiceberg load': 'PyIceberg StaticTable.from_metadata',
  'java load': 'Iceberg Java HadoopCatalog.loadTable',
};

const OPTIONS: Record<string, string> = {
  rounds: 'measured rounds per range, interleaved (default 3; a warm-up round of the first range comes first)',
  ranges: 'comma-separated range lengths in snapshots, each ending at the head (default 100,500,1900)',
  'pyiceberg-max-range': 'longest range PyIceberg plans (default 500; 1,900 takes it over a minute and 5 GB)',
  lookback: '1: also plan the 14-day lookback full scan and load metadata.json, once per round of the first range (default 1; 0: off)',
  'pyiceberg-lookback-rounds': 'rounds that include PyIceberg\'s lookback plan (default 1: it takes ~45 s of CPU)',
  'lookback-days': 'days of the lookback full scan, including the newest day (default 14)',
  snapshots: 'fast appends in the generated table (default 2000)',
  'files-per-snapshot': 'data files per append (default 500)',
  'snapshots-per-day': 'appends per day of event time (default 24, an hourly ingest)',
  'late-percent': 'percent of each append\'s files that belong to older days (default 4)',
  'table-root': 'directory holding generated tables (default $IPS_CACHE_DIR/bench)',
  planners: 'comma-separated planners of the incremental plans (default ips,java,spark,pyiceberg; ips is always run)',
  'jvm-heap': 'max heap of the JVM that Iceberg Java and Spark plan in (default 8g; at 4g Java ran out of heap on the 1,900-snapshot range)',
  cli: '1: also run `ips changes` (text and --json) once on the longest range for its peak RSS (default 1; 0: off)',
};

interface CliRun {
  format: 'text' | 'json';
  seconds: number;
  cpu_seconds: number;
  peak_rss_mb: number;
  files: number;
  output_mb: number;
}

/**
 * `ips changes` over (from, to] as a user runs it, under /usr/bin/time: wall, CPU and peak RSS of
 * the whole command. Stdout streams into this process and only its listed files are counted.
 */
function runCli(tablePath: string, from: bigint, to: bigint, format: 'text' | 'json'): Promise<CliRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-cli-'));
  const timing = path.join(dir, 'time.txt');
  const args = ['-f', '%e %U %S %M', '-o', timing, process.execPath, path.join(REPO_ROOT, 'bin', 'ips.js'),
    'changes', tablePath, '--from', from.toString(), '--to', to.toString(), ...(format === 'json' ? ['--json'] : [])];
  const marker = format === 'json' ? '"file_path": ' : '\n  + ';
  return new Promise<CliRun>((resolve, reject) => {
    const child = spawn('/usr/bin/time', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let files = 0;
    let bytes = 0;
    let tail = '';
    let errTail = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      bytes += Buffer.byteLength(d);
      const text = tail + d;
      for (let i = text.indexOf(marker); i !== -1; i = text.indexOf(marker, i + marker.length)) files++;
      tail = text.slice(-(marker.length - 1)); // a marker split between chunks is counted once
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (errTail = (errTail + d).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`ips changes${format === 'json' ? ' --json' : ''} exited with ${code}\n${errTail}`);
        const [wall, user, sys, kb] = readFileSync(timing, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        resolve({ format, seconds: wall!, cpu_seconds: user! + sys!, peak_rss_mb: kb! / 1024, files, output_mb: bytes / 2 ** 20 });
      } catch (e) {
        reject(e);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

function isoDay(day0: string, offset: number): string {
  const d = new Date(`${day0}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

function rangesOption(ctx: BenchContext): number[] {
  const text = ctx.options.get('ranges') ?? '100,500,1900';
  const out = text.split(',').map((x) => Number(x.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--ranges expects positive integers separated by commas, got ${text}`);
  return out;
}

const mb = (x: number): string => fmtInt(x);

export const changePlanning: Benchmark = {
  name: 'change-planning',
  description: 'planning 100-, 500- and 1,900-snapshot change sets on a 2,000-snapshot / 1M-file table: ips vs Iceberg Java vs Spark vs PyIceberg, CPU, wall and peak RSS; and their 14-day lookback full-scan planning',
  byDefault: true,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const { rounds, 'pyiceberg-max-range': pyMax, 'pyiceberg-lookback-rounds': pyLookback, 'lookback-days': lookbackDays } =
      intOptions(ctx, { rounds: 3, 'pyiceberg-max-range': 500, 'pyiceberg-lookback-rounds': 1, 'lookback-days': 14 });
    const lookback = (ctx.options.get('lookback') ?? '1') !== '0';
    const cliRuns = (ctx.options.get('cli') ?? '1') !== '0';
    const rangeLens = rangesOption(ctx);
    const chosen = (ctx.options.get('planners') ?? PLANNERS.join(',')).split(',').map((x) => x.trim());
    const unknown = chosen.filter((p) => !(PLANNERS as string[]).includes(p));
    if (unknown.length) throw new Error(`--planners: unknown planner(s) ${unknown.join(', ')} (known: ${PLANNERS.join(', ')})`);
    const planners0 = PLANNERS.filter((p) => p === 'ips' || chosen.includes(p));

    ctx.log('Spark jars (scripts/provision/jars.sh)…');
    await runCommand('bash', [path.join(REPO_ROOT, 'scripts', 'provision', 'jars.sh')], { prefix: '' });

    const genArgs = [
      path.join(REPO_ROOT, 'bench', 'py', 'change_table.py'),
      '--snapshots', String(intOption(ctx, 'snapshots', 2000)),
      '--files-per-snapshot', String(intOption(ctx, 'files-per-snapshot', 500)),
      '--snapshots-per-day', String(intOption(ctx, 'snapshots-per-day', 24)),
      '--late-percent', String(intOption(ctx, 'late-percent', 4)),
    ];
    const root = ctx.options.get('table-root');
    if (root) genArgs.push('--root', path.resolve(root));
    const t = lastJsonLine<ChangeTable>(await runCommand(ctx.python, genArgs, { prefix: '[generate] ' }));
    ctx.log(
      `table ${t.table_path}: ${fmtInt(t.snapshots)} snapshots, ${fmtInt(t.data_files)} data files, ${fmtInt(t.avro_files)} Avro files ` +
        `(${(t.avro_bytes / 1e6).toFixed(0)} MB), ${t.cached ? 'cached; generated' : 'generated'} in ${t.generation_seconds}s`,
    );

    const io = new RoutingFileIO();
    const md = (await loadTable(io, { kind: 'directory', location: t.table_path })).metadata;
    io.close();
    for (const n of rangeLens) if (n >= md.snapshots.length) throw new Error(`--ranges ${n} needs more than ${md.snapshots.length} snapshots`);
    const days = t.files_per_day.length;
    const sinceOffset = Math.max(0, days - lookbackDays);
    const since = `${isoDay(t.day0, sinceOffset)}T00:00:00+00:00`;
    const expectedLookback = t.files_per_day.slice(sinceOffset).reduce((a, b) => a + b, 0);

    const dumpDir = path.join(cacheDir(), 'bench', 'change-planning-paths');
    // ips at Node's default heap (no --max-old-space-size): the 1,900-snapshot plan must fit it.
    const ips = worker('ips', process.execPath, ['--expose-gc', '--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'plan-worker.ts'), t.table_path]);
    const py = worker('pyiceberg', ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'plan_worker.py'), 'pyiceberg', '--metadata', t.metadata]);
    const jvmHeap = ctx.options.get('jvm-heap') ?? '8g';
    if (!/^\d+[mg]$/.test(jvmHeap)) throw new Error(`--jvm-heap expects a size like 8g or 6000m, got ${jvmHeap}`);
    const spark = worker('spark', ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'plan_worker.py'), 'spark', '--warehouse', t.warehouse, '--identifier', t.identifier, '--driver-memory', jvmHeap]);
    try {
      const [ipsInfo, pyInfo, sparkInfo] = await Promise.all([ips.ready, py.ready, spark.ready]);
      ctx.log(`workers ready: ips on Node ${String(ipsInfo['node'])} (heap limit ${String(ipsInfo['heap_limit_mb'])} MB); ${String(pyInfo['engine'])} (${String(pyInfo['decoder'])} Avro decoder); ${String(sparkInfo['engine'])} on Java ${String(sparkInfo['java'])}`);

      const incremental = (p: Planner, from: bigint, to: bigint, dump?: string): Promise<PlanResult> => {
        const cmd = { op: 'incremental', from: from.toString(), to: to.toString(), ...(dump ? { dump } : {}) };
        switch (p) {
          case 'ips': return ask<PlanResult>(ips, cmd);
          case 'pyiceberg': return ask<PlanResult>(py, cmd);
          case 'java': return ask<PlanResult>(spark, { ...cmd, side: 'java' });
          case 'spark': return ask<PlanResult>(spark, { ...cmd, side: 'spark' });
        }
      };
      const other = (op: Other): Promise<Timing & Partial<PlanResult>> => {
        switch (op) {
          case 'pyiceberg lookback': return ask(py, { op: 'lookback', since });
          case 'java lookback': return ask(spark, { op: 'lookback', side: 'java', since });
          case 'spark lookback': return ask(spark, { op: 'lookback', side: 'spark', since });
          case 'ips load': return ask(ips, { op: 'load' });
          case 'pyiceberg load': return ask(py, { op: 'load' });
          case 'java load': return ask(spark, { op: 'load' });
        }
      };
      const fmtRun = (r: Timing & Partial<PlanResult>): string =>
        `${r.files !== undefined ? `${fmtInt(r.files)} files in ` : ''}${r.seconds.toFixed(2)}s (CPU ${r.cpu_seconds.toFixed(2)}s, peak RSS ${mb(r.peak_rss_mb)} MB)`;

      const results = new Map<string, (Timing & Partial<PlanResult>)[]>(); // "<range>|<planner>" or "<other op>"
      const record = (key: string, r: Timing & Partial<PlanResult>): void => {
        const l = results.get(key) ?? [];
        l.push(r);
        results.set(key, l);
      };
      const mismatches: string[] = [];
      const failed = new Map<string, string>(); // "<range>|<planner>" → why

      for (const [ri, n] of rangeLens.entries()) {
        const { from, to } = lastRange(md, n);
        const expected = n * t.files_per_snapshot;
        const planners = planners0.filter((p) => p !== 'pyiceberg' || n <= pyMax);
        ctx.log(`range of ${n} snapshots (${from}, ${to}]: ${fmtInt(expected)} files expected; planners ${planners.join(', ')}`);
        if (ri === 0) {
          // Warm-up (not recorded), on the newest 100 snapshots whatever the ranges: JIT for V8 and
          // the JVM, the page cache for everyone.
          const w = lastRange(md, Math.min(100, n));
          for (const p of planners) ctx.log(`  warm-up ${p.padEnd(10)} ${fmtRun(await incremental(p, w.from, w.to))}`);
        }
        for (let r = 0; r < rounds; r++) {
          const order = [...planners.slice(r % planners.length), ...planners.slice(0, r % planners.length)];
          const digests = new Map<Planner, PlanResult>();
          for (const p of order) {
            if (failed.has(`${n}|${p}`)) continue;
            try {
              const res = await incremental(p, from, to);
              digests.set(p, res);
              record(`${n}|${p}`, res);
              ctx.log(`  ${n} snapshots, round ${r + 1}/${rounds}: ${p.padEnd(10)} ${fmtRun(res)}`);
            } catch (e) {
              // A peer that fails (e.g. out of heap) is reported as such; ips failing fails the run.
              if (p === 'ips') throw e;
              const why = (e instanceof Error ? e.message : String(e)).split('\n').find((l) => /Error|error/.test(l)) ?? String(e);
              failed.set(`${n}|${p}`, why.slice(0, 120));
              ctx.log(`  ${n} snapshots, round ${r + 1}/${rounds}: ${p.padEnd(10)} FAILED: ${why}`);
            }
          }
          const ok = [...digests.values()].every((x) => x.digest === digests.get('ips')!.digest) && digests.get('ips')!.files === expected;
          if (!ok && mismatches.length === 0) {
            mkdirSync(dumpDir, { recursive: true });
            for (const p of planners) {
              if (p === 'ips' || !digests.has(p)) continue;
              const file = path.join(dumpDir, `${n}-${p}.txt`);
              await incremental(p, from, to, file);
              mismatches.push(`${p}: ${fmtInt(digests.get(p)!.files)} files, digest ${digests.get(p)!.digest.slice(0, 12)} (paths in ${file})`);
            }
            mismatches.push(`ips: ${fmtInt(digests.get('ips')!.files)} files, digest ${digests.get('ips')!.digest.slice(0, 12)}; the generator wrote ${fmtInt(expected)}`);
          }
          if (lookback && ri === 0) {
            const lb: Other[] = ['java lookback', 'spark lookback', ...(r < pyLookback ? ['pyiceberg lookback' as const] : []), 'ips load', 'pyiceberg load', 'java load'];
            for (const op of lb) {
              const res = await other(op);
              record(op, res);
              ctx.log(`  round ${r + 1}/${rounds}: ${op.padEnd(20)} ${fmtRun(res)}`);
              if (res.files !== undefined && res.files !== expectedLookback && mismatches.length === 0) {
                mismatches.push(`${op} planned ${fmtInt(res.files)} files; the generator wrote ${fmtInt(expectedLookback)} in those ${lookbackDays} days`);
              }
            }
          }
        }
      }

      // The CLI on the longest range, after the planners' rounds (its own processes, one at a time).
      const cliRange = Math.max(...rangeLens);
      const cli: CliRun[] = [];
      if (cliRuns) {
        const { from, to } = lastRange(md, cliRange);
        for (const format of ['text', 'json'] as const) {
          const r = await runCli(t.table_path, from, to, format);
          cli.push(r);
          ctx.log(`  ips changes${format === 'json' ? ' --json' : ''}, ${cliRange} snapshots: ${fmtInt(r.files)} files listed (${fmtInt(r.output_mb)} MiB) in ${r.seconds.toFixed(2)}s (CPU ${r.cpu_seconds.toFixed(2)}s, peak RSS ${mb(r.peak_rss_mb)} MB)`);
          if (r.files !== cliRange * t.files_per_snapshot && mismatches.length === 0) {
            mismatches.push(`ips changes${format === 'json' ? ' --json' : ''} listed ${fmtInt(r.files)} files; the generator wrote ${fmtInt(cliRange * t.files_per_snapshot)}`);
          }
        }
      }

      // ---- report ----
      const med = (key: string, k: keyof Timing): number => median(results.get(key)!.map((x) => x[k]));
      console.log(`\n== change-planning: ${fmtInt(t.snapshots)} snapshots, ${fmtInt(t.data_files)} data files (${t.files_per_snapshot}/snapshot, ${t.snapshots_per_day} snapshots/day over ${days} days, ${t.late_percent}% late files), day(event_ts)-partitioned v2`);
      console.log(`   ${machineSummary()} (at the end of the run)`);
      console.log(`   table written by Iceberg Java ${t.iceberg} (fast appends, HadoopCatalog) in ${t.generation_seconds}s${t.cached ? ' (reused from cache)' : ''}: ${t.table_path}`);
      console.log(`   ${fmtInt(t.avro_files)} manifests + manifest lists, ${(t.avro_bytes / 1e6).toFixed(0)} MB; the head's manifest list names ${fmtInt(t.snapshots)} manifests`);
      console.log(`   ips on Node ${String(ipsInfo['node'])}, default heap (limit ${String(ipsInfo['heap_limit_mb'])} MB), in its own process (bench/lib/plan-worker.ts, run through tsx);`);
      console.log(`   ${String(pyInfo['engine'])} on Python ${String(pyInfo['python'])} (${String(pyInfo['decoder'])} Avro decoder); ${String(sparkInfo['engine'])} on Java ${String(sparkInfo['java'])}, local[2], Iceberg worker pool ${String(sparkInfo['worker_pool_threads'])} threads, max heap ${String(sparkInfo['jvm_max_heap_mb'])} MB`);
      console.log(`   medians of ${rounds} interleaved rounds after a warm-up; every plan is cold except for the OS page cache (fresh ManifestReader, PyIceberg's manifest`);
      console.log(`   cache cleared, a freshly loaded Java Table); CPU = whole process (all threads: Java plans on its worker pool). Peak RSS = the planning process's`);
      console.log(`   high-water mark during the plan (reset before it; "before" = its RSS then: the JVM's includes Spark and earlier plans, as a long-lived JVM keeps them);`);
      console.log(`   "× ips" = that planner's figure ÷ ips's (> 1×: ips is faster or smaller)\n`);
      const rows: (string | number)[][] = [];
      for (const n of rangeLens) {
        const ipsKey = `${n}|ips`;
        for (const p of PLANNERS) {
          const key = `${n}|${p}`;
          if (!results.has(key)) {
            if (failed.has(key)) rows.push(['', INC_LABEL[p], `failed: ${failed.get(key)!}`, '', '', '', '', '', '', '']);
            else if (!planners0.includes(p)) rows.push(['', INC_LABEL[p], 'not run (--planners)', '', '', '', '', '', '', '']);
            else if (p === 'pyiceberg') rows.push(['', INC_LABEL[p], `not run (> --pyiceberg-max-range ${pyMax})`, '', '', '', '', '', '', '']);
            continue;
          }
          const w = med(key, 'seconds');
          const c = med(key, 'cpu_seconds');
          const peak = Math.max(...results.get(key)!.map((x) => x.peak_rss_mb));
          const before = median(results.get(key)!.map((x) => x.rss_before_mb));
          rows.push([
            p === 'ips' ? `${n} snapshots` : '', INC_LABEL[p], fmtInt(results.get(key)![0]!.files!), w.toFixed(2), c.toFixed(2), mb(peak), mb(before),
            p === 'ips' ? '' : `${(w / med(ipsKey, 'seconds')).toFixed(2)}×`, p === 'ips' ? '' : `${(c / med(ipsKey, 'cpu_seconds')).toFixed(2)}×`,
            p === 'ips' ? '' : `${(peak / Math.max(...results.get(ipsKey)!.map((x) => x.peak_rss_mb))).toFixed(2)}×`,
          ]);
        }
      }
      if (lookback) {
        for (const op of Object.keys(OTHER_LABEL) as Other[]) {
          if (!results.has(op)) continue;
          const rs = results.get(op)!;
          rows.push([op.endsWith('load') ? 'load metadata.json' : `${lookbackDays}-day lookback`, OTHER_LABEL[op], rs[0]!.files !== undefined ? fmtInt(rs[0]!.files) : '',
            med(op, 'seconds').toFixed(2), med(op, 'cpu_seconds').toFixed(2), mb(Math.max(...rs.map((x) => x.peak_rss_mb))), mb(median(rs.map((x) => x.rss_before_mb))), '', '', '']);
        }
      }
      for (const r of cli) {
        rows.push([`${cliRange} snapshots, CLI`, `ips changes${r.format === 'json' ? ' --json' : ', text'} (plan + output, ${fmtInt(r.output_mb)} MiB)`, fmtInt(r.files),
          r.seconds.toFixed(2), r.cpu_seconds.toFixed(2), mb(r.peak_rss_mb), '', '', '', '']);
      }
      console.log(table(['planning', 'planner', 'files', 'wall s', 'CPU s', 'peak RSS MB', 'RSS before MB', 'wall × ips', 'CPU × ips', 'peak × ips'], rows));
      if (cli.length) console.log(`   CLI rows: one run each, node bin/ips.js changes <table> --from <a> --to <b> [--json] under /usr/bin/time, Node's default heap, stdout counted by the benchmark`);
      if (mismatches.length) {
        console.log('\n   FILE SETS DISAGREE:');
        for (const m of mismatches) console.log(`   ${m}`);
        throw new Error('the planners disagree on the planned files (see above)');
      }
      console.log(`\n   incremental file sets agree in every round: ${planners0.join(' == ')}${planners0.includes('pyiceberg') ? ' (PyIceberg where it ran)' : ''} == the generator's appends × ${t.files_per_snapshot} files`);
      if (lookback) console.log(`   lookback file sets have the generator's ${fmtInt(expectedLookback)} files of those ${lookbackDays} days\n`);
      // Result rows (bench/table.ts): one per range, ips's CPU and peak RSS against Iceberg Java's (Spark's and PyIceberg's beside).
      for (const n of rangeLens) {
        const fig = (p: Planner): string => (results.has(`${n}|${p}`)
          ? `${med(`${n}|${p}`, 'cpu_seconds').toFixed(2)} s CPU, peak RSS ${fmtInt(Math.max(...results.get(`${n}|${p}`)!.map((x) => x.peak_rss_mb)))} MiB` +
            (failed.has(`${n}|${p}`) ? ` (median of the ${results.get(`${n}|${p}`)!.length} rounds before it failed: ${failed.get(`${n}|${p}`)!})` : '')
          : failed.has(`${n}|${p}`) ? `failed: ${failed.get(`${n}|${p}`)!}` : 'not run');
        const ipsPeak = Math.max(...results.get(`${n}|ips`)!.map((x) => x.peak_rss_mb));
        const javaRatio = results.has(`${n}|java`) ? med(`${n}|java`, 'cpu_seconds') / med(`${n}|ips`, 'cpu_seconds') : NaN;
        const bounded = n >= 1900; // issue 15: the 1,900-snapshot plan at Node's default heap, under 1 GB
        ctx.result({
          measure: `change set of the newest ${fmtInt(n)} snapshots (${fmtInt(n * t.files_per_snapshot)} files), CPU and peak RSS of the planning process, median of ${rounds}; ratio = Java CPU ÷ ips CPU`,
          ips: `${fig('ips')} (Node default heap)`,
          peer: `Iceberg Java: ${fig('java')}; Spark: ${fig('spark')}; PyIceberg: ${fig('pyiceberg')}`,
          ratio: fmtRatio(javaRatio),
          target: `≥ 1.5× Iceberg Java${bounded ? ', peak RSS ≤ 1 GiB' : ''}`,
          met: allMet(meets(javaRatio, '>=', 1.5), bounded ? meets(ipsPeak, '<=', 1024) : true),
        });
      }
      // Issue 15: `ips changes` over the 1,900-snapshot range at the default heap, under 1 GiB, both outputs.
      for (const r of cli) {
        const planPeak = Math.max(...results.get(`${cliRange}|ips`)!.map((x) => x.peak_rss_mb));
        const javaPeak = results.has(`${cliRange}|java`) ? Math.max(...results.get(`${cliRange}|java`)!.map((x) => x.peak_rss_mb)) : NaN;
        ctx.result({
          measure: `\`ips changes${r.format === 'json' ? ' --json' : ''}\` over the newest ${fmtInt(cliRange)} snapshots (${fmtInt(r.files)} files, ${fmtInt(r.output_mb)} MiB of output): peak RSS of the whole command (plan + streamed output), one run; ratio = Iceberg Java's planning peak ÷ the CLI's`,
          ips: `peak RSS ${fmtInt(r.peak_rss_mb)} MiB, ${r.cpu_seconds.toFixed(2)} s CPU (Node default heap)`,
          peer: `ips planner alone: peak RSS ${fmtInt(planPeak)} MiB; Iceberg Java planning: ${Number.isFinite(javaPeak) ? `peak RSS ${fmtInt(javaPeak)} MiB` : 'not run'}`,
          ratio: fmtRatio(javaPeak / r.peak_rss_mb),
          target: 'peak RSS ≤ 1 GiB',
          met: meets(r.peak_rss_mb, '<=', 1024),
        });
      }
    } finally {
      await Promise.allSettled([ips.close(), py.close(), spark.close()]);
    }
  },
};
