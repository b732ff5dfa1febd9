// Memory of an idle `ips serve`, as a user starts it (`node bin/ips.js serve`, compiled dist/),
// on the embedded PGlite (a new data directory: the first start runs initdb; then the same
// directory reopened) and on PostgreSQL. For each: the server's VmRSS and VmHWM
// (/proc/PID/status) sampled every 250 ms from its start, through --idle-seconds idle after it
// answered ready, then --rounds rounds of light API calls (health, readiness, listings, metrics,
// the OpenAPI document, the API docs page and the console), then --after-seconds more. Its child
// processes (the first start's initdb) are sampled too and reported beside it. Targets
// (issue 15): VmHWM ≤ 300 MB embedded, ≤ 150 MB on PostgreSQL.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, intOptions, machineSummary, runCommand, sleep, table, type BenchContext, type Benchmark } from './lib/common.js';
import { startPostgres, type Postgres } from './lib/postgres.js';
import { MB, descendants, mb, procMemory } from './lib/proc-mem.js';

const OPTIONS: Record<string, string> = {
  variants: 'comma-separated: pglite-first, pglite, postgres (default all three)',
  'idle-seconds': 'seconds sampled idle after ready (default 20)',
  rounds: 'rounds of light API calls after the idle part (default 3)',
  'after-seconds': 'seconds sampled after the calls (default 10)',
};

type Variant = 'pglite-first' | 'pglite' | 'postgres';
const VARIANTS: Variant[] = ['pglite-first', 'pglite', 'postgres'];

/** Issue 15's targets for the server process's VmHWM. */
export const TARGET_BYTES: Record<Variant, number> = { 'pglite-first': 300 * MB, pglite: 300 * MB, postgres: 150 * MB };

const LABEL: Record<Variant, string> = {
  'pglite-first': 'embedded PGlite, first start (initdb)',
  pglite: 'embedded PGlite, reopened',
  postgres: 'PostgreSQL',
};

