// Prepare → commit round trips per second over HTTP, against PostgreSQL and against the embedded
// PGlite side by side in one run, driven by autocannon.
//
// - The source table is a small real Iceberg table written by PyIceberg (bench/py/step_table.py:
//   appends × files-per-snapshot Parquet files, cached under $IPS_CACHE_DIR/bench).
// - Each backend gets its own ips server (src/api/server.ts startServer) in its own Node process
//   (bench/lib/http-step-server.ts), token auth on, logging off; the load generator runs here.
// - PostgreSQL comes from the test harness (test/setup/global-setup.ts: the docker-compose stack
//   when it answers, otherwise a private server on a loopback port, started with the test
//   settings); the benchmark uses a database of its own there, dropped at the end. PGlite is
//   DATABASE_URL=memory: inside the server process.
// - One autocannon connection per consumer (a consumer has one batch in flight at most). Each
//   connection loops: POST /v1/consumers/{c}/batches {limits:{max_files}} → POST
//   /v1/batches/{id}/commit, the batch id chained from the prepare's response. A consumer that
//   has consumed the whole table (prepare → no_changes) is reset to the start by the admin and
//   goes on. Every phase starts with fresh consumers (empty ICDC tables).
// - Second figure: the no-changes fast path (consumers subscribed at the head: every prepare
//   answers 200 no_changes after loading the table and checking the watermark).
// - Phases are bounded by --duration; afterwards every connection finishes the cycle it is in
//   (its commit still goes out) and only then stops, so that no batch is left open and every
//   commit's answer is seen. Rates and latencies count only answers inside the window.
// - At the end, per backend: the commits answered 200 must equal the committed batches in the
//   state, each with exactly one watermark move (reason commit), and every watermark's version
//   must equal 1 + its commits + its resets.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type autocannon from 'autocannon';
import type { VerifyResult } from './lib/http-step-server.js';
import {
  REPO_ROOT, allMet, defaultScratchDir, fileCreateMicros, fmtInt, intOption, intOptions, lastJsonLine, machineSummary, meets, median, ms, pcts, runCommand, table,
  type BenchContext, type Benchmark, type Pcts,
} from './lib/common.js';
import { Ips } from './lib/ips-server.js';
import { startPostgres } from './lib/postgres.js';
import { startDurablePostgres, type DurablePostgres } from './lib/postgres-durable.js';
import { pgCpuSeconds } from './lib/proc-cpu.js';
import type { DatabaseStats } from '../src/state/database.js';

interface StepTable {
  table_path: string;
  snapshots: number;
  files_per_snapshot: number;
  data_files: number;
  rows_per_file: number;
  pyiceberg: string;
  generation_seconds: number;
  cached: boolean;
}

type Backend = 'postgres' | 'postgres-durable' | 'pglite';
const BACKENDS: Backend[] = ['postgres', 'postgres-durable', 'pglite'];
type Mode = 'full' | 'nochanges';

const BACKEND_LABEL: Record<Backend, string> = { postgres: 'PostgreSQL', 'postgres-durable': 'PG durable', pglite: 'PGlite' };
const isPg = (b: Backend): boolean => b !== 'pglite';
const MODE_LABEL: Record<Mode, string> = { full: 'prepare+commit', nochanges: 'no-changes prepare' };

const OPTIONS: Record<string, string> = {
  duration: 'seconds per measured phase (default 10)',
  warmup: 'seconds of warm-up per backend and phase kind, not reported (default 3)',
  connections: 'concurrent connections, one consumer each (default 16)',
  rounds: 'measured rounds; each runs every phase on every backend, alternating which backend goes first (default 1)',
  'max-files': 'limits.max_files of every prepare (default 1)',
  backends: 'comma-separated: postgres (the harness\'s, fsync=off, synchronous_commit=off), postgres-durable (a private server, fsync=on, synchronous_commit=on), pglite (default all three)',
  'pool-max': 'IPS_DB_POOL_MAX of the PostgreSQL server (default: ips\'s, 10)',
  'step-snapshots': 'appends in the generated source table (default 8)',
  'step-files-per-snapshot': 'data files per append (default 25)',
  'warehouse-dir': 'where the ICDC tables are written (default /dev/shm where it is a writable tmpfs, else the temp dir): on this machine\'s disk (ext4 with online discard) a file create costs 20–800 µs of kernel CPU depending on what was deleted nearby lately, which swung the figures 2× between runs',
  'cpu-prof': 'a directory: a V8 CPU profile of the ips server for each measured phase is written there (<backend>-<phase>-r<round>.cpuprofile)',
};

