import pg from 'pg';
import { IpsError, describeError } from '../errors.js';
import { currentReadLimits } from '../io/limits.js';

/**
 * The JDBC/SQL catalog layout shared by Iceberg Java's JdbcCatalog and PyIceberg's SqlCatalog:
 * one row per table in `iceberg_tables(catalog_name, table_namespace, table_name,
 * metadata_location, previous_metadata_location)`. Namespaces are dot-joined.
 */
export interface SqlTableRow {
  catalogName: string;
  namespace: string;
  tableName: string;
  metadataLocation: string;
  previousMetadataLocation: string | null;
}

export function splitIdentifier(identifier: string): { namespace: string; table: string } {
  const i = identifier.lastIndexOf('.');
  if (i <= 0 || i === identifier.length - 1) {
    throw new IpsError('INVALID_ARGUMENT', `table identifier must be namespace.table, got "${identifier}"`);
  }
  return { namespace: identifier.slice(0, i), table: identifier.slice(i + 1) };
}

export class SqlCatalog {
  constructor(private readonly pool: pg.Pool, private readonly catalogName: string | undefined) {}

  static connect(uri: string, catalogName?: string): SqlCatalog {
    // The catalog may be given as a SQLAlchemy URL (postgresql+psycopg2://) or a JDBC URL.
    const clean = uri.replace(/^jdbc:/, '').replace(/^postgresql\+\w+:/, 'postgresql:');
    const ms = currentReadLimits().remoteTimeoutMs;
    // Every catalog call under a deadline: connecting, and each query (client- and server-side).
    const pool = new pg.Pool({ connectionString: clean, max: 4, connectionTimeoutMillis: ms, query_timeout: ms, statement_timeout: ms });
    // An idle connection that the catalog drops must not crash the process (pg emits 'error' on the pool).
    pool.on('error', () => {});
    return new SqlCatalog(pool, catalogName);
  }

