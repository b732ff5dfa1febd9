// The console's overview with more consumers than it shows at once (src/ui/static/views/overview.js,
// SHOWN_ROWS): the first 200, worst first, so a consumer with a problem is among them, and a button
// that shows them all; in Debian's Chromium, over a server whose 250 consumers read copies of the
// PyIceberg-written fixtures/tables/playback.
import crypto from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { pgliteTemplate } from '../state/helpers.js';
import { launchBrowser, openConsole } from './harness.js';

const ADMIN = crypto.randomBytes(24).toString('hex');
const CONSUMERS = 250;

describe('the console with a fleet of consumers', () => {
  let tmp: string;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;

  async function post(p: string, body: unknown): Promise<void> {
    const r = await fetch(server.url + p, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(r.status, `${p}: ${await r.clone().text()}`).toBe(201);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-console-fleet-'));
    const tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    let config = loadServiceConfig({ env: { DATABASE_URL: 'memory:', IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'icdc'), IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off' } });
    config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);
    for (const t of ['events-a', 'events-b']) await post('/v1/tables', { name: t, ref: { kind: 'directory', location: tableDir } });
    for (let i = 0; i < CONSUMERS; i++) await post('/v1/consumers', { name: `c${String(i).padStart(3, '0')}`, tables: [{ table: i % 2 ? 'events-a' : 'events-b' }] });
    // The last one by name breaks: worst first, it leads the list.
    await server.state.repos.consumers.setState(`c${CONSUMERS - 1}`, 'stale', 'rolled back');
    browser = await launchBrowser();
    page = await browser.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('shows the first 200 consumers worst first, the stale one on top, and all 250 when asked', async () => {
    await openConsole(page, server.url, ADMIN, { poll: 60_000 });
    const names = () => page.$$eval('[data-testid="consumers"] tbody tr[data-consumer]', (rows) => rows.map((r) => r.getAttribute('data-consumer')));
    expect(await page.textContent('h2:has-text("Consumers")')).toBe(`Consumers (${CONSUMERS})`);
    const shown = await names();
    expect(shown).toHaveLength(200);
    expect(shown[0]).toBe(`c${CONSUMERS - 1}`);
    expect(await page.textContent('[data-testid="problems"]')).toContain(`c${CONSUMERS - 1} is stale`);
    await page.click('button[data-show-all="allConsumers"]');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="consumers"] tbody tr[data-consumer]').length === n, CONSUMERS);
    const all = await names();
    // Every consumer once, the 200 shown before first and in the same order.
    expect(new Set(all).size).toBe(CONSUMERS);
    expect(all.slice(0, 200)).toEqual(shown);
    expect(await page.$('button[data-show-all="allConsumers"]')).toBeNull();
    // Two tables: nothing to cut there.
    expect(await page.$$eval('[data-testid="tables"] tbody tr[data-table]', (rows) => rows.length)).toBe(2);
    expect(await page.$('button[data-show-all="allTables"]')).toBeNull();
  });
});
