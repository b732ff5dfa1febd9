import { z } from 'zod';
import { IpsError, describeError } from '../errors.js';
import { parseJsonLossless } from '../iceberg/json.js';
import { currentReadLimits, withTimeout } from '../io/limits.js';
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

  /** One GET under the remote deadline, its body bounded by the metadata size limit (a catalog answer carries table metadata). */
  private async get(path: string): Promise<unknown> {
    const url = this.opts.uri.replace(/\/+$/, '') + path;
    const limits = currentReadLimits();
    const { status, ok, text } = await withTimeout(`the REST catalog (${url})`, limits.remoteTimeoutMs, async (signal) => {
      let res: Response;
      try {
        res = await fetch(url, { signal, headers: { accept: 'application/json', ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}) } });
      } catch (e) {
        throw new IpsError('CATALOG_UNREACHABLE', `cannot reach the REST catalog at ${url}: ${describeError(e)}`, { cause: e });
      }
      const chunks: Buffer[] = [];
      let total = 0;
      if (res.body) {
        for await (const c of res.body as AsyncIterable<Uint8Array>) {
          total += c.length;
          if (total > limits.metadataBytes) {
            await res.body.cancel().catch(() => {});
            throw new IpsError('CATALOG_ERROR', `the REST catalog's answer for ${path} exceeds ${limits.metadataBytes} bytes (max_metadata_bytes)`);
          }
          chunks.push(Buffer.from(c));
        }
      }
      return { status: res.status, ok: res.ok, text: Buffer.concat(chunks, total).toString('utf8') };
    });
    if (status === 404) throw new IpsError('TABLE_NOT_FOUND', `REST catalog: not found (${path})`);
    if (status === 401 || status === 403) throw new IpsError('CATALOG_UNAUTHORIZED', `REST catalog refused the request (${status}); check --catalog-token`);
    if (!ok) throw new IpsError('CATALOG_ERROR', `REST catalog answered ${status} for ${path}`);
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
