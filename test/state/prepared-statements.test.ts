// Named prepared statements of both drivers. PostgreSQL: they are really prepared (the server
// lists them), never for a statement without parameters, bounded, off when configured. Both
// drivers: the same values as the unprepared path, errors with their SQLSTATE, PGlite's locking
// kept, and a schema change under a prepared statement survived.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { databaseConfigFromEnv, openDatabase, sqlState, violatedConstraint, type Database } from '../../src/state/database.js';
import { StatementNames, isLostPreparedStatement, isStalePreparedStatement } from '../../src/state/drivers/statement-names.js';
import { createPgDatabase, freshDatabase, type TestDatabase } from './helpers.js';

/** The statements prepared under ips's names on the connection of the transaction that asks. */
async function preparedHere(db: Database): Promise<string[]> {
  return db.withTransaction(async (tx) => {
    await tx.query('SELECT $1::INT8 AS warm', [1]);
    const res = await tx.query<{ statement: string }>("SELECT statement FROM pg_prepared_statements WHERE name LIKE 'ips!_%' ESCAPE '!' ORDER BY statement");
    return res.rows.map((r) => r.statement);
  });
}

describe('PostgreSQL driver: named prepared statements', () => {
  let database: Awaited<ReturnType<typeof createPgDatabase>>;
  beforeAll(async () => {
    database = await createPgDatabase('prepared');
  });
  afterAll(async () => {
    await database.drop();
  });

  test('parameterised statements are prepared once per connection and give the same rows', async () => {
    const db = await openDatabase({ driver: 'postgres', url: database.url, poolMax: 1 });
    try {
      await db.query('CREATE TABLE t (id INT8 PRIMARY KEY, v TEXT)');
      for (let i = 1n; i <= 5n; i++) await db.query('INSERT INTO t (id, v) VALUES ($1, $2)', [i, `v${i}`]);
      const rows = await db.query<{ id: bigint; v: string }>('SELECT id, v FROM t WHERE id >= $1 ORDER BY id', [4n]);
      expect(rows.rows).toEqual([{ id: 4n, v: 'v4' }, { id: 5n, v: 'v5' }]);
      // The INSERT, the SELECT and the helper's warm-up; CREATE TABLE (no parameters) is not.
      expect(await preparedHere(db)).toEqual([
        'INSERT INTO t (id, v) VALUES ($1, $2)',
        'SELECT $1::INT8 AS warm',
        'SELECT id, v FROM t WHERE id >= $1 ORDER BY id',
      ]);
    } finally {
      await db.close();
    }
  });

  test('IPS_DB_PREPARED_STATEMENTS=off leaves every statement unnamed', async () => {
    const cfg = databaseConfigFromEnv({ DATABASE_URL: database.url, IPS_DB_PREPARED_STATEMENTS: 'off', IPS_DB_POOL_MAX: '1' });
    expect(cfg).toMatchObject({ driver: 'postgres', preparedStatements: false, poolMax: 1 });
    expect(() => databaseConfigFromEnv({ DATABASE_URL: database.url, IPS_DB_PREPARED_STATEMENTS: 'sometimes' })).toThrow(/IPS_DB_PREPARED_STATEMENTS must be "on" or "off"/);
    const db = await openDatabase(cfg);
    try {
      await db.query('SELECT $1::TEXT AS x', ['a']);
      expect(await preparedHere(db)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  test('a migration that changes a prepared statement\'s result type is survived, in and out of transactions', async () => {
    const db = await openDatabase({ driver: 'postgres', url: database.url, poolMax: 1 });
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    try {
      await db.query('CREATE TABLE m (id INT8 PRIMARY KEY, a TEXT)');
      await db.query('INSERT INTO m (id, a) VALUES ($1, $2)', [1n, 'x']);
      const read = 'SELECT * FROM m WHERE id = $1';
      expect((await db.query(read, [1n])).rows).toEqual([{ id: 1n, a: 'x' }]);
      // Another replica's migration: the prepared SELECT * now has another result type.
      await other.query("ALTER TABLE m ADD COLUMN b TEXT NOT NULL DEFAULT 'new'");
      expect((await db.query(read, [1n])).rows).toEqual([{ id: 1n, a: 'x', b: 'new' }]);
      await other.query("ALTER TABLE m ADD COLUMN c INT4 NOT NULL DEFAULT 7");
      const inTx = await db.withTransaction(async (tx) => (await tx.query(read, [1n])).rows);
      expect(inTx).toEqual([{ id: 1n, a: 'x', b: 'new', c: 7 }]);
    } finally {
      await other.end();
      await db.close();
    }
  });

  test('names are bounded, the same for a text in every process, never another text\'s', () => {
    const names = new StatementNames(2);
    const a = names.nameOf('SELECT $1');
    expect(names.nameOf('SELECT $1')).toBe(a);
    const b = names.nameOf('SELECT $1, $2');
    expect(b).not.toBe(a);
    expect(names.nameOf('SELECT $1, $2, $3')).toBeUndefined();
    // Another process, first using the texts in another order: the same names (a pooler may mix them).
    const other = new StatementNames();
    expect(other.nameOf('SELECT $1, $2')).toBe(b);
    expect(other.nameOf('SELECT $1')).toBe(a);
    expect(a!.length).toBeLessThanOrEqual(63); // PostgreSQL's NAMEDATALEN
    names.forget();
    const a2 = names.nameOf('SELECT $1');
    expect(a2).not.toBe(a);
    expect(a2).not.toBe(b);
    names.disable();
    expect(names.nameOf('SELECT $1')).toBeUndefined();
    expect(isStalePreparedStatement({ code: '0A000', message: 'cached plan must not change result type' })).toBe(true);
    expect(isStalePreparedStatement({ code: '0A000', message: 'something else' })).toBe(false);
    expect(isLostPreparedStatement({ code: '26000' })).toBe(true);
    expect(isLostPreparedStatement({ code: '42P05' })).toBe(true);
    expect(isLostPreparedStatement({ code: '42P01' })).toBe(false);
  });

  test.each(['outside', 'inside'] as const)('a server connection that lost the statements (a pooler in transaction mode) turns naming off; a statement %s a transaction still runs', async (where) => {
    const db = await openDatabase({ driver: 'postgres', url: database.url, poolMax: 1 });
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'IPS_PREPARED_STATEMENTS_OFF') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const table = `lost_${where}`;
    try {
      await db.query(`CREATE TABLE ${table} (id INT8 PRIMARY KEY)`);
      await db.query(`INSERT INTO ${table} (id) VALUES ($1)`, [1n]);
      expect(await preparedHere(db)).toContain(`INSERT INTO ${table} (id) VALUES ($1)`);
      // What a pooler does when it hands the client another server connection: the client still
      // believes its statements are prepared there. One connection in the pool: the next statement meets it.
      await db.exec('DEALLOCATE ALL');
      if (where === 'outside') {
        await db.query(`INSERT INTO ${table} (id) VALUES ($1)`, [2n]);
      } else {
        await db.withTransaction(async (tx) => {
          await tx.query(`INSERT INTO ${table} (id) VALUES ($1)`, [2n]);
          await tx.query(`INSERT INTO ${table} (id) VALUES ($1)`, [3n]);
        });
      }
      const rows = await db.query<{ id: bigint }>(`SELECT id FROM ${table} WHERE id > $1 ORDER BY id`, [0n]);
      expect(rows.rows.map((r) => r.id)).toEqual(where === 'outside' ? [1n, 2n] : [1n, 2n, 3n]);
      expect(await preparedHere(db)).toEqual([]);
      await new Promise((r) => setImmediate(r));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/connection pooler in transaction mode.*IPS_DB_PREPARED_STATEMENTS=off/);
    } finally {
      process.off('warning', onWarning);
      await db.close();
    }
  });
});

describe.each(['postgres', 'pglite'] as const)('%s: statements with parameters (prepared) against the same statements without', (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(driver, 'prepared-values');
    await t.db.exec(`CREATE TABLE v (id INT8 PRIMARY KEY, n INT4, f FLOAT8, d NUMERIC, b BOOL, s TEXT, j JSONB, ts TIMESTAMPTZ, a TEXT[]);
      INSERT INTO v VALUES
        (9223372036854775807, 7, 1.5, 12345678901234567890.123, true, 'x', '{"id": 9223372036854775806, "k": [1, "two"]}', '2026-01-02T03:04:05.678Z', '{a,b}'),
        (-9223372036854775808, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, -1, -0.25, 0, false, '', '[]', '1970-01-01T00:00:00Z', '{}')`);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  test('the same rows and values, 64-bit ids exact', async () => {
    const unparameterised = await t.db.query('SELECT * FROM v ORDER BY id');
    const parameterised = await t.db.query('SELECT * FROM v WHERE id >= $1 AND coalesce(s, $2) IS NOT NULL ORDER BY id', [-9223372036854775808n, 'z']);
    expect(parameterised.rows).toEqual(unparameterised.rows);
    expect(parameterised.rows[2]).toMatchObject({ id: 9223372036854775807n, j: { id: 9223372036854775806n, k: [1, 'two'] }, d: '12345678901234567890.123' });
    const again = await t.db.query('SELECT * FROM v WHERE id >= $1 AND coalesce(s, $2) IS NOT NULL ORDER BY id', [3n, 'z']);
    expect(again.rows).toEqual(unparameterised.rows.slice(1));
  });

  test('parameters of every kind arrive as the pg driver sends them', async () => {
    const row = await t.db.query<Record<string, unknown>>(
      'SELECT $1::INT8 AS i, $2::FLOAT8 AS f, $3::BOOL AS b, $4::TEXT AS s, $5::JSONB AS j, $6::TIMESTAMPTZ AS ts, $7::TEXT AS n, $8::TEXT AS bt',
      [12345678901234567n, 0.1, false, 'é\'"', '{"big": 12345678901234567890}', new Date('2026-05-06T07:08:09.010Z'), null, true]);
    expect(row.rows).toEqual([{ i: 12345678901234567n, f: 0.1, b: false, s: 'é\'"', j: { big: 12345678901234567890n }, ts: new Date('2026-05-06T07:08:09.010Z'), n: null, bt: 'true' }]);
  });

  test('row counts of writes, and errors keep their SQLSTATE and constraint', async () => {
    await t.db.exec('CREATE TABLE w (id INT8 PRIMARY KEY, v TEXT)');
    const ins = await t.db.query('INSERT INTO w (id, v) VALUES ($1, $2), ($3, $4)', [1n, 'a', 2n, 'b']);
    expect(ins.rowCount).toBe(2);
    const upd = await t.db.query('UPDATE w SET v = $1 WHERE id >= $2', ['c', 1n]);
    expect(upd.rowCount).toBe(2);
    const dup = await t.db.query('INSERT INTO w (id, v) VALUES ($1, $2), ($3, $4)', [3n, 'a', 1n, 'b']).catch((e: unknown) => e);
    expect(sqlState(dup)).toBe('23505');
    expect(violatedConstraint(dup)).toBe('w_pkey');
    // A statement whose first run failed at Bind (bad input) runs when the input is good.
    const bad = await t.db.query('SELECT v FROM w WHERE id = $1::INT8', ['not a number']).catch((e: unknown) => e);
    expect(sqlState(bad)).toBe('22P02');
    expect((await t.db.query('SELECT v FROM w WHERE id = $1::INT8', ['2'])).rows).toEqual([{ v: 'c' }]);
    expect((await t.db.query('SELECT count(*)::INT4 AS n FROM w WHERE id > $1', [0n])).rows).toEqual([{ n: 2 }]);
  });

  test('a statement outside a transaction waits for a running transaction and never runs inside it', async () => {
    await t.db.exec('CREATE TABLE x (id INT8 PRIMARY KEY)');
    let inserted!: () => void;
    const insertedP = new Promise<void>((r) => (inserted = r));
    const tx = t.db.withTransaction(async (q) => {
      await q.query('INSERT INTO x (id) VALUES ($1)', [1n]);
      inserted();
      await new Promise((r) => setTimeout(r, 100));
      throw new Error('roll back');
    }, { retries: 0 }).catch((e: unknown) => e);
    await insertedP;
    // On PGlite (one connection) this must wait for the rollback; on PostgreSQL it runs on another connection.
    const seen = await t.db.query<{ n: number }>('SELECT count(*)::INT4 AS n FROM x WHERE id >= $1', [0n]);
    expect(seen.rows).toEqual([{ n: 0 }]);
    expect(String(await tx)).toMatch(/roll back/);
  });

  test('a migration that changes a statement\'s result type is survived', async () => {
    await t.db.exec('CREATE TABLE m2 (id INT8 PRIMARY KEY, a TEXT); INSERT INTO m2 VALUES (1, \'x\')');
    const read = 'SELECT * FROM m2 WHERE id = $1';
    expect((await t.db.query(read, [1n])).rows).toEqual([{ id: 1n, a: 'x' }]);
    await t.db.exec("ALTER TABLE m2 ADD COLUMN b TEXT NOT NULL DEFAULT 'new'");
    expect((await t.db.query(read, [1n])).rows).toEqual([{ id: 1n, a: 'x', b: 'new' }]);
    await t.db.exec('ALTER TABLE m2 ADD COLUMN c INT4 NOT NULL DEFAULT 7');
    expect(await t.db.withTransaction(async (q) => (await q.query(read, [1n])).rows)).toEqual([{ id: 1n, a: 'x', b: 'new', c: 7 }]);
  });
});
