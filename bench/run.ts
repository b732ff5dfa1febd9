// Benchmark runner: `npm run bench [-- --only NAME] [--results FILE.json] [--list] [--<option> VALUE …]`.
// Provisions the Python venv (scripts/provision/python.sh, idempotent), then runs each selected
// benchmark in turn. Results go to stdout; progress to stderr. A benchmark is a module exporting a
// `Benchmark` ({name, description, byDefault, run}); add it to BENCHMARKS below. For each benchmark
// the runner records wall time, CPU and peak memory of the processes it ran (bench/lib/proc-mem.ts)
// and the result rows it reported (`ctx.result`); `--results FILE.json` writes them all, with the
// machine and its load, for bench/table.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, log, machineSummary, runCommand, table, venvPython, type BenchContext, type Benchmark, type RecordedRow, type ResultRow,
} from './lib/common.js';
import { TreeMeter, mb, type TreeUsage } from './lib/proc-mem.js';
import { idleMemory } from './idle-memory.js';
import type { Results } from './table.js';
import { TABLE_OPTIONS } from './lib/manifest-table.js';
import { manifestDecode, manifestDecodeJavaBlocks } from './manifest-decode.js';
import { manifestDecodeProfile } from './manifest-decode-profile.js';
import { metadataLoad } from './metadata-load.js';
import { changePlanning } from './change-planning.js';
import { httpStep } from './http-step.js';
import { triggerLatency } from './trigger-latency.js';
import { watchCpu } from './watch-cpu.js';
import { playbackRatio } from './playback-ratio.js';
import { stateGrowth } from './state-growth.js';
import { changelog } from './changelog.js';
import { rowsOut } from './rowsout.js';
import { fleet } from './fleet.js';
import { overviewBench } from './overview.js';
import { prepareBacklog } from './prepare-backlog.js';
import { backfillScale } from './backfill-scale.js';

const BENCHMARKS: Benchmark[] = [manifestDecode, manifestDecodeJavaBlocks, manifestDecodeProfile, metadataLoad, changePlanning, httpStep, triggerLatency, watchCpu, playbackRatio, stateGrowth, fleet, overviewBench, prepareBacklog, backfillScale, rowsOut, changelog, idleMemory];

function usage(): string {
  const lines = [
    'usage: npm run bench -- [--only NAME[,NAME…]] [--results FILE.json] [--list] [--<option> VALUE …]',
    '',
    '  --results FILE.json   write every benchmark\'s wall, CPU, peak memory and result rows (for bench/table.ts)',
    '',
    'benchmarks (* = run by default):',
  ];
  for (const b of BENCHMARKS) {
    lines.push(`  ${b.byDefault ? '*' : ' '} ${b.name.padEnd(28)} ${b.description}`);
    for (const [k, v] of Object.entries(b.options ?? {})) lines.push(`      --${k.padEnd(22)} ${v}`);
  }
  lines.push('', 'generated table (manifest-* benchmarks; cached under $IPS_CACHE_DIR/bench):');
  for (const [k, v] of Object.entries(TABLE_OPTIONS)) lines.push(`      --${k.padEnd(22)} ${v}`);
  return lines.join('\n');
}

function parseArgs(argv: string[]): { only: string[] | null; list: boolean; results: string | null; options: Map<string, string> } {
  let only: string[] | null = null;
  let results: string | null = null;
  let list = false;
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else if (a === '--list') {
      list = true;
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new Error(`${a} needs a value`);
      if (name === 'only') only = value.split(',').map((s) => s.trim()).filter(Boolean);
      else if (name === 'results') results = value;
      else options.set(name, value);
    } else {
      throw new Error(`unexpected argument ${a}\n${usage()}`);
    }
  }
  return { only, list, results, options };
}

/** What `--results FILE.json` writes: its schema is bench/table.ts's, which reads it. */
type ResultsFile = Results;

