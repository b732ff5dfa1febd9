// Managed backfills over the change-planning table (bench/py/change_table.py: --snapshots fast
// appends × --files-per-snapshot files, written by Iceberg Java) through `ips serve` (compiled,
// Node's default heap, state in the test harness's PostgreSQL): for `--snapshots ..` (one chunk
// per --chunk-snapshots snapshots) and `--where` over every day (one chunk a day, newest first),
// the server's CPU and wall time to create the backfill, to prepare and commit its first chunk,
// and to answer GET /v1/backfills/{name}, and its peak RSS. There is no peer: no other tool plans
// backfills in chunks; the figures are what a data engineer waits for and what the server needs.
//
// The table's metadata names data files the generator never writes; a chunk's prepare checks that
// its files exist, so the files of the chunks prepared are created empty (the first snapshot's, as
// PyIceberg lists them, and the newest day's, bench/py/../../test/backfill/live_files_by_day.py).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, fmtInt, intOptions, lastJsonLine, ms, runCommand, type BenchContext, type Benchmark } from './lib/common.js';
import { callJson, changeTable, createEmptyFiles } from './lib/change-table.js';
import { startPostgres } from './lib/postgres.js';
import { processCpuSeconds } from './lib/proc-cpu.js';
import { MB, procMemory } from './lib/proc-mem.js';
import { startServe } from '../test/docs/helpers.js';

const OPTIONS: Record<string, string> = {
  snapshots: 'snapshots of the generated table (default 200)',
  'files-per-snapshot': 'data files per snapshot (default 500)',
  'chunk-snapshots': 'snapshots per chunk of the --snapshots backfill (default 10)',
  'table-root': 'where the generated table is cached (default $IPS_CACHE_DIR/bench/prepare-backlog)',
};

interface Step { cpuMs: number; wallMs: number }

const dayAfter = (day: string): string => new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

