// Fleet scale (issue 19): what ips absorbs with 1,000 tables and 10,000 consumers, on one
// PostgreSQL with 1, 2 and 3 `ips serve` replicas, and what that costs. See bench/lib/fleet-sim.ts
// for the simulation (tables, consumers, webhook receiver committing over the step protocol, the
// diurnal day's peak hours compressed --compression times) and docs/capacity.md for the figures of a full run.
//
// Parts, in order (each prints its own table):
// 1. The fleet, registered once; then one measured window of the simulated day (by default its
//    two peak hours) per replica count, the replicas added one by one (same database, tables and
//    consumers). A window's backlog (triggers still owed after the drain) carries into the next.
//    Why windows and not whole days: a day of 1,000 tables × 4 commits × 10 consumers is 40,000
//    triggers; on a shared 2-core machine that is more than a 15-minute benchmark can deliver, so
//    the peak hours are offered faster than real time and the figures say what ips absorbed.
// 2. The cost curve: a smaller fleet on fresh databases, one replica, one window each — the base,
//    tables ×2 (same consumers spread over twice the tables: twice the commits, same triggers) and
//    consumers ×2 (same tables: same commits, twice the triggers).
// 3. State after a simulated day and week, with retention and without, at the fleet's shape
//    (its consumers' batches a day, one file each): bench/state-growth.ts's simulation on a slice
//    of the fleet (--state-tables tables), scaled per 1,000 consumers.
import os from 'node:os';
import path from 'node:path';
import { fmtInt, intOption, intOptions, machineSummary, ms, pcts, table, type BenchContext, type Benchmark } from './lib/common.js';
import { FleetSim, type FleetShape, type PhaseResult } from './lib/fleet-sim.js';
import { startPostgres, type Postgres } from './lib/postgres.js';
import { srcState, triggerTable, workDir, type TriggerTable } from './lib/trigger-common.js';
import { simulate } from './state-growth.js';
import { DEFAULT_RETENTION } from '../src/state/index.js';

const OPTIONS: Record<string, string> = {
  tables: 'registered tables (default 1000)',
  'consumers-per-table': 'consumers subscribed to each table, one webhook subscription each (default 10)',
  replicas: 'comma-separated replica counts, one simulated day each, ascending (default 1,2,3)',
  'from-hour': 'the simulated hour each measured window starts at (default 11: the two peak hours of the diurnal curve)',
  'window-hours': 'simulated hours per measured window, one window per replica count (default 2)',
  compression: 'simulated time ÷ real time (default 120: two simulated hours in one real minute)',
  'commits-per-table-day': 'commits of each table a simulated day, on the diurnal curve (default 4)',
  'poll-interval': 'poll_interval_seconds of every table, real seconds (default 30, ips\'s default)',
  'events-share': 'percent of the tables whose appends are also announced by POST /v1/tables/{name}/events (default 50)',
  'probe-rate': 'API GETs per second of the latency probe (default 5)',
  'drain-seconds': 'after a window, how long to wait for the triggers still owed (default 30); what is still owed then counts in the next window',
  'register-concurrency': 'registration requests in flight (default 16)',
  'commit-concurrency': 'step-protocol commits in flight at the receiver (default 32)',
  'doubling-tables': 'tables of the cost curve\'s base fleet; 0 skips the curve (default 50)',
  'doubling-consumers-per-table': 'consumers per table of the base fleet, even (default 4)',
  'doubling-compression': 'compression of the curve\'s windows (default 360: two simulated hours in 20 s)',
  'state-tables': 'tables of the state-size simulation (× consumers-per-table consumers); 0 skips it (default 10)',
  'state-days': 'simulated days of the state-size simulation (default 7)',
  snapshots: 'appends in the generated source table: bounds the commits per table over all days (default 60)',
  seed: 'seed of the commit schedule (default 19)',
};

const MiB = (b: number): string => (Number.isFinite(b) && b > 0 ? (b / 2 ** 20).toFixed(0) : '—');
const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

interface Run {
  label: string;
  shape: FleetShape;
  phase: PhaseResult;
  stateBytes: number;
  load: string;
}

