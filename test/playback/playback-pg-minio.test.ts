// `ips demo playback` by configuration alone (the docker-compose `demo` service's command) against the real PostgreSQL and MinIO the test
// setup provides (the docker-compose stack's services): a separate `ips serve` process with its
// state in PostgreSQL and its ICDC tables on MinIO, the demo as a CLI process with its tables on
// MinIO in a SQL catalog on PostgreSQL. Afterwards PyIceberg, with no ips code involved, loads
// the tables from that catalog and checks them against its own aggregation of the raw events.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, runPython, testEnv } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const DAYS = 5;
const ROWS_PER_DAY = 3000;
const PROFILES = 300;
const LOOKBACK_DAYS = 14; // the demo's default window

interface Side { consumer: string; runs: number; files: number; rows: string; bytes: string; wall_ms: number }
interface Report {
  identical: boolean;
  events: string;
  warehouse: string;
  stages: { stage: string; incremental: Side; lookback: Side }[];
  checks: { table: string; rows: string; differences_vs_lookback: string; differences_vs_recomputation: string }[];
}
interface PyCheck {
  tables: Record<string, { metadata_location: string; location: string; rows: number; data_files: string[] }>;
  source_rows: number;
  truth_rows: number;
  incremental_rows: number;
  lookback_rows: number;
  incremental_equals_lookback: boolean;
  incremental_equals_truth: boolean;
  lookback_equals_truth: boolean;
  first_differences: unknown[];
}

