// Issue 17: a batch's row changes over HTTP. A Spark-written v2 merge-on-read table (MERGE,
// UPDATE, DELETE: position deletes), a real `ips serve` on PostgreSQL, a consumer created with
// `--mode rows` from the first append; its batch covers the rest. pyarrow reads
// GET /v1/batches/{id}/rows (`pyarrow.ipc.open_stream`) and must get, as a multiset, Spark's
// changelog of the batch's range: per snapshot, (snapshot EXCEPT ALL parent) as INSERT and the
// reverse as DELETE, with ordinals 0, 1, … (time travel in Spark, not ips). `?net=true` must
// equal Spark's EXCEPT ALL of the whole range both ways. The changelog table the batch wrote
// (mode rows) is read by PyIceberg from its metadata file and must hold the same rows.
// Plus the route's refusals: another consumer's token (403), an unknown batch (404), a bad query
// (400), each as problem+json.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runPythonCode, testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { createPgDatabase } from '../../state/helpers.js';
import { RowGen } from './data.js';
import { EngineServer, type Row } from './engines.js';

const LONG = 10 * 60_000;
const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const ADMIN = 'ips_admin_rows_http_test_token';
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const MERGE = 'MERGE INTO {t} t USING batch_rows s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *';

/** pyarrow's reading of an Arrow IPC stream (or an Iceberg table's scan) as [id, ts µs, name, qty, batch, type, ordinal, snapshot] rows. */
const READ = String.raw`
import sys, json
import pyarrow as pa, pyarrow.ipc as ipc
kind, src = sys.argv[1], sys.argv[2]
if kind == "stream":
  reader = ipc.open_stream(open(src, "rb"))
  t = reader.read_all()
else:
  from pyiceberg.table import StaticTable
  t = StaticTable.from_metadata(src).scan().to_arrow()
ts = t.column("ts").cast(pa.int64()).to_pylist()
cols = {n: t.column(n).to_pylist() for n in ["id", "name", "qty", "batch", "_change_type", "_change_ordinal", "_commit_snapshot_id"]}
rows = [[cols["id"][i], ts[i], cols["name"][i], cols["qty"][i], cols["batch"][i], cols["_change_type"][i], cols["_change_ordinal"][i], str(cols["_commit_snapshot_id"][i])] for i in range(t.num_rows)]
print(json.dumps({"rows": rows, "schema": {f.name: [str(f.type), (f.metadata or {}).get(b"PARQUET:field_id", b"").decode()] for f in t.schema}}))
`;

interface Read { rows: (string | number | null)[][]; schema: Record<string, [string, string]> }

