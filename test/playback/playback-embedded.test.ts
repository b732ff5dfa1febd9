// `ips demo playback` (what `npm start` runs) end to end on the embedded default: a real process,
// PGlite state, tables in the Hadoop layout on local disk, runs started by ips's webhook triggers.
// Expected values come from outside the demo: event counts from its options, and PyIceberg
// reading the tables ips wrote and aggregating the events itself.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';

const run = promisify(execFile);
const IPS = path.join(REPO_ROOT, 'bin', 'ips.js');
const DAYS = 6;
const ROWS = 2_000;
const PROFILES = 200;

interface Side { consumer: string; runs: number; files: number; rows: string; bytes: string; wall_ms: number; cpu_ms: number; ips_cpu_ms: number }
interface Report {
  events: string;
  identical: boolean;
  stages: { stage: string; incremental: Side; lookback: Side; ratio: Record<string, number> }[];
  checks: { table: string; rows: string; differences_vs_lookback: string; differences_vs_recomputation: string }[];
  warehouse: string;
  duplicate_deliveries: number;
  trigger_delay: { runs: number; p50_ms: number; p99_ms: number; max_ms: number };
  engine_threads: number;
  cpu_by_phase: { phase: string; ms_per_run: Record<string, number> }[];
  ips_database: { driver: string; batches: number; statements_per_batch: number; transactions_per_batch: number; statements: number; round_trips: number; transactions: number };
}

