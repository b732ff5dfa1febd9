// The console's overview (GET /v1/overview) at the size of a fleet: it reads the state in a fixed
// number of statements whatever the number of tables and consumers (it read a few per consumer
// and per table before, and its loops were quadratic: 3.3–4.4 s for 100 tables and 1,000
// consumers on the embedded database, every few seconds while a console is open), and what it
// says agrees with the per-object reads it replaced: each table's view (GET /v1/tables/{name}),
// each consumer's open batches and the newest commit of its watermarks' audit trail. "Lag
// growing" is checked against the commit times PyIceberg wrote. Tables are written by PyIceberg
// into a SQL catalog; state on PostgreSQL and PGlite.
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { overview } from '../../src/service/overview.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';
import { PyIcebergWriter, type CatalogSpec, type WrittenSnapshot } from '../triggers/trigger-pyiceberg.js';

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const rand = () => crypto.randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let writer: PyIcebergWriter;
let catalogDb: { url: string; drop: () => Promise<void> };

beforeAll(async () => {
  writer = PyIcebergWriter.start();
  catalogDb = await createPgDatabase('overview_catalog');
});

afterAll(async () => {
  await writer?.close();
  await catalogDb?.drop();
});

/* eslint-disable @typescript-eslint/no-explicit-any */
describe.each(DRIVERS)('the overview of a fleet (%s state)', (driver) => {
  let tmp: string;
  let server: RunningServer;
  let dropDb: (() => Promise<void>) | undefined;
  let catalog: CatalogSpec;
  let rowId = 0;

  async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, body: await r.json() };
  }
  async function ok(method: string, p: string, body?: unknown, status = 200): Promise<any> {
    const r = await call(method, p, body);
    expect(r.status, `${method} ${p}: ${JSON.stringify(r.body)}`).toBe(status);
    return r.body;
  }

  /** A PyIceberg table registered with ips; `append` writes one snapshot of two rows. */
  async function newTable(label: string): Promise<{ name: string; append: () => Promise<WrittenSnapshot> }> {
    const name = `${label}-${rand()}`;
    const identifier = `ov.${name.replace(/-/g, '_')}`;
    await writer.createTable(catalog, identifier);
    await ok('POST', '/v1/tables', { name, ref: { kind: 'sql', uri: catalogDb.url, catalog_name: catalog.name, identifier } }, 201);
    return {
      name,
      append: async () => (await writer.append(catalog, identifier, [0, 1].map(() => ({ id: ++rowId, name: `r${rowId}`, ts_us: rowId * 1_000_000 })))).snapshot,
    };
  }

  /** Prepares the consumer's next batch (of at most `maxFiles` files) and commits it. */
  async function consume(consumer: string, maxFiles?: number): Promise<void> {
    const p = await ok('POST', `/v1/consumers/${consumer}/batches`, { instance_id: `run-${rand()}`, ...(maxFiles ? { limits: { max_files: maxFiles } } : {}) }, 201);
    await ok('POST', `/v1/batches/${p.batch.id}/commit`);
  }

  /**
   * `tables` tables of two snapshots, `perTable` consumers each: one committed the first snapshot
   * and holds a batch of the second open, with a (disabled) webhook subscription; the others
   * have processed nothing.
   */
  async function grow(tables: number, perTable: number): Promise<void> {
    for (let i = 0; i < tables; i++) {
      const t = await newTable('fleet');
      await t.append();
      const consumers = Array.from({ length: perTable }, (_, k) => `${t.name}-c${k}`);
      for (const c of consumers) await ok('POST', '/v1/consumers', { name: c, tables: [{ table: t.name }] }, 201);
      await consume(consumers[0]!);
      await t.append();
      await ok('POST', `/v1/consumers/${consumers[0]}/batches`, { instance_id: `run-${rand()}` }, 201);
      await ok('POST', '/v1/subscriptions', {
        name: `${consumers[0]}-hook`, consumer: consumers[0], tables: [t.name],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/x', secret: 's' }, enabled: false,
      }, 201);
    }
  }

  /** The overview as the route computes it, and the state statements it took. */
  async function measured(): Promise<{ o: Awaited<ReturnType<typeof overview>>; statements: number }> {
    const before = server.state.db.stats.statements;
    const o = await overview(server.service, { consumer: null });
    return { o, statements: server.state.db.stats.statements - before };
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-overview-fleet-'));
    catalog = { name: `ov_${driver}_${rand()}`, uri: catalogDb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'), warehouse: `file://${path.join(tmp, 'source')}` };
    let url = 'memory:';
    if (driver === 'postgres') {
      const created = await createPgDatabase('overview_fleet');
      dropDb = created.drop;
      url = created.url;
    }
    // No background loops: every statement counted below is the overview's.
    let config = loadServiceConfig({ env: {
      DATABASE_URL: url, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'icdc'), IPS_LOG_LEVEL: 'silent',
      IPS_TRIGGERS: 'off', IPS_RETENTION: 'off',
    } });
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);
  });

  afterAll(async () => {
    await server?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('a fixed number of statements whatever the number of tables and consumers; the same answers as the per-table and per-consumer reads', async () => {
    await grow(2, 2);
    const small = await measured();
    expect(small.o.consumers).toHaveLength(4);
    await grow(4, 3);
    const large = await measured();
    expect(large.o.tables).toHaveLength(6);
    expect(large.o.consumers).toHaveLength(16);
    expect(large.statements).toBe(small.statements);
    // And once more, the same: nothing is read per consumer or per table.
    expect((await measured()).statements).toBe(small.statements);

    const repos = server.state.repos;
    // One consumer's table history broke (as a prepare finds a rollback): every view says so.
    const broken = large.o.consumers[5]!.consumer.name;
    await repos.consumers.setState(broken, 'stale', 'rolled back');
    const o = (await measured()).o;
    expect(o.consumers[0]).toMatchObject({ consumer: { name: broken, state: 'stale' }, health: 'error' });
    expect(o.problems).toContainEqual(expect.objectContaining({ kind: 'stale', consumer: broken }));
    for (const t of o.tables) {
      const view = await server.service.getTable(t.table.name);
      expect(t.head?.snapshotId).toBe(view.head?.snapshotId);
      expect(t.oldestNeeded).toEqual(view.oldestNeeded);
      expect(t.consumers).toEqual(view.consumers.map((c) => c.watermark.consumer));
      for (const row of view.consumers) {
        const c = o.consumers.find((x) => x.consumer.name === row.watermark.consumer)!;
        expect(row.consumerState).toBe(c.consumer.state);
        // (growingFrom: the next test; here every snapshot is minutes old.)
        expect(c.tables.map(({ growingFrom: _, ...rest }) => rest)).toEqual([{ table: t.table.name, watermarkSnapshotId: row.watermark.snapshotId, lag: row.lag }]);
      }
    }
    for (const c of o.consumers) {
      const open = await repos.batches.list({ consumer: c.consumer.name, state: 'open' });
      expect(c.openBatches.map((b) => b.id)).toEqual(open.map((b) => b.id));
      const commits = (await repos.watermarks.moves({ consumer: c.consumer.name })).filter((m) => m.reason === 'commit');
      expect(c.lastCommitAt).toEqual(commits.at(-1)?.movedAt ?? null);
      const subs = await repos.subscriptions.list({ consumer: c.consumer.name });
      expect(c.subscriptions.map((s) => s.subscription.name)).toEqual(subs.map((s) => s.name));
    }
    // Who committed, who holds a batch open: as grow() left them (one of each per table).
    expect(o.consumers.filter((c) => c.lastCommitAt !== null)).toHaveLength(6);
    expect(o.consumers.filter((c) => c.openBatches.length === 1)).toHaveLength(6);
    // The API answers the same through HTTP.
    const http = await ok('GET', '/v1/overview');
    expect(http.consumers.map((c: any) => c.name)).toEqual(o.consumers.map((c) => c.consumer.name));
  });

  test('lag growing: the lag when the window opened, from where each watermark stood then, against the commit times PyIceberg wrote', async () => {
    const t = await newTable('growing');
    // steady: processed s1 before the window. late: subscribes after it opens (processed nothing).
    // mover: subscribed before s1, commits s1 inside the window. done: catches up inside the window.
    for (const c of ['steady', 'mover', 'done']) await ok('POST', '/v1/consumers', { name: `${c}-${t.name}`, tables: [{ table: t.name }] }, 201);
    const s1 = await t.append();
    await consume(`steady-${t.name}`);
    await sleep(30);
    const s2 = await t.append();
    await sleep(30);
    const s3 = await t.append();
    await sleep(30);
    const s4 = await t.append();
    const snaps = [s1, s2, s3, s4];
    await ok('POST', '/v1/consumers', { name: `late-${t.name}`, tables: [{ table: t.name }] }, 201);
    await consume(`mover-${t.name}`, 1);
    await consume(`done-${t.name}`);
    // The window opens between s2's and s3's commits (PyIceberg's clock and PostgreSQL's are this machine's).
    const since = (Number(s2.timestamp_ms) + Number(s3.timestamp_ms)) / 2;
    expect(Number(s3.timestamp_ms) - Number(s2.timestamp_ms)).toBeGreaterThanOrEqual(2);
    const now = new Date();
    const o = await overview(server.service, { consumer: null, now, growingWindowSeconds: (now.getTime() - since) / 1000 });
    const committedBy = (at: number) => snaps.filter((s) => Number(s.timestamp_ms) <= at).length;
    const row = (c: string) => o.consumers.find((x) => x.consumer.name === `${c}-${t.name}`)!.tables[0]!;
    // steady stood on s1 when the window opened, with s2 pending; now s2..s4.
    expect(row('steady').lag).toMatchObject({ ok: true, lag: { snapshots: 3 } });
    expect(row('steady').growingFrom).toBe(committedBy(since) - 1);
    // late and mover had processed nothing then: every snapshot committed by then was pending.
    expect(row('late').lag).toMatchObject({ ok: true, lag: { snapshots: 4 } });
    expect(row('late').growingFrom).toBe(committedBy(since));
    expect(row('mover').lag).toMatchObject({ ok: true, lag: { snapshots: 3 } });
    expect(row('mover').growingFrom).toBe(committedBy(since));
    // Caught up: not behind, so not falling behind.
    expect(row('done').lag).toMatchObject({ ok: true, lag: { snapshots: 0 } });
    expect(row('done').growingFrom).toBeNull();
    const growing = o.problems.filter((p) => p.kind === 'lag_growing' && p.table === t.name).map((p) => p.consumer).sort();
    expect(growing).toEqual([`late-${t.name}`, `mover-${t.name}`, `steady-${t.name}`]);
  });
});
