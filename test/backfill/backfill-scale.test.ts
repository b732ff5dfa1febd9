// Backfills over a 100,000-file table (test/service/backlog-table.ts: Iceberg Java, 200 fast appends
// of 500 day-partitioned files) through `ips serve` on PostgreSQL with a capped V8 heap. A plan
// keeps compact entries (the --where field's statistics only, none for --snapshots) and each chunk
// stores which files it holds, not their descriptions; listing, counting and preparing a chunk
// read one chunk's file list at most. Before, creating either backfill here took 1.3 GB and
// preparing one chunk read every chunk's descriptions (2–2.5 GB): neither fits this cap. What each
// chunk holds comes from PyIceberg's reading of the table, not from ips. A plan of more than
// MAX_CHUNKS chunks is refused with a --chunk that fits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPython } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import type { Served } from '../docs/helpers.js';
import { MAX_CHUNKS } from '../../src/backfill/service.js';
import { FILES_PER_SNAPSHOT, SNAPSHOTS, backlogTable, callJson, createEmptyFiles, firstSnapshotsFiles, peakRssMb, serveCapped, type BacklogTable } from '../service/backlog-table.js';

/** V8 old-space cap of the server (MB). */
const HEAP_MB = 160;
/** The table's newest partition day (snapshot c writes day 2025-01-01 + c / 24; late files go to older days). */
const LAST_DAY = '2025-01-09';

let table: BacklogTable;
let firstTwo: { snapshot_id: string; added: string[] }[];
let byDay: { counts: Record<string, number>; files: string[] };
let tmp: string;
let db: Awaited<ReturnType<typeof createPgDatabase>> | undefined;
let server: Served | undefined;

