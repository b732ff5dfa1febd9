// Shared helpers for benchmarks: where things live, running the provisioned Python, statistics
// and printing. Benchmarks print results; they are not tests and assert only what makes their
// numbers meaningful (e.g. both sides read the same entries).
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ${IPS_CACHE_DIR:-$HOME/.cache/ips}, as scripts/provision/lib.sh computes it. */
export function cacheDir(): string {
  const env = process.env['IPS_CACHE_DIR'];
  return env ? path.resolve(env) : path.join(process.env['HOME'] || os.homedir() || '/root', '.cache', 'ips');
}

/** The venv scripts/provision/python.sh maintains. */
export function venvPython(): string {
  return path.join(cacheDir(), 'venv', 'bin', 'python');
}

/**
 * One figure a benchmark reports, as a line of the benchmark table (docs/development.md, written
 * by bench/table.ts from `npm run bench -- --results FILE.json`). Values are display text, with the
 * unit; the benchmark formats them as it prints them.
 */
export interface ResultRow {
  /** What is measured, e.g. "idle RSS of `ips serve`, embedded PGlite". */
  measure: string;
  /** ips's figure, e.g. "212 MB". */
  ips: string;
  /** The peer it is compared with in the same run, e.g. "PyIceberg: 21,000/s"; null when there is none. */
  peer?: string | null;
  /** ips ÷ peer (or the ratio the measure names), e.g. "1.37×"; null when there is none. */
  ratio?: string | null;
  /** The target, e.g. "≤ 300 MB"; null when there is none. */
  target?: string | null;
  /** Whether the target is met; null when there is no target. */
  met?: boolean | null;
  /** The command that reproduces the row; default: this benchmark with the options of this run. */
  command?: string;
}

/** A row as recorded: every field present. */
export type RecordedRow = Required<ResultRow>;

export interface BenchContext {
  /** Python of the provisioned venv (pyiceberg, pyarrow). */
  python: string;
  /** Options after the benchmark runner's own (`--rounds`, `--manifests`, …), by name. */
  options: Map<string, string>;
  log(msg: string): void;
  /** Reports one result row (printed at the end of the run, written by `--results FILE.json`). */
  result(row: ResultRow): void;
  /** `npm run bench -- --only <this benchmark> <the options of this run>`: the default command of a row. */
  command: string;
}

export interface Benchmark {
  name: string;
  description: string;
  /** Run by a plain `npm run bench`; others only with `--only`. */
  byDefault: boolean;
  /** Options this benchmark reads from `ctx.options`, for --help. */
  options?: Record<string, string>;
  /** Prints its own results; throws when the measurement is invalid (e.g. counts differ). */
  run(ctx: BenchContext): Promise<void>;
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export function intOption(ctx: BenchContext, name: string, dflt: number): number {
  const v = ctx.options.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
}

/** Integer options by name, each with its default (see intOption), read in the order given. */
export function intOptions<K extends string>(ctx: BenchContext, defaults: Record<K, number>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const [name, dflt] of Object.entries(defaults) as [K, number][]) out[name] = intOption(ctx, name, dflt);
  return out;
}

/** An integer option with no default of the benchmark's own (the service's applies): null when not given. */
export function optionalIntOption(ctx: BenchContext, name: string): number | null {
  return ctx.options.get(name) !== undefined ? intOption(ctx, name, 1) : null;
}

/**
 * Run a command; stderr streams through (prefixed), stdout is collected and returned.
 * Rejects with the tail of stderr when it exits non-zero.
 */
export function runCommand(cmd: string, args: string[], opts: { prefix: string; cwd?: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errTail = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      errTail = (errTail + d).slice(-4000);
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const l of lines) process.stderr.write(`${opts.prefix}${l}\n`);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (partial) process.stderr.write(`${opts.prefix}${partial}\n`);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${errTail}`));
    });
  });
}

/** Last non-empty stdout line parsed as JSON. */
export function lastJsonLine<T>(stdout: string): T {
  const line = stdout.trim().split('\n').filter((l) => l.trim()).pop();
  if (!line) throw new Error('expected a JSON line on stdout, got nothing');
  return JSON.parse(line) as T;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Pcts {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles. */
export function pcts(xs: readonly number[]): Pcts {
  const a = Array.from(Float64Array.from(xs).sort());
  const at = (q: number): number => (a.length ? a[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))]! : NaN);
  return { n: a.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: a.length ? a[a.length - 1]! : NaN, mean: a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN };
}

/** Milliseconds with 2, 1 or 0 decimals (below 10, below 100, above); '—' when not finite. */
export const ms = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) < 10 ? x.toFixed(2) : Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0)) : '—');

/** Runs fn over items with at most `concurrency` in flight (workers taking the next item). */
export async function pool<T>(items: T[], concurrency: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export const sleep = (millis: number): Promise<void> => new Promise((r) => setTimeout(r, millis));

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtRate = (perSec: number): string => `${fmtInt(perSec)}/s`;
export const fmtSec = (s: number): string => `${s.toFixed(2)}s`;

// ---- result rows (ctx.result): figures formatted the same way in every benchmark ----

/** Bytes as whole MiB, labelled so. */
export const fmtMiB = (bytes: number): string => (Number.isFinite(bytes) && bytes > 0 ? `${fmtInt(bytes / 2 ** 20)} MiB` : '—');
/** A ratio, e.g. "1.37×"; '—' when not finite (a side missing or zero). */
export const fmtRatio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
/** Whether a measured figure meets a bound; null when it was not measured (NaN), so the table says "—", not "no". */
export const meets = (x: number, op: '>=' | '<=', bound: number): boolean | null =>
  Number.isFinite(x) ? (op === '>=' ? x >= bound : x <= bound) : null;
/** Conjunction of targets: false if any is missed, null if none could be judged and none missed. */
export const allMet = (...xs: (boolean | null)[]): boolean | null =>
  xs.some((x) => x === false) ? false : xs.every((x) => x === true) ? true : null;

/** Fixed-width text table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function machineSummary(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? '?'}, load average ${load}`;
}

/**
 * Where benchmarks write the files they measure: /dev/shm when it is a writable directory, else the
 * temp dir. On this project's machines the disk is ext4 mounted with online discard, and a file
 * create there costs 20–800 µs of kernel CPU depending on what was deleted nearby lately: it swung
 * http-step 2× between runs and weighed on the lookback pipeline (hundreds of files a run) more than
 * on the incremental one. tmpfs costs the same every run. Benchmarks print both costs (fileCreateMicros).
 */
export function defaultScratchDir(): string {
  try {
    accessSync('/dev/shm', fsConstants.W_OK);
    return statSync('/dev/shm').isDirectory() ? '/dev/shm' : os.tmpdir();
  } catch {
    return os.tmpdir();
  }
}

/** CPU µs per create + write + close of a 4 KB file in `dir` (200 files, removed after), for the report. */
export function fileCreateMicros(dir: string): number {
  const probe = mkdtempSync(path.join(dir, 'ips-create-probe-'));
  try {
    const data = Buffer.alloc(4096, 1);
    const c0 = process.cpuUsage();
    for (let i = 0; i < 200; i++) writeFileSync(path.join(probe, `f-${i}.avro`), data, { flag: 'wx' });
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 200;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
