// Memory of an idle `ips serve` (issue 15): the real CLI as a user starts it, compiled, on a new
// embedded data directory (first start: initdb), on the same directory reopened, and on the real
// PostgreSQL. The figure is the kernel's: VmHWM of the server process (/proc/PID/status), its peak
// resident memory from spawn through readiness, a short idle and rounds of light API calls; the
// bounds are the targets. Memory is not time: nothing here is timed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { LIGHT_CALLS, TARGET_BYTES, compiledIsFresh, measureServe, type ServeRun } from '../../bench/idle-memory.js';

const ADMIN = 'admin-token-for-the-idle-memory-test-0123';
const MB = 1024 * 1024;

describe('idle memory of ips serve', () => {
  let tmp: string;
  /** The compiled CLI: bin/ips.js when dist/ is fresh, else a private build (never tsx, whose compiler is not what a user runs). */
  let entry: string;

  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-idle-memory-'));
    if (compiledIsFresh()) {
      entry = path.join(REPO_ROOT, 'bin', 'ips.js');
      return;
    }
    // Inside the repository, so that the build resolves node_modules as dist/ does; never dist/ itself, which other tests run.
    const outDir = path.join(REPO_ROOT, '.tmp', `idle-memory-build-${process.pid}`);
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', outDir],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
    expect(r.status, `tsc: ${r.stdout}${r.stderr}`).toBe(0);
    // The console's static files are not compiled: the build finds them next to its src/ui (src/ui/plugin.ts, staticDir).
    symlinkSync(path.join(REPO_ROOT, 'src', 'ui', 'static'), path.join(outDir, 'src', 'ui', 'static'));
    entry = path.join(outDir, 'src', 'cli', 'main.js');
  }, 600_000);

  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
    if (!entry.startsWith(path.join(REPO_ROOT, 'bin'))) rmSync(path.resolve(entry, '..', '..', '..'), { recursive: true, force: true });
  });

  /** The server's mapped files when it stopped: which native engines it had loaded. */
  function serve(env: Record<string, string>): Promise<ServeRun & { maps: string }> {
    let maps = '';
    return measureServe(env, {
      idleMs: 3000, rounds: 2, afterMs: 1000, adminToken: ADMIN, cwd: tmp, entry,
      beforeStop: (pid) => (maps = readFileSync(`/proc/${pid}/maps`, 'utf8')),
    }).then((run) => ({ ...run, maps }));
  }

  function check(run: ServeRun & { maps: string }, targetBytes: number): void {
    expect(run.failedCalls).toEqual([]);
    expect(run.calls).toBe(2 * LIGHT_CALLS.length);
    expect(run.exitCode).toBe(0);
    const hwm = Math.max(...run.samples.map((s) => s.hwm));
    expect(hwm / MB).toBeGreaterThan(30); // a real Node process was measured
    expect(hwm / MB).toBeLessThanOrEqual(targetBytes / MB);
    // Heavy engines load only when used: nothing here reads rows.
    expect(run.maps).not.toMatch(/duckdb/i);
  }

  test('embedded PGlite: first start (initdb) and reopened, each ≤ 300 MB', async () => {
    const dataDir = path.join(tmp, 'data');
    const first = await serve({ IPS_DATA_DIR: dataDir });
    check(first, TARGET_BYTES['pglite-first']);
    // The first start's initdb ran in a child process that has exited: only the cluster is left.
    expect(readFileSync(path.join(dataDir, 'db', 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
    const again = await serve({ IPS_DATA_DIR: dataDir });
    check(again, TARGET_BYTES.pglite);
    expect(again.childHwm).toBe(0); // no initdb on a reopened directory
  }, 600_000);

  test('PostgreSQL: ≤ 150 MB', async () => {
    const db = await createPgDatabase('idle_memory');
    try {
      const run = await serve({ DATABASE_URL: db.url, IPS_WAREHOUSE: path.join(tmp, 'warehouse-pg') });
      check(run, TARGET_BYTES.postgres);
    } finally {
      await db.drop();
    }
  }, 600_000);
});
