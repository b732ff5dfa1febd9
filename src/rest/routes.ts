import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { IpsError } from '../errors.js';
import type { Principal } from '../api/auth.js';
import { ICDC_NAMESPACE, IcdcRestCatalog, WAREHOUSE, parseNamespace, type RestCatalogOptions } from './catalog.js';
import { icebergError, icebergErrorFrom } from './errors.js';

/**
 * The Iceberg REST catalog routes (apache/iceberg open-api/rest-catalog-open-api.yaml), mounted
 * under `/iceberg`: an engine's catalog `uri` is `http://ips:8742/iceberg`. Read-only: every
 * write route of the spec answers 406 UnsupportedOperationException, and /v1/config advertises
 * only the read endpoints, so Iceberg Java refuses writes before sending them. Errors are the
 * spec's `IcebergErrorResponse`, never problem+json. Authentication is the API's (bearer tokens,
 * decided by the app's onRequest hook); the deprecated OAuth2 token endpoint exchanges an ips
 * token given as client secret for itself, for clients configured with `credential`.
 */
export interface RestRoutesOptions extends RestCatalogOptions {
  /** Authenticates a token given in the OAuth2 client-credentials flow (the API's Authenticator). */
  authenticateToken: (token: string) => Promise<Principal>;
  /** The principal the app's hook authenticated. */
  principal: (req: FastifyRequest) => Principal;
}

/** The endpoints served, in the spec's notation: clients call nothing else. */
export const ENDPOINTS = [
  'GET /v1/{prefix}/namespaces',
  'GET /v1/{prefix}/namespaces/{namespace}',
  'HEAD /v1/{prefix}/namespaces/{namespace}',
  'GET /v1/{prefix}/namespaces/{namespace}/tables',
  'GET /v1/{prefix}/namespaces/{namespace}/tables/{table}',
  'HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}',
];

/** Write routes of the spec, all refused. */
const WRITES: [method: 'POST' | 'DELETE', path: string, what: string][] = [
  ['POST', '/namespaces', 'create a namespace'],
  ['DELETE', '/namespaces/:namespace', 'drop a namespace'],
  ['POST', '/namespaces/:namespace/properties', 'update namespace properties'],
  ['POST', '/namespaces/:namespace/tables', 'create a table'],
  ['POST', '/namespaces/:namespace/register', 'register a table'],
  ['POST', '/namespaces/:namespace/tables/:table', 'commit to a table'],
  ['DELETE', '/namespaces/:namespace/tables/:table', 'drop a table'],
  ['POST', '/namespaces/:namespace/tables/:table/metrics', 'report metrics'],
  ['POST', '/namespaces/:namespace/tables/:table/plan', 'plan a scan on the server'],
  ['POST', '/tables/rename', 'rename a table'],
  ['POST', '/transactions/commit', 'commit a transaction'],
  ['POST', '/namespaces/:namespace/views', 'create a view'],
  ['POST', '/namespaces/:namespace/views/:view', 'replace a view'],
  ['DELETE', '/namespaces/:namespace/views/:view', 'drop a view'],
  ['POST', '/views/rename', 'rename a view'],
  ['POST', '/namespaces/:namespace/register-view', 'register a view'],
];

const TAG = 'iceberg-rest';
const PAGE_MAX = 1000;
/** Without pageSize a client gets everything (older clients do not page). */
const PAGE_DEFAULT = 100_000;
const BOUNDED = z.string().max(1000);
const NAMEISH = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,999}$/;

const prefixParams = z.object({ prefix: BOUNDED });
const nsParams = prefixParams.extend({ namespace: BOUNDED });
const tableParams = nsParams.extend({ table: BOUNDED });
const viewParams = nsParams.extend({ view: BOUNDED });
const pageQuery = z.object({
  pageToken: BOUNDED.optional(),
  pageSize: z.coerce.number().int().min(1).max(PAGE_MAX).optional(),
});
const loadQuery = z.object({ snapshots: z.enum(['all', 'refs']).optional() });

function requirePrefix(prefix: string): void {
  if (prefix !== WAREHOUSE) {
    throw new IpsError('NO_SUCH_WAREHOUSE', `unknown prefix "${prefix.slice(0, 100)}": this catalog's only warehouse is "${WAREHOUSE}" (the prefix GET /v1/config hands out)`);
  }
}

