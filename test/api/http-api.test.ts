// The HTTP API (issue 4) through real HTTP: startServer on a free port, fetch against it, the state
// in the real PostgreSQL (a fresh database per suite) and in embedded PGlite. The source table is
// fixtures/tables/playback (written by PyIceberg), copied into a temp directory. Expectations come
// from the table's own snapshot summaries (PyIceberg wrote them), read with a plain JSON parser,
// never from ips' own manifest reading.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseLossless } from 'lossless-json';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';

// ---------------------------------------------------------------------------------------------
// the fixture, as PyIceberg wrote it

interface FixtureSnapshot {
  /** Decimal string: the ids exceed 2^53. */
  id: string;
  sequenceNumber: string;
  timestampMs: string;
  summary: Record<string, string>;
}

function newestMetadata(tableDir: string): string {
  const metaDir = path.join(tableDir, 'metadata');
  return path.join(metaDir, readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!);
}

/** Where PyIceberg wrote the table (its files are named under it; the copy holds them under tableDir). */
function writtenLocation(tableDir: string): string {
  return (JSON.parse(readFileSync(newestMetadata(tableDir), 'utf8')) as { location: string }).location;
}

/** The snapshots of the newest metadata file of a table directory, oldest first (parent chain). */
function readSnapshots(tableDir: string): FixtureSnapshot[] {
  // Every number as its decimal text: a plain JSON.parse would round the 64-bit snapshot ids.
  const md = parseLossless(readFileSync(newestMetadata(tableDir), 'utf8'), undefined, (n: string) => n) as {
    'current-snapshot-id': string;
    snapshots: { 'snapshot-id': string; 'parent-snapshot-id'?: string; 'sequence-number': string; 'timestamp-ms': string; summary: Record<string, string> }[];
  };
  const byId = new Map(md.snapshots.map((s) => [s['snapshot-id'], s] as const));
  const chain: FixtureSnapshot[] = [];
  for (let cur = byId.get(md['current-snapshot-id']); cur; cur = cur['parent-snapshot-id'] ? byId.get(cur['parent-snapshot-id']) : undefined) {
    chain.unshift({ id: cur['snapshot-id'], sequenceNumber: cur['sequence-number'], timestampMs: cur['timestamp-ms'], summary: cur.summary });
  }
  return chain;
}

/** Summary keys, as the Iceberg spec names them (files, bytes, records changed by a snapshot). */
const FILE_KEYS = ['added-data-files', 'deleted-data-files', 'added-delete-files', 'removed-delete-files'];
const BYTE_KEYS = ['added-files-size', 'removed-files-size'];
const RECORD_KEYS = ['added-records', 'deleted-records'];

function sumKeys(snaps: FixtureSnapshot[], keys: string[]): bigint {
  let n = 0n;
  for (const s of snaps) {
    if (s.summary.operation === 'replace') continue;
    for (const k of keys) n += BigInt(s.summary[k] ?? '0');
  }
  return n;
}

/** The lag a consumer has when the snapshots `snaps` are still ahead of it, as the wire shows it. */
function lagFromSummaries(snaps: FixtureSnapshot[]): Record<string, unknown> {
  return {
    snapshots: snaps.length,
    files: sumKeys(snaps, FILE_KEYS).toString(),
    files_added: sumKeys(snaps, FILE_KEYS.filter((k) => k.startsWith('added-'))).toString(),
    files_removed: sumKeys(snaps, FILE_KEYS.filter((k) => !k.startsWith('added-'))).toString(),
    bytes: sumKeys(snaps, BYTE_KEYS).toString(),
    records: sumKeys(snaps, RECORD_KEYS).toString(),
    estimated: false,
    // Behind since the oldest snapshot not processed was committed.
    oldest_pending_at: snaps.length ? new Date(Number(snaps[0]!.timestampMs)).toISOString() : null,
  };
}

const ZERO_LAG = { snapshots: 0, files: '0', files_added: '0', files_removed: '0', bytes: '0', records: '0', estimated: false, oldest_pending_at: null };

// ---------------------------------------------------------------------------------------------
// HTTP

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

interface Res {
  status: number;
  type: string;
  text: string;
  body: Json;
}

interface CallOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is (malformed JSON, numbers JSON cannot carry exactly). */
  raw?: string;
  /** Bearer token; null sends no Authorization header. Default: the admin token. */
  token?: string | null;
  headers?: Record<string, string>;
}

const ADMIN_TOKEN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const BODY_LIMIT = 4096;

