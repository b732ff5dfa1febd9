// Engines attach ips's Iceberg REST catalog (src/rest) the way a user configures them, and read
// the ICDC tables through it: PyIceberg `load_catalog(type="rest", uri=…, token=…)` and Spark 3.5
// with `spark.sql.catalog.ips` of type `rest` (Iceberg runtime + iceberg-aws-bundle, no
// hadoop-aws), on local disk and on MinIO. Two real `ips serve`s (embedded state): one with a
// local warehouse, one with an S3 warehouse that vends the source table's S3 keys. PyIceberg
// writes the source tables (SqlCatalog on the test PostgreSQL); the test generates the rows, so
// every expectation (the batch's rows, the MERGE's aggregate, the files each snapshot added, as
// PyIceberg reports them on the source) comes from the test or the writing engine, never from ips.
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { PythonWorker } from '../setup/python-worker.js';
import { testEnv } from '../setup/env.js';
import { pgliteTemplate } from '../state/helpers.js';

type Storage = 'local' | 's3';
/** [event_id, event_ts µs, event_date, profile_id, title_id, watch_seconds] */
type Row = [number, number, string, number, number, number];
interface Snap { snapshot_id: string; parent_id: string | null; operation: string | null; summary: Record<string, string> }
interface PyRead {
  metadata_location: string; current_snapshot_id: string; rows: Row[]; snapshots: Snap[];
  entries: Record<string, [number, string, string][]>; incremental?: Row[]; as_of?: Row[];
}
interface SparkRead { rows: Row[]; tables: string[]; snapshots: Snap[]; all_entries: [number, string, string][]; incremental?: Row[]; as_of?: Row[] }

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const DAY_US = 86_400_000_000;
const START_US = Date.UTC(2026, 10, 1) * 1000;

/** Deterministic rows of one append: a few days, profiles and titles, so the MERGE aggregates. */
function rows(batch: number, n: number): Row[] {
  const out: Row[] = [];
  for (let i = 0; i < n; i++) {
    const id = batch * 1000 + i;
    const day = (i * 7 + batch) % 3;
    const ts = START_US + day * DAY_US + ((id * 7919) % 86_400) * 1_000_000;
    out.push([id, ts, new Date(ts / 1000).toISOString().slice(0, 10), 100 + (i % 4), 10 + ((i + batch) % 3), 30 + ((id * 31) % 600)]);
  }
  return out;
}

/** The playback stage-1 aggregate of these rows, computed here: [date, profile, title, plays, watch_seconds]. */
function aggregate(rs: Row[]): [string, number, number, number, number][] {
  const m = new Map<string, [string, number, number, number, number]>();
  for (const r of rs) {
    const k = `${r[2]}|${r[3]}|${r[4]}`;
    const a = m.get(k) ?? [r[2], r[3], r[4], 0, 0];
    a[3] += 1;
    a[4] += r[5];
    m.set(k, a);
  }
  return [...m.values()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1] || x[2] - y[2]));
}

const byId = (rs: Row[]): Row[] => [...rs].sort((a, b) => a[0] - b[0]);

interface Side {
  storage: Storage;
  server: RunningServer;
  /** REST catalog URI an engine is given. */
  uri: string;
  table: string;
  tokens: Record<'alice' | 'bob', string>;
  /** Per append: snapshot id and the data files PyIceberg says it added. */
  appends: { snapshotId: string; files: string[]; rows: Row[] }[];
}

