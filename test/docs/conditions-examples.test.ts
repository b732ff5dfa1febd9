// The trigger-condition examples run for real: the blocks of docs/triggers.md marked
// `example:cond-*` and the README's `example:conditions`, each as a bash script with `ips` on
// PATH against an `ips serve` (this process, state in the real PostgreSQL), over PyIceberg-written
// tables `playback` and `impressions` partitioned by day(event_ts) as `event_day`, `sink.json` a
// webhook to a receiver here. What each example says then happens when PyIceberg writes: the
// group waits for both tables, the day fires once with the day in the trigger (late data as a
// normal change), the subscription waiting for `upstream_done` fires with the signal it consumed,
// an output signal from a commit releases it again. The examples are used verbatim.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { startServer as startReceiver, webhookReceiver } from '../sinks/receivers.js';
import { PyIcebergWriter, type CatalogSpec, type Row } from '../triggers/trigger-pyiceberg.js';
import { spawn } from 'node:child_process';
import { example, ipsOnPath } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const ADMIN = 'docs-conditions-admin-token-0123456789';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Blocks of docs/triggers.md marked `example:<name>`. */
function docExample(name: string): string {
  const text = readFileSync(path.join(REPO_ROOT, 'docs', 'triggers.md'), 'utf8');
  for (const m of text.matchAll(/^```(\w+)[^\n]*?\bexample:([\w.-]+)[^\n]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    if (m[2] === name) return m[3]!;
  }
  throw new Error(`docs/triggers.md has no example marked example:${name}`);
}

let nextId = 1;
function rowsOn(day: string, n = 3): Row[] {
  const base = Date.parse(`${day}T00:00:00Z`) * 1000;
  return Array.from({ length: n }, () => {
    const id = nextId++;
    return { id, name: `r${id}`, ts_us: base + (id % 80_000) * 1_000_003 };
  });
}

interface World {
  server: RunningServer;
  cwd: string;
  events: Json[];
  append(table: 'playback' | 'impressions', rows: Row[]): Promise<{ snapshot: { snapshot_id: string } }>;
  run(script: string, env?: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }>;
  api(method: string, p: string, body?: unknown, status?: number): Promise<Json>;
  waitFor<T>(label: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T>;
  close(): Promise<void>;
}

describe('docs/triggers.md and README: trigger conditions, run as written', () => {
  let writer: PyIcebergWriter;
  let catalogDb: { url: string; drop: () => Promise<void> };
  let tmp: string;
  const worlds: World[] = [];

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-docs-cond-'));
    writer = PyIcebergWriter.start();
    catalogDb = await createPgDatabase('docs_cond_catalog');
  }, 120_000);

  afterAll(async () => {
    for (const w of worlds) await w.close().catch(() => {});
    await writer?.close();
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** A fresh service and state, the two tables, the consumers the examples name, and sink.json. */
  async function world(label: string): Promise<World> {
    const dir = mkdtempSync(path.join(tmp, `${label}-`));
    const state = await createPgDatabase(`docs_cond_${label}`);
    const config = loadServiceConfig({
      env: {
        DATABASE_URL: state.url, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(dir, 'icdc'), IPS_LOG_LEVEL: 'silent',
        IPS_TICK_MS: '100', IPS_RETRY_BASE_MS: '200', IPS_SINK_ALLOWED_HOSTS: '127.0.0.1',
      },
    });
    const server = await startServer(config);
    const recv = webhookReceiver(undefined);
    const hook = await startReceiver(recv.handler);
    writeFileSync(path.join(dir, 'sink.json'), JSON.stringify({ type: 'webhook', url: `${hook.url}/hook` }));
    const catalog: CatalogSpec = { name: `docs_${label}`, uri: catalogDb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'), warehouse: `file://${path.join(dir, 'lake')}` };
    const binDir = ipsOnPath(dir);

    async function api(method: string, p: string, body?: unknown, status = 200): Promise<Json> {
      const r = await fetch(server.url + p, {
        method, headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await r.text();
      expect(r.status, `${method} ${p}: ${text}`).toBe(status);
      return text ? JSON.parse(text) : undefined;
    }
    async function waitFor<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> {
      const end = Date.now() + 30_000;
      for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(40);
      }
    }
    for (const t of ['playback', 'impressions']) {
      await writer.createTable(catalog, `docs.${t}`, 'day', 'event_day');
      await api('POST', '/v1/tables', { name: t, ref: { kind: 'sql', uri: catalogDb.url, catalog_name: catalog.name, identifier: `docs.${t}` }, poll_interval_seconds: 3600 }, 201);
      await waitFor(`the first poll of ${t}`, async () => (await server.state.repos.watch.get(t))?.metadataLocation);
    }
    for (const [name, tables] of [['joiner', ['playback', 'impressions']], ['daily_joiner', ['playback', 'impressions']], ['playback_agg', ['playback']], ['upstream', ['impressions']]] as const) {
      await api('POST', '/v1/consumers', { name, tables: tables.map((table) => ({ table })) }, 201);
    }
    const w: World = {
      server, cwd: dir, events: recv.events as Json[], api, waitFor,
      async append(table, rows) {
        const r = await writer.append(catalog, `docs.${table}`, rows);
        await api('POST', `/v1/tables/${table}/events`, undefined, 202);
        return r;
      },
      // Asynchronously: the service runs in this process and must keep answering the script's calls.
      run(script, env = {}) {
        return new Promise((resolve, reject) => {
          const p = spawn('bash', ['-c', `set -euo pipefail\n${script}`], {
            cwd: dir, env: { ...process.env, PATH: `${binDir}${path.delimiter}${process.env.PATH}`, IPS_URL: server.url, IPS_TOKEN: ADMIN, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
          p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
          p.on('error', reject);
          p.on('exit', (status) => resolve({ status, stdout, stderr }));
        });
      },
      async close() {
        await hook.close();
        await server.close();
        await state.drop();
      },
    };
    worlds.push(w);
    return w;
  }

  const bySub = (w: World, sub: string): Json[] => w.events.filter((e) => e.data.subscription === sub);
  async function heldBack(w: World, sub: string): Promise<void> {
    await w.waitFor(`${sub} to hold its changes back`, async () => (await w.api('GET', `/v1/subscriptions/${sub}`)).pending_since !== null);
  }
  async function commitAll(w: World, evs: Json[]): Promise<void> {
    for (const e of evs) await w.api('POST', `/v1/batches/${e.data.batch_id}/commit`);
  }

  test('docs/triggers.md: cond-all, cond-partition, cond-signals and cond-output do what the page says', async () => {
    const w = await world('page');
    for (const name of ['cond-all', 'cond-partition', 'cond-signals']) {
      const r = await w.run(docExample(name));
      expect(r.status, `${name}: ${r.stderr}`).toBe(0);
    }
    // cond-signals listed the signal it sent, with its sender.
    const listed = await w.run('ips signals list --name upstream_done --json');
    expect(JSON.parse(listed.stdout).signals).toMatchObject([{ name: 'upstream_done', params: { date: '2026-11-02', source: 'etl' }, sender: 'admin:configured' }]);
    expect((await w.api('GET', '/v1/subscriptions/join-both')).condition).toEqual({ all: ['playback', 'impressions'] });
    expect((await w.api('GET', '/v1/subscriptions/daily-join')).condition).toEqual({ all: ['playback', 'impressions'], partition: { field: 'event_day', quiet_seconds: 21600 } });
    expect((await w.api('GET', '/v1/subscriptions/agg-after-upstream')).condition).toEqual({ signals: [{ name: 'upstream_done', params: { date: '2026-11-02' } }] });

    // impressions first: the group and the day wait for playback.
    const i1 = await w.append('impressions', rowsOn('2026-11-02'));
    await heldBack(w, 'join-both');
    await heldBack(w, 'daily-join');
    expect(w.events).toEqual([]);

    // cond-output: the upstream run commits its batch with an output signal.
    const prep = await w.api('POST', '/v1/consumers/upstream/batches', { table: 'impressions', instance_id: 'upstream-run-1' }, 201);
    const out = await w.run(docExample('cond-output'), { IPS_BATCH_ID: prep.batch.id });
    expect(out.status, out.stderr).toBe(0);
    expect((await w.api('GET', `/v1/batches/${prep.batch.id}`)).state).toBe('committed');

    // playback: the group is complete, the day too, and the signal releases the aggregate.
    const p1 = await w.append('playback', rowsOn('2026-11-02'));
    const join = await w.waitFor('join-both', () => bySub(w, 'join-both')[0]);
    expect(join.data.tables.map((t: Json) => [t.table, t.to_snapshot_id]).sort()).toEqual([['impressions', i1.snapshot.snapshot_id], ['playback', p1.snapshot.snapshot_id]]);
    const day = await w.waitFor('daily-join', () => bySub(w, 'daily-join')[0]);
    expect(day.data.partition).toEqual({ field: 'event_day', values: ['2026-11-02'], quiet_values: [] });
    const agg = await w.waitFor('agg-after-upstream', () => bySub(w, 'agg-after-upstream')[0]);
    expect(agg.data.signals.map((s: Json) => [s.params, s.consumer])).toEqual([[{ date: '2026-11-02', source: 'etl' }, null]]);
    await commitAll(w, [join, day, agg]);

    // More playback for the same day: the group waits for impressions; the day fired already (a
    // normal change); the aggregate fires with the output signal, the one left.
    const p2 = await w.append('playback', rowsOn('2026-11-02'));
    const late = await w.waitFor('the late-data trigger', () => bySub(w, 'daily-join')[1]);
    expect(late.data.partition).toBeUndefined();
    expect(late.data.tables.map((t: Json) => t.to_snapshot_id)).toEqual([p2.snapshot.snapshot_id]);
    const agg2 = await w.waitFor('agg-after-upstream again', () => bySub(w, 'agg-after-upstream')[1]);
    expect(agg2.data.signals.map((s: Json) => [s.params, s.consumer, s.batch_id])).toEqual([[{ date: '2026-11-02' }, 'upstream', prep.batch.id]]);
    await heldBack(w, 'join-both');
    expect(bySub(w, 'join-both')).toHaveLength(1);
  });

  test('README: the conditions example', async () => {
    const w = await world('readme');
    await w.append('impressions', rowsOn('2026-11-03'));
    const prep = await w.api('POST', '/v1/consumers/upstream/batches', { table: 'impressions', instance_id: 'upstream-run-1' }, 201);
    const r = await w.run(example('conditions'), { IPS_BATCH_ID: prep.batch.id });
    expect(r.status, r.stderr).toBe(0);
    // Two signals: the admin's and the commit's output signal.
    const listed = (await w.api('GET', '/v1/signals?name=upstream_done')).signals as Json[];
    expect(listed.map((s) => s.consumer)).toEqual(['upstream', null]);
    expect(r.stdout).toContain(listed[0].id);

    const p = await w.append('playback', rowsOn('2026-11-03'));
    const day = await w.waitFor('daily-join', () => bySub(w, 'daily-join')[0]);
    expect(day.data.partition).toEqual({ field: 'event_day', values: ['2026-11-03'], quiet_values: [] });
    const agg = await w.waitFor('agg-after-upstream', () => bySub(w, 'agg-after-upstream')[0]);
    expect(agg.data.tables[0].to_snapshot_id).toBe(p.snapshot.snapshot_id);
    // The oldest matching signal is consumed first: the admin's.
    expect(agg.data.signals.map((s: Json) => s.id)).toEqual([listed[1].id]);
  });
});
