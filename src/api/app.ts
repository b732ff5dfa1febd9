import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import {
  hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import sjson from 'secure-json-parse';
import { IpsError } from '../errors.js';
import type { IpsService } from '../service/ips-service.js';
import { Authenticator, type Principal } from './auth.js';
import type { ApiContext } from './context.js';
import { Metrics } from './metrics.js';
import { PROBLEM_CONTENT_TYPE, problem, problemFromError, type Problem } from './problem.js';
import { batchRoutes } from './routes/batches.js';
import { subscriptionRoutes } from './routes/subscriptions.js';
import type { TriggerService } from '../service/triggers.js';
import { consumerRoutes } from './routes/consumers.js';
import { tableRoutes } from './routes/tables.js';
import { backfillRoutes } from './routes/backfills.js';
import { retentionRoutes } from './routes/retention.js';
import type { RetentionService } from '../service/retention.js';
import { overviewRoutes } from './routes/overview.js';
import { consolePlugin, UI_PREFIX } from '../ui/plugin.js';
import { signalRoutes } from './routes/signals.js';
import type { Secret } from '../state/index.js';
import { restCatalogRoutes } from '../rest/routes.js';
import { icebergErrorFrom } from '../rest/errors.js';

export interface AppOptions {
  service: IpsService;
  auth: 'token' | 'none';
  adminTokens: Secret[];
  bodyLimitBytes: number;
  /** How long a verified issued token is trusted without a database lookup (default 0: never cached). */
  tokenCacheSeconds?: number;
  logLevel?: string;
  version?: string;
  metrics?: Metrics;
  /** Hosts sinks may call (exact or *.suffix); undefined: any. */
  sinkAllowedHosts?: string[] | undefined;
  /** The trigger loops of this process, poked by events; absent when they run elsewhere. */
  triggers?: TriggerService;
  /** The Iceberg REST catalog under /iceberg: whether table configs carry the source tables' S3 keys. */
  restCatalog?: { vendCredentials: boolean };
  /** Retention (bounded state): its status and a pass by hand; absent, the routes say it is not configured. */
  retention?: RetentionService;
}

declare module 'fastify' {
  interface FastifyRequest {
    ipsPrincipal: Principal | null;
  }
}

/** Fastify's own error codes, turned into our stable codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_ARGUMENT',
};

/**
 * The first key that an object of valid JSON text repeats, or null. JSON.parse keeps the last
 * one silently, so `{"scopes": ["read"], "scopes": ["admin"]}` would mean what a reviewer of the
 * request did not see: refused instead.
 */
export function duplicateJsonKey(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = (stack[stack.length - 1] ?? null) !== null;
    }
  }
  return null;
}

/** Routes anyone may call; every other routed path needs a principal (decided on the route, never on the raw URL). */
function isPublicRoute(route: string): boolean {
  // The OAuth2 token endpoint authenticates its own way (the client secret is a token); the
  // console's static files hold no data: the page calls the API with the user's token.
  return route === '/iceberg/v1/oauth/tokens' || route === '/healthz' || route === '/readyz' || route === '/metrics' || route === '/openapi.json' || route === '/docs' || route.startsWith('/docs/')
    || route === UI_PREFIX || route.startsWith(`${UI_PREFIX}/`);
}

