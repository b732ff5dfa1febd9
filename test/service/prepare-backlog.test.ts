// A consumer 100,000 files behind catches up in batches of 100 (`max_files`) through `ips serve`
// running with a capped V8 heap: each prepare plans only as far as its limit reaches
// (src/service/batch-plan.ts). The table is written by Iceberg Java (bench/py/change_table.py:
// 200 fast appends of 500 day-partitioned files, metadata only, cached under
// $IPS_CACHE_DIR/test-tables/prepare-backlog); prepare checks that the files it hands out exist,
// so the files of the first two snapshots are created empty where the metadata puts them. Which
// files those snapshots added comes from PyIceberg's reading of the table, not from ips. The
// plan prepare made before (the whole remaining range, then the limit:
// bench/lib/whole-range-plan.ts) is shown not to fit the same cap: before, one such
// prepare ran the whole server out of memory. A prepare without limits is cut at the service's
// max_batch_files (set low here). A preview of the whole range (GET /v1/tables/{name}/changes) is
// planned compact and streamed, within a cap the whole document it was before does not fit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import type { Served } from '../docs/helpers.js';
import { FILES_PER_SNAPSHOT, SNAPSHOTS, backlogTable, callJson, createEmptyFiles, firstSnapshotsFiles, peakRssMb, serveCapped, type BacklogTable } from './backlog-table.js';

const MAX_FILES = 100;
/** V8 old-space cap of the server (MB): the whole-range plan of this backlog needs several times more. */
const HEAP_MB = 64;
/** The cap of a server answering the preview of the whole range (its streamed JSON needs more than a prepare). */
const PREVIEW_HEAP_MB = 128;
/** The server's max_batch_files: a prepare without limits is cut there. */
const CEILING = 300;

let table: BacklogTable;
let firstTwo: { snapshot_id: string; added: string[] }[];
let tmp: string;
let db: Awaited<ReturnType<typeof createPgDatabase>> | undefined;
let server: Served | undefined;
let url: string;

/** `ips serve` under a heap cap on the test's PostgreSQL database, with the low batch ceiling. */
function serve(heapMb: number, dataDir: string): Promise<Served> {
  return serveCapped(heapMb, db!.url, dataDir, { IPS_MAX_BATCH_FILES: String(CEILING) });
}

/** A script under a heap cap: its exit code and the end of its stderr. */
function runCapped(heapMb: number, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, '--import', 'tsx', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-20_000); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr: err }));
  });
}

