// Hostile HTTP requests against a real `startServer` (embedded PGlite): authentication is decided
// on the route the router matched, so no %-encoded or otherwise respelled path reaches a handler
// without a token; each client error of issue 11 answers 4xx (or 502/504 for an upstream) with a
// code, never 500; duplicate JSON keys are refused; a sink's response body reaches admins only
// (redacted) and a dead trigger does not say it will retry.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { pgliteTemplate } from '../state/helpers.js';

const ADMIN = 'hostile-admin-token-0123456789abcdef';
let tmp: string;
let tableDir: string;
let server: RunningServer;
let consumerToken: string;
let sink: http.Server;
let sinkUrl: string;

async function call(method: string, url: string, opts: { token?: string | null; body?: unknown; raw?: string } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = opts.token === undefined ? ADMIN : opts.token;
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.raw !== undefined || opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = opts.raw ?? JSON.stringify(opts.body);
  }
  const res = await fetch(`${server.url}${url}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-hostile-'));
  tableDir = path.join(tmp, 'playback');
  cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
  sink = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'bad request', api_key: 'sk_live_51HqLyjWDarjtT1zdp7dc', echo: 'Authorization: Bearer abcdefghijklmnop123456' })));
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`;
  let config = loadServiceConfig({ env: { DATABASE_URL: 'memory:', IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'wh'), IPS_LOG_LEVEL: 'silent', IPS_TICK_MS: '50', IPS_RETRY_BASE_MS: '10' } });
  config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
  server = await startServer(config);
  expect((await call('POST', '/v1/tables', { body: { name: 'playback', ref: { kind: 'directory', location: tableDir } } })).status).toBe(201);
  const c = await call('POST', '/v1/consumers', { body: { name: 'c1', tables: [{ table: 'playback' }], issue_token: true } });
  expect(c.status).toBe(201);
  consumerToken = (c.body.token as { token: string }).token;
});

