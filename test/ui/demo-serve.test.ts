// `ips demo playback --serve` as a user runs it: after the report it keeps its ips up, prints the
// console's URL with an admin token, the console opens on that URL in Chromium, and SIGTERM stops
// it cleanly.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { example } from '../docs/helpers.js';
import { launchBrowser } from './harness.js';

describe('ips demo playback --serve', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-demo-serve-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the README's command keeps the console up after the demo, with the URL and token it prints", async () => {
    // The README's command as written, on a smaller month, a free port and a scratch directory.
    const words = example('console').split('\n')[0]!.replace(/#.*$/, '').trim().split(/\s+/);
    expect(words.slice(0, 4)).toEqual(['ips', 'demo', 'playback', '--serve']);
    const env = { ...process.env };
    delete env['DATABASE_URL'];
    delete env['IPS_ADMIN_TOKEN'];
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'ips.js'), ...words.slice(1), '--days', '2', '--rows-per-day', '200', '--profiles', '20',
      '--lookback-days', '3', '--dir', path.join(dir, 'demo'), '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const line = await new Promise<RegExpExecArray>((resolve, reject) => {
        const t = setInterval(() => {
          const m = /The console: (http:\/\/127\.0\.0\.1:\d+)\/ui\/#token=([0-9a-f]+)/.exec(stdout);
          if (m) { clearInterval(t); resolve(m); }
          if (child.exitCode !== null) { clearInterval(t); reject(new Error(`the demo exited (${child.exitCode}): ${stderr}`)); }
        }, 100);
      });
      const [, base, token] = line;
      expect(stdout).toContain('incremental and lookback identical');
      // The API needs the printed token; the console's files are public and hold no data.
      expect((await fetch(`${base}/v1/overview`)).status).toBe(401);
      const o = await (await fetch(`${base}/v1/overview`, { headers: { authorization: `Bearer ${token}` } })).json() as { consumers: { name: string }[] };
      expect(o.consumers.map((c) => c.name).sort()).toEqual(['playback_daily', 'playback_daily_agg', 'playback_daily_agg_lookback', 'playback_daily_lookback']);
      const browser = await launchBrowser();
      try {
        const page = await browser.newPage();
        await page.goto(`${base}/ui/#token=${token}`);
        await page.waitForSelector('[data-view="overview"] [data-testid="consumers"]');
        expect(await page.locator('#whoami').textContent()).toBe('admin');
        // The token left the address bar (and history) once the page kept it.
        expect(new URL(page.url()).hash).toBe('#/');
      } finally {
        await browser.close();
      }
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 300_000);
});
