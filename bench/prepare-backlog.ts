// A consumer that starts at the beginning of the change-planning table (bench/py/change_table.py:
// --snapshots fast appends × --files-per-snapshot files, written by Iceberg Java) catches up in
// batches of --max-files through `ips serve` (compiled, Node's default heap, state in the test
// harness's PostgreSQL): per prepare → commit, the server's CPU and wall time, and its peak RSS.
// The peer is the plan prepare made before src/service/batch-plan.ts (the whole remaining range,
// then the limit; bench/lib/whole-range-plan.ts) for the first batch, in its own process: its
// CPU and peak RSS. That peer does the planning only (no ICDC write, no state, no HTTP), so the
// ratio understates what a batch cost before.
//
// The table's metadata names data files the generator never writes; prepare checks that the
// files it hands out exist, so the files of the snapshots the batches reach are created empty,
// listed by PyIceberg (bench/py/snapshot_added_files.py). The table is cached under its own root
// (--table-root, default $IPS_CACHE_DIR/bench/prepare-backlog), apart from change-planning's.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, fmtInt, fmtRatio, intOptions, lastJsonLine, median, ms, runCommand, type BenchContext, type Benchmark,
} from './lib/common.js';
import { callJson, changeTable, createEmptyFiles } from './lib/change-table.js';
import { startPostgres } from './lib/postgres.js';
import { processCpuSeconds } from './lib/proc-cpu.js';
import { MB, procMemory } from './lib/proc-mem.js';
import { startServe } from '../test/docs/helpers.js';

const OPTIONS: Record<string, string> = {
  snapshots: 'snapshots of the generated table (default 2000)',
  'files-per-snapshot': 'data files per snapshot (default 500)',
  'max-files': 'the consumer\'s max_files per batch (default 1000)',
  batches: 'batches prepared and committed (default 5)',
  'table-root': 'where the generated table is cached (default $IPS_CACHE_DIR/bench/prepare-backlog)',
};

/** Peak RSS and CPU of a command, from /usr/bin/time. */
async function timed(args: string[]): Promise<{ stdout: string; cpuS: number; wallS: number; peakMb: number; code: number | null; stderr: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-backlog-'));
  const timing = path.join(dir, 'time.txt');
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timing, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
      child.on('error', reject);
      child.on('close', (code) => {
        const [wall, user, sys, kb] = readFileSync(timing, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        resolve({ stdout, cpuS: user! + sys!, wallS: wall!, peakMb: kb! / 1024, code, stderr });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const prepareBacklog: Benchmark = {
  name: 'prepare-backlog',
  description: 'a consumer at the start of a 2,000-snapshot / 1M-file table catching up in batches of max_files through ips serve: CPU, wall and peak RSS per batch, vs the whole-range plan prepare made before',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext): Promise<void> {
    const n = intOptions(ctx, { snapshots: 2000, 'files-per-snapshot': 500, 'max-files': 1000, batches: 5 });
    const t = await changeTable(ctx, n.snapshots, n['files-per-snapshot']);

    // The files the batches reach (one snapshot more than the files need), created empty.
    const reach = Math.min(n.snapshots, Math.ceil((n['max-files'] * n.batches) / n['files-per-snapshot']) + 1);
    const listed = lastJsonLine<{ snapshot_id: string; added: string[] }[]>(await runCommand(ctx.python, [
      path.join(REPO_ROOT, 'bench', 'py', 'snapshot_added_files.py'), t.metadata, String(reach),
    ], { prefix: '[list] ' }));
    const created = createEmptyFiles(listed.flatMap((s) => s.added));
    ctx.log(`the first ${reach} snapshots' ${fmtInt(listed.reduce((a, s) => a + s.added.length, 0))} data files exist (${fmtInt(created)} created empty now)`);

    const pg = await startPostgres(ctx);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-backlog-serve-'));
    const cpuMs: number[] = [];
    const wallMs: number[] = [];
    let peak = 0;
    let handed = 0;
    try {
      const env = { ...process.env, DATABASE_URL: await pg.createDatabase('prepare_backlog'), IPS_PORT: '0', IPS_DATA_DIR: dataDir, IPS_LOG_LEVEL: 'silent', IPS_ADMIN_TOKEN: '' };
      const { child, url, stop } = await startServe(['--json'], env, REPO_ROOT);
      try {
        await callJson(url, 'POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: t.table_path } });
        await callJson(url, 'POST', '/v1/consumers', { name: 'late', tables: [{ table: 'events', from: 'start' }] });
        for (let i = 0; i < n.batches; i++) {
          const c0 = processCpuSeconds(child.pid!);
          const w0 = performance.now();
          const p = await callJson(url, 'POST', '/v1/consumers/late/batches', { instance_id: `run-${i}`, limits: { max_files: n['max-files'] } });
          const batch = p.batch as { id: string; tables: { file_count: number }[] };
          await callJson(url, 'POST', `/v1/batches/${batch.id}/commit`, {});
          wallMs.push(performance.now() - w0);
          cpuMs.push((processCpuSeconds(child.pid!) - c0) * 1000);
          handed += batch.tables[0]!.file_count;
          if (batch.tables[0]!.file_count !== n['max-files']) throw new Error(`batch ${i} has ${batch.tables[0]!.file_count} files, not ${n['max-files']}`);
        }
        peak = procMemory(child.pid!)?.hwm ?? NaN;
      } finally {
        await stop();
      }
    } finally {
      await pg.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
    ctx.log(`ips serve: ${n.batches} batches of ${fmtInt(n['max-files'])} files (${fmtInt(handed)}), prepare → commit ${cpuMs.map(ms).join(', ')} ms CPU; peak RSS ${fmtInt(peak / MB)} MiB`);

    ctx.log('the whole-range plan of the first batch (bench/lib/whole-range-plan.ts)…');
    const whole = await timed([process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'whole-range-plan.ts'), t.table_path, String(n['max-files'])]);
    const peer = whole.code === 0
      ? (() => {
        const r = lastJsonLine<{ taken: number; planned: number }>(whole.stdout);
        if (r.taken !== n['max-files']) throw new Error(`the whole-range plan took ${r.taken} files, not ${n['max-files']}`);
        return `whole-range plan (before): ${whole.cpuS.toFixed(2)} s CPU, ${whole.wallS.toFixed(2)} s wall, peak RSS ${fmtInt(whole.peakMb)} MiB (${fmtInt(r.planned)} snapshots planned)`;
      })()
      : `whole-range plan (before): failed after ${whole.cpuS.toFixed(2)} s CPU, peak RSS ${fmtInt(whole.peakMb)} MiB: ${/heap out of memory/.test(whole.stderr) ? 'JavaScript heap out of memory' : whole.stderr.trim().split('\n').pop()}`;
    ctx.log(peer);
    ctx.result({
      measure: `prepare → commit of a batch of ${fmtInt(n['max-files'])} files for a consumer at the start of a ${fmtInt(t.snapshots)}-snapshot / ${fmtInt(t.data_files)}-file table, through ips serve (PostgreSQL state), median of ${n.batches} batches; ratio = the whole-range plan's CPU (planning only) ÷ ips's (a whole round trip)`,
      ips: `${ms(median(cpuMs))} ms CPU, ${ms(median(wallMs))} ms wall, server peak RSS ${fmtInt(peak / MB)} MiB (Node default heap)`,
      peer,
      ratio: whole.code === 0 ? fmtRatio((whole.cpuS * 1000) / median(cpuMs)) : null,
    });
  },
};
