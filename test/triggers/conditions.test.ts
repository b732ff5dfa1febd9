// Trigger conditions from the seed's signals (issue 18) end to end, state on the real PostgreSQL
// and on embedded PGlite: an `ips serve` in this process with its trigger loops, source tables written by PyIceberg (a
// SqlCatalog in a database of the test PostgreSQL, data on local disk; day(ts)-partitioned where
// a partition condition needs it), webhook receivers that check the CloudEvents contract and
// "run the workflow" by committing the batch (with the consumer's own token, through the API or
// the real `ips` CLI as a process).
//
// Expected values come from outside ips: the snapshot ids and summaries PyIceberg committed, the
// UTC day of every row the test wrote (the partition values), the signals the test sent.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { maestroReceiver, startServer as startReceiver, webhookReceiver, type Recorded } from '../sinks/receivers.js';
import { REPO_ROOT } from '../setup/env.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';
import { PyIcebergWriter, type AppendResult, type CatalogSpec, type Row } from './trigger-pyiceberg.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const rand = (): string => crypto.randomBytes(3).toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let nextRowId = 1;
/** Rows on a UTC day (`2026-11-02`), at distinct microsecond times within it. */
function rowsOn(day: string, n = 2): Row[] {
  const base = Date.parse(`${day}T00:00:00Z`) * 1000;
  return Array.from({ length: n }, () => {
    const id = nextRowId++;
    return { id, name: `row-${id}`, ts_us: base + (id % 80_000) * 1_000_003 };
  });
}
/** The UTC day of a row, computed here (the partition value an engine writes for day(ts)). */
const dayOf = (r: Row): string => new Date(Math.floor(r.ts_us / 1000)).toISOString().slice(0, 10);

interface Table {
  name: string;
  identifier: string;
  append(rows: Row[]): Promise<AppendResult & { rows: Row[] }>;
}

interface Event { at: number; ev: Json; req: Recorded }
interface Hook {
  url: string;
  accepted: Event[];
  /** Each accepted event's commit (the workflow's), in order. */
  commits: Promise<{ status: number; body: Json; text: string }>[];
}