beforeAll(async () => {
  table = await backlogTable();
  firstTwo = await firstSnapshotsFiles(table, 2);
  byDay = JSON.parse((await runPython('test/backfill/live_files_by_day.py', [table.metadata, 'event_ts_day', LAST_DAY], { timeoutMs: 5 * 60_000 })).trim().split('\n').pop()!) as typeof byDay;
  createEmptyFiles([...firstTwo.flatMap((s) => s.added), ...byDay.files]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-scale-'));
  db = await createPgDatabase('backfill_scale');
  server = await serveCapped(HEAP_MB, db.url, path.join(tmp, 'serve'));
  const call = (method: string, p: string, body?: unknown) => callJson(server!.url, method, p, body);
  expect((await call('POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: table.table_path } })).status).toBe(201);
  for (const name of ['replay', 'by_day', 'fine']) expect((await call('POST', '/v1/consumers', { name, tables: [{ table: 'events', from: 'now' }] })).status).toBe(201);
}, 25 * 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const call = (method: string, p: string, body?: unknown): ReturnType<typeof callJson> => callJson(server!.url, method, p, body);

interface Chunk { index: number; state: string; files: number; range: Record<string, unknown> }
interface BatchJson { id: string; backfill: { name: string; chunk: number }; tables: { files: { added: { file_path: string }[]; removed: unknown[] } }[] }

/** Prepares the backfill's next chunk and commits it: the files it handed out. */
async function runChunk(name: string, instance: string): Promise<{ chunk: number; files: string[] }> {
  const p = await call('POST', `/v1/backfills/${name}/batches`, { instance_id: instance });
  expect(p.status, JSON.stringify(p.json).slice(0, 500)).toBe(201);
  const batch = p.json.batch as BatchJson;
  expect(batch.tables[0]!.files.removed).toEqual([]);
  expect((await call('POST', `/v1/batches/${batch.id}/commit`, {})).status).toBe(200);
  return { chunk: batch.backfill.chunk, files: batch.tables[0]!.files.added.map((f) => f.file_path).sort() };
}

describe(`backfills over ${SNAPSHOTS * FILES_PER_SNAPSHOT} files through ips serve under --max-old-space-size=${HEAP_MB}`, () => {
  it(`--snapshots over the whole history, one chunk a snapshot: ${SNAPSHOTS} chunks of ${FILES_PER_SNAPSHOT}, each the files PyIceberg says its snapshot added`, async () => {
    const created = await call('POST', '/v1/backfills', { name: 'history', consumer: 'replay', table: 'events', snapshots: '..', chunk: 'snapshots:1' });
    expect(created.status, JSON.stringify(created.json).slice(0, 500)).toBe(201);
    expect((created.json.totals as { chunks: number; files: number }).chunks).toBe(SNAPSHOTS);
    expect((created.json.totals as { chunks: number; files: number }).files).toBe(table.data_files);
    const view = await call('GET', '/v1/backfills/history');
    const chunks = view.json.chunks as Chunk[];
    expect(chunks).toHaveLength(SNAPSHOTS);
    expect(chunks.every((c) => c.files === FILES_PER_SNAPSHOT && c.state === 'pending')).toBe(true);
    expect(chunks.slice(0, 2).map((c) => c.range.to_snapshot_id)).toEqual(firstTwo.map((s) => s.snapshot_id));

    const first = await runChunk('history', 'history-0');
    const second = await runChunk('history', 'history-1');
    expect([first.chunk, second.chunk]).toEqual([0, 1]);
    expect(first.files).toEqual(firstTwo[0]!.added);
    expect(second.files).toEqual(firstTwo[1]!.added);
    const after = (await call('GET', '/v1/backfills/history')).json.chunks as Chunk[];
    expect(after.map((c) => c.state).slice(0, 3)).toEqual(['committed', 'committed', 'pending']);
    expect(server!.child.exitCode).toBeNull();
    process.stdout.write(`[backfill-scale] --snapshots: ${SNAPSHOTS} chunks planned, 2 run; server peak RSS ${peakRssMb(server!.child.pid!).toFixed(0)} MB\n`);
  }, 10 * 60_000);

  it(`--where by day, newest first: one chunk a partition day, each with PyIceberg's count of live files of that day; the first is ${LAST_DAY}'s files`, async () => {
    const days = Object.keys(byDay.counts).sort();
    expect(days.at(-1)).toBe(LAST_DAY);
    const created = await call('POST', '/v1/backfills', {
      name: 'days', consumer: 'by_day', table: 'events', where: `event_ts >= '${days[0]}' and event_ts < '2025-01-10'`, chunk: 'day', order: 'newest-first',
    });
    expect(created.status, JSON.stringify(created.json).slice(0, 500)).toBe(201);
    const chunks = (await call('GET', '/v1/backfills/days')).json.chunks as Chunk[];
    expect(chunks.map((c) => [String(c.range.min).slice(0, 10), c.files])).toEqual(days.map((d) => [d, byDay.counts[d]]));
    expect(chunks.reduce((n, c) => n + c.files, 0)).toBe(table.data_files);

    const newest = await runChunk('days', 'days-0');
    expect(newest.chunk).toBe(days.length - 1);
    expect(newest.files).toEqual(byDay.files);
    expect(server!.child.exitCode).toBeNull();
    process.stdout.write(`[backfill-scale] --where: ${chunks.length} chunks planned, ${newest.files.length} files in the first; server peak RSS ${peakRssMb(server!.child.pid!).toFixed(0)} MB\n`);
  }, 10 * 60_000);

  it(`a plan of more than ${MAX_CHUNKS} chunks is refused with the --chunk that fits, and that one is planned`, async () => {
    const where = "event_ts >= '2025-01-01' and event_ts < '2025-01-10'";
    const refused = await call('POST', '/v1/backfills', { name: 'fine', consumer: 'fine', table: 'events', where, chunk: 'files:5' });
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe('INVALID_ARGUMENT');
    expect(String(refused.json.detail)).toContain(`into ${table.data_files / 5} chunks (${table.data_files} files); a backfill has at most ${MAX_CHUNKS}`);
    const suggested = /use a coarser --chunk \((files:\d+) or more/.exec(String(refused.json.detail))![1]!;
    expect(suggested).toBe(`files:${table.data_files / MAX_CHUNKS}`);
    const created = await call('POST', '/v1/backfills', { name: 'fine', consumer: 'fine', table: 'events', where, chunk: suggested });
    expect(created.status, JSON.stringify(created.json).slice(0, 500)).toBe(201);
    expect(created.json.totals).toMatchObject({ chunks: MAX_CHUNKS, files: table.data_files });
    expect(server!.child.exitCode).toBeNull();
  }, 10 * 60_000);
});
