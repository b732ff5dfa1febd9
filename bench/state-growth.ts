// State size of a fleet over a simulated week, with the retention pass (src/state/retention.ts)
// and without it, side by side on the same PostgreSQL.
//
// - The fleet: --tables registered tables, --consumers-per-table consumers each subscribed to one
//   of them with a webhook subscription. Every consumer runs --batches-per-day batches a day, each
//   with --files-per-batch data files in its file list (the JSON ips stores: path, partition,
//   bounds, counts, sequence numbers) — written through the repositories the service uses: the
//   batch with its trigger (outbox row), the trigger marked delivered, the commit that moves the
//   watermark (and writes its audit row).
// - Simulated time: each day runs in --passes-per-day slices (24: the service's hourly pass); the
//   rows a slice made are moved to their simulated time (timestamps shifted forward, once), then
//   the retention pass runs with its clock at that time, then a plain VACUUM (what autovacuum
//   does: space reusable, files not shrunk). No row is touched again by the simulation, so table
//   sizes are what a real week would leave.
// - Size: at the end of each day, pg_total_relation_size of every ips table, the rows of the big
//   ones, and the live bytes of the file lists (pg_column_size) against everything else.
import pg from 'pg';
import { fmtInt, fmtRatio, meets, pool, intOptions, machineSummary, table, type BenchContext, type Benchmark } from './lib/common.js';
import { startPostgres } from './lib/postgres.js';
import { DEFAULT_RETENTION, NO_COUNTS, State, type RetentionCounts, type RetentionPolicy } from '../src/state/index.js';
import type { FileJson } from '../src/capture/file-json.js';

const OPTIONS: Record<string, string> = {
  tables: 'registered tables (default 10)',
  'consumers-per-table': 'consumers subscribed to each table (default 10)',
  'batches-per-day': 'batches each consumer commits a simulated day (default 24: hourly)',
  'files-per-batch': 'data files in each batch\'s file list (default 50)',
  days: 'simulated days (default 7)',
  concurrency: 'consumers working at once (default 8)',
  breakdown: '"no" leaves out the per-table, per-index and per-column sizes printed after the last day',
  'passes-per-day': 'retention passes per simulated day (default 24: the service\'s default interval of an hour); the day\'s batches are spread over them',
};

const DAY_MS = 86_400_000;
const TABLES = ['batches', 'batch_tables', 'outbox', 'watermark_moves', 'watermarks', 'subscriptions', 'consumers', 'source_tables', 'backfills', 'backfill_chunks', 'maintenance_leases'];

export interface DayFigures {
  day: number;
  bytes: number;
  byTable: Map<string, number>;
  rows: { batches: number; fileLists: number; outbox: number; moves: number };
  /** Live bytes of the stored file lists (the JSONB values, compressed as stored). */
  fileListBytes: number;
  removed: RetentionCounts | null;
  seconds: number;
}

function dataFile(table: number, day: number, i: number): FileJson {
  const date = new Date(Date.UTC(2026, 10, 1) + day * DAY_MS).toISOString().slice(0, 10);
  const id = `${String(table).padStart(4, '0')}-${String(i).padStart(5, '0')}-${Math.random().toString(16).slice(2, 14)}`;
  return {
    file_path: `s3://lake/warehouse/events.db/table_${table}/data/event_date=${date}/00000-${i}-${id}-00001.parquet`,
    content: 'data', file_format: 'PARQUET', record_count: String(20_000 + i), file_size_in_bytes: String(3_000_000 + 17 * i),
    sequence_number: String(day * 1000 + i), file_sequence_number: String(day * 1000 + i), spec_id: 0,
    partition: { event_date: date },
    lower_bounds: { event_ts: `${date}T00:00:0${i % 10}.000000+00:00`, profile_id: String(1000 + i), title_id: String(i) },
    upper_bounds: { event_ts: `${date}T23:59:5${i % 10}.999999+00:00`, profile_id: String(9_000_000 + i), title_id: String(50_000 + i) },
  };
}


/**
 * Where the bytes of the kept rows are: per table heap, TOAST and each index, and the average
 * stored width of every column (pg_column_size: as stored, compressed) — what one batch costs
 * beyond its file list.
 */
