// The change-planning table as the serve benchmarks use it (prepare-backlog, backfill-scale):
// generated or reused by bench/py/change_table.py (Iceberg Java, metadata only), the data files a
// run hands out created empty (ips checks that they exist), and JSON calls to the server.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, cacheDir, fmtInt, lastJsonLine, runCommand, type BenchContext } from './common.js';

export interface ChangeTable { table_path: string; metadata: string; snapshots: number; data_files: number; cached: boolean; generation_seconds: number }

/** The table of `snapshots` × `filesPerSnapshot` under --table-root (default $IPS_CACHE_DIR/bench/prepare-backlog). */
export async function changeTable(ctx: BenchContext, snapshots: number, filesPerSnapshot: number): Promise<ChangeTable> {
  ctx.log('Spark jars (scripts/provision/jars.sh)…');
  await runCommand('bash', [path.join(REPO_ROOT, 'scripts', 'provision', 'jars.sh')], { prefix: '' });
  const root = path.resolve(ctx.options.get('table-root') ?? path.join(cacheDir(), 'bench', 'prepare-backlog'));
  const t = lastJsonLine<ChangeTable>(await runCommand(ctx.python, [
    path.join(REPO_ROOT, 'bench', 'py', 'change_table.py'),
    '--snapshots', String(snapshots), '--files-per-snapshot', String(filesPerSnapshot), '--root', root,
  ], { prefix: '[generate] ' }));
  ctx.log(`table ${t.table_path}: ${fmtInt(t.snapshots)} snapshots, ${fmtInt(t.data_files)} data files (${t.cached ? 'cached' : `generated in ${t.generation_seconds} s`})`);
  return t;
}

/** Creates the files empty where the metadata puts them; how many were missing. */
export function createEmptyFiles(paths: Iterable<string>): number {
  let created = 0;
  for (const f of paths) {
    const p = f.replace(/^file:(\/\/)?/, '');
    if (existsSync(p)) continue;
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, '');
    created++;
  }
  return created;
}

/** A JSON call that must succeed: the answer's body. */
export async function callJson(url: string, method: string, p: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${url}${p}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text.slice(0, 1000)}`);
  return JSON.parse(text) as Record<string, unknown>;
}