async function fleetRun(ctx: BenchContext, pgs: Postgres, t: TriggerTable, label: string, shape: FleetShape, days: { replicas: number; compression: number }[],
  o: { commitsPerTableDay: number; seed: number; probePerSecond: number; drainSeconds: number; fromHour: number; hours: number }): Promise<{ runs: Run[]; register: { seconds: number; requests: number }; problems: string[]; missing: number }> {
  const db = `ips_bench_fleet_${label.replace(/\W/g, '_')}_${process.pid}`;
  const url = await pgs.createDatabase(db);
  const work = workDir(t, `fleet-${label.replace(/\W/g, '_')}`);
  const sim = new FleetSim(t, shape, url, work.dir, (m) => ctx.log(`${label}: ${m}`));
  try {
    await sim.startReplica();
    ctx.log(`${label}: registering ${fmtInt(shape.tables)} tables, ${fmtInt(sim.consumers)} consumers and subscriptions…`);
    const register = await sim.register('state');
    ctx.log(`${label}: registered in ${register.seconds.toFixed(0)}s (${fmtInt(register.requests)} requests)`);
    const runs: Run[] = [];
    for (const [k, d] of days.entries()) {
      while (sim.replicas.length < d.replicas) await sim.startReplica();
      ctx.log(`${label}: window ${k + 1} with ${d.replicas} replica(s), ${((o.hours * 3600) / d.compression).toFixed(0)}s… (load ${load()})`);
      const phase = await sim.runWindow({ ...o, compression: d.compression, seed: o.seed + k, postmaster: pgs.postmaster });
      const l = load();
      runs.push({ label, shape, phase, stateBytes: await sim.stateBytes(), load: l });
      ctx.log(`${label}: window ${k + 1}: ${fmtInt(phase.deliveries.length)} triggers in ${phase.wall.toFixed(0)}s, ${fmtInt(phase.missing)} still owed (load ${l})`);
    }
    // The accounting, once nothing moves: firing stops (subscriptions disabled in the database, after
    // the measurement), deliveries under way finish, the receiver's commits settle.
    await sim.stopFiring();
    const v = await sim.verify();
    return { runs, register, problems: v.problems, missing: v.missing };
  } finally {
    await sim.close();
    await work.remove();
  }
}

function phaseRow(r: Run, scale: { tables: number; consumers: number }): (string | number)[] {
  const p = r.phase;
  const ev = pcts(p.latency.event);
  const po = pcts(p.latency.poll);
  const api = pcts(p.apiMs);
  const cm = pcts(p.commitMs);
  const ipsCpu = p.ipsCpu.reduce((a, b) => a + b, 0);
  const core = (s: number): string => (Number.isFinite(s) ? `${((100 * s) / p.wall).toFixed(0)}%` : '—');
  return [
    r.label, p.replicas, fmtInt(p.appends.length), (p.appends.length / p.daySeconds).toFixed(1), (p.absorbed / p.wall).toFixed(1),
    (p.deliveries.length / p.wall).toFixed(1), `${ms(ev.p50)}/${ms(ev.p99)}`, `${ms(po.p50)}/${ms(po.p99)}`, ms(api.p99), ms(cm.p99),
    core(ipsCpu), core(p.pgCpu),
    core(ipsCpu / (scale.tables / 1000)), core(ipsCpu / (scale.consumers / 1000)), core(p.pgCpu / (scale.tables / 1000)), core(p.pgCpu / (scale.consumers / 1000)),
    p.deliveries.length ? (1000 * (ipsCpu + (Number.isFinite(p.pgCpu) ? p.pgCpu : 0)) / p.deliveries.length).toFixed(1) : '—',
    p.ipsPeakRss.map(MiB).join('+'), MiB(p.pgPeakPss), MiB(r.stateBytes), String(p.missing), r.load.split(' ')[0]!,
  ];
}

const HEAD = ['fleet', 'replicas', 'commits', 'offered/s', 'absorbed/s', 'triggers/s', 'event p50/p99 ms', 'poll p50/p99 ms', 'API GET p99', 'commit p99',
  'ips CPU', 'PG CPU', 'ips/1k tables', 'ips/1k cons.', 'PG/1k tables', 'PG/1k cons.', 'CPU ms/trigger', 'ips peak RSS MiB', 'PG PSS MiB', 'state MiB', 'missing', 'load'];

