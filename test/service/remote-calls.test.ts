// Remote calls and the state database: registering a table loads it (catalog, storage) before
// the short transaction that stores it, so a REST catalog that has not answered yet blocks no
// other request, even on the embedded single-connection database; catalog calls have a deadline
// (UPSTREAM_TIMEOUT); table_allowed_locations refuses a table outside its prefixes before
// anything of it is read. The slow catalog is an HTTP server on loopback that answers only
// when the test lets it, so the ordering is asserted, not timed.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpsService } from '../../src/service/ips-service.js';
import { currentReadLimits, DEFAULT_READ_LIMITS, setReadLimits } from '../../src/io/limits.js';
import { State } from '../../src/state/index.js';
import { REPO_ROOT } from '../setup/env.js';
import { errorCode, pgliteTemplate } from '../state/helpers.js';

let tmp: string;
let tableDir: string;
let state: State;
let service: IpsService;
let server: http.Server;
let catalogUrl: string;
/** Requests the fake catalog holds, answered when the test releases them. */
const held: { res: http.ServerResponse; url: string }[] = [];
let arrived: (() => void) | null = null;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-remote-'));
  tableDir = path.join(tmp, 'playback');
  cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
  server = http.createServer((req, res) => {
    held.push({ res, url: req.url ?? '' });
    arrived?.();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  catalogUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
  service = new IpsService(state, { warehouse: path.join(tmp, 'wh'), tableAllowedLocations: [tableDir, catalogUrl] });
});

afterAll(async () => {
  setReadLimits(DEFAULT_READ_LIMITS);
  for (const h of held) h.res.destroy();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  service.close();
  await state.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('registering a table through a slow catalog', () => {
  it('holds no transaction while the catalog has not answered: other requests go on', { timeout: 20_000 }, async () => {
    const first = new Promise<void>((r) => (arrived = r));
    let settled = false;
    const registering = service.registerTable({ name: 'slow', ref: { kind: 'rest', uri: catalogUrl, identifier: 'db.slow' } })
      .finally(() => (settled = true));
    registering.catch(() => {});
    await first;
    // The catalog holds the registration's request; the database must still serve everyone else.
    const other = await service.registerTable({ name: 'playback', ref: { kind: 'directory', location: tableDir } });
    expect(other.table.name).toBe('playback');
    expect((await service.listTables()).map((t) => t.name)).toEqual(['playback']);
    expect(settled).toBe(false);
    const h = held.shift()!;
    h.res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"no such table","code":404}}');
    expect(await errorCode(registering)).toBe('TABLE_NOT_FOUND');
    expect((await service.listTables()).map((t) => t.name)).toEqual(['playback']);
  });

  it('a catalog that never answers ends in UPSTREAM_TIMEOUT after remote_timeout_ms', async () => {
    setReadLimits({ ...currentReadLimits(), remoteTimeoutMs: 300 });
    try {
      const code = await errorCode(service.registerTable({ name: 'mute', ref: { kind: 'rest', uri: catalogUrl, identifier: 'db.mute' } }));
      expect(code).toBe('UPSTREAM_TIMEOUT');
    } finally {
      setReadLimits(DEFAULT_READ_LIMITS);
    }
    expect((await service.listTables()).map((t) => t.name)).toEqual(['playback']);
  });
});

describe('table_allowed_locations', () => {
  it('refuses a table outside the allowed prefixes, without reading it', async () => {
    for (const location of ['/etc/passwd.metadata.json', `${tableDir}/../../x`, `${tableDir}2`, 'file:///etc']) {
      const code = await errorCode(service.registerTable({ name: 'outside', ref: { kind: location.endsWith('.json') ? 'metadata-file' : 'directory', location } }));
      expect(code, location).toBe('LOCATION_NOT_ALLOWED');
    }
    expect(await errorCode(service.registerTable({ name: 'pg', ref: { kind: 'sql', uri: 'postgresql://10.0.0.1/x', identifier: 'a.b' } }))).toBe('LOCATION_NOT_ALLOWED');
  });

  it('allows one under a prefix, in any spelling of it', async () => {
    const v = await service.registerTable({ name: 'again', ref: { kind: 'directory', location: `file://${tableDir}/` } });
    expect(v.head).not.toBeNull();
  });

  it('refuses the files its metadata names outside the prefixes, before opening them', async () => {
    // The head's manifest list now points at a local file outside the table: reading it would
    // tell whether it exists and what it starts with.
    const copy = path.join(tableDir, 'copy');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), copy, { recursive: true });
    const metaDir = path.join(copy, 'metadata');
    const newest = path.join(metaDir, readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!);
    const text = readFileSync(newest, 'utf8');
    const m = /"manifest-list"\s*:\s*"([^"]+)"/g;
    let last: RegExpExecArray | null = null;
    for (let x = m.exec(text); x; x = m.exec(text)) last = x;
    writeFileSync(newest, text.slice(0, last!.index) + '"manifest-list":"file:///etc/hostname"' + text.slice(last!.index + last![0].length));
    await service.registerTable({ name: 'pointing-out', ref: { kind: 'directory', location: copy } }, { verify: false });
    expect(await errorCode(service.preview({ table: 'pointing-out' }))).toBe('LOCATION_NOT_ALLOWED');
  });
});
