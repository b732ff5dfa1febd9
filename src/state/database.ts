import { isSafeNumber, parse as parseLossless, isInteger, isLosslessNumber, stringify as stringifyLossless } from 'lossless-json';
import { IpsError, describeError } from '../errors.js';
import { isLostPreparedStatement, isStalePreparedStatement } from './drivers/statement-names.js';

/**
 * The state database, behind one small interface with two drivers that run the same SQL:
 *
 * - `postgres`: a real server (PostgreSQL, or CockroachDB which speaks its protocol) through
 *   the `pg` pool;
 * - `pglite`: PostgreSQL compiled to WebAssembly (`@electric-sql/pglite`), embedded in the
 *   process, on a local data directory or in memory. No server to install.
 *
 * Value mapping is the same on both: BIGINT (int8) → bigint always (never a JS number),
 * TIMESTAMPTZ → Date, JSON/JSONB → parsed without losing integers beyond 2^53 (they become
 * bigint), NUMERIC → string. Parameters: bigint and Date are sent as text; structured values go
 * through `jsonParam()` and a `$n::JSONB` cast.
 */

export type DriverKind = 'postgres' | 'pglite';

/** What a query parameter may be. Objects and arrays go through jsonParam() first. */
export type SqlParam = string | number | bigint | boolean | Date | null | undefined;

export interface QueryResult<R> {
  rows: R[];
  /** Rows returned, or rows affected by INSERT/UPDATE/DELETE without RETURNING. */
  rowCount: number;
}

export interface TransactionOptions {
  /**
   * Times a transaction that failed with a serialization failure (SQLSTATE 40001, routine on
   * CockroachDB, which runs SERIALIZABLE) or a deadlock (40P01) is run again. Default 3. The
   * function must therefore only touch the database: no external side effects inside it.
   */
  retries?: number;
}

/** A connection-like handle: the database itself, or an open transaction. */
export interface Queryable {
  readonly driver: DriverKind;
  /** True inside withTransaction's callback. */
  readonly inTransaction: boolean;
  query<R = Record<string, unknown>>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>>;
  /** Several `;`-separated statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Runs fn in a transaction: COMMIT when it resolves, ROLLBACK when it throws. On a
   * transaction handle this joins the open transaction (no savepoint): the outer one decides.
   * Inside fn use only the handle it gets; on PGlite (one connection) a query on the outer
   * database would wait for the transaction and never run.
   */
  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
}

/**
 * What this process asked of its database since it opened it (`ips_db_*` in /metrics): the
 * statements it sent (BEGIN and COMMIT included), the times it waited for an answer (a statement
 * sent behind another, unanswered one shares that one's wait: BEGIN goes with the first
 * statement of its transaction), and the transactions it ran (retries included).
 */
export interface DatabaseStats {
  statements: number;
  roundTrips: number;
  transactions: number;
}

export function newDatabaseStats(): DatabaseStats {
  return { statements: 0, roundTrips: 0, transactions: 0 };
}

export interface Database extends Queryable {
  /** Where the database is, safe for logs (no password). */
  readonly description: string;
  /** Counted as the statements go out; read-only to callers. */
  readonly stats: Readonly<DatabaseStats>;
  close(): Promise<void>;
}

export type DatabaseConfig =
  | {
      driver: 'postgres';
      /** postgres://user:password@host:port/database (also postgresql://, jdbc:postgresql://). */
      url: string;
      /** Connections in the pool (default 10). */
      poolMax?: number;
      /** application_name the server shows for these connections (default "ips"). */
      applicationName?: string;
      /**
       * Named server-side prepared statements (default true). Off for a connection pooler that
       * does not keep them per client (PgBouncer in transaction mode before 1.21).
       */
      preparedStatements?: boolean;
    }
  | {
      driver: 'pglite';
      /** Data directory (created when missing); null for an in-memory database. */
      dataDir: string | null;
      /** A tarball from PGlite's dumpDataDir() to start from instead of running initdb (tests). */
      loadDataDir?: Blob;
    };

// ---------------------------------------------------------------------------------------------
// value mapping shared by the drivers

export const OID = { INT8: 20, JSON: 114, NUMERIC: 1700, JSONB: 3802 } as const;

/** int8 text → bigint. Never through a JS number. */
export function parseInt8(text: string): bigint {
  return BigInt(text);
}

const LONG_DIGITS = /\d{16}/;

