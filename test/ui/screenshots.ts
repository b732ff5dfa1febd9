// `npm run screenshots`: regenerates the README's console screenshots (docs/images/console-*.png)
// from a small `ips demo playback` month, with the same harness as the browser tests. One extra
// consumer's webhook points at a closed port, so the overview shows what a problem looks like.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureReadmeScreenshots, launchBrowser, startConsoleDemo } from './harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'docs', 'images');

const provision = spawnSync('bash', [path.join(ROOT, 'scripts', 'provision', 'all.sh'), 'chromium'], { stdio: 'inherit' });
if (provision.status !== 0) process.exit(provision.status ?? 1);

const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-screenshots-'));
const demo = await startConsoleDemo(dir, { days: 10, rowsPerDay: 2000 });
try {
  const call = async (method: string, url: string, body: unknown) => {
    const res = await fetch(`${demo.url}${url}`, { method, headers: { authorization: `Bearer ${demo.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, any>>;
  };
  await call('POST', '/v1/consumers', { name: 'nightly_report', description: 'a report whose webhook is down', tables: [{ table: 'demo__playback_table', from: 'start' }] });
  await call('POST', '/v1/subscriptions', { name: 'nightly_report', consumer: 'nightly_report', tables: ['demo__playback_table'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'x' }, max_attempts: 1 });
  for (let i = 0; i < 300; i++) {
    const t = await (await fetch(`${demo.url}/v1/subscriptions/nightly_report/triggers?state=dead`, { headers: { authorization: `Bearer ${demo.adminToken}` } })).json() as { triggers: unknown[] };
    if (t.triggers.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  mkdirSync(OUT, { recursive: true });
  const browser = await launchBrowser();
  try {
    for (const f of await captureReadmeScreenshots(browser, demo.url, demo.adminToken, OUT)) {
      process.stdout.write(`${path.relative(ROOT, f)} (${Math.round(statSync(f).size / 1024)} KiB)\n`);
    }
  } finally {
    await browser.close();
  }
} finally {
  await demo.close();
  rmSync(dir, { recursive: true, force: true });
}