// ---- small helpers ----


const fmtPcts = (p: Pcts): string => `p50 ${ms(p.p50)} p90 ${ms(p.p90)} p99 ${ms(p.p99)} max ${ms(p.max)} ms`;
const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '—');

// ---- peak memory of a server process ----

/** Resets the peak RSS the kernel keeps for a process (VmHWM), so that it covers one phase. */
function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* not Linux, or not allowed: the peak then covers the process's life so far */
  }
}

/** VmHWM of a process in bytes (NaN when unknown). */
function peakRss(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const mib = (b: number): string => (Number.isFinite(b) ? `${(b / 1048576).toFixed(0)} MiB` : '—');

// ---- the servers ----

interface Server {
  backend: Backend;
  /** Its ips server process (bench/lib/http-step-server.ts). */
  ips: Ips;
  /** The PostgreSQL postmaster, when it runs on this machine (its CPU time is read from /proc). */
  postmaster: number | null;
  /** Commits answered 200 (already_committed false), per consumer, over the whole run. */
  commits: Map<string, number>;
}

/** The admin API of a backend's server; a failure names the backend. */
function api<T = Record<string, unknown>>(srv: Server, method: string, p: string, body?: unknown): Promise<T> {
  return srv.ips.api<T>(method, p, body).catch((e: unknown) => {
    throw new Error(`${BACKEND_LABEL[srv.backend]}: ${e instanceof Error ? e.message : String(e)}`);
  });
}

interface Consumer {
  name: string;
  token: string;
}

async function createConsumers(srv: Server, prefix: string, n: number, from: 'start' | 'now'): Promise<Consumer[]> {
  const out: Consumer[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-c${String(i).padStart(3, '0')}`;
    const r = await api<{ token: { token: string } }>(srv, 'POST', '/v1/consumers', { name, tables: [{ table: 'events', from }], issue_token: true });
    out.push({ name, token: r.token.token });
  }
  return out;
}

// ---- one phase: autocannon with a per-connection request sequence ----

type Kind = 'prepare' | 'commit' | 'no_changes' | 'reset' | 'abort' | 'drain' | 'error';
type Next = { op: 'commit'; batchId: string } | { op: 'reset' } | { op: 'abort'; batchId: string } | null;

interface Conn {
  consumer: Consumer;
  next: Next;
  /** What the request in flight is. */
  sent: 'prepare' | 'commit' | 'reset' | 'abort' | 'drain';
  /** How its answer was classified (read by the autocannon 'response' event right after onResponse). */
  last: Kind | null;
}

interface PhaseResult {
  backend: Backend;
  mode: Mode;
  round: number;
  seconds: number;
  /** Round trips (full) or no-changes prepares answered inside the window. */
  ops: number;
  rate: number;
  perSecond: number[];
  lat: { prepare: number[]; commit: number[]; no_changes: number[] };
  counts: Record<Kind, number>;
  existing: number;
  errors: Map<string, number>;
  /** CPU seconds inside the window (the operations they paid for: `ops`). */
  serverCpu: number;
  /** The ips server's state-database counts inside the window (the operations they paid for: `ops`). */
  db: DatabaseStats;
  /** Peak resident set of the ips server process over the phase (VmHWM after resetting it), bytes. */
  serverPeakRss: number;
  pgCpu: number;
  driverCpu: number;
  drainMs: number;
  autocannon: autocannon.Result;
  consumers: number;
  batchesPerConsumer: number;
}

function describeProblem(status: number, body: string): string {
  try {
    const p = JSON.parse(body) as { code?: string; detail?: string };
    return `${status} ${p.code ?? ''} ${(p.detail ?? '').slice(0, 160)}`.trim();
  } catch {
    return `${status} ${body.slice(0, 160)}`;
  }
}

async function runPhase(
  srv: Server, mode: Mode, consumers: Consumer[], seconds: number, maxFiles: number, round: number,
): Promise<PhaseResult> {
  const counts: Record<Kind, number> = { prepare: 0, commit: 0, no_changes: 0, reset: 0, abort: 0, drain: 0, error: 0 };
  const lat = { prepare: [] as number[], commit: [] as number[], no_changes: [] as number[] };
  const errors = new Map<string, number>();
  const perSecond = Array.from({ length: Math.ceil(seconds) }, () => 0);
  let existing = 0;
  let windowOps = 0;
  let draining = false;
  const conns = new Map<autocannon.Client, Conn>();
  const json = { 'content-type': 'application/json' };
  let seq = 0;
  let assigned = 0;
  const err = (c: Conn, what: string): void => {
    c.last = 'error';
    errors.set(what, (errors.get(what) ?? 0) + 1);
  };

  const sequence = (c: Conn): autocannon.Request[] => {
    const auth = { authorization: `Bearer ${c.consumer.token}` };
    const prepare: autocannon.Request = {
      setupRequest(req) {
        if (draining) {
          c.sent = 'drain';
          return { ...req, method: 'GET', path: '/healthz', headers: {}, body: '' };
        }
        c.sent = 'prepare';
        return {
          ...req, method: 'POST', path: `/v1/consumers/${c.consumer.name}/batches`, headers: { ...auth, ...json },
          body: JSON.stringify({ instance_id: `${c.consumer.name}-${++seq}`, limits: { max_files: maxFiles } }),
        };
      },
      onResponse(status, body) {
        c.next = null;
        if (c.sent === 'drain') {
          c.last = 'drain';
          return;
        }
        if (status === 201 || status === 200) {
          const r = JSON.parse(body) as { status: string; batch: { id: string } | null };
          if (r.status === 'no_changes') {
            c.last = 'no_changes';
            if (mode === 'full') c.next = draining ? null : { op: 'reset' };
            return;
          }
          if (r.status === 'existing') existing++;
          c.last = mode === 'full' ? 'prepare' : 'error';
          if (mode !== 'full') errors.set('a no-changes prepare created a batch', (errors.get('a no-changes prepare created a batch') ?? 0) + 1);
          c.next = { op: 'commit', batchId: r.batch!.id };
          return;
        }
        err(c, `prepare: ${describeProblem(status, body)}`);
        if (status === 409) {
          const id = (JSON.parse(body) as { details?: { batch_id?: string } }).details?.batch_id;
          if (id) c.next = { op: 'abort', batchId: id };
        }
      },
    };
    const follow: autocannon.Request = {
      setupRequest(req) {
        const n = c.next;
        if (n === null) return null; // back to the prepare
        if (n.op === 'commit') {
          c.sent = 'commit';
          return { ...req, method: 'POST', path: `/v1/batches/${n.batchId}/commit`, headers: auth, body: '' };
        }
        if (n.op === 'abort') {
          c.sent = 'abort';
          return { ...req, method: 'POST', path: `/v1/batches/${n.batchId}/abort`, headers: { ...auth, ...json }, body: '{}' };
        }
        c.sent = 'reset';
        return {
          ...req, method: 'POST', path: `/v1/consumers/${c.consumer.name}/reset`,
          headers: { authorization: `Bearer ${srv.ips.adminToken}`, ...json }, body: JSON.stringify({ to: 'start' }),
        };
      },
      onResponse(status, body) {
        c.next = null;
        if (status !== 200) {
          err(c, `${c.sent}: ${describeProblem(status, body)}`);
          return;
        }
        if (c.sent === 'commit') {
          const r = JSON.parse(body) as { already_committed: boolean };
          if (r.already_committed) {
            err(c, 'commit: already committed');
            return;
          }
          srv.commits.set(c.consumer.name, (srv.commits.get(c.consumer.name) ?? 0) + 1);
        }
        c.last = c.sent === 'drain' ? 'drain' : c.sent;
      },
    };
    return [prepare, follow];
  };

  resetPeakRss(srv.ips.proc.pid);
  const usage0 = await srv.ips.proc.reportedUsage();
  const cpu0 = { server: usage0.cpuSeconds, pg: pgCpuSeconds(srv.postmaster), driver: process.cpuUsage() };
  const t0 = performance.now();
  const tEnd = t0 + seconds * 1000;
  const { default: run } = await import('autocannon');
  const instance = run({
    url: srv.ips.url,
    connections: consumers.length,
    pipelining: 1,
    // A hard bound on the drain; the phase normally stops itself once every connection is idle.
    duration: seconds + 120,
    timeout: 60,
    // autocannon checks stop() on its sampling tick: a short one ends the drain promptly.
    sampleInt: 50,
    setupClient(client) {
      const c: Conn = { consumer: consumers[assigned++ % consumers.length]!, next: null, sent: 'prepare', last: null };
      conns.set(client, c);
      client.setRequests(sequence(c));
    },
  });
  instance.on('response', (client: autocannon.Client, _status: number, _bytes: number, responseTime: number) => {
    const c = conns.get(client);
    if (!c) return;
    const kind = c.last ?? 'error';
    c.last = null;
    counts[kind]++;
    const countsAsOp = mode === 'full' ? kind === 'commit' : kind === 'no_changes';
    const now = performance.now();
    if (now > tEnd) return;
    if (kind === 'prepare' || kind === 'commit' || kind === 'no_changes') lat[kind].push(responseTime);
    if (countsAsOp) {
      windowOps++;
      perSecond[Math.min(perSecond.length - 1, Math.floor((now - t0) / 1000))]!++;
    }
  });
  // CPU is read when the window closes: the drain (connections finishing their cycle, then
  // polling /healthz until all have) is not part of the figures.
  let cpuEnd: Promise<{ server: number; db: DatabaseStats; pg: number; driver: NodeJS.CpuUsage }> | null = null;
  const stopTimer = setTimeout(() => {
    draining = true;
    const driver = process.cpuUsage(cpu0.driver);
    const pgNow = pgCpuSeconds(srv.postmaster);
    cpuEnd = srv.ips.proc.reportedUsage().then((u) => ({ server: u.cpuSeconds, db: u.db, pg: pgNow, driver }));
  }, seconds * 1000);
  let drainStart = 0;
  const drainPoll = setInterval(() => {
    if (!draining) return;
    drainStart ||= performance.now();
    if (conns.size === consumers.length && [...conns.values()].every((c) => c.sent === 'drain')) instance.stop();
  }, 10);
  let result: autocannon.Result;
  try {
    result = await instance;
  } finally {
    clearTimeout(stopTimer);
    clearInterval(drainPoll);
  }
  const drainMs = drainStart ? performance.now() - drainStart : NaN;
  if (!cpuEnd) throw new Error('the phase ended before its window closed');
  const end = await (cpuEnd as Promise<{ server: number; db: DatabaseStats; pg: number; driver: NodeJS.CpuUsage }>);
  const serverCpu = end.server - cpu0.server;
  const pgCpu = end.pg - cpu0.pg;
  if (![...conns.values()].every((c) => c.sent === 'drain')) {
    throw new Error(`${MODE_LABEL[mode]} on ${BACKEND_LABEL[srv.backend]}: the drain did not finish (connections still in a cycle after ${seconds + 120}s)`);
  }
  if (result.timeouts > 0 || result.errors > 0) {
    errors.set(`autocannon: ${result.errors} connection errors, ${result.timeouts} timeouts`, result.errors);
  }
  const prepares = counts.prepare + counts.no_changes;
  return {
    backend: srv.backend, mode, round, seconds, ops: windowOps, rate: windowOps / seconds, perSecond, lat, counts, existing, errors,
    serverCpu, serverPeakRss: peakRss(srv.ips.proc.pid), pgCpu,
    db: { statements: end.db.statements - usage0.db.statements, roundTrips: end.db.roundTrips - usage0.db.roundTrips, transactions: end.db.transactions - usage0.db.transactions }, driverCpu: (end.driver.user + end.driver.system) / 1e6, drainMs, autocannon: result,
    consumers: consumers.length, batchesPerConsumer: mode === 'full' ? counts.prepare / consumers.length : prepares / consumers.length,
  };
}

function summaryLine(r: PhaseResult): string {
  const what = r.mode === 'full' ? 'round trips' : 'no-changes prepares';
  const lat = r.mode === 'full'
    ? `prepare ${fmtPcts(pcts(r.lat.prepare))}; commit ${fmtPcts(pcts(r.lat.commit))}`
    : `prepare ${fmtPcts(pcts(r.lat.no_changes))}`;
  const errs = [...r.errors.values()].reduce((a, b) => a + b, 0);
  const cpu = `server CPU ${ms((r.serverCpu * 1000) / r.ops)} ms/op` +
    (Number.isFinite(r.pgCpu) ? `, PostgreSQL CPU ${ms((r.pgCpu * 1000) / r.ops)} ms/op` : '') +
    `, load generator CPU ${ms((r.driverCpu * 1000) / r.ops)} ms/op` +
    `; state database per op: ${(r.db.statements / r.ops).toFixed(1)} statements, ${(r.db.roundTrips / r.ops).toFixed(1)} round trips, ${(r.db.transactions / r.ops).toFixed(1)} transactions`;
  const resets = (r.mode === 'full' && r.counts.reset ? `, ${r.counts.reset} resets` : '') + (r.existing ? `, ${r.existing} prepares answered an existing batch` : '');
  return `${MODE_LABEL[r.mode]} on ${BACKEND_LABEL[r.backend]}${r.round ? ` (round ${r.round})` : ' (warm-up)'}: ` +
    `${fmtInt(r.ops)} ${what} in ${r.seconds}s = ${r.rate.toFixed(1)}/s, ips server peak RSS ${mib(r.serverPeakRss)}; ${lat}; ${errs} errors${resets}; ${cpu}`;
}

// ---- the benchmark ----

export const httpStep: Benchmark = {
  name: 'http-step',
  description: 'prepare+commit round trips/s over HTTP (autocannon, one consumer per connection) against PostgreSQL and PGlite side by side, with latency percentiles; and the no-changes prepare',
  byDefault: true,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const { duration: seconds, warmup, connections, rounds, 'max-files': maxFiles } =
      intOptions(ctx, { duration: 10, warmup: 3, connections: 16, rounds: 1, 'max-files': 1 });
    const backends = (ctx.options.get('backends') ?? BACKENDS.join(',')).split(',').map((s) => s.trim()).filter(Boolean) as Backend[];
    for (const b of backends) if (!BACKENDS.includes(b)) throw new Error(`--backends: unknown backend ${b} (${BACKENDS.join(', ')})`);
    const poolMax = ctx.options.get('pool-max');
    if (poolMax !== undefined) intOption(ctx, 'pool-max', 10);
    const cpuProf = ctx.options.get('cpu-prof');

    const genArgs = [
      path.join(REPO_ROOT, 'bench', 'py', 'step_table.py'),
      '--snapshots', String(intOption(ctx, 'step-snapshots', 8)),
      '--files-per-snapshot', String(intOption(ctx, 'step-files-per-snapshot', 25)),
    ];
    const t = lastJsonLine<StepTable>(await runCommand(ctx.python, genArgs, { prefix: '[generate] ' }));
    ctx.log(`source table ${t.table_path}: ${t.snapshots} snapshots × ${t.files_per_snapshot} files${t.cached ? ' (cached)' : ''}`);

    const cleanups: (() => Promise<void>)[] = [];
    const servers: Server[] = [];
    try {
      // PostgreSQL, the way the test suite gets it.
      let pgInfo = '';
      let pgUrl = '';
      let postmaster: number | null = null;
      if (backends.includes('postgres')) {
        const pgs = await startPostgres(ctx);
        cleanups.push(() => pgs.close());
        const dbName = `ips_bench_http_step_${process.pid}`;
        pgUrl = await pgs.createDatabase(dbName);
        pgInfo = `${pgs.info}, database ${dbName}`;
        postmaster = pgs.postmaster;
      }
      let durable: DurablePostgres | null = null;
      if (backends.includes('postgres-durable')) {
        durable = await startDurablePostgres(ctx, `ips_bench_http_step_${process.pid}`);
        cleanups.push(() => durable!.close());
      }

      const warehouseDir = ctx.options.get('warehouse-dir') ?? defaultScratchDir();
      const warehouseRoot = mkdtempSync(path.join(warehouseDir, 'ips-bench-http-step-'));
      const createCost = { warehouse: fileCreateMicros(warehouseDir), tmp: fileCreateMicros(os.tmpdir()) };
      cleanups.push(async () => rmSync(warehouseRoot, { recursive: true, force: true }));
      for (const backend of backends) {
        const ips = await Ips.start(`ips-${backend}`, {
          databaseUrl: backend === 'postgres' ? pgUrl : backend === 'postgres-durable' ? durable!.url : 'memory:',
          warehouse: path.join(warehouseRoot, backend),
          env: {
            ...(isPg(backend) && poolMax !== undefined ? { IPS_DB_POOL_MAX: poolMax } : {}),
          },
        });
        cleanups.push(() => ips.close());
        const srv: Server = { backend, ips, postmaster: backend === 'postgres' ? postmaster : backend === 'postgres-durable' ? durable!.postmaster : null, commits: new Map() };
        servers.push(srv);
        await api(srv, 'POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: t.table_path } });
        ctx.log(`${BACKEND_LABEL[backend]}: ips server pid ${ips.proc.pid} at ${ips.url} (${ips.database})`);
      }

      // Warm-up, then the measured rounds: every phase on every backend, alternating the order.
      const results: PhaseResult[] = [];
      const phase = async (srv: Server, mode: Mode, round: number, secs: number): Promise<PhaseResult> => {
        const prefix = `${round ? `r${round}` : 'w'}-${mode}`;
        const consumers = await createConsumers(srv, prefix, connections, mode === 'full' ? 'start' : 'now');
        const profile = cpuProf !== undefined && round > 0 ? path.resolve(cpuProf, `${srv.backend}-${mode}-r${round}.cpuprofile`) : null;
        if (profile) {
          mkdirSync(path.dirname(profile), { recursive: true });
          await srv.ips.proc.request({ op: 'profile-start' });
        }
        const r = await runPhase(srv, mode, consumers, secs, maxFiles, round);
        if (profile) await srv.ips.proc.request({ op: 'profile-stop', file: profile });
        ctx.log(summaryLine(r));
        return r;
      };
      for (const srv of servers) {
        for (const mode of ['full', 'nochanges'] as Mode[]) await phase(srv, mode, 0, warmup);
      }
      for (let round = 1; round <= rounds; round++) {
        const order = round % 2 === 1 ? servers : [...servers].reverse();
        for (const mode of ['full', 'nochanges'] as Mode[]) {
          for (const srv of order) results.push(await phase(srv, mode, round, seconds));
        }
      }

      // Correctness: the state agrees with what the load generator saw.
      const checks: string[] = [];
      const failures: string[] = [];
      for (const srv of servers) {
        const v = await srv.ips.proc.request<VerifyResult>({ op: 'verify' });
        const seen = [...srv.commits.values()].reduce((a, b) => a + b, 0);
        let committed = 0;
        let movedOnce = 0;
        let commitMoves = 0;
        let resets = 0;
        for (const c of v.consumers) {
          committed += c.committed;
          movedOnce += c.moved_once;
          commitMoves += c.commit_moves;
          resets += c.reset_moves;
          const want = srv.commits.get(c.consumer) ?? 0;
          const bad: string[] = [];
          if (c.committed !== want) bad.push(`${c.committed} committed batches, ${want} commits answered 200`);
          if (c.moved_once !== c.committed || c.commit_moves !== c.committed) bad.push(`${c.commit_moves} commit moves for ${c.committed} committed batches (${c.moved_once} moved exactly once)`);
          if (c.version !== 1 + c.commit_moves + c.reset_moves) bad.push(`watermark version ${c.version} ≠ 1 + ${c.commit_moves} commits + ${c.reset_moves} resets`);
          if (c.open !== 0) bad.push(`${c.open} batches left open`);
          if (bad.length) failures.push(`${BACKEND_LABEL[srv.backend]} consumer ${c.consumer}: ${bad.join('; ')}`);
        }
        if (v.orphan_commit_moves) failures.push(`${BACKEND_LABEL[srv.backend]}: ${v.orphan_commit_moves} commit moves name a batch that is not committed`);
        checks.push(
          `${BACKEND_LABEL[srv.backend]}: ${fmtInt(seen)} commits answered 200 = ${fmtInt(committed)} committed batches in the state = ` +
            `${fmtInt(commitMoves)} watermark moves (reason commit), ${fmtInt(movedOnce)} batches moved their watermark exactly once; ` +
            `every watermark's version = 1 + its commits + its resets (${fmtInt(resets)} resets) for all ${v.consumers.length} consumers; no batch left open`,
        );
      }

      // ---- report ----
      const hasPg = servers.some((s) => s.backend === 'postgres');
      const durableInfo = servers.some((s) => s.backend === 'postgres-durable') ? `PG durable: ${durable!.info}` : '';
      console.log(`\n== http-step: ips prepare → commit over HTTP, ${connections} connections (one consumer each), ${seconds}s per phase, max_files ${maxFiles}`);
      console.log(`   ${machineSummary()}`);
      console.log(`   source table: ${t.snapshots} PyIceberg ${t.pyiceberg} appends × ${t.files_per_snapshot} Parquet files (${t.data_files} files, day-partitioned v2), ${t.table_path}`);
      if (hasPg) console.log(`   PostgreSQL: ${pgInfo}; ips pool max ${poolMax ?? '10 (default)'}`);
      if (durableInfo) console.log(`   ${durableInfo}; ips pool max ${poolMax ?? '10 (default)'}`);
      if (servers.some((s) => s.backend === 'pglite')) console.log('   PGlite: DATABASE_URL=memory:, inside the ips server process');
      console.log(`   each backend: its own ips server (startServer, token auth, log silent) in its own Node process; ICDC tables under ${warehouseDir}`);
      console.log(`   (a file create costs ${createCost.warehouse.toFixed(0)} µs of CPU there, ${createCost.tmp.toFixed(0)} µs in ${os.tmpdir()}: see --warehouse-dir)`);
      console.log(`   load: autocannon in the bench process, pipelining 1; a connection loops prepare (POST /v1/consumers/{c}/batches) → commit`);
      console.log(`   (POST /v1/batches/{id}/commit), with an admin reset to the start when its consumer has consumed the table (${t.data_files} files);`);
      console.log(`   no-changes: consumers subscribed at the head, prepare only. Fresh consumers per phase; ${warmup}s warm-up per backend and phase first.`);
      console.log('   latencies: client-side (autocannon), answers inside the window only; CPU ms/op: CPU time over the phase ÷ operations (round trips or prepares)\n');

      console.log('   phases, in run order:');
      for (const r of results) console.log(`   ${summaryLine(r)}`);
      console.log('');

      const agg = (b: Backend, m: Mode) => {
        const rs = results.filter((r) => r.backend === b && r.mode === m);
        if (!rs.length) return null;
        const sum = (f: (r: PhaseResult) => number): number => rs.reduce((a, r) => a + f(r), 0);
        return {
          rate: median(rs.map((r) => r.rate)),
          prepare: pcts(rs.flatMap((r) => (m === 'full' ? r.lat.prepare : r.lat.no_changes))),
          commit: pcts(rs.flatMap((r) => r.lat.commit)),
          serverMs: (sum((r) => r.serverCpu) * 1000) / sum((r) => r.ops),
          dbRoundTrips: sum((r) => r.db.roundTrips) / sum((r) => r.ops),
          peakRss: Math.max(...rs.map((r) => r.serverPeakRss)),
          pgMs: (sum((r) => r.pgCpu) * 1000) / sum((r) => r.ops),
          errors: sum((r) => [...r.errors.values()].reduce((a, x) => a + x, 0)),
          resets: sum((r) => r.counts.reset),
          perConsumer: sum((r) => r.batchesPerConsumer) / rs.length,
        };
      };
      const rows: (string | number)[][] = [];
      for (const m of ['full', 'nochanges'] as Mode[]) {
        for (const b of backends) {
          const a = agg(b, m);
          if (!a) continue;
          rows.push([
            MODE_LABEL[m], BACKEND_LABEL[b], a.rate.toFixed(1), mib(a.peakRss),
            ms(a.prepare.p50), ms(a.prepare.p90), ms(a.prepare.p99), ms(a.prepare.max),
            m === 'full' ? ms(a.commit.p50) : '', m === 'full' ? ms(a.commit.p90) : '', m === 'full' ? ms(a.commit.p99) : '', m === 'full' ? ms(a.commit.max) : '',
            ms(a.serverMs), Number.isFinite(a.pgMs) ? ms(a.pgMs) : '', a.errors,
          ]);
        }
      }
      console.log(`   ${rounds > 1 ? `rates: median of ${rounds} rounds; latencies: all rounds pooled` : 'one round'}; latencies in ms`);
      console.log(table(
        ['phase', 'backend', 'ops/s', 'server peak RSS', 'prep p50', 'p90', 'p99', 'max', 'commit p50', 'p90', 'p99', 'max', 'server CPU ms/op', 'PG CPU ms/op', 'errors'],
        rows,
      ).replace(/^/gm, '   '));
      // Each PostgreSQL against the embedded PGlite (the peer in the same run), and durable ÷ fast.
      const pairs: [Backend, Backend][] = [['postgres', 'pglite'], ['postgres-durable', 'pglite'], ['postgres-durable', 'postgres']];
      for (const [x, y] of pairs) {
        if (!backends.includes(x) || !backends.includes(y)) continue;
        const [pf, lf, pn, ln] = [agg(x, 'full')!, agg(y, 'full')!, agg(x, 'nochanges')!, agg(y, 'nochanges')!];
        console.log(`\n   ${BACKEND_LABEL[x]} ÷ ${BACKEND_LABEL[y]}: round trips/s ${ratio(pf.rate, lf.rate)}, prepare p50 ${ratio(pf.prepare.p50, lf.prepare.p50)}, p99 ${ratio(pf.prepare.p99, lf.prepare.p99)}, ` +
          `commit p50 ${ratio(pf.commit.p50, lf.commit.p50)}, p99 ${ratio(pf.commit.p99, lf.commit.p99)}; no-changes prepares/s ${ratio(pn.rate, ln.rate)}, p50 ${ratio(pn.prepare.p50, ln.prepare.p50)}; ` +
          `server peak RSS ${ratio(pf.peakRss, lf.peakRss)}`);
      }
      console.log('   (rates: > 1× = the first does more per second; latencies and memory: > 1× = the first is slower / larger)');
      console.log('\n   round trips per second, second by second:');
      for (const r of results.filter((x) => x.mode === 'full')) {
        console.log(`   ${BACKEND_LABEL[r.backend].padEnd(10)} r${r.round}: ${r.perSecond.join(' ')}`);
      }
      const full = results.filter((r) => r.mode === 'full');
      console.log(`   (each consumer prepared ~${fmtInt(median(full.map((r) => r.batchesPerConsumer)))} batches per phase: an ICDC append snapshot each, after a delete snapshot of the previous batch; an ICDC table keeps the snapshots of its last 10 batches in its metadata)`);
      const drains = results.map((r) => r.drainMs);
      const sent = results.reduce((a, r) => a + r.autocannon['2xx'] + r.autocannon.non2xx, 0);
      const acErrors = results.reduce((a, r) => a + r.autocannon.errors, 0);
      const acTimeouts = results.reduce((a, r) => a + r.autocannon.timeouts, 0);
      console.log(`   autocannon: ${fmtInt(sent)} answers in all measured phases (incl. the drains' /healthz polls), ${acErrors} connection errors, ${acTimeouts} timeouts; ` +
        `drains took ${ms(Math.min(...drains))}–${ms(Math.max(...drains))} ms`);

      console.log('\n   correctness:');
      for (const c of checks) console.log(`   ${c}`);
      if (failures.length) {
        for (const f of failures.slice(0, 20)) console.log(`   MISMATCH ${f}`);
        throw new Error(`the state disagrees with the commits autocannon saw (${failures.length} mismatches, see above)`);
      }
      const allErrors = new Map<string, number>();
      for (const r of results) {
        for (const [k, n] of r.errors) {
          const key = `${BACKEND_LABEL[r.backend]} ${MODE_LABEL[r.mode]}: ${k}`;
          allErrors.set(key, (allErrors.get(key) ?? 0) + n);
        }
      }
      if (allErrors.size) {
        console.log('\n   errors:');
        for (const [k, n] of allErrors) console.log(`   ${n} × ${k}`);
      }
      // Result rows (bench/table.ts): each backend against the embedded PGlite of the same run.
      const SETTINGS: Record<Backend, string> = {
        postgres: 'PostgreSQL with the test harness\'s fast settings (fsync=off, synchronous_commit=off)',
        'postgres-durable': 'PostgreSQL with durable settings (fsync=on, synchronous_commit=on)',
        pglite: 'embedded PGlite (DATABASE_URL=memory:)',
      };
      const lite = { full: agg('pglite', 'full'), nochanges: agg('pglite', 'nochanges') };
      for (const m of ['full', 'nochanges'] as Mode[]) {
        for (const b of backends) {
          const a = agg(b, m)!;
          const l = b === 'pglite' ? null : lite[m];
          const pg = isPg(b) && m === 'full';
          ctx.result({
            measure: m === 'full'
              ? `prepare → commit round trips per second over HTTP, ${connections} connections, ${seconds} s per phase; ${SETTINGS[b]}`
              : `prepares with nothing to hand out, per second over HTTP, ${connections} connections; ${SETTINGS[b]}`,
            ips: `${a.rate.toFixed(1)}/s, prepare p50/p99 ${ms(a.prepare.p50)}/${ms(a.prepare.p99)} ms` +
              (m === 'full' ? `, commit p99 ${ms(a.commit.p99)} ms` : '') +
              `, ips CPU ${ms(a.serverMs)} ms per ${m === 'full' ? 'round trip' : 'prepare'}, ${a.dbRoundTrips.toFixed(1)} state-database round trips per ${m === 'full' ? 'round trip' : 'prepare'}` +
              `, server peak RSS ${mib(a.peakRss)}${a.errors ? `, ${a.errors} errors` : ''}`,
            peer: l ? `PGlite: ${l.rate.toFixed(1)}/s, prepare p99 ${ms(l.prepare.p99)} ms, server peak RSS ${mib(l.peakRss)}` : null,
            ratio: l ? ratio(a.rate, l.rate) : null,
            target: pg ? '≥ 500/s, prepare p99 ≤ 50 ms' : null,
            met: pg ? allMet(meets(a.rate, '>=', 500), meets(a.prepare.p99, '<=', 50)) : null,
          });
        }
      }
      console.log('');
    } finally {
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => ctx.log(`cleanup failed: ${String(e)}`));
    }
  },
};
