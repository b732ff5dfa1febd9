import { resolveTableDirectory } from './hadoop-catalog.js';
import type { TableRef } from './load-table.js';
import { RestCatalog } from './rest-catalog.js';
import { SqlCatalog } from './sql-catalog.js';
import type { FileIO } from '../io/file-io.js';

/**
 * Where a table's current metadata is, without reading it: one catalog row, one version hint,
 * or one REST call. This is what watching a table costs per poll. SQL catalogs keep their
 * connection pool between polls (one per catalog URI).
 */
export class MetadataPointers {
  private readonly sql = new Map<string, SqlCatalog>();

  async current(io: FileIO, ref: TableRef): Promise<string> {
    switch (ref.kind) {
      case 'metadata-file':
        // A fixed file never moves: register the table directory or catalog entry to watch it.
        return ref.location;
      case 'directory':
        return resolveTableDirectory(io, ref.location);
      case 'sql': {
        const key = `${ref.uri}\u0000${ref.catalogName ?? ''}`;
        let cat = this.sql.get(key);
        if (!cat) this.sql.set(key, (cat = SqlCatalog.connect(ref.uri, ref.catalogName)));
        return (await cat.loadTableRow(ref.identifier)).metadataLocation;
      }
      case 'rest':
        return (await new RestCatalog({ uri: ref.uri, token: ref.token, warehouse: ref.warehouse }).loadTable(ref.identifier)).metadataLocation;
    }
  }

  async close(): Promise<void> {
    const cats = [...this.sql.values()];
    this.sql.clear();
    await Promise.all(cats.map((c) => c.close().catch(() => {})));
  }
}