function sourceDescription(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bench'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes under src/ or bench/` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** The command that reruns one benchmark with this run's options. */
function commandOf(name: string, options: Map<string, string>): string {
  const opts = [...options].map(([k, v]) => ` --${k} ${/^[\w.,:/=+-]+$/.test(v) ? v : JSON.stringify(v)}`).join('');
  return `npm run bench -- --only ${name}${opts}`;
}

/** The whole run's command line, as a user types it. */
function runCommandLine(args: string[]): string {
  return `npm run bench${args.length ? ` -- ${args.map((a) => (/^[\w.,:/=+-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}` : ''}`;
}

/** The 1-minute load average (/proc/loadavg), sampled every 5 s while a benchmark runs. */
class LoadSampler {
  private readonly start = os.loadavg();
  private readonly samples: number[] = [this.start[0]!];
  private readonly timer = setInterval(() => this.samples.push(os.loadavg()[0]!), 5000).unref();
  stop(): { start: number[]; end: number[]; min: number; max: number; mean: number } {
    clearInterval(this.timer);
    const end = os.loadavg();
    const xs = [...this.samples, end[0]!];
    return { start: this.start, end, min: Math.min(...xs), max: Math.max(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
  }
}

const usageLine = (u: TreeUsage): string =>
  `wall ${u.wallSeconds.toFixed(0)}s, CPU ${u.cpuSeconds.toFixed(0)}s (bench process + every process it started), ` +
  `peak RSS ${mb(u.peakTreeRss)} (Σ of the tree, sampled), largest process ${mb(u.peakProcessHwm)} (VmHWM: ${u.peakProcess})`;

async function main(): Promise<void> {
  const { only, list, results, options } = parseArgs(process.argv.slice(2));
  if (list) {
    console.log(usage());
    return;
  }
  const unknown = (only ?? []).filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length) throw new Error(`unknown benchmark ${unknown.join(', ')}\n${usage()}`);
  const selected = only ? BENCHMARKS.filter((b) => only.includes(b.name)) : BENCHMARKS.filter((b) => b.byDefault);

  log(`provisioning the Python venv (scripts/provision/python.sh)…`);
  await runCommand('bash', [path.join(REPO_ROOT, 'scripts', 'provision', 'python.sh')], { prefix: '' });
  const python = venvPython();
  if (!existsSync(python)) throw new Error(`${python} is missing after scripts/provision/python.sh`);
  log(machineSummary());

  const startedAt = new Date();
  const source = sourceDescription();
  const loadStart = os.loadavg();
  const runs: ResultsFile['benchmarks'] = [];
  const notRun: ResultsFile['not_run'] = BENCHMARKS.filter((b) => !selected.includes(b)).map((b) => ({
    name: b.name, why: only ? 'not named by --only' : 'not in the default set (run it with --only NAME)',
  }));
  const writeResults = (): void => {
    if (!results) return;
    const cpus = os.cpus();
    const file: ResultsFile = {
      version: 2, started_at: startedAt.toISOString(), finished_at: new Date().toISOString(),
      command: runCommandLine(process.argv.slice(2)),
      machine: { node: process.version, cpus: cpus.length, cpu_model: cpus[0]?.model ?? '?', memory_gb: Math.round(os.totalmem() / 2 ** 30) },
      load: { start: loadStart, end: os.loadavg() }, source, benchmarks: runs,
      not_run: [...notRun, ...selected.filter((b) => !runs.some((r) => r.name === b.name)).map((b) => ({ name: b.name, why: 'not reached: the run stopped before it' }))],
    };
    mkdirSync(path.dirname(path.resolve(results)), { recursive: true });
    writeFileSync(results, JSON.stringify(file, null, 2) + '\n');
    log(`results written to ${results}`);
  };

  const failures: string[] = [];
  for (const b of selected) {
    log(`── ${b.name}: ${b.description}`);
    const command = commandOf(b.name, options);
    const rows: RecordedRow[] = [];
    const ctx: BenchContext = {
      python, options, command,
      log: (m) => log(`${b.name}: ${m}`),
      result: (r: ResultRow) => {
        rows.push({ peer: null, ratio: null, target: null, met: null, command, ...r });
      },
    };
    const meter = new TreeMeter();
    const load = new LoadSampler();
    meter.start();
    let error: string | null = null;
    try {
      await b.run(ctx);
    } catch (e) {
      // The other benchmarks still run (a long run keeps what it measured); the run fails at the end.
      error = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
      failures.push(`${b.name}: ${error}`);
      log(`── ${b.name} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      const usage = meter.stop();
      const loadDuring = load.stop();
      log(`── ${b.name} done: ${usageLine(usage)}`);
      console.log(`\n[${b.name}] ${usageLine(usage)}; load average (1 min) during it ${loadDuring.min.toFixed(2)}–${loadDuring.max.toFixed(2)}, mean ${loadDuring.mean.toFixed(2)}`);
      runs.push({
        name: b.name, description: b.description, command, error,
        usage: { wall_s: usage.wallSeconds, cpu_s: usage.cpuSeconds, peak_tree_rss_bytes: usage.peakTreeRss, peak_process_hwm_bytes: usage.peakProcessHwm, peak_process: usage.peakProcess },
        load: loadDuring,
        results: rows,
      });
      writeResults(); // after each benchmark: a failure later keeps what was measured
    }
  }

  const all = runs.flatMap((r) => r.results.map((x) => ({ name: r.name, ...x })));
  if (all.length) {
    console.log(`\n== results (${machineSummary()})`);
    console.log(table(['benchmark', 'measure', 'ips', 'peer', 'ratio', 'target', 'met'],
      all.map((x) => [x.name, x.measure, x.ips, x.peer ?? '—', x.ratio ?? '—', x.target ?? '—', x.met === null ? '—' : x.met ? 'yes' : 'NO'])));
    const missed = all.filter((x) => x.met === false);
    if (missed.length) console.log(`\n   ${missed.length} target(s) NOT met: ${missed.map((x) => `${x.name}: ${x.measure}`).join('; ')}`);
  }
  if (failures.length) throw new Error(`${failures.length} benchmark(s) failed:\n  ${failures.join('\n  ')}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