beforeAll(async () => {
  table = await backlogTable();
  firstTwo = await firstSnapshotsFiles(table, 2);
  createEmptyFiles(firstTwo.flatMap((s) => s.added));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-prepare-backlog-'));
  db = await createPgDatabase('prepare_backlog');
  server = await serve(HEAP_MB, path.join(tmp, 'serve'));
  url = server.url;
}, 25 * 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const call = (method: string, p: string, body?: unknown): ReturnType<typeof callJson> => callJson(url, method, p, body);

/** Peak RSS of the server so far (MB), from /proc. */
function serverPeakMb(): number {
  return peakRssMb(server!.child.pid!);
}

describe(`a consumer ${SNAPSHOTS * FILES_PER_SNAPSHOT} files behind, in batches of ${MAX_FILES}`, () => {
  it(`ips serve under --max-old-space-size=${HEAP_MB} hands out the first snapshot in five batches, then starts the second`, async () => {
    expect(table.data_files).toBe(SNAPSHOTS * FILES_PER_SNAPSHOT);
    expect(firstTwo.map((s) => s.added.length)).toEqual([FILES_PER_SNAPSHOT, FILES_PER_SNAPSHOT]);
    expect((await call('POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: table.table_path } })).status).toBe(201);
    expect((await call('POST', '/v1/consumers', { name: 'late', tables: [{ table: 'events', from: 'start' }] })).status).toBe(201);
    const batches: string[][] = [];
    for (let i = 0; i < FILES_PER_SNAPSHOT / MAX_FILES + 1; i++) {
      const p = await call('POST', '/v1/consumers/late/batches', { instance_id: `run-${i}`, limits: { max_files: MAX_FILES } });
      expect(p.status, `prepare ${i}: ${JSON.stringify(p.json).slice(0, 500)}`).toBe(201);
      const batch = p.json.batch as { id: string; tables: { files: { added: { file_path: string }[]; removed: unknown[] } }[] };
      expect(batch.tables[0]!.files.removed).toEqual([]);
      batches.push(batch.tables[0]!.files.added.map((f) => f.file_path));
      expect((await call('POST', `/v1/batches/${batch.id}/commit`, {})).status).toBe(200);
    }
    for (const b of batches) expect(b).toHaveLength(MAX_FILES);
    const first = batches.slice(0, -1).flat();
    expect(new Set(first).size, 'no file handed out twice').toBe(first.length);
    expect(first.sort()).toEqual(firstTwo[0]!.added);
    const second = new Set(firstTwo[1]!.added);
    expect(batches.at(-1)!.every((f) => second.has(f)), 'the sixth batch starts the second snapshot').toBe(true);
    const consumer = await call('GET', '/v1/consumers/late');
    const wm = (consumer.json.tables as { snapshot_id: string | null; partial_snapshot_id: string | null; processed_files: string[] }[])[0]!;
    expect(wm.snapshot_id).toBe(firstTwo[0]!.snapshot_id);
    expect(wm.partial_snapshot_id).toBe(firstTwo[1]!.snapshot_id);
    expect(wm.processed_files).toHaveLength(MAX_FILES);
    expect(server!.child.exitCode).toBeNull();
    process.stdout.write(`[prepare-backlog] ${batches.length} batches of ${MAX_FILES} at a ${table.data_files}-file backlog; server peak RSS ${serverPeakMb().toFixed(0)} MB under --max-old-space-size=${HEAP_MB}\n`);
  }, 10 * 60_000);

  it(`a prepare without limits at the same backlog is cut at the service's max_batch_files (${CEILING}), within the same cap`, async () => {
    expect((await call('POST', '/v1/consumers', { name: 'unlimited', tables: [{ table: 'events', from: 'start' }] })).status).toBe(201);
    const p = await call('POST', '/v1/consumers/unlimited/batches', { instance_id: 'run-0' });
    expect(p.status, `${JSON.stringify(p.json).slice(0, 500)}`).toBe(201);
    const batch = p.json.batch as { id: string; limits: { max_files: number | null }; tables: { files: { added: { file_path: string }[] } }[] };
    expect(batch.limits.max_files).toBe(CEILING);
    const files = batch.tables[0]!.files.added.map((f) => f.file_path);
    expect(files).toHaveLength(CEILING);
    const first = new Set(firstTwo[0]!.added);
    expect(files.every((f) => first.has(f))).toBe(true);
    expect((await call('POST', `/v1/batches/${batch.id}/commit`, {})).status).toBe(200);
    expect(server!.child.exitCode).toBeNull();
  }, 10 * 60_000);

  it(`a preview of the whole ${SNAPSHOTS * FILES_PER_SNAPSHOT}-file range streams from ips serve under --max-old-space-size=${PREVIEW_HEAP_MB} and lists every file with its bounds`, async () => {
    const previewer = await serve(PREVIEW_HEAP_MB, path.join(tmp, 'serve-preview'));
    try {
      const r = await fetch(`${previewer.url}/v1/tables/events/changes`, { signal: AbortSignal.timeout(600_000) });
      expect(r.status).toBe(200);
      const doc = await r.json() as { from: string | null; snapshots: unknown[]; added_files: { file_path: string; lower_bounds: Record<string, unknown> }[]; removed_files: unknown[] };
      expect(doc.from).toBeNull();
      expect(doc.snapshots).toHaveLength(SNAPSHOTS);
      expect(doc.added_files).toHaveLength(table.data_files);
      expect(doc.removed_files).toEqual([]);
      const paths = new Set(doc.added_files.map((f) => f.file_path));
      expect(paths.size).toBe(table.data_files);
      for (const s of firstTwo) for (const f of s.added) expect(paths.has(f)).toBe(true);
      // Bounds are read back from the manifests as each file is written (the plan keeps none).
      expect(doc.added_files.every((f) => Object.keys(f.lower_bounds).length > 0)).toBe(true);
      expect(previewer.child.exitCode).toBeNull();
      process.stdout.write(`[prepare-backlog] preview of ${doc.added_files.length} files; server peak RSS ${peakRssMb(previewer.child.pid!).toFixed(0)} MB under --max-old-space-size=${PREVIEW_HEAP_MB}\n`);
    } finally {
      await previewer.stop();
    }
  }, 10 * 60_000);

  it(`the whole document the preview answered with before (full entries, then printed) does not fit --max-old-space-size=${PREVIEW_HEAP_MB}`, async () => {
    const r = await runCapped(PREVIEW_HEAP_MB, [path.join(REPO_ROOT, 'test', 'cli', 'changes-full-plan.ts'), table.table_path, 'whole']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/heap out of memory|Allocation failed/);
  }, 10 * 60_000);

  it(`the plan prepare made before (the whole remaining range, then the limit) does not fit --max-old-space-size=${HEAP_MB}`, async () => {
    const r = await runCapped(HEAP_MB, [path.join(REPO_ROOT, 'bench', 'lib', 'whole-range-plan.ts'), table.table_path, String(MAX_FILES)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/heap out of memory|Allocation failed/);
  }, 10 * 60_000);
});
