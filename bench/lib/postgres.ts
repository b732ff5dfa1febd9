// PostgreSQL for the benchmarks that need it (bench/http-step.ts, bench/trigger-latency.ts,
// bench/watch-cpu.ts): the server the test harness provides (test/setup/global-setup.ts: the
// docker-compose stack when it answers, otherwise a private server on a loopback port), a database
// of the benchmark's own there, and the CPU time of its processes from /proc.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ENV_NAMES } from '../../test/setup/shared.js';
import type { BenchContext } from './common.js';
import { CLK_TCK, procStat } from './proc-cpu.js';

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
