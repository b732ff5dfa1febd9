// CPU cost of watching tables: ips processes (PostgreSQL state, trigger loops on) side by side in
// one run, measured over the same window: one with no table (idle: the loops tick, nothing is
// due), one with --tables tables registered at --poll-interval seconds (watch), and optionally
// one with the same tables plus a consumer and a webhook subscription per table (watch+subs: the
// fire loop re-checks each idle subscription every 60 s). Nothing changes in the tables during
// the window, so the cost is that of polling metadata pointers (and of checking subscriptions).
//
// - Tables: --tables hard-linked copies of one small PyIceberg-written table (3 appends,
//   bench/py/trigger_table.py) in the Hadoop directory layout with version-hint.text, each its own
//   directory, registered as {kind: directory}. A poll of one lists its metadata/ directory and
//   reads its version-hint.text (src/catalog/hadoop-catalog.ts), then records the poll.
// - CPU: utime + stime of each ips process from /proc/<pid>/stat over the window; PostgreSQL's
//   CPU per database from its backends' /proc stat (pg_stat_activity names each backend's
//   database), sampled every 250 ms, plus the whole server's (postmaster + all its processes).
// - The window starts once every table has been polled at least once and --settle seconds more
//   have passed (registration and its first polls are not counted).
import path from 'node:path';
import pg from 'pg';
import { fmtInt, pool, intOptions, machineSummary, optionalIntOption, sleep, table, type BenchContext, type Benchmark } from './lib/common.js';
import { Ips } from './lib/ips-server.js';
import { PgBackendSampler } from './lib/postgres.js';
import { benchCpuSeconds, pgCpuSeconds } from './lib/proc-cpu.js';
import { mb, procMemory } from './lib/proc-mem.js';
import { TableCopy, applyMsTimestamps, msTimestampsOption, srcState, startTriggerBench } from './lib/trigger-common.js';

const OPTIONS: Record<string, string> = {
  tables: 'tables watched by the watch variants (default 1000)',
  'poll-interval': 'poll_interval_seconds of every table (default 30)',
  window: 'measured seconds (default 60)',
  settle: 'seconds between the end of registration (every table polled once) and the window (default 10)',
  segment: 'seconds per segment of the per-segment CPU figures (default 15)',
  variants: 'comma-separated: idle, watch, watch+subs (default idle,watch)',
  'register-concurrency': 'registration requests in flight (default 8)',
  'tick-ms': 'IPS_TICK_MS of the ips servers (default: ips\'s, 1000)',
  'ms-timestamps': 'on: declare next_poll_at / next_check_at TIMESTAMPTZ(3) in the benchmark\'s databases, emulating on builds before 00e9c5d its fix of the µs/ms mismatch that kept every table and subscription due on PostgreSQL (see bench/README.md) (default off)',
};

type Variant = 'idle' | 'watch' | 'watch+subs';

interface Server {
  variant: Variant;
  ips: Ips;
  database: string;
  databaseUrl: string;
  tables: number;
  subscriptions: number;
  registerSeconds: number;
}


async function watchState(databaseUrl: string): Promise<{ errors: number; unpolled: number; sample: string | null }> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const r = await c.query<{ errors: string; unpolled: string; sample: string | null }>(
      `SELECT count(*) FILTER (WHERE last_error IS NOT NULL) AS errors, count(*) FILTER (WHERE polled_at IS NULL) AS unpolled,
              min(last_error) AS sample FROM table_watch`);
    const row = r.rows[0]!;
    return { errors: Number(row.errors), unpolled: Number(row.unpolled), sample: row.sample };
  } finally {
    await c.end();
  }
}

