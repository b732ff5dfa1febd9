// Shared pieces of the trigger benchmarks (bench/trigger-latency.ts, bench/watch-cpu.ts):
// PostgreSQL from the test harness, ips servers in child processes (bench/lib/http-step-server.ts,
// the same child the http-step benchmark runs), CPU time of processes from /proc, a webhook
// receiver on 127.0.0.1, and copies of the PyIceberg-written trigger table (bench/py/trigger_table.py)
// whose snapshots can be "appended" one at a time.
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ENV_NAMES } from '../../test/setup/shared.js';
import { REPO_ROOT, lastJsonLine, runCommand, type BenchContext } from './common.js';

// ---- statistics and formatting ----

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

export const ms = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) < 10 ? x.toFixed(2) : Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0)) : '—');

export const sleep = (millis: number): Promise<void> => new Promise((r) => setTimeout(r, millis));

// ---- CPU time from /proc ----

export const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

export function procStat(pid: number): { ppid: number; self: number; children: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** utime + stime of one process (all its threads), in seconds; NaN when it is gone. */
export function processCpuSeconds(pid: number): number {
  const st = procStat(pid);
  return st ? st.self / CLK_TCK : NaN;
}

/** CPU seconds of a PostgreSQL server: the postmaster, its reaped children and its live ones (backends, writers). */
export function pgCpuSeconds(postmaster: number | null): number {
  if (postmaster === null) return NaN;
  const pm = procStat(postmaster);
  if (!pm) return NaN;
  let ticks = pm.self + pm.children;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(Number(d));
    if (st && st.ppid === postmaster) ticks += st.self;
  }
  return ticks / CLK_TCK;
}

export function benchCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// ---- PostgreSQL from the test harness ----

export interface Postgres {
  /** How it was provided and its settings, for the report. */
  info: string;
  /** The postmaster's pid when the server runs on this machine (its CPU is read from /proc), else null. */
  postmaster: number | null;
  /** Creates a database of this benchmark (dropped by close()); returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** An admin connection to the harness's database. */
  admin: pg.Client;
  close(): Promise<void>;
}