let dir: string;
let report: Report;
let stderr: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-playback-'));
  const out = await run(process.execPath, [IPS, 'demo', 'playback', '--json', '--days', String(DAYS), '--rows-per-day', String(ROWS),
    '--profiles', String(PROFILES), '--dir', path.join(dir, 'demo'), '--engine-threads', '1'], { cwd: dir, env: { ...process.env, DATABASE_URL: '' }, maxBuffer: 64 << 20, timeout: 600_000 });
  report = JSON.parse(out.stdout) as Report;
  stderr = out.stderr;
}, 660_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('ips demo playback on the embedded default', () => {
  test('both pipelines ran every day and produced identical tables, equal to a full recomputation', () => {
    expect(stderr).toBe(''); // --json: nothing but the report
    expect(report.identical).toBe(true);
    expect(BigInt(report.events)).toBe(BigInt(DAYS * ROWS));
    for (const c of report.checks) {
      expect(c.differences_vs_lookback).toBe('0');
      expect(c.differences_vs_recomputation).toBe('0');
      expect(BigInt(c.rows)).toBeGreaterThan(0n);
    }
    for (const s of report.stages.filter((x) => x.stage !== 'total')) {
      expect(s.incremental.runs).toBe(DAYS);
      expect(s.lookback.runs).toBe(DAYS);
    }
    // Every run's trigger was timed from the commit that changed its source table (no latency
    // bound here: that is the trigger-latency benchmark's job).
    expect(report.trigger_delay.runs).toBe(4 * DAYS);
    expect(report.trigger_delay.p50_ms).toBeGreaterThan(0);
    expect(report.trigger_delay.max_ms).toBeGreaterThanOrEqual(report.trigger_delay.p99_ms);
    // The embedded database's counts over the days: every batch was stored, its trigger claimed
    // for delivery and the batch committed, each in a transaction of its own; PGlite counts a
    // transaction's BEGIN and COMMIT among the statements, and a statement is one call.
    const d = report.ips_database;
    expect(d).toMatchObject({ driver: 'pglite', batches: 4 * DAYS });
    expect(d.transactions).toBeGreaterThanOrEqual(3 * d.batches);
    expect(d.statements).toBeGreaterThan(2 * d.transactions);
    expect(d.round_trips).toBe(d.statements);
    expect(d.statements_per_batch).toBeCloseTo(d.statements / d.batches, 1);
  });

  test('what each pipeline read follows from the workload, and the incremental one read less', () => {
    const daily = report.stages.find((s) => s.stage === 'playback_daily')!;
    // The lookback stage 1 reads every event of its window: on day k, min(k, 14) days of events.
    const windowed = Array.from({ length: DAYS }, (_, k) => Math.min(k + 1, 14) * ROWS).reduce((a, b) => a + b, 0);
    expect(BigInt(daily.lookback.rows)).toBe(BigInt(windowed));
    // The incremental stage 1 reads each event once through the ICDC table, plus the daily
    // partitions the late rows force it to rewrite.
    expect(BigInt(daily.incremental.rows)).toBeGreaterThanOrEqual(BigInt(DAYS * ROWS));
    const total = report.stages.find((s) => s.stage === 'total')!;
    expect(BigInt(total.incremental.rows)).toBeLessThan(BigInt(total.lookback.rows));
    expect(total.ratio['rows']).toBeCloseTo(Number(total.incremental.rows) / Number(total.lookback.rows), 6);
  });

  test('the report says where each run\'s CPU went, by phase, and the engine\'s threads', () => {
    expect(report.engine_threads).toBe(1);
    const phase = (name: string) => report.cpu_by_phase.find((p) => p.phase.startsWith(name))!.ms_per_run;
    for (const s of report.stages.filter((x) => x.stage !== 'total')) {
      for (const side of [s.incremental, s.lookback]) {
        // The run's CPU per run is the stage table's, computed from the same runs by another path.
        expect(phase('run')[side.consumer]).toBeCloseTo(side.cpu_ms / side.runs, 0);
        // Every run wrote its target through the engine and committed it, and committed its batch.
        expect(phase('engine write (COPY)')[side.consumer]).toBeGreaterThan(0);
        expect(phase('table commit')[side.consumer]).toBeGreaterThan(0);
        expect(phase('ips batch commit')[side.consumer]).toBeGreaterThan(0);
        // The phases never add up to more than the run (nested phases count once).
        const sum = report.cpu_by_phase.filter((p) => !p.phase.startsWith('run') && !p.phase.startsWith('other')).reduce((n, p) => n + p.ms_per_run[side.consumer]!, 0);
        expect(sum).toBeLessThanOrEqual(phase('run')[side.consumer]! + 0.5);
      }
      // ips's work for each consumer's batches is measured apart from its runs, and the CPU ratio
      // counts the incremental side's.
      expect(s.incremental.ips_cpu_ms).toBeGreaterThan(0);
      expect(s.lookback.ips_cpu_ms).toBeGreaterThan(0);
      expect(s.ratio['cpu']).toBeCloseTo((s.incremental.cpu_ms + s.incremental.ips_cpu_ms) / s.lookback.cpu_ms, 6);
      // Only the incremental pipeline reads the ICDC table ips hands over.
      expect(phase('ICDC metadata')[s.incremental.consumer]).toBeGreaterThan(0);
      expect(phase('ICDC metadata')[s.lookback.consumer]).toBe(0);
    }
  });

  test('PyIceberg reads the tables ips wrote, and its own aggregation of the events equals both pipelines', async () => {
    const wh = report.warehouse;
    const out = await runPythonCode(String.raw`
import json, sys, os
from pyiceberg.table import StaticTable

def load(ident):
    ns, name = ident.split(".")
    meta = os.path.join(sys.argv[1], ns, name, "metadata")
    version = open(os.path.join(meta, "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(meta, f"v{version}.metadata.json")).scan().to_arrow()

events = load("demo.playback_table")
daily = events.group_by(["event_date", "profile_id", "title_id"]).aggregate([("event_id", "count"), ("watch_seconds", "sum")])
agg = daily.group_by(["event_date", "profile_id"]).aggregate([("title_id", "count_distinct"), ("event_id_count", "sum"), ("watch_seconds_sum", "sum")])
def rows(t, cols):
    return sorted(tuple(str(v) for v in r) for r in zip(*[t.column(c).to_pylist() for c in cols]))
expected = rows(agg, ["event_date", "profile_id", "title_id_count_distinct", "event_id_count_sum", "watch_seconds_sum_sum"])
result = {"events": events.num_rows}
for ns in ["demo", "lookback"]:
    t = load(ns + ".playback_daily_agg_table")
    result[ns] = rows(t, ["event_date", "profile_id", "titles", "plays", "watch_seconds"]) == expected
    result[ns + "_rows"] = t.num_rows
result["expected_rows"] = len(expected)
print(json.dumps(result))
`, [wh]);
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(r['events']).toBe(DAYS * ROWS);
    expect(r['demo']).toBe(true);
    expect(r['lookback']).toBe(true);
    expect(r['demo_rows']).toBe(r['expected_rows']);
  });
});

describe('ips demo playback refuses bad input before doing anything', () => {
  test('a directory it did not make is never emptied', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-playback-mine-'));
    fs.writeFileSync(path.join(d, 'precious.txt'), 'keep me');
    const err = await run(process.execPath, [IPS, 'demo', 'playback', '--days', '1', '--dir', d]).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/INVALID_ARGUMENT.*was not made by ips demo/);
    expect(fs.readFileSync(path.join(d, 'precious.txt'), 'utf8')).toBe('keep me');
    fs.rmSync(d, { recursive: true, force: true });
  });

  test('options are validated with messages that say what to do', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-playback-opts-'));
    const bad = async (args: string[]) => run(process.execPath, [IPS, 'demo', 'playback', '--json', '--dir', path.join(d, 'x'), ...args])
      .then(() => null, (e: { code: number; stderr: string }) => JSON.parse(e.stderr) as { error: { code: string; message: string } });
    expect((await bad(['--days', 'many']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--days must be a whole number') });
    expect((await bad(['--days', '0']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('days') });
    expect((await bad(['--late-fraction', '0.9']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('lateFraction') });
    expect((await bad(['--engine-threads', '0']))?.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--engine-threads must be 1..64') });
    fs.rmSync(d, { recursive: true, force: true });
  });
});