async function printBreakdown(admin: pg.Client, label: string): Promise<void> {
  const rels = await admin.query<{ t: string; heap: string; toast: string; idx: string; n: string }>(
    `SELECT c.relname AS t, pg_relation_size(c.oid) AS heap, COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
       pg_indexes_size(c.oid) AS idx, c.reltuples::INT8 AS n
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::TEXT[]) ORDER BY pg_total_relation_size(c.oid) DESC`, [`{${TABLES.join(',')}}`]);
  console.log(`\n   ${label}: where the bytes are (after the last day)`);
  console.log(table(['table', 'rows', 'heap KiB', 'toast KiB', 'indexes KiB', 'B/row total'], rels.rows.map((r) => {
    const n = Math.max(1, Number(r.n));
    return [r.t, fmtInt(Number(r.n)), fmtInt(Number(r.heap) / 1024), fmtInt(Number(r.toast) / 1024), fmtInt(Number(r.idx) / 1024), fmtInt((Number(r.heap) + Number(r.toast) + Number(r.idx)) / n)];
  })));
  const idx = await admin.query<{ i: string; t: string; b: string }>(
    `SELECT indexrelname AS i, relname AS t, pg_relation_size(indexrelid) AS b FROM pg_stat_user_indexes WHERE relname = ANY($1::TEXT[]) ORDER BY 3 DESC LIMIT 16`, [`{${TABLES.join(',')}}`]);
  console.log(table(['index', 'table', 'KiB'], idx.rows.map((r) => [r.i, r.t, fmtInt(Number(r.b) / 1024)])));
  for (const t of ['batches', 'batch_tables', 'outbox', 'watermark_moves']) {
    const cols = await admin.query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [t]);
    const sums = cols.rows.map((c) => `COALESCE(avg(pg_column_size(${JSON.stringify(c.c)})), 0)::FLOAT8 AS ${JSON.stringify(c.c)}`).join(', ');
    const r = (await admin.query<Record<string, number>>(`SELECT avg(pg_column_size(x.*))::FLOAT8 AS "(row)", ${sums} FROM ${t} x`)).rows[0]!;
    console.log(`   ${t} avg bytes per column: ${Object.entries(r).filter(([, v]) => v >= 8).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}`);
  }
}

