// A reader that stops early (`ips changes … --rows | head`) closes the pipe under ips: that is
// no error of ips. The command must stop quietly with the status of a process a closed pipe
// stopped (141, as `yes | head` gives under `set -o pipefail`), print no error, and still clean
// up its scratch files.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-broken-pipe-'));

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('ips changes --rows into a pipe its reader closes', () => {
  it('exits 141 without an error message and leaves no scratch files', async () => {
    const child = spawn(process.execPath, [BIN, 'changes', FIXTURE, '--rows', '--net'], {
      cwd: REPO_ROOT, env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    // Close our end before anything comes, as a reader that is done early does: every write of
    // the child then fails with EPIPE. (Reading a first line first would race: the 660 rows fit
    // in what the pipe and our stream buffer take, so the child could finish before the close.)
    child.stdout.destroy();
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr, 'the rows were computed').toMatch(/rows: 660 inserted, 0 deleted/);
    expect(stderr).not.toMatch(/error \[/);
    expect(status).toBe(141);
    // ips's scratch directories (tsx, when bin/ips.js runs the sources, keeps a cache there too).
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('ips-'))).toEqual([]);
  }, 60_000);
});
