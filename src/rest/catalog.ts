import crypto from 'node:crypto';
import { IpsError } from '../errors.js';
import { parseTableMetadata } from '../iceberg/metadata.js';
import { stringifyJsonLossless } from '../iceberg/json.js';
import type { IpsService } from '../service/ips-service.js';
import type { IcdcTableRow, SourceTable } from '../state/index.js';
import type { Principal } from '../api/auth.js';

/**
 * The read-only Iceberg REST catalog of the ICDC tables: what each route answers, apart from
 * HTTP. Namespace `icdc` holds every ICDC table a batch was handed out on (live and backfill),
 * at its newest batch's metadata file; namespace `sources` the registered source tables, at
 * their current metadata. An admin sees all of them; a consumer's token only its own ICDC tables
 * and the source tables it subscribes to, and any other name is simply not there (404, the same
 * as a name nobody has).
 */
export const ICDC_NAMESPACE = 'icdc';
/** The registered source tables, read-only like everything here. */
export const SOURCES_NAMESPACE = 'sources';
const NAMESPACES = [ICDC_NAMESPACE, SOURCES_NAMESPACE];
/** The one warehouse, advertised as the `prefix` override of /v1/config. */
export const WAREHOUSE = 'ips';

/** What an engine needs to open the files of a table: FileIO properties (Java and PyIceberg names). */
export interface RestCatalogOptions {
  /** Hand out the source table's S3 keys in the table's `config` (off by default: engines use their own credentials). */
  vendCredentials: boolean;
}

export interface LoadedRestTable {
  metadataLocation: string;
  /** The metadata file's own text (valid JSON, 64-bit ids exact), embedded as the `metadata` member. */
  metadataText: string;
  config: Record<string, string>;
  etag: string;
}

/** Identifiers are bounded before they reach the database (names are at most 200+2+200+12+200 characters). */
const MAX_NAME = 1000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function noSuchNamespace(ns: string[]): IpsError {
  const shown = ns.join('.').slice(0, 200);
  return new IpsError('NO_SUCH_NAMESPACE', `Namespace does not exist: ${shown}; this catalog's namespaces are "${ICDC_NAMESPACE}" and "${SOURCES_NAMESPACE}"`);
}

export function noSuchTable(ns: string[], name: string): IpsError {
  return new IpsError('NO_SUCH_TABLE', `Table does not exist: ${ns.join('.').slice(0, 200)}.${name.slice(0, 300)}; list the tables your token may read with GET …/namespaces/${ICDC_NAMESPACE}/tables`);
}

/** A namespace path parameter: levels separated by 0x1F (the spec's default separator). */
export function parseNamespace(raw: string): string[] {
  if (raw.length === 0 || raw.length > MAX_NAME) throw noSuchNamespace([raw]);
  return raw.split('\x1f');
}

export class IcdcRestCatalog {
  constructor(private readonly service: IpsService, private readonly options: RestCatalogOptions) {}

  /** Top-level namespaces (there are no nested ones). */
  listNamespaces(parent: string[] | null): string[][] {
    if (parent === null) return NAMESPACES.map((n) => [n]);
    this.requireNamespace(parent);
    return [];
  }

  /** The namespace's one level, or NoSuchNamespace. */
  requireNamespace(ns: string[]): string {
    if (ns.length !== 1 || !NAMESPACES.includes(ns[0]!)) throw noSuchNamespace(ns);
    return ns[0]!;
  }

  /** The source tables this principal may see, by name. */
  private async sourceNames(p: Principal): Promise<string[]> {
    if (p.admin) return (await this.service.state.repos.sourceTables.list()).map((t) => t.name).sort();
    if (p.consumer === null) return [];
    return [...new Set((await this.service.state.repos.watermarks.listByConsumer(p.consumer)).map((w) => w.sourceTable))].sort();
  }

  private visibleTo(p: Principal): string | null {
    if (p.admin) return null;
    // A token with neither scope sees nothing: a name no consumer can have (names never hold spaces).
    return p.consumer ?? ' no consumer ';
  }

  async listTables(p: Principal, ns: string[], page: { token: string | null; size: number }): Promise<{ names: string[]; next: string | null }> {
    if (this.requireNamespace(ns) === SOURCES_NAMESPACE) {
      const all = (await this.sourceNames(p)).filter((n) => page.token === null || n > page.token);
      const names = all.slice(0, page.size);
      return { names, next: all.length > page.size ? names.at(-1) ?? null : null };
    }
    const rows = await this.service.state.repos.icdcTables.list({ consumer: this.visibleTo(p), after: page.token, limit: page.size + 1 });
    const names = rows.slice(0, page.size).map((r) => r.name);
    return { names, next: rows.length > page.size ? names.at(-1) ?? null : null };
  }

