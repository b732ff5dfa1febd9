// The console's overview (GET /v1/overview, what every open console polls every few seconds) at the
// size of a fleet: --tables registered tables (copies by name of the PyIceberg-written
// fixtures/tables/playback), --consumers consumers spread over them (a quarter committed a batch,
// another quarter holds one open, one in ten has a webhook subscription), on PostgreSQL and the
// embedded PGlite, each in an in-process `startServer` with its background loops off. Then
// --rounds calls over HTTP: wall time, CPU of this process (server and client; nothing else runs
// in it) and of PostgreSQL, state statements per call, answer size, and this process's peak RSS
// (VmHWM, reset before the calls: setting the fleet up is not counted).
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { startServer, type RunningServer } from '../src/api/server.js';
import { loadServiceConfig, type ServiceConfig } from '../src/service/config.js';
import { REPO_ROOT, fmtInt, intOptions, median, ms, pool, table, type BenchContext, type Benchmark } from './lib/common.js';
import { startPostgres, type Postgres } from './lib/postgres.js';
import { pgCpuSeconds } from './lib/proc-cpu.js';
import { MB, procMemory, resetOwnPeak } from './lib/proc-mem.js';

const OPTIONS: Record<string, string> = {
  tables: 'registered tables (default 100)',
  consumers: 'consumers, spread over the tables (default 2000)',
  rounds: 'overview calls measured per backend (default 5, after one untimed)',
  backends: 'comma-separated: postgres, pglite (default both)',
};

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;

interface Measured { backend: string; wallMs: number[]; cpuMs: number[]; pgCpuMs: number[]; statements: number; bytes: number; consumers: number; peakRss: number; setupS: number }

async function call(server: RunningServer, method: string, p: string, body?: unknown): Promise<string> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text;
}

async function fleetOn(server: RunningServer, tableDir: string, n: { tables: number; consumers: number }): Promise<void> {
  const tables = Array.from({ length: n.tables }, (_, i) => `t${String(i).padStart(5, '0')}`);
  await pool(tables, 4, async (t) => { await call(server, 'POST', '/v1/tables', { name: t, ref: { kind: 'directory', location: tableDir } }); });
  const consumers = Array.from({ length: n.consumers }, (_, i) => i);
  await pool(consumers, 4, async (i) => {
    const c = `c${String(i).padStart(6, '0')}`;
    const t = tables[i % tables.length]!;
    await call(server, 'POST', '/v1/consumers', { name: c, tables: [{ table: t }] });
    if (i % 4 === 0 || i % 4 === 1) {
      const b = JSON.parse(await call(server, 'POST', `/v1/consumers/${c}/batches`, { instance_id: `i-${c}`, limits: { max_files: 1 } })) as { batch: { id: string } };
      if (i % 4 === 0) await call(server, 'POST', `/v1/batches/${b.batch.id}/commit`);
    }
    if (i % 10 === 0) {
      await call(server, 'POST', '/v1/subscriptions', { name: `${c}-hook`, consumer: c, tables: [t], sink: { type: 'webhook', url: 'http://127.0.0.1:9/x', secret: 's' }, enabled: false });
    }
  });
}

