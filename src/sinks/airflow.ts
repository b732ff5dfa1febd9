import { describeSinkConfig, revealHeaders, secretsOf, targetUrl, type AirflowSinkConfig } from './config.js';
import { excerpt, httpRequest, joinPath, parseJsonBody, statusError, type HttpContext, type HttpResponse } from './http.js';
import { airflowRunId, payloadToJson, stringifyJson, type TriggerPayloadJson } from './payload.js';
import { SinkError, type DeliverOptions, type DeliveryResult, type Sink, type TriggerPayload } from './types.js';

/**
 * Apache Airflow: triggers a DAG run per trigger.
 *
 *   POST <url>/api/v1/dags/<dag_id>/dagRuns   (Airflow 2 stable API, api: "v1")
 *     { "dag_run_id": airflowRunId(p), "conf": { <the payload, snake_case> } }
 *   POST <url>/api/v2/dags/<dag_id>/dagRuns   (Airflow 3 public API, api: "v2", the default)
 *     { "dag_run_id": …, "logical_date": null, "conf": { … } }
 *
 * Airflow 3's body model rejects unknown keys and requires the `logical_date` key; null keeps
 * runs from colliding on logical dates. Airflow 2 sets the logical date to now.
 *
 * Credentials: `token` → `Authorization: Bearer <token>`. `username`/`password` → HTTP basic
 * auth for v1; for v2 (Airflow 3 only accepts JWTs) the sink first gets a token from
 * `POST <url>/auth/token` `{username, password}` (the simple, FAB and Keycloak auth managers),
 * keeps it, and gets a new one once when a request answers 401 or 403: Airflow 3 answers 401
 * "Token Expired" for an expired JWT and 403 "Invalid JWT token" for one whose signature it
 * cannot check (an API server restarted with another `[api_auth] jwt_secret`, or none shared
 * between API servers). A 403 that a fresh token does not cure is a missing permission.
 * A static `token` on Airflow 3 is such a JWT too: it expires (`[api_auth] jwt_expiration_time`,
 * 24 h by default) and cannot be renewed by the sink, so use username/password with api "v2".
 *
 * Answers: 200/201 → started (runId = dag_run_id). 409 → the sink reads
 * `GET …/dagRuns/<dag_run_id>`: found → duplicate (a redelivery of a trigger that already
 * started its run); not found → retryable (the 409 was another clash, e.g. Airflow 2's logical
 * date). 408/425/429/5xx, network errors, timeouts → retryable; 400/401/403/404/422 and others →
 * non-retryable with what to fix.
 */

export interface AirflowTriggerBody {
  dag_run_id: string;
  logical_date?: null;
  conf: TriggerPayloadJson;
}

export function airflowTriggerBody(p: TriggerPayload, api: 'v1' | 'v2'): AirflowTriggerBody {
  const conf = payloadToJson(p);
  return api === 'v2' ? { dag_run_id: airflowRunId(p), logical_date: null, conf } : { dag_run_id: airflowRunId(p), conf };
}

export class AirflowSink implements Sink {
  readonly type = 'airflow' as const;
  /** The JWT from /auth/token (v2 with username/password). */
  #jwt: string | null = null;

  constructor(
    private readonly config: AirflowSinkConfig,
    private readonly timeoutMs: number,
  ) {}

  describe(): Record<string, unknown> {
    return describeSinkConfig(this.config);
  }

  dagRunsUrl(runId?: string): URL {
    const segs = ['api', this.config.api, 'dags', this.config.dag_id, 'dagRuns'];
    return joinPath(this.config.url, runId === undefined ? segs : [...segs, runId]);
  }