function uid(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

const DECIMAL = /^\d+$/;

describe.each(DRIVERS)('HTTP API (%s state, playback fixture)', (driver) => {
  let tmp: string;
  let tableDir: string;
  let rollbackDir: string;
  let warehouse: string;
  let server: RunningServer;
  let dropDb: (() => Promise<void>) | undefined;
  /** postgres only: the suite's database. */
  let pgUrl: string | undefined;
  /** The fixture's snapshots, oldest first. */
  let snaps: FixtureSnapshot[];

  async function call(method: string, p: string, opts: CallOptions = {}): Promise<Res> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await r.text();
    let parsed: Json = undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: r.status, type: r.headers.get('content-type') ?? '', text, body: parsed };
  }

  /** The response is an RFC 9457 problem with this status and code. */
  function expectProblem(r: Res, status: number, code: string): void {
    expect({ status: r.status, code: r.body?.code }, r.text).toEqual({ status, code });
    expect(r.type.startsWith('application/problem+json')).toBe(true);
    expect(r.body.status).toBe(status);
    expect(r.body.type).toBe(`urn:ips:problem:${code.toLowerCase().replace(/_/g, '-')}`);
    expect(typeof r.body.detail).toBe('string');
    expect(r.body.detail.length).toBeGreaterThan(0);
  }

  async function ok(method: string, p: string, opts: CallOptions = {}, status = 200): Promise<Json> {
    const r = await call(method, p, opts);
    expect(r.status, `${method} ${p}: ${r.text}`).toBe(status);
    return r.body;
  }

  async function newConsumer(table: string, extra: Record<string, unknown> = {}): Promise<{ name: string; token: string; tokenId: string }> {
    const name = uid('con');
    const b = await ok('POST', '/v1/consumers', { body: { name, tables: [{ table }], issue_token: true, ...extra } }, 201);
    expect(b.name).toBe(name);
    expect(b.tables).toHaveLength(1);
    expect(b.tables[0].version).toBe('1');
    return { name, token: b.token.token as string, tokenId: b.token.id as string };
  }

  function prepare(consumer: string, body: Record<string, unknown>, token?: string): Promise<Res> {
    return call('POST', `/v1/consumers/${consumer}/batches`, { body, ...(token !== undefined ? { token } : {}) });
  }

  async function watermark(consumer: string, table: string): Promise<Json> {
    const c = await ok('GET', `/v1/consumers/${consumer}`);
    const w = (c.tables as Json[]).find((t) => t.table === table);
    expect(w, `watermark of ${consumer} on ${table}`).toBeDefined();
    return w;
  }

  async function tableRow(table: string, consumer: string): Promise<Json> {
    const t = await ok('GET', `/v1/tables/${table}`);
    const row = (t.consumers as Json[]).find((c) => c.consumer === consumer);
    expect(row, `row of ${consumer} in ${table}`).toBeDefined();
    return row;
  }

  function icdcDir(consumer: string, table: string): string {
    return path.join(warehouse, `${consumer}__${table}`, 'metadata');
  }

  /** vN.metadata.json files of an ICDC table (0 when none was written). */
  function icdcVersions(consumer: string, table: string): string[] {
    const dir = icdcDir(consumer, table);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => /^v\d+\.metadata\.json$/.test(f)).sort();
  }

  /** An ICDC metadata file, every number as text. */
  function readIcdc(file: string): Json {
    return parseLossless(readFileSync(file, 'utf8'), undefined, (n: string) => n);
  }

  /** A data file path as the table names it → the file in the temp copy. */
  function localPath(file: string): string {
    const written = writtenLocation(tableDir).replace(/\/+$/, '');
    expect(file.startsWith(`${written}/`), file).toBe(true);
    return path.join(tableDir, file.slice(written.length + 1));
  }

  function addedPaths(batch: Json): string[] {
    return (batch.tables as Json[]).flatMap((t) => (t.files.added as Json[]).map((f) => f.file_path as string)).sort();
  }

  async function metricCounts(): Promise<Record<string, number>> {
    const r = await fetch(`${server.url}/metrics`);
    expect(r.status).toBe(200);
    const out: Record<string, number> = {};
    for (const line of (await r.text()).split('\n')) {
      const m = /^ips_batch_events_total\{event="([a-z_]+)"\} (\d+)$/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-api-'));
    tableDir = path.join(tmp, 'playback');
    rollbackDir = path.join(tmp, 'rollback');
    warehouse = path.join(tmp, 'warehouse');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), rollbackDir, { recursive: true });
    snaps = readSnapshots(tableDir);

    let databaseUrl = 'memory:';
    if (driver === 'postgres') {
      const created = await createPgDatabase('http_api');
      dropDb = created.drop;
      databaseUrl = created.url;
      pgUrl = created.url;
    }
    let config: ServiceConfig = loadServiceConfig({
      env: {
        DATABASE_URL: databaseUrl,
        IPS_ADMIN_TOKEN: ADMIN_TOKEN,
        IPS_PORT: '0',
        IPS_WAREHOUSE: warehouse,
        IPS_LOG_LEVEL: 'silent',
        IPS_BODY_LIMIT_BYTES: String(BODY_LIMIT),
      },
    });
    expect(config.database.driver).toBe(driver);
    // PGlite from the cached initdb template instead of running initdb again (same engine, faster).
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);

    for (const [name, dir] of [['playback', tableDir], ['lagtab', tableDir], ['rollback', rollbackDir]] as const) {
      const t = await ok('POST', '/v1/tables', { body: { name, ref: { kind: 'directory', location: dir } } }, 201);
      expect(t.head.snapshot_id).toBe(snaps.at(-1)!.id);
    }
  });

  afterAll(async () => {
    await server?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the fixture is not trivial: five snapshots, the last one removes files', () => {
    expect(snaps).toHaveLength(5);
    expect(snaps.map((s) => s.summary.operation)).toEqual(['append', 'append', 'append', 'append', 'overwrite']);
    expect(Number(snaps[4]!.summary['deleted-data-files'])).toBeGreaterThan(0);
    // Ids above 2^53: a client that parsed them as numbers would get them wrong.
    for (const s of snaps) expect(BigInt(s.id) > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  test('health, readiness, OpenAPI document and docs page', async () => {
    expect(await ok('GET', '/healthz', { token: null })).toEqual({ status: 'ok' });
    // Without a token: ready or not, and nothing internal (the database's place).
    const ready = await ok('GET', '/readyz', { token: null });
    expect(ready).toEqual({ status: 'ready' });
    const asAdmin = await ok('GET', '/readyz');
    expect(asAdmin).toEqual({ status: 'ready', database: server.state.db.description });
    const doc = await ok('GET', '/openapi.json', { token: null });
    expect(doc.openapi).toMatch(/^3\./);
    const paths = Object.keys(doc.paths as Record<string, unknown>);
    const routes: [string, string][] = [
      ['post', '/v1/tables'], ['get', '/v1/tables'], ['get', '/v1/tables/{name}'], ['get', '/v1/tables/{name}/changes'],
      ['post', '/v1/consumers'], ['get', '/v1/consumers'], ['get', '/v1/consumers/{name}'],
      ['post', '/v1/consumers/{name}/subscriptions'], ['post', '/v1/consumers/{name}/reset'],
      ['post', '/v1/consumers/{name}/tokens'], ['get', '/v1/consumers/{name}/tokens'], ['delete', '/v1/tokens/{id}'],
      ['post', '/v1/consumers/{name}/batches'], ['get', '/v1/consumers/{name}/batches'], ['get', '/v1/batches/{id}'],
      ['post', '/v1/batches/{id}/commit'], ['post', '/v1/batches/{id}/abort'],
      ['get', '/healthz'], ['get', '/readyz'], ['get', '/metrics'],
    ];
    for (const [method, route] of routes) {
      expect(paths, route).toContain(route);
      expect(doc.paths[route][method], `${method.toUpperCase()} ${route}`).toBeDefined();
    }
    const docs = await fetch(`${server.url}/docs/`);
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-type')).toMatch(/text\/html/);
    expect(await docs.text()).toMatch(/swagger/i);
  });

  test('lag of GET /v1/tables/{name} equals the snapshot summaries and drops to 0; oldest_needed follows the commits', async () => {
    const table = 'lagtab';
    const l1 = await newConsumer(table);
    const l2 = await newConsumer(table);
    const [first, second] = [l1.name, l2.name].sort();

    let view = await ok('GET', `/v1/tables/${table}`);
    expect(view.head.snapshot_id).toBe(snaps.at(-1)!.id);
    expect(view.head.sequence_number).toBe(snaps.at(-1)!.sequenceNumber);
    expect((view.consumers as Json[]).map((c) => c.consumer).sort()).toEqual([first, second]);
    for (const row of view.consumers as Json[]) {
      expect(row.lag).toEqual(lagFromSummaries(snaps));
      expect(row.lag_error).toBeNull();
    }
    // Nobody processed anything: the whole history is needed.
    expect(view.oldest_needed).toEqual({ consumer: first, snapshot_id: null, sequence_number: null, full_history: true });

    // l1 takes exactly the first two snapshots: a byte limit equal to their summed sizes (a 64-bit string).
    const twoSnapshotsBytes = sumKeys(snaps.slice(0, 2), ['added-files-size']);
    const p1 = await prepare(l1.name, { instance_id: 'l1-a', limits: { max_bytes: twoSnapshotsBytes.toString() } });
    expect(p1.status, p1.text).toBe(201);
    const t1 = p1.body.batch.tables[0];
    expect(t1.to_snapshot_id).toBe(snaps[1]!.id);
    expect(t1.file_count).toBe(Number(sumKeys(snaps.slice(0, 2), ['added-data-files'])));
    expect(t1.byte_count).toBe(twoSnapshotsBytes.toString());
    expect(t1.record_count).toBe(sumKeys(snaps.slice(0, 2), ['added-records']).toString());
    // An open batch does not move anything.
    expect((await tableRow(table, l1.name)).lag).toEqual(lagFromSummaries(snaps));
    await ok('POST', `/v1/batches/${p1.body.batch.id}/commit`);
    expect((await tableRow(table, l1.name)).lag).toEqual(lagFromSummaries(snaps.slice(2)));
    view = await ok('GET', `/v1/tables/${table}`);
    expect(view.oldest_needed.consumer).toBe(l2.name);
    expect(view.oldest_needed.full_history).toBe(true);

    // l2 takes the first snapshot only: now l2 at snapshot 1 is the oldest needed.
    const p2 = await prepare(l2.name, { instance_id: 'l2-a', limits: { max_files: Number(snaps[0]!.summary['added-data-files']) } });
    expect(p2.status, p2.text).toBe(201);
    expect(p2.body.batch.tables[0].to_snapshot_id).toBe(snaps[0]!.id);
    await ok('POST', `/v1/batches/${p2.body.batch.id}/commit`);
    view = await ok('GET', `/v1/tables/${table}`);
    expect(view.oldest_needed).toEqual({ consumer: l2.name, snapshot_id: snaps[0]!.id, sequence_number: snaps[0]!.sequenceNumber, full_history: false });
    expect((await tableRow(table, l2.name)).lag).toEqual(lagFromSummaries(snaps.slice(1)));

    // l2 consumes the rest: l1 (at snapshot 2) becomes the oldest.
    const p3 = await prepare(l2.name, { instance_id: 'l2-b' });
    expect(p3.status, p3.text).toBe(201);
    expect(p3.body.batch.tables[0].from_snapshot_id).toBe(snaps[0]!.id);
    await ok('POST', `/v1/batches/${p3.body.batch.id}/commit`);
    expect((await tableRow(table, l2.name)).lag).toEqual(ZERO_LAG);
    view = await ok('GET', `/v1/tables/${table}`);
    expect(view.oldest_needed).toEqual({ consumer: l1.name, snapshot_id: snaps[1]!.id, sequence_number: snaps[1]!.sequenceNumber, full_history: false });

    // l1 consumes the rest with its own token: everyone is at the head.
    const p4 = await prepare(l1.name, { instance_id: 'l1-b' }, l1.token);
    expect(p4.status, p4.text).toBe(201);
    await ok('POST', `/v1/batches/${p4.body.batch.id}/commit`, { token: l1.token });
    for (const c of [l1.name, l2.name]) expect((await tableRow(table, c)).lag).toEqual(ZERO_LAG);
    view = await ok('GET', `/v1/tables/${table}`);
    expect(view.oldest_needed.snapshot_id).toBe(snaps.at(-1)!.id);
    expect(view.oldest_needed.full_history).toBe(false);
    const none = await prepare(l1.name, { instance_id: 'l1-c' });
    expect(none.status, none.text).toBe(200);
    expect(none.body.status).toBe('no_changes');
    expect(none.body.batch).toBeNull();
  });

  test.each([2, 3, 5])('%i concurrent prepares with one instance id make one batch (one 201, the rest 200 with the same batch)', async (n) => {
    const c = await newConsumer('playback');
    const results = await Promise.all(Array.from({ length: n }, () => prepare(c.name, { instance_id: 'same-step', limits: { max_files: 3 } })));
    expect(results.map((r) => r.status).sort(), results.map((r) => r.text.slice(0, 300)).join('\n')).toEqual([...Array<number>(n - 1).fill(200), 201]);
    expect(results.find((r) => r.status === 201)!.body.status).toBe('created');
    for (const r of results.filter((x) => x.status === 200)) expect(r.body.status).toBe('existing');
    const ids = new Set(results.map((r) => r.body.batch.id as string));
    expect(ids.size).toBe(1);
    const id = [...ids][0]!;
    expect(id).toMatch(DECIMAL);
    // Every response hands out the same ICDC snapshot and the same files.
    for (const r of results) {
      expect(r.body.batch.tables[0].icdc).toEqual(results[0]!.body.batch.tables[0].icdc);
      expect(addedPaths(r.body.batch)).toEqual(addedPaths(results[0]!.body.batch));
    }
    const list = await ok('GET', `/v1/consumers/${c.name}/batches`);
    expect((list.batches as Json[]).map((b) => b.id)).toEqual([id]);
    // The stored ICDC snapshot is in the metadata file the batch names (the losers' snapshots
    // are written too, and stay unreferenced).
    const icdc = results[0]!.body.batch.tables[0].icdc;
    const md = readIcdc(icdc.metadata_location);
    const snap = (md.snapshots as Json[]).find((s) => s['snapshot-id'] === icdc.snapshot_id);
    expect(snap?.summary['ips.instance-id']).toBe('same-step');
    expect(snap?.summary['total-data-files']).toBe('3');
    expect(icdcVersions(c.name, 'playback').length).toBeGreaterThanOrEqual(1);
    expect(icdcVersions(c.name, 'playback').length).toBeLessThanOrEqual(n);
  });

  test.each([2, 3, 5])('%i concurrent prepares with different instance ids make one batch; the others get 409 BATCH_IN_FLIGHT', async (n) => {
    const c = await newConsumer('playback');
    const results = await Promise.all(Array.from({ length: n }, (_, i) => prepare(c.name, { instance_id: `step-${i}`, limits: { max_files: 2 } })));
    const created = results.filter((r) => r.status === 201);
    expect(created, results.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join('\n')).toHaveLength(1);
    const winner = created[0]!.body.batch;
    for (const r of results.filter((x) => x.status !== 201)) {
      expectProblem(r, 409, 'BATCH_IN_FLIGHT');
      expect(r.body.details.batch_id).toBe(winner.id);
    }
    const list = await ok('GET', `/v1/consumers/${c.name}/batches`);
    expect((list.batches as Json[]).map((b) => b.id)).toEqual([winner.id]);
    const con = await ok('GET', `/v1/consumers/${c.name}`);
    expect(con.open_batches.map((b: Json) => b.id)).toEqual([winner.id]);
    expect(con.tables[0].version).toBe('1');
  });

  test('a crash between writing the ICDC snapshot and the database commit leaves nothing visible; the retry converges', async () => {
    const c = await newConsumer('playback');
    const instance = 'crashy-step';
    // A real failure inside the batch transaction, after the batches row is inserted: the
    // batch_tables insert raises, the transaction rolls back (PL/pgSQL on both drivers).
    await server.state.db.exec(`
      CREATE FUNCTION ips_test_crash() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'simulated crash before the batch commit'; END $$;
      CREATE TRIGGER ips_test_crash BEFORE INSERT ON batch_tables FOR EACH ROW EXECUTE FUNCTION ips_test_crash();`);
    let crashed: Res;
    try {
      expect(icdcVersions(c.name, 'playback')).toEqual([]);
      crashed = await prepare(c.name, { instance_id: instance, limits: { max_files: 3 } });
    } finally {
      await server.state.db.exec('DROP TRIGGER ips_test_crash ON batch_tables; DROP FUNCTION ips_test_crash();');
    }
    expectProblem(crashed, 500, 'INTERNAL');
    // Nothing visible: no batch, no open batch, the watermark where it was.
    expect((await ok('GET', `/v1/consumers/${c.name}/batches`)).batches).toEqual([]);
    const con = await ok('GET', `/v1/consumers/${c.name}`);
    expect(con.open_batches).toEqual([]);
    expect(con.tables[0].version).toBe('1');
    expect(con.tables[0].snapshot_id).toBeNull();
    // …but the ICDC snapshot was written: one unreferenced metadata version.
    const orphan = icdcVersions(c.name, 'playback');
    expect(orphan).toEqual(['v1.metadata.json']);
    const orphanMd = readIcdc(path.join(icdcDir(c.name, 'playback'), orphan[0]!));
    const orphanSnap = (orphanMd.snapshots as Json[]).find((s) => s['snapshot-id'] === orphanMd['current-snapshot-id']);
    expect(orphanSnap.summary['ips.instance-id']).toBe(instance);

    // The retry (same instance id) makes the batch, with a fresh ICDC snapshot.
    const retry = await prepare(c.name, { instance_id: instance, limits: { max_files: 3 } });
    expect(retry.status, retry.text).toBe(201);
    const b = retry.body.batch;
    const t = b.tables[0];
    // Expected from the summaries: snapshots 1 and 2 whole (1 + 2 files), nothing removed.
    expect(Number(sumKeys(snaps.slice(0, 2), ['added-data-files']))).toBe(3);
    expect(t.from_snapshot_id).toBeNull();
    expect(t.to_snapshot_id).toBe(snaps[1]!.id);
    expect(t.file_count).toBe(3);
    expect(t.files.removed).toEqual([]);
    expect(t.record_count).toBe(sumKeys(snaps.slice(0, 2), ['added-records']).toString());
    expect(t.byte_count).toBe(sumKeys(snaps.slice(0, 2), ['added-files-size']).toString());
    expect(t.commits_to.snapshot_id).toBe(snaps[1]!.id);
    expect(t.commits_to.partial_snapshot_id).toBeNull();
    for (const f of addedPaths(b)) expect(existsSync(localPath(f)), f).toBe(true);
    // Its ICDC snapshot exists and holds exactly the batch's files.
    expect(icdcVersions(c.name, 'playback')).toEqual(['v1.metadata.json', 'v2.metadata.json']);
    expect(t.icdc.metadata_location).toBe(path.join(icdcDir(c.name, 'playback'), 'v2.metadata.json'));
    const md = readIcdc(t.icdc.metadata_location);
    expect(md['current-snapshot-id']).toBe(t.icdc.snapshot_id);
    expect(t.icdc.snapshot_id).not.toBe(orphanMd['current-snapshot-id']);
    const snap = (md.snapshots as Json[]).find((s) => s['snapshot-id'] === t.icdc.snapshot_id);
    expect(snap.summary['ips.instance-id']).toBe(instance);
    expect(snap.summary['total-data-files']).toBe('3');
    expect(snap.summary['total-records']).toBe(t.record_count);
    // And a further retry is the same batch.
    const again = await prepare(c.name, { instance_id: instance, limits: { max_files: 3 } });
    expect(again.status).toBe(200);
    expect(again.body.batch).toEqual(b);
    expect((await ok('GET', `/v1/consumers/${c.name}/batches`)).batches.map((x: Json) => x.id)).toEqual([b.id]);
  });

  // The real thing, where a second process can share the state (PostgreSQL): `ips serve` in its
  // own process prepares, its database transaction waits on a row lock this test holds, the
  // process is killed with SIGKILL, and another replica (the in-process server) takes the retry.
  // Only defined for PostgreSQL (the embedded database serves one process), so nothing is skipped.
  if (driver === 'postgres') test('a real crash: `ips serve` killed after the ICDC write, before the database commit; another replica converges', async () => {
    const c = await newConsumer('playback');
    const instance = 'killed-step';
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'serve', '--port', '0', '--json'], {
      cwd: tmp,
      env: {
        ...process.env, DATABASE_URL: pgUrl!, IPS_ADMIN_TOKEN: ADMIN_TOKEN, IPS_WAREHOUSE: warehouse,
        IPS_DATA_DIR: path.join(tmp, 'child-data'), IPS_LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
    const locker = new pg.Client({ connectionString: pgUrl! });
    // Watched from another connection: inside the locker's open transaction, pg_stat_activity is
    // a snapshot taken at its first read and would never show the child starting to wait.
    const watcher = new pg.Client({ connectionString: pgUrl! });
    let lockHeld = false;
    try {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      const childUrl = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          try {
            resolve((JSON.parse(out) as { url: string }).url);
          } catch { /* not complete yet */ }
        });
        child.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${err}`)));
      });
      // Hold the consumer's row: the child's batch transaction queues on it (SELECT … FOR UPDATE).
      await locker.connect();
      await watcher.connect();
      const lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await locker.query('BEGIN');
      await locker.query('SELECT name FROM consumers WHERE name = $1 FOR UPDATE', [c.name]);
      lockHeld = true;
      const inFlight = fetch(`${childUrl}/v1/consumers/${c.name}/batches`, {
        method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ instance_id: instance, limits: { max_files: 3 } }),
      }).then((r) => `answered ${r.status}`, () => 'connection lost');
      // Wait until the child wrote its ICDC snapshot and its transaction waits on the lock.
      const deadline = Date.now() + 60_000;
      let answered = 'not yet';
      void inFlight.then((a) => { answered = a; });
      let writtenSince: number | null = null;
      for (;;) {
        const waiting = await watcher.query(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))', [lockerPid]);
        const written = icdcVersions(c.name, 'playback');
        if (written.length > 0 && (waiting.rows[0] as { n: number }).n > 0) break;
        if (written.length > 0) writtenSince ??= Date.now();
        // The ICDC snapshot is written and the row lock is held, so the batch cannot have been
        // committed: once the child has had 10 s to queue on the lock, kill it wherever it is
        // (on a saturated machine it may still be waiting for a pooled connection), and say so.
        if (writtenSince !== null && Date.now() - writtenSince > 10_000) {
          const backends = await watcher.query(
            "SELECT state, wait_event_type, wait_event, left(query, 80) AS query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1", [lockerPid]);
          console.warn(`real-crash test: the child wrote its ICDC snapshot but did not queue on the lock within 10 s; killing it anyway. Its backends: ${JSON.stringify(backends.rows)}`);
          break;
        }
        if (Date.now() > deadline) {
          throw new Error(`the child never reached the database commit (ICDC files ${written.join(',') || 'none'}, backends waiting on the test's lock ${(waiting.rows[0] as { n: number }).n}, its answer ${answered}): ${err}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(await inFlight).toBe('connection lost');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (lockHeld) await locker.query('ROLLBACK');
      await locker.end();
      await watcher.end();
    }
    // The dead process's transaction never committed (it never sent COMMIT). Through the surviving replica: nothing visible.
    expect((await ok('GET', `/v1/consumers/${c.name}/batches`)).batches).toEqual([]);
    const con = await ok('GET', `/v1/consumers/${c.name}`);
    expect(con.open_batches).toEqual([]);
    expect(con.tables[0].version).toBe('1');
    expect(con.tables[0].snapshot_id).toBeNull();
    expect((await tableRow('playback', c.name)).lag).toEqual(lagFromSummaries(snaps));
    const orphan = icdcVersions(c.name, 'playback');
    expect(orphan).toEqual(['v1.metadata.json']);
    const orphanMd = readIcdc(path.join(icdcDir(c.name, 'playback'), orphan[0]!));
    expect((orphanMd.snapshots as Json[])[0].summary['ips.instance-id']).toBe(instance);

    // The orchestrator retries the step against the other replica.
    const retry = await prepare(c.name, { instance_id: instance, limits: { max_files: 3 } });
    expect(retry.status, retry.text).toBe(201);
    const t = retry.body.batch.tables[0];
    expect(t.to_snapshot_id).toBe(snaps[1]!.id);
    expect(t.file_count).toBe(Number(sumKeys(snaps.slice(0, 2), ['added-data-files'])));
    expect(t.record_count).toBe(sumKeys(snaps.slice(0, 2), ['added-records']).toString());
    expect(t.byte_count).toBe(sumKeys(snaps.slice(0, 2), ['added-files-size']).toString());
    expect(t.icdc.metadata_location).toBe(path.join(icdcDir(c.name, 'playback'), 'v2.metadata.json'));
    const md = readIcdc(t.icdc.metadata_location);
    expect(md['current-snapshot-id']).toBe(t.icdc.snapshot_id);
    expect(md['current-snapshot-id']).not.toBe(orphanMd['current-snapshot-id']);
    const committed = await ok('POST', `/v1/batches/${retry.body.batch.id}/commit`);
    expect(committed.watermarks[0].snapshot_id).toBe(snaps[1]!.id);
    expect(committed.watermarks[0].version).toBe('2');
  }, 150_000);

  test('committing twice: the replay is 200 already_committed and moves nothing', async () => {
    const c = await newConsumer('playback');
    const p = await prepare(c.name, { instance_id: 'r1', limits: { max_files: 1 } });
    expect(p.status, p.text).toBe(201);
    const id = p.body.batch.id as string;
    const first = await ok('POST', `/v1/batches/${id}/commit`);
    expect(first.already_committed).toBe(false);
    expect(first.batch.state).toBe('committed');
    expect(first.watermarks).toHaveLength(1);
    expect(first.watermarks[0].version).toBe('2');
    expect(first.watermarks[0].snapshot_id).toBe(snaps[0]!.id);
    const after1 = await watermark(c.name, 'playback');
    expect(after1.version).toBe('2');

    const second = await ok('POST', `/v1/batches/${id}/commit`);
    expect(second.already_committed).toBe(true);
    expect(second.batch.state).toBe('committed');
    expect(second.watermarks).toEqual([]);
    expect(await watermark(c.name, 'playback')).toEqual(after1);

    // A replay after the consumer moved on still changes nothing.
    const p2 = await prepare(c.name, { instance_id: 'r2', limits: { max_files: 1 } });
    expect(p2.status, p2.text).toBe(201);
    await ok('POST', `/v1/batches/${p2.body.batch.id}/commit`);
    const after2 = await watermark(c.name, 'playback');
    expect(after2.version).toBe('3');
    expect((await ok('POST', `/v1/batches/${id}/commit`)).already_committed).toBe(true);
    expect(await watermark(c.name, 'playback')).toEqual(after2);
    // The retried prepare of the committed step returns the committed batch, not a new one.
    const replayPrepare = await prepare(c.name, { instance_id: 'r1', limits: { max_files: 1 } });
    expect(replayPrepare.status).toBe(200);
    expect(replayPrepare.body.batch.id).toBe(id);
    expect(replayPrepare.body.batch.state).toBe('committed');
  });

  test('a reset aborts the open batch; committing it then is 409 BATCH_NOT_OPEN and the watermark stays', async () => {
    const c = await newConsumer('playback');
    const p = await prepare(c.name, { instance_id: 'doomed', limits: { max_files: 2 } });
    expect(p.status, p.text).toBe(201);
    const id = p.body.batch.id as string;
    const reset = await ok('POST', `/v1/consumers/${c.name}/reset`, { body: { to: 'now' } });
    expect(reset.open_batches).toEqual([]);
    expect(reset.tables[0].snapshot_id).toBe(snaps.at(-1)!.id);
    expect(reset.tables[0].version).toBe('2');
    const b = await ok('GET', `/v1/batches/${id}`);
    expect(b.state).toBe('aborted');
    expectProblem(await call('POST', `/v1/batches/${id}/commit`), 409, 'BATCH_NOT_OPEN');
    const wm = await watermark(c.name, 'playback');
    expect(wm.version).toBe('2');
    expect(wm.snapshot_id).toBe(snaps.at(-1)!.id);
    expect((await tableRow('playback', c.name)).lag).toEqual(ZERO_LAG);
    expect((await prepare(c.name, { instance_id: 'after-reset' })).body.status).toBe('no_changes');
  });

  test('compare-and-set: a batch whose base watermark moved gets 409 CONFLICT and changes nothing', async () => {
    const c = await newConsumer('playback');
    const before = await metricCounts();
    const p = await prepare(c.name, { instance_id: 'cas', limits: { max_files: 1 } });
    expect(p.status, p.text).toBe(201);
    const id = p.body.batch.id as string;
    expect(p.body.batch.tables[0].base_watermark_version).toBe('1');
    // Another writer (a second replica, an operator) moves the watermark under the open batch.
    await server.state.repos.watermarks.advance(c.name, 'playback', 1n, {
      snapshotId: BigInt(snaps[1]!.id), sequenceNumber: BigInt(snaps[1]!.sequenceNumber),
      partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [],
    }, { actor: 'test', reason: 'reset' });
    const moved = await watermark(c.name, 'playback');
    expect(moved.version).toBe('2');

    const r = await call('POST', `/v1/batches/${id}/commit`);
    expectProblem(r, 409, 'CONFLICT');
    expect(await watermark(c.name, 'playback')).toEqual(moved);
    expect((await ok('GET', `/v1/batches/${id}`)).state).toBe('open');
    expect((await metricCounts()).conflict ?? 0).toBe((before.conflict ?? 0) + 1);

    // Abort it; the next batch starts from where the watermark really is.
    const aborted = await ok('POST', `/v1/batches/${id}/abort`, { body: { reason: 'base moved' } });
    expect(aborted.changed).toBe(true);
    expect(aborted.batch.state_reason).toBe('base moved');
    const p2 = await prepare(c.name, { instance_id: 'cas-2', limits: { max_files: 1 } });
    expect(p2.status, p2.text).toBe(201);
    expect(p2.body.batch.tables[0].from_snapshot_id).toBe(snaps[1]!.id);
    expect(p2.body.batch.tables[0].base_watermark_version).toBe('2');
    const done = await ok('POST', `/v1/batches/${p2.body.batch.id}/commit`);
    expect(done.watermarks[0].version).toBe('3');
  });

  test('token isolation: a consumer token acts only for its own consumer; revoked and missing tokens get 401', async () => {
    const a = await newConsumer('playback');
    const b = await newConsumer('playback');
    const pb = await prepare(b.name, { instance_id: 'b-step', limits: { max_files: 1 } }, b.token);
    expect(pb.status, pb.text).toBe(201);
    const bid = pb.body.batch.id as string;

    const forbidden: [string, string, unknown?][] = [
      ['GET', `/v1/batches/${bid}`],
      ['POST', `/v1/batches/${bid}/commit`],
      ['POST', `/v1/batches/${bid}/abort`, {}],
      ['POST', `/v1/consumers/${b.name}/batches`, { instance_id: 'a-for-b' }],
      ['GET', `/v1/consumers/${b.name}`],
      ['GET', `/v1/consumers/${b.name}/batches`],
      ['GET', '/v1/tables'],
      ['POST', '/v1/tables', { name: uid('t'), ref: { kind: 'directory', location: tableDir } }],
      ['GET', '/v1/consumers'],
      ['POST', '/v1/consumers', { name: uid('evil'), tables: [{ table: 'playback' }] }],
      ['POST', `/v1/consumers/${a.name}/tokens`, {}],
      ['GET', `/v1/consumers/${a.name}/tokens`],
      ['POST', `/v1/consumers/${a.name}/reset`, { to: 'now' }],
      ['POST', `/v1/consumers/${a.name}/subscriptions`, { table: 'lagtab' }],
      ['DELETE', `/v1/tokens/${b.tokenId}`],
      ['GET', '/v1/tables/lagtab'],
      ['GET', `/v1/tables/playback/changes?consumer=${b.name}`],
    ];
    for (const [method, p, body] of forbidden) {
      const r = await call(method, p, { token: a.token, ...(body !== undefined ? { body } : {}) });
      expect(`${method} ${p} → ${r.status} ${r.body?.code}`).toBe(`${method} ${p} → 403 FORBIDDEN`);
      expectProblem(r, 403, 'FORBIDDEN');
    }
    // b's batch and watermark are untouched, b's token still works.
    expect((await ok('GET', `/v1/batches/${bid}`, { token: b.token })).state).toBe('open');
    expect((await watermark(b.name, 'playback')).version).toBe('1');
    expect((await ok('GET', '/v1/consumers')).consumers.some((x: Json) => String(x.name).startsWith('evil-'))).toBe(false);

    // a's token does work for a: the 403s above are not "everything is forbidden".
    const own = await ok('GET', '/v1/tables/playback', { token: a.token });
    expect(own.consumers.map((x: Json) => x.consumer)).toEqual([a.name]);
    expect(own.oldest_needed).toBeNull();
    const pa = await prepare(a.name, { instance_id: 'a-step', limits: { max_files: 1 } }, a.token);
    expect(pa.status, pa.text).toBe(201);
    expect((await ok('GET', `/v1/consumers/${a.name}/batches`, { token: a.token })).batches).toHaveLength(1);
    expect((await ok('POST', `/v1/batches/${pa.body.batch.id}/commit`, { token: a.token })).already_committed).toBe(false);
    expect((await ok('GET', `/v1/tables/playback/changes`, { token: a.token })).from).toBe(snaps[0]!.id);
    // The admin acts for anyone.
    expect((await ok('GET', `/v1/batches/${bid}`)).consumer).toBe(b.name);
    expect((await ok('POST', `/v1/batches/${bid}/commit`, { token: b.token })).already_committed).toBe(false);

    // Token listing never shows secrets.
    const second = await ok('POST', `/v1/consumers/${a.name}/tokens`, { body: { description: 'second' } }, 201);
    expect(second.token).toEqual(expect.any(String));
    const listed = await call('GET', `/v1/consumers/${a.name}/tokens`);
    expect(listed.status).toBe(200);
    expect((listed.body.tokens as Json[]).map((t) => t.id).sort()).toEqual([a.tokenId, second.id].sort());
    expect(listed.text).not.toContain(a.token);
    expect(listed.text).not.toContain(second.token);

    // Revoke a's first token: it gets 401, the second one still works.
    const revoked = await ok('DELETE', `/v1/tokens/${a.tokenId}`);
    expect(revoked.revoked_at).toEqual(expect.any(String));
    expectProblem(await call('GET', `/v1/consumers/${a.name}`, { token: a.token }), 401, 'UNAUTHORIZED');
    expectProblem(await prepare(a.name, { instance_id: 'a-revoked' }, a.token), 401, 'UNAUTHORIZED');
    expect((await ok('GET', `/v1/consumers/${a.name}`, { token: second.token })).name).toBe(a.name);

    // No token, a wrong token, a non-bearer header.
    expectProblem(await call('GET', `/v1/consumers/${a.name}`, { token: null }), 401, 'UNAUTHORIZED');
    expectProblem(await call('GET', '/v1/tables', { token: null }), 401, 'UNAUTHORIZED');
    expectProblem(await call('GET', '/v1/tables', { token: 'not-a-token-0123456789' }), 401, 'UNAUTHORIZED');
    expectProblem(await call('GET', '/v1/tables', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` } }), 401, 'UNAUTHORIZED');
    expectProblem(await call('POST', `/v1/batches/${bid}/abort`, { token: null }), 401, 'UNAUTHORIZED');
    // The admin token lists everything.
    expect((await ok('GET', '/v1/tables')).tables.map((t: Json) => t.name).sort()).toEqual(['lagtab', 'playback', 'rollback']);
  });

  test('malformed, unknown and oversized requests get a 4xx problem and change nothing', async () => {
    const c = await newConsumer('playback');
    const open = await prepare(c.name, { instance_id: 'keep-open', limits: { max_files: 1 } });
    expect(open.status, open.text).toBe(201);
    const openId = open.body.batch.id as string;

    async function snapshot(): Promise<string> {
      return JSON.stringify({
        consumer: await ok('GET', `/v1/consumers/${c.name}`),
        batches: await ok('GET', `/v1/consumers/${c.name}/batches`),
        consumers: await ok('GET', '/v1/consumers'),
        tables: await ok('GET', '/v1/tables'),
        tokens: await ok('GET', `/v1/consumers/${c.name}/tokens`),
        icdc: icdcVersions(c.name, 'playback'),
      });
    }
    const before = await snapshot();

    const big = '9007199254740993'; // 2^53 + 1: not exactly representable as a JSON number in JS
    const cases: { what: string; method: string; path: string; opts?: CallOptions; status: number; code: string }[] = [
      { what: 'malformed JSON on prepare', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { raw: '{"instance_id": "x",' }, status: 400, code: 'MALFORMED_JSON' },
      { what: 'malformed JSON on reset', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { raw: "{to: 'now'}" }, status: 400, code: 'MALFORMED_JSON' },
      { what: 'prototype poisoning', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { raw: '{"instance_id": "x", "__proto__": {"admin": true}}' }, status: 400, code: 'MALFORMED_JSON' },
      { what: 'unknown body key on prepare', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x', bogus: 1 } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'unknown limits key', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x', limits: { max_rows: 5 } } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'unknown body key on reset', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { body: { to: 'now', force: true } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'unknown body key on consumer create', method: 'POST', path: '/v1/consumers', opts: { body: { name: uid('x'), bogus: 1 } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'empty instance id', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: '' } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'missing instance id', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: {} }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'snapshot id as a JSON number above 2^53', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { raw: `{"to": ${snaps[2]!.id}}` }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'max_bytes as a JSON number above 2^53', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { raw: `{"instance_id": "x", "limits": {"max_bytes": ${big}}}` }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'snapshot id above 2^63', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { body: { to: '9223372036854775808' } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'negative max_files', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x', limits: { max_files: -1 } } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'bad consumer name', method: 'POST', path: '/v1/consumers', opts: { body: { name: '../etc' } }, status: 400, code: 'VALIDATION_FAILED' },
      { what: 'non-numeric batch id', method: 'GET', path: '/v1/batches/abc', status: 400, code: 'VALIDATION_FAILED' },
      { what: 'batch id above 2^63', method: 'POST', path: '/v1/batches/99999999999999999999/commit', status: 400, code: 'VALIDATION_FAILED' },
      { what: 'unknown batch', method: 'GET', path: '/v1/batches/123', status: 404, code: 'NOT_FOUND' },
      { what: 'commit of an unknown batch', method: 'POST', path: '/v1/batches/123/commit', status: 404, code: 'NOT_FOUND' },
      { what: 'abort of an unknown batch', method: 'POST', path: '/v1/batches/123/abort', opts: { body: {} }, status: 404, code: 'NOT_FOUND' },
      { what: 'unknown consumer', method: 'GET', path: '/v1/consumers/nobody', status: 404, code: 'NOT_FOUND' },
      { what: 'prepare for an unknown consumer', method: 'POST', path: '/v1/consumers/nobody/batches', opts: { body: { instance_id: 'x' } }, status: 404, code: 'NOT_FOUND' },
      { what: 'unknown table', method: 'GET', path: '/v1/tables/nothing', status: 404, code: 'NOT_FOUND' },
      { what: 'prepare on an unknown table', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x', table: 'nothing' } }, status: 404, code: 'NOT_FOUND' },
      { what: 'prepare on a table not subscribed', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x', table: 'lagtab' } }, status: 404, code: 'NOT_FOUND' },
      { what: 'reset of a table not subscribed', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { body: { to: 'now', table: 'lagtab' } }, status: 404, code: 'NOT_FOUND' },
      { what: 'reset to a snapshot the table does not have', method: 'POST', path: `/v1/consumers/${c.name}/reset`, opts: { body: { to: '123' } }, status: 422, code: 'UNKNOWN_SNAPSHOT' },
      { what: 'unknown token', method: 'DELETE', path: '/v1/tokens/123', status: 404, code: 'NOT_FOUND' },
      { what: 'unknown route', method: 'GET', path: '/v1/nothing-here', status: 404, code: 'ROUTE_NOT_FOUND' },
      { what: 'oversized body', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { body: { instance_id: 'x'.repeat(10 * 1024) } }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { what: 'oversized body on consumer create', method: 'POST', path: '/v1/consumers', opts: { body: { name: uid('big'), description: 'y'.repeat(10 * 1024) } }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { what: 'not JSON', method: 'POST', path: `/v1/consumers/${c.name}/batches`, opts: { raw: 'instance_id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    ];
    const seen: string[] = [];
    for (const k of cases) {
      const r = await call(k.method, k.path, k.opts);
      seen.push(`${k.what}: ${r.status} ${r.body?.code}`);
      if (r.status === k.status && r.body?.code === k.code) expectProblem(r, k.status, k.code);
    }
    expect(seen).toEqual(cases.map((k) => `${k.what}: ${k.status} ${k.code}`));
    // The oversized body really was over the configured limit.
    expect(JSON.stringify({ instance_id: 'x'.repeat(10 * 1024) }).length).toBeGreaterThan(BODY_LIMIT);

    // A preview is stateless too.
    const preview = await ok('GET', `/v1/tables/playback/changes?consumer=${c.name}`);
    expect(preview.from).toBeNull();
    expect(preview.to).toBe(snaps.at(-1)!.id);
    expect(preview.snapshots).toHaveLength(snaps.length);

    expect(await snapshot()).toBe(before);
    expect((await ok('GET', `/v1/batches/${openId}`)).state).toBe('open');
    // The same requests done right do work (the 4xx above were about the requests, not the state).
    expect((await call('POST', `/v1/consumers/${c.name}/reset`, { body: { to: snaps[2]!.id } })).status).toBe(200);
    expect((await watermark(c.name, 'playback')).snapshot_id).toBe(snaps[2]!.id);
    expect((await ok('GET', `/v1/batches/${openId}`)).state).toBe('aborted');
  });

  test('a consumer made stale by a rolled-back table is cleared by reset to "now"; the table moving on is handed out exactly', async () => {
    const table = 'rollback';
    const c = await newConsumer(table);
    const all = await prepare(c.name, { instance_id: 'all' });
    expect(all.status, all.text).toBe(201);
    await ok('POST', `/v1/batches/${all.body.batch.id}/commit`);
    expect((await watermark(c.name, table)).snapshot_id).toBe(snaps[4]!.id);

    // The table is rolled back: its newest metadata (snapshot 5) disappears.
    const metaDir = path.join(rollbackDir, 'metadata');
    const newest = readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!;
    const aside = path.join(tmp, 'aside');
    mkdirSync(aside, { recursive: true });
    renameSync(path.join(metaDir, newest), path.join(aside, newest));
    try {
      expect(readSnapshots(rollbackDir).map((s) => s.id)).toEqual(snaps.slice(0, 4).map((s) => s.id));
      const view = await ok('GET', `/v1/tables/${table}`);
      expect(view.head.snapshot_id).toBe(snaps[3]!.id);
      const row = (view.consumers as Json[]).find((x) => x.consumer === c.name);
      expect(row.lag).toBeNull();
      expect(row.lag_error.code).toEqual(expect.any(String));

      const stale = await prepare(c.name, { instance_id: 'after-rollback' });
      expect(stale.status, stale.text).toBe(422);
      expect(stale.type.startsWith('application/problem+json')).toBe(true);
      const con = await ok('GET', `/v1/consumers/${c.name}`);
      expect(con.state).toBe('stale');
      expect(con.state_reason).toContain(stale.body.code);
      expectProblem(await prepare(c.name, { instance_id: 'still-stale' }), 409, 'CONSUMER_STALE');
      expect((await ok('GET', `/v1/consumers/${c.name}/batches`)).batches).toHaveLength(1);

      const reset = await ok('POST', `/v1/consumers/${c.name}/reset`, { body: { to: 'now' } });
      expect(reset.state).toBe('active');
      expect(reset.state_reason).toBeNull();
      expect(reset.tables[0].snapshot_id).toBe(snaps[3]!.id);
      expect(reset.tables[0].version).toBe('3');
      expect((await tableRow(table, c.name)).lag).toEqual(ZERO_LAG);
      expect((await prepare(c.name, { instance_id: 'at-head' })).body.status).toBe('no_changes');
    } finally {
      renameSync(path.join(aside, newest), path.join(metaDir, newest));
    }

    // The table moves on (snapshot 5 again): the lag is snapshot 5's summary, the batch exactly its files.
    expect((await tableRow(table, c.name)).lag).toEqual(lagFromSummaries(snaps.slice(4)));
    const next = await prepare(c.name, { instance_id: 'moved-on' });
    expect(next.status, next.text).toBe(201);
    const t = next.body.batch.tables[0];
    expect(t.from_snapshot_id).toBe(snaps[3]!.id);
    expect(t.to_snapshot_id).toBe(snaps[4]!.id);
    const s5 = snaps[4]!.summary;
    expect(t.files.added).toHaveLength(Number(s5['added-data-files']));
    expect(t.files.removed).toHaveLength(Number(s5['deleted-data-files']));
    expect(t.byte_count).toBe((BigInt(s5['added-files-size']!) + BigInt(s5['removed-files-size']!)).toString());
    expect(t.record_count).toBe((BigInt(s5['added-records']!) + BigInt(s5['deleted-records']!)).toString());
    await ok('POST', `/v1/batches/${next.body.batch.id}/commit`);
    expect((await tableRow(table, c.name)).lag).toEqual(ZERO_LAG);
  });

  // A POST without a body reaches the validator as null: `curl -X POST …/abort` must still work.
  test('abort without a request body (as curl -X POST sends it) is accepted', async () => {
    const c = await newConsumer('playback');
    const p = await prepare(c.name, { instance_id: 'bodyless', limits: { max_files: 1 } });
    expect(p.status, p.text).toBe(201);
    const noBody = await call('POST', `/v1/batches/${p.body.batch.id}/abort`);
    const emptyJson = await call('POST', `/v1/batches/${p.body.batch.id}/abort`, { raw: '' });
    expect([noBody.status, emptyJson.status], `${noBody.text}\n${emptyJson.text}`).toEqual([200, 200]);
    expect(noBody.body.changed).toBe(true);
    expect(emptyJson.body.changed).toBe(false);
  });

  test('commit without a request body is accepted', async () => {
    const c = await newConsumer('playback');
    const p = await prepare(c.name, { instance_id: 'bodyless-commit', limits: { max_files: 1 } });
    expect(p.status, p.text).toBe(201);
    const r = await call('POST', `/v1/batches/${p.body.batch.id}/commit`);
    expect(r.status, r.text).toBe(200);
    expect(r.body.already_committed).toBe(false);
    const again = await call('POST', `/v1/batches/${p.body.batch.id}/commit`, { raw: '' });
    expect(again.status, again.text).toBe(200);
    expect(again.body.already_committed).toBe(true);
  });

  test('/metrics counts the step protocol outcomes done here', async () => {
    const c = await newConsumer('playback');
    const dbCounts = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Object.fromEntries(['statements', 'round_trips', 'transactions'].map((k) => {
        const m = text.match(new RegExp(`^ips_db_${k}_total (\\d+)$`, 'm'));
        expect(m, `ips_db_${k}_total in /metrics`).not.toBeNull();
        return [k, Number(m![1])];
      }));
    };
    const dbBefore = await dbCounts();
    const before = await metricCounts();
    const a = await prepare(c.name, { instance_id: 'm1', limits: { max_files: 3 } }); // prepared
    expect(a.status).toBe(201);
    expect((await prepare(c.name, { instance_id: 'm1', limits: { max_files: 3 } })).status).toBe(200); // reused
    expectProblem(await prepare(c.name, { instance_id: 'm-other' }), 409, 'BATCH_IN_FLIGHT'); // no event
    await ok('POST', `/v1/batches/${a.body.batch.id}/commit`); // committed
    await ok('POST', `/v1/batches/${a.body.batch.id}/commit`); // commit_replayed
    const b = await prepare(c.name, { instance_id: 'm2' }); // prepared
    expect(b.status).toBe(201);
    expect((await ok('POST', `/v1/batches/${b.body.batch.id}/abort`, { body: {} })).changed).toBe(true); // aborted
    expect((await ok('POST', `/v1/batches/${b.body.batch.id}/abort`, { body: {} })).changed).toBe(false); // no event
    const d = await prepare(c.name, { instance_id: 'm3' }); // prepared
    expect(d.status).toBe(201);
    expect(addedPaths(d.body.batch)).toEqual(addedPaths(b.body.batch));
    await ok('POST', `/v1/batches/${d.body.batch.id}/commit`); // committed
    expect((await prepare(c.name, { instance_id: 'm4' })).body.status).toBe('no_changes'); // no_changes
    const after = await metricCounts();
    const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
    expect(Object.fromEntries(['prepared', 'reused', 'no_changes', 'committed', 'commit_replayed', 'aborted', 'conflict'].map((k) => [k, delta(k)]))).toEqual({
      prepared: 3, reused: 1, no_changes: 1, committed: 2, commit_replayed: 1, aborted: 1, conflict: 0,
    });
    // The state database's work for all that: every prepare and commit is a transaction.
    const dbAfter = await dbCounts();
    const dbDelta = (k: string): number => dbAfter[k]! - dbBefore[k]!;
    expect(dbDelta('transactions')).toBeGreaterThanOrEqual(3 + 2);
    expect(dbDelta('statements')).toBeGreaterThan(dbDelta('transactions') * 2);
    expect(dbDelta('round_trips')).toBeGreaterThan(0);
    expect(dbDelta('round_trips')).toBeLessThanOrEqual(dbDelta('statements'));
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^ips_http_requests_total\{method="POST",route="\/v1\/consumers\/:name\/batches",status="201"\} \d+$/m);
  });
});
