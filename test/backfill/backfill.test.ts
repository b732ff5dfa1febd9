// Managed backfills (issue 12) over real Iceberg tables written by ips's own table writer with
// Parquet files written by DuckDB, on the real PostgreSQL and on embedded PGlite. Expected chunk
// contents come from what the test wrote (the date of every file it wrote, its row count from
// DuckDB), never from the planner under test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HadoopCatalog } from '../../src/catalog/table-catalog.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { readSnapshotChanges } from '../../src/capture/snapshot-changes.js';
import { readMetadataFile } from '../../src/catalog/table.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import { snapshotById, type TableMetadata } from '../../src/iceberg/metadata.js';
import { IpsService } from '../../src/service/ips-service.js';
import { State, type Batch } from '../../src/state/index.js';
import { commitTableUpdate, createTable, type NewTableSpec } from '../../src/table/table-writer.js';
import { uploadDataFile } from '../../src/table/data-files.js';
import { Duck } from '../unit/duckdb-parquet.js';
import { DRIVERS, createPgDatabase, errorCode, pgliteTemplate } from '../state/helpers.js';
import { runPythonCode } from '../setup/env.js';
import type { BackfillPrepareResult } from '../../src/backfill/service.js';

const io = new LocalFileIO();
const IDS = { event_id: 1, event_date: 2, amount: 3 };
const SCHEMA: NewTableSpec['schema'] = {
  fields: [
    { id: 1, name: 'event_id', type: 'long', required: false },
    { id: 2, name: 'event_date', type: 'date', required: false },
    { id: 3, name: 'amount', type: 'int', required: false },
  ],
};
const BY_DATE: NewTableSpec['partitionFields'] = [{ name: 'event_date', transform: 'identity', sourceId: 2, fieldId: 1000 }];

let duck: Duck;
let scratch: string;
let fileNo = 0;

/** A Parquet file of n rows spread evenly over the given dates, uploaded into the table. */
async function file(md: TableMetadata, dates: string[], n: number, opts: { partitionDir?: string; noBounds?: boolean } = {}): Promise<{ df: DataFile; dates: string[]; rows: number }> {
  const f = path.join(scratch, `f${fileNo++}.parquet`);
  const list = dates.map((d) => `DATE '${d}'`).join(', ');
  await duck.writeParquet(f, `SELECT (${fileNo} * 100000 + i)::BIGINT AS event_id, ([${list}])[1 + (i % ${dates.length})] AS event_date, (i % 97)::INTEGER AS amount FROM range(0, ${n}) t(i)`, IDS);
  const rel = `${opts.partitionDir ?? 'data'}/f${fileNo}.parquet`;
  let df = await uploadDataFile(io, md, fs.readFileSync(f), rel);
  if (opts.noBounds) df = { ...df, lowerBounds: null, upperBounds: null, valueCounts: null, nullValueCounts: null };
  return { df, dates, rows: n };
}

function batchOf(r: BackfillPrepareResult): Batch {
  if (r.kind !== 'batch') throw new Error(`expected a batch, got ${r.kind} (${r.reason})`);
  return r.batch;
}

const paths = (xs: { df: DataFile }[]): string[] => xs.map((x) => x.df.filePath).sort();

/** Rewrites the table's metadata as snapshot expiry leaves it: only the current snapshot remains. */
function expireAllButCurrent(tableDir: string): void {
  const metaDir = path.join(tableDir, 'metadata');
  const version = Number(fs.readFileSync(path.join(metaDir, 'version-hint.text'), 'utf8'));
  const md = parseLossless(fs.readFileSync(path.join(metaDir, `v${version}.metadata.json`), 'utf8')) as Record<string, unknown> & {
    snapshots: Record<string, unknown>[]; 'current-snapshot-id': unknown; 'snapshot-log': Record<string, unknown>[];
  };
  const cur = String(md['current-snapshot-id']);
  md.snapshots = md.snapshots.filter((s) => String(s['snapshot-id']) === cur);
  md['snapshot-log'] = md['snapshot-log'].filter((s) => String(s['snapshot-id']) === cur);
  fs.writeFileSync(path.join(metaDir, `v${version + 1}.metadata.json`), stringifyLossless(md)!);
  fs.writeFileSync(path.join(metaDir, 'version-hint.text'), String(version + 1));
}

