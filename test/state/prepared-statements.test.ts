// Named server-side prepared statements of the PostgreSQL driver, against the test server:
// they are really prepared (the server lists them), never for a statement without parameters,
// bounded, off when configured, and a schema change under a prepared statement is survived.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { databaseConfigFromEnv, openDatabase, type Database } from '../../src/state/database.js';
import { StatementNames, isStalePreparedStatement } from '../../src/state/drivers/statement-names.js';
import { createPgDatabase } from './helpers.js';

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

  test('names are bounded and never reused for another text', () => {
    const names = new StatementNames(2);
    const a = names.nameOf('SELECT $1');
    expect(names.nameOf('SELECT $1')).toBe(a);
    const b = names.nameOf('SELECT $1, $2');
    expect(b).not.toBe(a);
    expect(names.nameOf('SELECT $1, $2, $3')).toBeUndefined();
    names.forget();
    const a2 = names.nameOf('SELECT $1');
    expect(a2).not.toBe(a);
    expect(a2).not.toBe(b);
    expect(isStalePreparedStatement({ code: '0A000', message: 'cached plan must not change result type' })).toBe(true);
    expect(isStalePreparedStatement({ code: '0A000', message: 'something else' })).toBe(false);
  });
});
