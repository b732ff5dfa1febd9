// Shared by the console's browser tests (test/ui/*.test.ts) and `npm run screenshots`: a small
// `ips demo playback` left running with an admin token, Debian's Chromium driven by
// playwright-core, and the README's screenshots.
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { runPlayback, type PlaybackResult } from '../../src/playback/runner.js';
import { parsePlaybackOptions } from '../../src/playback/model.js';
import type { RunningServer } from '../../src/api/server.js';

/** The Chromium that scripts/provision/chromium.sh recorded (or IPS_CHROMIUM_BIN). */
export function chromiumPath(): string {
  if (process.env['IPS_CHROMIUM_BIN']) return process.env['IPS_CHROMIUM_BIN'];
  const cache = process.env['IPS_CACHE_DIR'] || path.join(os.homedir(), '.cache', 'ips');
  const file = path.join(cache, 'env', 'chromium');
  if (!existsSync(file)) throw new Error(`${file} is missing: run scripts/provision/all.sh chromium (the test setup does)`);
  const bin = readFileSync(file, 'utf8').trim();
  if (!existsSync(bin)) throw new Error(`Chromium ${bin} (from ${file}) is gone: run scripts/provision/all.sh chromium`);
  return bin;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export interface ConsoleDemo {
  server: RunningServer;
  url: string;
  adminToken: string;
  result: PlaybackResult;
  close(): Promise<void>;
}

/** A small playback month (both pipelines, every run started by a trigger), its ips left up. */
export async function startConsoleDemo(dir: string, o: { days?: number; rowsPerDay?: number } = {}): Promise<ConsoleDemo> {
  const adminToken = crypto.randomBytes(24).toString('hex');
  const result = await runPlayback({
    options: parsePlaybackOptions({ days: o.days ?? 4, rowsPerDay: o.rowsPerDay ?? 400, profiles: 50, lookbackDays: 3, maxLatenessDays: 2 }),
    workDir: dir, adminToken, keepServer: true,
    env: { ...process.env, DATABASE_URL: undefined, IPS_DATABASE_URL: undefined },
  });
  const server = result.server!;
  return { server, url: server.url, adminToken, result, close: () => server.close() };
}

/** Opens the console signed in with `token` (handed over in the URL fragment, as `--serve` prints it). */
export async function openConsole(page: Page, baseUrl: string, token: string, opts: { poll?: number; hash?: string } = {}): Promise<void> {
  await page.goto(`${baseUrl}/ui/${opts.poll ? `?poll=${opts.poll}` : ''}#token=${token}`);
  await page.waitForSelector('[data-view="overview"]');
  if (opts.hash) {
    await page.evaluate((h) => { location.hash = h; }, opts.hash);
  }
}

export const README_SHOTS = [
  { file: 'console-overview.png', hash: '#/', ready: '[data-view="overview"]' },
  { file: 'console-consumer.png', hash: '#/consumers/playback_daily', ready: '[data-view="consumer"] [data-chart]' },
] as const;

/** The README's screenshots, at 1280×800 (the page's top: what an operator sees first). */
export async function captureReadmeScreenshots(browser: Browser, baseUrl: string, token: string, outDir: string): Promise<string[]> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  const files: string[] = [];
  try {
    await openConsole(page, baseUrl, token);
    for (const s of README_SHOTS) {
      await page.evaluate((h) => { location.hash = h; }, s.hash);
      await page.waitForSelector(s.ready);
      const file = path.join(outDir, s.file);
      await page.screenshot({ path: file, type: 'png' });
      files.push(file);
    }
  } finally {
    await ctx.close();
  }
  return files;
}
