// Verified tokens are cached for IPS_TOKEN_CACHE_SECONDS (src/api/auth.ts), and that cache bounds
// how long a revoked token keeps working: at once on the replica that revoked it, within the
// cache time on the others, at once where the cache is off. Three real servers (replicas) on one
// real PostgreSQL database, through real HTTP.
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { createPgDatabase } from '../state/helpers.js';

const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;

describe('the cache of verified tokens across replicas (PostgreSQL state)', () => {
  let tmp: string;
  let dropDb: (() => Promise<void>) | undefined;
  /** long: 60 s cache; short: 0.5 s; none: no cache. */
  const servers: Record<'long' | 'short' | 'none', RunningServer | undefined> = { long: undefined, short: undefined, none: undefined };

  async function status(server: RunningServer, p: string, token: string, method = 'GET'): Promise<number> {
    const r = await fetch(server.url + p, { method, headers: { authorization: `Bearer ${token}` } });
    await r.text();
    return r.status;
  }

  async function newConsumerToken(server: RunningServer): Promise<{ name: string; token: string; id: string }> {
    const name = `tc-${crypto.randomBytes(4).toString('hex')}`;
    const r = await fetch(`${server.url}/v1/consumers`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, issue_token: true }),
    });
    const body = await r.json() as { token: { token: string; id: string } };
    expect(r.status, JSON.stringify(body)).toBe(201);
    return { name, token: body.token.token, id: body.token.id };
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-token-cache-'));
    const created = await createPgDatabase('token_cache');
    dropDb = created.drop;
    for (const [kind, seconds] of [['long', '60'], ['short', '0.5'], ['none', '0']] as const) {
      servers[kind] = await startServer(loadServiceConfig({
        env: {
          DATABASE_URL: created.url, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'warehouse'),
          IPS_LOG_LEVEL: 'silent', IPS_TRIGGERS: 'off', IPS_TOKEN_CACHE_SECONDS: seconds,
        },
      }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const s of Object.values(servers)) await s?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('a token revoked through one replica: refused there at once, by an uncached replica at once, by a caching one after its cache time', async () => {
    const { long, short, none } = servers as Record<string, RunningServer>;
    const c = await newConsumerToken(none!);
    const me = `/v1/consumers/${c.name}`;
    for (const s of [long!, short!, none!]) expect(await status(s, me, c.token)).toBe(200);

    // Revoked through the short-cache replica: it forgets the token at once, though its cache held it.
    expect(await status(short!, `/v1/tokens/${c.id}`, ADMIN, 'DELETE')).toBe(200);
    expect(await status(short!, me, c.token)).toBe(401);
    // No cache: the database says revoked.
    expect(await status(none!, me, c.token)).toBe(401);
    // Another replica honours what it verified within its cache time (60 s): the documented bound.
    expect(await status(long!, me, c.token)).toBe(200);
  });

  test('a caching replica asks the database again once its cache time has passed', async () => {
    const { short, none } = servers as Record<string, RunningServer>;
    const c = await newConsumerToken(none!);
    const me = `/v1/consumers/${c.name}`;
    expect(await status(short!, me, c.token)).toBe(200);
    expect(await status(none!, `/v1/tokens/${c.id}`, ADMIN, 'DELETE')).toBe(200);
    await new Promise((r) => setTimeout(r, 700));
    expect(await status(short!, me, c.token)).toBe(401);
  });

  test('unknown tokens are never cached: a token works as soon as it is issued, wherever', async () => {
    const { long } = servers as Record<string, RunningServer>;
    expect(await status(long!, '/v1/tables', 'ips_not-a-real-token-0123456789abcdef')).toBe(401);
    const c = await newConsumerToken(servers.none!);
    expect(await status(long!, `/v1/consumers/${c.name}`, c.token)).toBe(200);
  });
});
