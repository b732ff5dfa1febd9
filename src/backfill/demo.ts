import fs from 'node:fs';
import path from 'node:path';
import { HadoopCatalog } from '../catalog/table-catalog.js';
import { SqlEngine } from '../engine/duckdb.js';
import { joinLocation } from '../io/file-io.js';
import { RoutingFileIO } from '../io/routing-file-io.js';
import type { S3Settings } from '../io/s3-file-io.js';
import { formatDate } from '../iceberg/values.js';
import { Lake } from '../playback/lake.js';
import { IpsService } from '../service/ips-service.js';
import { State, type Batch, type DatabaseConfig } from '../state/index.js';
import type { BackfillView } from './service.js';

/**
 * `ips demo backfill`: a two-stage pipeline, then a change of business logic re-applied to a
 * stretch of history by a managed backfill, followed downstream.
 *
 *   events ──daily──▶ daily_totals ──summary──▶ (its own output)
 *
 * 1. `events` gets a daily append (and a few late rows for the day before); the `daily`
 *    consumer keeps `daily_totals` (per day: events, amount) up to date batch by batch, and
 *    `summary` follows `daily_totals` incrementally.
 * 2. The logic changes: amounts are now counted in cents. A backfill of `daily` over a range of
 *    days (`--where`, one chunk per day, two chunks in flight) recomputes those days from the
 *    chunk's ICDC table, rows filtered by the chunk's range, and overwrites their partitions;
 *    each chunk's commit names its output snapshot.
 * 3. `summary`'s next ordinary incremental batch picks the rewritten days up; the backfill is
 *    complete once it has.
 * 4. Checks: every row of `daily_totals` equals a recomputation from all events (cents inside
 *    the range, units outside), and the live watermark of `daily` did not move for the backfill.
 */
export interface BackfillDemoOptions {
  dir: string;
  days: number;
  rowsPerDay: number;
  /** First and last day (0-based, inclusive) the backfill re-processes. */
  from: number;
  to: number;
  startDate: string;
  database?: DatabaseConfig;
  /** Where the tables and ICDC tables go (default <dir>/warehouse), e.g. s3://lake/demo with `s3`. */
  warehouse?: string;
  s3?: S3Settings;
  log?: (line: string) => void;
}

export interface BackfillDemoResult {
  view: BackfillView;
  /** Rows of daily_totals that differ from a recomputation from all events (0 when right). */
  rowsDiffering: number;
  rows: number;
  liveWatermarkMoved: boolean;
  liveBatches: number;
  summaryBatches: number;
}

const EVENTS = 'demo.events';
const DAILY = 'demo.daily_totals';

const EVENTS_SPEC = {
  schema: { fields: [
    { id: 1, name: 'event_id', type: 'long', required: false },
    { id: 2, name: 'event_date', type: 'date', required: false },
    { id: 3, name: 'amount', type: 'int', required: false },
  ] },
  partitionFields: [{ name: 'event_date', transform: 'identity', sourceId: 2, fieldId: 1000 }],
};
const DAILY_SPEC = {
  schema: { fields: [
    { id: 1, name: 'event_date', type: 'date', required: false },
    { id: 2, name: 'events', type: 'long', required: false },
    { id: 3, name: 'amount', type: 'long', required: false },
  ] },
  partitionFields: [{ name: 'event_date', transform: 'identity', sourceId: 1, fieldId: 1000 }],
};

