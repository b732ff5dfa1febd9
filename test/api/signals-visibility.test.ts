// Who sees which signals (GET /v1/signals), through real HTTP on both state drivers. A signal's
// name, params and sender describe another pipeline's work, so the rule is (docs/api.md,
// docs/triggers.md): an admin sees every signal; a consumer token sees only the output signals
// its own consumer announced and the signals whose name one of its own subscriptions requires.
// Every signal below is made through the API (admin sends, consumers' commits announce output
// signals), and what each token must see is written down from that rule, not from the query.
import crypto from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;

describe.each(DRIVERS)('GET /v1/signals is scoped to the caller (%s state)', (driver) => {
  let tmp: string;
  let server: RunningServer;
  let dropDb: (() => Promise<void>) | undefined;
  let a: { name: string; token: string };
  let b: { name: string; token: string };
  /** Every signal made, oldest first, with who may see it (besides the admin). */
  const made: { name: string; params: Record<string, string>; visibleTo: Set<string> }[] = [];

  async function call(method: string, p: string, body?: unknown, token: string = ADMIN): Promise<{ status: number; body: Json; text: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined, text };
  }

  async function ok(method: string, p: string, body?: unknown, status = 200, token?: string): Promise<Json> {
    const r = await call(method, p, body, token);
    expect(r.status, `${method} ${p}: ${r.text}`).toBe(status);
    return r.body;
  }

  async function newConsumer(): Promise<{ name: string; token: string }> {
    const name = `con-${crypto.randomBytes(4).toString('hex')}`;
    const c = await ok('POST', '/v1/consumers', { name, tables: [{ table: 'playback' }], issue_token: true }, 201);
    return { name, token: c.token.token as string };
  }

  async function adminSends(name: string, params: Record<string, string>, visibleTo: string[]): Promise<void> {
    await ok('POST', `/v1/signals/${name}`, { params }, 201);
    made.push({ name, params, visibleTo: new Set(visibleTo) });
  }

  /** The consumer's run commits a batch announcing this output signal (a file per batch: each consumer commits several). */
  async function announces(con: { name: string; token: string }, name: string, params: Record<string, string>, visibleTo: string[]): Promise<void> {
    const prep = await ok('POST', `/v1/consumers/${con.name}/batches`, { table: 'playback', instance_id: `run-${crypto.randomBytes(4).toString('hex')}`, limits: { max_files: 1 } }, 201, con.token);
    await ok('POST', `/v1/batches/${prep.batch.id}/commit`, { signals: [{ name, params }] }, 200, con.token);
    made.push({ name, params, visibleTo: new Set(visibleTo) });
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-sigvis-'));
    const tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    let databaseUrl = 'memory:';
    if (driver === 'postgres') {
      const created = await createPgDatabase('signals_visibility');
      dropDb = created.drop;
      databaseUrl = created.url;
    }
    let config = loadServiceConfig({
      env: {
        DATABASE_URL: databaseUrl, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'warehouse'),
        // Only the API: nothing here should fire (the subscriptions exist for their signal requirements).
        IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off', IPS_SINK_ALLOWED_HOSTS: '127.0.0.1',
      },
    });
    expect(config.database.driver).toBe(driver);
    if (driver === 'pglite') config = { ...config, database: { driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() } };
    server = await startServer(config);
    await ok('POST', '/v1/tables', { name: 'playback', ref: { kind: 'directory', location: tableDir } }, 201);
    a = await newConsumer();
    b = await newConsumer();
    const sink = { type: 'webhook', url: 'http://127.0.0.1:9/hook' };
    // a waits for `a_needs` (with params: visibility goes by name, whatever the params); b for `b_needs`.
    await ok('POST', '/v1/subscriptions', { name: `sub-${a.name}`, consumer: a.name, tables: ['playback'], sink,
      condition: { signals: [{ name: 'a_needs', params: { date: '2026-11-02' } }] } }, 201);
    await ok('POST', '/v1/subscriptions', { name: `sub-${b.name}`, consumer: b.name, tables: ['playback'], sink,
      condition: { signals: [{ name: 'b_needs' }, { name: 'shared' }] } }, 201);
    await ok('POST', '/v1/subscriptions', { name: `sub2-${a.name}`, consumer: a.name, tables: ['playback'], sink,
      condition: { signals: [{ name: 'shared' }] } }, 201);

    await adminSends('a_needs', { date: '2026-11-02' }, [a.name]);
    await adminSends('a_needs', { date: '2026-11-03' }, [a.name]); // required by name: the params do not hide it
    await adminSends('shared', {}, [a.name, b.name]);
    await announces(a, 'a_out', { part: '1' }, [a.name]);
    await announces(b, 'b_out', { secret_path: 's3://b/private' }, [b.name]);
    await announces(b, 'a_needs', { date: '2026-11-04' }, [a.name, b.name]); // b's own output, and a's requirement
    await adminSends('b_needs', {}, [b.name]);
    // The newest signals are ones a consumer may not see: a limit applied after the query would come up short.
    await adminSends('unrelated', { who: 'ops' }, []);
    await announces(b, 'b_out', { secret_path: 's3://b/private2' }, [b.name]);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** name + params of a listing, in its order (newest first). */
  const shown = (list: Json[]) => list.map((s) => ({ name: s.name, params: s.params }));
  const expected = (who: string | null) => made.filter((m) => who === null || m.visibleTo.has(who)).reverse().map((m) => ({ name: m.name, params: m.params }));

  test('the admin sees every signal, newest first', async () => {
    const all = (await ok('GET', '/v1/signals')).signals as Json[];
    expect(shown(all)).toEqual(expected(null));
    expect(all).toHaveLength(9);
  });

  test("a consumer token sees its own output signals and the signals its subscriptions require, not another consumer's output nor unrequired admin signals", async () => {
    const seenByA = (await ok('GET', '/v1/signals', undefined, 200, a.token)).signals as Json[];
    expect(shown(seenByA)).toEqual(expected(a.name));
    expect(seenByA.map((s) => s.name).sort()).toEqual(['a_needs', 'a_needs', 'a_needs', 'a_out', 'shared']);
    expect(seenByA.some((s) => s.name === 'b_out' || s.name === 'unrelated' || s.name === 'b_needs')).toBe(false);

    const seenByB = (await ok('GET', '/v1/signals', undefined, 200, b.token)).signals as Json[];
    expect(shown(seenByB)).toEqual(expected(b.name));
    expect(seenByB.map((s) => s.name).sort()).toEqual(['a_needs', 'b_needs', 'b_out', 'b_out', 'shared']);
    // b's own output signal carries its consumer; the admin's do not.
    expect(seenByB.filter((s) => s.name === 'b_out').every((s) => s.consumer === b.name)).toBe(true);
  });

  test('the name filter and the limit apply within what the token may see', async () => {
    // The two newest signals overall are invisible to a; a limit of 2 still returns two of a's.
    const limited = (await ok('GET', '/v1/signals?limit=2', undefined, 200, a.token)).signals as Json[];
    expect(shown(limited)).toEqual(expected(a.name).slice(0, 2));
    expect(limited).toHaveLength(2);
    const byName = (await ok('GET', '/v1/signals?name=b_out', undefined, 200, a.token)).signals as Json[];
    expect(byName).toEqual([]);
    const bOwn = (await ok('GET', '/v1/signals?name=b_out', undefined, 200, b.token)).signals as Json[];
    expect(bOwn).toHaveLength(2);
    const adminLimited = (await ok('GET', '/v1/signals?limit=2')).signals as Json[];
    expect(shown(adminLimited)).toEqual([{ name: 'b_out', params: { secret_path: 's3://b/private2' } }, { name: 'unrelated', params: { who: 'ops' } }]);
  });

  test('a token of a consumer with no subscriptions and no output signals sees none', async () => {
    const c = await newConsumer();
    expect((await ok('GET', '/v1/signals', undefined, 200, c.token)).signals).toEqual([]);
  });
});