export async function startPostgres(ctx: BenchContext): Promise<Postgres> {
  ctx.log('PostgreSQL from the test harness (test/setup/global-setup.ts)…');
  // Imported here, not at the top: it loads the S3 client and more, which other benchmarks do not need.
  const { default: setupTestServices } = await import('../../test/setup/global-setup.js');
  const teardown = await setupTestServices({ provide() {} } as unknown as TestProject);
  const dbs: string[] = [];
  let admin: pg.Client | null = null;
  const close = async (): Promise<void> => {
    if (admin) {
      for (const d of dbs) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch((e: unknown) => ctx.log(`could not drop ${d}: ${String(e)}`));
      await admin.end().catch(() => {});
    }
    await teardown();
  };
  try {
    const baseUrl = process.env[ENV_NAMES.pgUrl];
    if (!baseUrl) throw new Error(`the test setup did not set ${ENV_NAMES.pgUrl}`);
    const services = process.env[ENV_NAMES.services];
    const a = new pg.Client({ connectionString: baseUrl });
    await a.connect();
    admin = a;
    const show = async (s: string): Promise<string> => String((await a.query<Record<string, string>>(`SHOW ${s}`)).rows[0]?.[s]);
    const u = new URL(baseUrl);
    let postmaster: number | null = null;
    if (services === 'local') {
      const backendPid = Number((await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
      const ppid = procStat(backendPid)?.ppid;
      if (ppid && readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes('postgres')) postmaster = ppid;
      else ctx.log(`PostgreSQL's postmaster not found through backend ${backendPid}: no PostgreSQL CPU figures`);
    } else {
      ctx.log('PostgreSQL of the docker-compose stack: its CPU is not read (no PostgreSQL CPU figures)');
    }
    const info = `PostgreSQL ${await show('server_version')} at ${u.host} (${services === 'compose' ? 'the docker-compose stack' : 'a private server started by the test harness'}; ` +
      `fsync=${await show('fsync')}, synchronous_commit=${await show('synchronous_commit')}, shared_buffers=${await show('shared_buffers')})`;
    return {
      info, postmaster, admin: a, close,
      async createDatabase(name) {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await a.query(`CREATE DATABASE ${name}`);
        dbs.push(name);
        const d = new URL(baseUrl);
        d.pathname = `/${name}`;
        return d.toString();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * CPU time of PostgreSQL backends by database, sampled from /proc every `intervalMs` while
 * running: each backend's CPU from when it is first seen (from 0 when it connected after start())
 * to its last sample. A backend that exits between samples loses at most one interval of its CPU.
 */
export class PgBackendSampler {
  private readonly seen = new Map<number, { db: string; base: number; last: number }>();
  private timer: NodeJS.Timeout | null = null;
  private startedAt = new Date();
  private running: Promise<void> | null = null;
  private busy = false;

  constructor(private readonly admin: pg.Client, private readonly databases: string[], private readonly intervalMs = 250) {}

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const r = await this.admin.query<{ pid: number; datname: string; backend_start: Date }>(
        'SELECT pid, datname, backend_start FROM pg_stat_activity WHERE datname = ANY($1::TEXT[])', [this.databases]);
      for (const row of r.rows) {
        const st = procStat(row.pid);
        if (!st) continue;
        const cur = this.seen.get(row.pid);
        if (cur && cur.db === row.datname) cur.last = st.self;
        else this.seen.set(row.pid, { db: row.datname, base: row.backend_start >= this.startedAt ? 0 : st.self, last: st.self });
      }
    } finally {
      this.busy = false;
    }
  }

  async start(): Promise<void> {
    this.seen.clear();
    this.startedAt = new Date();
    await this.sample();
    this.timer = setInterval(() => {
      this.running = this.sample().catch(() => {});
    }, this.intervalMs);
  }

  /** CPU seconds per database since start(), and how many backends were seen. */
  async stop(): Promise<{ seconds: Map<string, number>; backends: Map<string, number> }> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    await this.sample();
    const seconds = new Map<string, number>();
    const backends = new Map<string, number>();
    for (const v of this.seen.values()) {
      seconds.set(v.db, (seconds.get(v.db) ?? 0) + (v.last - v.base) / CLK_TCK);
      backends.set(v.db, (backends.get(v.db) ?? 0) + 1);
    }
    return { seconds, backends };
  }
}

// ---- ips servers in child processes ----

const ANSWER = '@@bench ';

/** `node --import tsx bench/lib/http-step-server.ts`: startServer(loadServiceConfig(env)) in its own process. */
export class IpsServerProcess {
  private readonly child: ChildProcess;
  private readonly waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  private errTail = '';
  private exited = false;
  readonly ready: Promise<Record<string, unknown>>;

  constructor(readonly name: string, env: NodeJS.ProcessEnv) {
    this.ready = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'http-step-server.ts')], {
      cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (out + d).split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith(ANSWER)) this.settle(JSON.parse(l.slice(ANSWER.length)) as Record<string, unknown>);
        else if (l.trim()) process.stderr.write(`[${name}] ${l}\n`);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.errTail = (this.errTail + d).slice(-4000);
      process.stderr.write(d.replace(/^(?=.)/gm, `[${name}] `));
    });
    this.child.on('error', (e) => this.failAll(e));
    this.child.on('close', (code) => {
      this.exited = true;
      this.failAll(new Error(`${name} server exited with ${code}\n${this.errTail}`));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** This process's CPU seconds (utime + stime from /proc). */
  cpuSeconds(): number {
    return processCpuSeconds(this.pid);
  }

  private settle(msg: Record<string, unknown>): void {
    const w = this.waiting.shift();
    if (!w) return;
    if (typeof msg['error'] === 'string') w.reject(new Error(`${this.name} server: ${msg['error']}`));
    else w.resolve(msg);
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.child.stdin!.end(JSON.stringify({ op: 'quit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await done;
    clearTimeout(timer);
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** An ips server started for a benchmark, with an admin-token JSON client. */
export class Ips {
  private constructor(readonly proc: IpsServerProcess, readonly url: string, readonly adminToken: string, readonly database: string) {}

  static async start(name: string, opts: { databaseUrl: string; warehouse: string; env?: Record<string, string> }): Promise<Ips> {
    const adminToken = randomBytes(24).toString('hex');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete env[k];
    Object.assign(env, {
      DATABASE_URL: opts.databaseUrl,
      IPS_WAREHOUSE: opts.warehouse,
      IPS_ADMIN_TOKEN: adminToken,
      IPS_HOST: '127.0.0.1',
      IPS_PORT: '0',
      IPS_LOG_LEVEL: 'silent',
      ...(opts.env ?? {}),
    });
    const proc = new IpsServerProcess(name, env);
    try {
      const hello = await proc.ready;
      return new Ips(proc, String(hello['url']), adminToken, String(hello['database']));
    } catch (e) {
      await proc.close().catch(() => {});
      throw e;
    }
  }

  async api<T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<T> {
    const res = await fetch(this.url + p, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, `${method} ${p}: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  /** ips_trigger_events_total by event, from /metrics. */
  async triggerCounters(): Promise<Map<string, number>> {
    const res = await fetch(this.url + '/metrics', { headers: { authorization: `Bearer ${this.adminToken}` } });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^ips_trigger_events_total\{event="([^"]+)"\} (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
    return out;
  }

  close(): Promise<void> {
    return this.proc.close();
  }
}

// ---- the webhook receiver ----

export interface TriggerEvent {
  id: string;
  time: string;
  data: {
    subscription: string;
    consumer: string;
    batch_id: string;
    seq: string;
    dedup_key: string;
    tables: { table: string; from_snapshot_id: string | null; to_snapshot_id: string; file_count: number }[];
  };
}

/** node:http on 127.0.0.1: answers 200 at once, then hands the event to the subscription's handler. */
export class WebhookReceiver {
  private server: http.Server | null = null;
  private readonly handlers = new Map<string, (ev: TriggerEvent, arrivedAt: number) => void>();
  /** Events of no registered handler, or that failed to parse. */
  unexpected = 0;
  received = 0;
  url = '';

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const arrivedAt = performance.now();
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        this.received++;
        try {
          const ev = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TriggerEvent;
          const h = this.handlers.get(ev.data.subscription);
          if (h) h(ev, arrivedAt);
          else this.unexpected++;
        } catch {
          this.unexpected++;
        }
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  }

  on(subscription: string, handler: (ev: TriggerEvent, arrivedAt: number) => void): void {
    this.handlers.set(subscription, handler);
  }

  off(subscription: string): void {
    this.handlers.delete(subscription);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// ---- the PyIceberg-written table and its copies ----

export interface TriggerTable {
  table_dir: string;
  table_path: string;
  snapshots: number;
  rows_per_file: number;
  metadata_files: { version: number; file: string; snapshot_id: string | null; snapshots: number; bytes: number }[];
  pyiceberg: string;
  generation_seconds: number;
  cached: boolean;
}

export async function triggerTable(ctx: BenchContext, snapshots: number): Promise<TriggerTable> {
  const args = [path.join(REPO_ROOT, 'bench', 'py', 'trigger_table.py'), '--snapshots', String(snapshots)];
  const t = lastJsonLine<TriggerTable>(await runCommand(ctx.python, args, { prefix: '[generate] ' }));
  ctx.log(`source table ${t.table_path}: ${t.snapshots} PyIceberg appends of 1 file${t.cached ? ' (cached)' : ` (generated in ${t.generation_seconds}s)`}`);
  return t;
}

function linkOrCopy(src: string, dst: string): void {
  try {
    linkSync(src, dst);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(src, dst);
  }
}

function linkTree(src: string, dst: string, skip: (rel: string) => boolean, rel = ''): number {
  mkdirSync(dst, { recursive: true });
  let n = 0;
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (skip(r)) continue;
    if (e.isDirectory()) n += linkTree(path.join(src, e.name), path.join(dst, e.name), skip, r);
    else if (e.isFile()) {
      linkOrCopy(path.join(src, e.name), path.join(dst, e.name));
      n++;
    }
  }
  return n;
}

/**
 * A copy of the trigger table (hard links, or copies across filesystems) in the Hadoop directory
 * layout: data files, manifests and manifest lists all present (written before their commit, as a
 * writer does), metadata files 0…`visible` in metadata/, and `version-hint.text` naming the
 * current one. The later metadata files wait in `<dir>.staged/` (hard links too). append() commits
 * the next one: it renames the PyIceberg-written NNNNN-<uuid>.metadata.json into metadata/ (one
 * atomic rename(2) of a complete file: from then on the highest version present is the table's
 * current metadata), then rewrites version-hint.text through a temporary file and rename(2), the
 * order of Iceberg's HadoopTableOperations (metadata file, then hint).
 */
export class TableCopy {
  version: number;
  readonly files: number;
  /** Where the metadata files not yet committed wait (next to the table directory, same filesystem). */
  private readonly staged: string;

  constructor(private readonly t: TriggerTable, readonly dir: string, visible: number) {
    if (visible < 0 || visible > t.snapshots) throw new Error(`visible version ${visible} outside 0…${t.snapshots}`);
    const metaNames = new Set(t.metadata_files.map((f) => f.file));
    this.files = linkTree(t.table_path, dir, (rel) => rel.startsWith('metadata/') && metaNames.has(rel.slice('metadata/'.length)));
    this.staged = `${dir}.staged`;
    mkdirSync(this.staged, { recursive: true });
    for (const f of t.metadata_files) {
      const src = path.join(t.table_path, 'metadata', f.file);
      linkOrCopy(src, path.join(f.version <= visible ? path.join(dir, 'metadata') : this.staged, f.file));
      this.files++;
    }
    this.version = visible;
    this.writeHint();
  }

  get remaining(): number {
    return this.t.snapshots - this.version;
  }

  /** The snapshot the current metadata makes current. */
  get snapshotId(): string | null {
    return this.t.metadata_files[this.version]!.snapshot_id;
  }

  private writeHint(): void {
    const hint = path.join(this.dir, 'metadata', 'version-hint.text');
    writeFileSync(hint + '.tmp', String(this.version));
    renameSync(hint + '.tmp', hint);
  }

  /** Commits the next snapshot; returns its id and performance.now() right after the commit (the rename). */
  append(): { snapshotId: string; committedAt: number } {
    const next = this.t.metadata_files[this.version + 1];
    if (!next) throw new Error(`${this.dir}: no staged snapshot left`);
    renameSync(path.join(this.staged, next.file), path.join(this.dir, 'metadata', next.file));
    const committedAt = performance.now();
    this.version = next.version;
    this.writeHint();
    return { snapshotId: next.snapshot_id!, committedAt };
  }
}

/** A scratch directory next to the cached tables (same filesystem: hard links work), removed by the returned function. */
export function workDir(t: TriggerTable, name: string): { dir: string; remove: () => Promise<void> } {
  const dir = path.join(path.dirname(t.table_dir), `${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return { dir, remove: async () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * `--ms-timestamps on`: emulates, on builds before 00e9c5d, that commit's fix of a precision
 * mismatch. There, on PostgreSQL, now() has microseconds while node-pg's Date has milliseconds, so
 * the claimed `next_poll_at` / `next_check_at` a loop passes back to TableWatchRepo.recordPoll /
 * SubscriptionsRepo.release compares *smaller* than the stored value ("woken during the
 * poll/check") and the row stays due: every table is polled, and every subscription checked, on
 * every loop pass whatever its interval. Declaring the two columns TIMESTAMPTZ(3) (values rounded
 * to the millisecond, which the Date then holds exactly) makes the comparison behave as intended.
 * Applied to the benchmark's own database after ips migrated it, before anything is registered.
 */
export async function applyMsTimestamps(databaseUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query('ALTER TABLE table_watch ALTER COLUMN next_poll_at TYPE TIMESTAMPTZ(3)');
    await c.query('ALTER TABLE subscriptions ALTER COLUMN next_check_at TYPE TIMESTAMPTZ(3)');
  } finally {
    await c.end();
  }
}

export function msTimestampsOption(ctx: BenchContext): boolean {
  const v = ctx.options.get('ms-timestamps') ?? 'off';
  if (v !== 'on' && v !== 'off') throw new Error(`--ms-timestamps must be on or off, got ${v}`);
  return v === 'on';
}

/** The ips source measured: HEAD and any uncommitted change under src/ (the working tree is shared). */
export function srcState(): string {
  const git = (args: string[]): string => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || '?';
  const dirty = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).map((l) => l.slice(3));
  return `ips source: ${head}${dirty.length ? ` + uncommitted changes in ${dirty.join(', ')}` : ' (clean src/)'}`;
}
