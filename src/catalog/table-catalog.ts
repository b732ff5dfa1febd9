import crypto from 'node:crypto';
import pg from 'pg';
import { IpsError, isIpsError } from '../errors.js';
import { baseName, joinLocation, type FileIO } from '../io/file-io.js';
import { resolveTableDirectory } from './hadoop-catalog.js';
import { commitSqlTable, ensureSqlCatalogTables, splitIdentifier, SqlCatalog } from './sql-catalog.js';

/**
 * Catalogs ips writes tables into. A commit is compare-and-set: it names the metadata
 * location it built on (`expected`, null for a new table) and fails with CONFLICT when the
 * table moved on meanwhile, so a lost race is never a silent overwrite.
 */
export interface WritableCatalog {
  readonly kind: 'hadoop' | 'sql';
  /** The table's current metadata file, or null when the table does not exist. */
  currentMetadataLocation(identifier: string): Promise<string | null>;
  /** Where a new table's files go. */
  tableLocation(identifier: string): string;
  /** CAS commit: writes the metadata JSON text as the next version and points the catalog at it. */
  commit(identifier: string, metadataJson: string, expected: string | null): Promise<string>;
  /** How to register the table in ips (the `ref` of POST /v1/tables) and how engines find it. */
  registration(identifier: string): { kind: 'directory'; location: string } | { kind: 'sql'; uri: string; catalog_name?: string; identifier: string };
  close(): Promise<void>;
}

const trimSlash = (s: string): string => s.replace(/\/+$/, '');

/**
 * The Hadoop layout (Java HadoopCatalog): `<warehouse>/<ns…>/<table>/metadata/vN.metadata.json`
 * plus `version-hint.text`. A version file is created only if absent (link(2) locally,
 * conditional PUT on S3), which is what makes the commit atomic.
 */
export class HadoopCatalog implements WritableCatalog {
  readonly kind = 'hadoop' as const;
  private readonly warehouse: string;

  constructor(private readonly io: FileIO, warehouse: string) {
    this.warehouse = trimSlash(warehouse);
  }

  tableLocation(identifier: string): string {
    const { namespace, table } = splitIdentifier(identifier);
    return joinLocation(this.warehouse, [...namespace.split('.'), table].join('/'));
  }

  async currentMetadataLocation(identifier: string): Promise<string | null> {
    try {
      return await resolveTableDirectory(this.io, this.tableLocation(identifier));
    } catch (e) {
      if (isIpsError(e) && e.code === 'TABLE_NOT_FOUND') return null;
      throw e;
    }
  }

  async commit(identifier: string, metadataJson: string, expected: string | null): Promise<string> {
    const metaDir = joinLocation(this.tableLocation(identifier), 'metadata');
    let version = 1;
    if (expected === null) {
      const current = await this.currentMetadataLocation(identifier);
      if (current !== null) throw new IpsError('CONFLICT', `table ${identifier} already exists (${current})`);
    } else {
      const m = /^v(\d+)\.metadata\.json$/.exec(baseName(expected));
      if (!m) throw new IpsError('INVALID_ARGUMENT', `${expected} is not a vN.metadata.json file of a Hadoop-layout table`);
      version = Number(m[1]) + 1;
      const current = await this.currentMetadataLocation(identifier);
      if (current !== expected) {
        throw new IpsError('CONFLICT', `table ${identifier} was changed by another writer (now ${current ?? 'absent'}, expected ${expected}); reload it and retry`);
      }
    }
    const location = joinLocation(metaDir, `v${version}.metadata.json`);
    try {
      await this.io.write(location, Buffer.from(metadataJson, 'utf8'), { ifAbsent: true });
    } catch (e) {
      if (isIpsError(e) && e.code === 'ALREADY_EXISTS') {
        throw new IpsError('CONFLICT', expected === null
          ? `table ${identifier} already exists (${location})`
          : `another writer committed version ${version} of table ${identifier} first; reload it and retry`, { cause: e });
      }
      throw e;
    }
    // No trailing newline: PyIceberg's StaticTable checks the hint with str.isnumeric().
    await this.io.write(joinLocation(metaDir, 'version-hint.text'), Buffer.from(String(version), 'utf8'));
    return location;
  }

  registration(identifier: string): { kind: 'directory'; location: string } {
    return { kind: 'directory', location: this.tableLocation(identifier) };
  }

  async close(): Promise<void> {}
}

/**
 * The JDBC/SQL catalog layout (`iceberg_tables`) that Iceberg Java's JdbcCatalog and
 * PyIceberg's SqlCatalog read. Metadata files are named like theirs,
 * `<table>/metadata/NNNNN-<uuid>.metadata.json`, and new tables go where PyIceberg puts them,
 * `<warehouse>/<namespace>.db/<table>`.
 */
export class SqlWritableCatalog implements WritableCatalog {
  readonly kind = 'sql' as const;
  private readonly pool: pg.Pool;
  private readonly reader: SqlCatalog;
  private readonly warehouse: string;
  private ready: Promise<void> | undefined;

  constructor(private readonly uri: string, private readonly catalogName: string, warehouse: string, private readonly io: FileIO) {
    // Accept SQLAlchemy (postgresql+psycopg2://) and JDBC (jdbc:postgresql://) spellings too.
    const clean = uri.replace(/^jdbc:/, '').replace(/^postgresql\+\w+:/, 'postgresql:');
    this.pool = new pg.Pool({ connectionString: clean, max: 4 });
    // An idle connection the server drops (a restart, an admin's terminate) must not crash the
    // process: pg emits it on the pool, and the next query opens a new connection.
    this.pool.on('error', () => {});
    this.reader = new SqlCatalog(this.pool, catalogName);
    this.warehouse = trimSlash(warehouse);
  }

  private ensure(): Promise<void> {
    this.ready ??= ensureSqlCatalogTables(this.pool).catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    return this.ready;
  }

  tableLocation(identifier: string): string {
    const { namespace, table } = splitIdentifier(identifier);
    return joinLocation(this.warehouse, `${namespace}.db/${table}`);
  }

  async currentMetadataLocation(identifier: string): Promise<string | null> {
    await this.ensure();
    try {
      return (await this.reader.loadTableRow(identifier)).metadataLocation;
    } catch (e) {
      if (isIpsError(e) && e.code === 'TABLE_NOT_FOUND') return null;
      throw e;
    }
  }

  async commit(identifier: string, metadataJson: string, expected: string | null): Promise<string> {
    await this.ensure();
    let version = 0;
    let dir: string;
    if (expected !== null) {
      const m = /^(\d+)-[0-9a-fA-F-]+\.metadata\.json$/.exec(baseName(expected));
      version = m ? Number(m[1]) + 1 : 1;
      dir = expected.slice(0, expected.lastIndexOf('/'));
    } else {
      dir = joinLocation(this.tableLocation(identifier), 'metadata');
    }
    const location = joinLocation(dir, `${String(version).padStart(5, '0')}-${crypto.randomUUID()}.metadata.json`);
    await this.io.write(location, Buffer.from(metadataJson, 'utf8'), { ifAbsent: true });
    // The catalog row is the commit: compare-and-set on the previous location.
    await commitSqlTable(this.pool, this.catalogName, identifier, location, expected);
    return location;
  }

  registration(identifier: string): { kind: 'sql'; uri: string; catalog_name: string; identifier: string } {
    return { kind: 'sql', uri: this.uri, catalog_name: this.catalogName, identifier };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
