// Incremental triggers (issue 5, DESIGN.md "Triggers") end to end: `startServer` with its trigger
// loops on a free port, state in the real PostgreSQL (a fresh database per suite) and in embedded
// PGlite; source tables written by PyIceberg (a SqlCatalog in a database of the test PostgreSQL,
// data on local disk, and one table on the test S3 server); the sinks are real HTTP receivers on
// 127.0.0.1 (test/sinks/receivers.ts, written from the documented request shapes).
//
// Expectations come from outside ips: snapshot ids and summaries (added-data-files,
// added-records, added-files-size) as PyIceberg committed them and reads them back, the rows the
// test wrote (for the ranges), the HMAC computed here over the raw request bytes, Maestro's
// request_id as Java's UUID.nameUUIDFromBytes computes it, and the batches as GET /v1/batches/{id}
// shows them.
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import {
  airflowReceiver, maestroReceiver, send, startServer as startReceiver, webhookReceiver, type Handler, type Recorded, type TestServer,
} from '../sinks/receivers.js';
import { testEnv } from '../setup/env.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';
import { PyIcebergWriter, type AppendResult, type CatalogSpec, type Row, type WrittenSnapshot } from './trigger-pyiceberg.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const rand = (): string => crypto.randomBytes(3).toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// independent expectations

/** An Iceberg timestamptz as the spec's JSON single-value form: 2017-11-16T22:31:08.123456+00:00. */
function tsJson(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  return `${d.toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}+00:00`;
}

/** The ranges of the rows written (id: long as a decimal string; ts: timestamptz). */
function rowRanges(rows: Row[]): Record<string, { min: string; max: string; flag: string }> {
  const ids = rows.map((r) => r.id);
  const ts = rows.map((r) => r.ts_us);
  return {
    id: { min: String(Math.min(...ids)), max: String(Math.max(...ids)), flag: 'exact' },
    ts: { min: tsJson(Math.min(...ts)), max: tsJson(Math.max(...ts)), flag: 'exact' },
  };
}

/** Files, records and bytes the snapshots added, from the summaries PyIceberg wrote. */
function summed(snaps: WrittenSnapshot[]): { file_count: number; record_count: string; byte_count: string } {
  const sum = (k: string): bigint => snaps.reduce((n, s) => n + BigInt(s.summary[k] ?? '0'), 0n);
  for (const s of snaps) expect(s.summary.operation).toBe('append');
  return { file_count: Number(sum('added-data-files')), record_count: sum('added-records').toString(), byte_count: sum('added-files-size').toString() };
}