export const watchCpu: Benchmark = {
  name: 'watch-cpu',
  description: 'CPU of an ips process (and of PostgreSQL) watching 1,000 tables at a 30 s poll interval, beside the same process watching none, over the same window; needs PostgreSQL',
  byDefault: true,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const { tables, 'poll-interval': interval, window: windowSeconds, settle, segment, 'register-concurrency': concurrency } =
      intOptions(ctx, { tables: 1000, 'poll-interval': 30, window: 60, settle: 10, segment: 15, 'register-concurrency': 8 });
    const tickMs = optionalIntOption(ctx, 'tick-ms');
    const msTimestamps = msTimestampsOption(ctx);
    const variants = (ctx.options.get('variants') ?? 'idle,watch').split(',').map((s) => s.trim()).filter(Boolean) as Variant[];
    for (const v of variants) if (v !== 'idle' && v !== 'watch' && v !== 'watch+subs') throw new Error(`--variants: unknown variant ${v} (idle, watch, watch+subs)`);
    if (new Set(variants).size !== variants.length) throw new Error('--variants: a variant is listed twice');

    const t0 = performance.now();
    const src0 = srcState();
    const cleanups: (() => Promise<void>)[] = [];
    try {
      // The table (cached after the first run) and PostgreSQL, at the same time; a work directory; the receiver.
      const { t, pgs, work, receiver } = await startTriggerBench(ctx, 3, 'watch-cpu-work', cleanups);

      // The copies, shared by the variants that watch tables (polls only read them).
      const copies: TableCopy[] = [];
      if (variants.some((v) => v !== 'idle')) {
        const c0 = performance.now();
        for (let i = 0; i < tables; i++) copies.push(new TableCopy(t, path.join(work.dir, 'tables', `t${String(i).padStart(5, '0')}`), t.snapshots));
        ctx.log(`${fmtInt(tables)} table copies (${fmtInt(copies.reduce((a, c) => a + c.files, 0))} hard links) in ${((performance.now() - c0) / 1000).toFixed(1)}s`);
      }

      const servers: Server[] = [];
      for (const variant of variants) {
        const database = `ips_bench_watch_cpu_${variant.replace(/\W/g, '_')}_${process.pid}`;
        const databaseUrl = await pgs.createDatabase(database);
        const ips = await Ips.start(`ips-${variant}`, {
          databaseUrl, warehouse: path.join(work.dir, `warehouse-${variant}`), env: tickMs !== null ? { IPS_TICK_MS: String(tickMs) } : {},
        });
        cleanups.push(() => ips.close());
        if (msTimestamps) await applyMsTimestamps(databaseUrl);
        servers.push({ variant, ips, database, databaseUrl, tables: 0, subscriptions: 0, registerSeconds: 0 });
        ctx.log(`${variant}: ips server pid ${ips.proc.pid} at ${ips.url} (${ips.database})`);
      }

      // Registration, one variant after the other.
      for (const s of servers) {
        if (s.variant === 'idle') continue;
        const r0 = performance.now();
        let done = 0;
        await pool(copies.map((c, i) => ({ c, i })), concurrency, async ({ c, i }) => {
          const name = `t${String(i).padStart(5, '0')}`;
          await s.ips.api('POST', '/v1/tables', { name, ref: { kind: 'directory', location: c.dir }, poll_interval_seconds: interval });
          s.tables++;
          if (s.variant === 'watch+subs') {
            await s.ips.api('POST', '/v1/consumers', { name: `${name}-c`, tables: [{ table: name, from: 'now' }] });
            await s.ips.api('POST', '/v1/subscriptions', {
              name: `${name}-s`, consumer: `${name}-c`, tables: [name], sink: { type: 'webhook', url: receiver.url, secret: 'bench-webhook-secret' },
            });
            s.subscriptions++;
          }
          if (++done % 250 === 0) ctx.log(`${s.variant}: ${done}/${tables} registered`);
        });
        s.registerSeconds = (performance.now() - r0) / 1000;
        ctx.log(`${s.variant}: ${fmtInt(s.tables)} tables${s.subscriptions ? ` + ${fmtInt(s.subscriptions)} consumers and subscriptions` : ''} registered in ${s.registerSeconds.toFixed(1)}s`);
      }
      // Every table polled once (the first poll of a table follows its registration), or give up
      // waiting after two intervals and measure anyway (the report counts tables never polled).
      for (const s of servers) {
        if (!s.tables) continue;
        const waitSeconds = 2 * interval + 10;
        const deadline = performance.now() + waitSeconds * 1000;
        for (;;) {
          const w = await watchState(s.databaseUrl);
          if (w.unpolled === 0) break;
          if (performance.now() > deadline) {
            ctx.log(`${s.variant}: ${w.unpolled} of ${s.tables} tables still never polled ${waitSeconds}s after registration; measuring anyway`);
            break;
          }
          await sleep(500);
        }
      }
      ctx.log(`settling ${settle}s, then measuring ${windowSeconds}s`);
      await sleep(settle * 1000);

      // ---- the window ----
      const sampler = new PgBackendSampler(pgs.admin, servers.map((s) => s.database));
      const polls0 = await Promise.all(servers.map(async (s) => (await s.ips.triggerCounters()).get('polled') ?? 0));
      await sampler.start();
      const cpuAt = (): number[] => servers.map((s) => s.ips.proc.cpuSeconds());
      const marks: { t: number; cpu: number[] }[] = [{ t: performance.now(), cpu: cpuAt() }];
      const pg0 = pgCpuSeconds(pgs.postmaster);
      const bench0 = benchCpuSeconds();
      const tStart = marks[0]!.t;
      const tEnd = tStart + windowSeconds * 1000;
      // Segment marks; the last one at the end of the window (no sliver of a segment after it).
      for (let k = 1; ; k++) {
        const at = Math.min(tStart + k * segment * 1000, tEnd);
        await sleep(Math.max(0, at - performance.now()));
        marks.push({ t: performance.now(), cpu: cpuAt() });
        if (at >= tEnd) break;
      }
      const pgTotal = pgCpuSeconds(pgs.postmaster) - pg0;
      const benchCpu = benchCpuSeconds() - bench0;
      const byDb = await sampler.stop();
      const polls1 = await Promise.all(servers.map(async (s) => (await s.ips.triggerCounters()).get('polled') ?? 0));
      const wall = (marks[marks.length - 1]!.t - tStart) / 1000;
      const health = await Promise.all(servers.map((s) => watchState(s.databaseUrl)));
      // Peak memory beside the time: each server's VmHWM from its start through the window.
      const peakRss = servers.map((s) => procMemory(s.ips.proc.pid)?.hwm ?? NaN);

      // ---- report ----
      const first = marks[0]!;
      const last = marks[marks.length - 1]!;
      const cpu = servers.map((_, i) => last.cpu[i]! - first.cpu[i]!);
      const pgDb = servers.map((s) => byDb.seconds.get(s.database) ?? NaN);
      const polls = servers.map((_, i) => polls1[i]! - polls0[i]!);
      const perMin = (x: number): number => (x * 60) / wall;
      const pct = (x: number): string => `${((100 * x) / wall).toFixed(1)}%`;
      const expectedPollsPerSec = (n: number): number => n / (interval + (tickMs ?? 1000) / 2000);

      console.log(`\n== watch-cpu: CPU of ips watching ${fmtInt(tables)} tables (poll_interval_seconds ${interval}) beside ips watching none, same ${windowSeconds}s window`);
      console.log(`   ${machineSummary()}`);
      const src1 = srcState();
      console.log(`   ${src0}${src1 !== src0 ? `; CHANGED during the run, now: ${src1}` : ''}`);
      console.log(`   ${pgs.info}; one database per variant`);
      console.log(`   ips: one server per variant (startServer, PostgreSQL state, triggers on, IPS_TICK_MS ${tickMs ?? '1000 (default)'}, log silent), each its own Node process, all running through the window`);
      if (msTimestamps) console.log('   --ms-timestamps on: next_poll_at / next_check_at declared TIMESTAMPTZ(3) in the benchmark\'s databases, emulating on builds before 00e9c5d its fix (see bench/README.md)');
      console.log(`   tables: ${fmtInt(tables)} hard-linked copies of ${t.table_path} (PyIceberg ${t.pyiceberg}, ${t.snapshots} appends), each its own directory with version-hint.text, registered as {kind: directory}`);
      console.log(`   registration: ${servers.filter((s) => s.tables).map((s) => `${s.variant} ${s.registerSeconds.toFixed(1)}s`).join(', ') || '—'} (${concurrency} requests in flight); then every table polled once, then ${settle}s settle`);
      console.log(`   window ${wall.toFixed(1)}s; ips peak RSS = each server's VmHWM (/proc/PID/status) from its start through the window; CPU = utime+stime from /proc; PostgreSQL per database = its backends (pg_stat_activity, /proc sampled every 250 ms), whole server = postmaster + all its processes\n`);

      const rows = servers.map((s, i) => [
        s.variant, fmtInt(s.tables), fmtInt(s.subscriptions), mb(peakRss[i]!), cpu[i]!.toFixed(2), perMin(cpu[i]!).toFixed(2), pct(cpu[i]!),
        Number.isFinite(pgDb[i]!) ? perMin(pgDb[i]!).toFixed(2) : '—', Number.isFinite(pgDb[i]!) ? pct(pgDb[i]!) : '—', String(byDb.backends.get(s.database) ?? 0),
        fmtInt(polls[i]!), (polls[i]! / wall).toFixed(1), expectedPollsPerSec(s.tables).toFixed(1), String(health[i]!.unpolled), String(health[i]!.errors),
      ]);
      console.log(table(
        ['variant', 'tables', 'subscriptions', 'ips peak RSS', 'ips CPU s', 'CPU s/min', 'of a core', 'PG CPU s/min (its db)', 'of a core', 'backends', 'polls', 'polls/s', 'expected', 'never polled', 'in error'],
        rows,
      ).replace(/^/gm, '   '));
      console.log(`   PostgreSQL, whole server over the window: ${Number.isFinite(pgTotal) ? `${perMin(pgTotal).toFixed(2)} CPU s/min (${pct(pgTotal)} of a core)` : '—'}; ` +
        `benchmark process ${perMin(benchCpu).toFixed(2)} CPU s/min`);

      const idle = servers.findIndex((s) => s.variant === 'idle');
      if (idle >= 0) {
        console.log('');
        for (let i = 0; i < servers.length; i++) {
          if (i === idle || !servers[i]!.tables) continue;
          const s = servers[i]!;
          const scale = 1000 / s.tables;
          const dIps = cpu[i]! - cpu[idle]!;
          const dPg = pgDb[i]! - pgDb[idle]!;
          console.log(`   ${s.variant} − idle, per 1,000 tables at ${interval}s: ips ${(perMin(dIps) * scale).toFixed(2)} CPU s/min (${((100 * dIps * scale) / wall).toFixed(1)}% of a core)` +
            (Number.isFinite(dPg) ? `, PostgreSQL ${(perMin(dPg) * scale).toFixed(2)} CPU s/min (${((100 * dPg * scale) / wall).toFixed(1)}% of a core)` : '') +
            `; ${polls[i]! ? `${((1000 * dIps) / polls[i]!).toFixed(2)} ms ips CPU${Number.isFinite(dPg) ? ` + ${((1000 * dPg) / polls[i]!).toFixed(2)} ms PostgreSQL CPU` : ''} per poll` +
              (s.subscriptions ? ' (with the subscriptions\' idle checks)' : '') : 'no polls'}`);
          // Polls come in bursts (tables registered close together keep polling close together), so a window
          // catches a variable share of them: the same cost per poll at the nominal rate is steadier.
          const nominal = (expectedPollsPerSec(1000) * 60) / 1000; // polls per minute per table, × 1000 below
          if (s.variant === 'watch' && polls[i]! && polls[i]! / wall <= 1.5 * expectedPollsPerSec(s.tables) + 1) {
            const perPoll = dIps / polls[i]!;
            const perPollPg = dPg / polls[i]!;
            console.log(`   … at the nominal poll rate (${fmtInt(expectedPollsPerSec(1000) * 60)} polls/min per 1,000 tables): ips ${(perPoll * nominal * 1000).toFixed(2)} CPU s/min ` +
              `(${((100 * perPoll * nominal * 1000) / 60).toFixed(1)}% of a core)` +
              (Number.isFinite(perPollPg) ? `, PostgreSQL ${(perPollPg * nominal * 1000).toFixed(2)} CPU s/min (${((100 * perPollPg * nominal * 1000) / 60).toFixed(1)}% of a core)` : '') +
              `; the window saw ${fmtInt(polls[i]!)} polls, ${((100 * polls[i]!) / (expectedPollsPerSec(s.tables) * wall)).toFixed(0)}% of nominal`);
          }
          console.log(`   (ratio ${s.variant} ÷ idle: ips ${(cpu[i]! / cpu[idle]!).toFixed(1)}×${Number.isFinite(dPg) ? `, PostgreSQL ${(pgDb[i]! / pgDb[idle]!).toFixed(1)}×` : ''})`);
          const what = `${fmtInt(s.tables)} tables at a ${interval} s poll interval${s.subscriptions ? ' with a consumer and subscription each' : ''}, over ${wall.toFixed(0)} s`;
          ctx.result({
            measure: `ips CPU watching ${what} (PostgreSQL state)`,
            ips: `${perMin(cpu[i]!).toFixed(2)} CPU s/min (${pct(cpu[i]!)} of a core), peak RSS ${mb(peakRss[i]!)}; − idle, per 1,000 tables: ${(perMin(dIps) * scale).toFixed(2)} CPU s/min, ${polls[i]! ? `${((1000 * dIps) / polls[i]!).toFixed(2)} ms per poll` : 'no polls'}`,
            peer: `ips watching none, same window: ${perMin(cpu[idle]!).toFixed(2)} CPU s/min, peak RSS ${mb(peakRss[idle]!)}`,
            ratio: `${(cpu[i]! / cpu[idle]!).toFixed(1)}×`,
          });
          if (Number.isFinite(dPg)) {
            ctx.result({
              measure: `PostgreSQL CPU of the ips database watching ${what}`,
              ips: `${perMin(pgDb[i]!).toFixed(2)} CPU s/min (${pct(pgDb[i]!)} of a core); − idle, per 1,000 tables: ${(perMin(dPg) * scale).toFixed(2)} CPU s/min${polls[i]! ? `, ${((1000 * dPg) / polls[i]!).toFixed(2)} ms per poll` : ''}`,
              peer: `the idle ips's database: ${perMin(pgDb[idle]!).toFixed(2)} CPU s/min`,
              ratio: `${(pgDb[i]! / pgDb[idle]!).toFixed(1)}×`,
            });
          }
        }
      }

      console.log(`\n   ips CPU, % of a core per ${segment}s segment (the spread shows the noise of the shared machine):`);
      for (let i = 0; i < servers.length; i++) {
        const segs: string[] = [];
        for (let k = 1; k < marks.length; k++) {
          const dt = (marks[k]!.t - marks[k - 1]!.t) / 1000;
          segs.push(`${((100 * (marks[k]!.cpu[i]! - marks[k - 1]!.cpu[i]!)) / dt).toFixed(1)}%`);
        }
        console.log(`   ${servers[i]!.variant.padEnd(10)} ${segs.join('  ')}`);
      }

      const warnings: string[] = [];
      servers.forEach((s, i) => {
        if (s.tables && polls[i]! / wall > 1.5 * expectedPollsPerSec(s.tables) + 1) {
          warnings.push(`${s.variant}: ${(polls[i]! / wall).toFixed(1)} polls/s where ${fmtInt(s.tables)} tables at ${interval}s allow ~${expectedPollsPerSec(s.tables).toFixed(1)}: ` +
            'next_poll_at does not advance as it should (before 00e9c5d: see bench/README.md, "--ms-timestamps"); this measures polling every table on every loop pass');
        }
        if (health[i]!.unpolled) {
          warnings.push(`${s.variant}: ${fmtInt(health[i]!.unpolled)} of ${fmtInt(s.tables)} tables were never polled (the claim takes the 25 rows with the oldest next_poll_at; ` +
            'rows whose next_poll_at never advances keep that place: see bench/README.md)');
        }
        if (health[i]!.errors) warnings.push(`${s.variant}: ${health[i]!.errors} tables have a poll error, e.g. ${health[i]!.sample}`);
      });
      if (receiver.received) warnings.push(`${receiver.received} triggers reached the receiver (nothing changed: none expected)`);
      for (const w of warnings) console.log(`   WARNING ${w}`);
      console.log(`\n   total ${((performance.now() - t0) / 1000).toFixed(0)}s\n`);
    } finally {
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => ctx.log(`cleanup failed: ${String(e)}`));
    }
  },
};