  async loadTableRow(identifier: string): Promise<SqlTableRow> {
    const { namespace, table } = splitIdentifier(identifier);
    let rows: SqlTableRow[];
    try {
      const res = await this.pool.query(
        `SELECT catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location
           FROM iceberg_tables
          WHERE table_namespace = $1 AND table_name = $2 AND ($3::text IS NULL OR catalog_name = $3)`,
        [namespace, table, this.catalogName ?? null],
      );
      rows = res.rows.map((r) => ({
        catalogName: r.catalog_name, namespace: r.table_namespace, tableName: r.table_name,
        metadataLocation: r.metadata_location, previousMetadataLocation: r.previous_metadata_location,
      }));
    } catch (e) {
      if ((e as { code?: string }).code === '42P01') {
        throw new IpsError('CATALOG_ERROR', 'the database has no iceberg_tables table: is this an Iceberg JDBC/SQL catalog?', { cause: e });
      }
      if (/timeout|timed out/i.test(describeError(e))) {
        throw new IpsError('UPSTREAM_TIMEOUT', `the SQL catalog did not answer within ${currentReadLimits().remoteTimeoutMs} ms (remote_timeout_ms): ${describeError(e)}`, { cause: e });
      }
      throw new IpsError('CATALOG_UNREACHABLE', `cannot query the SQL catalog: ${describeError(e)}`, { cause: e });
    }
    if (rows.length === 0) {
      throw new IpsError('TABLE_NOT_FOUND', `table ${identifier} is not in the SQL catalog${this.catalogName ? ` "${this.catalogName}"` : ''}`);
    }
    if (rows.length > 1) {
      throw new IpsError('AMBIGUOUS_TABLE', `table ${identifier} exists in several catalogs (${rows.map((r) => r.catalogName).join(', ')}); pick one with --catalog-name`);
    }
    const row = rows[0]!;
    if (!row.metadataLocation) throw new IpsError('TABLE_NOT_FOUND', `${identifier} is a view or has no metadata location`);
    return row;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * Creates the catalog tables if absent, with the layout of Iceberg Java's JdbcCatalog (schema
 * V1, which PyIceberg's SqlCatalog also reads), so engines can load what ips registers.
 */
export async function ensureSqlCatalogTables(pool: pg.Pool): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name))`);
  await pool.query(`CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255),
    property_value VARCHAR(1000),
    PRIMARY KEY (catalog_name, namespace, property_key))`);
}

async function hasColumn(pool: pg.Pool, table: string, column: string): Promise<boolean> {
  const res = await pool.query(
    `SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2 AND table_schema = ANY (current_schemas(false))`,
    [table, column]);
  return (res.rowCount ?? 0) > 0;
}

/**
 * Points `identifier` at a new metadata file by compare-and-set on the current location (null:
 * the table must not exist yet). A lost race is a CONFLICT, never a silent overwrite.
 */
export async function commitSqlTable(pool: pg.Pool, catalogName: string, identifier: string, newLocation: string, expected: string | null): Promise<void> {
  const { namespace, table } = splitIdentifier(identifier);
  await ensureSqlCatalogTables(pool);
  if (expected === null) {
    await pool.query(
      `INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value)
       VALUES ($1, $2, 'exists', 'true') ON CONFLICT DO NOTHING`, [catalogName, namespace]);
    // Spark's JdbcCatalog creates the older layout without iceberg_type unless told otherwise.
    const typed = await hasColumn(pool, 'iceberg_tables', 'iceberg_type');
    const res = await pool.query(
      typed
        ? `INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location, iceberg_type)
           VALUES ($1, $2, $3, $4, NULL, 'TABLE') ON CONFLICT DO NOTHING`
        : `INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location)
           VALUES ($1, $2, $3, $4, NULL) ON CONFLICT DO NOTHING`,
      [catalogName, namespace, table, newLocation]);
    if (res.rowCount !== 1) throw new IpsError('CONFLICT', `table ${identifier} already exists in catalog ${catalogName}`);
    return;
  }
  const res = await pool.query(
    `UPDATE iceberg_tables SET metadata_location = $4, previous_metadata_location = $5
      WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 AND metadata_location = $5`,
    [catalogName, namespace, table, newLocation, expected]);
  if (res.rowCount !== 1) throw new IpsError('CONFLICT', `table ${identifier} was changed by another writer (expected metadata ${expected}); retry`);
}

/** The N of `…/vN.metadata.json` (or `…/NNNNN-uuid.metadata.json`), or null. */
function metadataVersion(location: string): number | null {
  const m = /\/v?(\d{1,9})(?:-[^/]*)?\.metadata\.json$/.exec(location);
  return m ? Number(m[1]) : null;
}

/**
 * Points `identifier` at `newLocation` unless the catalog already names a newer version of it
 * (writers racing on one table commit versions in order, but may register them out of order):
 * compare-and-set, retried on a lost race, creating the row on first use. Returns whether it moved.
 */
export async function advanceSqlTable(pool: pg.Pool, catalogName: string, identifier: string, newLocation: string): Promise<boolean> {
  const { namespace, table } = splitIdentifier(identifier);
  const next = metadataVersion(newLocation);
  for (let attempt = 1; ; attempt++) {
    await ensureSqlCatalogTables(pool);
    const res = await pool.query<{ metadata_location: string | null }>(
      'SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3',
      [catalogName, namespace, table]);
    const current = res.rows[0]?.metadata_location ?? null;
    if (current === newLocation) return false;
    const cur = current === null ? null : metadataVersion(current);
    if (cur !== null && next !== null && cur >= next) return false;
    try {
      await commitSqlTable(pool, catalogName, identifier, newLocation, current);
      return true;
    } catch (e) {
      if (!(e instanceof IpsError && e.code === 'CONFLICT') || attempt >= 5) throw e;
    }
  }
}
