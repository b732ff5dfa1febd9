// Row-level changes hand the data and delete files a table's manifests name to the SQL engine
// (DuckDB) by path. Those paths are hostile input like the rest of the metadata: opening a FIFO
// blocks until a writer comes (DuckDB's reader then waits for ever), and a device or a directory
// is never a table's file. Each variant of the playback fixture replaces one data file of its
// head snapshot; `ips changes --rows --net` as a process must refuse it with NOT_A_FILE within
// seconds, and leave nothing on stdout (never a partial answer). The row budget holds the rows
// the manifests say the files hold, so a manifest entry whose record_count is not its file's
// row count is refused too (the playback fixture's manifests rewritten), as is one whose
// file_size_in_bytes is not its file's size, and a local data file larger than max_data_file_bytes.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { readParts, writeContainer } from '../setup/avro-rewrite.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-hostile-'));

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A data file live at the head snapshot (what `ips changes` lists as added over the whole history), under `dir`. */
function liveDataFile(dir: string): string {
  const out = execFileSync(process.execPath, [BIN, 'changes', FIXTURE, '--json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const first = (JSON.parse(out) as { added_files: { file_path: string }[] }).added_files[0]!.file_path;
  const rel = first.slice(first.indexOf('/data/') + 1);
  return path.join(dir, rel);
}

function variant(name: string, replace: (file: string) => void): string {
  const dir = path.join(root, name);
  fs.cpSync(FIXTURE, dir, { recursive: true });
  const victim = liveDataFile(dir);
  fs.rmSync(victim);
  replace(victim);
  return dir;
}

function rows(dir: string, env: Record<string, string> = {}): Promise<{ status: number | null; killed: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'changes', dir, '--rows', '--net'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    let killed = false;
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, 30_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, killed, stdout, stderr });
    });
  });
}

describe('ips changes --rows on data files that are not regular files', () => {
  it('the unchanged fixture gives its rows (so the variants fail for the file alone)', async () => {
    const r = await rows(variant('intact', (f) => fs.copyFileSync(liveDataFile(FIXTURE), f)));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBeGreaterThan(100);
  }, 60_000);

  const cases: [string, string, (file: string) => void][] = [
    ['a FIFO', 'a FIFO', (f) => execFileSync('mkfifo', [f])],
    ['a directory', 'a directory', (f) => fs.mkdirSync(f)],
    ['a symlink to /dev/zero', 'a device', (f) => fs.symlinkSync('/dev/zero', f)],
  ];
  it.each(cases)('%s: NOT_A_FILE within seconds, nothing on stdout', async (name, kind, replace) => {
    const dir = variant(name.replace(/\W+/g, '-'), replace);
    const t0 = performance.now();
    const r = await rows(dir);
    expect(r.killed, `still running after 30 s: ${r.stderr.slice(-400)}`).toBe(false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error \\[NOT_A_FILE\\]: \\S+\\.parquet is ${kind}, not a regular file`));
    expect(r.stdout).toBe('');
    expect(performance.now() - t0).toBeLessThan(20_000);
  }, 60_000);

  it('a local data file above max_data_file_bytes: FILE_TOO_LARGE, as for a staged S3 object', async () => {
    // The engine reads local files by path, without a byte limit of its own: the limit S3 objects
    // are staged under holds for local files too, checked on an open handle.
    const dir = variant('too-large', (f) => fs.copyFileSync(liveDataFile(FIXTURE), f));
    const smallest = Math.min(...fs.readdirSync(path.join(dir, 'data'), { recursive: true, encoding: 'utf8' })
      .filter((x) => x.endsWith('.parquet')).map((x) => fs.statSync(path.join(dir, 'data', x)).size));
    const r = await rows(dir, { IPS_MAX_DATA_FILE_BYTES: String(smallest - 1) });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error \\[FILE_TOO_LARGE\\]: \\S+\\.parquet has \\d+ bytes, more than the ${smallest - 1}-byte limit for a data file; a genuine one needs a larger max_data_file_bytes setting`));
    expect(r.stdout).toBe('');
    // The same table under the default limit gives its rows.
    expect((await rows(dir)).status).toBe(0);
  }, 60_000);

  /** Changes the live file's entries in every manifest of the copy. */
  const withEntry = (name: string, change: (df: { record_count: bigint; file_size_in_bytes: bigint }) => void): string => {
    const dir = variant(name, (f) => fs.copyFileSync(liveDataFile(FIXTURE), f));
    const rel = path.relative(dir, liveDataFile(dir));
    const meta = path.join(dir, 'metadata');
    let rewritten = 0;
    for (const m of fs.readdirSync(meta).filter((x) => /-m\d+\.avro$/.test(x))) {
      const parts = readParts(fs.readFileSync(path.join(meta, m)));
      let hit = false;
      for (const r of parts.records) {
        const df = r['data_file'] as { file_path: string; record_count: bigint; file_size_in_bytes: bigint };
        if (df.file_path.endsWith(`/${rel}`)) {
          change(df);
          hit = true;
        }
      }
      if (hit) {
        fs.writeFileSync(path.join(meta, m), writeContainer(parts, 'deflate'));
        rewritten++;
      }
    }
    expect(rewritten).toBeGreaterThan(0);
    return dir;
  };

  it('a record_count below the file\'s rows: INVALID_MANIFEST before any row is read', async () => {
    const r = await rows(withEntry('fewer-rows', (df) => { df.record_count = 1n; }));
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/error \[INVALID_MANIFEST\]: \S+\.parquet holds \d+ rows and its manifest entry says 1: /);
    expect(r.stdout).toBe('');
  }, 60_000);

  it.each([['smaller', -1n], ['larger', 1n]])('a file_size_in_bytes %s than the file: INVALID_MANIFEST (readers find the footer by it)', async (name, by) => {
    const r = await rows(withEntry(`size-${name}`, (df) => { df.file_size_in_bytes += by; }));
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(by < 0n
      ? /error \[INVALID_MANIFEST\]: \S+\.parquet: no Parquet footer ends at byte \d+ \(its file_size_in_bytes\): the table's metadata does not describe its files/
      : /error \[INVALID_MANIFEST\]: \S+\.parquet: the file ends before byte \d+, its file_size_in_bytes: the table's metadata does not describe its files/);
    expect(r.stdout).toBe('');
  }, 60_000);

  it('a record_count far above it: the row budget refuses the claim before anything is read', async () => {
    const r = await rows(withEntry('more-rows', (df) => { df.record_count = 10n ** 12n; }));
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/error \[ROW_BUDGET_EXCEEDED\]: .*need to read 1000000000\d{3} rows in 8 data files, above the budget/);
    expect(r.stdout).toBe('');
  }, 60_000);
});