  private async row(p: Principal, ns: string[], name: string): Promise<IcdcTableRow> {
    // A table in a namespace that does not exist is a table that does not exist: Iceberg Java
    // catalogs say NoSuchTable there, and Spark relies on it to try `ns.table.snapshots` as the
    // metadata table `snapshots` of `ns.table` after the table `snapshots` in namespace `ns.table`.
    if (ns.length !== 1 || ns[0] !== ICDC_NAMESPACE) throw noSuchTable(ns, name);
    if (name.length > MAX_NAME || !NAME.test(name)) throw noSuchTable(ns, name);
    const row = await this.service.state.repos.icdcTables.get(name, this.visibleTo(p));
    if (!row) throw noSuchTable(ns, name);
    return row;
  }

  private async sourceTable(p: Principal, ns: string[], name: string): Promise<SourceTable> {
    if (name.length > MAX_NAME || !NAME.test(name) || !(await this.sourceNames(p)).includes(name)) throw noSuchTable(ns, name);
    const t = await this.service.state.repos.sourceTables.get(name);
    if (!t) throw noSuchTable(ns, name);
    return t;
  }

  private isSources(ns: string[]): boolean {
    return ns.length === 1 && ns[0] === SOURCES_NAMESPACE;
  }

  async exists(p: Principal, ns: string[], name: string): Promise<void> {
    if (this.isSources(ns)) await this.sourceTable(p, ns, name);
    else await this.row(p, ns, name);
  }

  /**
   * A source table at its current metadata, as ips loads it (metadata file, directory, SQL or
   * REST catalog). One ips reads through a relocation is refused: its metadata names files
   * where they no longer are, so an engine could not open them.
   */
  private async loadSource(p: Principal, ns: string[], name: string): Promise<LoadedRestTable> {
    const source = await this.sourceTable(p, ns, name);
    const loaded = await this.service.load(source);
    if (loaded.relocatedFrom !== undefined) {
      throw new IpsError('TABLE_RELOCATED', `source table ${name} was written at ${loaded.relocatedFrom} and is read elsewhere; its metadata names files an engine cannot open there, so it is not served (its ICDC tables are: they name the files where ips reads them)`);
    }
    return {
      metadataLocation: loaded.metadataLocation,
      // Re-serialised losslessly (a gzipped metadata file has no text to pass on); 64-bit ids stay exact.
      metadataText: stringifyJsonLossless(loaded.metadata.raw),
      config: this.fileIOConfig(source, loaded.metadataLocation),
      etag: `"${crypto.createHash('sha256').update(loaded.metadataLocation).digest('hex').slice(0, 32)}"`,
    };
  }

  async load(p: Principal, ns: string[], name: string): Promise<LoadedRestTable> {
    if (this.isSources(ns)) return this.loadSource(p, ns, name);
    const row = await this.row(p, ns, name);
    const source = await this.service.state.repos.sourceTables.require(row.sourceTable);
    // The ICDC table was written through its source table's FileIO: read it back the same way.
    const io = this.service.ioFor(source);
    const text = (await io.read(row.metadataLocation, 'metadata')).toString('utf8');
    const md = parseTableMetadata(text, row.metadataLocation); // only metadata ips can read goes out (and it is JSON)
    // ICDC names are `<consumer>__<table>`, so consumer `a__b` of table `c` and consumer `a` of
    // table `b__c` would share one: a consumer token is only ever served a snapshot ips wrote for it.
    const head = md.snapshots.find((x) => x.snapshotId === md.currentSnapshotId);
    const writtenFor = head?.summary['ips.consumer'];
    if (!p.admin && writtenFor !== undefined && writtenFor !== p.consumer) throw noSuchTable(ns, name);
    return {
      metadataLocation: row.metadataLocation,
      metadataText: text,
      config: this.fileIOConfig(source, row.metadataLocation),
      etag: `"${crypto.createHash('sha256').update(row.metadataLocation).digest('hex').slice(0, 32)}"`,
    };
  }

  /**
   * FileIO properties for a table on S3: endpoint, region and addressing style in the names
   * Iceberg Java (S3FileIO, AwsClientProperties) and PyIceberg read; keys only when configured
   * to vend them. Local tables need nothing.
   */
  fileIOConfig(source: SourceTable, location: string): Record<string, string> {
    if (!/^s3[an]?:\/\//.test(location)) return {};
    const out: Record<string, string> = {};
    const s3 = source.s3;
    if (s3?.endpoint) out['s3.endpoint'] = s3.endpoint;
    if (s3?.region) {
      out['client.region'] = s3.region;
      out['s3.region'] = s3.region;
    }
    const pathStyle = s3?.pathStyle ?? (s3?.endpoint ? true : null);
    if (pathStyle !== null) {
      out['s3.path-style-access'] = String(pathStyle);
      out['s3.force-virtual-addressing'] = String(!pathStyle);
    }
    if (this.options.vendCredentials && s3?.accessKeyId && s3.secretAccessKey) {
      out['s3.access-key-id'] = s3.accessKeyId;
      out['s3.secret-access-key'] = s3.secretAccessKey.reveal();
      if (s3.sessionToken) out['s3.session-token'] = s3.sessionToken.reveal();
    }
    return out;
  }
}