export async function simulate(ctx: BenchContext, url: string, label: string, policy: RetentionPolicy | null,
  o: { tables: number; perTable: number; batchesPerDay: number; filesPerBatch: number; days: number; concurrency: number; passesPerDay: number; breakdown: boolean }): Promise<DayFigures[]> {
  const state = await State.open({ driver: 'postgres', url, poolMax: o.concurrency + 2, applicationName: `ips-bench-${label.split(' ')[1]}` });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const r = state.repos;
    const consumers: { name: string; table: string; t: number; subscription: string; seq: bigint }[] = [];
    for (let t = 0; t < o.tables; t++) {
      const table = `t${t}`;
      await r.sourceTables.create({ name: table, ref: { kind: 'directory', location: `/lake/warehouse/events.db/table_${t}` } });
      for (let c = 0; c < o.perTable; c++) {
        const name = `${table}-c${c}`;
        await r.consumers.create({ name });
        await r.watermarks.create({ consumer: name, sourceTable: table, rangeFields: ['event_ts'] }, { actor: 'bench', reason: 'subscribe' });
        await r.subscriptions.create({ name: `${name}-s`, consumer: name, tables: [table], sink: { type: 'webhook', url: 'https://orchestrator.example.com/hooks/ips', secret: 'bench-webhook-secret' } });
        consumers.push({ name, table, t, subscription: `${name}-s`, seq: 0n });
      }
    }
    ctx.log(`${label}: ${fmtInt(o.tables)} tables, ${fmtInt(consumers.length)} consumers and subscriptions registered`);
    const out: DayFigures[] = [];
    let snapshot = 1n;
    for (let day = 1; day <= o.days; day++) {
      const t0 = performance.now();
      let removed: RetentionCounts | null = policy ? { ...NO_COUNTS } : null;
      // The day in slices, one per retention pass (the service runs one every
      // retention_interval_seconds: hourly by default); each slice's rows move to their simulated time.
      for (let slice = 0; slice < o.passesPerDay; slice++) {
        const batchesNow = Math.floor(((slice + 1) * o.batchesPerDay) / o.passesPerDay) - Math.floor((slice * o.batchesPerDay) / o.passesPerDay);
        const realStart = (await admin.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0]!.now;
        await pool(consumers, o.concurrency, async (c) => {
          for (let b = 0; b < batchesNow; b++) {
            const wm = await r.watermarks.require(c.name, c.table);
            const to = snapshot++;
            const files = Array.from({ length: o.filesPerBatch }, (_, i) => dataFile(c.t, day, Number(to % 100_000n) * o.filesPerBatch + i));
            const { batch } = await r.batches.create({
              consumer: c.name, instanceId: `s${to}`, leaseSeconds: 3600, trigger: { subscription: c.subscription, seq: ++c.seq },
              tables: [{
                sourceTable: c.table, fromSnapshotId: wm.snapshotId, fromSequenceNumber: wm.sequenceNumber, toSnapshotId: to, toSequenceNumber: to,
                files: { added: files, removed: [] }, baseWatermarkVersion: wm.version,
                ranges: { ranges: { event_ts: { min: files[0]!.lower_bounds['event_ts'], max: files[0]!.upper_bounds['event_ts'], flag: 'exact' } }, changed_partitions: [{ name: `event_date=${String(files[0]!.partition['event_date'])}` }] },
                icdc: { table: `icdc.${c.name}__${c.table}`, snapshotId: to, metadataLocation: `s3://lake/icdc/${c.name}__${c.table}/metadata/${String(to).padStart(5, '0')}-x.metadata.json` },
                next: { snapshotId: to, sequenceNumber: to, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] },
              }],
            });
            // What the delivery loop writes when the orchestrator took the trigger.
            await state.db.query(`UPDATE outbox SET state = 'delivered', attempts = 1, outcome = 'started', run_id = $2, delivered_at = now() WHERE batch_id = $1`,
              [batch.id, `run-${batch.id}`]);
            await r.batches.commit(batch.id, 'bench');
          }
        });
        const realEnd = (await admin.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0]!.now;
        // The slice's rows move to their simulated time, once: `offset` after the real start.
        const offsetMs = ((day - 1) * o.passesPerDay + slice + 1) * (DAY_MS / o.passesPerDay);
        const shift = [realStart, realEnd, offsetMs];
        const by = `$3::INT8 * INTERVAL '1 millisecond'`;
        await admin.query(`UPDATE batches SET created_at = created_at + ${by}, updated_at = updated_at + ${by}, closed_at = closed_at + ${by},
          lease_expires_at = lease_expires_at + ${by} WHERE created_at BETWEEN $1 AND $2`, shift);
        await admin.query(`UPDATE outbox SET created_at = created_at + ${by}, delivered_at = delivered_at + ${by} WHERE created_at BETWEEN $1 AND $2`, shift);
        await admin.query(`UPDATE watermark_moves SET moved_at = moved_at + ${by} WHERE moved_at BETWEEN $1 AND $2`, shift);
        if (policy && removed) {
          const done = await r.retention.run(policy, { now: new Date(realEnd.getTime() + offsetMs) });
          for (const k of Object.keys(done) as (keyof RetentionCounts)[]) removed[k] += done[k];
        }
        // What autovacuum does between passes: the space of removed rows becomes reusable.
        await admin.query('VACUUM');
      }
      const sizes = await admin.query<{ t: string; b: string }>(
        `SELECT c.relname AS t, pg_total_relation_size(c.oid) AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::TEXT[])`, [`{${TABLES.join(',')}}`]);
      const byTable = new Map(sizes.rows.map((x) => [x.t, Number(x.b)]));
      const count = async (sql: string): Promise<number> => Number((await admin.query<{ n: string }>(sql)).rows[0]!.n);
      const rows = {
        batches: await count('SELECT count(*) AS n FROM batches'),
        fileLists: await count('SELECT count(*) AS n FROM batch_tables WHERE files_pruned_at IS NULL'),
        outbox: await count('SELECT count(*) AS n FROM outbox'),
        moves: await count('SELECT count(*) AS n FROM watermark_moves'),
      };
      const fileListBytes = await count('SELECT COALESCE(sum(pg_column_size(files)), 0) AS n FROM batch_tables');
      const f: DayFigures = { day, fileListBytes, bytes: [...byTable.values()].reduce((a, b) => a + b, 0), byTable, rows, removed, seconds: (performance.now() - t0) / 1000 };
      out.push(f);
      ctx.log(`${label}: day ${day}: ${(f.bytes / 2 ** 20).toFixed(1)} MiB, ${fmtInt(rows.batches)} batches (${fmtInt(rows.fileLists)} with file lists), ${f.seconds.toFixed(0)}s`);
    }
    if (o.breakdown) await printBreakdown(admin, label);
    return out;
  } finally {
    await admin.end();
    await state.close();
  }
}

