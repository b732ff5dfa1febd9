// The Iceberg REST catalog of ips (src/rest) over real HTTP: `startServer` on a free port, the
// state in the real PostgreSQL and in embedded PGlite, ICDC tables made by real prepares of the
// bundled playback fixture (written by PyIceberg). What the engines do with it is in
// rest-engines.test.ts; this file holds the protocol: config, namespaces, listing, loading,
// token isolation, the spec's error bodies, write refusals and malformed requests. Expected
// values come from the spec (status codes, exception types) and from the batches the step API
// handed out, never from the catalog under test.
import crypto from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseLossless } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { IcdcRestCatalog } from '../../src/rest/catalog.js';
import { Secret, type SourceTable } from '../../src/state/index.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const BASE = '/iceberg/v1';
const P = `${BASE}/ips`;

interface Res { status: number; text: string; json: any; headers: Headers }

describe.each(DRIVERS)('Iceberg REST catalog over HTTP (%s state)', (driver) => {
  let tmp: string;
  let server: RunningServer;
  let drop: (() => Promise<void>) | undefined;
  const consumers: { name: string; token: string; icdc: string; metadataLocation: string; snapshotId: string; batchId: string }[] = [];

  async function call(method: string, p: string, opts: { token?: string | null; body?: string; headers?: Record<string, string> } = {}): Promise<Res> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? ADMIN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) });
    const text = await r.text();
    let json: unknown = null;
    try {
      json = text ? parseLossless(text, undefined, (n: string) => n) : null;
    } catch { /* not JSON: the test says so */ }
    return { status: r.status, text, json, headers: r.headers };
  }

  /** The spec's IcebergErrorResponse, with this status and exception type. */
  function expectError(r: Res, status: number, type: string): void {
    expect(r.status, r.text).toBe(status);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys(r.json)).toEqual(['error']);
    expect(r.json.error.type).toBe(type);
    expect(Number(r.json.error.code)).toBe(status);
    expect(typeof r.json.error.message).toBe('string');
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-rest-http-'));
    const tableDir = path.join(tmp, 'tables', 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    let databaseUrl = 'memory:';
    if (driver === 'postgres') {
      const db = await createPgDatabase('rest_http');
      drop = db.drop;
      databaseUrl = db.url;
    }
    let config: ServiceConfig = loadServiceConfig({
      env: { DATABASE_URL: databaseUrl, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'warehouse'), IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off', IPS_BODY_LIMIT_BYTES: '4096' },
    });
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);
    expect((await call('POST', '/v1/tables', { body: JSON.stringify({ name: 'playback', ref: { kind: 'directory', location: tableDir } }) })).status).toBe(201);
    for (const name of ['alice', 'bob.pipe-1']) {
      const c = await call('POST', '/v1/consumers', { body: JSON.stringify({ name, tables: [{ table: 'playback' }], issue_token: true }) });
      expect(c.status, c.text).toBe(201);
      const b = await call('POST', `/v1/consumers/${name}/batches`, { body: JSON.stringify({ instance_id: 'run-1', limits: { max_files: 1 } }) });
      expect(b.status, b.text).toBe(201);
      const t = b.json.batch.tables[0];
      consumers.push({ name, token: c.json.token.token, icdc: String(t.icdc.table), metadataLocation: t.icdc.metadata_location, snapshotId: String(t.icdc.snapshot_id), batchId: String(b.json.batch.id) });
    }
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await drop?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('config: the prefix and the read endpoints; another warehouse is NoSuchWarehouse', async () => {
    const r = await call('GET', `${BASE}/config`);
    expect(r.status, r.text).toBe(200);
    expect(r.json.overrides).toEqual({ prefix: 'ips' });
    expect(r.json.defaults).toEqual({});
    expect([...r.json.endpoints].sort()).toEqual([
      'GET /v1/{prefix}/namespaces', 'GET /v1/{prefix}/namespaces/{namespace}', 'GET /v1/{prefix}/namespaces/{namespace}/tables',
      'GET /v1/{prefix}/namespaces/{namespace}/tables/{table}', 'HEAD /v1/{prefix}/namespaces/{namespace}', 'HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}',
    ]);
    expect((await call('GET', `${BASE}/config?warehouse=ips`)).status).toBe(200);
    expectError(await call('GET', `${BASE}/config?warehouse=s3://elsewhere`), 404, 'NoSuchWarehouseException');
  });

  test('every route needs a valid token: 401 NotAuthorizedException in the spec body', async () => {
    expectError(await call('GET', `${BASE}/config`, { token: null }), 401, 'NotAuthorizedException');
    expectError(await call('GET', `${P}/namespaces/icdc/tables`, { token: 'ips_not-a-token' }), 401, 'NotAuthorizedException');
    const other = consumers[1]!;
    const r = await call('GET', `${P}/namespaces/icdc/tables/${other.icdc.slice('icdc.'.length)}`, { token: null });
    expectError(r, 401, 'NotAuthorizedException');
    expect(r.text).not.toContain(other.metadataLocation);
    expect((await call('HEAD', `${P}/namespaces/icdc/tables/${other.icdc.slice('icdc.'.length)}`, { token: null })).status).toBe(401);
  });

  test('namespaces: one, icdc; nested or unknown ones do not exist', async () => {
    const list = await call('GET', `${P}/namespaces`);
    expect(list.status).toBe(200);
    expect(list.json.namespaces).toEqual([['icdc'], ['sources']]);
    expect((await call('GET', `${P}/namespaces?parent=icdc`)).json.namespaces).toEqual([]);
    const ns = await call('GET', `${P}/namespaces/icdc`);
    expect(ns.status).toBe(200);
    expect(ns.json.namespace).toEqual(['icdc']);
    expect((await call('HEAD', `${P}/namespaces/icdc`)).status).toBe(204);
    expect((await call('HEAD', `${P}/namespaces/nope`)).status).toBe(404);
    expectError(await call('GET', `${P}/namespaces/nope`), 404, 'NoSuchNamespaceException');
    expectError(await call('GET', `${P}/namespaces/icdc%1Fsub`), 404, 'NoSuchNamespaceException');
    expectError(await call('GET', `${P}/namespaces/nope/tables`), 404, 'NoSuchNamespaceException');
    expectError(await call('GET', `${P}/namespaces?parent=nope`), 404, 'NoSuchNamespaceException');
    // A table in a namespace that does not exist is a table that does not exist (as Iceberg Java's
    // catalogs answer; Spark relies on it to resolve `icdc.t.snapshots` as a metadata table).
    expectError(await call('GET', `${P}/namespaces/nope/tables/x`), 404, 'NoSuchTableException');
    expectError(await call('GET', `${P}/namespaces/icdc%1Fsome_table/tables/snapshots`), 404, 'NoSuchTableException');
    expect((await call('HEAD', `${P}/namespaces/nope/tables/x`)).status).toBe(404);
  });

  test('the admin lists every ICDC table; a consumer token only its own', async () => {
    const names = consumers.map((c) => c.icdc.slice('icdc.'.length)).sort();
    const all = await call('GET', `${P}/namespaces/icdc/tables`);
    expect(all.status).toBe(200);
    expect(all.json.identifiers.map((i: any) => i.name).sort()).toEqual(names);
    expect(all.json.identifiers.every((i: any) => JSON.stringify(i.namespace) === '["icdc"]')).toBe(true);
    for (const c of consumers) {
      const mine = await call('GET', `${P}/namespaces/icdc/tables`, { token: c.token });
      expect(mine.json.identifiers).toEqual([{ namespace: ['icdc'], name: c.icdc.slice('icdc.'.length) }]);
    }
    // Paging: one name per page, in order, until no token.
    const paged: string[] = [];
    let token: string | null = null;
    for (let i = 0; i < 5; i++) {
      const r: Res = await call('GET', `${P}/namespaces/icdc/tables?pageSize=1${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
      expect(r.status, r.text).toBe(200);
      paged.push(...r.json.identifiers.map((x: any) => x.name));
      token = r.json['next-page-token'];
      if (token === null) break;
    }
    expect(paged).toEqual(names);
  });

  test('load: the batch\'s ICDC metadata file, verbatim, at its metadata location; HEAD and ETag', async () => {
    for (const c of consumers) {
      const name = c.icdc.slice('icdc.'.length);
      const r = await call('GET', `${P}/namespaces/icdc/tables/${name}`, { token: c.token });
      expect(r.status, r.text).toBe(200);
      expect(Object.keys(r.json).sort()).toEqual(['config', 'metadata', 'metadata-location']);
      expect(r.json['metadata-location']).toBe(c.metadataLocation);
      // The metadata is the file itself (64-bit ids as written): compare against the file, parsed independently.
      expect(r.json.metadata).toEqual(parseLossless(readFileSync(c.metadataLocation, 'utf8'), undefined, (n: string) => n));
      expect(r.json.metadata['current-snapshot-id']).toBe(c.snapshotId);
      expect(r.json.config).toEqual({}); // local files: nothing to configure
      expect((await call('HEAD', `${P}/namespaces/icdc/tables/${name}`, { token: c.token })).status).toBe(204);
      const etag = r.headers.get('etag');
      expect(etag).toMatch(/^".+"$/);
      expect((await call('GET', `${P}/namespaces/icdc/tables/${name}`, { token: c.token, headers: { 'if-none-match': etag! } })).status).toBe(304);
    }
  });

  test("a consumer token cannot see another consumer's table: 404 as for a name nobody has, nothing leaked", async () => {
    const [a, b] = consumers as [typeof consumers[0], typeof consumers[0]];
    const theirs = b.icdc.slice('icdc.'.length);
    const r = await call('GET', `${P}/namespaces/icdc/tables/${theirs}`, { token: a.token });
    expectError(r, 404, 'NoSuchTableException');
    expect(r.text).not.toContain(b.metadataLocation);
    const nobody = await call('GET', `${P}/namespaces/icdc/tables/nobody__playback`, { token: a.token });
    expectError(nobody, 404, 'NoSuchTableException');
    // Same answer, apart from the name, whether the table exists or not.
    expect(r.json.error.message.replace(theirs, 'X')).toBe(nobody.json.error.message.replace('nobody__playback', 'X'));
    expect((await call('HEAD', `${P}/namespaces/icdc/tables/${theirs}`, { token: a.token })).status).toBe(404);
  });

  test('a later batch moves the table to its metadata file; the earlier batch stays in its history', async () => {
    const c = consumers[0]!;
    expect((await call('POST', `/v1/batches/${c.batchId}/commit`, { token: c.token })).status).toBe(200);
    const b = await call('POST', `/v1/consumers/${c.name}/batches`, { token: c.token, body: JSON.stringify({ instance_id: 'run-2', limits: { max_files: 1 } }) });
    expect(b.status, b.text).toBe(201);
    const t = b.json.batch.tables[0];
    const r = await call('GET', `${P}/namespaces/icdc/tables/${c.icdc.slice('icdc.'.length)}`, { token: c.token });
    expect(r.json['metadata-location']).toBe(t.icdc.metadata_location);
    expect(r.json.metadata['current-snapshot-id']).toBe(String(t.icdc.snapshot_id));
    const ids = r.json.metadata.snapshots.map((s: any) => s['snapshot-id']);
    expect(ids).toContain(c.snapshotId);
  });

  test("a backfill's chunks are an ICDC table of their own, seen by the backfill's consumer only", async () => {
    const [a, b] = consumers as [typeof consumers[0], typeof consumers[0]];
    const created = await call('POST', '/v1/backfills', { body: JSON.stringify({ name: 'fix', consumer: a.name, table: 'playback', where: 'event_ts >= 2026-11-01 and event_ts < 2026-11-03', chunk: 'day' }) });
    expect(created.status, created.text).toBe(201);
    const chunk = await call('POST', '/v1/backfills/fix/batches', { token: a.token, body: JSON.stringify({ instance_id: 'fix-1' }) });
    expect(chunk.status, chunk.text).toBe(201);
    const icdc = chunk.json.batch.tables[0].icdc;
    const name = String(icdc.table).slice('icdc.'.length);
    expect(name).toBe(`${a.name}__playback__backfill__fix`);
    const mine = await call('GET', `${P}/namespaces/icdc/tables`, { token: a.token });
    expect(mine.json.identifiers.map((i: any) => i.name).sort()).toEqual([a.icdc.slice('icdc.'.length), name].sort());
    const theirs = await call('GET', `${P}/namespaces/icdc/tables`, { token: b.token });
    expect(theirs.json.identifiers.map((i: any) => i.name)).toEqual([b.icdc.slice('icdc.'.length)]);
    const loaded = await call('GET', `${P}/namespaces/icdc/tables/${name}`, { token: a.token });
    expect(loaded.json['metadata-location']).toBe(icdc.metadata_location);
    expect(loaded.json.metadata['current-snapshot-id']).toBe(String(icdc.snapshot_id));
    expectError(await call('GET', `${P}/namespaces/icdc/tables/${name}`, { token: b.token }), 404, 'NoSuchTableException');
  });

  test('namespace sources: the registered tables a token may see; one read through a relocation is refused', async () => {
    const admin = await call('GET', `${P}/namespaces/sources/tables`);
    expect(admin.json.identifiers).toEqual([{ namespace: ['sources'], name: 'playback' }]);
    for (const c of consumers) {
      expect((await call('GET', `${P}/namespaces/sources/tables`, { token: c.token })).json.identifiers.map((i: any) => i.name)).toEqual(['playback']);
    }
    // A consumer subscribed to nothing sees no source table, and loading one is the 404 of a name nobody has.
    const loner = await call('POST', '/v1/consumers', { body: JSON.stringify({ name: 'loner', issue_token: true }) });
    expect(loner.status, loner.text).toBe(201);
    const lonerToken = loner.json.token.token as string;
    expect((await call('GET', `${P}/namespaces/sources/tables`, { token: lonerToken })).json.identifiers).toEqual([]);
    expectError(await call('GET', `${P}/namespaces/sources/tables/playback`, { token: lonerToken }), 404, 'NoSuchTableException');
    expect((await call('HEAD', `${P}/namespaces/sources/tables/playback`, { token: lonerToken })).status).toBe(404);
    expect((await call('HEAD', `${P}/namespaces/sources/tables/playback`)).status).toBe(204);
    expect((await call('GET', `${P}/namespaces/icdc/tables`, { token: lonerToken })).json.identifiers).toEqual([]);
    // The fixture is a copied directory whose metadata names where PyIceberg wrote it: an engine
    // could not open its files, so it is refused rather than served.
    const r = await call('GET', `${P}/namespaces/sources/tables/playback`);
    expectError(r, 422, 'UnprocessableEntityException');
    expect(r.json.error.message).toMatch(/file:\/\/\/ips-fixtures\/demo\/playback/);
  });

  test('every write endpoint of the spec is refused with 406 UnsupportedOperationException, and changes nothing', async () => {
    const before = await call('GET', `${P}/namespaces/icdc/tables`);
    const t = consumers[1]!.icdc.slice('icdc.'.length);
    const writes: [string, string, string?][] = [
      ['POST', `${P}/namespaces`, '{"namespace":["x"]}'],
      ['DELETE', `${P}/namespaces/icdc`],
      ['POST', `${P}/namespaces/icdc/properties`, '{"removals":[],"updates":{"a":"b"}}'],
      ['POST', `${P}/namespaces/icdc/tables`, '{"name":"t","schema":{"type":"struct","fields":[]}}'],
      ['POST', `${P}/namespaces/icdc/register`, '{"name":"t","metadata-location":"/etc/passwd"}'],
      ['POST', `${P}/namespaces/icdc/tables/${t}`, '{"requirements":[],"updates":[]}'],
      ['DELETE', `${P}/namespaces/icdc/tables/${t}?purgeRequested=true`],
      ['POST', `${P}/tables/rename`, `{"source":{"namespace":["icdc"],"name":"${t}"},"destination":{"namespace":["icdc"],"name":"x"}}`],
      ['POST', `${P}/transactions/commit`, '{"table-changes":[]}'],
      ['POST', `${P}/namespaces/icdc/tables/${t}/metrics`, '{}'],
      ['POST', `${P}/namespaces/icdc/views`, '{}'],
      ['DELETE', `${P}/namespaces/icdc/views/v`],
      ['POST', `${P}/views/rename`, '{}'],
    ];
    for (const [method, p, body] of writes) {
      const r = await call(method, p, body === undefined ? {} : { body });
      expectError(r, 406, 'UnsupportedOperationException');
      expect(r.json.error.message).toMatch(/read-only/);
      // A consumer token gets the same refusal.
      expectError(await call(method, p, { token: consumers[0]!.token, ...(body === undefined ? {} : { body }) }), 406, 'UnsupportedOperationException');
    }
    expect((await call('GET', `${P}/namespaces/icdc/tables`)).json).toEqual(before.json);
    expect((await call('HEAD', `${P}/namespaces/icdc/tables/${t}`)).status).toBe(204);
  });

  test('malformed prefixes, namespaces, identifiers and paging are 4xx in the spec body, never 5xx', async () => {
    expectError(await call('GET', `${BASE}/other/namespaces`), 404, 'NoSuchWarehouseException');
    expectError(await call('GET', `${BASE}/${'p'.repeat(5000)}/namespaces/icdc/tables`), 414, 'BadRequestException');
    expectError(await call('GET', `${BASE}/${'p'.repeat(1500)}/namespaces/icdc/tables`), 400, 'BadRequestException');
    const bad = ['%00', '..', '.hidden', 'a%2Fb', '%E2%80%AE', 'x'.repeat(1001), '%F0%9F%92%A9', 'icdc%00'];
    for (const name of bad) {
      const r = await call('GET', `${P}/namespaces/icdc/tables/${name}`);
      expect(r.status, `${name}: ${r.text}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${name}: ${r.text}`).toBeLessThan(500);
      expect(r.json?.error?.code, name).toBe(String(r.status));
      const ns = await call('GET', `${P}/namespaces/${name}/tables`);
      expect(ns.status, `namespace ${name}: ${ns.text}`).toBeGreaterThanOrEqual(400);
      expect(ns.status, `namespace ${name}: ${ns.text}`).toBeLessThan(500);
    }
    expectError(await call('GET', `${P}/namespaces/icdc/tables/%zz`), 400, 'BadRequestException');
    for (const q of ['pageSize=0', 'pageSize=abc', 'pageSize=100000000000000000000', 'pageToken=%00', `pageToken=${'a'.repeat(2000)}`]) {
      const r = await call('GET', `${P}/namespaces/icdc/tables?${q}`);
      expectError(r, 400, 'BadRequestException');
    }
    expectError(await call('GET', `${P}/namespaces/icdc/tables/x?snapshots=some`), 400, 'BadRequestException');
    expectError(await call('POST', `${P}/namespaces/icdc/tables`, { body: '{"name":' }), 400, 'BadRequestException');
    expectError(await call('POST', `${P}/namespaces/icdc/tables`, { body: JSON.stringify({ pad: 'x'.repeat(10_000) }) }), 413, 'BadRequestException');
    expectError(await call('GET', `${BASE}/ips/nothing-here`), 404, 'NotFoundException');
  });

  test('FileIO config of a table on S3: endpoint, region and addressing for Java and PyIceberg; keys only when vending', () => {
    const t = {
      name: 't', s3: { endpoint: 'http://minio:9000', region: 'eu-west-1', pathStyle: null, accessKeyId: 'AKIA1', secretAccessKey: new Secret('s3cr3t'), sessionToken: null },
    } as unknown as SourceTable;
    const plain = new IcdcRestCatalog(server.service, { vendCredentials: false }).fileIOConfig(t, 's3://lake/icdc/x/metadata/v1.metadata.json');
    expect(plain).toEqual({
      's3.endpoint': 'http://minio:9000', 'client.region': 'eu-west-1', 's3.region': 'eu-west-1',
      's3.path-style-access': 'true', 's3.force-virtual-addressing': 'false',
    });
    const vending = new IcdcRestCatalog(server.service, { vendCredentials: true }).fileIOConfig(t, 's3a://lake/icdc/x/metadata/v1.metadata.json');
    expect(vending).toEqual({ ...plain, 's3.access-key-id': 'AKIA1', 's3.secret-access-key': 's3cr3t' });
    // Local tables need nothing, whatever the S3 settings.
    expect(new IcdcRestCatalog(server.service, { vendCredentials: true }).fileIOConfig(t, '/data/icdc/x/metadata/v1.metadata.json')).toEqual({});
  });

  test('OAuth2 client credentials: an ips token as client secret comes back as the bearer token', async () => {
    const form = (o: Record<string, string>) => ({ body: new URLSearchParams(o).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' }, token: null });
    const c = consumers[0]!;
    const ok = await call('POST', `${BASE}/oauth/tokens`, form({ grant_type: 'client_credentials', client_id: c.name, client_secret: c.token, scope: 'catalog' }));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json).toEqual({ access_token: c.token, token_type: 'bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    const bad = await call('POST', `${BASE}/oauth/tokens`, form({ grant_type: 'client_credentials', client_id: 'x', client_secret: 'ips_wrong' }));
    expect(bad.status).toBe(401);
    expect(bad.json.error).toBe('invalid_client');
    const grant = await call('POST', `${BASE}/oauth/tokens`, form({ grant_type: 'password', username: 'a', password: 'b' }));
    expect(grant.status).toBe(400);
    expect(grant.json.error).toBe('unsupported_grant_type');
  });
});