describe.each(DRIVERS)('trigger conditions: all-of groups, partition-complete, custom and output signals (%s state)', (driver) => {
  let writer: PyIcebergWriter;
  let catalogDb: { url: string; drop: () => Promise<void> };
  let stateDb: { url: string; drop: () => Promise<void> } | undefined;
  let tmp: string;
  let catalog: CatalogSpec;
  let server: RunningServer;
  const logs: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const ns = `cond_${driver}_${rand()}`;

  async function call(method: string, p: string, body?: unknown, token: string | null = ADMIN): Promise<{ status: number; body: Json; text: string }> {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    let parsed: Json;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: r.status, body: parsed, text };
  }

  async function ok(method: string, p: string, body?: unknown, status = 200, token?: string): Promise<Json> {
    const r = await call(method, p, body, token);
    expect(r.status, `${method} ${p}: ${r.text}`).toBe(status);
    return r.body;
  }

  async function waitFor<T>(label: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}; service log:\n${logs.slice(-15).join('\n')}`);
      await sleep(40);
    }
  }

  /** Runs the real CLI against the server; resolves with its exit code and output. */
  function cli(args: string[], token: string = ADMIN): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, IPS_URL: server.url, IPS_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      p.on('error', reject);
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  async function newTable(label: string, partition?: 'day' | 'hour' | 'identity'): Promise<Table> {
    const name = `${label}-${rand()}`;
    const identifier = `${ns}.${name.replace(/-/g, '_')}`;
    await writer.createTable(catalog, identifier, partition);
    // Polled hourly: every change in this file is announced with POST /v1/tables/{name}/events.
    await ok('POST', '/v1/tables', { name, ref: { kind: 'sql', uri: catalogDb.url, catalog_name: catalog.name, identifier }, poll_interval_seconds: 3600 }, 201);
    await waitFor(`the first poll of ${name}`, async () => (await server.state.repos.watch.get(name))?.metadataLocation);
    return {
      name, identifier,
      async append(rows) {
        const r = await writer.append(catalog, identifier, rows);
        await ok('POST', `/v1/tables/${name}/events`, undefined, 202);
        return { ...r, rows };
      },
    };
  }

  async function newConsumer(tables: string[]): Promise<{ name: string; token: string }> {
    const name = `con-${rand()}`;
    const b = await ok('POST', '/v1/consumers', { name, tables: tables.map((table) => ({ table })), issue_token: true }, 201);
    return { name, token: b.token.token as string };
  }

  /**
   * A webhook receiver whose workflow commits each accepted batch with `commit(ev)` (default:
   * POST /v1/batches/{id}/commit with the consumer's token), one run after the other.
   */
  async function newHook(secret: string, commit: ((ev: Json) => Promise<{ status: number; body: Json; text: string }>) | null): Promise<Hook> {
    const recv = webhookReceiver(secret);
    const hook: Hook = { url: '', accepted: [], commits: [] };
    const s = await startReceiver((req, res) => {
      const before = recv.events.length;
      recv.handler(req, res);
      if (recv.events.length > before) {
        const ev = recv.events.at(-1)!;
        hook.accepted.push({ at: Date.now(), ev, req });
        if (commit) {
          const prev = hook.commits.at(-1) ?? Promise.resolve(undefined);
          hook.commits.push(prev.then(() => commit(ev)));
        }
      }
    });
    closers.push(() => s.close());
    hook.url = `${s.url}/hooks/ips`;
    return hook;
  }

  const commitWith = (token: string) => (ev: Json) => call('POST', `/v1/batches/${ev.data.batch_id}/commit`, undefined, token);

  async function sub(name: string): Promise<Json> {
    return ok('GET', `/v1/subscriptions/${name}`);
  }

  /** The subscription looked at its tables after the last change and held it back (the condition does not hold). */
  async function heldBack(name: string): Promise<void> {
    await waitFor(`${name} to hold its changes back`, async () => (await sub(name)).pending_since !== null);
  }

  /**
   * The subscription was checked (and found nothing to fire) after `since`, database time: a
   * check releases the row at updated_at with the next check an idle interval later; a check
   * that began before `since` keeps the wake-up's earlier next check instead.
   */
  async function checkedAfter(name: string, since: number): Promise<void> {
    await waitFor(`${name} to be checked again`, async () => {
      const s = (await server.state.repos.subscriptions.get(name))!;
      return s.updatedAt.getTime() > since && s.nextCheckAt.getTime() > s.updatedAt.getTime() + 30_000;
    });
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-cond-'));
    writer = PyIcebergWriter.start();
    catalogDb = await createPgDatabase('cond_catalog');
    if (driver === 'postgres') stateDb = await createPgDatabase('conditions');
    catalog = { name: `cat_${rand()}`, uri: catalogDb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'), warehouse: `file://${path.join(tmp, 'source')}` };
    let config = loadServiceConfig({
      env: {
        DATABASE_URL: stateDb?.url ?? 'memory:', IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'icdc'), IPS_LOG_LEVEL: 'silent',
        IPS_TICK_MS: '100', IPS_RETRY_BASE_MS: '200', IPS_SINK_ALLOWED_HOSTS: '127.0.0.1',
      },
    });
    expect(config.database.driver).toBe(driver);
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config, { log: (l) => logs.push(`${new Date().toISOString()} ${l}`) });
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    await server?.close();
    await writer?.close();
    await stateDb?.drop();
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('an all group over two tables fires only when both changed; tables of the batch are what PyIceberg committed', async () => {
    const secret = `whsec-${rand()}`;
    const a = await newTable('all-a');
    const b = await newTable('all-b');
    const con = await newConsumer([a.name, b.name]);
    const hook = await newHook(secret, commitWith(con.token));
    const name = `all-${rand()}`;
    const created = await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name, b.name], condition: { all: [a.name, b.name] }, sink: { type: 'webhook', url: hook.url, secret },
    }, 201);
    expect(created.condition).toEqual({ all: [a.name, b.name] });

    // Round 1: A alone is held back, then B makes the group complete.
    const a1 = await a.append(rowsOn('2026-11-02'));
    await heldBack(name);
    expect(hook.accepted).toEqual([]);
    expect((await sub(name)).fired).toBe('0');
    const b1 = await b.append(rowsOn('2026-11-02', 3));
    const first = await waitFor('the trigger once both tables changed', () => hook.accepted[0]);
    const byTable = new Map((first.ev.data.tables as Json[]).map((t) => [t.table, t]));
    expect(byTable.get(a.name)).toMatchObject({ from_snapshot_id: null, to_snapshot_id: a1.snapshot.snapshot_id, record_count: a1.snapshot.summary['added-records'] });
    expect(byTable.get(b.name)).toMatchObject({ from_snapshot_id: null, to_snapshot_id: b1.snapshot.snapshot_id, record_count: b1.snapshot.summary['added-records'] });
    expect((await hook.commits[0]!).status).toBe(200);

    // Round 2: B alone (twice) is held back; A completes it. The batch continues where the first ended.
    const b2 = await b.append(rowsOn('2026-11-03'));
    await heldBack(name);
    const b3 = await b.append(rowsOn('2026-11-03'));
    await heldBack(name);
    expect(hook.accepted).toHaveLength(1);
    expect((await sub(name)).fired).toBe('1');
    const a2 = await a.append(rowsOn('2026-11-03'));
    const second = await waitFor('the second trigger', () => hook.accepted[1]);
    const byTable2 = new Map((second.ev.data.tables as Json[]).map((t) => [t.table, t]));
    expect(byTable2.get(a.name)).toMatchObject({ from_snapshot_id: a1.snapshot.snapshot_id, to_snapshot_id: a2.snapshot.snapshot_id });
    expect(byTable2.get(b.name)).toMatchObject({ from_snapshot_id: b1.snapshot.snapshot_id, to_snapshot_id: b3.snapshot.snapshot_id });
    expect(b3.snapshot.parent_id).toBe(b2.snapshot.snapshot_id);
    expect(Number(byTable2.get(b.name).record_count)).toBe(Number(b2.snapshot.summary['added-records']) + Number(b3.snapshot.summary['added-records']));
    expect((await hook.commits[1]!).status).toBe(200);
    expect(hook.accepted).toHaveLength(2);
  });

  test('an all group combines with max_delay_seconds: one table alone fires once its oldest change is that old', async () => {
    const secret = `whsec-${rand()}`;
    const a = await newTable('alld-a');
    const b = await newTable('alld-b');
    const con = await newConsumer([a.name, b.name]);
    const hook = await newHook(secret, commitWith(con.token));
    const name = `alld-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name, b.name], condition: { all: [a.name, b.name], max_delay_seconds: 2 }, sink: { type: 'webhook', url: hook.url, secret },
    }, 201);
    const t0 = Date.now();
    const a1 = await a.append(rowsOn('2026-11-04'));
    const ev = await waitFor('the overdue trigger', () => hook.accepted[0]);
    // Only the 2 s max delay can have fired it: B never changed.
    expect(ev.at - t0).toBeGreaterThanOrEqual(2000);
    expect(ev.ev.data.tables.map((t: Json) => t.table)).toEqual([a.name]);
    expect(ev.ev.data.tables[0].to_snapshot_id).toBe(a1.snapshot.snapshot_id);
    expect((await hook.commits[0]!).status).toBe(200);
  });

  test('partition-complete: fires once per day when both tables have data for it, with that day in the trigger; late data is a normal change', async () => {
    const secret = `whsec-${rand()}`;
    const a = await newTable('day-a', 'day');
    const b = await newTable('day-b', 'day');
    const con = await newConsumer([a.name, b.name]);
    const hook = await newHook(secret, commitWith(con.token));
    const name = `days-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name, b.name], condition: { all: [a.name, b.name], partition: { field: 'ts_day' } },
      sink: { type: 'webhook', url: hook.url, secret },
    }, 201);

    // A writes two days in one commit (PyIceberg writes a file per partition); B has neither.
    const aRows = [...rowsOn('2026-11-02'), ...rowsOn('2026-11-03')];
    const a1 = await a.append(aRows);
    expect(a1.snapshot.summary['added-data-files']).toBe('2');
    await heldBack(name);
    const parts = await ok('GET', `/v1/subscriptions/${name}/partitions`);
    expect(parts).toMatchObject({ field: 'ts_day', fired: [] });
    expect(parts.waiting.map((w: Json) => [w.value, w.tables])).toEqual([...new Set(aRows.map(dayOf))].sort().map((d) => [d, [a.name]]));
    expect(hook.accepted).toEqual([]);

    // B gets 2026-11-02: that day is complete (2026-11-03 is not).
    const b1 = await b.append(rowsOn('2026-11-02'));
    const first = await waitFor('the trigger for 2026-11-02', () => hook.accepted[0]);
    expect(first.ev.data.partition).toEqual({ field: 'ts_day', values: [dayOf(b1.rows[0]!)], quiet_values: [] });
    expect(first.ev.data.partition.values).toEqual(['2026-11-02']);
    // The batch itself holds every pending change: A's two days and B's one.
    const byTable = new Map((first.ev.data.tables as Json[]).map((t) => [t.table, t]));
    expect(byTable.get(a.name).changed_partitions.sort()).toEqual(['ts_day=2026-11-02', 'ts_day=2026-11-03']);
    expect(byTable.get(b.name).changed_partitions).toEqual(['ts_day=2026-11-02']);
    expect((await hook.commits[0]!).status).toBe(200);

    // B gets 2026-11-03: complete now (A's data for it went out in the first batch, it still counts).
    const b2 = await b.append(rowsOn('2026-11-03'));
    const second = await waitFor('the trigger for 2026-11-03', () => hook.accepted[1]);
    expect(second.ev.data.partition).toEqual({ field: 'ts_day', values: ['2026-11-03'], quiet_values: [] });
    expect(second.ev.data.tables.map((t: Json) => [t.table, t.to_snapshot_id])).toEqual([[b.name, b2.snapshot.snapshot_id]]);
    expect((await hook.commits[1]!).status).toBe(200);

    // Late data for 2026-11-02 in A: a normal change, no partition announced again.
    const a2 = await a.append(rowsOn('2026-11-02'));
    const third = await waitFor('the late-data trigger', () => hook.accepted[2]);
    expect(third.ev.data.partition).toBeUndefined();
    expect(third.ev.data.tables.map((t: Json) => [t.table, t.to_snapshot_id])).toEqual([[a.name, a2.snapshot.snapshot_id]]);
    expect((await hook.commits[2]!).status).toBe(200);

    const fired = await ok('GET', `/v1/subscriptions/${name}/partitions`);
    expect(fired.fired.map((f: Json) => [f.value, f.reason])).toEqual([['2026-11-02', 'complete'], ['2026-11-03', 'complete']]);
    expect(fired.waiting).toEqual([]);
    const viaCli = await cli(['subscriptions', 'partitions', name, '--json']);
    expect(viaCli.code, viaCli.stderr).toBe(0);
    expect(JSON.parse(viaCli.stdout)).toEqual(fired);
    const trig = await ok('GET', `/v1/subscriptions/${name}/triggers`);
    expect(trig.triggers.map((t: Json) => t.partition?.values.map((v: Json) => v.value) ?? null)).toEqual([['2026-11-02'], ['2026-11-03'], null]);
  });

  test('partition-complete with quiet_seconds: a day only one table wrote fires once no commit wrote it for that long', async () => {
    const secret = `whsec-${rand()}`;
    const a = await newTable('quiet-a', 'day');
    const b = await newTable('quiet-b', 'day');
    const con = await newConsumer([a.name, b.name]);
    const hook = await newHook(secret, commitWith(con.token));
    const name = `quiet-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name, b.name], condition: { all: [a.name, b.name], partition: { field: 'ts_day', quiet_seconds: 2 } },
      sink: { type: 'webhook', url: hook.url, secret },
    }, 201);
    const a1 = await a.append(rowsOn('2026-11-05'));
    const ev = await waitFor('the quiet trigger', () => hook.accepted[0]);
    expect(ev.ev.data.partition).toEqual({ field: 'ts_day', values: ['2026-11-05'], quiet_values: ['2026-11-05'] });
    // Quiet counts from the commit PyIceberg made: the trigger was stored at least 2 s after it.
    const [t] = (await ok('GET', `/v1/subscriptions/${name}/triggers`)).triggers;
    expect(Date.parse(t.created_at) - Number(a1.snapshot.timestamp_ms)).toBeGreaterThanOrEqual(2000);
    expect((await hook.commits[0]!).status).toBe(200);
    expect((await ok('GET', `/v1/subscriptions/${name}/partitions`)).fired.map((f: Json) => [f.value, f.reason])).toEqual([['2026-11-05', 'quiet']]);
  });

  test('a day whose data already went out with another day\'s batch fires on its own once quiet, in a trigger without a batch', async () => {
    const secret = `whsec-${rand()}`;
    const a = await newTable('qnb-a', 'day');
    const b = await newTable('qnb-b', 'day');
    const con = await newConsumer([a.name, b.name]);
    const hook = await newHook(secret, (ev) => (ev.data.batch_id === null ? Promise.resolve({ status: 200, body: null, text: '' }) : commitWith(con.token)(ev)));
    const name = `qnb-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name, b.name], condition: { all: [a.name, b.name], partition: { field: 'ts_day', quiet_seconds: 3 } },
      sink: { type: 'webhook', url: hook.url, secret },
    }, 201);
    // A writes two days in one commit, B the first one at once: that day fires with a batch holding both of A's days.
    const a1 = await a.append([...rowsOn('2026-11-10'), ...rowsOn('2026-11-11')]);
    await b.append(rowsOn('2026-11-10'));
    const first = await waitFor('the first day', () => hook.accepted[0]);
    expect(first.ev.data.partition).toEqual({ field: 'ts_day', values: ['2026-11-10'], quiet_values: [] });
    expect((await hook.commits[0]!).status).toBe(200);
    // Nothing is pending now; 2026-11-11 (A only) goes quiet 3 s after A's commit and fires alone.
    const second = await waitFor('the quiet day', () => hook.accepted[1]);
    expect(second.ev.data).toMatchObject({ batch_id: null, tables: [], partition: { field: 'ts_day', values: ['2026-11-11'], quiet_values: ['2026-11-11'] } });
    const [, t2] = (await ok('GET', `/v1/subscriptions/${name}/triggers`)).triggers;
    expect(Date.parse(t2.created_at) - Number(a1.snapshot.timestamp_ms)).toBeGreaterThanOrEqual(3000);
    expect((await ok('GET', `/v1/subscriptions/${name}/partitions`)).fired.map((f: Json) => [f.value, f.reason])).toEqual([['2026-11-10', 'complete'], ['2026-11-11', 'quiet']]);
  });

  test('a custom signal with a date parameter releases exactly the matching subscription, consumed once per firing', async () => {
    const secret = `whsec-${rand()}`;
    const t = await newTable('sig');
    const c1 = await newConsumer([t.name]);
    const c2 = await newConsumer([t.name]);
    const hook1 = await newHook(secret, commitWith(c1.token));
    const hook2 = await newHook(secret, commitWith(c2.token));
    const sig = `upstream_done_${rand()}`;
    const s1 = `sig1-${rand()}`;
    const s2 = `sig2-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: s1, consumer: c1.name, tables: [t.name], condition: { signals: [{ name: sig, params: { date: '2026-11-02' } }] }, sink: { type: 'webhook', url: hook1.url, secret } }, 201);
    // s2 through the CLI: --signal NAME:k=v
    const created = await cli(['subscriptions', 'create', s2, '--consumer', c2.name, '--table', t.name, '--signal', `${sig}:date=2026-11-03`,
      '--sink', JSON.stringify({ type: 'webhook', url: hook2.url, secret }), '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).condition).toEqual({ signals: [{ name: sig, params: { date: '2026-11-03' } }] });

    const a1 = await t.append(rowsOn('2026-11-02'));
    await heldBack(s1);
    await heldBack(s2);
    // A signal with another date, and one with no params, release neither.
    await ok('POST', `/v1/signals/${sig}`, { params: { date: '2026-11-01' } }, 201);
    const other = await ok('POST', `/v1/signals/${sig}`, {}, 201);
    await checkedAfter(s1, Date.parse(other.created_at));
    await checkedAfter(s2, Date.parse(other.created_at));
    expect(hook1.accepted).toEqual([]);
    expect(hook2.accepted).toEqual([]);

    // date=2026-11-02 releases s1 only.
    const sent = await ok('POST', `/v1/signals/${sig}`, { params: { date: '2026-11-02', run: 'r1' } }, 201);
    expect(sent).toMatchObject({ name: sig, params: { date: '2026-11-02', run: 'r1' }, sender: 'admin:configured', consumer: null, batch_id: null });
    const ev1 = await waitFor('s1 released', () => hook1.accepted[0]);
    expect(ev1.ev.data.signals).toEqual([{ ...sent }]);
    expect(ev1.ev.data.tables[0].to_snapshot_id).toBe(a1.snapshot.snapshot_id);
    await checkedAfter(s2, Date.parse(sent.created_at));
    expect(hook2.accepted).toEqual([]);
    expect((await sub(s2)).fired).toBe('0');
    expect((await hook1.commits[0]!).status).toBe(200);

    // Consumed: new changes do not fire s1 again until another matching signal comes.
    const a2 = await t.append(rowsOn('2026-11-02'));
    await heldBack(s1);
    expect(hook1.accepted).toHaveLength(1);
    // The CLI sends the next one (the admin token): s1 fires with it, s2 still waits.
    const again = await cli(['signals', 'send', sig, '--param', 'date=2026-11-02', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const sent2 = JSON.parse(again.stdout);
    const ev2 = await waitFor('s1 released again', () => hook1.accepted[1]);
    expect(ev2.ev.data.signals.map((s: Json) => s.id)).toEqual([sent2.id]);
    expect(ev2.ev.data.tables[0]).toMatchObject({ from_snapshot_id: a1.snapshot.snapshot_id, to_snapshot_id: a2.snapshot.snapshot_id });
    expect((await hook1.commits[1]!).status).toBe(200);

    // date=2026-11-03 releases s2 with everything since its start.
    await ok('POST', `/v1/signals/${sig}`, { params: { date: '2026-11-03' } }, 201);
    const ev3 = await waitFor('s2 released', () => hook2.accepted[0]);
    expect(ev3.ev.data.signals.map((s: Json) => s.params.date)).toEqual(['2026-11-03']);
    expect(ev3.ev.data.tables[0]).toMatchObject({ from_snapshot_id: null, to_snapshot_id: a2.snapshot.snapshot_id });
    expect((await hook2.commits[0]!).status).toBe(200);
    expect(hook1.accepted).toHaveLength(2);

    // Listed with time and sender, newest first (API and CLI).
    const listed = (await ok('GET', `/v1/signals?name=${sig}`)).signals as Json[];
    expect(listed.map((s) => s.params.date ?? null)).toEqual(['2026-11-03', '2026-11-02', '2026-11-02', null, '2026-11-01']);
    expect(listed.every((s) => s.sender === 'admin:configured' && !Number.isNaN(Date.parse(s.created_at)))).toBe(true);
    const cliList = await cli(['signals', 'list', '--name', sig, '--json']);
    expect(cliList.code, cliList.stderr).toBe(0);
    expect(JSON.parse(cliList.stdout).signals.map((s: Json) => s.id)).toEqual(listed.map((s) => s.id));
  });

  test('fire_on_signals: a signal alone fires a trigger without a batch; with changes pending the signal comes with their batch', async () => {
    const secret = `whsec-${rand()}`;
    const t = await newTable('onsig');
    const con = await newConsumer([t.name]);
    const hook = await newHook(secret, null);
    const sig = `nightly_${rand()}`;
    const name = `onsig-${rand()}`;
    const created = await cli(['subscriptions', 'create', name, '--consumer', con.name, '--table', t.name, '--signal', sig, '--fire-on-signals',
      '--sink', JSON.stringify({ type: 'webhook', url: hook.url, secret }), '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).condition).toEqual({ signals: [{ name: sig, params: {} }], fire_on_signals: true });

    // The table has no changes at all: the signal fires it, without a batch.
    const s1 = await ok('POST', `/v1/signals/${sig}`, { params: { date: '2026-11-02' } }, 201);
    const ev1 = await waitFor('the signal-only trigger', () => hook.accepted[0]);
    expect(ev1.ev.data).toMatchObject({ subscription: name, consumer: con.name, batch_id: null, instance_id: null, tables: [], seq: '1' });
    expect(ev1.ev.data.signals.map((g: Json) => g.id)).toEqual([s1.id]);
    const [t1] = (await ok('GET', `/v1/subscriptions/${name}/triggers`)).triggers;
    expect(t1).toMatchObject({ batch_id: null, state: 'delivered', signal_ids: [s1.id] });

    // Changes without a signal wait; the next signal fires with their batch.
    const a1 = await t.append(rowsOn('2026-11-02'));
    await heldBack(name);
    expect(hook.accepted).toHaveLength(1);
    const s2 = await ok('POST', `/v1/signals/${sig}`, {}, 201);
    const ev2 = await waitFor('the trigger with a batch', () => hook.accepted[1]);
    expect(ev2.ev.data.signals.map((g: Json) => g.id)).toEqual([s2.id]);
    expect(ev2.ev.data.tables.map((x: Json) => x.to_snapshot_id)).toEqual([a1.snapshot.snapshot_id]);
    expect((await call('POST', `/v1/batches/${ev2.ev.data.batch_id}/commit`, undefined, con.token)).status).toBe(200);

    // Validation: fire_on_signals without signals.
    const bad = await call('POST', '/v1/subscriptions', { name: `onsig-bad-${rand()}`, consumer: con.name, tables: [t.name], condition: { fire_on_signals: true }, sink: { type: 'webhook', url: hook.url } });
    expect(bad.status).toBe(400);
    expect(bad.body.detail).toContain('--signal');
  });

  test('output signals chain two consumers: the upstream run commits with --signal, the downstream subscription waits for it', async () => {
    const secret = `whsec-${rand()}`;
    const up = await newTable('up');
    const down = await newTable('down');
    const cu = await newConsumer([up.name]);
    const cd = await newConsumer([down.name]);
    const signal = `up_done_${rand()}`;
    // The upstream workflow commits with the real CLI and its consumer token, announcing the day it processed.
    const cliRuns: { code: number | null; stdout: string; stderr: string }[] = [];
    const upHook = await newHook(secret, async (ev) => {
      const day = [...new Set((ev.data.tables[0].changed_partitions as string[]))][0] ?? 'unpartitioned';
      const r = await cli(['step', 'commit', ev.data.batch_id, '--signal', `${signal}:date=2026-11-02,table=${day}`, '--json'], cu.token);
      cliRuns.push(r);
      return { status: r.code === 0 ? 200 : 500, body: r.code === 0 ? JSON.parse(r.stdout) : undefined, text: r.stderr };
    });
    const downHook = await newHook(secret, commitWith(cd.token));
    const upSub = `up-${rand()}`;
    const downSub = `down-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: upSub, consumer: cu.name, tables: [up.name], sink: { type: 'webhook', url: upHook.url, secret } }, 201);
    await ok('POST', '/v1/subscriptions', { name: downSub, consumer: cd.name, tables: [down.name], condition: { signals: [{ name: signal, params: { date: '2026-11-02' } }] }, sink: { type: 'webhook', url: downHook.url, secret } }, 201);

    const d1 = await down.append(rowsOn('2026-11-02'));
    await heldBack(downSub);
    expect(downHook.accepted).toEqual([]);

    await up.append(rowsOn('2026-11-02'));
    const upEv = await waitFor('the upstream trigger', () => upHook.accepted[0]);
    const upCommit = await upHook.commits[0]!;
    expect(upCommit.status, upCommit.text).toBe(200);
    expect(upCommit.body.signals).toHaveLength(1);
    const downEv = await waitFor('the downstream trigger, released by the output signal', () => downHook.accepted[0]);
    expect(downEv.ev.data.signals).toHaveLength(1);
    expect(downEv.ev.data.signals[0]).toMatchObject({
      name: signal, params: { date: '2026-11-02', table: 'unpartitioned' }, consumer: cu.name, batch_id: upEv.ev.data.batch_id,
    });
    expect(downEv.ev.data.signals[0].sender).toMatch(/^token:/);
    expect(downEv.ev.data.tables[0].to_snapshot_id).toBe(d1.snapshot.snapshot_id);
    expect((await downHook.commits[0]!).status).toBe(200);

    // A replayed commit announces nothing: still one signal of that name.
    const replay = await cli(['step', 'commit', upEv.ev.data.batch_id, '--signal', `${signal}:date=2026-11-02`, '--json'], cu.token);
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ already_committed: true, signals: [] });
    expect((await ok('GET', `/v1/signals?name=${signal}`)).signals).toHaveLength(1);
  });

  test('Maestro sink: typed run_params carry the partition values and the consumed signals', async () => {
    const a = await newTable('mae-a', 'day');
    const con = await newConsumer([a.name]);
    const maestro = maestroReceiver({ workflows: ['cond_wf'] });
    const rs = await startReceiver(maestro.handler);
    closers.push(() => rs.close());
    const sig = `ready_${rand()}`;
    const name = `mae-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name], condition: { partition: { field: 'ts_day' }, signals: [{ name: sig, params: { date: '2026-11-07' } }] },
      sink: { type: 'maestro', url: rs.url, workflow_id: 'cond_wf' },
    }, 201);
    await a.append([...rowsOn('2026-11-07'), ...rowsOn('2026-11-08')]);
    await heldBack(name);
    const sent = await ok('POST', `/v1/signals/${sig}`, { params: { date: '2026-11-07', by: 'etl' } }, 201);
    await waitFor('the Maestro start', () => maestro.starts[0]);
    const p = (maestro.starts[0] as Json).run_params;
    // One table in the group: both days are complete at once, in order.
    expect(p.partition_field).toEqual({ type: 'STRING', value: 'ts_day' });
    expect(p.partition_values).toEqual({ type: 'STRING_ARRAY', value: ['2026-11-07', '2026-11-08'] });
    expect(p.signals).toEqual({ type: 'STRING_ARRAY', value: [sig] });
    expect(p.signal_params).toEqual({ type: 'MAP', value: { [sig]: { type: 'STRING_MAP', value: sent.params } } });
  });

  test('a trigger cancelled before delivery (its batch aborted) gives back its partition value and its signal; the next firing has both', async () => {
    const a = await newTable('cancel-a', 'day');
    const con = await newConsumer([a.name]);
    // A sink that is down at first: the trigger stays pending.
    let down = true;
    const recv = webhookReceiver(undefined);
    const rs = await startReceiver((req, res) => {
      if (down) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"down"}');
        return;
      }
      recv.handler(req, res);
    });
    closers.push(() => rs.close());
    const sig = `go_${rand()}`;
    const name = `cancel-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name, consumer: con.name, tables: [a.name], condition: { partition: { field: 'ts_day' }, signals: [{ name: sig }] },
      sink: { type: 'webhook', url: `${rs.url}/hook` }, max_attempts: 1000,
    }, 201);
    const sent = await ok('POST', `/v1/signals/${sig}`, { params: { n: '1' } }, 201);
    const a1 = await a.append(rowsOn('2026-11-09'));
    const pending = await waitFor('a pending trigger that failed once', async () => (await ok('GET', `/v1/subscriptions/${name}/triggers`)).triggers.find((t: Json) => t.state === 'pending' && t.attempts > 0));
    expect(pending.partition).toEqual({ field: 'ts_day', values: [{ value: '2026-11-09', reason: 'complete' }] });
    expect(pending.signal_ids).toEqual([sent.id]);
    expect((await ok('GET', `/v1/subscriptions/${name}/partitions`)).fired.map((f: Json) => f.value)).toEqual(['2026-11-09']);

    // The run never started: aborting its batch cancels the trigger and releases what it had taken.
    await ok('POST', `/v1/batches/${pending.batch_id}/abort`, { reason: 'test' }, 200, con.token);
    down = false;
    const ev = await waitFor('the next firing', () => recv.events[0] as Json);
    expect(ev.data.batch_id).not.toBe(pending.batch_id);
    expect(ev.data.partition).toEqual({ field: 'ts_day', values: ['2026-11-09'], quiet_values: [] });
    expect(ev.data.signals.map((g: Json) => g.id)).toEqual([sent.id]);
    expect(ev.data.tables[0].to_snapshot_id).toBe(a1.snapshot.snapshot_id);
    const all = (await ok('GET', `/v1/subscriptions/${name}/triggers`)).triggers as Json[];
    expect(all.map((t) => t.state)).toEqual(['cancelled', 'delivered']);
  });

  test('who may send signals: admins by name; a consumer token only as output signals of its own batches', async () => {
    const t = await newTable('auth');
    const con = await newConsumer([t.name]);
    const other = await newConsumer([t.name]);
    const name = `authsig_${rand()}`;
    const forbidden = await call('POST', `/v1/signals/${name}`, { params: { date: '2026-11-02' } }, con.token);
    expect(forbidden.status, forbidden.text).toBe(403);
    expect(forbidden.body).toMatchObject({ code: 'FORBIDDEN' });
    expect(forbidden.body.detail).toContain('--signal');
    expect((await call('POST', `/v1/signals/${name}`, {}, null)).status).toBe(401);
    const viaCli = await cli(['signals', 'send', name, '--json'], con.token);
    expect(viaCli.code).toBe(1);
    expect(JSON.parse(viaCli.stderr).error.code).toBe('FORBIDDEN');
    expect((await ok('GET', `/v1/signals?name=${name}`, undefined, 200, con.token)).signals).toEqual([]);

    // Another consumer's batch cannot be committed (and so cannot announce signals) with this token.
    await t.append(rowsOn('2026-11-02'));
    const prep = await ok('POST', `/v1/consumers/${other.name}/batches`, { table: t.name, instance_id: `run-${rand()}` }, 201, other.token);
    const foreign = await call('POST', `/v1/batches/${prep.batch.id}/commit`, { signals: [{ name }] }, con.token);
    expect(foreign.status).toBe(403);
    const own = await call('POST', `/v1/batches/${prep.batch.id}/commit`, { signals: [{ name, params: { date: '2026-11-02' } }] }, other.token);
    expect(own.status, own.text).toBe(200);
    const listed = (await ok('GET', `/v1/signals?name=${name}`)).signals as Json[];
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ name, consumer: other.name, batch_id: prep.batch.id, params: { date: '2026-11-02' } });
  });

  test('bad input: unknown table in a group, a partition condition on a field with no time transform, unsafe signal names: typed errors that say what to do', async () => {
    const day = await newTable('bad-day', 'day');
    const ident = await newTable('bad-ident', 'identity');
    const flat = await newTable('bad-flat');
    const con = await newConsumer([day.name, ident.name, flat.name]);
    const sink = { type: 'webhook', url: 'http://127.0.0.1:9/hook' };
    const create = (condition: Json, tables = [day.name, ident.name]): Promise<{ status: number; body: Json; text: string }> =>
      call('POST', '/v1/subscriptions', { name: `bad-${rand()}`, consumer: con.name, tables, condition, sink });

    const unknown = await create({ all: [day.name, flat.name] });
    expect(unknown.status, unknown.text).toBe(400);
    expect(unknown.body.code).toBe('UNKNOWN_GROUP_TABLE');
    expect(unknown.body.detail).toContain(`"${flat.name}"`);
    expect(unknown.body.detail).toContain('add it to the tables');

    const identity = await create({ partition: { field: 'name_id' } }, [ident.name]);
    expect(identity.status, identity.text).toBe(422);
    expect(identity.body.code).toBe('NOT_A_TIME_PARTITION');
    expect(identity.body.detail).toContain('identity transform');
    expect(identity.body.detail).toContain('year, month, day or hour');

    const unpartitioned = await create({ partition: { field: 'ts_day' } }, [flat.name]);
    expect(unpartitioned.status).toBe(422);
    expect(unpartitioned.body.code).toBe('NOT_A_TIME_PARTITION');
    expect(unpartitioned.body.detail).toContain('no partition field "ts_day"');

    // The day table's field is fine; the identity table of the same group is not.
    const mixed = await create({ all: [day.name, ident.name], partition: { field: 'ts_day' } });
    expect(mixed.body.code).toBe('NOT_A_TIME_PARTITION');
    expect(mixed.body.detail).toContain(ident.name);

    for (const bad of ['bad name', '1starts_with_digit', '../etc', 'x'.repeat(200), 'semi;colon', 'ünïcode']) {
      const r = await call('POST', `/v1/signals/${encodeURIComponent(bad)}`, {});
      expect(r.status, `${bad}: ${r.text}`).toBe(400);
      expect(r.body.code).toBe('INVALID_SIGNAL_NAME');
      expect(r.body.detail).toContain('safe identifier');
      const s = await create({ signals: [{ name: bad }] }, [day.name]);
      expect(s.body.code, s.text).toBe('INVALID_SIGNAL_NAME');
    }
    const badParam = await call('POST', '/v1/signals/fine_name', { params: { 'no spaces': 'x' } });
    expect(badParam.body.code).toBe('INVALID_SIGNAL_PARAMS');
    const cliBad = await cli(['signals', 'send', 'bad name', '--json']);
    expect(cliBad.code).toBe(1);
    expect(JSON.parse(cliBad.stderr).error.code).toBe('INVALID_SIGNAL_NAME');
    expect((await ok('GET', '/v1/signals?name=fine_name')).signals).toEqual([]);

    // A commit with a bad output signal commits nothing: the batch stays open.
    await flat.append(rowsOn('2026-11-02'));
    const prep = await ok('POST', `/v1/consumers/${con.name}/batches`, { table: flat.name, instance_id: `run-${rand()}` }, 201, con.token);
    const refused = await call('POST', `/v1/batches/${prep.batch.id}/commit`, { signals: [{ name: 'no good' }] }, con.token);
    expect(refused.body.code).toBe('INVALID_SIGNAL_NAME');
    expect((await ok('GET', `/v1/batches/${prep.batch.id}`)).state).toBe('open');
    const cliCommit = await cli(['step', 'commit', prep.batch.id, '--signal', 'bad name:date=1', '--json'], con.token);
    expect(JSON.parse(cliCommit.stderr).error.code).toBe('INVALID_SIGNAL_NAME');
    expect((await ok('GET', `/v1/batches/${prep.batch.id}`)).state).toBe('open');
  });
});