export const stateGrowth: Benchmark = {
  name: 'state-growth',
  description: 'state size of a fleet (tables × consumers, hourly batches) over a simulated week, with the retention pass and without; needs PostgreSQL',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const o = intOptions(ctx, { tables: 10, 'consumers-per-table': 10, 'batches-per-day': 24, 'files-per-batch': 50, days: 7, concurrency: 8, 'passes-per-day': 24 });
    const opts = { tables: o.tables, perTable: o['consumers-per-table'], batchesPerDay: o['batches-per-day'], filesPerBatch: o['files-per-batch'], days: o.days, concurrency: o.concurrency, passesPerDay: o['passes-per-day'], breakdown: ctx.options.get('breakdown') !== 'no' };
    const pgs = await startPostgres(ctx);
    try {
      const runs: { label: string; policy: RetentionPolicy | null; days: DayFigures[] }[] = [];
      for (const [label, policy] of [['retention on (defaults)', DEFAULT_RETENTION], ['retention off', null]] as const) {
        const url = await pgs.createDatabase(`ips_bench_state_growth_${policy ? 'on' : 'off'}_${process.pid}`);
        runs.push({ label, policy, days: await simulate(ctx, url, label, policy, opts) });
      }
      const consumers = opts.tables * opts.perTable;
      const batchesPerDay = consumers * opts.batchesPerDay;
      const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
      console.log(`\n== state-growth: state size over ${opts.days} simulated days, with and without retention`);
      console.log(`   ${machineSummary()}`);
      console.log(`   ${pgs.info}`);
      console.log(`   fleet: ${fmtInt(opts.tables)} tables × ${opts.perTable} consumers = ${fmtInt(consumers)} consumers with webhook subscriptions; ` +
        `${opts.batchesPerDay} batches per consumer a day (${fmtInt(batchesPerDay)} a day), ${opts.filesPerBatch} files each`);
      const p = DEFAULT_RETENTION;
      console.log(`   retention defaults: file lists ${p.batchFilesDays} d, batches ${p.batchDays} d, triggers ${p.outboxDays} d, watermark moves ${p.watermarkMovesDays} d (newest always kept)`);
      console.log('   size = pg_total_relation_size of the ips tables after a plain VACUUM at the end of each day\n');
      const head = ['day', ...runs.flatMap((r) => [`${r.label} MiB`, 'batches', 'file lists'])];
      const rows = runs[0]!.days.map((_, i) => [String(i + 1), ...runs.flatMap((r) => [mib(r.days[i]!.bytes), fmtInt(r.days[i]!.rows.batches), fmtInt(r.days[i]!.rows.fileLists)])]);
      console.log(table(head, rows));
      console.log('');
      for (const r of runs) {
        const first = r.days[0]!;
        const last = r.days[r.days.length - 1]!;
        const perK = (b: number): string => `${(b / 2 ** 20 / (consumers / 1000)).toFixed(1)} MiB`;
        console.log(`   ${r.label}: live file lists ${mib(last.fileListBytes)} MiB (${fmtInt(last.fileListBytes / Math.max(1, last.rows.fileLists))} B per batch); ` +
          `everything else ${mib(last.bytes - last.fileListBytes)} MiB on disk (${fmtInt((last.bytes - last.fileListBytes) / Math.max(1, last.rows.batches))} B per batch kept)`);
        const on = r.policy !== null;
        ctx.result({
          measure: `ips state (PostgreSQL, after VACUUM) of ${fmtInt(consumers)} consumers × ${opts.batchesPerDay} batches a day of ${opts.filesPerBatch} files, ${r.label}: day ${last.day} ÷ day 1`,
          ips: `${mib(first.bytes)} MiB after day 1, ${mib(last.bytes)} MiB after day ${last.day} (per 1,000 consumers: ${perK(last.bytes)})`,
          ratio: fmtRatio(last.bytes / first.bytes),
          target: on ? `≤ 2× day 1 after a week (issue 19)${last.day < 7 ? `; not judged after ${last.day} days` : ''}` : null,
          met: on && last.day >= 7 ? meets(last.bytes / first.bytes, '<=', 2) : null,
        });
        console.log(`   ${r.label}: day ${last.day} / day 1 = ${(last.bytes / first.bytes).toFixed(2)}×; per 1,000 consumers: ${perK(first.bytes)} after a day, ${perK(last.bytes)} after ${last.day} days` +
          `; biggest: ${[...last.byTable].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([t, b]) => `${t} ${mib(b)} MiB`).join(', ')}`);
      }
      const on = runs[0]!.days;
      const ratio = on[on.length - 1]!.bytes / on[0]!.bytes;
      console.log(`\n   retention on: after ${on.length} simulated days the state is ${ratio.toFixed(2)}× its size after one (${ratio <= 2 ? 'within' : 'NOT within'} 2×)`);
    } finally {
      await pgs.close();
    }
  },
};
