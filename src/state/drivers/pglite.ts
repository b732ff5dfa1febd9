import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { IpsError } from '../../errors.js';
import {
  OID, normalizeParams, parseInt8, parseJsonValue, retryTransaction,
  type Database, type DatabaseConfig, type Queryable, type QueryResult, type SqlParam, type TransactionOptions,
} from '../database.js';

type PgliteConfig = Extract<DatabaseConfig, { driver: 'pglite' }>;

/** Same mapping as the pg driver (PGlite's own int8 parser returns a number when it fits). */
const parsers = {
  [OID.INT8]: parseInt8,
  [OID.JSON]: parseJsonValue,
  [OID.JSONB]: parseJsonValue,
  [OID.NUMERIC]: (v: string) => v,
};

interface Runner {
  query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[]; affectedRows?: number }>;
  exec(sql: string): Promise<unknown>;
}

async function run<R>(runner: Runner, sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
  const res = await runner.query<R>(sql, normalizeParams(params));
  return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
}

class PgliteTransaction implements Queryable {
  readonly driver = 'pglite' as const;
  readonly inTransaction = true;
  constructor(private readonly tx: Transaction) {}

  query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    return run<R>(this.tx, sql, params);
  }

  async exec(sql: string): Promise<void> {
    await this.tx.exec(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return fn(this);
  }
}

class PgliteDatabase implements Database {
  readonly driver = 'pglite' as const;
  readonly inTransaction = false;
  constructor(private readonly pg: PGlite, readonly description: string, private readonly releaseLock: () => void) {}

  query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    return run<R>(this.pg, sql, params);
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    // PGlite is one connection: its transaction() holds a mutex, so transactions run one at a
    // time and other queries wait for them.
    return retryTransaction(() => this.pg.transaction((tx) => fn(new PgliteTransaction(tx))), options);
  }

  async close(): Promise<void> {
    try {
      await this.pg.close();
    } finally {
      this.releaseLock();
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is a single-process database: two processes (or two instances in one process) on one
 * data directory would corrupt it. A pid file beside the directory keeps the second one out
 * with a clear message; a pid file whose process is gone is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = `${path.resolve(dataDir)}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        rmSync(lockFile, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(lockFile, 'utf8').trim(), 10);
      } catch {
        // vanished meanwhile: try again
      }
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw new IpsError('DATABASE_LOCKED',
          `the embedded database in ${dataDir} is in use by process ${pid}${pid === process.pid ? ' (this one)' : ''}; ` +
          'the embedded database serves one process: stop the other one, or use a PostgreSQL server (DATABASE_URL) to run several');
      }
      rmSync(lockFile, { force: true });
    }
  }
  throw new IpsError('DATABASE_LOCKED', `cannot lock the embedded database in ${dataDir} (${lockFile} keeps coming back)`);
}

export async function openPglite(config: PgliteConfig): Promise<Database> {
  let releaseLock = (): void => {};
  if (config.dataDir !== null) {
    mkdirSync(path.dirname(path.resolve(config.dataDir)), { recursive: true });
    releaseLock = lockDataDir(config.dataDir);
  }
  try {
    const pg = new PGlite({
      ...(config.dataDir !== null ? { dataDir: config.dataDir } : {}),
      ...(config.loadDataDir ? { loadDataDir: config.loadDataDir } : {}),
      parsers,
    });
    await pg.waitReady;
    const description = config.dataDir === null ? 'embedded PGlite (in memory)' : `embedded PGlite in ${config.dataDir}`;
    return new PgliteDatabase(pg, description, releaseLock);
  } catch (e) {
    releaseLock();
    throw e;
  }
}