describe('GET /v1/batches/{id}/rows: pyarrow reads a batch\'s row changes, equal to Spark\'s changelog', () => {
  let work: string;
  let server: EngineServer;
  let pool: pg.Pool;
  let ns: string;
  let ips: ChildProcess;
  let url: string;
  let dropDb: (() => Promise<void>) | undefined;
  const T = 'rows_http_mor';
  let snaps: string[] = [];

  function cli(args: string[], token = ADMIN): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: token }, timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  function json(args: string[], token = ADMIN): any {
    const r = cli([...args, '--json'], token);
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  }

  beforeAll(async () => {
    const env = testEnv();
    work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ips-rows-http-'));
    ns = `rows_http_${process.pid}_${Date.now().toString(36)}`;
    pool = new pg.Pool({ connectionString: env.pgUrl, max: 2 });
    await ensureSqlCatalogTables(pool).catch(() => ensureSqlCatalogTables(pool));
    server = EngineServer.start({ storage: 'local', warehouse: `file://${work}/wh`, icdcWarehouse: `file://${work}/icdc-wh`, namespace: ns });
    await server.create('spark', T, 'day', { 'format-version': '2', ...MOR, 'write.metadata.metrics.default': 'full' });
    const gen = new RowGen(1717);
    const b1 = [0, 1].flatMap((d) => gen.rows(d, 20, 1));
    const a1 = await server.append('spark', T, b1);
    const b2 = [0, 1, 2].flatMap((d) => gen.rows(d, 15, 2));
    const a2 = await server.append('spark', T, b2);
    const m = (await server.sparkSql(T, [MERGE], [...gen.updates([...b1.slice(0, 4), ...b2.slice(20, 23)], 3), ...gen.rows(1, 5, 3)])).snapshot_id!;
    const u = (await server.sparkSql(T, ['UPDATE {t} SET qty = qty + 1000, name = concat(name, \'-u\') WHERE id % 7 = 3'])).snapshot_id!;
    const d = (await server.sparkSql(T, ['DELETE FROM {t} WHERE id % 5 = 0'])).snapshot_id!;
    snaps = [a1, a2, m, u, d];

    const db = await createPgDatabase('rows_http');
    dropDb = db.drop;
    ips = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json'], {
      cwd: work, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, IPS_ADMIN_TOKEN: ADMIN, DATABASE_URL: db.url, IPS_DATA_DIR: path.join(work, 'data'), IPS_WAREHOUSE: `file://${work}/ips-wh`, IPS_TICK_MS: '100' },
    });
    let err = '';
    ips.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      ips.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        try {
          resolve((JSON.parse(out) as { url: string }).url);
        } catch { /* not complete yet */ }
      });
      ips.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${err}`)));
    });
    json(['tables', 'register', 'src_mor', `${ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', 'src']);
  }, LONG);

  afterAll(async () => {
    if (ips && ips.exitCode === null) {
      const exited = new Promise((r) => ips.once('exit', r));
      ips.kill('SIGTERM');
      await exited;
    }
    await dropDb?.();
    await server?.close();
    await pool?.end();
    if (work) await fs.promises.rm(work, { recursive: true, force: true });
  });

  async function readWithPyarrow(kind: 'stream' | 'table', src: string): Promise<Read> {
    return JSON.parse((await runPythonCode(READ, [kind, src])).trim().split('\n').pop()!) as Read;
  }

  /** Spark's changelog of (from, to]: per snapshot, EXCEPT ALL against its parent both ways. */
  async function sparkChangelog(from: string, to: string): Promise<string[]> {
    const ids = snaps.slice(snaps.indexOf(from) + 1, snaps.indexOf(to) + 1);
    const want: string[] = [];
    let parent = from;
    for (const [ordinal, id] of ids.entries()) {
      // exceptAll(a, b): the rows AS OF b EXCEPT ALL the rows AS OF a.
      for (const [kind, a, b] of [['INSERT', parent, id], ['DELETE', id, parent]] as const) {
        for (const r of await server.exceptAll('spark', T, a, b)) want.push(JSON.stringify([...r, kind, ordinal, id]));
      }
      parent = id;
    }
    return want.sort();
  }

  const asKeys = (rows: Read['rows']) => rows.map((r) => JSON.stringify(r)).sort();

  it('a mode-rows consumer\'s batch: the Arrow stream and the changelog table equal Spark\'s changelog of the range', async () => {
    const [a1, , , , d] = snaps;
    const created = json(['consumers', 'create', 'rowsy', '--table', 'src_mor', '--from', a1!, '--mode', 'rows', '--issue-token']);
    expect(created.mode).toBe('rows');
    const token: string = created.token.token;
    const prep = json(['step', 'prepare', '--consumer', 'rowsy', '--instance-id', 'run-1'], token);
    expect(prep.status).toBe('created');
    const batch = prep.batch;
    expect([batch.tables[0].from_snapshot_id, batch.tables[0].to_snapshot_id]).toEqual([a1, d]);

    const res = await fetch(`${url}/v1/batches/${batch.id}/rows`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status, await res.clone().text().catch(() => '')).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    expect(res.headers.get('x-ips-rows-source'), 'a mode-rows batch streams its changelog table').toBe('changelog-table');
    const file = path.join(work, 'batch.arrows');
    fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const got = await readWithPyarrow('stream', file);
    const want = await sparkChangelog(a1!, d!);
    expect(want.length).toBeGreaterThan(20);
    expect(asKeys(got.rows), 'the HTTP stream vs Spark EXCEPT ALL per snapshot').toEqual(want);
    expect(got.schema['id']).toEqual(['int64', '1']);
    expect(got.schema['ts']![0]).toBe('timestamp[us, tz=UTC]');
    expect(got.schema['_commit_snapshot_id']).toEqual(['int64', '2147483541']);

    // The changelog table written for the batch (mode rows), read by PyIceberg from its metadata file.
    const cl = batch.tables[0].row_changelog;
    expect(cl, JSON.stringify(batch.tables[0])).toBeTruthy();
    expect(cl.table).toMatch(/__changelog$/);
    const table = await readWithPyarrow('table', cl.metadata_location.replace(/^file:\/\//, ''));
    expect(asKeys(table.rows), 'the changelog table vs Spark').toEqual(want);
    expect(String(cl.record_count)).toBe(String(want.length));
    // Served by ips's REST catalog in namespace icdc, to the consumer's own token, at this batch's metadata.
    const listed = (await (await fetch(`${url}/iceberg/v1/ips/namespaces/icdc/tables`, { headers: { authorization: `Bearer ${token}` } })).json()) as { identifiers: { name: string }[] };
    expect(listed.identifiers.map((x) => x.name).sort()).toEqual(['rowsy__src_mor', 'rowsy__src_mor__changelog']);
    const loaded = (await (await fetch(`${url}/iceberg/v1/ips/namespaces/icdc/tables/rowsy__src_mor__changelog`, { headers: { authorization: `Bearer ${token}` } })).json()) as { 'metadata-location': string };
    expect(loaded['metadata-location']).toBe(cl.metadata_location);

    // Net: the whole range at once.
    const net = await fetch(`${url}/v1/batches/${batch.id}/rows?net=true`, { headers: { authorization: `Bearer ${token}` } });
    expect(net.status).toBe(200);
    expect(net.headers.get('x-ips-rows-source')).toBe('computed');
    fs.writeFileSync(file, Buffer.from(await net.arrayBuffer()));
    const netRows = await readWithPyarrow('stream', file);
    const wantNet: string[] = [];
    for (const [kind, a, b] of [['INSERT', a1, d], ['DELETE', d, a1]] as const) {
      for (const r of await server.exceptAll('spark', T, a!, b!)) wantNet.push(JSON.stringify([...(r as Row), kind, 0, d]));
    }
    expect(asKeys(netRows.rows), 'net rows vs Spark EXCEPT ALL of the range').toEqual(wantNet.sort());

    // Refusals, as problem+json before any Arrow byte.
    // A files-mode consumer over the same range: its batch has no changelog table, the rows are computed.
    const other = json(['consumers', 'create', 'other', '--table', 'src_mor', '--from', a1!, '--issue-token']);
    expect(other.mode).toBe('files');
    const otherBatch = json(['step', 'prepare', '--consumer', 'other', '--instance-id', 'o-1'], other.token.token).batch;
    expect(otherBatch.tables[0].row_changelog).toBeNull();
    const computed = await fetch(`${url}/v1/batches/${otherBatch.id}/rows`, { headers: { authorization: `Bearer ${other.token.token}` } });
    expect([computed.status, computed.headers.get('x-ips-rows-source')]).toEqual([200, 'computed']);
    fs.writeFileSync(file, Buffer.from(await computed.arrayBuffer()));
    expect(asKeys((await readWithPyarrow('stream', file)).rows), 'computed rows of a files-mode batch vs Spark').toEqual(want);

    const forbidden = await fetch(`${url}/v1/batches/${batch.id}/rows`, { headers: { authorization: `Bearer ${other.token.token}` } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const missing = await fetch(`${url}/v1/batches/12345/rows`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect([missing.status, missing.headers.get('content-type')?.split(';')[0]]).toEqual([404, 'application/problem+json']);
    const bad = await fetch(`${url}/v1/batches/${batch.id}/rows?net=maybe`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(bad.status).toBe(400);
    const noTable = await fetch(`${url}/v1/batches/${batch.id}/rows?table=nope`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect([noTable.status, ((await noTable.json()) as { code: string }).code]).toEqual([404, 'NOT_FOUND']);

    // The step protocol hands the changelog table to a bash step (a retried prepare: the same batch).
    const env = cli(['step', 'prepare', '--consumer', 'rowsy', '--instance-id', 'run-1', '--env'], token);
    expect(env.status, env.stderr).toBe(0);
    expect(env.stdout).toContain(`IPS_ROW_CHANGELOG_METADATA_LOCATION=${cl.metadata_location}`);
    expect(env.stdout).toContain(`IPS_ROW_CHANGELOG_RECORD_COUNT=${want.length}`);

    // Committing moves on; the route documents itself in the OpenAPI schema.
    json(['step', 'commit', String(batch.id)], token);
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(JSON.stringify(doc.paths['/v1/batches/{id}/rows'])).toContain('application/vnd.apache.arrow.stream');
  }, LONG);
});