function page(q: z.infer<typeof pageQuery>): { token: string | null; size: number } {
  if (q.pageToken !== undefined && q.pageToken !== '' && !NAMEISH.test(q.pageToken)) {
    throw new IpsError('INVALID_ARGUMENT', 'pageToken is not one this catalog handed out: pass next-page-token of the previous page unchanged');
  }
  return { token: q.pageToken ? q.pageToken : null, size: q.pageSize ?? PAGE_DEFAULT };
}

function sendError(reply: FastifyReply, e: { status: number; body: unknown }): FastifyReply {
  return reply.code(e.status).type('application/json').send(e.body);
}

export function restCatalogRoutes(service: ConstructorParameters<typeof IcdcRestCatalog>[0], options: RestRoutesOptions): FastifyPluginAsyncZod {
  const catalog = new IcdcRestCatalog(service, options);
  return async (app) => {
    app.setErrorHandler((err: FastifyError, req, reply) => {
      const e = hasZodFastifySchemaValidationErrors(err)
        ? icebergError('VALIDATION_FAILED', `invalid request ${err.validationContext ?? ''}: ${err.validation.map((v) => `${v.instancePath || '(root)'} ${v.message ?? 'invalid'}`).join('; ')}`)
        : icebergErrorFrom(err, err.statusCode);
      if (e.status >= 500) req.log.error({ err }, 'iceberg REST request failed');
      // A HEAD answer has no body: the status says it all.
      if (req.method === 'HEAD') return reply.code(e.status).send();
      return sendError(reply, e);
    });
    app.setNotFoundHandler((req, reply) => sendError(reply,
      icebergError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 300)} in the Iceberg REST catalog; GET /iceberg/v1/config lists the endpoints`)));
    // The deprecated OAuth2 endpoint takes a form body.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(typeof body === 'string' ? body : body.toString('utf8'))));
    });

    app.get('/v1/config', {
      schema: { tags: [TAG], summary: 'Iceberg REST: catalog configuration (prefix and the endpoints served)', querystring: z.object({ warehouse: BOUNDED.optional() }) },
    }, async (req) => {
      const w = req.query.warehouse;
      if (w !== undefined && w !== '' && w !== WAREHOUSE) {
        throw new IpsError('NO_SUCH_WAREHOUSE', `unknown warehouse "${w.slice(0, 100)}": this catalog has one, "${WAREHOUSE}" (or leave warehouse unset)`);
      }
      return { defaults: {}, overrides: { prefix: WAREHOUSE }, endpoints: ENDPOINTS };
    });

    app.post('/v1/oauth/tokens', {
      schema: { tags: [TAG], summary: 'Iceberg REST (deprecated OAuth2): exchange client credentials (the secret is an ips token) for a bearer token' },
    }, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const oauthError = (status: number, error: string, description: string) =>
        reply.code(status).type('application/json').send({ error, error_description: description });
      if (body['grant_type'] !== 'client_credentials') {
        return oauthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported; the client secret is an ips token (or send the token itself as a bearer token)');
      }
      const secret = body['client_secret'];
      if (typeof secret !== 'string' || secret.length === 0 || secret.length > 1000) return oauthError(400, 'invalid_request', 'client_secret (an ips token) is required');
      try {
        await options.authenticateToken(secret);
      } catch {
        return oauthError(401, 'invalid_client', 'the client secret is not a valid ips token');
      }
      return { access_token: secret, token_type: 'bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
    });

    app.get('/v1/:prefix/namespaces', {
      schema: { tags: [TAG], summary: 'Iceberg REST: list namespaces', params: prefixParams, querystring: pageQuery.extend({ parent: BOUNDED.optional() }) },
    }, async (req) => {
      requirePrefix(req.params.prefix);
      page(req.query);
      const parent = req.query.parent === undefined || req.query.parent === '' ? null : parseNamespace(req.query.parent);
      return { namespaces: catalog.listNamespaces(parent), 'next-page-token': null };
    });

    app.get('/v1/:prefix/namespaces/:namespace', {
      exposeHeadRoute: false,
      schema: { tags: [TAG], summary: 'Iceberg REST: load a namespace', params: nsParams },
    }, async (req) => {
      requirePrefix(req.params.prefix);
      const ns = parseNamespace(req.params.namespace);
      const comment = catalog.requireNamespace(ns) === ICDC_NAMESPACE
        ? 'ICDC tables served by ips: one per consumer and source table (and per backfill), at the newest batch'
        : 'the source tables registered in ips, read-only, at their current metadata';
      return { namespace: ns, properties: { comment } };
    });

    app.head('/v1/:prefix/namespaces/:namespace', {
      schema: { tags: [TAG], summary: 'Iceberg REST: whether a namespace exists', params: nsParams },
    }, async (req, reply) => {
      requirePrefix(req.params.prefix);
      catalog.requireNamespace(parseNamespace(req.params.namespace));
      return reply.code(204).send();
    });

    app.get('/v1/:prefix/namespaces/:namespace/tables', {
      schema: { tags: [TAG], summary: 'Iceberg REST: list the tables of a namespace (a consumer token sees its own ICDC tables)', params: nsParams, querystring: pageQuery },
    }, async (req) => {
      requirePrefix(req.params.prefix);
      const ns = parseNamespace(req.params.namespace);
      const r = await catalog.listTables(options.principal(req), ns, page(req.query));
      return { identifiers: r.names.map((name) => ({ namespace: ns, name })), 'next-page-token': r.next };
    });

    app.get('/v1/:prefix/namespaces/:namespace/tables/:table', {
      exposeHeadRoute: false,
      schema: { tags: [TAG], summary: 'Iceberg REST: load a table (metadata-location, metadata, FileIO config)', params: tableParams, querystring: loadQuery },
    }, async (req, reply) => {
      requirePrefix(req.params.prefix);
      const t = await catalog.load(options.principal(req), parseNamespace(req.params.namespace), req.params.table);
      if (req.headers['if-none-match'] === t.etag) return reply.code(304).header('etag', t.etag).send();
      // The metadata file's own text goes out verbatim: 64-bit ids stay exact, nothing re-serialised.
      const body = `{"metadata-location":${JSON.stringify(t.metadataLocation)},"metadata":${t.metadataText},"config":${JSON.stringify(t.config)}}`;
      return reply.header('etag', t.etag).type('application/json').send(body);
    });

    app.head('/v1/:prefix/namespaces/:namespace/tables/:table', {
      schema: { tags: [TAG], summary: 'Iceberg REST: whether a table exists', params: tableParams },
    }, async (req, reply) => {
      requirePrefix(req.params.prefix);
      await catalog.exists(options.principal(req), parseNamespace(req.params.namespace), req.params.table);
      return reply.code(204).send();
    });

    // Views: there are none (not advertised; answered for clients that ask anyway).
    app.get('/v1/:prefix/namespaces/:namespace/views', {
      schema: { tags: [TAG], summary: 'Iceberg REST: list views (there are none)', params: nsParams, querystring: pageQuery },
    }, async (req) => {
      requirePrefix(req.params.prefix);
      page(req.query);
      catalog.requireNamespace(parseNamespace(req.params.namespace));
      return { identifiers: [], 'next-page-token': null };
    });
    app.get('/v1/:prefix/namespaces/:namespace/views/:view', {
      exposeHeadRoute: false,
      schema: { tags: [TAG], summary: 'Iceberg REST: load a view (there are none)', params: viewParams },
    }, async (req) => {
      requirePrefix(req.params.prefix);
      const ns = parseNamespace(req.params.namespace);
      catalog.requireNamespace(ns);
      throw new IpsError('NO_SUCH_VIEW', `View does not exist: ${ICDC_NAMESPACE}.${req.params.view.slice(0, 300)}; ips serves tables only`);
    });

    for (const [method, path, what] of WRITES) {
      app.route({
        method, url: `/v1/:prefix${path}`,
        schema: { tags: [TAG], summary: `Iceberg REST: ${what} (refused: the catalog is read-only)` },
        handler: async () => {
          throw new IpsError('UNSUPPORTED_OPERATION',
            `ips serves its ICDC tables read-only: cannot ${what}. ips writes each batch's ICDC snapshot itself; write your results to your own catalog`);
        },
      });
    }
  };
}