/** Java's UUID.nameUUIDFromBytes (Maestro's IdHelper.createUuid): MD5, version 3, IETF variant. */
function javaNameUuid(s: string): string {
  const b = crypto.createHash('md5').update(s, 'utf8').digest();
  b[6] = (b[6]! & 0x0f) | 0x30;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** An S3 bucket notification (the AWS event message structure, version 2.1; MinIO sends the same). */
function s3Notification(bucket: string, keys: string[]): Json {
  return {
    Records: keys.map((key, i) => ({
      eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: 'us-east-1', eventTime: new Date().toISOString(), eventName: 'ObjectCreated:Put',
      userIdentity: { principalId: 'ips-test' }, requestParameters: { sourceIPAddress: '127.0.0.1' }, responseElements: {},
      s3: {
        s3SchemaVersion: '1.0', configurationId: 'ips-tables',
        bucket: { name: bucket, ownerIdentity: { principalId: 'ips-test' }, arn: `arn:aws:s3:::${bucket}` },
        object: { key, size: 1024, eTag: crypto.randomBytes(16).toString('hex'), sequencer: `0055AED6DCD9028${i}` },
      },
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// file-wide: one PyIceberg interpreter, one catalog database

let writer: PyIcebergWriter;
let catalogDb: { url: string; drop: () => Promise<void> };
let tmp: string;
let nextRowId = 1;
let nextTs = 1_700_000_000_000_000;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-trig-'));
  writer = PyIcebergWriter.start();
  catalogDb = await createPgDatabase('trig_catalog');
});

afterAll(async () => {
  await writer?.close();
  await catalogDb?.drop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Appended extends AppendResult {
  rows: Row[];
}

interface SourceTable {
  name: string;
  identifier: string;
  catalog: CatalogSpec;
  appends: Appended[];
  /** Appends rows (default: `n` fresh ones) in one PyIceberg commit: one data file. */
  append(opts?: { n?: number; rows?: Row[] }): Promise<Appended>;
}

function freshRows(n: number): Row[] {
  return Array.from({ length: n }, () => {
    const id = nextRowId++;
    nextTs += 1_000_003; // not whole seconds: the bounds carry microseconds
    return { id, name: `row-${id}`, ts_us: nextTs };
  });
}

describe.each(DRIVERS)('triggers (%s state)', (driver) => {
  let server: RunningServer;
  let dropDb: (() => Promise<void>) | undefined;
  const logs: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  let localCatalog: CatalogSpec;
  const ns = `trig_${driver}_${rand()}`;

  // -- HTTP ----------------------------------------------------------------------------------

  async function call(method: string, p: string, body?: unknown, token: string = ADMIN): Promise<{ status: number; body: Json; text: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
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

  // -- fixtures ------------------------------------------------------------------------------

  async function newTable(label: string, opts: { poll?: number; catalog?: CatalogSpec; s3?: Json } = {}): Promise<SourceTable> {
    const name = `${label}-${rand()}`;
    const catalog = opts.catalog ?? localCatalog;
    const identifier = `${ns}.${name.replace(/-/g, '_')}`;
    await writer.createTable(catalog, identifier);
    await ok('POST', '/v1/tables', {
      name, ref: { kind: 'sql', uri: catalogDb.url, catalog_name: catalog.name, identifier },
      poll_interval_seconds: opts.poll ?? 1, ...(opts.s3 ? { s3: opts.s3 } : {}),
    }, 201);
    const t: SourceTable = {
      name, identifier, catalog, appends: [],
      async append(o = {}) {
        const rows = o.rows ?? freshRows(o.n ?? 2);
        const r = await writer.append(catalog, identifier, rows);
        const a = { ...r, rows };
        t.appends.push(a);
        return a;
      },
    };
    return t;
  }

  async function newConsumer(tables: string[]): Promise<{ name: string; token: string }> {
    const name = `con-${rand()}`;
    const b = await ok('POST', '/v1/consumers', { name, tables: tables.map((table) => ({ table, range_fields: ['id', 'ts'] })), issue_token: true }, 201);
    return { name, token: b.token.token as string };
  }

  /** The watcher has read the table's pointer once (so a later change is a change, not the first look). */
  async function polledOnce(table: string): Promise<void> {
    await waitFor(`the first poll of ${table}`, async () => {
      const w = await server.state.repos.watch.get(table);
      return w !== undefined && w.polledAt !== null && w.metadataLocation !== null;
    });
  }

  /**
   * The subscription has looked at its tables and found nothing to do: it rests until woken, for
   * trigger_idle_check_seconds (600 here: more than the default's 60 s, so the setting is what it obeys).
   */
  async function resting(sub: string): Promise<void> {
    const rests = async (): Promise<boolean> => Date.parse((await ok('GET', `/v1/subscriptions/${sub}`)).next_check_at) > Date.now() + 300_000;
    await waitFor(`subscription ${sub} to rest (next_check_at in the future)`, rests, 3000);
    // A wake from the first poll may still be on its way: it would look once more, then rest again.
    await sleep(250);
    await waitFor(`subscription ${sub} to rest again`, rests, 3000);
  }

  async function triggers(sub: string, state?: string): Promise<Json[]> {
    return (await ok('GET', `/v1/subscriptions/${sub}/triggers${state ? `?state=${state}` : ''}`)).triggers as Json[];
  }

  // -- a webhook receiver that can be down, broken, and that commits what it accepts ---------

  interface HookEntry { at: number; key: string; seq: string; status: number }
  interface Accepted { at: number; ev: Json; req: Recorded }
  interface Hook {
    url: string;
    server: TestServer;
    /** hold: requests wait unanswered until releaseHeld() (a delivery attempt in flight). */
    mode: 'ok' | 'down' | 'fail' | 'hold';
    held: ServerResponse[];
    releaseHeld(): void;
    log: HookEntry[];
    accepted: Accepted[];
    commits: Promise<Json>[];
  }

  async function newHook(secret: string, commitToken: string | null): Promise<Hook> {
    const recv = webhookReceiver(secret);
    const hook = { mode: 'ok', held: [], log: [], accepted: [], commits: [] } as unknown as Hook;
    hook.releaseHeld = () => {
      for (const res of hook.held.splice(0)) send(res, 503, { error: 'down for maintenance' });
    };
    const handler: Handler = (req, res) => {
      const at = Date.now();
      let ev: Json;
      try {
        ev = JSON.parse(req.body.toString('utf8'));
      } catch {
        ev = undefined;
      }
      const entry = { at, key: String(req.headers['idempotency-key']), seq: String(ev?.data?.seq) };
      if (hook.mode === 'hold') {
        hook.held.push(res);
        return;
      }
      if (hook.mode === 'down') {
        send(res, 503, { error: 'down for maintenance' });
      } else if (hook.mode === 'fail') {
        send(res, 500, 'receiver broken: NullPointerException');
      } else {
        const before = recv.events.length;
        recv.handler(req, res);
        if (recv.events.length > before) {
          hook.accepted.push({ at, ev, req });
          // The workflow the event started: it commits the batch with the consumer's own token.
          // One run after the other, as a workflow with one worker would.
          if (commitToken !== null) {
            const prev = hook.commits.at(-1) ?? Promise.resolve();
            hook.commits.push(prev.then(() => call('POST', `/v1/batches/${ev.data.batch_id}/commit`, undefined, commitToken)));
          }
        }
      }
      hook.log.push({ ...entry, status: res.statusCode });
    };
    const s = await startReceiver(handler);
    closers.push(() => s.close());
    hook.server = s;
    hook.url = `${s.url}/hooks/ips`;
    return hook;
  }

  /** The request is a CloudEvent signed with `secret` (HMAC-SHA256 over the raw body, computed here). */
  function expectSigned(req: Recorded, secret: string, ev: Json): void {
    expect(req.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
    const mac = `sha256=${crypto.createHmac('sha256', secret).update(req.body).digest('hex')}`;
    expect(req.headers['x-ips-signature-256']).toBe(mac);
    expect(req.headers['idempotency-key']).toBe(ev.id);
    expect(ev).toMatchObject({ specversion: '1.0', id: ev.data.dedup_key, subject: ev.data.consumer });
    expect(ev.source).toContain(ev.data.subscription);
  }

  /** A payload table entry equals what PyIceberg wrote over (from, to]. */
  function expectEntry(entry: Json, table: SourceTable, from: string | null, appended: Appended[]): void {
    expect(entry).toMatchObject({
      table: table.name,
      from_snapshot_id: from,
      to_snapshot_id: appended.at(-1)!.snapshot.snapshot_id,
      ...summed(appended.map((a) => a.snapshot)),
      ranges: rowRanges(appended.flatMap((a) => a.rows)),
    });
  }

  /** The payload carries the batch as GET /v1/batches/{id} shows it. */
  async function expectMatchesBatch(data: Json): Promise<Json> {
    const batch = await ok('GET', `/v1/batches/${data.batch_id}`);
    expect(data.consumer).toBe(batch.consumer);
    expect(data.instance_id).toBe(batch.instance_id);
    expect(data.tables.map((t: Json) => t.table)).toEqual(batch.tables.map((t: Json) => t.table));
    for (const [i, bt] of (batch.tables as Json[]).entries()) {
      expect(data.tables[i]).toMatchObject({
        from_snapshot_id: bt.from_snapshot_id, to_snapshot_id: bt.to_snapshot_id,
        icdc_table: bt.icdc.table, icdc_metadata_location: bt.icdc.metadata_location, icdc_snapshot_id: bt.icdc.snapshot_id,
        file_count: bt.file_count, record_count: bt.record_count, byte_count: bt.byte_count, ranges: bt.ranges,
      });
      // The ICDC table the workflow is told to read exists.
      expect(statSync(bt.icdc.metadata_location.replace(/^file:\/\//, '')).isFile()).toBe(true);
    }
    return batch;
  }

  // -- suite ---------------------------------------------------------------------------------

  beforeAll(async () => {
    localCatalog = { name: `cat_${driver}_${rand()}`, uri: catalogDb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'), warehouse: `file://${path.join(tmp, driver, 'source')}` };
    let databaseUrl = 'memory:';
    if (driver === 'postgres') {
      const created = await createPgDatabase('triggers');
      dropDb = created.drop;
      databaseUrl = created.url;
    }
    let config = loadServiceConfig({
      env: {
        DATABASE_URL: databaseUrl, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, driver, 'icdc'), IPS_LOG_LEVEL: 'silent',
        // Short loop period and retry base keep the waits in this file to a few seconds.
        IPS_TICK_MS: '100', IPS_RETRY_BASE_MS: '200', IPS_SINK_ALLOWED_HOSTS: '127.0.0.1',
        // A subscription with nothing to fire rests 10 minutes (default 60 s): what `resting` checks.
        IPS_TRIGGER_IDLE_CHECK_SECONDS: '600',
      },
    });
    expect(config.database.driver).toBe(driver);
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config, { log: (l) => logs.push(`${new Date().toISOString()} ${l}`) });
  });

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    await server?.close();
    await dropDb?.();
  });

  test('polling: a PyIceberg append reaches the webhook as a signed CloudEvent; the next one continues where the committed batch ended', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('polled', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `hook-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);

    const t0 = Date.now();
    const a1 = await table.append({ n: 3 });
    const first = await waitFor('the first event', () => hook.accepted[0], 30_000);
    // Found by polling alone (interval 1 s): no event was sent. Latency is measured in the
    // trigger-latency benchmark, not here.
    expect(first.at).toBeGreaterThan(t0);
    expectSigned(first.req, secret, first.ev);
    expect(first.ev.data).toMatchObject({ subscription: sub, consumer: con.name, seq: '1' });
    expect(first.ev.data.tables).toHaveLength(1);
    expectEntry(first.ev.data.tables[0], table, null, [a1]);
    expect(first.ev.data.ranges).toEqual(rowRanges(a1.rows));
    await expectMatchesBatch(first.ev.data);
    const [t1] = await triggers(sub);
    expect(t1).toMatchObject({ seq: '1', batch_id: first.ev.data.batch_id, dedup_key: first.ev.id, state: 'delivered', attempts: 1, outcome: 'started', last_error: null });

    // The receiver's workflow committed the batch with the consumer token.
    const commit1 = await hook.commits[0]!;
    expect(commit1.status, commit1.text).toBe(200);
    expect(commit1.body.already_committed).toBe(false);

    const a2 = await table.append({ n: 2 });
    const second = await waitFor('the second event', () => hook.accepted[1], 30_000);
    expectSigned(second.req, secret, second.ev);
    expect(second.ev.data.seq).toBe('2');
    expect(second.ev.id).not.toBe(first.ev.id);
    expect(second.ev.data.tables[0].from_snapshot_id).toBe(first.ev.data.tables[0].to_snapshot_id);
    expectEntry(second.ev.data.tables[0], table, a1.snapshot.snapshot_id, [a2]);
    expect(a2.snapshot.parent_id).toBe(a1.snapshot.snapshot_id);
    await expectMatchesBatch(second.ev.data);
    expect((await hook.commits[1]!).status).toBe(200);
    expect((await triggers(sub)).map((t) => [t.seq, t.state, t.attempts])).toEqual([['1', 'delivered', 1], ['2', 'delivered', 1]]);
    expect(hook.log.every((l) => l.status === 202)).toBe(true);
  });

  test('a subscription deleted and created again under the same name fires for the changes after its predecessor\'s', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('recreated', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `again-${rand()}`;
    const body = { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } };
    await ok('POST', '/v1/subscriptions', body, 201);
    await polledOnce(table.name);
    const a1 = await table.append({ n: 2 });
    const first = await waitFor('the first subscription\'s event', () => hook.accepted[0], 30_000);
    expectEntry(first.ev.data.tables[0], table, null, [a1]);
    expect((await hook.commits[0]!).status).toBe(200);

    await ok('DELETE', `/v1/subscriptions/${sub}`);
    await ok('POST', '/v1/subscriptions', body, 201);
    const a2 = await table.append({ n: 3 });
    // Its first batch must not be mistaken for its predecessor's first batch (same name, seq 1).
    const second = await waitFor('the new subscription\'s event', () => hook.accepted[1], 30_000);
    expect(second.ev.data.seq).toBe('1');
    expect(second.ev.data.batch_id).not.toBe(first.ev.data.batch_id);
    expectEntry(second.ev.data.tables[0], table, a1.snapshot.snapshot_id, [a2]);
    expect((await hook.commits[1]!).status).toBe(200);
  });

  test('deleting a subscription whose trigger was never delivered aborts that batch; the next subscription gets the same changes', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('orphaned', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    hook.mode = 'down';
    const sub = `gone-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret }, max_attempts: 1000 }, 201);
    await polledOnce(table.name);
    const a1 = await table.append({ n: 4 });
    // Fired (batch and trigger stored) but the sink is down: the trigger stays pending.
    const pending = await waitFor('a pending trigger that failed once', async () => (await triggers(sub)).find((t) => t.state === 'pending' && t.attempts > 0));
    const held = await ok('GET', `/v1/batches/${pending!.batch_id}`);
    expect(held.state).toBe('open');

    const del = await ok('DELETE', `/v1/subscriptions/${sub}`);
    // Aborted by the deletion, or, when a retry was in flight at that moment (the sink is retried
    // every few hundred ms here), once that attempt failed: the next test holds one in flight.
    expect([[pending!.batch_id], []]).toContainEqual(del.aborted_batches);
    expect(del.deleted).toBe(sub);
    const aborted = await waitFor('the batch aborted', async () => {
      const b = await ok('GET', `/v1/batches/${pending!.batch_id}`);
      return b.state === 'aborted' ? b : undefined;
    });
    expect(JSON.stringify(aborted)).toContain('was deleted before its trigger was delivered');

    // A new subscription (another name) fires at once with the same changes: nothing held them.
    hook.mode = 'ok';
    const next = `next-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: next, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);
    const ev = await waitFor('the new subscription\'s event', () => hook.accepted.find((a) => a.ev.data.subscription === next), 30_000);
    expectEntry(ev.ev.data.tables[0], table, null, [a1]);
    expect(ev.ev.data.batch_id).not.toBe(pending!.batch_id);
  });

  test('a subscription deleted while its trigger is being delivered keeps the batch for that attempt; the attempt fails, the batch is aborted', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('inflight', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    hook.mode = 'hold';
    const sub = `inflight-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret }, max_attempts: 1000 }, 201);
    await polledOnce(table.name);
    const a1 = await table.append({ n: 3 });
    // The first attempt reached the sink and waits for its answer.
    await waitFor('a delivery attempt in flight', () => hook.held.length > 0 || undefined);
    const [inFlight] = await triggers(sub);
    const del = await ok('DELETE', `/v1/subscriptions/${sub}`);
    // Its run may be starting: the deletion keeps the batch.
    expect(del).toEqual({ deleted: sub, aborted_batches: [] });
    expect((await ok('GET', `/v1/batches/${inFlight!.batch_id}`)).state).toBe('open');
    // The sink answers 503: no run has the batch, and it no longer holds the consumer.
    hook.releaseHeld();
    const aborted = await waitFor('the batch aborted after the failed attempt', async () => {
      const b = await ok('GET', `/v1/batches/${inFlight!.batch_id}`);
      return b.state === 'aborted' ? b : undefined;
    });
    expect(JSON.stringify(aborted)).toContain(`subscription \\"${sub}\\" was deleted before its trigger was delivered`);
    hook.mode = 'ok';
    const next = `next-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: next, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);
    const ev = await waitFor('the new subscription\'s event', () => hook.accepted.find((a) => a.ev.data.subscription === next), 30_000);
    expectEntry(ev.ev.data.tables[0], table, null, [a1]);
  });

  test('events: POST /v1/tables/{name}/events wakes a table polled hourly; unknown tables are 404', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('evented', { poll: 3600 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `hook-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);
    await resting(sub);
    const watched = (await server.state.repos.watch.get(table.name))!;

    const a1 = await table.append();
    // Polled hourly: the change stays unseen without an event.
    await sleep(1200);
    expect(hook.log).toEqual([]);
    const still = (await server.state.repos.watch.get(table.name))!;
    expect(still.polledAt).toEqual(watched.polledAt);
    expect(still.nextPollAt.getTime() - still.polledAt!.getTime()).toBeGreaterThan(3000_000);
    expect((await ok('GET', `/v1/subscriptions/${sub}`)).fired).toBe('0');

    // The body may be an S3 bucket notification (or anything): the named table is polled now.
    const t0 = Date.now();
    const r = await ok('POST', `/v1/tables/${table.name}/events`, s3Notification('some-bucket', ['whatever/metadata/x.metadata.json']), 202);
    expect(r).toEqual({ woken: [table.name] });
    const ev = await waitFor('the event-driven trigger', () => hook.accepted[0], 30_000);
    // Far below the 3600 s poll interval: the event woke it (latency itself is benchmarked).
    expect(ev.at - t0).toBeLessThan(60_000);
    expectEntry(ev.ev.data.tables[0], table, null, [a1]);
    expectSigned(ev.req, secret, ev.ev);

    const missing = await call('POST', '/v1/tables/no-such-table/events', {});
    expect(missing.status, missing.text).toBe(404);
  });

  test('events: an S3 bucket notification for an object of a table on S3 wakes that table (POST /v1/events/s3)', async () => {
    const env = testEnv();
    const prefix = `trig-${driver}-${rand()}`;
    const s3Catalog: CatalogSpec = { ...localCatalog, name: `cat_s3_${driver}_${rand()}`, warehouse: `s3://${env.s3Bucket}/${prefix}` };
    const table = await newTable('ons3', {
      poll: 3600, catalog: s3Catalog,
      s3: { endpoint: env.s3Endpoint, region: env.s3Region, path_style: true, access_key_id: env.s3AccessKey, secret_access_key: env.s3SecretKey },
    });
    const other = await newTable('ons3-other', { poll: 3600, catalog: s3Catalog, s3: { endpoint: env.s3Endpoint, region: env.s3Region, path_style: true, access_key_id: env.s3AccessKey, secret_access_key: env.s3SecretKey } });
    const secret = `whsec-${rand()}`;
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `hook-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);
    await polledOnce(other.name);
    await resting(sub);

    const a1 = await table.append();
    expect(a1.metadata_location.startsWith(`s3://${env.s3Bucket}/${prefix}/`)).toBe(true);
    const key = a1.metadata_location.slice(`s3://${env.s3Bucket}/`.length);

    // Objects of no registered table: nothing is woken.
    const none = await ok('POST', '/v1/events/s3', s3Notification(env.s3Bucket, [`${prefix}-elsewhere/t/metadata/00001-x.metadata.json`, `unrelated/${key}`]), 202);
    expect(none).toEqual({ woken: [] });
    const wrongBucket = await ok('POST', '/v1/events/s3', s3Notification(`${env.s3Bucket}-other`, [key]), 202);
    expect(wrongBucket).toEqual({ woken: [] });
    await sleep(500);
    expect(hook.log).toEqual([]);

    // The new metadata file PyIceberg wrote on S3: its table (only) is polled now and fires.
    const t0 = Date.now();
    const woken = await ok('POST', '/v1/events/s3', s3Notification(env.s3Bucket, [key]), 202);
    expect(woken).toEqual({ woken: [table.name] });
    const ev = await waitFor('the S3-notified trigger', () => hook.accepted[0], 30_000);
    expect(ev.at - t0).toBeLessThan(60_000);
    expectEntry(ev.ev.data.tables[0], table, null, [a1]);
    expectSigned(ev.req, secret, ev.ev);
    await expectMatchesBatch(ev.ev.data);
  });

  test('a sink that is down gets its backlog in order once it is back (max_in_flight 3): contiguous ranges, no duplicate runs', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('backlog', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    hook.mode = 'down';
    const sub = `hook-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name: sub, consumer: con.name, tables: [table.name], max_in_flight: 3, max_attempts: 50, sink: { type: 'webhook', url: hook.url, secret },
    }, 201);
    await polledOnce(table.name);

    // While the receiver answers 503, three appends fire three batches, each chained after the
    // open ones (up to three in flight).
    const appended: Appended[] = [];
    for (let k = 1; k <= 3; k++) {
      appended.push(await table.append({ n: k }));
      await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
      await waitFor(`trigger ${k}`, async () => (await triggers(sub)).length === k);
    }
    await waitFor('two refused attempts', () => hook.log.length >= 2);
    const held = await ok('GET', `/v1/subscriptions/${sub}`);
    expect(held.undelivered.map((t: Json) => [t.seq, t.state])).toEqual([['1', 'pending'], ['2', 'pending'], ['3', 'pending']]);
    expect(held.undelivered[0].attempts).toBeGreaterThanOrEqual(1);
    expect(held.undelivered[0].last_error).toContain('503');
    // Only the oldest trigger was tried while the sink was down.
    expect(held.undelivered[1].attempts).toBe(0);
    expect(held.undelivered[2].attempts).toBe(0);
    const firstKey = held.undelivered[0].dedup_key;
    expect(new Set(hook.log.map((l) => l.key))).toEqual(new Set([firstKey]));
    const batchIds = (held.undelivered as Json[]).map((t) => t.batch_id);
    const open = (await ok('GET', `/v1/consumers/${con.name}/batches?state=open`)).batches as Json[];
    expect(open.map((o) => o.id).sort()).toEqual([...batchIds].sort());

    hook.mode = 'ok';
    await waitFor('the backlog', () => hook.accepted.length >= 3, 10_000);
    const evs = hook.accepted.map((a) => a.ev);
    expect(evs.map((e) => e.data.seq)).toEqual(['1', '2', '3']);
    expect(evs.map((e) => e.data.batch_id)).toEqual(batchIds);
    for (const a of hook.accepted) expectSigned(a.req, secret, a.ev);
    // Contiguous, as PyIceberg wrote the snapshots: each batch starts where the previous ends.
    expectEntry(evs[0].data.tables[0], table, null, [appended[0]!]);
    expectEntry(evs[1].data.tables[0], table, appended[0]!.snapshot.snapshot_id, [appended[1]!]);
    expectEntry(evs[2].data.tables[0], table, appended[1]!.snapshot.snapshot_id, [appended[2]!]);
    for (let i = 1; i < 3; i++) expect(evs[i].data.tables[0].from_snapshot_id).toBe(evs[i - 1].data.tables[0].to_snapshot_id);
    for (const e of evs) await expectMatchesBatch(e.data);

    // The receiver's workflow commits them in the order received.
    const commits = await Promise.all(hook.commits);
    expect(commits.map((c) => [c.status, c.body?.already_committed]), JSON.stringify(commits.map((c) => c.text))).toEqual([[200, false], [200, false], [200, false]]);
    await sleep(300); // nothing more comes: the commits leave nothing to fire
    expect(hook.accepted).toHaveLength(3);
    // Every dedup key started one run; requests in the order the triggers were fired.
    const okKeys = hook.log.filter((l) => l.status === 202).map((l) => l.key);
    expect(okKeys).toEqual(evs.map((e) => e.id));
    expect(new Set(okKeys).size).toBe(3);
    const seqOrder = hook.log.map((l) => Number(l.seq));
    expect([...seqOrder].sort((x, y) => x - y)).toEqual(seqOrder);

    const done = await triggers(sub);
    expect(done.map((t) => [t.seq, t.state, t.outcome])).toEqual([['1', 'delivered', 'started'], ['2', 'delivered', 'started'], ['3', 'delivered', 'started']]);
    expect(done[0].attempts).toBeGreaterThan(1);
    expect(done[0].attempts).toBe(hook.log.filter((l) => l.key === firstKey).length);
    expect([done[1].attempts, done[2].attempts]).toEqual([1, 1]);
    expect((await ok('GET', `/v1/subscriptions/${sub}`)).undelivered).toEqual([]);
    // One trigger per batch the subscription fired, and no other batch; the watermark is at the last append.
    const all = (await ok('GET', `/v1/consumers/${con.name}/batches`)).batches as Json[];
    expect(all.map((x) => [x.id, x.state]).sort()).toEqual(batchIds.map((id: string) => [id, 'committed']).sort());
    const wm = ((await ok('GET', `/v1/consumers/${con.name}`)).tables as Json[]).find((t) => t.table === table.name);
    expect(wm.snapshot_id).toBe(appended[2]!.snapshot.snapshot_id);
  });

  test('dead letter: a sink failing max_attempts times leaves a dead trigger with its error, holding later triggers; a retry by hand delivers both in order', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('deadletter', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    hook.mode = 'fail';
    const sub = `hook-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], max_attempts: 2, sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);
    const a1 = await table.append();
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);

    const [dead] = await waitFor('a dead trigger', async () => {
      const d = await triggers(sub, 'dead');
      return d.length > 0 && d;
    });
    expect(dead).toMatchObject({ seq: '1', state: 'dead', attempts: 2, delivered_at: null });
    expect(dead.last_error).toContain('500');
    await sleep(400); // no third attempt
    expect(hook.log.map((l) => [l.key, l.status])).toEqual([[dead.dedup_key, 500], [dead.dedup_key, 500]]);
    const shown = await ok('GET', `/v1/subscriptions/${sub}`);
    expect(shown.undelivered).toHaveLength(1);
    expect(shown.undelivered[0]).toMatchObject({ id: dead.id, state: 'dead', attempts: 2 });
    expect(shown.undelivered[0].last_error).toContain('500');
    expect(await triggers(sub, 'pending')).toEqual([]);

    // The receiver is fixed, and the consumer's own job commits batch 1 meanwhile: the next change
    // fires trigger 2, which waits behind the dead trigger 1 (a sink gets its triggers in order).
    hook.mode = 'ok';
    expect((await ok('POST', `/v1/batches/${dead.batch_id}/commit`, undefined, 200, con.token)).already_committed).toBe(false);
    const a2 = await table.append();
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
    const [, held] = await waitFor('trigger 2', async () => {
      const all = await triggers(sub);
      return all.length === 2 && all;
    });
    expect(held).toMatchObject({ seq: '2', state: 'pending', attempts: 0 });
    await sleep(500);
    expect(hook.accepted).toEqual([]);
    expect((await triggers(sub)).map((t) => [t.seq, t.state, t.attempts])).toEqual([['1', 'dead', 2], ['2', 'pending', 0]]);

    const retried = await ok('POST', `/v1/triggers/${dead.id}/retry`);
    expect(retried).toMatchObject({ id: dead.id, state: 'pending', attempts: 0 });
    await waitFor('the retried delivery and the one behind it', () => hook.accepted.length >= 2, 30_000);
    const [got, next] = hook.accepted;
    expect(got!.ev.id).toBe(dead.dedup_key);
    expectSigned(got!.req, secret, got!.ev);
    expectEntry(got!.ev.data.tables[0], table, null, [a1]);
    expect(next!.ev.id).toBe(held.dedup_key);
    expectEntry(next!.ev.data.tables[0], table, a1.snapshot.snapshot_id, [a2]);
    const after = await waitFor('the delivered states', async () => {
      const all = await triggers(sub);
      return all.every((t) => t.state === 'delivered') && all;
    });
    expect(after[0]).toMatchObject({ id: dead.id, attempts: 1, outcome: 'started', last_error: null });
    expect(after[1]).toMatchObject({ id: held.id, attempts: 1, outcome: 'started', last_error: null });
    expect((await ok('GET', `/v1/subscriptions/${sub}`)).undelivered).toEqual([]);
    // The receiver's commits: batch 1 had been committed (a no-op), batch 2 now.
    expect((await Promise.all(hook.commits)).map((c) => [c.status, c.body?.already_committed])).toEqual([[200, true], [200, false]]);
    // Only a dead trigger can be retried.
    const again = await call('POST', `/v1/triggers/${dead.id}/retry`);
    expect(again.status, again.text).toBe(409);
    expect(again.body.code).toBe('TRIGGER_NOT_DEAD');
  });

  /** Forwards the first request to `handler` (which records the run) and answers 500: the response was lost. */
  function loseFirstResponse(handler: Handler): Handler {
    let first = true;
    return (req, res) => {
      if (first && req.method === 'POST' && !req.url.startsWith('/auth/')) {
        first = false;
        const swallowed = { statusCode: 0, writeHead(s: number) { this.statusCode = s; return this; }, setHeader() {}, end() { return this; } };
        handler(req, swallowed as unknown as ServerResponse);
        expect(swallowed.statusCode).toBe(200);
        send(res, 500, { error: 'gateway lost the answer' });
        return;
      }
      return handler(req, res);
    };
  }

  test('Maestro sink: typed run_params carry the batch; a redelivery after a lost answer is DUPLICATED, one instance per request_id', async () => {
    const table = await newTable('maestro', { poll: 1 });
    const con = await newConsumer([table.name]);
    const maestro = maestroReceiver({ workflows: ['ips_daily_wf'], token: 'maestro-token-1', user: 'ips-bot' });
    const rs = await startReceiver(loseFirstResponse(maestro.handler));
    closers.push(() => rs.close());
    const sub = `maestro-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name: sub, consumer: con.name, tables: [table.name], sink: { type: 'maestro', url: rs.url, workflow_id: 'ips_daily_wf', user: 'ips-bot', token: 'maestro-token-1' },
    }, 201);
    await polledOnce(table.name);
    const a1 = await table.append({ n: 4 });
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);

    const [t] = await waitFor('the Maestro delivery', async () => {
      const d = await triggers(sub, 'delivered');
      return d.length > 0 && d;
    });
    expect(t).toMatchObject({ seq: '1', attempts: 2, outcome: 'duplicate' });
    // Two start requests, the same request_id (Java's nameUUIDFromBytes of the dedup key): one instance.
    expect(maestro.starts).toHaveLength(2);
    expect(maestro.starts.map((s) => s.request_id)).toEqual([javaNameUuid(t.dedup_key), javaNameUuid(t.dedup_key)]);
    expect([...maestro.uuids.get('ips_daily_wf')!]).toEqual([javaNameUuid(t.dedup_key)]);
    expect(rs.requests.every((r) => r.url === '/api/v3/workflows/ips_daily_wf/versions/active/actions/start')).toBe(true);
    expect(rs.requests[0]!.headers.authorization).toBe('Bearer maestro-token-1');
    expect(rs.requests[0]!.headers.user).toBe('ips-bot');

    const batch = await ok('GET', `/v1/batches/${t.batch_id}`);
    const bt = batch.tables[0];
    const p = (maestro.starts[0] as Json).run_params;
    const s = (v: string): Json => ({ type: 'STRING', value: v });
    expect(p).toMatchObject({
      subscription: s(sub), consumer: s(con.name), batch_id: s(batch.id), instance_id: s(batch.instance_id), seq: s('1'),
      source_tables: { type: 'STRING_ARRAY', value: [table.name] }, source_table: s(table.name),
      icdc_table: s(bt.icdc.table), icdc_metadata_location: s(bt.icdc.metadata_location), icdc_snapshot_id: s(bt.icdc.snapshot_id),
      from_snapshot_id: s(''), to_snapshot_id: s(a1.snapshot.snapshot_id),
      record_count: { type: 'LONG', value: Number(a1.snapshot.summary['added-records']) },
      file_count: { type: 'LONG', value: Number(a1.snapshot.summary['added-data-files']) },
      byte_count: { type: 'LONG', value: Number(a1.snapshot.summary['added-files-size']) },
    });
    const ranges = rowRanges(a1.rows);
    expect(bt.ranges).toEqual(ranges);
    expect(p.change_ranges).toEqual({
      type: 'MAP',
      value: Object.fromEntries(Object.entries(ranges).map(([col, r]) => [col, { type: 'MAP', value: { min: s(r.min), max: s(r.max), flag: s(r.flag) } }])),
    });
    expect(maestro.starts[1]).toEqual(maestro.starts[0]);
    expect((await ok('POST', `/v1/batches/${batch.id}/commit`, undefined, 200, con.token)).already_committed).toBe(false);
  });

  test('Airflow sink: conf carries the batch; a redelivery after a lost answer gets 409, counts as delivered, one dag run', async () => {
    const table = await newTable('airflow', { poll: 1 });
    const con = await newConsumer([table.name]);
    const airflow = airflowReceiver({ api: 'v2', dags: ['ips_dag'], jwtFor: { username: 'ips', password: 'airflow-pass' } });
    const rs = await startReceiver(loseFirstResponse(airflow.handler));
    closers.push(() => rs.close());
    const sub = `airflow-${rand()}`;
    await ok('POST', '/v1/subscriptions', {
      name: sub, consumer: con.name, tables: [table.name], sink: { type: 'airflow', url: rs.url, dag_id: 'ips_dag', username: 'ips', password: 'airflow-pass' },
    }, 201);
    await polledOnce(table.name);
    const a1 = await table.append({ n: 3 });
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);

    const [t] = await waitFor('the Airflow delivery', async () => {
      const d = await triggers(sub, 'delivered');
      return d.length > 0 && d;
    });
    expect(t).toMatchObject({ seq: '1', attempts: 2, outcome: 'duplicate' });
    const runs = airflow.runs.get('ips_dag')!;
    expect(runs.size).toBe(1);
    const [runId, conf] = [...runs.entries()][0]! as [string, Json];
    expect(t.run_id).toBe(runId);
    const posts = rs.requests.filter((r) => r.method === 'POST' && r.url === '/api/v2/dags/ips_dag/dagRuns');
    expect(posts).toHaveLength(2);
    const bodies = posts.map((r) => JSON.parse(r.body.toString('utf8')));
    expect(bodies.map((b) => b.dag_run_id)).toEqual([runId, runId]);
    expect(bodies[0].logical_date).toBeNull();
    // The duplicate was confirmed by reading the run back.
    expect(rs.requests.some((r) => r.method === 'GET' && r.url === `/api/v2/dags/ips_dag/dagRuns/${encodeURIComponent(runId)}`)).toBe(true);

    expect(conf).toMatchObject({ subscription: sub, consumer: con.name, seq: '1', dedup_key: t.dedup_key, batch_id: t.batch_id });
    expectEntry(conf.tables[0], table, null, [a1]);
    expect(conf.ranges).toEqual(rowRanges(a1.rows));
    const batch = await expectMatchesBatch(conf);
    expect((await ok('POST', `/v1/batches/${batch.id}/commit`, undefined, 200, con.token)).already_committed).toBe(false);
  });

  test('a subscription over two tables gets one batch; its ranges are the union of the tables\' ranges', async () => {
    const secret = `whsec-${rand()}`;
    const ta = await newTable('multi-a', { poll: 1 });
    const tb = await newTable('multi-b', { poll: 1 });
    const con = await newConsumer([ta.name, tb.name]);
    const hook = await newHook(secret, con.token);
    // A holds the lowest id and the latest ts, B the highest id and the earliest ts.
    const base = nextTs;
    nextTs += 100_000_000;
    const a = await ta.append({ rows: [{ id: 1_000_001, name: 'a1', ts_us: base + 90_000_001 }, { id: 1_000_050, name: 'a2', ts_us: base + 50_000_000 }] });
    const b = await tb.append({ rows: [{ id: 1_000_020, name: 'b1', ts_us: base + 10_000_007 }, { id: 1_000_099, name: 'b2', ts_us: base + 60_000_000 }, { id: 1_000_030, name: 'b3', ts_us: base + 20_000_000 }] });
    const sub = `multi-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [ta.name, tb.name], sink: { type: 'webhook', url: hook.url, secret } }, 201);

    const ev = await waitFor('the multi-table event', () => hook.accepted[0], 30_000);
    await sleep(300);
    expect(hook.accepted).toHaveLength(1);
    const data = ev.ev.data;
    expectSigned(ev.req, secret, ev.ev);
    const byName = new Map((data.tables as Json[]).map((t) => [t.table, t]));
    expect([...byName.keys()].sort()).toEqual([ta.name, tb.name].sort());
    expectEntry(byName.get(ta.name), ta, null, [a]);
    expectEntry(byName.get(tb.name), tb, null, [b]);
    const batch = await expectMatchesBatch(data);
    expect(batch.tables).toHaveLength(2);

    // The union from the batch JSON per table: min of the mins, max of the maxes.
    const num = (x: string): bigint => BigInt(x);
    const union: Record<string, Json> = {};
    for (const bt of batch.tables as Json[]) {
      for (const [col, r] of Object.entries(bt.ranges as Record<string, Json>)) {
        const u = union[col];
        if (!u) union[col] = { ...r };
        else if (col === 'id') {
          if (num(r.min) < num(u.min)) u.min = r.min;
          if (num(r.max) > num(u.max)) u.max = r.max;
        } else {
          if (r.min < u.min) u.min = r.min; // same-width ISO strings order as instants
          if (r.max > u.max) u.max = r.max;
        }
      }
    }
    expect(data.ranges).toEqual(union);
    // … and from the rows written.
    expect(data.ranges).toEqual(rowRanges([...a.rows, ...b.rows]));
    expect(data.ranges.id.min).toBe(byName.get(ta.name).ranges.id.min);
    expect(data.ranges.id.max).toBe(byName.get(tb.name).ranges.id.max);
    expect(data.ranges.ts.min).toBe(byName.get(tb.name).ranges.ts.min);
    expect(data.ranges.ts.max).toBe(byName.get(ta.name).ranges.ts.max);
    expect((await hook.commits[0]!).status).toBe(200);
  });

  test('condition min_files holds a change back until enough files came; max_delay_seconds fires anyway', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('minfiles', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `minfiles-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], condition: { min_files: 2 }, sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);

    const a1 = await table.append();
    expect(a1.snapshot.summary['added-data-files']).toBe('1');
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
    await waitFor('the change held back', async () => (await ok('GET', `/v1/subscriptions/${sub}`)).pending_since !== null);
    await sleep(800);
    expect(hook.log).toEqual([]);
    expect((await ok('GET', `/v1/subscriptions/${sub}`)).fired).toBe('0');

    const a2 = await table.append();
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
    const ev = await waitFor('the trigger after the second file', () => hook.accepted[0], 30_000);
    expectEntry(ev.ev.data.tables[0], table, null, [a1, a2]);
    expect(ev.ev.data.tables[0].file_count).toBe(2);
    expect((await hook.commits[0]!).status).toBe(200);

    // max_delay_seconds: far below min_files, but the oldest change is 2 s old.
    const table2 = await newTable('maxdelay', { poll: 1 });
    const con2 = await newConsumer([table2.name]);
    const hook2 = await newHook(secret, con2.token);
    const sub2 = `maxdelay-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub2, consumer: con2.name, tables: [table2.name], condition: { min_files: 100, max_delay_seconds: 2 }, sink: { type: 'webhook', url: hook2.url, secret } }, 201);
    await polledOnce(table2.name);
    const t0 = Date.now();
    const b1 = await table2.append();
    await ok('POST', `/v1/tables/${table2.name}/events`, undefined, 202);
    const ev2 = await waitFor('the overdue trigger', () => hook2.accepted[0], 30_000);
    // min_files 100 is never reached: only the 2 s max delay can have fired it.
    expect(ev2.at - t0).toBeGreaterThanOrEqual(2000);
    expectEntry(ev2.ev.data.tables[0], table2, null, [b1]);
    expect((await hook2.commits[0]!).status).toBe(200);
  });

  test('condition interval_seconds spaces triggers at least the interval apart', async () => {
    const secret = `whsec-${rand()}`;
    const table = await newTable('interval', { poll: 1 });
    const con = await newConsumer([table.name]);
    const hook = await newHook(secret, con.token);
    const sub = `interval-${rand()}`;
    await ok('POST', '/v1/subscriptions', { name: sub, consumer: con.name, tables: [table.name], condition: { interval_seconds: 3 }, sink: { type: 'webhook', url: hook.url, secret } }, 201);
    await polledOnce(table.name);

    const a1 = await table.append();
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
    const first = await waitFor('the first trigger', () => hook.accepted[0], 30_000);
    expectEntry(first.ev.data.tables[0], table, null, [a1]);
    expect((await hook.commits[0]!).status).toBe(200);
    const [t1] = await triggers(sub);
    const firedAt = Date.parse(t1.created_at);

    // The next change comes well within the interval: it waits for the interval to pass.
    const a2 = await table.append();
    await ok('POST', `/v1/tables/${table.name}/events`, undefined, 202);
    const second = await waitFor('the second trigger', () => hook.accepted[1], 30_000);
    expectEntry(second.ev.data.tables[0], table, a1.snapshot.snapshot_id, [a2]);
    const [, t2] = await triggers(sub);
    expect(Date.parse(t2.created_at) - firedAt).toBeGreaterThanOrEqual(3000);
    expect(second.at - firedAt).toBeGreaterThanOrEqual(3000);
    expect((await hook.commits[1]!).status).toBe(200);
  });
});