afterAll(async () => {
  await server?.close();
  sink.closeAllConnections();
  await new Promise<void>((r) => sink.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('authentication on the routed path', () => {
  it.each([
    '/%761/batches/1', '/v1/%62atches/1', '/%76%31/consumers/c1', '/v1/consumers/%63%31', '/v1/subscriptions/nope', '/v1/subscriptions/nope/triggers', '/v1/tables',
  ])('GET %s without a token is 401, whatever exists behind it', async (url) => {
    const r = await call('GET', url, { token: null });
    expect(r.status).toBe(401);
    expect(r.body.code).toBe('UNAUTHORIZED');
  });

  it('public routes stay public, unknown routes are 404', async () => {
    expect((await call('GET', '/healthz', { token: null })).status).toBe(200);
    expect((await call('GET', '/openapi.json', { token: null })).status).toBe(200);
    expect((await call('GET', '/v2/nothing', { token: null })).status).toBe(404);
  });
});

describe('client errors are 4xx (or 502/504) with a code', () => {
  const missingFv = (): string => {
    const f = path.join(tmp, 'nofv', 'v1.metadata.json');
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, JSON.stringify({ 'table-uuid': 'x', location: '/x', 'last-updated-ms': 1, 'last-column-id': 0, schemas: [], snapshots: [] }));
    return f;
  };
  const invalidJson = (): string => {
    const f = path.join(tmp, 'bad', 'v1.metadata.json');
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, 'secret-first-character');
    return f;
  };
  const dirMetadata = (): string => {
    const d = path.join(tmp, 'dir.metadata.json');
    mkdirSync(d, { recursive: true });
    return d;
  };
  const cases: [string, () => [string, string, unknown] | [string, string, unknown, string], number, string][] = [
    ['NUL in a consumer name', () => ['POST', '/v1/consumers', { name: 'a\u0000b' }], 400, 'VALIDATION_FAILED'],
    ['NUL in a description', () => ['POST', '/v1/consumers', { name: 'nul-desc', description: 'x\u0000y' }], 400, 'INVALID_ARGUMENT'],
    ['NUL in a property value', () => ['POST', '/v1/consumers', { name: 'nul-prop', properties: { k: 'v\u0000' } }], 400, 'INVALID_ARGUMENT'],
    ['NUL in a property key', () => ['POST', '/v1/consumers', { name: 'nul-key', properties: { 'k\u0000': 'v' } }], 400, 'INVALID_ARGUMENT'],
    ['NUL in a table property', () => ['POST', '/v1/tables', { name: 'nul-tprop', ref: { kind: 'directory', location: tableDir }, properties: { a: '\u0000' } }], 400, 'INVALID_ARGUMENT'],
    ['NUL in an instance id', () => ['POST', '/v1/consumers/c1/batches', { instance_id: 'run\u00001' }], 400, 'INVALID_ARGUMENT'],
    ['malformed %-encoding in an S3 event key', () => ['POST', '/v1/events/s3', { Records: [{ s3: { bucket: { name: 'b' }, object: { key: 'a%E0%A4%A' } } }] }], 400, 'INVALID_ARGUMENT'],
    ['file://host/… location', () => ['POST', '/v1/tables', { name: 'fh', ref: { kind: 'metadata-file', location: 'file://otherhost/t/metadata/v1.metadata.json' } }], 422, 'INVALID_LOCATION'],
    ['a directory as the metadata file', () => ['POST', '/v1/tables', { name: 'dirmd', ref: { kind: 'metadata-file', location: dirMetadata() } }], 422, 'NOT_A_FILE'],
    ['an hdfs:// location', () => ['POST', '/v1/tables', { name: 'hdfs', ref: { kind: 'directory', location: 'hdfs://nn:8020/w/t' } }], 422, 'UNSUPPORTED_SCHEME'],
    ['invalid metadata JSON', () => ['POST', '/v1/tables', { name: 'badjson', ref: { kind: 'metadata-file', location: invalidJson() } }], 422, 'INVALID_JSON'],
    ['metadata without format-version', () => ['POST', '/v1/tables', { name: 'nofv', ref: { kind: 'metadata-file', location: missingFv() } }], 422, 'INVALID_METADATA'],
    ['an unreachable SQL catalog', () => ['POST', '/v1/tables', { name: 'sqlcat', ref: { kind: 'sql', uri: 'postgresql://ips:x@127.0.0.1:1/catalog', identifier: 'db.t' } }], 502, 'CATALOG_UNREACHABLE'],
    ['an unreachable REST catalog', () => ['POST', '/v1/tables', { name: 'restcat', ref: { kind: 'rest', uri: 'http://127.0.0.1:1', identifier: 'db.t' } }], 502, 'CATALOG_UNREACHABLE'],
    ['duplicate JSON keys', () => ['POST', '/v1/consumers', null, '{"name": "dup", "name": "dup2"}'], 400, 'DUPLICATE_JSON_KEY'],
    ['duplicate keys in a nested object', () => ['POST', '/v1/consumers', null, '{"name": "dup", "policy": {"delete": "skip", "delete": "include"}}'], 400, 'DUPLICATE_JSON_KEY'],
  ];
  it.each(cases)('%s', async (_name, make, status, code) => {
    const [method, url, body, raw] = make();
    const r = await call(method, url, raw !== undefined ? { raw } : { body });
    expect(r.body.code).toBe(code);
    expect(r.status).toBe(status);
  });

  it('a capture policy that refuses an overwrite is 422, not 500 (found by schemathesis)', async () => {
    expect((await call('POST', '/v1/consumers', { body: { name: 'strict', tables: [{ table: 'playback' }], policy: { overwrite: 'fail' } } })).status).toBe(201);
    const r = await call('POST', '/v1/consumers/strict/batches', { body: { instance_id: 'run-1' } });
    expect(r.body.code).toBe('OPERATION_NOT_ALLOWED');
    expect(r.status).toBe(422);
  });

  it('the invalid-JSON error does not quote the file', async () => {
    const r = await call('POST', '/v1/tables', { body: { name: 'badjson2', ref: { kind: 'metadata-file', location: invalidJson() } } });
    expect(String(r.body.detail)).not.toMatch(/secret|'s'|"s"/);
  });

  it('missing format-version is reported as such', async () => {
    const r = await call('POST', '/v1/tables', { body: { name: 'nofv2', ref: { kind: 'metadata-file', location: missingFv() } } });
    expect(String(r.body.detail)).toContain('format-version is missing');
    expect(String(r.body.detail)).not.toContain('v4');
  });

  it('nothing was registered by any of them', async () => {
    const r = await call('GET', '/v1/tables');
    expect((r.body.tables as { name: string }[]).map((t) => t.name)).toEqual(['playback']);
  });
});

describe('sink responses and dead triggers', () => {
  it('a dead trigger says so, and only an admin sees the (redacted) response body', async () => {
    const created = await call('POST', '/v1/subscriptions', {
      body: { name: 's1', consumer: 'c1', tables: ['playback'], sink: { type: 'webhook', url: sinkUrl }, max_attempts: 1 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    let dead: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && !dead; i++) {
      const t = await call('GET', '/v1/subscriptions/s1/triggers');
      dead = (t.body.triggers as Record<string, unknown>[]).find((x) => x.state === 'dead');
      if (!dead) await new Promise((r) => setTimeout(r, 50));
    }
    expect(dead).toBeDefined();
    const adminView = String(dead!.last_error);
    expect(adminView).toContain('answered 400');
    expect(adminView).not.toContain('will retry');
    expect(adminView).toContain('dead after 1 attempt');
    expect(adminView).toContain('bad request');
    expect(adminView).not.toContain('sk_live_51HqLyjWDarjtT1zdp7dc');
    expect(adminView).not.toContain('abcdefghijklmnop123456');
    const mine = await call('GET', '/v1/subscriptions/s1/triggers', { token: consumerToken });
    expect(mine.status).toBe(200);
    const consumerView = String((mine.body.triggers as Record<string, unknown>[]).find((x) => x.state === 'dead')!.last_error);
    expect(consumerView).toContain('answered 400');
    expect(consumerView).not.toContain('bad request');
    expect(consumerView).toContain('shown to admins only');
  });
});
