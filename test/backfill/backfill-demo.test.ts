// `ips demo backfill` end to end, as a real CLI process: the playback month, a corrected stage 1
// re-applied to the newest days by one backfill (chunked by day, run through the subscription's
// webhook), stage 2 following through lineage. Once on the embedded default (PGlite, in-process
// ips, tables on local disk) and once on PostgreSQL + MinIO (a separate `ips serve` with its state
// in PostgreSQL and its ICDC tables on MinIO, the demo's tables on MinIO in a SQL catalog).
// Expected values come from outside the demo: dates and counts from its options, and PyIceberg
// + pyarrow recomputing both stages with the new logic from the raw events (backfill_demo_check.py).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT, runPython, testEnv } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';

const run = promisify(execFile);
const IPS = path.join(REPO_ROOT, 'bin', 'ips.js');
const DAYS = 6;
const ROWS = 1_500;
const PROFILES = 150;
const BACKFILL_DAYS = 4;
// Days that keep arriving while the backfill runs (their late rows land in the backfilled days).
const LIVE_DAYS = 2;
// The newest BACKFILL_DAYS days of a month from the demo's default start date.
const DATES = Array.from({ length: BACKFILL_DAYS }, (_, i) => new Date(Date.UTC(2026, 9, 1 + DAYS - BACKFILL_DAYS + i)).toISOString().slice(0, 10));
const RELEASE = DATES[0]!;

interface Stats { files: number; rows: string; bytes: string }
interface Check { table: string; rows: string; differences_vs_recomputation: string }
interface Report {
  events: string;
  warehouse: string;
  month_runs: number;
  logic_change: { console_millis_from: string };
  backfill: {
    name: string; command: string; status: string; complete: boolean; chunks: number;
    view: {
      chunks: { index: number; state: string; records: string; range: { min: string; max: string; predicate: string }; outputs: Record<string, string>; trigger: { state: string } | null }[];
      stages: { consumer: string; depth: number; chunks: { state: string }[] }[];
    };
  };
  before: { vs_original_logic: Check[]; vs_new_logic: Check[] };
  checks: Check[];
  identical: boolean;
  reread: Record<'playback_daily' | 'playback_daily_agg', { runs: number; backfill: Stats; full_rebuild: Stats }>;
  live_watermark_moved: boolean;
  live_days: number;
  live_batches: number;
}
interface PyCheck {
  source_rows: number; window_rows: number; window_rows_planned: number; millis_rows: number; daily_rows: number; agg_rows: number;
  daily_equals_truth: boolean; agg_equals_truth: boolean; daily_equals_original: boolean; first_differences: unknown[];
}

function checkReport(r: Report, py: PyCheck, liveDays: number): void {
  expect(BigInt(r.events)).toBe(BigInt((DAYS + liveDays) * ROWS));
  expect(r.month_runs).toBe(2 * DAYS);
  expect(r.live_days).toBe(liveDays);
  expect(r.live_batches).toBe(liveDays); // one live batch of stage 1 per new day
  if (liveDays > 0) expect(py.window_rows).toBeGreaterThan(py.window_rows_planned); // late rows of the new days landed in the window
  expect(r.logic_change.console_millis_from).toBe(RELEASE);
  // Before: the tables were right for the original logic and wrong for the corrected one.
  for (const c of r.before.vs_original_logic) expect(c.differences_vs_recomputation, c.table).toBe('0');
  for (const c of r.before.vs_new_logic) expect(BigInt(c.differences_vs_recomputation), c.table).toBeGreaterThan(0n);
  // One backfill, one chunk per day of the window, all delivered through the webhook subscription.
  expect(r.backfill.command).toContain(`--where 'event_date >= ${RELEASE} and event_date < `);
  expect(r.backfill.command).toContain('--chunk day');
  expect(r.backfill.status).toBe('complete');
  expect(r.backfill.complete).toBe(true);
  expect(r.backfill.view.chunks.map((c) => [c.range.min, c.range.max])).toEqual(DATES.map((d) => [d, d]));
  for (const c of r.backfill.view.chunks) {
    expect(c.state).toBe('committed');
    expect(c.trigger?.state).toBe('delivered');
    expect(Object.keys(c.outputs)).toEqual(['demo__playback_daily_table']);
  }
  expect(r.backfill.view.stages.map((s) => [s.consumer, s.depth])).toEqual([['playback_daily', 0], ['playback_daily_agg', 1]]);
  expect(r.backfill.view.stages[1]!.chunks.every((c) => c.state === 'propagated')).toBe(true);
  // After: both tables equal the recomputation with the new logic (the live days' rows included),
  // and only the live batches moved the live watermark.
  expect(r.identical).toBe(true);
  for (const c of r.checks) {
    expect(c.differences_vs_recomputation, c.table).toBe('0');
    expect(BigInt(c.rows), c.table).toBeGreaterThan(0n);
  }
  expect(r.live_watermark_moved).toBe(false);
  // What stage 1 re-read: the chunks' ICDC files hold the window's partitions as planned, i.e.
  // exactly the month's events dated in the window (PyIceberg's count), plus the daily rows of
  // the partitions each chunk corrects; a full rebuild reads every event.
  expect(r.reread.playback_daily.runs).toBe(BACKFILL_DAYS);
  expect(BigInt(r.reread.playback_daily.backfill.rows)).toBeGreaterThan(BigInt(py.window_rows_planned));
  expect(BigInt(r.reread.playback_daily.backfill.rows)).toBeLessThanOrEqual(BigInt(py.window_rows_planned + py.daily_rows));
  expect(r.backfill.view.chunks.reduce((n, c) => n + Number(c.records), 0)).toBe(py.window_rows_planned);
  expect(BigInt(r.reread.playback_daily.full_rebuild.rows)).toBe(BigInt((DAYS + liveDays) * ROWS));
  expect(r.reread.playback_daily_agg.runs).toBeGreaterThanOrEqual(1);
  expect(BigInt(r.reread.playback_daily_agg.full_rebuild.rows)).toBe(BigInt(py.daily_rows));
  // PyIceberg's own recomputation with the new logic equals both tables.
  expect(py.source_rows).toBe((DAYS + liveDays) * ROWS);
  expect(py.millis_rows).toBeGreaterThan(0);
  expect(py.daily_equals_truth, JSON.stringify(py.first_differences)).toBe(true);
  expect(py.agg_equals_truth, JSON.stringify(py.first_differences)).toBe(true);
  expect(py.daily_equals_original).toBe(false);
  expect(String(py.daily_rows)).toBe(r.checks.find((c) => c.table === 'playback_daily_table')!.rows);
  expect(String(py.agg_rows)).toBe(r.checks.find((c) => c.table === 'playback_daily_agg_table')!.rows);
}

