import path from 'node:path';
import { IpsError } from '../errors.js';
import type { FileIO } from '../io/file-io.js';
import { tableMetadataFromJson } from '../iceberg/metadata.js';
import { resolveTableDirectory } from './hadoop-catalog.js';
import { RestCatalog } from './rest-catalog.js';
import { SqlCatalog } from './sql-catalog.js';
import { readMetadataFile, type LoadedTable, type MetadataCache } from './table.js';

export interface CatalogOptions {
  /** postgresql://… (JDBC/SQL catalog layout) or http(s)://… (REST catalog). */
  catalogUri?: string | undefined;
  /** catalog_name column of the SQL layout, or the REST warehouse. */
  catalogName?: string | undefined;
  catalogToken?: string | undefined;
}

export type TableRef =
  | { kind: 'metadata-file'; location: string }
  | { kind: 'directory'; location: string }
  | { kind: 'sql'; uri: string; catalogName: string | undefined; identifier: string }
  | { kind: 'rest'; uri: string; token: string | undefined; warehouse: string | undefined; identifier: string };

/**
 * How a user names a table: a metadata file (`…/v3.metadata.json`, also `.gz`), a table
 * directory in the Hadoop layout, or an identifier `ns.table` in the catalog given by --catalog.
 */
export function parseTableRef(ref: string, opts: CatalogOptions = {}): TableRef {
  if (opts.catalogUri) {
    const uri = opts.catalogUri;
    if (/^https?:\/\//.test(uri)) return { kind: 'rest', uri, token: opts.catalogToken, warehouse: opts.catalogName, identifier: ref };
    if (/^(jdbc:)?postgres(ql)?(\+\w+)?:\/\//.test(uri)) return { kind: 'sql', uri, catalogName: opts.catalogName, identifier: ref };
    throw new IpsError('INVALID_ARGUMENT', `unsupported catalog URI ${uri}: use postgresql://… for a JDBC/SQL catalog or http(s)://… for a REST catalog`);
  }
  if (/\.metadata\.json(\.gz)?$/.test(ref)) return { kind: 'metadata-file', location: ref };
  return { kind: 'directory', location: ref };
}

/** Loads a table's current metadata; with a cache, a metadata file already parsed is not parsed again. */
export async function loadTable(io: FileIO, ref: TableRef, cache?: MetadataCache): Promise<LoadedTable> {
  switch (ref.kind) {
    case 'metadata-file':
      return { name: ref.location, metadataLocation: ref.location, metadata: await readMetadataFile(io, ref.location, cache) };
    case 'directory': {
      const loc = await resolveTableDirectory(io, ref.location);
      const metadata = await readMetadataFile(io, loc, cache);
      // A copied table still names the place it was written; its files are under this directory now.
      const dir = ref.location.replace(/\/+$/, '');
      const written = metadata.location.replace(/\/+$/, '');
      if (io.relocate && !sameLocation(dir, written)) {
        io.relocate(written, dir);
        return { name: ref.location, metadataLocation: loc, metadata, relocatedFrom: written };
      }
      return { name: ref.location, metadataLocation: loc, metadata };
    }
    case 'sql': {
      const cat = SqlCatalog.connect(ref.uri, ref.catalogName);
      try {
        const row = await cat.loadTableRow(ref.identifier);
        return { name: ref.identifier, metadataLocation: row.metadataLocation, metadata: await readMetadataFile(io, row.metadataLocation, cache) };
      } finally {
        await cat.close();
      }
    }
    case 'rest': {
      const cat = new RestCatalog({ uri: ref.uri, token: ref.token, warehouse: ref.warehouse });
      const t = await cat.loadTable(ref.identifier);
      const metadata = t.metadata !== undefined && t.metadata !== null
        ? tableMetadataFromJson(t.metadata, `REST catalog metadata of ${ref.identifier}`)
        : await readMetadataFile(io, t.metadataLocation, cache);
      return { name: ref.identifier, metadataLocation: t.metadataLocation, metadata };
    }
  }
}

function stripScheme(loc: string): string {
  return loc.replace(/^file:(\/\/)?/, '');
}

function sameLocation(a: string, b: string): boolean {
  return a === b || stripScheme(a) === stripScheme(b) || path.resolve(stripScheme(a)) === stripScheme(b);
}