export const fleet: Benchmark = {
  name: 'fleet',
  description: 'fleet simulation: 1,000 tables, 10,000 consumers with webhook subscriptions, a diurnal day of commits compressed into minutes, 1/2/3 ips replicas on one PostgreSQL; throughput, latency, API p99, CPU and memory, cost curve, state size; needs PostgreSQL',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const o = intOptions(ctx, {
      tables: 1000, 'consumers-per-table': 10, 'commits-per-table-day': 4, 'poll-interval': 30, 'probe-rate': 5,
      'drain-seconds': 30, 'register-concurrency': 16, 'commit-concurrency': 32, snapshots: 60, seed: 19,
      'doubling-compression': 360, 'state-days': 7, compression: 120, 'window-hours': 2,
    });
    const eventsShare = Number(ctx.options.get('events-share') ?? '50');
    if (!Number.isInteger(eventsShare) || eventsShare < 0 || eventsShare > 100) throw new Error('--events-share must be a whole percent, 0…100');
    const doublingTables = ctx.options.get('doubling-tables') === '0' ? 0 : intOption(ctx, 'doubling-tables', 50);
    const fromHour = Number(ctx.options.get('from-hour') ?? '11');
    if (!Number.isInteger(fromHour) || fromHour < 0 || fromHour + o['window-hours'] > 24) throw new Error('--from-hour: a whole hour, the window inside the day');
    const doublingK = intOption(ctx, 'doubling-consumers-per-table', 4);
    if (doublingK % 2) throw new Error('--doubling-consumers-per-table must be even (tables ×2 spreads the same consumers over twice the tables)');
    const stateTables = ctx.options.get('state-tables') === '0' ? 0 : intOption(ctx, 'state-tables', 10);
    const replicas = (ctx.options.get('replicas') ?? '1,2,3').split(',').map((x) => Number(x.trim()));
    if (replicas.some((r, i) => !Number.isInteger(r) || r < 1 || r > 8 || (i > 0 && r < replicas[i - 1]!))) throw new Error('--replicas: ascending counts 1…8, e.g. 1,2,3');
    if (replicas.length * o['commits-per-table-day'] >= o.snapshots) throw new Error(`--snapshots ${o.snapshots} is too few for ${replicas.length} windows of up to ${o['commits-per-table-day']} commits per table`);
    const shape = (tables: number, perTable: number): FleetShape => ({
      tables, consumersPerTable: perTable, pollSeconds: o['poll-interval'], eventsShare: eventsShare / 100,
      registerConcurrency: o['register-concurrency'], commitConcurrency: o['commit-concurrency'],
    });
    const common = { commitsPerTableDay: o['commits-per-table-day'], seed: o.seed, probePerSecond: o['probe-rate'], drainSeconds: o['drain-seconds'], fromHour, hours: o['window-hours'] };
    const t0 = performance.now();
    const src0 = srcState();
    const load0 = load();
    const [tr, pr] = await Promise.allSettled([triggerTable(ctx, o.snapshots), startPostgres(ctx)]);
    if (pr.status === 'rejected') throw pr.reason;
    const pgs = pr.value;
    try {
      if (tr.status === 'rejected') throw tr.reason;
      const t = tr.value;

      // 1. the fleet, one day per replica count
      const main = await fleetRun(ctx, pgs, t, 'fleet', shape(o.tables, o['consumers-per-table']),
        replicas.map((r) => ({ replicas: r, compression: o.compression })), common);

      // 2. the cost curve
      const curve: Awaited<ReturnType<typeof fleetRun>>[] = [];
      if (doublingTables) {
        const b = doublingTables;
        const k = doublingK;
        const one = [{ replicas: 1, compression: o['doubling-compression'] }];
        curve.push(await fleetRun(ctx, pgs, t, 'base', shape(b, k), one, common));
        curve.push(await fleetRun(ctx, pgs, t, 'tables×2', shape(2 * b, k / 2), one, common));
        curve.push(await fleetRun(ctx, pgs, t, 'consumers×2', shape(b, 2 * k), one, common));
      }

      // 3. state after a day and a week, at the fleet's shape
      const state: { label: string; days: Awaited<ReturnType<typeof simulate>> }[] = [];
      if (stateTables) {
        for (const [label, policy] of [['retention on (defaults)', DEFAULT_RETENTION], ['retention off', null]] as const) {
          const url = await pgs.createDatabase(`ips_bench_fleet_state_${policy ? 'on' : 'off'}_${process.pid}`);
          state.push({
            label, days: await simulate(ctx, url, label, policy, {
              tables: stateTables, perTable: o['consumers-per-table'], batchesPerDay: o['commits-per-table-day'], filesPerBatch: 1,
              days: o['state-days'], concurrency: 8, passesPerDay: 24, breakdown: false,
            }),
          });
        }
      }

      // ---- report ----
      const consumers = o.tables * o['consumers-per-table'];
      const windowSeconds = (o['window-hours'] * 3600) / o.compression;
      const perDay = o.tables * o['commits-per-table-day'];
      console.log(`\n== fleet: ${fmtInt(o.tables)} tables, ${fmtInt(consumers)} consumers with webhook subscriptions, one PostgreSQL, ${replicas.join('/')} ips replicas`);
      console.log(`   ${machineSummary()}; load average at the start ${load0}`);
      console.log(`   ${src0}`);
      console.log(`   ${pgs.info}`);
      console.log(`   tables: copies of ${t.table_path} (PyIceberg ${t.pyiceberg}, one Parquet file per append), {kind: directory}, poll_interval_seconds ${o['poll-interval']}; ` +
        `${eventsShare}% also announced by POST /v1/tables/{name}/events`);
      console.log(`   consumers: ${o['consumers-per-table']} per table, from 'now', one webhook subscription each (limits.max_files 1: one trigger per commit); ` +
        `the receiver commits each batch over the step protocol (POST /v1/batches/{id}/commit, ${o['commit-concurrency']} in flight, replicas in turn)`);
      console.log(`   a simulated day: ${o['commits-per-table-day']} commits per table on a diurnal curve (rate ∝ 1 − 0.7·cos 2πt: 0.3× at midnight, 1.7× at noon): ` +
        `${fmtInt(perDay)} commits, ${fmtInt(perDay * o['consumers-per-table'])} triggers a day (real time: ${(perDay / 86_400).toFixed(3)} commits/s, ${(perDay * o['consumers-per-table'] / 86_400).toFixed(2)} triggers/s on average)`);
      console.log(`   each measured window: simulated ${String(fromHour).padStart(2, '0')}:00–${String(fromHour + o['window-hours']).padStart(2, '0')}:00 compressed ${o.compression}× into ${windowSeconds.toFixed(0)}s, ` +
        `then up to ${o['drain-seconds']}s for the triggers owed; ips's clocks (poll interval, ticks) are real time`);
      console.log(`   API probe: ${o['probe-rate']} GETs/s (a consumer's batches, a subscription, a table) over the replicas; CPU from /proc over each day's window ` +
        `(ips: every replica; PostgreSQL: the whole server); % = of one core; "/1k" = per 1,000 tables or consumers of that fleet; peak RSS sampled every second`);
      console.log(`   registration: ${fmtInt(o.tables)} tables over HTTP (one replica) and ${fmtInt(consumers)} consumers with their subscriptions through the repositories, ` +
        `one transaction per table, ${o['register-concurrency']} tables at a time: ${main.register.seconds.toFixed(0)}s\n`);
      console.log(table(HEAD, main.runs.map((r) => phaseRow(r, { tables: o.tables, consumers })).concat(
        curve.flatMap((c) => c.runs.map((r) => phaseRow(r, { tables: r.shape.tables, consumers: r.shape.tables * r.shape.consumersPerTable })))),
      ).replace(/^/gm, '   '));
      // Result rows (bench/table.ts): one per replica count of the fleet's windows; no peer, no target (issue 19 names none for these).
      for (const r of main.runs) {
        const p = r.phase;
        const cpu = p.ipsCpu.reduce((a, b) => a + b, 0) + (Number.isFinite(p.pgCpu) ? p.pgCpu : 0);
        ctx.result({
          measure: `fleet of ${fmtInt(o.tables)} tables, ${fmtInt(consumers)} consumers with webhook subscriptions, ${p.replicas} ips replica(s) on one PostgreSQL: ` +
            `the simulated peak hours offered ${o.compression}× faster (${fmtInt(p.appends.length)} commits)`,
          ips: `${(p.deliveries.length / p.wall).toFixed(1)} triggers/s, ` +
            `${p.deliveries.length ? ((1000 * cpu) / p.deliveries.length).toFixed(1) : '—'} ms ips + PostgreSQL CPU per trigger, API GET p99 ${ms(pcts(p.apiMs).p99)} ms, ` +
            `ips peak RSS ${p.ipsPeakRss.map(MiB).join(' + ')} MiB, PostgreSQL PSS ${MiB(p.pgPeakPss)} MiB`,
        });
      }
      if (curve.length) {
        const base = curve[0]!.runs[0]!;
        const cpuOf = (r: Run): { ips: number; pg: number } => ({ ips: r.phase.ipsCpu.reduce((a, b) => a + b, 0) / r.phase.wall, pg: r.phase.pgCpu / r.phase.wall });
        const b = cpuOf(base);
        console.log(`\n   cost curve (one replica, the same window compressed ${o['doubling-compression']}×): base ${fmtInt(base.shape.tables)} tables × ${base.shape.consumersPerTable} consumers; ` +
          'tables×2 = twice the tables (and commits), same consumers; consumers×2 = same tables, twice the consumers (and triggers)');
        for (const c of curve.slice(1)) {
          const r = c.runs[0]!;
          const x = cpuOf(r);
          console.log(`   ${r.label}: ips CPU ${(x.ips / b.ips).toFixed(2)}× the base, PostgreSQL CPU ${Number.isFinite(x.pg / b.pg) ? (x.pg / b.pg).toFixed(2) : '—'}×, ` +
            `triggers/s ${((r.phase.deliveries.length / r.phase.wall) / (base.phase.deliveries.length / base.phase.wall)).toFixed(2)}×, ` +
            `poll p99 ${ms(pcts(r.phase.latency.poll).p99)} ms (base ${ms(pcts(base.phase.latency.poll).p99)})`);
        }
      }
      if (state.length) {
        const k = consumers / 1000;
        const per = (b: number, n: number): string => `${(b / 2 ** 20 / (n / 1000)).toFixed(0)} MiB`;
        const n = stateTables * o['consumers-per-table'];
        console.log(`\n   state (bench/state-growth.ts's simulation at the fleet's shape: ${fmtInt(n)} consumers, ${o['commits-per-table-day']} batches of 1 file each a day; ` +
          'size after a plain VACUUM; per 1,000 consumers, and × the fleet):');
        for (const s of state) {
          const d1 = s.days[0]!;
          const dn = s.days[s.days.length - 1]!;
          console.log(`   ${s.label}: day 1 ${per(d1.bytes, n)} per 1,000 consumers (fleet ≈ ${(d1.bytes / (n / 1000) * k / 2 ** 30).toFixed(2)} GiB), ` +
            `day ${dn.day} ${per(dn.bytes, n)} (fleet ≈ ${(dn.bytes / (n / 1000) * k / 2 ** 30).toFixed(2)} GiB): ${(dn.bytes / d1.bytes).toFixed(2)}× the first day`);
        }
        console.log(`   measured in the fleet's own database after each day: ${main.runs.map((r, i) => `day ${i + 1} ${MiB(r.stateBytes)} MiB`).join(', ')}`);
      }
      const owed = [main, ...curve].map((c) => `${c.runs[0]?.label}: ${fmtInt(c.missing)}`).join(', ');
      console.log(`\n   triggers owed at the end (appended, not delivered when the run stopped firing): ${owed}`);
      const problems = [...main.problems.map((p) => `fleet: ${p}`), ...curve.flatMap((c) => c.problems.map((p) => `${c.runs[0]?.label}: ${p}`)),
        ...main.runs.concat(curve.flatMap((c) => c.runs)).flatMap((r) => r.phase.problems.map((p) => `${r.label}: ${p}`))];
      console.log(`   accounting (the triggers each consumer got are, in order and once each, the first appends of its table; each batch committed once; ` +
        'each watermark at its last delivered batch): ' +
        `${problems.length ? `${problems.length} PROBLEMS` : 'all holds'}`);
      for (const p of problems.slice(0, 20)) console.log(`   PROBLEM ${p}`);
      console.log(`\n   total ${((performance.now() - t0) / 1000).toFixed(0)}s; load average at the end ${load()}\n`);
    } finally {
      await pgs.close();
    }
  },
};