const DEMO_ARGS = ['demo', 'backfill', '--json', '--days', String(DAYS), '--rows-per-day', String(ROWS), '--profiles', String(PROFILES), '--backfill-days', String(BACKFILL_DAYS)];

describe('ips demo backfill on the embedded default', () => {
  let dir: string;
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the window is re-run by one backfill, stage 2 follows, both tables equal a recomputation with the new logic', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-demo-'));
    const out = await run(process.execPath, [IPS, ...DEMO_ARGS, '--live-days', String(LIVE_DAYS), '--dir', path.join(dir, 'demo')],
      { cwd: dir, env: { ...process.env, DATABASE_URL: '' }, maxBuffer: 64 << 20, timeout: 600_000 });
    expect(out.stderr).toBe(''); // --json: nothing but the report
    const report = JSON.parse(out.stdout) as Report;
    const py = JSON.parse(await runPython('test/backfill/backfill_demo_check.py', ['--release', RELEASE, '--hadoop', report.warehouse, '--month-events', String(DAYS * ROWS)], { timeoutMs: 300_000 })) as PyCheck;
    checkReport(report, py, LIVE_DAYS);
  }, 660_000);

  test('in the terminal: a line per day, the backfill command, its progress per stage, the view and the report', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-demo-text-'));
    try {
      const out = await run(process.execPath, [IPS, 'demo', 'backfill', '--days', '3', '--rows-per-day', '300', '--profiles', '30', '--backfill-days', '2', '--dir', path.join(d, 'demo')],
        { cwd: d, env: { ...process.env, DATABASE_URL: '' }, maxBuffer: 16 << 20, timeout: 600_000 });
      expect(out.stderr).toMatch(/^day 1\/3 2026-10-01: \+300 events/m);
      expect(out.stderr).toContain("$ ips backfills create fix_console_ms --consumer playback_daily --table demo__playback_table --where 'event_date >= 2026-10-02 and event_date < 2026-10-04' --chunk day --concurrency 2");
      // Progress lines, from nothing done to complete, with a bar per stage.
      expect(out.stderr).toMatch(/^backfill fix_console_ms running: [^·]+ · playback_daily \[[#.]{14}\] [01]\/2 · playback_daily_agg \[[#.]{14}\] [012]\/2$/m);
      expect(out.stderr).toMatch(/^backfill fix_console_ms complete: 2 committed · playback_daily \[#{14}\] 2\/2 · playback_daily_agg \[#{14}\] 2\/2$/m);
      expect(out.stdout).toContain('fix_console_ms  complete');
      expect(out.stdout).toMatch(/^playback_daily +backfill chunks +2 /m);
      expect(out.stdout).toMatch(/^ +full rebuild +1 /m);
      expect(out.stdout).toContain('✓ playback_daily_table: equals a one-shot recomputation with the new logic');
      expect(out.stdout).toContain('✓ playback_daily_agg_table: equals a one-shot recomputation with the new logic');
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  }, 660_000);

  test('bad backfill knobs are refused before the directory is touched', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-demo-opts-'));
    try {
      const bad = async (args: string[]) => run(process.execPath, [IPS, 'demo', 'backfill', '--json', '--dir', path.join(d, 'x'), ...args])
        .then(() => null, (e: { code: number; stderr: string }) => JSON.parse(e.stderr) as { error: { code: string; message: string } });
      expect((await bad(['--days', '5', '--backfill-days', '6']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--backfill-days must be 1..5') });
      expect((await bad(['--lookback-days', '7', '--backfill-days', '6', '--live-days', '2']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--backfill-days plus --live-days must be at most --lookback-days (7)') });
      expect((await bad(['--concurrency', '11']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--concurrency must be 1..10') });
      expect(fs.existsSync(path.join(d, 'x'))).toBe(false);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('ips demo backfill on PostgreSQL + MinIO, against a separate ips serve', () => {
  const env = testEnv();
  const admin = `admin-${crypto.randomBytes(12).toString('hex')}`;
  const prefix = `backfill-demo-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const warehouse = `s3://${env.s3Bucket}/${prefix}/demo`;
  const s3Env = { AWS_ACCESS_KEY_ID: env.s3AccessKey, AWS_SECRET_ACCESS_KEY: env.s3SecretKey, AWS_REGION: env.s3Region };
  let tmp: string;
  let server: ChildProcess | undefined;
  let serverErr = '';
  let url: string;
  let stateDb: Awaited<ReturnType<typeof createPgDatabase>>;
  let catalogDb: Awaited<ReturnType<typeof createPgDatabase>>;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-demo-s3-'));
    stateDb = await createPgDatabase('backfill_demo_state');
    catalogDb = await createPgDatabase('backfill_demo_catalog');
    server = spawn(process.execPath, [IPS, 'serve', '--port', '0', '--json'], {
      cwd: tmp,
      env: {
        ...process.env, ...s3Env,
        DATABASE_URL: stateDb.url, IPS_WAREHOUSE: `s3://${env.s3Bucket}/${prefix}/icdc`, IPS_ADMIN_TOKEN: admin,
        IPS_DATA_DIR: path.join(tmp, 'ips-data'), IPS_HOST: '127.0.0.1', IPS_TICK_MS: '50',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stderr!.on('data', (d: Buffer) => { serverErr = (serverErr + d.toString()).slice(-20_000); });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        try {
          resolve((JSON.parse(out) as { url: string }).url);
        } catch { /* not complete yet */ }
      });
      server!.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${serverErr}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    await stateDb?.drop();
    await catalogDb?.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the same demo, with its tables and the backfill ICDC tables on MinIO', async () => {
    const out = await run(process.execPath, [IPS, ...DEMO_ARGS, '--live-days', '1', '--dir', path.join(tmp, 'demo'), '--ips-url', url, '--warehouse', warehouse,
      '--catalog', catalogDb.url, '--s3-endpoint', env.s3Endpoint, '--callback-host', '127.0.0.1'],
    { cwd: tmp, env: { ...process.env, ...s3Env, IPS_TOKEN: admin }, maxBuffer: 64 << 20, timeout: 600_000 })
      .catch((e: { stdout: string; stderr: string }) => { throw new Error(`demo failed:\n${e.stderr}\n${e.stdout}\n--- ips serve ---\n${serverErr}`); });
    const report = JSON.parse(out.stdout) as Report;
    expect(report.warehouse).toBe(warehouse);
    const py = JSON.parse(await runPython('test/backfill/backfill_demo_check.py', [
      '--release', RELEASE, '--catalog-uri', catalogDb.url, '--catalog-name', 'ips_demo', '--warehouse', warehouse, '--month-events', String(DAYS * ROWS),
    ], { timeoutMs: 300_000 })) as PyCheck;
    checkReport(report, py, 1);
    // The backfill's chunks were handed out from its own ICDC table, written by ips serve on MinIO.
    const b = await fetch(`${url}/v1/backfills/fix_console_ms`, { headers: { authorization: `Bearer ${admin}` } });
    const view = await b.json() as { chunks: { batch_id: string }[] };
    const batch = await (await fetch(`${url}/v1/batches/${view.chunks[0]!.batch_id}`, { headers: { authorization: `Bearer ${admin}` } })).json() as { tables: { icdc: { table: string; metadata_location: string } }[] };
    expect(batch.tables[0]!.icdc.metadata_location.startsWith(`s3://${env.s3Bucket}/${prefix}/icdc/`)).toBe(true);
    expect(batch.tables[0]!.icdc.table).toContain('__backfill__fix_console_ms');
  }, 660_000);
});
