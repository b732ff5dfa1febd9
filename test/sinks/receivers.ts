// Real HTTP receivers for the sink tests: node:http servers on 127.0.0.1 that check the request
// shapes of Maestro's start-workflow API and Airflow's dagRuns API (read from their source; see docs/triggers.md)
// and the webhook contract (CloudEvents 1.0 structured mode, HMAC-SHA256 signature), and answer
// like the real services do (Maestro 200 CREATED/DUPLICATED, Airflow 409 on a duplicate run id).
// They are written from those documents, not from src/sinks: a request the sink shapes wrongly
// gets the error the real service would give (400/404/422).
import crypto from 'node:crypto';
import http, { type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  /** Path and query as received (still percent-encoded). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface TestServer {
  url: string;
  port: number;
  requests: Recorded[];
  server: Server;
  close(): Promise<void>;
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(rec);
      Promise.resolve(handler(rec, res)).catch((e: unknown) => {
        if (!res.headersSent) send(res, 500, { error: String(e) });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
  res.end(text);
}

function jsonBody(req: Recorded): unknown {
  try {
    return JSON.parse(req.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// Webhook receiver: CloudEvents 1.0 structured mode, signature checked with the shared secret,
// deduplicated on the event id (409 for a repeat).

export interface WebhookReceiver {
  handler: Handler;
  events: Record<string, unknown>[];
  ids: Set<string>;
}

export function webhookReceiver(secret: string | undefined): WebhookReceiver {
  const events: Record<string, unknown>[] = [];
  const ids = new Set<string>();
  const handler: Handler = (req, res) => {
    if (req.method !== 'POST') return send(res, 405, { error: 'POST only' });
    if (req.headers['content-type'] !== 'application/cloudevents+json; charset=utf-8') return send(res, 415, { error: `content-type ${String(req.headers['content-type'])}` });
    if (secret !== undefined) {
      const expected = `sha256=${crypto.createHmac('sha256', secret).update(req.body).digest('hex')}`;
      const got = String(req.headers['x-ips-signature-256'] ?? '');
      if (got.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected))) return send(res, 401, { error: 'bad signature' });
    }
    const ev = jsonBody(req);
    if (!isObject(ev)) return send(res, 400, { error: 'not JSON' });
    // CloudEvents 1.0 required context attributes.
    for (const k of ['specversion', 'id', 'source', 'type']) if (typeof ev[k] !== 'string' || ev[k] === '') return send(res, 400, { error: `missing ${k}` });
    if (ev.specversion !== '1.0') return send(res, 400, { error: 'specversion' });
    if (req.headers['idempotency-key'] !== ev.id) return send(res, 400, { error: 'Idempotency-Key differs from the event id' });
    if (ids.has(ev.id as string)) return send(res, 409, { error: 'duplicate event' });
    ids.add(ev.id as string);
    events.push(ev);
    return send(res, 202, { accepted: ev.id });
  };
  return { handler, events, ids };
}

// ---------------------------------------------------------------------------------------------
// Maestro-like receiver: POST /api/v3/workflows/{wf}/versions/{v}/actions/start with a
// WorkflowStartRequest; run_params are ParamDefinitions; request_id dedups per workflow.

const PARAM_TYPES = ['STRING', 'LONG', 'DOUBLE', 'BOOLEAN', 'STRING_MAP', 'STRING_ARRAY', 'LONG_ARRAY', 'DOUBLE_ARRAY', 'BOOLEAN_ARRAY', 'MAP'];
const RESERVED = ['maestro', 'Maestro', 'MAESTRO', 'scheduler', 'Scheduler', 'SCHEDULER', 'util', 'Util', 'UTIL', 'params', 'Params', 'PARAMS',
  'AUTH_BLOB', 'AUTH_DATA', 'AUTH_ACTING_ON_BEHALF_OF_BLOB', 'AUTH_TRIGGERING_ON_BEHALF_OF_BLOB', 'AUTHORIZED_MANAGERS'];
const START_REQUEST_KEYS = ['initiator', 'request_time', 'request_id', 'runtime_tags', 'run_params', 'artifacts', 'persist_failed_run'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Null when `def` is a valid ParamDefinition, else why not. */
export function paramProblem(name: string, def: unknown): string | null {
  if (!isObject(def)) return `${name}: not an object`;
  const type = def.type;
  if (typeof type !== 'string' || !PARAM_TYPES.includes(type)) return `${name}: unknown type ${String(type)}`;
  if (('value' in def) === ('expression' in def)) return `${name}: value XOR expression`;
  if ('source' in def) return `${name}: users cannot set param source`;
  const v = def.value;
  const isStr = (x: unknown): boolean => typeof x === 'string';
  const isLong = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x);
  switch (type) {
    case 'STRING': return isStr(v) ? null : `${name}: STRING value must be a string`;
    case 'LONG': return isLong(v) ? null : `${name}: LONG value must be an integer`;
    case 'DOUBLE': return typeof v === 'number' ? null : `${name}: DOUBLE value`;
    case 'BOOLEAN': return typeof v === 'boolean' ? null : `${name}: BOOLEAN value`;
    case 'STRING_ARRAY': return Array.isArray(v) && v.every(isStr) ? null : `${name}: STRING_ARRAY value`;
    case 'LONG_ARRAY': return Array.isArray(v) && v.every(isLong) ? null : `${name}: LONG_ARRAY value`;
    case 'STRING_MAP': return isObject(v) && Object.values(v).every(isStr) ? null : `${name}: STRING_MAP value must map strings to strings`;
    case 'MAP': {
      if (!isObject(v)) return `${name}: MAP value must be an object`;
      for (const [k, sub] of Object.entries(v)) {
        const p = paramProblem(`${name}.${k}`, sub);
        if (p) return p;
      }
      return null;
    }
    default: return null;
  }
}

