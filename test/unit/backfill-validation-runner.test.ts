// The runner every validation path shares (src/backfill/validation.ts): exit codes, the chunk's
// environment, output bounded to its tail however much the command prints, and a timeout that
// kills the command's whole process group (a child it started included).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runValidationCommand, validationEnv, VALIDATION_OUTPUT_CHARS } from '../../src/backfill/validation.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-validation-runner-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('runValidationCommand', () => {
  test('exit 0 passes, any other exit fails with its code and output', async () => {
    expect(await runValidationCommand('echo fine', { PATH: process.env['PATH'] }, 10)).toEqual({ passed: true, exitCode: 0, output: 'fine\n' });
    expect(await runValidationCommand('echo bad >&2; exit 3', { PATH: process.env['PATH'] }, 10)).toEqual({ passed: false, exitCode: 3, output: 'bad\n' });
  });

  test("the chunk's variables, and nothing the caller did not pass", async () => {
    const env = validationEnv('nov', { index: 2, range: { min: '2026-11-03', max: '2026-11-03', predicate: "d >= '2026-11-03'" }, outputs: { daily_out: 9007199254740993n }, batchId: 12345678901234567890n }, 4);
    expect(env).toEqual({
      IPS_BACKFILL: 'nov', IPS_BACKFILL_CHUNK: '2', IPS_BACKFILL_CHUNKS: '4', IPS_BATCH_ID: '12345678901234567890',
      IPS_BACKFILL_RANGE_MIN: '2026-11-03', IPS_BACKFILL_RANGE_MAX: '2026-11-03', IPS_BACKFILL_RANGE_PREDICATE: "d >= '2026-11-03'",
      IPS_BACKFILL_OUTPUT_DAILY_OUT: '9007199254740993',
    });
    const r = await runValidationCommand('env | sort', { PATH: process.env['PATH'], ...env }, 10);
    expect(r.output.split('\n').filter((l) => l && !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('_=')).sort())
      .toEqual([`PATH=${process.env['PATH']}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].sort());
  });

  test('output is kept to its last characters however much is printed', async () => {
    const r = await runValidationCommand("i=0; while [ $i -lt 2000 ]; do echo \"line $i 0123456789012345678901234567890123456789\"; i=$((i+1)); done; echo END", { PATH: process.env['PATH'] }, 30);
    expect(r.passed).toBe(true);
    expect(r.output.length).toBe(VALIDATION_OUTPUT_CHARS);
    expect(r.output.endsWith('line 1999 0123456789012345678901234567890123456789\nEND\n')).toBe(true);
  });

  test('a command past its timeout is killed with its children and fails', async () => {
    const marker = path.join(tmp, 'child-survived');
    const r = await runValidationCommand(`(sleep 2; touch '${marker}') & wait`, { PATH: process.env['PATH'] }, 1);
    expect(r).toEqual({ passed: false, exitCode: null, output: '\nvalidation timed out after 1 s and was killed' });
    // Had the child outlived the kill, it would have written the marker by now.
    await new Promise((res) => setTimeout(res, 3000));
    expect(existsSync(marker)).toBe(false);
  });

  test('a command that cannot start fails with the reason', async () => {
    const r = await runValidationCommand('true', { PATH: '/nonexistent' }, 5, path.join(tmp, 'no-such-dir'));
    expect(r.passed).toBe(false);
    expect(r.exitCode).toBeNull();
    expect(r.output).toMatch(/could not run the validation command: .*ENOENT/);
  });
});
