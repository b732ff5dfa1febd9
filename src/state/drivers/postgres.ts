import pg from 'pg';
import { StatementNames, isLostPreparedStatement, isStalePreparedStatement } from './statement-names.js';
import {
  newDatabaseStats, OID, normalizeParams, parseInt8, parseJsonValue, redactUrl, retryTransaction,
  type Database, type DatabaseConfig, type DatabaseStats, type Queryable, type QueryResult, type SqlParam, type TransactionOptions,
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

async function run<R>(on: Runner, names: StatementNames | null, sql: string, params: readonly SqlParam[] | undefined, stats: DatabaseStats, ownWait = true): Promise<QueryResult<R>> {
  stats.statements++;
  if (ownWait) stats.roundTrips++;
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
  /** BEGIN, sent but not yet awaited: the first statement goes out behind it (see withTransaction). */
  private begun: Promise<unknown> | null;
  /**
   * Statements sent and not yet answered (BEGIN included): one sent while another is unanswered
   * is pipelined behind it and shares its wait (DatabaseStats.roundTrips).
   */
  private unanswered = 1;

  constructor(private readonly client: pg.PoolClient, private readonly names: StatementNames | null, begun: Promise<unknown>, private readonly stats: DatabaseStats) {
    this.begun = begun;
    const answered = (): void => { this.unanswered--; };
    // Handled here too: a transaction that fails before its first statement still settles it.
    begun.then(answered, answered);
  }

  /** Awaits BEGIN (once); its failure is the transaction's. */
  async settleBegin(): Promise<void> {
    const begun = this.begun;
    this.begun = null;
    if (begun !== null) await begun;
  }

  private async send<R>(sql: string, params: readonly SqlParam[] | undefined): Promise<QueryResult<R>> {
    const ownWait = this.unanswered === 0;
    this.unanswered++;
    try {
      return await run<R>(this.client, this.names, sql, params, this.stats, ownWait);
    } finally {
      this.unanswered--;
    }
  }

  async query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    const begun = this.begun;
    if (begun === null) return this.send<R>(sql, params);
    this.begun = null;
    // Both are on the wire already; BEGIN's answer comes first, and its failure is reported first.
    const [b, r] = await Promise.allSettled([begun, this.send<R>(sql, params)]);
    if (b.status === 'rejected') throw b.reason;
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  }

  async exec(sql: string): Promise<void> {
    await this.settleBegin();
    this.stats.statements++;
    this.stats.roundTrips++;
    await this.client.query(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return fn(this);
  }
}

/** The socket under a pooled client (pg keeps it on an undocumented field): corked so that BEGIN and the first statement leave in one write. */
function socketOf(client: pg.PoolClient): { cork(): void; uncork(): void } | null {
  const stream = (client as unknown as { connection?: { stream?: { cork?: unknown; uncork?: unknown } } }).connection?.stream;
  return stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' ? stream as { cork(): void; uncork(): void } : null;
}

class PgDatabase implements Database {
  readonly driver = 'postgres' as const;
  readonly inTransaction = false;
  readonly stats = newDatabaseStats();
  constructor(private readonly pool: pg.Pool, readonly description: string, private readonly names: StatementNames | null) {}

  async query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    try {
      return await run<R>(this.pool, this.names, sql, params, this.stats);
    } catch (e) {
      // Outside a transaction the statement can simply run again, under a new name or unnamed.
      if (this.names !== null && (isStalePreparedStatement(e) || isLostPreparedStatement(e))) return run<R>(this.pool, this.names, sql, params, this.stats);
      throw e;
    }
  }

  async exec(sql: string): Promise<void> {
    this.stats.statements++;
    this.stats.roundTrips++;
    await this.pool.query(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return retryTransaction(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        // Pipelined: BEGIN is not awaited before the transaction's first statement, which a
        // transaction issues at once; both leave in one write and come back in one read, a
        // round trip to the server saved per transaction (the pool's clients run in pg's
        // pipeline mode, which writes a query without waiting for the one before it to finish).
        const socket = socketOf(client);
        socket?.cork();
        this.stats.transactions++;
        this.stats.statements++; // BEGIN; the first statement, sent behind it, shares its wait
        this.stats.roundTrips++;
        const tx = new PgTransaction(client, this.names, client.query('BEGIN'), this.stats);
        // Uncorked once the synchronous part of fn has issued its first statement (or none).
        if (socket) process.nextTick(() => socket.uncork());
        try {
          const out = await fn(tx);
          await tx.settleBegin();
          this.stats.statements++;
          this.stats.roundTrips++;
          await client.query('COMMIT');
          return out;
        } catch (e) {
          try {
            await tx.settleBegin().catch(() => {});
            this.stats.statements++;
            this.stats.roundTrips++;
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
    // Queries are written without waiting for the one before (see withTransaction). Each
    // statement still has its own Sync, so an error ends only its own statement; ips never
    // issues queries that hold a portal open (cursors, row limits), which pipeline mode refuses.
    pipeline: true,
  } as pg.PoolConfig);
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