describe('engines attach ips as an Iceberg REST catalog (PyIceberg and Spark, local disk and MinIO)', () => {
  let tmp: string;
  let engines: PythonWorker;
  const sides = {} as Record<Storage, Side>;
  const env = testEnv();
  const s3Prefix = `rest-engines-${crypto.randomBytes(4).toString('hex')}`;

  async function api(side: Side, method: string, p: string, body?: unknown, token = ADMIN): Promise<any> {
    const r = await fetch(side.server.url + p, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return JSON.parse(text);
  }

  async function prepare(side: Side, consumer: 'alice' | 'bob', instance: string): Promise<{ id: string; snapshotId: string; icdc: string }> {
    const b = (await api(side, 'POST', `/v1/consumers/${consumer}/batches`, { instance_id: instance }, side.tokens[consumer])).batch;
    return { id: b.id, snapshotId: b.tables[0].icdc.snapshot_id, icdc: b.tables[0].icdc.table.replace(/^icdc\./, '') };
  }

  async function append(side: Side, rs: Row[]): Promise<void> {
    const r = await engines.call<{ snapshot_id: string; files: string[] }>('py_append', { storage: side.storage, table: side.table, rows: rs });
    side.appends.push({ snapshotId: r.snapshot_id, files: r.files, rows: rs });
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-rest-engines-'));
    engines = PythonWorker.start('rest_engines.py', ['test/rest/rest_engines.py',
      '--local-warehouse', `file://${path.join(tmp, 'lake')}`, '--s3-warehouse', `s3://${env.s3Bucket}/${s3Prefix}/lake`, '--target-warehouse', path.join(tmp, 'targets')]);
    await engines.ready;
    for (const storage of ['local', 's3'] as const) {
      let config: ServiceConfig = loadServiceConfig({
        env: {
          DATABASE_URL: 'memory:', IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off',
          IPS_WAREHOUSE: storage === 'local' ? path.join(tmp, 'icdc') : `s3://${env.s3Bucket}/${s3Prefix}/icdc`,
          // On MinIO the table config carries the source table's keys: Spark and PyIceberg get no S3 settings of their own.
          IPS_REST_VEND_CREDENTIALS: storage === 's3' ? 'true' : 'false',
        },
      });
      config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
      const server = await startServer(config);
      const table = `events_${storage}`;
      const side: Side = { storage, server, uri: `${server.url}/iceberg`, table, tokens: { alice: '', bob: '' }, appends: [] };
      sides[storage] = side;
      const created = await engines.call<{ catalog: string; identifier: string }>('py_create', { storage, table });
      await append(side, rows(1, 40));
      await api(side, 'POST', '/v1/tables', {
        name: table, ref: { kind: 'sql', uri: env.pgUrl, catalog_name: created.catalog, identifier: created.identifier },
        ...(storage === 's3' ? { s3: { endpoint: env.s3Endpoint, region: env.s3Region, path_style: true, access_key_id: env.s3AccessKey, secret_access_key: env.s3SecretKey } } : {}),
      });
      for (const c of ['alice', 'bob'] as const) {
        side.tokens[c] = (await api(side, 'POST', '/v1/consumers', { name: c, tables: [{ table }], issue_token: true })).token.token;
      }
    }
    const catalogs: Record<string, string> = {};
    for (const [name, side] of [['ips', sides.local], ['ips_s3', sides.s3]] as const) {
      const c = `spark.sql.catalog.${name}`;
      // cache-enabled=false: every batch moves the ICDC table, and a long-lived session must see it.
      Object.assign(catalogs, {
        [c]: 'org.apache.iceberg.spark.SparkCatalog', [`${c}.type`]: 'rest', [`${c}.uri`]: side.uri, [`${c}.token`]: side.tokens.alice,
        [`${c}.cache-enabled`]: 'false',
      });
    }
    // The same local catalog through the OAuth2 client-credentials flow: the token as client secret.
    Object.assign(catalogs, {
      'spark.sql.catalog.ips_oauth': 'org.apache.iceberg.spark.SparkCatalog', 'spark.sql.catalog.ips_oauth.type': 'rest',
      'spark.sql.catalog.ips_oauth.uri': sides.local.uri, 'spark.sql.catalog.ips_oauth.credential': `alice:${sides.local.tokens.alice}`,
      'spark.sql.catalog.ips_oauth.oauth2-server-uri': `${sides.local.uri}/v1/oauth/tokens`, 'spark.sql.catalog.ips_oauth.cache-enabled': 'false',
    });
    const started = await engines.call<{ jars: string }>('spark_start', { catalogs });
    // The S3 reads below go through Iceberg's S3FileIO (iceberg-aws-bundle), not Hadoop's s3a.
    expect(started.jars).toMatch(/iceberg-aws-bundle/);
    expect(started.jars).not.toMatch(/hadoop-aws/);
  }, 600_000);

  afterAll(async () => {
    await engines?.close();
    for (const s of Object.values(sides)) await s.server.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe.each(['local', 's3'] as const)('%s', (storage) => {
    const sparkCatalog = storage === 'local' ? 'ips' : 'ips_s3';
    let first: { id: string; snapshotId: string; icdc: string };
    let second: { id: string; snapshotId: string; icdc: string };

    test('PyIceberg lists and reads every ICDC table of a consumer: the batch\'s rows', async () => {
      const side = sides[storage];
      first = await prepare(side, 'alice', 'a-1');
      const bobs = await prepare(side, 'bob', 'b-1');
      const alice = await engines.call<{ namespaces: string[][]; tables: string[]; sources: string[] }>('py_list', { uri: side.uri, token: side.tokens.alice });
      expect(alice.namespaces).toEqual([['icdc'], ['sources']]);
      expect(alice.sources).toEqual([`sources.${side.table}`]);
      expect(alice.tables).toEqual([`icdc.${first.icdc}`]);
      const admin = await engines.call<{ tables: string[] }>('py_list', { uri: side.uri, token: ADMIN });
      expect(admin.tables).toEqual([`icdc.${bobs.icdc}`, `icdc.${first.icdc}`].sort());
      for (const [c, b] of [['alice', first], ['bob', bobs]] as const) {
        const read = await engines.call<PyRead>('py_read', { uri: side.uri, token: side.tokens[c], name: b.icdc });
        expect(read.rows).toEqual(byId(side.appends[0]!.rows));
        expect(read.current_snapshot_id).toBe(b.snapshotId);
        if (storage === 's3') expect(read.metadata_location).toMatch(/^s3:\/\//);
      }
    });

    test('Spark SELECTs the ICDC table by name and runs the playback stage-1 MERGE INTO from it', async () => {
      const side = sides[storage];
      const read = await engines.call<SparkRead>('spark_select', { ident: `${sparkCatalog}.icdc.${first.icdc}` });
      expect(read.tables).toEqual([first.icdc]); // alice's token: her table only
      expect(read.rows).toEqual(byId(side.appends[0]!.rows));
      const merged = await engines.call<unknown[]>('spark_merge', { icdc: `${sparkCatalog}.icdc.${first.icdc}`, target: `tgt.db.daily_${storage}` });
      expect(merged).toEqual(aggregate(side.appends[0]!.rows));
      if (storage === 'local') {
        // Spark configured with `credential` (client id:secret) gets its bearer token from /v1/oauth/tokens.
        const viaOauth = await engines.call<SparkRead>('spark_select', { ident: `ips_oauth.icdc.${first.icdc}` });
        expect(viaOauth.tables).toEqual([first.icdc]);
        expect(viaOauth.rows).toEqual(byId(side.appends[0]!.rows));
      }
    });

    test('the next batch replaces the previous one: current rows, history, entries and incremental reads in both engines', async () => {
      const side = sides[storage];
      await api(side, 'POST', `/v1/batches/${first.id}/commit`, undefined, side.tokens.alice);
      await append(side, rows(2, 25));
      second = await prepare(side, 'alice', 'a-2');
      expect(second.icdc).toBe(first.icdc);
      const [a1, a2] = side.appends as [Side['appends'][0], Side['appends'][0]];

      const py = await engines.call<PyRead>('py_read', { uri: side.uri, token: side.tokens.alice, name: second.icdc, from: first.snapshotId, to: second.snapshotId, as_of: first.snapshotId });
      expect(py.rows).toEqual(byId(a2.rows));
      expect(py.current_snapshot_id).toBe(second.snapshotId);
      // PyIceberg's own incremental read between the two batch snapshots: exactly the later batch.
      expect(py.incremental).toEqual(byId(a2.rows));
      // Time travel to the first batch still gives the first batch.
      expect(py.as_of).toEqual(byId(a1.rows));
      // History: first batch (append), a delete of its files, the second batch (append).
      const chain = py.snapshots.map((s) => [s.operation, s.parent_id]);
      const del = py.snapshots.find((s) => s.operation === 'delete')!;
      expect(chain).toEqual([['append', null], ['delete', first.snapshotId], ['append', del.snapshot_id]]);
      expect(del.summary['deleted-data-files']).toBe(String(a1.files.length));
      expect(del.summary['deleted-records']).toBe(String(a1.rows.length));
      expect(del.summary['total-data-files']).toBe('0');
      // Entries, per PyIceberg: the delete snapshot holds the first batch's files (as PyIceberg
      // wrote them into the source) as DELETED (2); the second batch's snapshot only its own, ADDED (1).
      expect(py.entries[del.snapshot_id]).toEqual(a1.files.map((f) => [2, f, del.snapshot_id]).sort());
      expect(py.entries[second.snapshotId]).toEqual(a2.files.map((f) => [1, f, second.snapshotId]).sort());

      const spark = await engines.call<SparkRead>('spark_select', { ident: `${sparkCatalog}.icdc.${second.icdc}`, from: first.snapshotId, to: second.snapshotId, as_of: first.snapshotId });
      expect(spark.rows).toEqual(byId(a2.rows));
      // Spark's start-snapshot-id/end-snapshot-id read (IncrementalAppendScan): exactly the later batch.
      expect(spark.incremental).toEqual(byId(a2.rows));
      expect(spark.as_of).toEqual(byId(a1.rows));
      expect(spark.snapshots.map((s) => s.operation)).toEqual(['append', 'delete', 'append']);
      expect(spark.snapshots.map((s) => s.snapshot_id)).toEqual(py.snapshots.map((s) => s.snapshot_id));
      // Spark's all_entries: each first-batch file ADDED once and DELETED once, each second-batch file ADDED.
      const sparkEntries = spark.all_entries.map(([st, f]) => `${st} ${f}`).sort();
      const want = [...a1.files.flatMap((f) => [`1 ${f}`, `2 ${f}`]), ...a2.files.map((f) => `1 ${f}`)].sort();
      expect(sparkEntries).toEqual(want);

      const merged = await engines.call<unknown[]>('spark_merge', { icdc: `${sparkCatalog}.icdc.${second.icdc}`, target: `tgt.db.daily_${storage}` });
      expect(merged).toEqual(aggregate([...a1.rows, ...a2.rows]));
    });

    test('the source table is served read-only in namespace sources, at its current metadata', async () => {
      const side = sides[storage];
      const all = byId(side.appends.flatMap((a) => a.rows));
      const py = await engines.call<PyRead>('py_read', { uri: side.uri, token: side.tokens.alice, name: `sources.${side.table}` });
      expect(py.rows).toEqual(all);
      expect(py.current_snapshot_id).toBe(side.appends.at(-1)!.snapshotId);
      const spark = await engines.call<SparkRead>('spark_select', { ident: `${sparkCatalog}.sources.${side.table}` });
      expect(spark.rows).toEqual(all);
      expect(spark.snapshots.map((s) => s.snapshot_id)).toEqual(side.appends.map((a) => a.snapshotId));
    });

    test("tokens are isolated and writes are refused through the engines' own clients", async () => {
      const side = sides[storage];
      const bobTable = (await engines.call<{ tables: string[] }>('py_list', { uri: side.uri, token: side.tokens.bob })).tables[0]!.replace(/^icdc\./, '');
      const got = await engines.call<Record<string, { ok: boolean; type?: string; message?: string; result?: unknown }>>('py_refused', {
        uri: side.uri, token: side.tokens.alice, own: first.icdc, foreign: bobTable,
      });
      expect(got.load_foreign).toMatchObject({ ok: false, type: 'NoSuchTableError' });
      expect(got.load_foreign!.message).not.toContain(side.server.url);
      expect(got.exists_foreign).toEqual({ ok: true, result: false });
      // PyIceberg 0.12 checks the advertised endpoints before sending; the server's own 406 for a
      // client that sends anyway is in rest-http.test.ts.
      for (const w of ['drop_table', 'rename_table', 'create_namespace', 'drop_namespace', 'create_table', 'register_table', 'commit']) {
        expect(got[w]!.ok, `${w}: ${JSON.stringify(got[w])}`).toBe(false);
        expect(got[w]!.message, w).toMatch(/read-only|does not support endpoint/);
      }
      // Spark refuses before sending: the config advertises no write endpoint.
      const spark = await engines.call<Record<string, { ok: boolean; message?: string }>>('spark_refused', {
        statements: {
          drop: `DROP TABLE ${sparkCatalog}.icdc.${first.icdc}`,
          insert: `INSERT INTO ${sparkCatalog}.icdc.${first.icdc} SELECT * FROM ${sparkCatalog}.icdc.${first.icdc}`,
          create: `CREATE TABLE ${sparkCatalog}.icdc.created (a INT) USING iceberg`,
          foreign: `SELECT * FROM ${sparkCatalog}.icdc.${bobTable}`,
        },
      });
      for (const [k, v] of Object.entries(spark)) expect(v.ok, `${k}: ${JSON.stringify(v)}`).toBe(false);
      expect(spark.foreign!.message).toMatch(/TABLE_OR_VIEW_NOT_FOUND|cannot be found/);
      // Still there, unchanged.
      const again = await engines.call<SparkRead>('spark_select', { ident: `${sparkCatalog}.icdc.${first.icdc}` });
      expect(again.rows).toEqual(byId(side.appends[1]!.rows));
    });
  });
});
