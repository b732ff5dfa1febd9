import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openDatabase, type Database } from '../../src/state/database.js';
import { migrate, MigrationLock, type MigrateResult } from '../../src/state/migrate.js';
import { MIGRATIONS, type SqlMigration } from '../../src/state/migrations/index.js';
import { DRIVERS, freshDatabase, type TestDatabase } from './helpers.js';

const ALL = MIGRATIONS.map((m) => m.name);
const TABLES = ['api_tokens', 'backfill_chunks', 'backfills', 'batch_outputs', 'batch_tables', 'batches', 'consumer_outputs', 'consumers', 'maintenance_leases', 'outbox', 'partition_arrivals', 'partition_firings', 'signal_consumptions', 'signals', 'source_tables', 'subscriptions', 'table_watch', 'watermark_moves', 'watermarks'];

async function userTables(db: Database): Promise<string[]> {
  const res = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`);
  return res.rows.map((r) => r.table_name);
}

async function recorded(db: Database): Promise<{ name: string; applied_by: string }[]> {
  return (await db.query<{ name: string; applied_by: string }>('SELECT name, applied_by FROM ips_migrations ORDER BY name')).rows;
}

/** Extra migrations after the real ones; the slow one keeps a migrator busy while others arrive. */
function withTestMigrations(sleepSeconds: number): SqlMigration[] {
  return [
    ...MIGRATIONS,
    { name: '9000-test-slow', up: `CREATE TABLE test_slow (a INTEGER); SELECT pg_sleep(${sleepSeconds});` },
    { name: '9001-test-after', up: 'CREATE TABLE test_after (a INTEGER); INSERT INTO test_after VALUES (1);' },
  ];
}

describe.each(DRIVERS)('migrations (%s)', (driver) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function fresh(label: string, opts: { dataDir?: string } = {}): Promise<TestDatabase> {
    const t = await freshDatabase(driver, label, opts);
    cleanups.push(() => t.cleanup());
    return t;
  }

  test('apply once at start-up, nothing on restart', async () => {
    let dataDir: string | undefined;
    if (driver === 'pglite') {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-state-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      dataDir = path.join(dir, 'db');
    }
    const t = await fresh('restart', dataDir !== undefined ? { dataDir } : {});
    const first = await migrate(t.db, { owner: 'first' });
    expect(first.applied).toEqual(ALL);
    expect(first.executed).toEqual(ALL);
    expect(first.unknown).toEqual([]);
    expect(await userTables(t.db)).toEqual([...TABLES, 'ips_migration_lock', 'ips_migrations'].sort());
    expect(await recorded(t.db)).toEqual(ALL.map((name) => ({ name, applied_by: 'first' })));
    // The lock row is gone after the run.
    expect((await t.db.query('SELECT * FROM ips_migration_lock')).rowCount).toBe(0);

    // Restart: close, open the same data again (a new pool / the same data directory).
    await t.db.close();
    const again = await openDatabase(t.config.driver === 'pglite' ? { driver: 'pglite', dataDir: dataDir! } : t.config);
    cleanups.push(() => again.close());
    const second = await migrate(again, { owner: 'second' });
    expect(second.applied).toEqual([]);
    expect(second.executed).toEqual(ALL);
    expect(await recorded(again)).toEqual(ALL.map((name) => ({ name, applied_by: 'first' })));
    // And a second call in the same process is as idle.
    expect((await migrate(again)).applied).toEqual([]);
  });

  test('concurrent migrators apply every migration exactly once', async () => {
    const t = await fresh('concurrent');
    const list = withTestMigrations(1);
    const names = list.map((m) => m.name);
    // postgres: four pools, as four service replicas starting together; pglite serves one
    // process, so its migrators share the instance (the lock protocol is the same SQL).
    const dbs = t.driver === 'postgres' ? [t.db, await t.openAnother(), await t.openAnother(), await t.openAnother()] : [t.db, t.db, t.db, t.db];
    const events: Record<string, unknown>[] = [];
    const results: MigrateResult[] = await Promise.all(dbs.map((db, i) =>
      migrate(db, { owner: `replica-${i}`, migrations: list, log: (e) => events.push(e) })));
    // They did meet: the slow migration kept the others waiting on the lock row.
    expect(events.filter((e) => e.event === 'migration-lock-wait').length).toBeGreaterThanOrEqual(1);
    const applied = results.flatMap((r) => r.applied);
    expect(applied.sort()).toEqual([...names].sort()); // each exactly once, across all migrators
    for (const r of results) expect(r.executed).toEqual(names);
    const rows = await recorded(t.db);
    expect(rows.map((r) => r.name)).toEqual(names);
    expect((await t.db.query<{ a: number }>('SELECT a FROM test_after')).rows).toEqual([{ a: 1 }]); // not inserted twice
    expect((await t.db.query('SELECT * FROM ips_migration_lock')).rowCount).toBe(0);
  });

  // Replicas starting together on an empty database race on CREATE TABLE IF NOT EXISTS; the
  // loser's error depends on where PostgreSQL catches the clash (pg_type, pg_class, an index).
  if (driver === 'postgres') test('replicas bootstrapping an empty database together all succeed', async () => {
    for (let round = 0; round < 6; round++) {
      const t = await fresh(`bootstrap-race-${round}`);
      const dbs = [t.db, ...(await Promise.all(Array.from({ length: 5 }, () => t.openAnother())))];
      const results = await Promise.allSettled(dbs.map((db, i) => migrate(db, { owner: `replica-${i}` })));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect((await recorded(t.db)).map((r) => r.name)).toEqual(ALL);
    }
  });

  test("a crashed migrator's expired lock is taken over", async () => {
    const t = await fresh('takeover');
    await migrate(t.db, { migrations: [] }); // bootstrap tables only
    await t.db.query(`INSERT INTO ips_migration_lock (id, owner, expires_at) VALUES ('schema', 'dead-replica', now() - INTERVAL '1 second')`);
    const events: Record<string, unknown>[] = [];
    const r = await migrate(t.db, { owner: 'survivor', lockTimeoutMs: 5_000, log: (e) => events.push(e) });
    expect(r.applied).toEqual(ALL);
    expect(events.some((e) => e.event === 'migration-lock-taken-over')).toBe(true);
    expect((await t.db.query('SELECT * FROM ips_migration_lock')).rowCount).toBe(0);
  });

  test('a live lock is waited for, then the wait gives up with a clear error', async () => {
    const t = await fresh('timeout');
    await migrate(t.db, { migrations: [] });
    await t.db.query(`INSERT INTO ips_migration_lock (id, owner, expires_at) VALUES ('schema', 'busy-replica', now() + INTERVAL '1 hour')`);
    const started = Date.now();
    await expect(migrate(t.db, { owner: 'waiter', lockTimeoutMs: 400 })).rejects.toMatchObject({
      code: 'MIGRATION_LOCK_TIMEOUT',
      message: expect.stringContaining('busy-replica'),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect((await recorded(t.db)).length).toBe(0);
    // Its owner's lock is untouched.
    expect((await t.db.query<{ owner: string }>('SELECT owner FROM ips_migration_lock')).rows).toEqual([{ owner: 'busy-replica' }]);
  });

  test('a migrator that lost its lock applies nothing (fencing)', async () => {
    const t = await fresh('fence');
    await migrate(t.db, { migrations: [] });
    const lock = new MigrationLock(t.db, 'paused-replica', 60_000);
    await lock.acquire(1_000);
    // It pauses past its TTL; another process takes the lock over.
    await t.db.query(`UPDATE ips_migration_lock SET owner = 'other-replica' WHERE id = 'schema'`);
    await expect(t.db.withTransaction(async (tx) => {
      await lock.fence(tx);
      await tx.exec('CREATE TABLE must_not_exist (a INTEGER)');
    })).rejects.toMatchObject({ code: 'MIGRATION_LOCK_LOST' });
    expect(await userTables(t.db)).not.toContain('must_not_exist');
    await lock.release(); // releases only its own lock
    expect((await t.db.query<{ owner: string }>('SELECT owner FROM ips_migration_lock')).rows).toEqual([{ owner: 'other-replica' }]);
  });

  test('a failing migration rolls back, is not recorded, and frees the lock', async () => {
    const t = await fresh('failing');
    const list: SqlMigration[] = [
      ...MIGRATIONS,
      { name: '9000-test-broken', up: 'CREATE TABLE half_done (a INTEGER); INSERT INTO no_such_table VALUES (1);' },
    ];
    await expect(migrate(t.db, { migrations: list })).rejects.toMatchObject({
      code: 'MIGRATION_FAILED',
      message: expect.stringContaining('9000-test-broken'),
    });
    expect((await recorded(t.db)).map((r) => r.name)).toEqual(ALL);
    expect(await userTables(t.db)).not.toContain('half_done');
    expect((await t.db.query('SELECT * FROM ips_migration_lock')).rowCount).toBe(0);
    // Fixed in the next release: it applies.
    const fixed = await migrate(t.db, { migrations: [...MIGRATIONS, { name: '9000-test-broken', up: 'CREATE TABLE half_done (a INTEGER)' }] });
    expect(fixed.applied).toEqual(['9000-test-broken']);
  });

  test('migrations recorded by a newer version are reported, not undone', async () => {
    const t = await fresh('newer');
    await migrate(t.db);
    await t.db.query(`INSERT INTO ips_migrations (name, applied_by) VALUES ('9999-from-the-future', 'newer-ips')`);
    const r = await migrate(t.db);
    expect(r.applied).toEqual([]);
    expect(r.unknown).toEqual(['9999-from-the-future']);
  });
});
