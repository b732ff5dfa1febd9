// `ips changes --json` over a long range stays within a memory budget: the plan keeps compact
// entries and the output is streamed (src/capture/compact-entry.ts, writeChangesJson). The table
// is written by Iceberg Java (bench/py/change_table.py: fast appends of day-partitioned files with
// column metrics), cached under $IPS_CACHE_DIR/test-tables. The planner runs as a child process
// with a capped V8 heap; its answer is checked against what the writer reports it wrote, and the
// previous whole-document implementation is shown not to fit the same cap.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, pythonEnv, runPython, testEnv } from '../setup/env.js';

const SNAPSHOTS = 200;
const FILES_PER_SNAPSHOT = 500;
/** V8 old-space cap for the child (MB): the 100,000 files' full entries need several times more. */
const HEAP_MB = 160;

interface Generated {
  table_path: string;
  data_files: number;
  day0: string;
  files_per_day: number[];
}

let table: Generated;
let tmp: string;

beforeAll(async () => {
  const out = await runPython('bench/py/change_table.py', [
    '--snapshots', String(SNAPSHOTS), '--files-per-snapshot', String(FILES_PER_SNAPSHOT),
    '--root', path.join(testEnv().cacheDir, 'test-tables'),
  ], { env: pythonEnv(), timeoutMs: 20 * 60_000 });
  table = JSON.parse(out.trim().split('\n').pop()!) as Generated;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-changes-memory-'));
}, 25 * 60_000);

/** Runs node with a heap cap, stdout to a file; resolves to its exit code and stderr. */
function runCapped(args: string[], outFile: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(outFile, 'w');
    const child = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, ...args], { cwd: REPO_ROOT, stdio: ['ignore', out, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-20_000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      fs.closeSync(out);
      resolve({ code, stderr });
    });
  });
}

describe('ips changes over a 100,000-file range with a capped heap', () => {
  it(`plans every snapshot within --max-old-space-size=${HEAP_MB}, and lists exactly the files the writer appended`, async () => {
    const outFile = path.join(tmp, 'changes.json');
    const r = await runCapped([path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', table.table_path, '--json'], outFile);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(outFile, 'utf8')) as {
      snapshots: { added_files: number; operation: string }[];
      added_files: { file_path: string; content: string; partition: Record<string, string>; lower_bounds: Record<string, unknown> }[];
      removed_files: unknown[];
    };
    expect(doc.snapshots).toHaveLength(SNAPSHOTS);
    expect(doc.snapshots.every((s) => s.operation === 'append' && s.added_files === FILES_PER_SNAPSHOT)).toBe(true);
    expect(doc.removed_files).toEqual([]);
    expect(doc.added_files).toHaveLength(table.data_files);
    expect(new Set(doc.added_files.map((f) => f.file_path)).size).toBe(table.data_files);
    // Files per day partition, as the writer counted them while it appended.
    const perDay = new Array<number>(table.files_per_day.length).fill(0);
    const day0 = Date.parse(`${table.day0}T00:00:00Z`);
    for (const f of doc.added_files) {
      const day = Object.values(f.partition)[0]!;
      perDay[Math.round((Date.parse(`${day}T00:00:00Z`) - day0) / 86_400_000)]! += 1;
    }
    expect(perDay).toEqual(table.files_per_day);
    // The bounds survive compaction: every file lists the metrics Java wrote (8 columns).
    expect(doc.added_files.every((f) => Object.keys(f.lower_bounds).length === 8)).toBe(true);
  }, 20 * 60_000);

  it(`the previous whole-document plan of the same range does not fit --max-old-space-size=${HEAP_MB}`, async () => {
    const r = await runCapped(['--import', 'tsx', path.join(REPO_ROOT, 'test', 'cli', 'changes-full-plan.ts'), table.table_path], path.join(tmp, 'full.json'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/heap out of memory|Allocation failed/);
  }, 20 * 60_000);
});
