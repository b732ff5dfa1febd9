// `ips changes` over a long range stays within a memory budget, with --json and as text: the plan
// keeps compact entries without bounds, --json reads each file's bounds back from its manifest as
// it lists the file (src/capture/output-bounds.ts), and both outputs are streamed. The table is
// written by Iceberg Java (bench/py/change_table.py: fast appends of day-partitioned files with
// column metrics), cached under $IPS_CACHE_DIR/test-tables. The CLI runs as a child process with a
// capped V8 heap; its answer is checked against what the writer reports it wrote, and earlier
// implementations (test/cli/changes-full-plan.ts) are shown not to fit the same caps.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, pythonEnv, runPython, testEnv } from '../setup/env.js';

const SNAPSHOTS = 200;
const FILES_PER_SNAPSHOT = 500;
/**
 * V8 old-space caps for the child (MB). --json: the 100,000 files' full entries, or the whole
 * document, need several times more. Text: the compact plan alone needs about 58; the plan that
 * also kept every file's bounds (as the CLI did before --json read them back) about 78.
 * (--json also fits 68, but its output then runs several times slower, collecting all the time.)
 */
const JSON_HEAP_MB = 96;
const TEXT_HEAP_MB = 68;

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

// The commands' outputs are hundreds of MB each.
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs node with a heap cap, stdout to a file; resolves to its exit code and stderr. */
function runCapped(heapMb: number, args: string[], outFile: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(outFile, 'w');
    const child = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, ...args], { cwd: REPO_ROOT, stdio: ['ignore', out, 'pipe'] });
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

/** Index of an ISO day from the writer's first day. */
function dayIndex(day: string): number {
  return Math.round((Date.parse(`${day}T00:00:00Z`) - Date.parse(`${table.day0}T00:00:00Z`)) / 86_400_000);
}

describe('ips changes over a 100,000-file range with a capped heap', () => {
  it(`--json: plans every snapshot within --max-old-space-size=${JSON_HEAP_MB}, and lists exactly the files the writer appended`, async () => {
    const outFile = path.join(tmp, 'changes.json');
    const r = await runCapped(JSON_HEAP_MB, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', table.table_path, '--json'], outFile);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(outFile, 'utf8')) as {
      snapshots: { added_files: number; operation: string }[];
      added_files: { file_path: string; content: string; partition: Record<string, string>; lower_bounds: Record<string, unknown>; upper_bounds: Record<string, unknown> }[];
      removed_files: unknown[];
    };
    expect(doc.snapshots).toHaveLength(SNAPSHOTS);
    expect(doc.snapshots.every((s) => s.operation === 'append' && s.added_files === FILES_PER_SNAPSHOT)).toBe(true);
    expect(doc.removed_files).toEqual([]);
    expect(doc.added_files).toHaveLength(table.data_files);
    expect(new Set(doc.added_files.map((f) => f.file_path)).size).toBe(table.data_files);
    // Files per day partition, as the writer counted them while it appended.
    const perDay = new Array<number>(table.files_per_day.length).fill(0);
    for (const f of doc.added_files) perDay[dayIndex(Object.values(f.partition)[0]!)]! += 1;
    expect(perDay).toEqual(table.files_per_day);
    // The bounds are read back from the manifests: every file lists the metrics Java wrote (8 columns).
    expect(doc.added_files.every((f) => Object.keys(f.lower_bounds).length === 8 && Object.keys(f.upper_bounds).length === 8)).toBe(true);
  }, 20 * 60_000);

  it(`text: plans every snapshot within --max-old-space-size=${TEXT_HEAP_MB}, and lists exactly the files the writer appended`, async () => {
    const outFile = path.join(tmp, 'changes.txt');
    const r = await runCapped(TEXT_HEAP_MB, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', table.table_path], outFile);
    expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(outFile, 'utf8').split('\n');
    expect(lines[0]).toMatch(/^changes in \(start, \d+\]$/);
    const snapshots = lines.filter((l) => /^  \d+  seq \d+  /.test(l));
    expect(snapshots).toHaveLength(SNAPSHOTS);
    expect(snapshots.every((l) => /  append +included +\+500 -0  /.test(l))).toBe(true);
    expect(lines).toContain(`added files: ${table.data_files}, removed files: 0`);
    const files = lines.filter((l) => l.startsWith('  + ') || l.startsWith('  - '));
    expect(files).toHaveLength(table.data_files);
    expect(files.every((l) => /^  \+ data {13}[ \d]{8}\d rows  \//.test(l))).toBe(true);
    const paths = files.map((l) => l.slice(l.indexOf(' rows  ') + 7));
    expect(new Set(paths).size).toBe(table.data_files);
    // Files per day, from the partition directory in each path (Java names it after the partition).
    const perDay = new Array<number>(table.files_per_day.length).fill(0);
    for (const p of paths) perDay[dayIndex(/\/event_ts_day=(\d{4}-\d\d-\d\d)\//.exec(p)![1]!)]! += 1;
    expect(perDay).toEqual(table.files_per_day);
  }, 20 * 60_000);

  it(`text: the plan from every snapshot's own manifest list (where the newest list cannot answer) fits --max-old-space-size=${TEXT_HEAP_MB} too, and prints the same`, async () => {
    const cliFile = path.join(tmp, 'changes-cli.txt');
    const cli = await runCapped(TEXT_HEAP_MB, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', table.table_path], cliFile);
    expect(cli.code, cli.stderr).toBe(0);
    const ownFile = path.join(tmp, 'own-lists.txt');
    const r = await runCapped(TEXT_HEAP_MB, ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'cli', 'changes-full-plan.ts'), table.table_path, 'own-lists', '--text'], ownFile);
    expect(r.code, r.stderr).toBe(0);
    const own = fs.readFileSync(ownFile, 'utf8');
    expect(own.split('\n').filter((l) => l.startsWith('  + '))).toHaveLength(table.data_files);
    expect(own === fs.readFileSync(cliFile, 'utf8'), 'the same text as `ips changes`').toBe(true);
  }, 20 * 60_000);

  it(`the previous whole-document plan of the same range does not fit --max-old-space-size=${JSON_HEAP_MB}`, async () => {
    const r = await runCapped(JSON_HEAP_MB, ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'cli', 'changes-full-plan.ts'), table.table_path, 'whole'], path.join(tmp, 'full.json'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/heap out of memory|Allocation failed/);
  }, 20 * 60_000);

  it(`the previous plan that kept every file's bounds does not fit --max-old-space-size=${TEXT_HEAP_MB} for text`, async () => {
    const r = await runCapped(TEXT_HEAP_MB, ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'cli', 'changes-full-plan.ts'), table.table_path, 'kept-bounds', '--text'], path.join(tmp, 'kept.txt'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/heap out of memory|Allocation failed/);
  }, 20 * 60_000);
});