export async function runBackfillDemo(o: BackfillDemoOptions): Promise<BackfillDemoResult> {
  const log = o.log ?? (() => {});
  const io = new RoutingFileIO({ s3: o.s3 ?? {} });
  let warehouse = o.warehouse;
  if (warehouse === undefined) {
    const local = path.join(o.dir, 'warehouse');
    fs.mkdirSync(local, { recursive: true });
    warehouse = `file://${local}`;
  }
  const cat = new HadoopCatalog(io, joinLocation(warehouse, 'tables'));
  const s3 = o.s3 && {
    endpoint: o.s3.endpoint ?? null, region: o.s3.region ?? null, pathStyle: o.s3.pathStyle ?? (o.s3.endpoint ? true : null),
    accessKeyId: o.s3.accessKeyId ?? null, secretAccessKey: o.s3.secretAccessKey ?? null,
  };
  const engine = await SqlEngine.open({ io, scratchDir: path.join(o.dir, 'engine') });
  const lake = new Lake(cat, io, engine);
  const state = await State.open(o.database ?? { driver: 'pglite', dataDir: path.join(o.dir, 'db') });
  const service = new IpsService(state, { warehouse: joinLocation(warehouse, 'icdc') });
  try {
    await lake.create(EVENTS, EVENTS_SPEC);
    await lake.create(DAILY, DAILY_SPEC);
    await service.registerTable({ name: 'events', ref: cat.registration(EVENTS), ...(s3 ? { s3 } : {}) }, { verify: false });
    await service.registerTable({ name: 'daily_totals', ref: cat.registration(DAILY), ...(s3 ? { s3 } : {}) }, { verify: false });
    await service.createConsumer({ name: 'daily', tables: [{ table: 'events', rangeFields: ['event_date'] }], outputs: ['daily_totals'] }, 'demo');
    await service.createConsumer({ name: 'summary', tables: [{ table: 'daily_totals' }] }, 'demo');
    const start = Date.parse(`${o.startDate}T00:00:00Z`) / 86_400_000;
    const day = (i: number): string => formatDate(start + i);

    /** Recomputes the given days of daily_totals from the rows of `relation`, replacing their partitions. */
    const rewriteDays = async (relation: string, days: string[], factor: number): Promise<bigint> => {
      const md = await lake.load(DAILY);
      const remove = (await lake.plan(md)).filter((f) => days.includes(formatDate(Number(f.partition.get(1000)))));
      const list = days.map((d) => `DATE '${d}'`).join(', ');
      const r = await lake.write(DAILY, `SELECT event_date, count(*)::BIGINT AS events, (sum(amount) * ${factor})::BIGINT AS amount FROM ${relation}
        WHERE event_date IN (${list}) GROUP BY event_date`, remove);
      return r.metadata.currentSnapshotId!;
    };
    const icdcView = async (b: Batch, view: string): Promise<void> => {
      const t = b.tables[0]!;
      const md = await lake.readMetadata(t.icdc!.metadataLocation);
      await lake.view(view, md, await lake.plan(md));
    };
    const eventsView = async (days: string[]): Promise<void> => {
      const md = await lake.load(EVENTS);
      await lake.view('all_events', md, (await lake.plan(md)).filter((f) => days.includes(formatDate(Number(f.partition.get(1000))))));
    };
    const consume = async (consumer: string, instance: string, work: (b: Batch) => Promise<void>): Promise<boolean> => {
      const r = await service.prepare({ consumer, instanceId: instance });
      if (r.kind !== 'batch') return false;
      await work(r.batch);
      await service.commit(r.batch.id, 'demo');
      return true;
    };

    // 1. The daily pipeline, incremental.
    let liveBatches = 0;
    let summaryBatches = 0;
    for (let i = 0; i < o.days; i++) {
      const late = i > 0 ? Math.max(1, Math.floor(o.rowsPerDay / 50)) : 0;
      await lake.write(EVENTS, `SELECT (${i} * 10000000 + x)::BIGINT AS event_id,
          CASE WHEN x < ${late} THEN DATE '${day(i - 1)}' ELSE DATE '${day(i)}' END AS event_date,
          ((x * 7919 + ${i} * 104729) % 100)::INTEGER AS amount
        FROM range(0, ${o.rowsPerDay + late}) t(x)`, []);
      if (await consume('daily', `daily-${i}`, async (b) => {
        // The days the batch touched, recomputed from all their events (copy-on-write).
        const touched = (b.tables[0]!.ranges as { changed_partitions: { partition: { event_date: string } }[] }).changed_partitions.map((p) => p.partition.event_date);
        await eventsView(touched);
        await rewriteDays('all_events', touched, 1);
      })) liveBatches++;
      if (await consume('summary', `summary-${i}`, async () => {})) summaryBatches++;
    }
    log(`${o.days} days of events; daily_totals kept by ${liveBatches} incremental batches of "daily", followed by "summary"`);

    // 2. The logic changes: a backfill re-applies it to days from..to.
    const before = await state.repos.watermarks.require('daily', 'events');
    const where = `event_date >= ${day(o.from)} and event_date < ${day(o.to + 1)}`;
    const dry = await service.backfills.dryRun({ name: 'cents', consumer: 'daily', where, chunk: 'day' });
    log(`backfill "cents" --where '${where}' --chunk day: ${(dry.chunks as unknown[]).length} chunks, ${(dry.totals as { files: number }).files} files; propagates to ${(dry.propagates_to as { consumer: string }[]).map((s) => s.consumer).join(', ')}`);
    await service.backfills.create({ name: 'cents', consumer: 'daily', where, chunk: 'day', concurrency: 2 }, 'demo');
    let n = 0;
    for (;;) {
      // Two runs at once (the concurrency), then both commit.
      const runs: Batch[] = [];
      for (let k = 0; k < 2; k++) {
        const r = await service.backfills.prepare('cents', `cents-run-${n++}`);
        if (r.kind === 'batch') runs.push(r.batch);
      }
      if (runs.length === 0) break;
      for (const b of runs) {
        const range = (b.tables[0]!.ranges as { backfill: { range: { predicate: string; min: string } } }).backfill.range;
        await icdcView(b, 'chunk');
        await engine.run(`CREATE OR REPLACE TEMP VIEW chunk_rows AS SELECT * FROM chunk WHERE ${range.predicate}`);
        const out = await rewriteDays('chunk_rows', [range.min], 100);
        await service.commit(b.id, 'demo', { daily_totals: out });
      }
    }
    const after = await state.repos.watermarks.require('daily', 'events');

    // 3. summary's ordinary incremental batch picks the rewritten days up.
    if (await consume('summary', 'summary-after-backfill', async () => {})) summaryBatches++;
    const view = await service.backfills.get('cents');
    log(`backfill ${view.status}: ${view.totals.byState.committed ?? 0}/${view.totals.chunks} chunks committed, summary ${view.stages[1]?.chunks.filter((c) => c.state === 'propagated').length ?? 0} propagated`);

    // 4. daily_totals against a recomputation from every event.
    await eventsView(Array.from({ length: o.days }, (_, i) => day(i)));
    const md = await lake.load(DAILY);
    await lake.view('daily_now', md, await lake.plan(md));
    const inRange = `event_date BETWEEN DATE '${day(o.from)}' AND DATE '${day(o.to)}'`;
    const [cmp] = await engine.all<{ differing: number; total: number }>(`
      WITH expected AS (
        SELECT event_date, count(*)::BIGINT AS events, (sum(amount) * CASE WHEN ${inRange} THEN 100 ELSE 1 END)::BIGINT AS amount
          FROM all_events GROUP BY event_date)
      SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT SELECT * FROM daily_now UNION ALL SELECT * FROM daily_now EXCEPT SELECT * FROM expected))::INTEGER AS differing,
             (SELECT count(*) FROM daily_now)::INTEGER AS total`);
    return {
      view, rowsDiffering: cmp!.differing, rows: cmp!.total,
      liveWatermarkMoved: after.version !== before.version || after.snapshotId !== before.snapshotId,
      liveBatches, summaryBatches,
    };
  } finally {
    service.close();
    await state.close();
    engine.close();
  }
}
