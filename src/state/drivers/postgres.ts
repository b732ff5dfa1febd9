import pg from 'pg';
import { StatementNames, isLostPreparedStatement, isStalePreparedStatement } from './statement-names.js';
import {
  OID, normalizeParams, parseInt8, parseJsonValue, redactUrl, retryTransaction,
  type Database, type DatabaseConfig, type Queryable, type QueryResult, type SqlParam, type TransactionOptions,
} from '../database.js';

type PostgresConfig = Extract<DatabaseConfig, { driver: 'postgres' }>;

/**
 * Type parsers of this pool only (pg.types.setTypeParser would change every pool in the
 * process, e.g. the SQL catalog's).
 */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (format === 'binary') return pg.types.getTypeParser(oid, 'binary');
    switch (oid) {
      case OID.INT8: return parseInt8;
      case OID.JSON:
      case OID.JSONB: return parseJsonValue;
      case OID.NUMERIC: return (v: string) => v;
      default: return pg.types.getTypeParser(oid, 'text');
    }
  }) as pg.CustomTypesConfig['getTypeParser'],
};

type Runner = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

async function run<R>(on: Runner, names: StatementNames | null, sql: string, params: readonly SqlParam[] | undefined): Promise<QueryResult<R>> {
  const values = normalizeParams(params);
  const name = names !== null && values.length > 0 ? names.nameOf(sql) : undefined;
  let res: pg.QueryResult;
  try {
    res = name === undefined ? await on.query(sql, values) : await on.query({ name, text: sql, values });
  } catch (e) {
    if (name !== undefined && isStalePreparedStatement(e)) names!.forget();
    if (name !== undefined && isLostPreparedStatement(e) && names!.enabled) {
      names!.disable();
      process.emitWarning(`the database answered "${(e as Error).message}" to a prepared statement of ips: a connection pooler in transaction mode (PgBouncer before 1.21, or max_prepared_statements = 0) does not keep them per client, so this process runs its statements unnamed from now on; set IPS_DB_PREPARED_STATEMENTS=off to start that way`, { code: 'IPS_PREPARED_STATEMENTS_OFF' });
    }
    throw e;
  }
  return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
}

class PgTransaction implements Queryable {
  readonly driver = 'postgres' as const;
  readonly inTransaction = true;
  constructor(private readonly client: pg.PoolClient, private readonly names: StatementNames | null) {}

  query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    return run<R>(this.client, this.names, sql, params);
  }

  async exec(sql: string): Promise<void> {
    await this.client.query(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return fn(this);
  }
}

class PgDatabase implements Database {
  readonly driver = 'postgres' as const;
  readonly inTransaction = false;
  constructor(private readonly pool: pg.Pool, readonly description: string, private readonly names: StatementNames | null) {}

  async query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    try {
      return await run<R>(this.pool, this.names, sql, params);
    } catch (e) {
      // Outside a transaction the statement can simply run again, under a new name or unnamed.
      if (this.names !== null && (isStalePreparedStatement(e) || isLostPreparedStatement(e))) return run<R>(this.pool, this.names, sql, params);
      throw e;
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return retryTransaction(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        try {
          const out = await fn(new PgTransaction(client, this.names));
          await client.query('COMMIT');
          return out;
        } catch (e) {
          try {
            await client.query('ROLLBACK');
          } catch (rollbackError) {
            // The connection is unusable: drop it from the pool rather than hand it out again.
            broken = rollbackError as Error;
          }
          throw e;
        }
      } finally {
        client.release(broken);
      }
    }, options);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export async function openPostgres(config: PostgresConfig): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax ?? 10,
    application_name: config.applicationName ?? 'ips',
    types: typeParsers,
  });
  // An idle connection that the server drops emits 'error' on the pool; without a listener
  // that would end the process. The next query gets a fresh connection.
  pool.on('error', () => {});
  const db = new PgDatabase(pool, redactUrl(config.url), config.preparedStatements === false ? null : new StatementNames());
  try {
    await db.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => {});
    throw e;
  }
  return db;
}