function toProblem(err: FastifyError | Error, bodyLimit: number): Problem {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const errors = err.validation.map((v) => ({
      in: err.validationContext ?? 'body',
      path: v.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)',
      message: v.message ?? 'invalid',
    }));
    return problem('VALIDATION_FAILED',
      `invalid request ${err.validationContext ?? 'body'}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { errors });
  }
  const code = (err as FastifyError).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return problem('PAYLOAD_TOO_LARGE', `the request body is larger than ${bodyLimit} bytes`);
  if (code && FASTIFY_CODES[code]) return problem(FASTIFY_CODES[code]!, err.message);
  if (err instanceof SyntaxError) return problem('MALFORMED_JSON', `the request body is not valid JSON: ${err.message}`);
  if (err instanceof IpsError) return problemFromError(err);
  const status = (err as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500) return problem('INVALID_ARGUMENT', err.message, {}, status);
  return problemFromError(err);
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logLevel === undefined || options.logLevel === 'silent' ? false : {
      level: options.logLevel,
      // Tokens travel in headers: never log them.
      redact: ['req.headers.authorization'],
    },
    bodyLimit: options.bodyLimitBytes,
    return503OnClosing: true,
    // Iceberg REST identifiers (`<consumer>__<table>__backfill__<name>`) are longer than the
    // default 100; every param is still bounded by its route's schema.
    routerOptions: { maxParamLength: 2048 },
    // Requests the router refuses before any route (a malformed %-escape, an overlong param):
    // still our error bodies, the Iceberg REST one under /iceberg.
    frameworkErrors: (err, req, res) => {
      const reply = res as unknown as FastifyReply;
      const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      if (req.url.startsWith('/iceberg/')) {
        const e = icebergErrorFrom(err, status);
        void reply.code(e.status).type('application/json').send(e.body);
        return;
      }
      const p = problem('INVALID_ARGUMENT', err.message, {}, status);
      void reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send({ ...p, instance: req.url.slice(0, 500) });
    },
  }).withTypeProvider<ZodTypeProvider>();
  // JSON bodies as usual (prototype-poisoning keys refused), except that an empty body is no
  // body: `curl -X POST -H 'content-type: application/json' …/commit` is a reasonable call.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    let value: unknown;
    try {
      value = sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
    } catch (e) {
      return done(new IpsError('MALFORMED_JSON', `the request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
    const dup = duplicateJsonKey(text);
    if (dup !== null) return done(new IpsError('DUPLICATE_JSON_KEY', `the request body repeats the key "${dup}" in one object; send each key once`), undefined);
    done(null, value);
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const metrics = options.metrics ?? new Metrics();
  metrics.observeDatabase(options.service.state.db.stats);
  const auth = new Authenticator(options.auth, options.adminTokens, options.service.state.repos.tokens, (options.tokenCacheSeconds ?? 0) * 1000);
  app.decorateRequest('ipsPrincipal', null);
  const ctx: ApiContext = {
    service: options.service,
    metrics,
    triggers: options.triggers ?? null,
    sinkAllowedHosts: options.sinkAllowedHosts,
    retention: options.retention ?? null,
    auth,
    principal(req: FastifyRequest): Principal {
      if (!req.ipsPrincipal) throw new IpsError('UNAUTHORIZED', 'not authenticated');
      return req.ipsPrincipal;
    },
  };

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'ips',
        description: 'Incremental processing over Apache Iceberg: source tables, consumers, the ICDC step protocol (prepare → commit/abort). ' +
          'Errors are application/problem+json with a stable `code`. 64-bit values are decimal strings.',
        version: options.version ?? '0.1.0',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  // Decided on the route the router matched (its template, after the router decoded and
  // normalised the path), so no spelling of a URL (%-escapes, double slashes) reaches a handler
  // unauthenticated. Unmatched paths answer 404 from the not-found handler, which reveals nothing.
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url;
    if (route === undefined || isPublicRoute(route)) return;
    req.ipsPrincipal = await auth.authenticate(req);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const p = toProblem(err, options.bodyLimitBytes);
    p.instance = req.url;
    if (p.status >= 500) req.log.error({ err }, 'request failed');
    void reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
  });
  app.setNotFoundHandler((req, reply) => {
    const p = problem('ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}; see /docs for the API`);
    void reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send({ ...p, instance: req.url });
  });

  app.get('/healthz', { schema: { tags: ['system'], summary: 'Liveness: the process serves requests' } }, async () => ({ status: 'ok' }));
  // Anyone may ask whether ips is ready; only an admin learns which database it uses and why it
  // does not answer (a path or host name is nothing to show a load balancer's neighbours).
  const isAdmin = async (req: FastifyRequest): Promise<boolean> => {
    if (req.headers.authorization === undefined) return false;
    try {
      return (await auth.authenticate(req)).admin;
    } catch {
      return false;
    }
  };
  app.get('/readyz', { schema: { tags: ['system'], summary: 'Readiness: the state database answers (an admin token also gets which database)' } }, async (req, reply) => {
    const admin = await isAdmin(req);
    try {
      await options.service.state.db.query('SELECT 1');
      return admin ? { status: 'ready', database: options.service.state.db.description } : { status: 'ready' };
    } catch (e) {
      req.log.error({ err: e }, 'readiness check failed');
      const detail = admin ? `: ${(e as Error).message}` : '';
      return reply.code(503).type(PROBLEM_CONTENT_TYPE).send(problem('NOT_READY', `the state database does not answer${detail}`));
    }
  });
  app.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(tableRoutes(ctx));
  await app.register(consumerRoutes(ctx));
  await app.register(batchRoutes(ctx));
  await app.register(subscriptionRoutes(ctx));
  await app.register(backfillRoutes(ctx));
  await app.register(restCatalogRoutes(options.service, {
    vendCredentials: options.restCatalog?.vendCredentials ?? false,
    authenticateToken: (t) => auth.authenticateToken(t),
    principal: (req) => ctx.principal(req),
  }), { prefix: '/iceberg' });
  await app.register(retentionRoutes(ctx));
  await app.register(overviewRoutes(ctx));
  await app.register(consolePlugin());
  await app.register(signalRoutes(ctx));
  await app.ready();
  return app;
}
