// The web console in real headless Chromium (Debian's, driven by playwright-core) over a real
// `ips demo playback` month left running: every view renders the demo's data, the retry button
// revives a dead trigger and its batch reaches a real webhook receiver, a consumer's token sees
// nothing of another consumer (page text and every API response it triggered), no browser
// console errors, no horizontal overflow at 1280×800 and at a phone's width, and a console
// polling fast keeps the server's connections and heap flat.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, testEnv } from '../setup/env.js';
import { STAGES } from '../../src/playback/runner.js';
import { ipsName, TABLES } from '../../src/playback/model.js';
import { captureReadmeScreenshots, launchBrowser, openConsole, startConsoleDemo, type ConsoleDemo } from './harness.js';

const DAYS = 4;
const ROWS_PER_DAY = 400;

/** A webhook receiver that answers 503 until told to work, and keeps what it was sent. */
class FlakyReceiver {
  failing = true;
  readonly received: { batch_id: string; consumer: string }[] = [];
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (this.failing) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('down for maintenance');
        return;
      }
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { batch_id: string; consumer: string } };
      this.received.push(event.data);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** The current snapshot of a table, read from its metadata files as the demo's writer left them (not through ips). */
function headFromFiles(warehouse: string, identifier: string): string {
  const dir = path.join(warehouse, ...identifier.split('.'), 'metadata');
  const version = readFileSync(path.join(dir, 'version-hint.text'), 'utf8').trim();
  const text = readFileSync(path.join(dir, `v${version}.metadata.json`), 'utf8');
  return /"current-snapshot-id"\s*:\s*(\d+)/.exec(text)![1]!;
}

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('web console (real Chromium)', () => {
  let dir: string;
  let demo: ConsoleDemo;
  let browser: Browser;
  let receiver: FlakyReceiver;
  let consumerToken: string;
  let deadTrigger: { id: string; batch_id: string };
  const consoleErrors: string[] = [];

  const call = async (method: string, url: string, body?: unknown, token = demo.adminToken): Promise<any> => {
    const res = await fetch(`${demo.url}${url}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  /** A page of an admin context whose browser console errors fail the run. */
  async function adminPage(viewport = { width: 1280, height: 800 }): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ viewport });
    const page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`); });
    page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
    await openConsole(page, demo.url, demo.adminToken);
    return { ctx, page };
  }

  async function go(page: Page, hash: string, ready: string): Promise<void> {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForSelector(ready);
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ips-ui-'));
    demo = await startConsoleDemo(dir, { days: DAYS, rowsPerDay: ROWS_PER_DAY });
    browser = await launchBrowser();
    consumerToken = (await call('POST', '/v1/consumers/playback_daily/tokens', { description: 'console test' })).token;

    // A backfill of a probe consumer: three daily chunks, the first pulled and committed by hand.
    const source = ipsName(TABLES.source);
    // It declares the incremental daily table as its output, so the backfill follows its chunks
    // to that table's reader, playback_daily_agg (stage 1).
    await call('POST', '/v1/consumers', { name: 'console_probe', tables: [{ table: source, from: 'now' }], outputs: [ipsName(TABLES.incremental.daily)] });
    await call('POST', '/v1/backfills', { name: 'probe_refill', consumer: 'console_probe', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04', chunk: 'day' });
    const chunk = await call('POST', '/v1/backfills/probe_refill/batches', { instance_id: 'probe-run-0' });
    await call('POST', `/v1/batches/${chunk.batch.id}/commit`, {});

    // A subscription whose webhook is down: one attempt, so its first trigger dies.
    receiver = new FlakyReceiver();
    const hook = await receiver.listen();
    await call('POST', '/v1/consumers', { name: 'console_hook', tables: [{ table: source, from: 'start' }] });
    await call('POST', '/v1/subscriptions', { name: 'console_hook', consumer: 'console_hook', tables: [source], sink: { type: 'webhook', url: hook, secret: 'hook-secret-never-shown' }, max_attempts: 1 });
    deadTrigger = await until('the hook trigger to die', async () => (await call('GET', '/v1/subscriptions/console_hook/triggers?state=dead')).triggers[0]);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await receiver?.close();
    await demo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('overview: every table with its head, every consumer, the dead trigger first among the problems', async () => {
    const { ctx, page } = await adminPage();
    try {
      for (const t of [TABLES.source, TABLES.incremental.daily, TABLES.incremental.agg, TABLES.lookback.daily, TABLES.lookback.agg]) {
        const row = page.locator(`[data-testid="tables"] tr[data-table="${ipsName(t)}"]`);
        await expect(row.textContent()).resolves.toContain(headFromFiles(demo.result.warehouse, t));
      }
      for (const c of [...STAGES.map((s) => s.consumer), 'console_probe', 'console_hook']) {
        expect(await page.locator(`[data-testid="consumers"] tr[data-consumer="${c}"]`).count()).toBeGreaterThan(0);
      }
      // Problems first: the dead trigger is listed, and its consumer sorts above the healthy ones.
      const first = page.locator('[data-testid="problems"] li').first();
      expect(await first.getAttribute('data-kind')).toBe('dead_triggers');
      expect(await first.textContent()).toContain('console_hook');
      const order = await page.locator('[data-testid="consumers"] tr[data-consumer]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-consumer')));
      expect(order[0]).toBe('console_hook');
      // The demo's consumers caught up on its last day: nothing pending.
      const daily = await page.locator('[data-testid="consumers"] tr[data-consumer="playback_daily"]').first().locator('td').evaluateAll((tds) => tds.map((t) => t.textContent));
      expect(daily.slice(3, 7)).toEqual(['0', '0', '0 B', '0']);
      // console_hook is behind by the whole month (one snapshot per simulated day), all of it
      // committed within the growing window while it processed nothing: growing (↑).
      const hook = await page.locator('[data-testid="consumers"] tr[data-consumer="console_hook"]').first().locator('td').evaluateAll((tds) => tds.map((t) => t.textContent));
      expect(hook[3]).toBe(`${DAYS} ↑`);
      expect(await page.locator('[data-testid="problems"] li[data-kind="lag_growing"]').textContent()).toContain(`0 → ${DAYS} snapshots`);
      expect(hook[6]).toBe((DAYS * ROWS_PER_DAY).toLocaleString('en-US'));
    } finally {
      await ctx.close();
    }
  });

  it('lineage: the pipeline graph from subscriptions and declared outputs, coloured by health', async () => {
    const { ctx, page } = await adminPage();
    try {
      await go(page, '#/lineage', '[data-testid="lineage"] svg');
      const edges = await page.locator('[data-edge]').evaluateAll((es) => es.map((e) => e.getAttribute('data-edge')));
      for (const s of STAGES) {
        expect(edges).toContain(`t:${ipsName(s.source)}->c:${s.consumer}`);
        expect(edges).toContain(`c:${s.consumer}->t:${ipsName(s.target)}`);
      }
      expect(await page.locator('[data-node="c:console_hook"]').getAttribute('data-health')).toBe('error');
      expect(await page.locator('[data-node="c:playback_daily"]').getAttribute('data-health')).toBe('ok');
    } finally {
      await ctx.close();
    }
  });

  it('consumer: watermark history, lag chart, batches with ranges, and the PyIceberg and Spark snippets read the batch', async () => {
    const { ctx, page } = await adminPage();
    try {
      await go(page, '#/consumers/playback_daily', '[data-view="consumer"] [data-chart] canvas');
      const runs = demo.result.runs.filter((r) => r.consumer === 'playback_daily');
      expect(runs).toHaveLength(DAYS);
      const shown = await page.locator('[data-testid="batches"] tr[data-batch]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-batch')));
      expect([...shown].sort()).toEqual(runs.map((r) => r.batchId).sort());
      const history = await page.locator('[data-testid="watermark-history"] tbody tr').evaluateAll((rows) => rows.map((r) => r.children[1]!.textContent));
      expect(history).toEqual([...Array(DAYS).fill('commit'), 'subscribe']);
      // The newest batch, opened: its ranges name the event_date field; its snippet reads it.
      const newest = runs[runs.length - 1]!;
      await page.locator(`tr[data-batch="${newest.batchId}"] button`).click();
      const snippet = await page.locator(`[data-batch-detail="${newest.batchId}"] pre[data-snippet="pyiceberg"]`).textContent();
      expect(await page.locator(`[data-batch-detail="${newest.batchId}"]`).textContent()).toContain('event_date');
      const py = spawnSync(testEnv().python, ['-c', `${snippet}\nprint(rows.num_rows)`], { encoding: 'utf8', timeout: 120_000 });
      expect(py.stderr).toBe('');
      // The day's append, as the demo's generator sized it.
      expect(Number(py.stdout.trim())).toBe(ROWS_PER_DAY);
      // The Spark lines, as shown, in a local Spark with the Iceberg runtime.
      const spark = await page.locator(`[data-batch-detail="${newest.batchId}"] pre[data-snippet="spark"]`).textContent();
      const program = ['import sys', "sys.path.insert(0, 'test/setup/python')", 'from ips_test_env import spark_session', "spark = spark_session('ips-console-snippet', cores=1)", spark, 'print(df.count())'].join('\n');
      const sp = spawnSync(testEnv().python, ['-c', program], { encoding: 'utf8', timeout: 240_000, cwd: REPO_ROOT, env: { ...process.env, JAVA_HOME: testEnv().javaHome } });
      expect(sp.status, sp.stderr.slice(-3000)).toBe(0);
      expect(Number(sp.stdout.trim().split('\n').at(-1))).toBe(ROWS_PER_DAY);
    } finally {
      await ctx.close();
    }
  }, 300_000);

  it('subscriptions: the sink without its secret, and the retry button revives the dead trigger, whose batch is delivered', async () => {
    const { ctx, page } = await adminPage();
    try {
      await go(page, '#/subscriptions', '[data-subscription="console_hook"]');
      const card = page.locator('[data-subscription="console_hook"]');
      expect(await card.locator('[data-testid="sink"]').textContent()).not.toContain('hook-secret-never-shown');
      expect(await page.locator('main').textContent()).not.toContain('hook-secret-never-shown');
      receiver.failing = false;
      await card.locator(`button[data-retry="${deadTrigger.id}"]`).click();
      // The page follows by itself: the trigger leaves the dead letters and shows delivered.
      await page.waitForSelector(`[data-subscription="console_hook"] [data-testid="recent"] tr[data-trigger="${deadTrigger.id}"][data-state="delivered"]`, { timeout: 60_000 });
      expect(await card.locator('[data-testid="dead"]').count()).toBe(0);
      expect(receiver.received.map((r) => r.batch_id)).toContain(deadTrigger.batch_id);
    } finally {
      await ctx.close();
    }
  });

  it('backfills: the chunk grids of the backfill and its downstream stage update live, pause and resume work from the page', async () => {
    const { ctx, page } = await adminPage();
    try {
      await go(page, '#/backfills/probe_refill', '[data-view="backfill"] [data-stage="own"]');
      const states = () => page.locator('[data-stage="own"] [data-chunk]').evaluateAll((cs) => cs.map((c) => c.getAttribute('data-state')));
      expect(await states()).toEqual(['committed', 'pending', 'pending']);
      // Downstream: the chunk's output is the daily table's head, which playback_daily_agg has processed.
      const downstream = () => page.locator('[data-stage="playback_daily_agg"] [data-chunk]').evaluateAll((cs) => cs.map((c) => c.getAttribute('data-state')));
      expect(await downstream()).toEqual(['propagated', 'waiting', 'waiting']);
      await page.locator('button[data-action="pause"]').click();
      await page.waitForSelector('[data-view="backfill"] h1 .st-paused');
      expect((await call('GET', '/v1/backfills/probe_refill')).state).toBe('paused');
      await page.locator('button[data-action="resume"]').click();
      await page.waitForSelector('[data-view="backfill"] h1 .st-running');
      // A chunk run elsewhere shows up without a reload.
      const chunk = await call('POST', '/v1/backfills/probe_refill/batches', { instance_id: 'probe-run-1' });
      await call('POST', `/v1/batches/${chunk.batch.id}/commit`, {});
      await page.waitForFunction(() => document.querySelectorAll('[data-stage="own"] [data-state="committed"]').length === 2, undefined, { timeout: 30_000 });
      await page.waitForFunction(() => document.querySelectorAll('[data-stage="playback_daily_agg"] [data-state="propagated"]').length === 2, undefined, { timeout: 30_000 });
    } finally {
      await ctx.close();
    }
  });

  it("a consumer's token sees only its own consumer, in the page and in every response the page got", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const bodies: { url: string; status: number; body: string }[] = [];
    const pending: Promise<void>[] = [];
    page.on('response', (r) => {
      if (!new URL(r.url()).pathname.startsWith('/v1/')) return;
      pending.push(r.text().then((body) => { bodies.push({ url: r.url(), status: r.status(), body }); }, () => {}));
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    try {
      await openConsole(page, demo.url, consumerToken);
      const others = ['playback_daily_agg', 'playback_daily_lookback', 'console_hook', 'console_probe', 'probe_refill', 'lookback__', 'hook-secret'];
      for (const [hash, ready] of [
        ['#/', '[data-view="overview"]'], ['#/lineage', '[data-testid="lineage"] svg'], ['#/consumers/playback_daily', '[data-view="consumer"] [data-chart]'],
        ['#/subscriptions', '[data-subscription="playback_daily"]'], ['#/backfills', '[data-view="backfills"]'],
      ] as const) {
        await go(page, hash, ready);
        const text = await page.locator('body').textContent();
        for (const o of others) expect(text, `${hash} shows ${o}`).not.toContain(o);
      }
      expect(await page.locator('#whoami').textContent()).toBe('consumer playback_daily');
      expect(await page.locator('button[data-retry]').count()).toBe(0);
      await Promise.all(pending);
      expect(bodies.length).toBeGreaterThan(5);
      for (const b of bodies) {
        expect(b.status, b.url).toBeLessThan(400);
        for (const o of others) expect(b.body, `${b.url} answered with ${o}`).not.toContain(o);
      }
      expect(errors).toEqual([]);
      // Asking for another consumer's page by its URL: the API refuses, the page shows no data
      // (Chromium logs the refused request itself as a console error: expected here).
      await page.evaluate(() => { location.hash = '#/consumers/playback_daily_agg'; });
      await page.waitForSelector('main [role="alert"]');
      expect(await page.locator('main [role="alert"]').textContent()).toContain('403 FORBIDDEN');
      expect(await page.locator('[data-view="consumer"]').count()).toBe(0);
      expect(errors.filter((e) => !/status of 403/.test(e))).toEqual([]);
      // Signing out forgets the token: the sign-in form, nothing in the tab's storage.
      await page.locator('#signout').click();
      await page.waitForSelector('form.login');
      expect(await page.evaluate(() => sessionStorage.getItem('ips.token'))).toBeNull();
    } finally {
      await ctx.close();
    }
  });

  it('usable at 1280×800 and at a phone width: no horizontal overflow on any view', async () => {
    for (const viewport of [{ width: 1280, height: 800 }, { width: 375, height: 740 }]) {
      const { ctx, page } = await adminPage(viewport);
      try {
        for (const [hash, ready] of [
          ['#/', '[data-view="overview"]'], ['#/lineage', '[data-testid="lineage"] svg'], ['#/consumers/playback_daily', '[data-view="consumer"] [data-chart] canvas'],
          ['#/subscriptions', '[data-view="subscriptions"]'], ['#/backfills/probe_refill', '[data-view="backfill"]'],
        ] as const) {
          await go(page, hash, ready);
          const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
          expect(scroll, `${hash} at ${viewport.width}px`).toBeLessThanOrEqual(client);
        }
      } finally {
        await ctx.close();
      }
    }
    // The README's screenshots, made by the code `npm run screenshots` runs.
    const out = mkdtempSync(path.join(os.tmpdir(), 'ips-shots-'));
    try {
      const files = await captureReadmeScreenshots(browser, demo.url, demo.adminToken, out);
      for (const f of files) {
        const png = readFileSync(f);
        expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
        expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 800]);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('a console polling fast for 150 rounds keeps the server\'s connections and heap flat', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const heap = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
    const connections = () => new Promise<number>((r) => demo.server.app.server.getConnections((_e, n) => r(n)));
    // Polls counted by the server itself (its request counter), so that nothing on the test's
    // side (a response listener keeps playwright objects) grows with them.
    const polls = async () => {
      const text = await demo.server.app.inject({ method: 'GET', url: '/metrics' }).then((r) => r.body);
      return [...text.matchAll(/^ips_http_requests_total\{[^}]*route="\/v1\/overview"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    try {
      const start = await polls();
      await openConsole(page, demo.url, demo.adminToken, { poll: 100 });
      await until('30 polls', async () => (await polls()) - start >= 30, 120_000);
      const base = await connections();
      const before = heap();
      const seen: number[] = [];
      await until('150 more polls', async () => { seen.push(await connections()); return (await polls()) - start >= 180; }, 300_000);
      const after = heap();
      const n = (await polls()) - start;
      process.stdout.write(`[console] ${n} overview polls at 100 ms: server heap after GC ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB over the last ${n - 30}; open connections ${base} → at most ${Math.max(...seen)}\n`);
      // Each poll costs the server nothing that outlives it: no growth beyond noise (a leak of
      // 30 KB per poll would be 4.5 MB here), and the page reuses its keep-alive connections.
      expect(after - before).toBeLessThan(4 * 1024 * 1024);
      expect(Math.max(...seen)).toBeLessThanOrEqual(base + 2);
    } finally {
      await ctx.close();
    }
  });

  it('no console errors in the browser log of any admin page', () => {
    expect(consoleErrors).toEqual([]);
  });
});