export interface MaestroReceiver {
  handler: Handler;
  /** workflow id → request ids it has instances for. */
  uuids: Map<string, Set<string>>;
  starts: Record<string, unknown>[];
  /** Answer every new start with this status instead of CREATED (e.g. STOPPED). */
  forceStatus: string | null;
}

/** Constants.JSONIFIED_PARAMS_STRING_SIZE_LIMIT. */
export const MAESTRO_PARAMS_SIZE_LIMIT = 750_000;

/** A ParamDefinition's plain value, as Maestro's evaluated_result holds it. */
function plainValue(def: Record<string, unknown>): unknown {
  if (def.type === 'MAP' && isObject(def.value)) return Object.fromEntries(Object.entries(def.value).map(([k, v]) => [k, plainValue(v as Record<string, unknown>)]));
  return def.value;
}

/**
 * The JSON Maestro's ParamEvaluator.paramsSizeCheck measures: every param evaluated, holding its
 * definition's fields, `evaluated_result` and `evaluated_time` (AbstractParameter and its typed
 * subclasses; `name` is not serialized). Workflow default params would add to it; the
 * receiver's workflows declare none.
 */
export function maestroEvaluatedParamsJson(params: Record<string, unknown>): string {
  const now = Date.now();
  return JSON.stringify(Object.fromEntries(Object.entries(params).map(([n, d]) => {
    const def = d as Record<string, unknown>;
    return [n, { ...def, evaluated_result: plainValue(def), evaluated_time: now }];
  })));
}