export const backfillScale: Benchmark = {
  name: 'backfill-scale',
  description: 'managed backfills (--snapshots, --where by day) over a 100,000-file Iceberg Java table through ips serve: CPU, wall and peak RSS to create, to run the first chunk and to show the backfill',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext): Promise<void> {
    const n = intOptions(ctx, { snapshots: 200, 'files-per-snapshot': 500, 'chunk-snapshots': 10 });
    const t = await changeTable(ctx, n.snapshots, n['files-per-snapshot']);

    const firstChunk = lastJsonLine<{ snapshot_id: string; added: string[] }[]>(await runCommand(ctx.python, [
      path.join(REPO_ROOT, 'bench', 'py', 'snapshot_added_files.py'), t.metadata, String(n['chunk-snapshots']),
    ], { prefix: '[list] ' }));
    const byDay = lastJsonLine<{ counts: Record<string, number>; day: string; files: string[] }>(await runCommand(ctx.python, [
      path.join(REPO_ROOT, 'test', 'backfill', 'live_files_by_day.py'), t.metadata, 'event_ts_day',
    ], { prefix: '[list] ' }));
    const days = Object.keys(byDay.counts).sort();
    const created = createEmptyFiles([...firstChunk.flatMap((s) => s.added), ...byDay.files]);
    ctx.log(`the first chunks' files exist (${fmtInt(created)} created empty now); ${days.length} partition days, ${days[0]} to ${byDay.day} (${fmtInt(byDay.files.length)} files)`);

    const pg = await startPostgres(ctx);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-backfill-serve-'));
    const rows: { kind: string; chunks: number; firstFiles: number; create: Step; chunk: Step; get: Step; peakMb: number }[] = [];
    try {
      const env = { ...process.env, DATABASE_URL: await pg.createDatabase('backfill_scale'), IPS_PORT: '0', IPS_DATA_DIR: dataDir, IPS_LOG_LEVEL: 'silent', IPS_ADMIN_TOKEN: '', IPS_TRIGGERS: 'off' };
      const specs = [
        { kind: '--snapshots', body: { snapshots: '..', chunk: `snapshots:${n['chunk-snapshots']}` }, firstFiles: firstChunk.reduce((a, s) => a + s.added.length, 0) },
        { kind: '--where by day', body: { where: `event_ts >= '${days[0]}' and event_ts < '${dayAfter(byDay.day)}'`, chunk: 'day', order: 'newest-first' }, firstFiles: byDay.files.length },
      ];
      for (const [i, spec] of specs.entries()) {
        // A fresh server per kind: each peak RSS is that backfill's alone.
        const { child, url, stop } = await startServe(['--json'], env, REPO_ROOT);
        try {
          const measure = async <T>(fn: () => Promise<T>): Promise<{ value: T; step: Step }> => {
            const c0 = processCpuSeconds(child.pid!);
            const w0 = performance.now();
            const value = await fn();
            return { value, step: { cpuMs: (processCpuSeconds(child.pid!) - c0) * 1000, wallMs: performance.now() - w0 } };
          };
          if (i === 0) await callJson(url, 'POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: t.table_path } });
          const consumer = `c${i}`;
          await callJson(url, 'POST', '/v1/consumers', { name: consumer, tables: [{ table: 'events', from: 'now' }] });
          const name = `b${i}`;
          const c = await measure(() => callJson(url, 'POST', '/v1/backfills', { name, consumer, table: 'events', ...spec.body }));
          const totals = c.value.totals as { chunks: number; files: number };
          if (totals.files !== t.data_files) throw new Error(`${spec.kind}: the plan holds ${totals.files} files, the table ${t.data_files}`);
          const k = await measure(async () => {
            const p = await callJson(url, 'POST', `/v1/backfills/${name}/batches`, { instance_id: `${name}-0` });
            const batch = p.batch as { id: string; tables: { file_count: number }[] };
            await callJson(url, 'POST', `/v1/batches/${batch.id}/commit`, {});
            return batch.tables[0]!.file_count;
          });
          if (k.value !== spec.firstFiles) throw new Error(`${spec.kind}: the first chunk handed out ${k.value} files, PyIceberg lists ${spec.firstFiles}`);
          const g = await measure(() => callJson(url, 'GET', `/v1/backfills/${name}`));
          const peakMb = (procMemory(child.pid!)?.hwm ?? NaN) / MB;
          rows.push({ kind: spec.kind, chunks: totals.chunks, firstFiles: k.value, create: c.step, chunk: k.step, get: g.step, peakMb });
          ctx.log(`${spec.kind}: ${fmtInt(totals.chunks)} chunks; create ${ms(c.step.cpuMs)} ms CPU (${ms(c.step.wallMs)} wall); first chunk (${fmtInt(k.value)} files) prepare → commit ${ms(k.step.cpuMs)} ms CPU (${ms(k.step.wallMs)} wall); GET ${ms(g.step.wallMs)} ms wall; server peak RSS ${fmtInt(peakMb)} MiB`);
        } finally {
          await stop();
        }
      }
    } finally {
      await pg.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
    for (const r of rows) {
      ctx.result({
        measure: `backfill ${r.kind} over a ${fmtInt(t.snapshots)}-snapshot / ${fmtInt(t.data_files)}-file table through ips serve (PostgreSQL state), ${fmtInt(r.chunks)} chunks: create, then prepare → commit of the first chunk (${fmtInt(r.firstFiles)} files), then GET /v1/backfills/{name}`,
        ips: `create ${ms(r.create.cpuMs)} ms CPU (${ms(r.create.wallMs)} ms wall), first chunk ${ms(r.chunk.cpuMs)} ms CPU (${ms(r.chunk.wallMs)} ms wall), GET ${ms(r.get.wallMs)} ms wall; server peak RSS ${fmtInt(r.peakMb)} MiB (Node default heap)`,
        peer: null, ratio: null,
      });
    }
  },
};