/** GETs a user's first look makes: light, read-only. */
export const LIGHT_CALLS = ['/healthz', '/readyz', '/v1/tables', '/v1/consumers', '/v1/subscriptions', '/v1/overview', '/metrics', '/openapi.json', '/docs/', '/ui/'];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Whether bin/ips.js will run the compiled dist/ (its own test: dist/src/cli/main.js no older than any file under src/). */
export function compiledIsFresh(): boolean {
  try {
    return statSync(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')).mtimeMs >= newestMtime(path.join(REPO_ROOT, 'src'));
  } catch {
    return false;
  }
}

export interface ServeSample {
  /** Milliseconds since spawn. */
  t: number;
  rss: number;
  hwm: number;
  /** Σ VmRSS of its descendants (initdb on a first start). */
  childRss: number;
}

export interface ServeRun {
  pid: number;
  url: string;
  readyMs: number;
  samples: ServeSample[];
  /** Highest VmHWM seen of any descendant. */
  childHwm: number;
  /** Phase boundaries (ms since spawn). */
  idleEnd: number;
  callsEnd: number;
  calls: number;
  failedCalls: string[];
  /** Its exit code after SIGTERM (0: a clean shutdown). */
  exitCode: number | null;
}

/**
 * Starts `node bin/ips.js serve --json` with `env` (IPS_* and DATABASE_URL of ours removed
 * first), samples its memory every 250 ms from the spawn, waits for its start-up line, idles,
 * calls, idles, then stops it with SIGTERM. Used by the benchmark and by test/api/idle-memory.test.ts.
 */
export async function measureServe(env: Record<string, string>, opts: {
  idleMs: number; rounds: number; afterMs: number; adminToken: string; cwd: string;
  /** The CLI's entry point (default bin/ips.js). */
  entry?: string;
  /** Called with the server's pid after the last sample, before it is stopped. */
  beforeStop?: (pid: number) => void;
}): Promise<ServeRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('IPS_') || k === 'DATABASE_URL' || k === 'NODE_OPTIONS') delete childEnv[k];
  Object.assign(childEnv, { IPS_HOST: '127.0.0.1', IPS_PORT: '0', IPS_LOG_LEVEL: 'silent', IPS_ADMIN_TOKEN: opts.adminToken, ...env });
  const t0 = performance.now();
  const child = spawn(process.execPath, [opts.entry ?? path.join(REPO_ROOT, 'bin', 'ips.js'), 'serve', '--json'], { cwd: opts.cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  const samples: ServeSample[] = [];
  let childHwm = 0;
  const sample = (): void => {
    const m = procMemory(pid);
    if (!m) return;
    let childRss = 0;
    for (const d of descendants(pid)) {
      const c = procMemory(d);
      if (!c) continue;
      childRss += c.rss;
      childHwm = Math.max(childHwm, c.hwm);
    }
    samples.push({ t: performance.now() - t0, rss: m.rss, hwm: m.hwm, childRss });
  };
  const timer = setInterval(sample, 250);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const deadline = setTimeout(() => reject(new Error(`ips serve did not answer within 300 s: ${err}`)), 300_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        try {
          resolve(String((JSON.parse(out) as { url: string }).url));
          clearTimeout(deadline);
        } catch { /* not complete yet */ }
      });
      void exited.then((code) => reject(new Error(`ips serve exited with ${code}: ${err}`)));
    });
    sample();
    const readyMs = performance.now() - t0;
    await sleep(opts.idleMs);
    const idleEnd = performance.now() - t0;
    let calls = 0;
    const failedCalls: string[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      for (const p of LIGHT_CALLS) {
        const res = await fetch(url + p, { headers: { authorization: `Bearer ${opts.adminToken}` } });
        await res.arrayBuffer();
        calls++;
        if (!res.ok) failedCalls.push(`${p}: ${res.status}`);
      }
    }
    sample();
    const callsEnd = performance.now() - t0;
    await sleep(opts.afterMs);
    sample();
    opts.beforeStop?.(pid);
    clearInterval(timer);
    child.kill('SIGTERM');
    const exitCode = await exited;
    return { pid, url, readyMs, samples, childHwm, idleEnd, callsEnd, calls, failedCalls, exitCode };
  } finally {
    clearInterval(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(kill);
    }
  }
}

/** Figures of a run: at ready, at the end of the idle part, after the calls, and the peak. */
export function summarize(run: ServeRun): { ready: number; idle: number; after: number; hwm: number; idleMax: number } {
  const at = (t: number): number => [...run.samples].reverse().find((s) => s.t <= t)?.rss ?? NaN;
  const idle = run.samples.filter((s) => s.t >= run.readyMs && s.t <= run.idleEnd);
  return {
    ready: at(run.readyMs),
    idle: at(run.idleEnd),
    after: run.samples.at(-1)?.rss ?? NaN,
    hwm: Math.max(...run.samples.map((s) => s.hwm)),
    idleMax: Math.max(...idle.map((s) => s.rss)),
  };
}

