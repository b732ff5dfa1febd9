import { z } from 'zod';
import { IpsError, describeError } from '../errors.js';
import { parseJsonLossless } from '../iceberg/json.js';
import { splitIdentifier } from './sql-catalog.js';

/**
 * Iceberg REST catalog client: just enough to load a table (GET /v1/config for the prefix,
 * then GET /v1/{prefix}/namespaces/{ns}/tables/{table}).
 */
export interface RestCatalogOptions {
  uri: string;
  token?: string | undefined;
  warehouse?: string | undefined;
}

const configJson = z.object({ defaults: z.record(z.string(), z.string()).optional(), overrides: z.record(z.string(), z.string()).optional() }).loose();
const loadJson = z.object({ 'metadata-location': z.string().optional().nullable(), metadata: z.unknown() }).loose();

export class RestCatalog {
  private prefix: string | undefined;

  constructor(private readonly opts: RestCatalogOptions) {}

  private async get(path: string): Promise<unknown> {
    const url = this.opts.uri.replace(/\/+$/, '') + path;
    let res: Response;
    try {
      res = await fetch(url, { headers: { accept: 'application/json', ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}) } });
    } catch (e) {
      throw new IpsError('CATALOG_UNREACHABLE', `cannot reach the REST catalog at ${url}: ${describeError(e)}`, { cause: e });
    }
    const text = await res.text();
    if (res.status === 404) throw new IpsError('TABLE_NOT_FOUND', `REST catalog: not found (${path})`);
    if (res.status === 401 || res.status === 403) throw new IpsError('CATALOG_UNAUTHORIZED', `REST catalog refused the request (${res.status}); check --catalog-token`);
    if (!res.ok) throw new IpsError('CATALOG_ERROR', `REST catalog answered ${res.status} for ${path}: ${text.slice(0, 300)}`);
    return parseJsonLossless(text, `REST catalog response for ${path}`);
  }

  private async resolvePrefix(): Promise<string> {
    if (this.prefix !== undefined) return this.prefix;
    const q = this.opts.warehouse ? `?warehouse=${encodeURIComponent(this.opts.warehouse)}` : '';
    const cfg = configJson.parse(await this.get(`/v1/config${q}`));
    const p = cfg.overrides?.['prefix'] ?? cfg.defaults?.['prefix'];
    this.prefix = p ? `/${p.replace(/^\/+|\/+$/g, '')}` : '';
    return this.prefix;
  }

  /** Returns the metadata location and the metadata JSON text the catalog sent. */
  async loadTable(identifier: string): Promise<{ metadataLocation: string; metadata: unknown }> {
    const { namespace, table } = splitIdentifier(identifier);
    const prefix = await this.resolvePrefix();
    // Multi-level namespaces are joined with the unit separator (0x1F) in the path.
    const ns = encodeURIComponent(namespace.split('.').join('\u001f'));
    const body = loadJson.parse(await this.get(`/v1${prefix}/namespaces/${ns}/tables/${encodeURIComponent(table)}`));
    if (!body['metadata-location']) throw new IpsError('CATALOG_ERROR', `REST catalog returned no metadata-location for ${identifier}`);
    return { metadataLocation: body['metadata-location'], metadata: body.metadata };
  }
}