/** Runs a process to its end; resolves with its exit code and output. */
function run(argv: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('ips demo playback on PostgreSQL + MinIO, by configuration alone', () => {
  const env = testEnv();
  const prefix = `playback-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const warehouse = `s3://${env.s3Bucket}/${prefix}/demo`;
  let tmp: string;
  let server: ChildProcess | undefined;
  let serverErr = '';
  let url: string;
  let stateDb: Awaited<ReturnType<typeof createPgDatabase>>;
  let catalogDb: Awaited<ReturnType<typeof createPgDatabase>>;
  const s3Env = { AWS_ACCESS_KEY_ID: env.s3AccessKey, AWS_SECRET_ACCESS_KEY: env.s3SecretKey, AWS_REGION: env.s3Region };

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-playback-s3-'));
    stateDb = await createPgDatabase('playback_state');
    catalogDb = await createPgDatabase('playback_catalog');
    // The docker-compose `ips` service's configuration: state in PostgreSQL, ICDC tables on MinIO.
    server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json'], {
      cwd: tmp,
      env: {
        ...process.env, ...s3Env,
        DATABASE_URL: stateDb.url, IPS_WAREHOUSE: `s3://${env.s3Bucket}/${prefix}/icdc`, IPS_ADMIN_TOKEN: ADMIN,
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
        } catch { /* the JSON is not complete yet */ }
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
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('both pipelines agree, read what they should, and the tables are on MinIO in the SQL catalog', async () => {
    // The docker-compose `demo` service's command, with the stack's host names replaced by this
    // test's servers: the configuration users run is the one tested.
    const compose = parseYaml(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: { demo: { command: string[]; environment: Record<string, string> } };
    };
    const local: Record<string, string> = {
      '--dir': path.join(tmp, 'demo'), '--ips-url': url, '--warehouse': warehouse, '--catalog': catalogDb.url,
      '--s3-endpoint': env.s3Endpoint, '--callback-host': '127.0.0.1',
    };
    const [sub, verb, ...flags] = compose.services.demo.command;
    expect([sub, verb]).toEqual(['demo', 'playback']);
    expect(flags.map((f) => f.split('=')[0]).sort()).toEqual(Object.keys(local).sort());
    expect(Object.keys(compose.services.demo.environment).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_REGION', 'AWS_SECRET_ACCESS_KEY', 'IPS_TOKEN']);
    const demo = await run([
      BIN, sub!, verb!, ...flags.map((f) => `${f.split('=')[0]}=${local[f.split('=')[0]!]}`),
      '--json', '--days', String(DAYS), '--rows-per-day', String(ROWS_PER_DAY), '--profiles', String(PROFILES),
    ], { ...process.env, ...s3Env, IPS_TOKEN: ADMIN }, 480_000);
    expect(demo.code, `demo failed:\n${demo.stderr}\n${demo.stdout}\n--- ips serve ---\n${serverErr}`).toBe(0);
    const report = JSON.parse(demo.stdout) as Report;

    expect(report.warehouse).toBe(warehouse);
    expect(report.identical).toBe(true);
    for (const c of report.checks) {
      expect(c.differences_vs_lookback, c.table).toBe('0');
      expect(c.differences_vs_recomputation, c.table).toBe('0');
      expect(BigInt(c.rows), c.table).toBeGreaterThan(0n);
    }
    expect(BigInt(report.events)).toBe(BigInt(DAYS * ROWS_PER_DAY));
    const byStage = (s: string) => report.stages.find((x) => x.stage === s)!;
    for (const s of ['playback_daily', 'playback_daily_agg']) {
      expect(byStage(s).incremental.runs, `${s} incremental runs`).toBe(DAYS);
      expect(byStage(s).lookback.runs, `${s} lookback runs`).toBe(DAYS);
    }
    // The source gets ROWS_PER_DAY rows a day, each at most maxLatenessDays (13) old, partitioned
    // by day: the lookback stage 1 of day k reads every file of days k-13..k, i.e. all rows
    // appended so far while k < 14: min(k+1, 14) days of rows.
    let expectedLookbackRows = 0;
    for (let k = 0; k < DAYS; k++) expectedLookbackRows += Math.min(k + 1, LOOKBACK_DAYS) * ROWS_PER_DAY;
    expect(BigInt(byStage('playback_daily').lookback.rows)).toBe(BigInt(expectedLookbackRows));
    // Incremental stage 1 reads at least each new event once (its ICDC files) plus the daily files it rewrites.
    expect(BigInt(byStage('playback_daily').incremental.rows)).toBeGreaterThanOrEqual(BigInt(DAYS * ROWS_PER_DAY));

    // Independently: PyIceberg through the SQL catalog on PostgreSQL, S3 FileIO to MinIO.
    const out = await runPython('test/playback/playback_check.py', [
      '--catalog-uri', catalogDb.url, '--catalog-name', 'ips_demo', '--warehouse', warehouse,
    ], { timeoutMs: 300_000 });
    const py = JSON.parse(out) as PyCheck;
    for (const [ident, t] of Object.entries(py.tables)) {
      expect(t.metadata_location.startsWith(`${warehouse}/`), `${ident}: ${t.metadata_location}`).toBe(true);
      expect(t.data_files.length, ident).toBeGreaterThan(0);
      for (const f of t.data_files) expect(f.startsWith(`${warehouse}/`), `${ident}: ${f}`).toBe(true);
    }
    expect(py.source_rows).toBe(DAYS * ROWS_PER_DAY);
    expect(py.truth_rows).toBeGreaterThan(0);
    expect(py.incremental_rows).toBe(py.truth_rows);
    expect(py.lookback_rows).toBe(py.truth_rows);
    expect(py.incremental_equals_lookback, JSON.stringify(py.first_differences)).toBe(true);
    expect(py.incremental_equals_truth, JSON.stringify(py.first_differences)).toBe(true);
    expect(py.lookback_equals_truth).toBe(true);
    // The demo's own check counted the same aggregate rows.
    expect(report.checks.find((c) => c.table === 'playback_daily_agg_table')!.rows).toBe(String(py.truth_rows));

    // ips serve wrote its ICDC tables (one per incremental consumer and source table) to its warehouse on MinIO.
    const s3 = new S3Client({
      endpoint: env.s3Endpoint, region: env.s3Region, forcePathStyle: true,
      credentials: { accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey },
    });
    try {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: env.s3Bucket, Prefix: `${prefix}/icdc/`, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
        token = page.NextContinuationToken;
      } while (token);
      const metadataFiles = keys.filter((k) => k.endsWith('.metadata.json'));
      for (const consumer of ['playback_daily', 'playback_daily_agg']) {
        expect(metadataFiles.some((k) => k.includes(`/${consumer}__`)), `ICDC metadata of ${consumer} under s3://${env.s3Bucket}/${prefix}/icdc: ${keys.slice(0, 10).join(', ')}`).toBe(true);
      }
    } finally {
      s3.destroy();
    }
  }, 600_000);
});