export function maestroReceiver(opts: { workflows: string[]; token?: string; user?: string; inactive?: string[] }): MaestroReceiver {
  const uuids = new Map<string, Set<string>>(opts.workflows.map((w) => [w, new Set<string>()]));
  const starts: Record<string, unknown>[] = [];
  let nextInstance = 1;
  const r: MaestroReceiver = {
    uuids,
    starts,
    forceStatus: null,
    handler: (req, res) => {
      const m = /^\/api\/v3\/workflows\/([^/]+)\/versions\/([^/]+)\/actions\/start$/.exec(req.url);
      if (req.method !== 'POST' || !m) return send(res, 404, { status: 404, message: `no route ${req.method} ${req.url}` });
      const wf = decodeURIComponent(m[1]!);
      const version = decodeURIComponent(m[2]!);
      if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) return send(res, 401, { status: 401, message: 'unauthorized' });
      // UserInfoInterceptor reads the caller from the "user" header; User.build() refuses a null
      // name (NullPointerException → 400 in MaestroRestExceptionHandler).
      if (req.headers.user === undefined) return send(res, 400, { status: 400, message: 'the user name cannot be null' });
      if (opts.user !== undefined && req.headers.user !== opts.user) return send(res, 403, { status: 403, message: `caller ${String(req.headers.user)} is not allowed` });
      if (!String(req.headers['content-type']).startsWith('application/json')) return send(res, 415, { status: 415, message: 'json only' });
      const known = uuids.get(wf);
      if (!known) return send(res, 404, { status: 404, message: `Cannot find workflow [${wf}] while trying to start it` });
      // MaestroWorkflowDao.deriveVersionId: no active version → MaestroNotFoundException (404).
      if (opts.inactive?.includes(wf) && version.toLowerCase() === 'active') return send(res, 404, { status: 404, message: `Cannot find an active version for workflow [${wf}]` });
      const body = jsonBody(req);
      if (!isObject(body)) return send(res, 400, { status: 400, message: 'body is not JSON' });
      const extra = Object.keys(body).filter((k) => !START_REQUEST_KEYS.includes(k));
      if (extra.length > 0) return send(res, 400, { status: 400, message: `Unrecognized field(s) ${extra.join(',')}` });
      if (!isObject(body.initiator) || String(body.initiator.type).toUpperCase() !== 'MANUAL') return send(res, 400, { status: 400, message: 'initiator' });
      if (typeof body.request_id !== 'string' || !UUID_RE.test(body.request_id)) return send(res, 400, { status: 400, message: 'request_id must be a UUID' });
      const params = body.run_params;
      if (!isObject(params)) return send(res, 400, { status: 400, message: 'run_params' });
      const names = Object.keys(params);
      if (names.length > 128) return send(res, 400, { status: 400, message: `[param definition] contain the number of params [${names.length}] more than param size limit 128` });
      const reserved = RESERVED.find((n) => names.includes(n));
      if (reserved) return send(res, 400, { status: 400, message: `[param definition] cannot use any of reserved param names - rejected value is [${reserved}]` });
      for (const [n, d] of Object.entries(params)) {
        const p = paramProblem(n, d);
        if (p) return send(res, 400, { status: 400, message: p });
      }
      const size = maestroEvaluatedParamsJson(params).length;
      if (size > MAESTRO_PARAMS_SIZE_LIMIT) return send(res, 400, { status: 400, message: `Parameters' total size [${size}] is larger than system limit [${MAESTRO_PARAMS_SIZE_LIMIT}]` });
      starts.push(body);
      if (known.has(body.request_id)) {
        return send(res, 200, { workflow_id: wf, workflow_version_id: 1, workflow_instance_id: 0, workflow_run_id: 0, workflow_uuid: body.request_id, status: 'DUPLICATED' });
      }
      known.add(body.request_id);
      const iid = nextInstance++;
      return send(res, 200, { workflow_id: wf, workflow_version_id: 1, workflow_instance_id: iid, workflow_run_id: 1, workflow_uuid: body.request_id, status: r.forceStatus ?? 'CREATED' });
    },
  };
  return r;
}

// ---------------------------------------------------------------------------------------------
// Airflow-like receiver: v1 (Airflow 2) and v2 (Airflow 3) dagRuns; dag_run_id unique per DAG
// (409 on a repeat); v2's TriggerDAGRunPostBody rejects unknown keys and a missing logical_date.

const V2_KEYS = ['dag_run_id', 'logical_date', 'data_interval_start', 'data_interval_end', 'run_after', 'conf', 'note'];
const V1_KEYS = ['dag_run_id', 'logical_date', 'execution_date', 'data_interval_start', 'data_interval_end', 'conf', 'note'];
const RUN_ID_RE = /^[A-Za-z0-9_.~:+-]+$/;

export interface AirflowReceiver {
  handler: Handler;
  /** dag → dag_run_id → conf */
  runs: Map<string, Map<string, unknown>>;
  /** Answer every POST with 409 without creating a run (a logical-date clash). */
  clashAlways: boolean;
  tokensIssued: number;
  /** Issued JWTs expire: Airflow 3 answers 401 "Token Expired" for them. */
  expireTokens(): void;
  /**
   * The API server restarts with another `[api_auth] jwt_secret`: issued JWTs no longer verify,
   * and Airflow 3 answers 403 "Invalid JWT token" for them (api_fastapi/core_api/security.py).
   */
  rotateJwtSecret(): void;
}

