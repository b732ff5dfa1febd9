// The API the console reads (GET /v1/overview, GET /v1/consumers/{name}/history, newest-first
// batch and trigger lists) and the console's static files, through real HTTP on PostgreSQL and
// PGlite, over fixtures/tables/playback (written by PyIceberg). Expected lag figures come from the
// snapshot summaries and commit times PyIceberg wrote, read with a plain JSON parser.
import crypto from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseLossless } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';

interface Snap { id: string; timestampMs: string; summary: Record<string, string> }

/** The fixture's snapshots along the current lineage, oldest first, numbers as text. */
function readSnapshots(tableDir: string): Snap[] {
  const dir = path.join(tableDir, 'metadata');
  const file = path.join(dir, readdirSync(dir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!);
  const md = parseLossless(readFileSync(file, 'utf8'), undefined, (n: string) => n) as {
    'current-snapshot-id': string;
    snapshots: { 'snapshot-id': string; 'parent-snapshot-id'?: string; 'timestamp-ms': string; summary: Record<string, string> }[];
  };
  const byId = new Map(md.snapshots.map((s) => [s['snapshot-id'], s] as const));
  const chain: Snap[] = [];
  for (let cur = byId.get(md['current-snapshot-id']); cur; cur = cur['parent-snapshot-id'] ? byId.get(cur['parent-snapshot-id']) : undefined) {
    chain.unshift({ id: cur['snapshot-id'], timestampMs: cur['timestamp-ms'], summary: cur.summary });
  }
  return chain;
}

const sum = (snaps: Snap[], keys: string[]) => snaps.reduce((n, s) => n + keys.reduce((m, k) => m + BigInt(s.summary[k] ?? '0'), 0n), 0n).toString();
const FILE_KEYS = ['added-data-files', 'deleted-data-files', 'added-delete-files', 'removed-delete-files'];
const RECORD_KEYS = ['added-records', 'deleted-records'];
const BYTE_KEYS = ['added-files-size', 'removed-files-size'];

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;

/* eslint-disable @typescript-eslint/no-explicit-any */
describe.each(DRIVERS)('the console\'s API (%s state)', (driver) => {
  let tmp: string;
  let server: RunningServer;
  let drop: (() => Promise<void>) | undefined;
  let snaps: Snap[];
  const tokens: Record<string, string> = {};

  async function call(method: string, p: string, token: string | null = ADMIN, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    let json: any;
    try { json = JSON.parse(text); } catch { json = text; }
    return { status: r.status, body: json, headers: r.headers };
  }
  async function ok(method: string, p: string, token: string | null = ADMIN, body?: unknown, status = 200): Promise<any> {
    const r = await call(method, p, token, body);
    expect(r.status, `${method} ${p}: ${JSON.stringify(r.body)}`).toBe(status);
    return r.body;
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-console-api-'));
    const tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    snaps = readSnapshots(tableDir);
    expect(snaps.length).toBeGreaterThanOrEqual(3);
    let url = 'memory:';
    if (driver === 'postgres') {
      const created = await createPgDatabase('console_api');
      drop = created.drop;
      url = created.url;
    }
    let config: ServiceConfig = loadServiceConfig({ env: { DATABASE_URL: url, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'warehouse'), IPS_LOG_LEVEL: 'silent' } });
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);
    await ok('POST', '/v1/tables', ADMIN, { name: 'playback', ref: { kind: 'directory', location: tableDir } }, 201);
    for (const c of ['alpha', 'beta']) {
      const b = await ok('POST', '/v1/consumers', ADMIN, { name: c, tables: [{ table: 'playback' }], issue_token: true }, 201);
      tokens[c] = b.token.token;
    }
  });

  afterAll(async () => {
    await server?.close();
    await drop?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the overview: lag from the snapshot summaries, in time since the first pending commit; admin sees all, a consumer itself', async () => {
    const o = await ok('GET', '/v1/overview');
    expect(o.viewer).toEqual({ admin: true, consumer: null });
    expect(o.tables.map((t: any) => t.name)).toEqual(['playback']);
    const t = o.tables[0];
    expect(t.head.snapshot_id).toBe(snaps.at(-1)!.id);
    expect(t.last_commit_at).toBe(new Date(Number(snaps.at(-1)!.timestampMs)).toISOString());
    expect(t.consumers.sort()).toEqual(['alpha', 'beta']);
    const alpha = o.consumers.find((c: any) => c.name === 'alpha');
    expect(alpha.inputs).toEqual(['playback']);
    expect(alpha.tables[0].lag).toEqual({
      snapshots: snaps.length, files: sum(snaps, FILE_KEYS), bytes: sum(snaps, BYTE_KEYS), records: sum(snaps, RECORD_KEYS), estimated: false,
      oldest_pending_at: new Date(Number(snaps[0]!.timestampMs)).toISOString(),
    });
    // All of it was committed long before the window: behind, but not falling further behind.
    expect(alpha.tables[0].growing_from).toBeNull();
    expect(o.problems).toEqual([]);

    const mine = await ok('GET', '/v1/overview', tokens['alpha']!);
    expect(mine.viewer).toEqual({ admin: false, consumer: 'alpha' });
    expect(mine.consumers.map((c: any) => c.name)).toEqual(['alpha']);
    expect(mine.tables[0].consumers).toEqual(['alpha']);
    expect(mine.tables[0].oldest_needed).toBeNull();
    expect(JSON.stringify(mine)).not.toContain('beta');
    expect((await call('GET', '/v1/overview', null)).status).toBe(401);
    expect((await call('GET', '/v1/overview?growing_window_seconds=soon')).body.code).toBe('VALIDATION_FAILED');
  });

  test('history: the watermark moves, and the lag series stepping down at each commit as the summaries say', async () => {
    // alpha processes the first two snapshots, then the rest.
    const bytes2 = sum(snaps.slice(0, 2), ['added-files-size']);
    const p1 = await ok('POST', '/v1/consumers/alpha/batches', tokens['alpha']!, { instance_id: 'a1', limits: { max_bytes: bytes2 } }, 201);
    expect(p1.batch.tables[0].to_snapshot_id).toBe(snaps[1]!.id);
    await ok('POST', `/v1/batches/${p1.batch.id}/commit`, tokens['alpha']!);
    const mid = await ok('GET', '/v1/consumers/alpha/history', tokens['alpha']!);
    const p2 = await ok('POST', '/v1/consumers/alpha/batches', tokens['alpha']!, { instance_id: 'a2' }, 201);
    await ok('POST', `/v1/batches/${p2.batch.id}/commit`, tokens['alpha']!);
    const h = await ok('GET', '/v1/consumers/alpha/history', tokens['alpha']!);
    const series = h.tables[0];
    expect(series.table).toBe('playback');
    expect(series.watermark_moves.map((m: any) => [m.reason, m.to_snapshot_id, m.batch_id])).toEqual([
      ['commit', snaps.at(-1)!.id, p2.batch.id], ['commit', snaps[1]!.id, p1.batch.id], ['subscribe', null, null],
    ]);
    // The fixture's commits are older than the window: each point is the lag between moves.
    const levels = series.lag.map((p: any) => [p.snapshots, p.records]);
    const all = [snaps.length, sum(snaps, RECORD_KEYS)];
    const rest = [snaps.length - 2, sum(snaps.slice(2), RECORD_KEYS)];
    expect(levels[0]).toEqual(all);
    expect(levels).toContainEqual(rest);
    expect(levels.at(-1)).toEqual([0, '0']);
    // Between the two commits the series stood where the live lag stood then.
    expect(mid.tables[0].lag.at(-1).snapshots).toBe(snaps.length - 2);
    const firstPending = Number(snaps[2]!.timestampMs);
    expect(mid.tables[0].lag.at(-1).seconds).toBeCloseTo((Date.parse(mid.tables[0].lag.at(-1).at) - firstPending) / 1000, 3);

    // A consumer's token reads only its own history.
    expect((await call('GET', '/v1/consumers/beta/history', tokens['alpha']!)).status).toBe(403);
    expect((await call('GET', '/v1/consumers/nobody/history')).status).toBe(404);
    expect((await call('GET', '/v1/consumers/alpha/history?window_seconds=1')).body.code).toBe('VALIDATION_FAILED');
  });

  test('batches newest first without their file lists; triggers newest first', async () => {
    const all = await ok('GET', '/v1/consumers/alpha/batches?include_files=true');
    const newest = await ok('GET', '/v1/consumers/alpha/batches?order=newest&limit=1&include_files=false');
    // Without include_files a listing carries no file lists either (they are read only when asked for).
    expect((await ok('GET', '/v1/consumers/alpha/batches')).batches.every((b: any) => b.tables.every((t: any) => t.files === undefined))).toBe(true);
    expect(newest.batches.map((b: any) => b.id)).toEqual([all.batches.at(-1).id]);
    expect(newest.batches[0].tables[0].files).toBeUndefined();
    expect(newest.batches[0].tables[0].file_count).toBe(all.batches.at(-1).tables[0].file_count);
    expect(all.batches[0].tables[0].files.added.length).toBeGreaterThan(0);
    expect((await call('GET', '/v1/consumers/alpha/batches?order=sideways')).body.code).toBe('VALIDATION_FAILED');
    await ok('POST', '/v1/subscriptions', ADMIN, { name: 'beta-hook', consumer: 'beta', tables: ['playback'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/x', secret: 's' }, enabled: false }, 201);
    expect((await ok('GET', '/v1/subscriptions/beta-hook/triggers?order=newest&limit=5')).triggers).toEqual([]);
    expect((await call('GET', '/v1/subscriptions/beta-hook/triggers?order=up')).body.code).toBe('VALIDATION_FAILED');
  });

  test('files missing: a subscription that cannot fire because a data file is gone is a problem, worst first', async () => {
    // Another copy of the table, its data files deleted behind ips's back (orphan removal gone wrong).
    const dir = path.join(tmp, 'fragile');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), dir, { recursive: true });
    rmSync(path.join(dir, 'data'), { recursive: true });
    await ok('POST', '/v1/tables', ADMIN, { name: 'fragile', ref: { kind: 'directory', location: dir } }, 201);
    await ok('POST', '/v1/consumers', ADMIN, { name: 'gamma', tables: [{ table: 'fragile' }] }, 201);
    await ok('POST', '/v1/subscriptions', ADMIN, { name: 'gamma-hook', consumer: 'gamma', tables: ['fragile'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/x', secret: 's' } }, 201);
    let o: any;
    for (let i = 0; i < 300; i++) {
      o = await ok('GET', '/v1/overview');
      if (o.problems.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(o.problems[0]).toMatchObject({ severity: 'error', kind: 'files_missing', consumer: 'gamma', subscription: 'gamma-hook' });
    expect(o.problems[0].message).toContain('no longer exist');
    expect(o.consumers[0]).toMatchObject({ name: 'gamma', health: 'error' });
    // Not alpha's or beta's business.
    expect((await ok('GET', '/v1/overview', tokens['alpha']!)).problems).toEqual([]);
    await ok('DELETE', '/v1/subscriptions/gamma-hook');
  });

  test('stale: a consumer whose table was rolled back is an error problem, with the reason and what to do', async () => {
    const dir = path.join(tmp, 'rolled');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), dir, { recursive: true });
    await ok('POST', '/v1/tables', ADMIN, { name: 'rolled', ref: { kind: 'directory', location: dir } }, 201);
    await ok('POST', '/v1/consumers', ADMIN, { name: 'delta', tables: [{ table: 'rolled' }] }, 201);
    const b = await ok('POST', '/v1/consumers/delta/batches', ADMIN, { instance_id: 'd1' }, 201);
    await ok('POST', `/v1/batches/${b.batch.id}/commit`);
    // The table loses its newest metadata (a rollback), and the next prepare finds out.
    const meta = path.join(dir, 'metadata');
    rmSync(path.join(meta, readdirSync(meta).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!));
    expect((await call('POST', '/v1/consumers/delta/batches', ADMIN, { instance_id: 'd2' })).status).toBe(422);
    const o = await ok('GET', '/v1/overview');
    const stale = o.problems.find((p: any) => p.kind === 'stale');
    expect(stale).toMatchObject({ severity: 'error', consumer: 'delta' });
    expect(stale.message).toContain('reset or backfill');
    expect(o.consumers.find((c: any) => c.name === 'delta')).toMatchObject({ state: 'stale', health: 'error' });
    // Its lag cannot be computed either: said, not hidden.
    expect(o.problems.find((p: any) => p.kind === 'lag_unknown' && p.consumer === 'delta')).toBeDefined();
  });

  test('the console\'s files: public, fixed, with a strict policy; the OpenAPI document has the new routes', async () => {
    const page = await call('GET', '/ui/', null);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.body).toContain('<script type="module" src="./app.js">');
    const uplot = await call('GET', '/ui/vendor/uPlot.esm.js', null);
    expect(uplot.status).toBe(200);
    expect(uplot.body).toBe(readFileSync(path.join(REPO_ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.esm.js'), 'utf8'));
    const etag = (await fetch(`${server.url}/ui/app.js`)).headers.get('etag')!;
    expect((await fetch(`${server.url}/ui/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${server.url}/ui`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/');
    for (const p of ['/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/..%2fpackage.json', '/ui/vendor/../../src/ui/plugin.ts', '/ui/nope.js']) {
      const r = await call('GET', p, null);
      expect(r.status, p).toBe(404);
      expect(JSON.stringify(r.body), p).not.toContain('"name": "ips"');
    }
    const doc = await ok('GET', '/openapi.json', null);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/overview', '/v1/consumers/{name}/history']));
    expect(Object.keys(doc.paths).some((p) => p.startsWith('/ui'))).toBe(false);
  });
});