export const idleMemory: Benchmark = {
  name: 'idle-memory',
  description: 'RSS and peak RSS of an idle `ips serve` (compiled) on the embedded PGlite (first start and reopened) and on PostgreSQL, idle and after light API calls, against issue 15\'s targets; needs PostgreSQL',
  byDefault: true,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const { 'idle-seconds': idleSeconds, rounds, 'after-seconds': afterSeconds } = intOptions(ctx, { 'idle-seconds': 20, rounds: 3, 'after-seconds': 10 });
    const variants = (ctx.options.get('variants') ?? VARIANTS.join(',')).split(',').map((s) => s.trim()).filter(Boolean) as Variant[];
    for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`--variants: unknown variant ${v} (${VARIANTS.join(', ')})`);
    if (variants.includes('pglite') && !variants.includes('pglite-first')) throw new Error('--variants: pglite reopens the directory pglite-first creates; list both');

    if (!compiledIsFresh()) {
      ctx.log('dist/ is older than src/: building it (npm run build), so that bin/ips.js runs the compiled CLI as installed');
      await runCommand('npm', ['run', 'build', '--silent'], { prefix: '[build] ' });
      if (!compiledIsFresh()) throw new Error('dist/ is still older than src/ after npm run build');
    }
    const work = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-idle-'));
    let pgs: Postgres | null = null;
    try {
      const adminToken = randomBytes(24).toString('hex');
      const runs = new Map<Variant, ServeRun>();
      for (const v of variants) {
        let env: Record<string, string>;
        if (v === 'postgres') {
          pgs ??= await startPostgres(ctx);
          env = { DATABASE_URL: await pgs.createDatabase(`ips_bench_idle_${process.pid}`), IPS_WAREHOUSE: path.join(work, 'warehouse-pg') };
        } else {
          env = { IPS_DATA_DIR: path.join(work, 'data') };
        }
        ctx.log(`${v}: ips serve (${LABEL[v]}), ${idleSeconds}s idle, ${rounds} rounds of ${LIGHT_CALLS.length} calls, ${afterSeconds}s after`);
        const run = await measureServe(env, { idleMs: idleSeconds * 1000, rounds, afterMs: afterSeconds * 1000, adminToken, cwd: work });
        if (run.failedCalls.length) throw new Error(`${v}: calls failed: ${run.failedCalls.join(', ')}`);
        runs.set(v, run);
      }

      console.log(`\n== idle-memory: \`ips serve\` (node bin/ips.js serve, compiled dist/), VmRSS / VmHWM from /proc/PID/status every 250 ms`);
      console.log(`   ${machineSummary()}`);
      if (pgs) console.log(`   ${pgs.info}`);
      console.log(`   per variant: start → ready, ${idleSeconds}s idle, ${rounds} × ${LIGHT_CALLS.length} GETs (${LIGHT_CALLS.join(' ')}), ${afterSeconds}s more\n`);
      const rows: (string | number)[][] = [];
      for (const [v, run] of runs) {
        const s = summarize(run);
        const target = TARGET_BYTES[v];
        rows.push([LABEL[v], `${(run.readyMs / 1000).toFixed(1)}s`, mb(s.ready), mb(s.idle), mb(s.after), mb(s.hwm), run.childHwm ? mb(run.childHwm) : '—', `≤ ${mb(target)}`, s.hwm <= target ? 'yes' : 'NO']);
        ctx.result({
          measure: `peak RSS (VmHWM) of \`ips serve\`, ${LABEL[v]}: start, ${idleSeconds}s idle, ${run.calls} light API calls`,
          ips: `${mb(s.hwm)} (idle ${mb(s.idle)}, after calls ${mb(s.after)}${run.childHwm ? `; initdb child process ${mb(run.childHwm)}` : ''})`,
          target: `≤ ${mb(target)}`,
          met: s.hwm <= target,
          command: `${ctx.command.replace(/ --variants \S+/, '')} --variants ${v === 'pglite' ? 'pglite-first,pglite' : v}`,
        });
      }
      console.log(table(['variant', 'ready after', 'RSS at ready', `RSS after ${idleSeconds}s idle`, 'RSS after calls', 'peak (VmHWM)', 'initdb child peak', 'target', 'met'], rows));
      console.log('\n   RSS over time (MB, one column per 2 s from the spawn):');
      for (const [v, run] of runs) {
        const cols: string[] = [];
        for (let t = 0; t <= run.samples.at(-1)!.t; t += 2000) {
          const s = [...run.samples].reverse().find((x) => x.t <= t);
          cols.push(s ? String(Math.round((s.rss + s.childRss) / MB)) : '·');
        }
        console.log(`   ${v.padEnd(13)} ${cols.join(' ')}`);
      }
      console.log('   (server + its child processes; ready at ' + [...runs].map(([v, r]) => `${v} ${(r.readyMs / 1000).toFixed(1)}s`).join(', ') + ')');
    } finally {
      await (pgs as Postgres | null)?.close().catch((e: unknown) => ctx.log(`closing PostgreSQL failed: ${String(e)}`));
      rmSync(work, { recursive: true, force: true });
    }
  },
};