/**
 * JSON text → value. Integers that a JS number cannot hold exactly become bigint (this service
 * writes 64-bit ids in JSON as strings; this is the safety net for anything else).
 */
export function parseJsonValue(text: string): unknown {
  // Every integer a JS number cannot hold has 16 digits or more: text without such a run parses
  // the same with the built-in parser, several times faster (batch file lists are read per commit).
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  return parseLossless(text, null, (value: string) =>
    isInteger(value) && !isSafeNumber(value) ? BigInt(value) : Number(value),
  );
}

/** A structured value as a JSON parameter: bigints become exact integer literals. Use `$n::JSONB`. */
/** Whether a value holds a NUL character anywhere (strings, object keys, nested): PostgreSQL's text and JSONB cannot store one. */
function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((v) => containsNul(v, depth + 1));
  return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v, depth + 1));
}

const NUL_REFUSED = 'a text value contains a NUL character (\\u0000), which names, descriptions, properties and ids may not hold; remove it';

/** Thrown inside plainJson's replacer: the value holds a 64-bit number only lossless-json prints exactly. */
const NEEDS_LOSSLESS = Symbol('needs lossless-json');

/**
 * JSON.stringify's replacer for the common case, refusing NUL as containsNul does: native
 * stringify took a quarter of the CPU and a sixth of the transient memory lossless-json's did
 * (a 100,000-file batch's file list: 0.5 s and 74 MB against 2.2 s and 476 MB).
 */
function plainJson(key: string, v: unknown): unknown {
  if (key.includes('\u0000')) throw new IpsError('INVALID_ARGUMENT', NUL_REFUSED);
  if (typeof v === 'string') {
    if (v.includes('\u0000')) throw new IpsError('INVALID_ARGUMENT', NUL_REFUSED);
  } else if (typeof v === 'bigint' || (typeof v === 'object' && v !== null && isLosslessNumber(v))) {
    throw NEEDS_LOSSLESS;
  }
  return v;
}

/** A value as JSON text for a `$n::JSONB` parameter: bigints and lossless numbers printed exactly, NUL refused. */
export function jsonParam(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, plainJson) as string | undefined;
  } catch (e) {
    if (e !== NEEDS_LOSSLESS) throw e;
    if (containsNul(value)) throw new IpsError('INVALID_ARGUMENT', NUL_REFUSED);
    text = stringifyLossless(value);
  }
  if (text === undefined) throw new IpsError('INTERNAL', 'value cannot be stored as JSON');
  return text;
}

/** Parameters as both drivers take them: bigint and Date as text, undefined as NULL. */
export function normalizeParams(params: readonly SqlParam[] | undefined): (string | number | boolean | null)[] {
  if (!params) return [];
  return params.map((p, i) => {
    if (p === undefined || p === null) return null;
    if (typeof p === 'bigint') return p.toString();
    if (p instanceof Date) {
      if (Number.isNaN(p.getTime())) throw new IpsError('INTERNAL', `query parameter $${i + 1} is an invalid Date`);
      return p.toISOString();
    }
    if (typeof p === 'object') throw new IpsError('INTERNAL', `query parameter $${i + 1} is an object: pass it through jsonParam() and cast with ::JSONB`);
    // Every value the API or a caller stores passes here: a NUL is the caller's mistake (400), not a database failure.
    if (typeof p === 'string' && p.includes('\u0000')) throw new IpsError('INVALID_ARGUMENT', NUL_REFUSED);
    return p;
  });
}

// ---------------------------------------------------------------------------------------------
// errors

/** SQLSTATE of a driver error (both drivers put it in `code`), or undefined. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export const SQLSTATE = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  CHECK_VIOLATION: '23514',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK: '40P01',
  DUPLICATE_TABLE: '42P07',
  /** duplicate_object: the table's row type lost the same race in pg_type. */
  DUPLICATE_OBJECT: '42710',
  UNDEFINED_TABLE: '42P01',
} as const;

export function isRetryableTransactionError(e: unknown): boolean {
  const s = sqlState(e);
  if (s === SQLSTATE.SERIALIZATION_FAILURE || s === SQLSTATE.DEADLOCK) return true;
  // A prepared statement whose result type a migration changed, or one the server connection
  // lost or had already (a pooler in transaction mode): the driver has moved to fresh statement
  // names or to unnamed statements, so the transaction succeeds when run again.
  return isStalePreparedStatement(e) || isLostPreparedStatement(e);
}