  private context(opts?: DeliverOptions): HttpContext {
    const secrets = secretsOf(this.config);
    return { label: 'airflow', timeoutMs: this.timeoutMs, signal: opts?.signal, secrets: this.#jwt ? [...secrets, this.#jwt] : secrets };
  }

  private usesJwtExchange(): boolean {
    return this.config.api === 'v2' && this.config.username !== undefined && this.config.password !== undefined;
  }

  private async authorization(opts: DeliverOptions | undefined, fresh: boolean): Promise<string | undefined> {
    const c = this.config;
    if (c.token !== undefined) return `Bearer ${c.token.reveal()}`;
    if (c.username === undefined || c.password === undefined) return undefined;
    if (c.api === 'v1') return `Basic ${Buffer.from(`${c.username}:${c.password.reveal()}`).toString('base64')}`;
    if (this.#jwt === null || fresh) this.#jwt = await this.fetchJwt(opts);
    return `Bearer ${this.#jwt}`;
  }

  private async fetchJwt(opts: DeliverOptions | undefined): Promise<string> {
    const ctx = this.context(opts);
    const url = joinPath(this.config.url, ['auth', 'token']);
    const res = await httpRequest(ctx, 'POST', url, { 'content-type': 'application/json', accept: 'application/json' },
      JSON.stringify({ username: this.config.username, password: this.config.password?.reveal() }));
    if (res.status === 200 || res.status === 201) {
      const json = parseJsonBody(res.text) as { access_token?: unknown } | undefined;
      if (json && typeof json.access_token === 'string' && json.access_token !== '') return json.access_token;
      throw new SinkError(`airflow: POST ${targetUrl(url)} answered ${res.status} without an access_token: is "url" the Airflow 3 API server?`, false, res.status);
    }
    const hint =
      res.status === 401 || res.status === 403
        ? 'Airflow refused the username/password: check them (only users the auth manager can authenticate by password can get tokens)'
        : res.status === 404 || res.status === 405
          ? 'This Airflow issues no tokens for a username/password at /auth/token: configure "token" instead (or api "v1" with basic auth on Airflow 2)'
          : undefined;
    throw statusError(ctx, 'POST', url, res, hint);
  }

  private async post(p: TriggerPayload, opts: DeliverOptions | undefined, fresh: boolean): Promise<{ res: HttpResponse; ctx: HttpContext }> {
    const auth = await this.authorization(opts, fresh);
    const headers: Record<string, string> = { ...revealHeaders(this.config.headers), 'content-type': 'application/json', accept: 'application/json' };
    if (auth !== undefined) headers.authorization = auth;
    const ctx = this.context(opts);
    const res = await httpRequest(ctx, 'POST', this.dagRunsUrl(), headers, stringifyJson(airflowTriggerBody(p, this.config.api)));
    return { res, ctx };
  }

  async deliver(p: TriggerPayload, opts?: DeliverOptions): Promise<DeliveryResult> {
    const runId = airflowRunId(p);
    let { res, ctx } = await this.post(p, opts, false);
    // 401: the JWT expired; 403: Airflow 3 could not verify it (another jwt_secret). Once.
    if ((res.status === 401 || res.status === 403) && this.usesJwtExchange()) ({ res, ctx } = await this.post(p, opts, true));
    const url = this.dagRunsUrl();
    const dag = `DAG "${this.config.dag_id}"`;
    if (res.status === 200 || res.status === 201) {
      const json = parseJsonBody(res.text) as { dag_run_id?: unknown; run_id?: unknown } | undefined;
      const got = typeof json?.dag_run_id === 'string' ? json.dag_run_id : runId;
      return { outcome: 'started', status: res.status, runId: got, detail: `Airflow queued run ${got} of ${dag}` };
    }
    if (res.status === 409) return this.confirmDuplicate(runId, opts, res);
    throw statusError(ctx, 'POST', url, res, this.hint(res.status, dag));
  }

  /** A 409: the run exists (a redelivery) or something else clashed. */
  private async confirmDuplicate(runId: string, opts: DeliverOptions | undefined, conflict: HttpResponse): Promise<DeliveryResult> {
    const auth = await this.authorization(opts, false);
    const headers: Record<string, string> = { ...revealHeaders(this.config.headers), accept: 'application/json' };
    if (auth !== undefined) headers.authorization = auth;
    const ctx = this.context(opts);
    const url = this.dagRunsUrl(runId);
    const res = await httpRequest(ctx, 'GET', url, headers);
    const dag = `DAG "${this.config.dag_id}"`;
    if (res.status === 200) return { outcome: 'duplicate', status: 409, runId, detail: `Airflow already has run ${runId} of ${dag}` };
    if (res.status === 404) {
      throw new SinkError(
        `airflow: POST ${targetUrl(this.dagRunsUrl())} answered 409 (${excerpt(conflict.text, ctx.secrets) || 'conflict'}) but ${dag} has no run ${runId}: ` +
          'another unique key clashed (with api "v1", two runs with the same logical date); will retry',
        true,
        409,
      );
    }
    if (res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500) throw statusError(ctx, 'GET', url, res);
    // The 409 names the run id; the run could not be read back (e.g. no read permission).
    return { outcome: 'duplicate', status: 409, runId, detail: `Airflow answered 409 for run ${runId} of ${dag} (not confirmed: reading the run answered ${res.status})` };
  }

  private hint(status: number, dag: string): string {
    switch (status) {
      case 400:
        return `Airflow rejected the run for ${dag}: the DAG may have import errors, or its Params reject the conf`;
      case 401:
        return this.config.token !== undefined && this.config.api === 'v2'
          ? 'Airflow did not accept the token: with api "v2" (Airflow 3) a token is a JWT that expires (24 h by default); configure "username"/"password" instead, so the sink gets fresh credentials from /auth/token'
          : 'Airflow did not accept the credentials: check "token" or "username"/"password" (Airflow 3 needs api "v2" and a JWT)';
      case 403:
        return this.usesJwtExchange()
          ? `A fresh JWT from /auth/token was refused too: the Airflow user may not trigger ${dag} (grant it permission to create DAG runs), or the API servers do not share one [api_auth] jwt_secret`
          : this.config.token !== undefined && this.config.api === 'v2'
            ? `Airflow refused the token: a JWT signed with another [api_auth] jwt_secret (configure "username"/"password" with api "v2" so the sink gets fresh JWTs), or a user without permission to trigger ${dag}`
            : `The Airflow user may not trigger ${dag}: grant it permission to create DAG runs`;
      case 404:
        return `Airflow has no ${dag} (or it is not parsed yet), or the API version is wrong: fix "dag_id", or set api to "v1" for Airflow 2 and "v2" for Airflow 3`;
      case 405:
        return 'Check that "url" is the Airflow base URL (the sink appends /api/<api>/…)';
      case 422:
        return 'Airflow could not validate the request body: set api to "v1" for Airflow 2 and "v2" for Airflow 3';
      default:
        return `Fix the Airflow sink config or ${dag}, then retry the delivery`;
    }
  }
}