beforeAll(async () => {
  duck = await Duck.open();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-scratch-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe.each(DRIVERS)('backfills (%s state)', (driver) => {
  let tmp: string;
  let state: State;
  let service: IpsService;
  let drop: (() => Promise<void>) | undefined;
  let pgUrl: string | undefined;
  let cat: HadoopCatalog;
  /** Files of `events`, with the dates they hold. */
  const written: { df: DataFile; dates: string[]; rows: number }[] = [];
  let eventsSnapshots: bigint[] = [];
  /** The ICDC metadata location of the pull test's first chunk (10-01). */
  let chunk0Icdc = '';

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-'));
    if (driver === 'postgres') {
      const created = await createPgDatabase('backfills');
      drop = created.drop;
      pgUrl = created.url;
      state = await State.open({ driver: 'postgres', url: created.url, poolMax: 4 });
    } else {
      state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
    }
    service = new IpsService(state, { warehouse: path.join(tmp, 'icdc') });
    cat = new HadoopCatalog(io, `file://${tmp}/wh`);

    // events: partitioned by event_date; three appends, the second with a late file for 10-01.
    const md0 = (await createTable(cat, io, { identifier: 'db.events', schema: SCHEMA, partitionFields: BY_DATE })).metadata;
    const s1files = [await file(md0, ['2026-10-01'], 40, { partitionDir: 'data/event_date=2026-10-01' }), await file(md0, ['2026-10-01'], 30, { partitionDir: 'data/event_date=2026-10-01' }),
      await file(md0, ['2026-10-02'], 25, { partitionDir: 'data/event_date=2026-10-02' })];
    const s1 = await commitTableUpdate(cat, io, 'db.events', { operation: 'append', add: s1files.map((f) => f.df), removePaths: [] });
    const s2files = [await file(s1.metadata, ['2026-10-03'], 20, { partitionDir: 'data/event_date=2026-10-03' }), await file(s1.metadata, ['2026-10-01'], 7, { partitionDir: 'data/event_date=2026-10-01' })];
    const s2 = await commitTableUpdate(cat, io, 'db.events', { operation: 'append', add: s2files.map((f) => f.df), removePaths: [] });
    const s3files = [await file(s2.metadata, ['2026-10-05'], 11, { partitionDir: 'data/event_date=2026-10-05' })];
    const s3 = await commitTableUpdate(cat, io, 'db.events', { operation: 'append', add: s3files.map((f) => f.df), removePaths: [] });
    written.push(...s1files, ...s2files, ...s3files);
    eventsSnapshots = [s1.snapshotId, s2.snapshotId, s3.snapshotId];

    // The consumer's output table and its downstream consumer's input.
    await createTable(cat, io, { identifier: 'db.daily', schema: SCHEMA, partitionFields: [] });
    await service.registerTable({ name: 'events', ref: cat.registration('db.events') });
    await service.registerTable({ name: 'daily', ref: cat.registration('db.daily') }, { verify: false });
    await service.createConsumer({ name: 'daily_job', tables: [{ table: 'events', from: 'start', rangeFields: ['event_date'] }], outputs: ['daily'] }, 'test');
    await service.createConsumer({ name: 'agg_job', tables: [{ table: 'daily', from: 'start' }] }, 'test');
  });

  afterAll(async () => {
    service?.close();
    await state?.close();
    await drop?.();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('lineage: table → consumer → table → consumer, in dependency order; a cycle is refused and changes nothing', async () => {
    const g = await service.backfills.lineage();
    expect(g.consumers).toEqual([
      { name: 'agg_job', inputs: ['daily'], outputs: [] },
      { name: 'daily_job', inputs: ['events'], outputs: ['daily'] },
    ]);
    expect(g.order).toEqual(['daily_job', 'agg_job']);
    // agg_job writing events would close the loop events → daily_job → daily → agg_job → events.
    const err = (await service.backfills.setOutputs('agg_job', ['events']).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('PIPELINE_CYCLE');
    expect(err.message).toContain('agg_job');
    expect(await state.repos.backfills.outputsOf('agg_job')).toEqual([]);
    // Subscribing daily_job to its own output is a cycle too.
    expect(await errorCode(service.subscribe('daily_job', { table: 'daily' }, 'test'))).toBe('PIPELINE_CYCLE');
    expect((await state.repos.watermarks.listByConsumer('daily_job')).map((w) => w.sourceTable)).toEqual(['events']);
    expect(await errorCode(service.backfills.setOutputs('agg_job', ['nope']))).toBe('NOT_FOUND');
  });

  test('dry run: chunks by day with their files, records and bytes; files of the range only; nothing created', async () => {
    const d = await service.backfills.dryRun({ name: 'dry', consumer: 'daily_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04', chunk: 'day' });
    const expected = ['2026-10-01', '2026-10-02', '2026-10-03'].map((day) => written.filter((w) => w.dates.includes(day)));
    const chunks = d.chunks as { range: { min: string; max: string; lower: string; upper: string; predicate: string }; files: number; records: string; file_paths: string[] }[];
    expect(chunks.map((c) => c.range.min)).toEqual(['2026-10-01', '2026-10-02', '2026-10-03']);
    expect(chunks.map((c) => c.range.max)).toEqual(['2026-10-01', '2026-10-02', '2026-10-03']);
    expect(chunks[0]!.range.predicate).toBe("event_date >= '2026-10-01' and event_date < '2026-10-02'");
    expect(chunks.map((c) => [...c.file_paths].sort())).toEqual(expected.map(paths));
    expect(chunks.map((c) => c.records)).toEqual(expected.map((fs) => String(fs.reduce((n, f) => n + f.rows, 0))));
    expect((d.totals as { files: number }).files).toBe(5);
    expect(d.live_data_files).toBe(6);
    expect(d.propagates_to).toEqual([{ consumer: 'agg_job', table: 'daily', depth: 1 }]);
    expect(await state.repos.backfills.list()).toEqual([]);
  });

  test('typed errors: unknown field, empty range, nothing in range, a field nothing can prune, bad chunking', async () => {
    const req = { name: 'bad', consumer: 'daily_job' };
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'evt_date >= 2026-10-01' }))).toBe('UNKNOWN_FIELD');
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'event_date >= 2026-10-05 and event_date < 2026-10-05' }))).toBe('EMPTY_RANGE');
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'event_date >= 2027-01-01' }))).toBe('EMPTY_RANGE');
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'event_date >= 2026-10-01', chunk: 'hour' }))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'event_date >= 2026-13-01' }))).toBe('INVALID_WHERE');
    expect(await errorCode(service.backfills.dryRun({ ...req, where: 'event_date >= 2026-10-01 or amount < 3' }))).toBe('INVALID_WHERE');
    expect(await errorCode(service.backfills.dryRun({ ...req }))).toBe('INVALID_ARGUMENT');

    // An unpartitioned table whose files carry no metrics for the field.
    const md = (await createTable(cat, io, { identifier: 'db.flat', schema: SCHEMA, partitionFields: [] })).metadata;
    const files = [await file(md, ['2026-10-01'], 5, { noBounds: true }), await file(md, ['2026-10-02'], 5, { noBounds: true })];
    await commitTableUpdate(cat, io, 'db.flat', { operation: 'append', add: files.map((f) => f.df), removePaths: [] });
    await service.registerTable({ name: 'flat', ref: cat.registration('db.flat') });
    await service.createConsumer({ name: 'flat_job', tables: [{ table: 'flat' }] }, 'test');
    const e = (await service.backfills.dryRun({ name: 'bad', consumer: 'flat_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-03' }).catch((x: unknown) => x)) as Error & { code: string };
    expect(e.code).toBe('RANGE_NOT_PRUNABLE');
    expect(e.message).toContain('all 2 live data files');
  });

  test('a file whose values span several days goes into every chunk it can hold rows of', async () => {
    const md = (await createTable(cat, io, { identifier: 'db.spans', schema: SCHEMA, partitionFields: [] })).metadata;
    const wide = await file(md, ['2026-10-01', '2026-10-02', '2026-10-03'], 30);
    const mid = await file(md, ['2026-10-02'], 10);
    await commitTableUpdate(cat, io, 'db.spans', { operation: 'append', add: [wide.df, mid.df], removePaths: [] });
    await service.registerTable({ name: 'spans', ref: cat.registration('db.spans') });
    await service.createConsumer({ name: 'span_job', tables: [{ table: 'spans' }] }, 'test');
    const d = await service.backfills.dryRun({ name: 's', consumer: 'span_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04' });
    expect((d.chunks as { file_paths: string[] }[]).map((c) => [...c.file_paths].sort())).toEqual([paths([wide]), paths([wide, mid]), paths([wide])]);
  });

  test('pull: chunks as batches of the backfill\'s own series with their own ICDC table; the live watermark never moves; live batches run beside it; propagation downstream', async () => {
    const bf = await service.backfills.create({ name: 'oct', consumer: 'daily_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04', chunk: 'day' }, 'test');
    expect(bf.state).toBe('running');
    const before = await state.repos.watermarks.require('daily_job', 'events');

    // Overlapping backfill of the same consumer and table is refused; a disjoint one is fine (dry run).
    expect(await errorCode(service.backfills.create({ name: 'oct2', consumer: 'daily_job', where: 'event_date >= 2026-10-03 and event_date < 2026-10-10' }, 'test'))).toBe('BACKFILL_OVERLAP');

    const r0 = await service.backfills.prepare('oct', 'run-0');
    const b0 = batchOf(r0);
    expect(r0.kind === 'batch' && r0.chunk.idx).toBe(0);
    expect(b0.backfill).toBe('oct');
    const t0 = b0.tables[0]!;
    const day1 = written.filter((w) => w.dates.includes('2026-10-01'));
    expect(t0.files.added.map((f) => f.file_path).sort()).toEqual(paths(day1));
    expect(t0.icdc!.table).toBe('icdc.daily_job__events__backfill__oct');
    expect((t0.ranges as { ranges: Record<string, unknown> }).ranges['event_date']).toEqual({ min: '2026-10-01', max: '2026-10-01', flag: 'exact' });
    // The ICDC snapshot holds exactly the chunk's files (read back with the generic manifest reader).
    const icdcMd = await readMetadataFile(io, t0.icdc!.metadataLocation);
    const icdcAdded = (await readSnapshotChanges(new ManifestReader(io), snapshotById(icdcMd, t0.icdc!.snapshotId)!)).added.map((c) => c.entry.dataFile.filePath).sort();
    expect(icdcAdded).toEqual(paths(day1));
    chunk0Icdc = t0.icdc!.metadataLocation;

    // Same instance: same batch. Concurrency 1: nothing more while chunk 0 runs.
    expect(batchOf(await service.backfills.prepare('oct', 'run-0')).id).toBe(b0.id);
    const busy = await service.backfills.prepare('oct', 'run-x');
    expect(busy.kind === 'none' && busy.reason).toBe('busy');

    // The live flow runs beside it: a live batch is prepared and committed while the chunk is open.
    const live = await service.prepare({ consumer: 'daily_job', table: 'events', instanceId: 'live-1' });
    if (live.kind !== 'batch') throw new Error('expected a live batch');
    expect(live.batch.backfill).toBeNull();
    await service.commit(live.batch.id, 'test');
    const afterLive = await state.repos.watermarks.require('daily_job', 'events');
    expect(afterLive.snapshotId).toBe(eventsSnapshots[2]);
    expect(afterLive.version).toBe(before.version + 1n);

    // The run writes its output and commits naming it.
    const dailyMd = await readMetadataFile(io, (await cat.currentMetadataLocation('db.daily'))!);
    const out0 = await commitTableUpdate(cat, io, 'db.daily', { operation: 'append', add: [(await file(dailyMd, ['2026-10-01'], 3)).df], removePaths: [] });
    await service.commit(b0.id, 'test', { daily: out0.snapshotId });
    const wmAfter = await state.repos.watermarks.require('daily_job', 'events');
    expect(wmAfter.version).toBe(afterLive.version); // the chunk commit did not move the live watermark
    expect((await state.repos.backfills.chunk('oct', 0))!.outputs).toEqual({ daily: out0.snapshotId });

    // agg_job has not processed the output yet: waiting.
    let v = await service.backfills.get('oct');
    expect(v.stages.map((s) => [s.consumer, s.depth])).toEqual([['daily_job', 0], ['agg_job', 1]]);
    expect(v.stages[1]!.chunks[0]!.state).toBe('waiting');

    // Chunks 1 and 2; the commit without outputs finds the declared output's head.
    for (const idx of [1, 2]) {
      const b = batchOf(await service.backfills.prepare('oct', `run-${idx}`));
      expect(b.backfillChunk).toBe(idx);
      const md = await readMetadataFile(io, (await cat.currentMetadataLocation('db.daily'))!);
      const out = await commitTableUpdate(cat, io, 'db.daily', { operation: 'append', add: [(await file(md, ['2026-10-0' + String(idx + 1)], 3)).df], removePaths: [] });
      await service.commit(b.id, 'test');
      expect((await state.repos.backfills.chunk('oct', idx))!.outputs).toEqual({ daily: out.snapshotId });
    }
    const none = await service.backfills.prepare('oct', 'run-9');
    expect(none.kind === 'none' && none.reason).toBe('not-running');
    v = await service.backfills.get('oct');
    expect(v.backfill.state).toBe('committed');
    expect(v.complete).toBe(false); // agg_job has not passed the outputs yet
    expect(v.outputsInLineage).toEqual([true, true, true]);

    // agg_job's normal incremental batch picks the change up: the stage is propagated, the backfill complete.
    const agg = await service.prepare({ consumer: 'agg_job', table: 'daily', instanceId: 'agg-1' });
    if (agg.kind !== 'batch') throw new Error('expected an agg batch');
    await service.commit(agg.batch.id, 'test');
    v = await service.backfills.get('oct');
    expect(v.stages[1]!.chunks.map((c) => c.state)).toEqual(['propagated', 'propagated', 'propagated']);
    expect(v.stages[1]!.chunks.every((c) => c.passedAt !== null)).toBe(true);
    expect(v.complete).toBe(true);
    expect(v.status).toBe('complete');
    expect(v.totals.committedRecords).toBe(BigInt(written.filter((w) => w.dates.some((d) => d <= '2026-10-03')).reduce((n, w) => n + w.rows, 0)));
    // Not running any more: retention no longer counts it.
    expect((await service.getTable('events')).oldestNeeded?.backfill ?? null).toBeNull();
  });

  test('propagation is followed through every stage: what the batch that passed a chunk wrote carries it one stage further', async () => {
    await createTable(cat, io, { identifier: 'db.agg_out', schema: SCHEMA, partitionFields: [] });
    await service.registerTable({ name: 'agg_out', ref: cat.registration('db.agg_out') }, { verify: false });
    await service.backfills.setOutputs('agg_job', ['agg_out']);
    await service.createConsumer({ name: 'top_job', tables: [{ table: 'agg_out', from: 'start' }] }, 'test');
    const appendTo = async (id: string, day: string): Promise<bigint> => {
      const md = await readMetadataFile(io, (await cat.currentMetadataLocation(id))!);
      return (await commitTableUpdate(cat, io, id, { operation: 'append', add: [(await file(md, [day], 2)).df], removePaths: [] })).snapshotId;
    };
    const stateOf = async (): Promise<Record<string, string>> =>
      Object.fromEntries((await service.backfills.get('deep')).stages.map((st) => [`${st.depth}:${st.consumer}`, st.chunks[0]!.state]));

    await service.backfills.create({ name: 'deep', consumer: 'daily_job', where: 'event_date = 2026-10-05' }, 'test');
    const b = batchOf(await service.backfills.prepare('deep', 'deep-0'));
    const dailyOut = await appendTo('db.daily', '2026-10-05');
    await service.commit(b.id, 'test'); // the output is found on the declared output table
    expect((await state.repos.backfills.chunk('deep', 0))!.outputs).toEqual({ daily: dailyOut });
    expect(await stateOf()).toEqual({ '0:daily_job': 'committed', '1:agg_job': 'waiting', '2:top_job': 'waiting' });

    // agg_job's ordinary batch takes the change and its run writes agg_out.
    const agg = await service.prepare({ consumer: 'agg_job', instanceId: 'agg-deep' });
    if (agg.kind !== 'batch') throw new Error('expected an agg batch');
    const aggOut = await appendTo('db.agg_out', '2026-10-05');
    await service.commit(agg.batch.id, 'test');
    expect(await state.repos.backfills.batchOutputs(agg.batch.id)).toEqual({ agg_out: aggOut });
    expect(await stateOf()).toEqual({ '0:daily_job': 'committed', '1:agg_job': 'propagated', '2:top_job': 'waiting' });
    expect((await service.backfills.get('deep')).stages[2]!.chunks[0]!.snapshotId).toBe(aggOut);
    expect((await service.backfills.get('deep')).complete).toBe(false);

    const top = await service.prepare({ consumer: 'top_job', instanceId: 'top-1' });
    if (top.kind !== 'batch') throw new Error('expected a top batch');
    await service.commit(top.batch.id, 'test');
    expect(await stateOf()).toEqual({ '0:daily_job': 'committed', '1:agg_job': 'propagated', '2:top_job': 'propagated' });
    expect((await service.backfills.get('deep')).complete).toBe(true);
  });

  test('PyIceberg reads a chunk\'s backfill ICDC table: the rows of the chunk\'s files', async () => {
    const out = await runPythonCode(String.raw`
import json, sys
from pyiceberg.table import StaticTable
t = StaticTable.from_metadata(sys.argv[1]).scan().to_arrow()
print(json.dumps({"rows": t.num_rows, "dates": sorted({str(d) for d in t.column("event_date").to_pylist()})}))
`, [chunk0Icdc]);
    const day1 = written.filter((w) => w.dates.includes('2026-10-01'));
    expect(JSON.parse(out)).toEqual({ rows: day1.reduce((n, w) => n + w.rows, 0), dates: ['2026-10-01'] });
  });

  test('a chunk failing twice then succeeding; a chunk that keeps failing stops the backfill with its cause; retry; pause, resume, cancel', async () => {
    await service.backfills.create({ name: 'retries', consumer: 'daily_job', where: 'event_date >= 2026-10-05 and event_date < 2026-10-06', maxAttempts: 3 }, 'test');
    for (const i of [1, 2]) {
      const b = batchOf(await service.backfills.prepare('retries', `try-${i}`));
      await service.abort(b.id, `boom ${i}`);
      const c = (await state.repos.backfills.chunk('retries', 0))!;
      expect([c.state, c.attempts]).toEqual(['pending', i]);
      expect(c.lastError).toContain(`boom ${i}`);
    }
    const third = batchOf(await service.backfills.prepare('retries', 'try-3'));
    await service.commit(third.id, 'test');
    expect((await state.repos.backfills.require('retries')).state).toBe('committed');
    expect((await state.repos.backfills.chunk('retries', 0))!.attempts).toBe(3);

    await service.backfills.create({ name: 'doomed', consumer: 'daily_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-03', maxAttempts: 2 }, 'test');
    for (const i of [1, 2]) await service.abort(batchOf(await service.backfills.prepare('doomed', `d-${i}`)).id, `bad input ${i}`);
    let bf = await state.repos.backfills.require('doomed');
    expect(bf.state).toBe('failed');
    expect(bf.stateReason).toContain('chunk 0 failed 2 time(s)');
    expect(bf.stateReason).toContain('bad input 2');
    expect((await state.repos.backfills.chunk('doomed', 0))!.state).toBe('failed');
    expect((await service.backfills.prepare('doomed', 'd-3')).kind).toBe('none');
    // retry --chunk 0: fresh attempts, running again.
    bf = await service.backfills.retry('doomed', 0);
    expect(bf.state).toBe('running');
    expect(batchOf(await service.backfills.prepare('doomed', 'd-4')).backfillChunk).toBe(0);

    // pause: nothing handed out; resume: chunk 1 comes; cancel: its batch is aborted, the rest cancelled.
    await service.backfills.pause('doomed');
    expect(await errorCode(service.backfills.pause('doomed'))).toBe('BACKFILL_STATE');
    const paused = await service.backfills.prepare('doomed', 'd-5');
    expect(paused.kind === 'none' && paused.reason).toBe('not-running');
    await service.backfills.resume('doomed');
    await service.commit((await state.repos.backfills.chunk('doomed', 0))!.batchId!, 'test');
    const b1 = batchOf(await service.backfills.prepare('doomed', 'd-6'));
    expect(b1.backfillChunk).toBe(1);
    await service.backfills.cancel('doomed', 'test');
    expect((await state.repos.batches.require(b1.id)).state).toBe('aborted');
    expect((await state.repos.backfills.chunks('doomed')).map((c) => c.state)).toEqual(['committed', 'cancelled']);
    expect((await state.repos.backfills.require('doomed')).state).toBe('cancelled');
    expect((await service.backfills.prepare('doomed', 'd-7')).kind).toBe('none');
  });

  test('--where works on a table whose old snapshots expired; --snapshots across that history is a typed error naming --where', async () => {
    const md0 = (await createTable(cat, io, { identifier: 'db.old', schema: SCHEMA, partitionFields: BY_DATE })).metadata;
    const a = await file(md0, ['2026-09-01'], 9, { partitionDir: 'data/event_date=2026-09-01' });
    const s1 = await commitTableUpdate(cat, io, 'db.old', { operation: 'append', add: [a.df], removePaths: [] });
    const b = await file(s1.metadata, ['2026-09-02'], 8, { partitionDir: 'data/event_date=2026-09-02' });
    const s2 = await commitTableUpdate(cat, io, 'db.old', { operation: 'append', add: [b.df], removePaths: [] });
    const c = await file(s2.metadata, ['2026-09-01'], 4, { partitionDir: 'data/event_date=2026-09-01' });
    await commitTableUpdate(cat, io, 'db.old', { operation: 'append', add: [c.df], removePaths: [] });
    expireAllButCurrent(path.join(tmp, 'wh', 'db', 'old'));
    await service.registerTable({ name: 'old', ref: cat.registration('db.old') });
    await service.createConsumer({ name: 'old_job', tables: [{ table: 'old', from: 'now' }] }, 'test');

    await service.backfills.create({ name: 'sept', consumer: 'old_job', where: 'event_date >= 2026-09-01 and event_date < 2026-09-03' }, 'test');
    const chunks = await state.repos.backfills.chunks('sept');
    const planned = await Promise.all(chunks.map((ch) => state.repos.backfills.chunkFiles('sept', ch.idx)));
    expect(planned.map((ch) => ch!.added.map((f) => f.file_path).sort())).toEqual([paths([a, c]), paths([b])]);
    const batch = batchOf(await service.backfills.prepare('sept', 'sept-0'));
    expect(batch.tables[0]!.files.added.map((f) => f.file_path).sort()).toEqual(paths([a, c]));

    const e = (await service.backfills.dryRun({ name: 'x', consumer: 'old_job', snapshots: `${s1.snapshotId}..` }).catch((x: unknown) => x)) as Error & { code: string };
    expect(e.code).toBe('FROM_EXPIRED');
    expect(e.message).toContain('--where');

    // A stale consumer (its position expired) is recovered by a backfill of the data, then a reset to now.
    await service.createConsumer({ name: 'stale_job', tables: [{ table: 'old', from: 'now' }] }, 'test');
    const head = (await state.repos.watermarks.require('stale_job', 'old')).snapshotId!;
    await state.repos.watermarks.advance('stale_job', 'old', 1n, { snapshotId: s1.snapshotId, sequenceNumber: 1n, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] }, { actor: 'test', reason: 'test' });
    expect(await errorCode(service.prepare({ consumer: 'stale_job', instanceId: 'live-x' }))).toBe('FROM_EXPIRED');
    expect((await state.repos.consumers.require('stale_job')).state).toBe('stale');
    expect(await errorCode(service.prepare({ consumer: 'stale_job', instanceId: 'live-y' }))).toBe('CONSUMER_STALE');
    await service.backfills.create({ name: 'recover', consumer: 'stale_job', where: 'event_date >= 2026-09-01 and event_date < 2026-09-03', chunk: 'month' }, 'test');
    const rb = batchOf(await service.backfills.prepare('recover', 'rec-0'));
    expect(rb.tables[0]!.files.added.map((f) => f.file_path).sort()).toEqual(paths([a, b, c]));
    await service.commit(rb.id, 'test');
    expect((await state.repos.backfills.require('recover')).state).toBe('committed');
    await service.resetConsumer('stale_job', { to: 'now' }, 'test');
    expect((await state.repos.consumers.require('stale_job')).state).toBe('active');
    expect((await state.repos.watermarks.require('stale_job', 'old')).snapshotId).toBe(head);
    const live = await service.prepare({ consumer: 'stale_job', instanceId: 'live-z' });
    expect(live.kind).toBe('no-changes');
  });

  test('a downstream consumer whose policy refuses the chunk\'s output (overwrite=fail) is reported as blocked, not waited for', async () => {
    const md0 = (await createTable(cat, io, { identifier: 'db.out2', schema: SCHEMA, partitionFields: [] })).metadata;
    const seed = await file(md0, ['2026-10-01'], 2);
    await commitTableUpdate(cat, io, 'db.out2', { operation: 'append', add: [seed.df], removePaths: [] });
    await service.registerTable({ name: 'out2', ref: cat.registration('db.out2') });
    await service.createConsumer({ name: 'writer_job', tables: [{ table: 'events', from: 'now' }], outputs: ['out2'] }, 'test');
    await service.createConsumer({ name: 'strict_job', tables: [{ table: 'out2', from: 'now' }], policy: { overwrite: 'fail' } }, 'test');
    await service.backfills.create({ name: 'strict', consumer: 'writer_job', where: 'event_date = 2026-10-02' }, 'test');
    const b = batchOf(await service.backfills.prepare('strict', 'st-0'));
    // The run rewrites its output (an overwrite snapshot), as a MERGE copy-on-write does.
    const md1 = await readMetadataFile(io, (await cat.currentMetadataLocation('db.out2'))!);
    const out = await commitTableUpdate(cat, io, 'db.out2', { operation: 'overwrite', add: [(await file(md1, ['2026-10-02'], 2)).df], removePaths: [seed.df.filePath] });
    await service.commit(b.id, 'test', { out2: out.snapshotId });
    const v = await service.backfills.get('strict');
    const stage = v.stages.find((s) => s.consumer === 'strict_job')!;
    expect(stage.chunks[0]!.state).toBe('blocked');
    expect(stage.blocked).toContain('overwrite=fail');
    expect(v.complete).toBe(false);
    // And indeed its next batch refuses the overwrite.
    expect(await errorCode(service.prepare({ consumer: 'strict_job', instanceId: 'strict-1' }))).toBe('OPERATION_NOT_ALLOWED');
  });

  test('concurrent prepares (two connections on PostgreSQL) hand out every chunk exactly once, never more than the concurrency', async () => {
    await service.createConsumer({ name: 'race_job', tables: [{ table: 'events', from: 'now' }] }, 'test');
    await service.backfills.create({ name: 'race', consumer: 'race_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-06', concurrency: 2 }, 'test');
    const chunks = (await state.repos.backfills.chunks('race')).length;
    expect(chunks).toBe(4); // 10-01, 10-02, 10-03, 10-05 (no file holds 10-04)
    // A second service on its own connection pool, like a second replica.
    const otherState = driver === 'postgres' ? await State.open({ driver: 'postgres', url: pgUrl!, poolMax: 4 }) : state;
    const other = otherState === state ? service : new IpsService(otherState, { warehouse: path.join(tmp, 'icdc') });
    try {
      const handed: number[] = [];
      for (let round = 0; round < chunks; round++) {
        const results = await Promise.all(Array.from({ length: 4 }, (_, i) => (i % 2 ? other : service).backfills.prepare('race', `race-${round}-${i}`)));
        const got = results.filter((r): r is Extract<BackfillPrepareResult, { kind: 'batch' }> => r.kind === 'batch');
        expect(got.length).toBeLessThanOrEqual(2);
        expect((await state.repos.backfills.chunks('race')).filter((c) => c.state === 'running').length).toBeLessThanOrEqual(2);
        for (const r of got) {
          handed.push(r.chunk.idx);
          await service.commit(r.batch.id, 'test');
        }
        if ((await state.repos.backfills.require('race')).state === 'committed') break;
      }
      expect(handed.sort()).toEqual([0, 1, 2, 3]);
    } finally {
      if (other !== service) {
        other.close();
        await otherState.close();
      }
    }
  });

  test('service validation claims: each committed chunk to one replica at a time (two connections on PostgreSQL); a result releases it; a dead claim expires', async () => {
    await service.createConsumer({ name: 'check_job', tables: [{ table: 'events', from: 'now' }] }, 'test');
    await service.backfills.create({ name: 'checked', consumer: 'check_job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04', concurrency: 3, validate: 'true', validateTimeoutSeconds: 5 }, 'test');
    expect(await state.repos.backfills.claimValidation('a', 60, 600)).toBeUndefined(); // nothing committed yet
    for (let i = 0; i < 3; i++) await service.commit(batchOf(await service.backfills.prepare('checked', `check-${i}`)).id, 'test');
    const otherState = driver === 'postgres' ? await State.open({ driver: 'postgres', url: pgUrl!, poolMax: 4 }) : state;
    try {
      const claims = await Promise.all([state.repos.backfills.claimValidation('a', 60, 600), otherState.repos.backfills.claimValidation('b', 60, 600),
        state.repos.backfills.claimValidation('c', 60, 600), otherState.repos.backfills.claimValidation('d', 60, 600)]);
      const got = claims.filter((c) => c !== undefined).map((c) => c!.chunk.idx).sort();
      expect(got).toEqual([0, 1, 2]); // each chunk once; the fourth claimer gets none
      for (const c of claims) if (c) expect(c.backfill.spec.validate).toBe('true');
      // A recorded result releases the chunk for good; an expired claim (a dead replica) is taken again.
      await state.repos.backfills.setValidation('checked', 0, { passed: true, exitCode: 0, output: '' });
      await state.db.query(`UPDATE backfill_chunks SET validation_claim_expires_at = now() - INTERVAL '1 second' WHERE backfill = 'checked' AND idx = 1`);
      const again = await otherState.repos.backfills.claimValidation('e', 60, 600);
      expect(again?.chunk.idx).toBe(1);
      // Committed but not every chunk valid: it still pins its planned-on snapshot (a retry reads the files again).
      expect((await state.repos.backfills.require('checked')).state).toBe('committed');
      expect((await state.repos.backfills.oldestPinned('events'))?.backfill).toBe('checked');
      expect(await state.repos.backfills.claimValidation('f', 60, 600)).toBeUndefined();
      // The claim lasts the backfill's timeout (5 s) plus the claim time (60 s).
      const left = await state.db.query<{ s: number }>(`SELECT EXTRACT(EPOCH FROM validation_claim_expires_at - now())::INT4 AS s FROM backfill_chunks WHERE backfill = 'checked' AND idx = 1`);
      expect(left.rows[0]!.s).toBeGreaterThan(50);
      expect(left.rows[0]!.s).toBeLessThanOrEqual(65);
      // Every chunk valid: complete, and it pins nothing any more.
      for (const i of [1, 2]) await state.repos.backfills.setValidation('checked', i, { passed: true, exitCode: 0, output: '' });
      expect((await service.backfills.get('checked')).status).toBe('complete');
      expect((await state.repos.backfills.oldestPinned('events'))?.backfill).not.toBe('checked');
    } finally {
      if (otherState !== state) await otherState.close();
    }
  });

  test('--snapshots replays the change sets of (FROM, TO], whole snapshots per chunk', async () => {
    await service.createConsumer({ name: 'replay_job', tables: [{ table: 'events', from: 'now' }] }, 'test');
    const [s1, s2, s3] = eventsSnapshots as [bigint, bigint, bigint];
    await service.backfills.create({ name: 'replay', consumer: 'replay_job', snapshots: `${s1}..${s3}`, chunk: 'snapshots:1', order: 'newest-first' }, 'test');
    // Retention: the running replay needs its history from s1 on, older than every watermark (s3).
    expect(new Set((await state.repos.watermarks.listByTable('events')).map((w) => w.snapshotId))).toEqual(new Set([s3]));
    const oldest = (await service.getTable('events')).oldestNeeded;
    expect([oldest?.snapshotId, oldest?.backfill]).toEqual([s1, 'replay']);
    const chunks = await state.repos.backfills.chunks('replay');
    expect(chunks.map((c) => [c.fromSnapshotId, c.toSnapshotId])).toEqual([[s1, s2], [s2, s3]]);
    const planned = await Promise.all(chunks.map((c) => state.repos.backfills.chunkFiles('replay', c.idx)));
    expect(planned.map((c) => c!.added.map((f) => f.file_path).sort())).toEqual([paths(written.slice(3, 5)), paths(written.slice(5, 6))]);
    // newest-first: chunk 1 comes first.
    const b = batchOf(await service.backfills.prepare('replay', 'r-0'));
    expect(b.backfillChunk).toBe(1);
    expect(b.tables[0]!.files.added.map((f) => f.file_path)).toEqual(paths(written.slice(5, 6)));
    expect([b.tables[0]!.fromSnapshotId, b.tables[0]!.toSnapshotId]).toEqual([s2, s3]);
    // Cancelled: it no longer holds the history back.
    await service.backfills.cancel('replay', 'test');
    expect((await service.getTable('events')).oldestNeeded?.snapshotId).toBe(s3);
  });
});
