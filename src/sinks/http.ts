import { SinkError } from './types.js';
import dns from 'node:dns/promises';
import { isIP } from 'node:net';
import { isMetadataOrLinkLocal, targetUrl } from './config.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Response bodies are read up to this size (orchestrator answers are small). */
const MAX_BODY_BYTES = 256 * 1024;
const EXCERPT_CHARS = 300;

export interface HttpContext {
  /** `webhook`, `maestro`, `airflow`: prefixes messages. */
  label: string;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** Clear-text secrets to scrub out of anything that ends up in a message. */
  secrets: readonly string[];
  /** How host names resolve (default: the system resolver, as fetch does). */
  lookup?: (host: string) => Promise<readonly { address: string }[]>;
}

const systemLookup = (host: string): Promise<readonly { address: string }[]> => dns.lookup(host, { all: true });

/**
 * A host name that resolves to a link-local or cloud metadata address is refused before the
 * request (the configured URL's text was checked when the sink was created; a name can point
 * there all the same). Not retryable: the sink's configuration has to change. A name that does
 * not resolve is left to fetch, which fails with its retryable network error.
 */
async function refuseMetadataAddresses(ctx: HttpContext, url: URL): Promise<void> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) return;
  let addresses: readonly { address: string }[];
  try {
    addresses = await (ctx.lookup ?? systemLookup)(host);
  } catch {
    return;
  }
  const bad = addresses.find((a) => isMetadataOrLinkLocal(a.address));
  if (bad) {
    throw new SinkError(`${ctx.label}: ${host} resolves to ${bad.address}, a link-local or cloud metadata address, which sinks may not call`, false);
  }
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** The body as text, cut at MAX_BODY_BYTES. */
  text: string;
}

/** Replaces every occurrence of a secret with ***. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}

/**
 * Masks what looks like a credential in a response body: values of secret-sounding keys
 * (`"token": "…"`, `password=…`, `Authorization: Bearer …`), JWTs, and long runs of key-like
 * characters (hex, base64). An orchestrator that echoes a request or a session does not leak it
 * into a trigger's last_error.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 ***')
    .replace(/((?:["']?)[\w.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|session|cookie|credential|auth\w*|signature)[\w.-]*["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&}]+)/gi, '$1***')
    .replace(/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '***')
    .replace(/[A-Za-z0-9+/_=-]{24,}/g, (m) => (/[0-9]/.test(m) && /[A-Za-z]/.test(m) ? '***' : m));
}

/** A short, single-line excerpt of a response body, secrets scrubbed and credential-like values masked. */
export function excerpt(text: string, secrets: readonly string[]): string {
  const one = redactSecrets(scrub(text, secrets)).replace(/\s+/g, ' ').trim();
  return one.length > EXCERPT_CHARS ? `${one.slice(0, EXCERPT_CHARS)}…` : one;
}

/** Where a sink error's response excerpt starts: what a consumer's token never sees (see `withoutResponseBody`). */
export const RESPONSE_MARKER = ' | response: ';

/** A sink error without the orchestrator's response body: what a consumer's token may read. */
export function withoutResponseBody(message: string | null): string | null {
  if (message === null) return null;
  const i = message.indexOf(RESPONSE_MARKER);
  return i < 0 ? message : `${message.slice(0, i)} (response body shown to admins only)`;
}

function errorCode(e: unknown): string {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    if (cur.cause === undefined) return cur.message;
    cur = cur.cause;
  }
  return cur instanceof Error ? cur.message : String(cur);
}

async function readCapped(res: Response): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

/** Retry-After in ms (seconds or an HTTP date), capped at an hour. */
export function retryAfterMs(headers: Headers): number | undefined {
  const v = headers.get('retry-after');
  if (v === null) return undefined;
  const secs = Number(v);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(v) - Date.now();
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return Math.min(ms, 3_600_000);
}

/**
 * One HTTP request with the sink's timeout and the caller's signal. Redirects are not followed
 * (they would leave the allowed hosts and drop credentials): a 3xx comes back as a response.
 * Network failures, timeouts and aborts throw a retryable SinkError.
 */
export async function httpRequest(
  ctx: HttpContext,
  method: string,
  url: URL,
  headers: Record<string, string>,
  body?: string | Uint8Array,
): Promise<HttpResponse> {
  const timeout = AbortSignal.timeout(ctx.timeoutMs);
  const signal = ctx.signal ? AbortSignal.any([timeout, ctx.signal]) : timeout;
  const where = `${method} ${targetUrl(url)}`;
  const fail = (e: unknown): never => {
    if (ctx.signal?.aborted) {
      throw new SinkError(`${ctx.label}: ${where} was aborted by the caller before an answer arrived`, true, undefined, { cause: e });
    }
    if (timeout.aborted) {
      throw new SinkError(`${ctx.label}: ${where} timed out after ${ctx.timeoutMs} ms without an answer (the orchestrator may be overloaded or unreachable)`, true);
    }
    throw new SinkError(`${ctx.label}: could not reach ${where}: ${scrub(errorCode(e), ctx.secrets)}`, true);
  };
  await refuseMetadataAddresses(ctx, url);
  let res: Response;
  try {
    // A copy typed as Uint8Array<ArrayBuffer> (what BodyInit takes): the exact bytes that were signed.
    const init: BodyInit | undefined = typeof body === 'string' || body === undefined ? body : new Uint8Array(body);
    res = await fetch(url, { method, headers, body: init, redirect: 'manual', signal });
  } catch (e) {
    return fail(e);
  }
  let text: string;
  try {
    text = await readCapped(res);
  } catch (e) {
    return fail(e);
  }
  return { status: res.status, statusText: res.statusText, headers: res.headers, text };
}

/** JSON of a response body, or undefined when it is not JSON. */
export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The error for a status no sink treats as success: 408/425/429/5xx retryable, 3xx and other
 * 4xx not. `hint` says what to fix for the non-retryable ones.
 */
export function statusError(ctx: HttpContext, method: string, url: URL, res: HttpResponse, hint?: string): SinkError {
  const where = `${method} ${targetUrl(url)}`;
  const body = excerpt(res.text, ctx.secrets);
  const answered = `${ctx.label}: ${where} answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  const response = body ? `${RESPONSE_MARKER}${body}` : '';
  if (res.status >= 300 && res.status < 400) {
    const loc = res.headers.get('location');
    let to = '';
    if (loc !== null && URL.canParse(loc, url)) to = ` to ${targetUrl(new URL(loc, url))}`;
    return new SinkError(`${ctx.label}: ${where} redirected${to} (${res.status}); redirects are not followed: configure the final URL`, false, res.status);
  }
  const retryable = res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500;
  const after = retryable ? retryAfterMs(res.headers) : undefined;
  const msg = retryable ? `${answered} (will retry)${response}` : `${answered}${hint ? `. ${hint}` : ''}${response}`;
  return new SinkError(msg, retryable, res.status, after !== undefined ? { retryAfterMs: after } : undefined);
}

/** Appends `/seg/seg…` (each segment URL-encoded) to a base URL's path. */
export function joinPath(base: string, segments: readonly string[]): URL {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
  return u;
}