async function measure(ctx: BenchContext, backend: string, config: ServiceConfig, tableDir: string, n: { tables: number; consumers: number; rounds: number }, pg: Postgres | null): Promise<Measured> {
  const server = await startServer(config);
  try {
    const t0 = performance.now();
    await fleetOn(server, tableDir, n);
    const setupS = (performance.now() - t0) / 1000;
    ctx.log(`overview: ${backend}: ${fmtInt(n.tables)} tables, ${fmtInt(n.consumers)} consumers set up in ${setupS.toFixed(0)} s`);
    await call(server, 'GET', '/v1/overview'); // untimed: caches warm, as a console's second poll finds them
    const m: Measured = { backend, wallMs: [], cpuMs: [], pgCpuMs: [], statements: 0, bytes: 0, consumers: 0, peakRss: 0, setupS };
    resetOwnPeak();
    for (let r = 0; r < n.rounds; r++) {
      const statements = server.state.db.stats.statements;
      const pg0 = pg ? pgCpuSeconds(pg.postmaster) : NaN;
      const cpu = process.cpuUsage();
      const w = performance.now();
      const body = await call(server, 'GET', '/v1/overview');
      m.wallMs.push(performance.now() - w);
      const u = process.cpuUsage(cpu);
      m.cpuMs.push((u.user + u.system) / 1000);
      m.pgCpuMs.push(pg ? (pgCpuSeconds(pg.postmaster) - pg0) * 1000 : NaN);
      m.statements = server.state.db.stats.statements - statements;
      m.bytes = body.length;
      m.consumers = (JSON.parse(body) as { consumers: unknown[] }).consumers.length;
    }
    m.peakRss = procMemory(process.pid)?.hwm ?? NaN;
    if (m.consumers !== n.consumers) throw new Error(`the overview listed ${m.consumers} consumers, not ${n.consumers}`);
    ctx.log(`overview: ${backend}: median ${ms(median(m.wallMs))} ms wall, ${ms(median(m.cpuMs))} ms CPU, ${m.statements} statements, ${fmtInt(m.bytes / 1024)} KiB`);
    return m;
  } finally {
    await server.close();
  }
}

export const overviewBench: Benchmark = {
  name: 'overview',
  description: 'the console\'s overview (GET /v1/overview) of a fleet: time, CPU, state statements and memory per call, on PostgreSQL and PGlite',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext): Promise<void> {
    const n = intOptions(ctx, { tables: 100, consumers: 2000, rounds: 5 });
    const backends = (ctx.options.get('backends') ?? 'postgres,pglite').split(',').map((s) => s.trim());
    for (const b of backends) if (b !== 'postgres' && b !== 'pglite') throw new Error(`--backends: postgres or pglite, not ${b}`);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-overview-'));
    const tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    const pg = backends.includes('postgres') ? await startPostgres(ctx) : null;
    const results: Measured[] = [];
    try {
      for (const backend of backends) {
        const env = { IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, `icdc-${backend}`), IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off', IPS_RETENTION: 'off' };
        const url = backend === 'postgres' ? await pg!.createDatabase('bench_overview') : 'memory:';
        results.push(await measure(ctx, backend, loadServiceConfig({ env: { ...env, DATABASE_URL: url } }), tableDir, n, backend === 'postgres' ? pg : null));
      }
    } finally {
      await pg?.close();
      rmSync(tmp, { recursive: true, force: true });
    }
    console.log(`\nGET /v1/overview, ${fmtInt(n.tables)} tables, ${fmtInt(n.consumers)} consumers; medians of ${n.rounds} calls\n`);
    console.log(table(['backend', 'wall ms', 'ips CPU ms', 'PostgreSQL CPU ms', 'statements', 'answer KiB', 'peak RSS MiB'], results.map((r) => [
      r.backend, ms(median(r.wallMs)), ms(median(r.cpuMs)), ms(median(r.pgCpuMs)), r.statements, fmtInt(r.bytes / 1024), fmtInt(r.peakRss / MB),
    ])));
    for (const r of results) {
      ctx.result({
        measure: `the console's overview (GET /v1/overview) of ${fmtInt(n.tables)} tables and ${fmtInt(n.consumers)} consumers, ${r.backend === 'postgres' ? 'PostgreSQL' : 'embedded PGlite'}: median of ${n.rounds} calls`,
        ips: `${ms(median(r.wallMs))} ms wall, ${ms(median(r.cpuMs))} ms CPU${Number.isFinite(median(r.pgCpuMs)) ? ` + PostgreSQL ${ms(median(r.pgCpuMs))} ms` : ''}, ${r.statements} state statements, ${fmtInt(r.bytes / 1024)} KiB, peak RSS ${fmtInt(r.peakRss / MB)} MiB`,
      });
    }
  },
};
