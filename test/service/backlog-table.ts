// The large table of the scale tests (test/service/prepare-backlog, test/backfill/backfill-scale):
// written by Iceberg Java (bench/py/change_table.py: 200 fast appends of 500 day-partitioned files,
// metadata only), cached under $IPS_CACHE_DIR/test-tables/prepare-backlog (the generator locks it,
// so parallel test files share one generation), and `ips serve` in a child with a capped V8 heap.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, pythonEnv, runPython, testEnv } from '../setup/env.js';
import { served, type Served } from '../docs/helpers.js';

export const SNAPSHOTS = 200;
export const FILES_PER_SNAPSHOT = 500;

export interface BacklogTable { table_path: string; metadata: string; data_files: number }

export async function backlogTable(): Promise<BacklogTable> {
  const out = await runPython('bench/py/change_table.py', [
    '--snapshots', String(SNAPSHOTS), '--files-per-snapshot', String(FILES_PER_SNAPSHOT),
    '--root', path.join(testEnv().cacheDir, 'test-tables', 'prepare-backlog'),
  ], { env: pythonEnv(), timeoutMs: 20 * 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as BacklogTable;
}

/** The data files each of the table's first `n` snapshots added, as PyIceberg reads them. */
export async function firstSnapshotsFiles(table: BacklogTable, n: number): Promise<{ snapshot_id: string; added: string[] }[]> {
  return JSON.parse((await runPython('bench/py/snapshot_added_files.py', [table.metadata, String(n)])).trim().split('\n').pop()!) as { snapshot_id: string; added: string[] }[];
}

/**
 * The generator writes metadata only, and prepare checks that the files it hands out exist:
 * creates them empty where the metadata puts them (once; kept with the cached table).
 */
export function createEmptyFiles(paths: Iterable<string>): void {
  for (const f of paths) {
    const p = f.replace(/^file:(\/\/)?/, '');
    if (fs.existsSync(p)) continue;
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, '');
  }
}

/** `ips serve` (compiled) in a child with a capped V8 heap, on the given state database, triggers off. */
export function serveCapped(heapMb: number, databaseUrl: string, dataDir: string, env: Record<string, string> = {}): Promise<Served> {
  return served(spawn(process.execPath, [`--max-old-space-size=${heapMb}`, path.join(REPO_ROOT, 'bin', 'ips.js'), 'serve', '--json'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, IPS_PORT: '0', IPS_DATA_DIR: dataDir, IPS_LOG_LEVEL: 'silent', IPS_ADMIN_TOKEN: '', IPS_TRIGGERS: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
}

/** Peak RSS of a process so far (MB), from /proc. */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** A JSON call to a server: status and body. */
export async function callJson(url: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${url}${p}`, {
    method, signal: AbortSignal.timeout(120_000),
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}
