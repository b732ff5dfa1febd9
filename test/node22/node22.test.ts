// ips on the next Node line. The AWS SDK requires Node 22 from January 2027 and some
// dependencies already declare it; the suite runs on Node 20, and this file runs the same code
// on Node 22 (provisioned from the npm registry by scripts/provision/node22.sh): the demo that
// `npm start` runs, checked by its own comparison with a full recomputation, and the unit tests.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT, testEnv } from '../setup/env.js';

const run = promisify(execFile);
let node22: string;
let dir: string;

beforeAll(() => {
  node22 = fs.readFileSync(path.join(testEnv().cacheDir, 'env', 'node22'), 'utf8').trim();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-node22-'));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('on Node 22', () => {
  test('the runtime is Node 22', async () => {
    expect((await run(node22, ['--version'])).stdout.trim()).toMatch(/^v22\./);
  });

  test('ips demo playback runs and both pipelines produce identical tables, equal to a recomputation', async () => {
    const out = await run(node22, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'demo', 'playback', '--json', '--days', '4', '--rows-per-day', '1500',
      '--profiles', '100', '--dir', path.join(dir, 'demo')], { cwd: dir, env: { ...process.env, DATABASE_URL: '' }, maxBuffer: 64 << 20, timeout: 300_000 });
    const report = JSON.parse(out.stdout) as { identical: boolean; events: string; checks: { differences_vs_recomputation: string }[] };
    expect(report.identical).toBe(true);
    expect(report.events).toBe(String(4 * 1500));
    expect(report.checks.length).toBeGreaterThan(0);
    for (const c of report.checks) expect(c.differences_vs_recomputation).toBe('0');
  }, 300_000);

  test('the unit tests pass', async () => {
    const report = path.join(dir, 'unit.json');
    // A nested vitest over test/unit only, with its own global setup, on the Node 22 binary.
    await run(node22, [path.join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/unit', '--reporter=json', `--outputFile=${report}`],
      { cwd: REPO_ROOT, env: { ...process.env, CI: '' }, maxBuffer: 64 << 20, timeout: 300_000 }).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`vitest on Node 22 failed:\n${(e.stderr ?? '').slice(-4000)}`);
    });
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { numTotalTests: number; numPassedTests: number; numFailedTests: number; numPendingTests: number };
    expect(r.numFailedTests).toBe(0);
    expect(r.numPendingTests).toBe(0);
    expect(r.numPassedTests).toBe(r.numTotalTests);
    expect(r.numTotalTests).toBeGreaterThan(50);
  }, 300_000);
});