export function airflowReceiver(opts: {
  api: 'v1' | 'v2';
  dags: string[];
  basic?: { username: string; password: string };
  bearer?: string;
  /** /auth/token issues JWTs for these credentials. */
  jwtFor?: { username: string; password: string };
}): AirflowReceiver {
  const runs = new Map<string, Map<string, unknown>>(opts.dags.map((d) => [d, new Map()]));
  // Issued JWTs and what became of them: 'valid', 'expired', or 'foreign' (signed with a secret
  // the server no longer has). An unknown bearer is a token it cannot verify at all.
  const jwts = new Map<string, 'valid' | 'expired' | 'foreign'>();
  const r: AirflowReceiver = {
    runs,
    clashAlways: false,
    tokensIssued: 0,
    expireTokens: () => {
      for (const [t, st] of jwts) if (st === 'valid') jwts.set(t, 'expired');
    },
    rotateJwtSecret: () => {
      for (const t of jwts.keys()) jwts.set(t, 'foreign');
    },
    handler: (req, res) => {
      if (req.url === '/auth/token' && req.method === 'POST') {
        const b = jsonBody(req);
        if (!opts.jwtFor) return send(res, 404, { detail: 'Not Found' });
        if (!isObject(b) || b.username !== opts.jwtFor.username || b.password !== opts.jwtFor.password) return send(res, 401, { detail: 'Invalid credentials' });
        const t = `jwt-${crypto.randomBytes(12).toString('hex')}`;
        jwts.set(t, 'valid');
        r.tokensIssued++;
        return send(res, 201, { access_token: t });
      }
      const m = /^\/api\/(v1|v2)\/dags\/([^/]+)\/dagRuns(?:\/([^/]+))?$/.exec(req.url);
      if (!m || m[1] !== opts.api) return send(res, 404, { detail: 'Not Found' });
      const auth = req.headers.authorization;
      if (opts.api === 'v2' && opts.jwtFor && auth?.startsWith('Bearer ') && auth.slice(7) !== opts.bearer) {
        // Airflow 3: every bearer is a JWT; expired → 401, not verifiable → 403.
        const st = jwts.get(auth.slice(7));
        if (st === 'expired') return send(res, 401, { detail: 'Token Expired' });
        if (st !== 'valid') return send(res, 403, { detail: 'Invalid JWT token' });
      }
      const authorized =
        (opts.basic && auth === `Basic ${Buffer.from(`${opts.basic.username}:${opts.basic.password}`).toString('base64')}`) ||
        (opts.bearer && auth === `Bearer ${opts.bearer}`) ||
        (opts.jwtFor && auth?.startsWith('Bearer ') && jwts.get(auth.slice(7)) === 'valid') ||
        (!opts.basic && !opts.bearer && !opts.jwtFor);
      if (!authorized) return send(res, 401, { detail: 'Not authenticated' });
      const dag = decodeURIComponent(m[2]!);
      const dagRuns = runs.get(dag);
      if (!dagRuns) return send(res, 404, { detail: `The Dag with ID: \`${dag}\` was not found` });
      if (m[3] !== undefined) {
        if (req.method !== 'GET') return send(res, 405, { detail: 'Method Not Allowed' });
        const id = decodeURIComponent(m[3]);
        if (!dagRuns.has(id)) return send(res, 404, { detail: `The DagRun with dag_id: \`${dag}\` and run_id: \`${id}\` was not found` });
        return send(res, 200, { dag_run_id: id, dag_id: dag, state: 'queued', conf: dagRuns.get(id) });
      }
      if (req.method !== 'POST') return send(res, 405, { detail: 'Method Not Allowed' });
      if (!String(req.headers['content-type']).startsWith('application/json')) return send(res, 415, { detail: 'json only' });
      const b = jsonBody(req);
      if (!isObject(b)) return send(res, 400, { detail: 'body is not JSON' });
      const allowed = opts.api === 'v2' ? V2_KEYS : V1_KEYS;
      const extra = Object.keys(b).filter((k) => !allowed.includes(k));
      if (extra.length > 0) return send(res, opts.api === 'v2' ? 422 : 400, { detail: extra.map((k) => ({ type: 'extra_forbidden', loc: ['body', k], msg: 'Extra inputs are not permitted' })) });
      if (opts.api === 'v2' && !('logical_date' in b)) return send(res, 422, { detail: [{ type: 'missing', loc: ['body', 'logical_date'], msg: 'Field required' }] });
      if (opts.api === 'v2' && b.logical_date !== null && typeof b.logical_date !== 'string') return send(res, 422, { detail: [{ type: 'datetime_type', loc: ['body', 'logical_date'] }] });
      if (b.conf !== undefined && !isObject(b.conf)) return send(res, 400, { detail: 'conf must be an object' });
      const id = b.dag_run_id;
      if (typeof id !== 'string' || id.length > 250 || !RUN_ID_RE.test(id)) return send(res, 400, { detail: `The run_id provided '${String(id)}' does not match regex pattern '^[A-Za-z0-9_.~:+-]+$'` });
      if (r.clashAlways) return send(res, 409, { detail: 'Unique constraint violation', statement: 'INSERT INTO dag_run …' });
      if (dagRuns.has(id)) {
        return send(res, 409, opts.api === 'v2'
          ? { detail: { reason: 'Unique constraint violation', statement: 'INSERT INTO dag_run …' } }
          : { title: 'Conflict', detail: `DAGRun with DAG ID: '${dag}' and DAGRun ID: '${id}' already exists`, status: 409 });
      }
      dagRuns.set(id, b.conf);
      return send(res, 200, { dag_run_id: id, dag_id: dag, state: 'queued', logical_date: null, conf: b.conf });
    },
  };
  return r;
}
