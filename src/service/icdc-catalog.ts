import pg from 'pg';
import { IpsError, describeError } from '../errors.js';
import { advanceSqlTable } from '../catalog/sql-catalog.js';
import { currentReadLimits } from '../io/limits.js';
import { redactUrl } from '../state/database.js';

/**
 * `icdc_catalog_url`: the service also registers every ICDC table it writes in an Iceberg
 * JDBC/SQL catalog (`iceberg_tables` in PostgreSQL, the layout Iceberg Java's JdbcCatalog and
 * PyIceberg's SqlCatalog read), as `icdc.<consumer>__<table>`, like `ips changes --icdc-catalog`
 * does. The pointer only moves forward (to a higher metadata version), so prepares racing on a
 * table cannot move it back. A catalog that fails fails the prepare (typed, 502/504): a shop
 * that reads ICDC tables from its JDBC catalog must not get a stale one silently; the retried
 * prepare registers again.
 */
export class IcdcCatalogRegistrar {
  private readonly pool: pg.Pool;

  constructor(private readonly url: string, private readonly catalogName: string) {
    const ms = currentReadLimits().remoteTimeoutMs;
    this.pool = new pg.Pool({ connectionString: url.replace(/^jdbc:/, ''), max: 2, connectionTimeoutMillis: ms, query_timeout: ms, statement_timeout: ms });
    this.pool.on('error', () => {}); // an idle connection the catalog drops must not crash the process
  }

  /** Points `icdc.<name>` at this metadata file (unless the catalog has a newer one). */
  async register(name: string, metadataLocation: string): Promise<void> {
    try {
      await advanceSqlTable(this.pool, this.catalogName, `icdc.${name}`, metadataLocation);
    } catch (e) {
      if (e instanceof IpsError && e.code !== 'INTERNAL') throw e;
      const text = describeError(e);
      if (/timeout|timed out/i.test(text)) {
        throw new IpsError('UPSTREAM_TIMEOUT', `the ICDC catalog (icdc_catalog_url ${redactUrl(this.url)}) did not answer within ${currentReadLimits().remoteTimeoutMs} ms: ${text}`, { cause: e });
      }
      throw new IpsError('CATALOG_UNREACHABLE', `cannot register icdc.${name} in the ICDC catalog (icdc_catalog_url ${redactUrl(this.url)}): ${text}; the batch was not handed out, prepare again once the catalog answers`, { cause: e });
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
