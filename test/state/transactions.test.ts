// Transactions of both drivers. On PostgreSQL BEGIN is not awaited before a transaction's first
// statement (pg's pipeline mode): the first statement must still run inside the transaction
// (its lock held, its write rolled back with the rest), a first statement that fails must leave
// the connection usable, and a transaction that waits before its first statement, or sends
// none, must behave as any other. The counts behind /metrics' ips_db_* are checked too.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sqlState } from '../../src/state/database.js';
import { DRIVERS, freshDatabase, type TestDatabase } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.each(DRIVERS)('%s: transactions', (driver) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(driver, 'transactions');
    await t.db.exec('CREATE TABLE k (id INT8 PRIMARY KEY, n INT8 NOT NULL DEFAULT 0)');
  });
  afterAll(async () => {
    await t.cleanup();
  });

  const ids = async (): Promise<bigint[]> => (await t.db.query<{ id: bigint }>('SELECT id FROM k ORDER BY id')).rows.map((r) => r.id);

  test('the first statement runs inside the transaction: a later failure rolls it back', async () => {
    const failed = t.db.withTransaction(async (tx) => {
      await tx.query('INSERT INTO k (id) VALUES ($1)', [1n]);
      await tx.query('INSERT INTO k (id) VALUES ($1)', [2n]);
      throw new Error('after two writes');
    });
    await expect(failed).rejects.toThrow('after two writes');
    expect(await ids()).toEqual([]);
    // The same through exec, and after a wait before the first statement.
    await expect(t.db.withTransaction(async (tx) => {
      await tx.exec('INSERT INTO k (id) VALUES (3)');
      throw new Error('after exec');
    })).rejects.toThrow('after exec');
    await expect(t.db.withTransaction(async (tx) => {
      await sleep(30);
      await tx.query('INSERT INTO k (id) VALUES ($1)', [4n]);
      throw new Error('after a wait');
    })).rejects.toThrow('after a wait');
    expect(await ids()).toEqual([]);
  });

  test('one transaction: its statements see one transaction id and one start time', async () => {
    const seen = await t.db.withTransaction(async (tx) => {
      const a = await tx.query<{ x: string; at: Date }>('SELECT txid_current()::TEXT AS x, now() AS at WHERE $1::INT4 = 1', [1]);
      await sleep(20);
      const b = await tx.query<{ x: string; at: Date }>('SELECT txid_current()::TEXT AS x, now() AS at');
      return [a.rows[0]!, b.rows[0]!];
    });
    expect(seen[0]!.x).toBe(seen[1]!.x);
    expect(seen[0]!.at.getTime()).toBe(seen[1]!.at.getTime());
  });

  test('a first statement that fails fails the transaction with its SQLSTATE; the connections serve what follows', async () => {
    await t.db.query('INSERT INTO k (id) VALUES ($1)', [10n]);
    // More failures than the pool has connections: a connection left broken would be handed out again.
    for (let i = 0; i < 12; i++) {
      const e = await t.db.withTransaction(async (tx) => {
        await tx.query('INSERT INTO k (id) VALUES ($1)', [10n]);
        return 'no error';
      }).catch((err: unknown) => err);
      expect(sqlState(e)).toBe('23505');
    }
    const syntax = await t.db.withTransaction((tx) => tx.query('SELEC 1')).catch((err: unknown) => err);
    expect(sqlState(syntax)).toBe('42601');
    const done = await Promise.all(Array.from({ length: 12 }, (_, i) => t.db.withTransaction(async (tx) => {
      await tx.query('INSERT INTO k (id) VALUES ($1)', [BigInt(100 + i)]);
      return (await tx.query<{ n: bigint }>('SELECT count(*)::INT8 AS n FROM k WHERE id >= $1', [100n])).rowCount;
    })));
    expect(done).toEqual(Array(12).fill(1));
    expect((await ids()).filter((id) => id >= 100n)).toHaveLength(12);
    // A transaction that sends nothing returns its value.
    expect(await t.db.withTransaction(async () => 'nothing sent')).toBe('nothing sent');
  });

  test('counts: statements, waits for an answer, transactions', async () => {
    const before = { ...t.db.stats };
    for (let i = 0; i < 5; i++) {
      await t.db.withTransaction(async (tx) => {
        await tx.query('SELECT n FROM k WHERE id = $1 FOR UPDATE', [10n]);
        await tx.query('UPDATE k SET n = n + 1 WHERE id = $1', [10n]);
      });
    }
    await t.db.query('SELECT 1');
    const d = { statements: t.db.stats.statements - before.statements, roundTrips: t.db.stats.roundTrips - before.roundTrips, transactions: t.db.stats.transactions - before.transactions };
    // BEGIN, two statements, COMMIT per transaction, and the one outside.
    expect(d.statements).toBe(5 * 4 + 1);
    expect(d.transactions).toBe(5);
    // PostgreSQL: BEGIN goes out with the first statement and is answered with it.
    expect(d.roundTrips).toBe(driver === 'postgres' ? 5 * 3 + 1 : 5 * 4 + 1);

    // Statements sent together (pipelined on PostgreSQL) run in order and share one wait.
    const b2 = { ...t.db.stats };
    const seen = await t.db.withTransaction((tx) => Promise.all([
      tx.query<{ n: bigint }>('SELECT n FROM k WHERE id = $1 FOR UPDATE', [10n]),
      tx.query('UPDATE k SET n = n + 1 WHERE id = $1', [10n]),
      tx.query<{ n: bigint }>('SELECT n FROM k WHERE id = $1', [10n]),
    ]));
    expect(seen[2].rows[0]!.n).toBe(seen[0].rows[0]!.n + 1n);
    expect(t.db.stats.statements - b2.statements).toBe(5);
    expect(t.db.stats.roundTrips - b2.roundTrips).toBe(driver === 'postgres' ? 2 : 5);
  });
});

describe('postgres: a lock taken by the first statement of a transaction', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase('postgres', 'transactions-locks');
    await t.db.exec('CREATE TABLE c (id INT8 PRIMARY KEY, n INT8 NOT NULL)');
    await t.db.query('INSERT INTO c VALUES ($1, 0)', [1n]);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  test('is held to the end of the transaction: read-modify-writes from two processes lose no update', async () => {
    const other = await t.openAnother();
    const increment = (db: typeof t.db): Promise<bigint> => db.withTransaction(async (tx) => {
      const read = await tx.query<{ n: bigint }>('SELECT n FROM c WHERE id = $1 FOR UPDATE', [1n]);
      await sleep(25); // a lock released after the SELECT (no transaction) would let the other read the same n
      await tx.query('UPDATE c SET n = $2 WHERE id = $1', [1n, read.rows[0]!.n + 1n]);
      return read.rows[0]!.n;
    });
    const seen = await Promise.all(Array.from({ length: 8 }, (_, i) => increment(i % 2 === 0 ? t.db : other)));
    expect([...seen].sort((a, b) => (a < b ? -1 : 1))).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n]);
    expect((await t.db.query<{ n: bigint }>('SELECT n FROM c WHERE id = $1', [1n])).rows[0]!.n).toBe(8n);
  });
});