/** The constraint name a violation names (pg and PGlite both set `constraint`). */
export function violatedConstraint(e: unknown): string | undefined {
  const c = (e as { constraint?: unknown } | null)?.constraint;
  return typeof c === 'string' ? c : undefined;
}

// ---------------------------------------------------------------------------------------------
// configuration

export interface DatabaseEnv {
  [name: string]: string | undefined;
}

/** The data directory used when neither DATABASE_URL nor IPS_DATA_DIR is set. */
export const DEFAULT_DATA_DIR = '.ips';

/**
 * Configuration from the environment:
 * - `DATABASE_URL=postgres://…` (or postgresql://, jdbc:postgresql://): the `pg` driver against
 *   that server; `IPS_DB_POOL_MAX` sizes the pool; `IPS_DB_PREPARED_STATEMENTS=off` turns named
 *   prepared statements off (for PgBouncer in transaction mode before 1.21).
 * - `DATABASE_URL=pglite:///abs/dir` or `pglite:rel/dir`: embedded, in that directory;
 *   `DATABASE_URL=memory:` (or `pglite:memory`): embedded, in memory (nothing kept).
 * - otherwise embedded, in `$IPS_DATA_DIR/db` (IPS_DATA_DIR defaults to `.ips`).
 */
export function databaseConfigFromEnv(env: DatabaseEnv = process.env): DatabaseConfig {
  const url = env.DATABASE_URL?.trim();
  if (url) {
    if (/^(jdbc:)?postgres(ql)?:\/\//i.test(url)) {
      const cfg: DatabaseConfig = { driver: 'postgres', url: url.replace(/^jdbc:/i, '') };
      const max = env.IPS_DB_POOL_MAX?.trim();
      if (max) {
        if (!/^[1-9]\d*$/.test(max)) throw new IpsError('INVALID_CONFIG', `IPS_DB_POOL_MAX must be a positive integer, got "${max}"`);
        cfg.poolMax = Number(max);
      }
      const prepared = env.IPS_DB_PREPARED_STATEMENTS?.trim().toLowerCase();
      if (prepared) {
        if (prepared !== 'on' && prepared !== 'off') {
          throw new IpsError('INVALID_CONFIG', `IPS_DB_PREPARED_STATEMENTS must be "on" or "off" (off behind PgBouncer in transaction mode before 1.21), got "${prepared}"`);
        }
        if (prepared === 'off') cfg.preparedStatements = false;
      }
      return cfg;
    }
    if (/^memory:\/*$/i.test(url) || /^pglite:\/*memory$/i.test(url)) return { driver: 'pglite', dataDir: null };
    const m = /^pglite:(?:\/\/)?(.+)$/i.exec(url);
    if (m) return { driver: 'pglite', dataDir: m[1]! };
    throw new IpsError('INVALID_CONFIG',
      `DATABASE_URL must be postgres://user:password@host:port/database (PostgreSQL or CockroachDB), pglite:DIR (embedded, on disk) or memory: (embedded, in memory); got "${redactUrl(url)}"`);
  }
  const dir = env.IPS_DATA_DIR?.trim() || DEFAULT_DATA_DIR;
  return { driver: 'pglite', dataDir: `${dir.replace(/\/+$/, '')}/db` };
}

/** A connection URL with its password replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*:)[^@/?#]*@/i, '$1***@').replace(/([?&]password=)[^&]*/i, '$1***');
}

export function describeConfig(config: DatabaseConfig): string {
  if (config.driver === 'postgres') return redactUrl(config.url);
  return config.dataDir === null ? 'embedded PGlite (in memory)' : `embedded PGlite in ${config.dataDir}`;
}

/** Opens (and pings) the database the configuration names. Migrations are separate: see migrate(). */
export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  try {
    if (config.driver === 'postgres') {
      const { openPostgres } = await import('./drivers/postgres.js');
      return await openPostgres(config);
    }
    const { openPglite } = await import('./drivers/pglite.js');
    return await openPglite(config);
  } catch (e) {
    if (e instanceof IpsError) throw e;
    throw new IpsError('DATABASE_UNAVAILABLE', `cannot open the state database (${describeConfig(config)}): ${describeError(e)}`, { cause: e });
  }
}

/** Runs a transaction, again on serialization failures (see TransactionOptions.retries). */
export async function retryTransaction<T>(run: () => Promise<T>, options: TransactionOptions | undefined): Promise<T> {
  const retries = options?.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      if (attempt >= retries || !isRetryableTransactionError(e)) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * 2 ** attempt));
    }
  }
}
