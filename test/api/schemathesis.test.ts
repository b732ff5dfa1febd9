// Schemathesis (property-based API testing from the OpenAPI document) against a real `ips serve`
// process: generated requests for every operation, with an admin token, a fixed number of
// examples per operation and phase (a count, not a time budget: a loaded machine takes longer
// rather than testing less); the check is `not_a_server_error`: no answer of 500 or more, whatever the input. The
// server is seeded with the playback fixture, a consumer and an open batch, and is kept off the
// network: tables only under a temporary directory (table_allowed_locations, so generated S3,
// REST and SQL locations are refused before anything is contacted), sinks only on loopback, no
// trigger loops. Schemathesis comes with the provisioned Python venv
// (scripts/provision/requirements.in).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, testEnv } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const TOKEN = 'schemathesis-admin-token-0123456789abcdef';
const EXAMPLES = Number(process.env.IPS_SCHEMATHESIS_EXAMPLES ?? 10);

let tmp: string;
let server: ReturnType<typeof spawn>;
let url: string;

async function api(method: string, p: string, body?: unknown): Promise<number> {
  const r = await fetch(`${url}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  await r.text();
  return r.status;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-schemathesis-'));
  const tables = path.join(tmp, 'tables');
  fs.cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), path.join(tables, 'playback'), { recursive: true });
  server = spawn(process.execPath, [BIN, 'serve', '--json'], {
    cwd: tmp,
    env: {
      ...process.env, DATABASE_URL: 'memory:', IPS_PORT: '0', IPS_DATA_DIR: path.join(tmp, 'data'), IPS_ADMIN_TOKEN: TOKEN, IPS_LOG_LEVEL: 'silent',
      IPS_TRIGGERS: 'off', IPS_TABLE_ALLOWED_LOCATIONS: tables, IPS_SINK_ALLOWED_HOSTS: '127.0.0.1', IPS_REMOTE_TIMEOUT_MS: '5000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  server.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      try {
        resolve((JSON.parse(out) as { url: string }).url);
      } catch { /* the start-up document is not complete yet */ }
    });
    server.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${stderr}`)));
  });
  expect(await api('POST', '/v1/tables', { name: 'playback', ref: { kind: 'directory', location: path.join(tables, 'playback') } })).toBe(201);
  expect(await api('POST', '/v1/consumers', { name: 'c1', tables: [{ table: 'playback' }] })).toBe(201);
  expect(await api('POST', '/v1/consumers/c1/batches', { instance_id: 'run-1', limits: { max_files: 1 } })).toBe(201);
  expect(await api('POST', '/v1/subscriptions', { name: 's1', consumer: 'c1', tables: ['playback'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' } })).toBe(201);
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('schemathesis against ips serve', () => {
  it(`generates ${EXAMPLES} requests per operation and phase: no 5xx`, async () => {
    const st = path.join(path.dirname(testEnv().python), 'schemathesis');
    expect(fs.existsSync(st), `${st} is missing: scripts/provision/requirements.txt installs it into the test venv`).toBe(true);
    const report = path.join(tmp, 'report.json');
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(st, [
        'run', `${url}/openapi.json`, '--checks', 'not_a_server_error', '-H', `Authorization: Bearer ${TOKEN}`,
        '--max-examples', String(EXAMPLES), '--workers', '2', '--request-timeout', '20', '--seed', '20261205',
        '--report', 'json', '--report-json-path', report,
      ], { cwd: tmp, env: { ...process.env, SCHEMATHESIS_HOOKS: '', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => { text += c.toString(); });
      child.stderr.on('data', (c: Buffer) => { text += c.toString(); });
      child.on('close', (code) => resolve({ code, text }));
    });
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as {
      test_cases: { generated: number; with_failures: number };
      failures: unknown[];
      errors: { title: string; count: number }[];
      operations: { tested: number; total: number };
    };
    const summary = out.text.split('\n').filter((l) => /SUMMARY|generated|passed|failed|error/i.test(l)).slice(-8).join('\n');
    process.stdout.write(`[schemathesis] ${r.test_cases.generated} test cases over ${r.operations.tested}/${r.operations.total} operations, ${r.test_cases.with_failures} with failures; errors ${JSON.stringify(r.errors)}\n`);
    expect(r.failures, `${summary}\n${out.text.slice(-4000)}`).toEqual([]);
    expect(r.test_cases.with_failures).toBe(0);
    expect(r.operations.tested).toBe(r.operations.total);
    expect(r.test_cases.generated).toBeGreaterThan(500);
    // Errors of schemathesis itself (a case it could not generate) are not the server's; a
    // connection error would be: the server went away.
    expect(r.errors.filter((e) => /connect|network|timeout|refused|reset/i.test(e.title)), out.text.slice(-4000)).toEqual([]);
    expect(server.exitCode).toBeNull();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  }, 300_000);
});
