import pg from 'pg';
import { IpsError, describeError } from '../errors.js';

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
    return new SqlCatalog(new pg.Pool({ connectionString: clean, max: 4 }), catalogName);
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
      throw new IpsError('CATALOG_ERROR', `cannot query the SQL catalog: ${describeError(e)}`, { cause: e });
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
