import { z } from 'zod';
import { IpsError } from '../errors.js';
import { Secret } from '../state/common.js';

/**
 * Sink configurations: what a subscription's trigger is sent to.
 *
 * Shapes (snake_case, unknown keys rejected):
 *   { type: 'webhook', url, secret?, headers? }
 *   { type: 'maestro', url, workflow_id, version? = 'active', user?, token?, headers? }
 *   { type: 'airflow', url, dag_id, api? = 'v2', username? + password? | token?, headers? }
 *
 * Secrets (`secret`, `token`, `password`) are held as `Secret` in a parsed config, so
 * `JSON.stringify(config)`, `String()` and `console.log` show `***`. To store a config, write
 * `sinkConfigToJson(config)` (the only function that reveals secrets; its output is the same
 * shape parseSinkConfig accepts) and read it back with `sinkConfigFromJson`; to show one (API,
 * CLI, logs), use `describeSinkConfig`. A stored config whose secret is the literal `***` was
 * written with JSON.stringify instead of sinkConfigToJson and is rejected rather than silently
 * sending `***` as a credential.
 *
 * Header values are held and shown the same way (they often carry API keys). The URL is kept
 * as given; describeSinkConfig masks its query values and error messages name only its origin
 * and path, but JSON.stringify(config) shows it whole: put keys in `secret`/`headers`, not the URL.
 */

export const SINK_TYPES = ['webhook', 'maestro', 'airflow'] as const;
export type SinkType = (typeof SINK_TYPES)[number];

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
/** Set by the HTTP layer or by every sink: a configured value would break the request. */
const TRANSPORT_HEADERS = ['host', 'content-length', 'content-type', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect'];
const WEBHOOK_HEADERS = ['idempotency-key', 'x-ips-signature-256'];

function urlIssue(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not an absolute URL (expected e.g. https://host:port/path)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `scheme "${u.protocol.replace(/:$/, '')}" is not allowed: use http or https`;
  if (u.username !== '' || u.password !== '') {
    return 'credentials (user:password@) are not allowed in the URL: put them in the sink\'s secret fields (webhook "secret", maestro "token", airflow "username"/"password" or "token")';
  }
  if (u.hostname === '') return 'the URL has no host';
  if (u.hash !== '') return 'the URL must not have a #fragment';
  return null;
}

const urlSchema = z.string().max(2048).superRefine((s, ctx) => {
  const issue = urlIssue(s);
  if (issue) ctx.addIssue({ code: 'custom', message: issue });
});

/** Maestro and Airflow URLs are base URLs: the API path is appended, so no query string. */
const baseUrlSchema = urlSchema.superRefine((s, ctx) => {
  if (URL.canParse(s) && new URL(s).search !== '') ctx.addIssue({ code: 'custom', message: 'a base URL must not have a ?query (the API path is appended to it)' });
});

const secretSchema = z.union([z.string(), z.instanceof(Secret)], { error: 'expected a string' }).transform((v, ctx) => {
  const s = v instanceof Secret ? v : new Secret(v);
  const raw = s.reveal();
  if (raw.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must not be empty (leave the field out instead)' });
    return z.NEVER;
  }
  if (raw === '***') {
    ctx.addIssue({ code: 'custom', message: 'is the masked placeholder "***", not a credential: store configs with sinkConfigToJson(), not JSON.stringify()' });
    return z.NEVER;
  }
  if (raw.length > 4096 || /[\r\n\0]/.test(raw)) {
    ctx.addIssue({ code: 'custom', message: 'must be at most 4096 characters without line breaks' });
    return z.NEVER;
  }
  return s;
});

/** Header values are held as Secret: they often carry API keys. */
const headerValueSchema = z.union([z.string(), z.instanceof(Secret)], { error: 'expected a string' }).transform((v, ctx) => {
  const s = v instanceof Secret ? v : new Secret(v);
  const raw = s.reveal();
  if (raw === '***') {
    ctx.addIssue({ code: 'custom', message: 'is the masked placeholder "***": store configs with sinkConfigToJson(), not JSON.stringify()' });
    return z.NEVER;
  }
  if (raw.length > 8192 || /[\r\n\0]/.test(raw)) {
    ctx.addIssue({ code: 'custom', message: 'header values are at most 8192 characters without line breaks or NUL' });
    return z.NEVER;
  }
  return s;
});

const headersSchema = z.record(z.string(), headerValueSchema).superRefine((h, ctx) => {
  const keys = Object.keys(h);
  if (keys.length > 50) ctx.addIssue({ code: 'custom', message: 'at most 50 headers' });
  const seen = new Set<string>();
  for (const k of keys) {
    const lower = k.toLowerCase();
    if (!HEADER_NAME.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'not a valid HTTP header name' });
    else if (TRANSPORT_HEADERS.includes(lower)) ctx.addIssue({ code: 'custom', path: [k], message: `"${k}" is set by the sink itself and cannot be configured` });
    else if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: [k], message: 'header given twice (names are case-insensitive)' });
    seen.add(lower);
  }
});

function rejectHeaders(headers: Record<string, Secret> | undefined, names: string[], why: string, ctx: z.RefinementCtx): void {
  for (const k of Object.keys(headers ?? {})) {
    if (names.includes(k.toLowerCase())) ctx.addIssue({ code: 'custom', path: ['headers', k], message: `"${k}" is set by the sink itself (${why}) and cannot be configured` });
  }
}

const webhookSchema = z
  .strictObject({
    type: z.literal('webhook'),
    url: urlSchema,
    secret: secretSchema.optional(),
    headers: headersSchema.optional(),
  })
  .superRefine((c, ctx) => rejectHeaders(c.headers, WEBHOOK_HEADERS, 'idempotency and signature', ctx));

/** Maestro's MaestroIdConstraint: `[_a-zA-Z0-9][.\-_a-zA-Z0-9]*`, at most 128 characters. */
const maestroIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[_a-zA-Z0-9][-._a-zA-Z0-9]*$/, 'a Maestro workflow id starts with a letter, digit or "_" and uses letters, digits, ".", "-" and "_"');

const maestroSchema = z
  .strictObject({
    type: z.literal('maestro'),
    url: baseUrlSchema,
    workflow_id: maestroIdSchema,
    version: z.string().regex(/^(active|latest|default|[1-9]\d{0,18})$/i, 'use "active", "latest", "default" or a version number').default('active'),
    user: z.string().min(1).max(256).regex(/^[^\r\n\0]*$/, 'no line breaks').optional(),
    token: secretSchema.optional(),
    headers: headersSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.user !== undefined) rejectHeaders(c.headers, ['user'], 'from "user"', ctx);
    if (c.token !== undefined) rejectHeaders(c.headers, ['authorization'], 'from "token"', ctx);
  });

const airflowSchema = z
  .strictObject({
    type: z.literal('airflow'),
    url: baseUrlSchema,
    /** Airflow's KEY_REGEX, at most 250 characters. */
    dag_id: z
      .string()
      .min(1)
      .max(250)
      .regex(/^[\w.-]+$/, 'an Airflow dag_id uses letters, digits, "_", "." and "-"')
      .refine((s) => !/^\.+$/.test(s), 'must not consist of dots only'),
    api: z.enum(['v1', 'v2']).default('v2'),
    username: z.string().min(1).max(256).regex(/^[^:\r\n\0]*$/, 'no ":" or line breaks').optional(),
    password: secretSchema.optional(),
    token: secretSchema.optional(),
    headers: headersSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.username === undefined) !== (c.password === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.username === undefined ? 'username' : 'password'], message: 'username and password go together' });
    }
    if (c.token !== undefined && c.username !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'give either token or username/password, not both' });
    }
    if (c.token !== undefined || c.username !== undefined) rejectHeaders(c.headers, ['authorization'], 'from the credentials', ctx);
  });

export const sinkConfigSchema = z.discriminatedUnion('type', [webhookSchema, maestroSchema, airflowSchema]);

export type SinkConfig = z.output<typeof sinkConfigSchema>;
export type WebhookSinkConfig = z.output<typeof webhookSchema>;
export type MaestroSinkConfig = z.output<typeof maestroSchema>;
export type AirflowSinkConfig = z.output<typeof airflowSchema>;

/** A config as stored: the shape parseSinkConfig accepts, secrets in clear text. */
export type SinkConfigJson =
  | { type: 'webhook'; url: string; secret?: string; headers?: Record<string, string> }
  | { type: 'maestro'; url: string; workflow_id: string; version: string; user?: string; token?: string; headers?: Record<string, string> }
  | { type: 'airflow'; url: string; dag_id: string; api: 'v1' | 'v2'; username?: string; password?: string; token?: string; headers?: Record<string, string> };

export interface HostOptions {
  /**
   * Hosts a sink may call: an entry matches the URL's host exactly (case-insensitive; with or
   * without `:port`), `*.example.com` matches any subdomain of example.com (not example.com
   * itself). Undefined: any host; an empty list: none.
   */
  allowedHosts?: string[];
}

/** Host names of cloud instance metadata services (they hand out the machine's credentials). */
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal', 'metadata.azure.com']);

/** IPv4 dotted quad of a host (also IPv4-mapped IPv6 `::ffff:a.b.c.d` / `::ffff:xxxx:xxxx`), else null. */
function ipv4Of(host: string): number[] | null {
  let h = host.replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(.+)$/i.exec(h);
  if (mapped) {
    h = mapped[1]!;
    const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(h);
    if (hex) {
      const a = parseInt(hex[1]!, 16);
      const b = parseInt(hex[2]!, 16);
      return [a >> 8, a & 255, b >> 8, b & 255];
    }
  }
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m ? m.slice(1).map(Number) : null;
}

/**
 * Link-local and cloud metadata addresses: 169.254.0.0/16 (AWS, GCP, Azure metadata at
 * 169.254.169.254), fe80::/10, AWS's IPv6 fd00:ec2::254, Alibaba's 100.100.100.200 and the
 * metadata host names. A sink there would hand the trigger's payload, and its answer, to the
 * machine's credential service.
 */
export function isMetadataOrLinkLocal(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTS.has(host)) return true;
  const v4 = ipv4Of(host);
  if (v4) return (v4[0] === 169 && v4[1] === 254) || v4.join('.') === '100.100.100.200';
  const v6 = host.replace(/^\[|\]$/g, '');
  if (/^fe[89ab][0-9a-f]?:/i.test(v6)) return true;
  return /^fd00:ec2::254$/i.test(v6);
}

/**
 * Null when allowed, else why not. Link-local and metadata addresses are refused unless an
 * entry names them exactly, even when every host is allowed (no list).
 */
export function hostNotAllowed(rawUrl: string, allowedHosts: string[] | undefined): string | null {
  const u = new URL(rawUrl);
  const host = u.hostname.toLowerCase();
  const hostPort = u.host.toLowerCase();
  const exact = (allowedHosts ?? []).some((e) => {
    const x = e.trim().toLowerCase();
    return x !== '' && (x === host || x === hostPort);
  });
  if (isMetadataOrLinkLocal(host) && !exact) {
    return `host "${u.hostname}" is a link-local or cloud metadata address, which sinks may not call unless sink_allowed_hosts names it exactly`;
  }
  if (allowedHosts === undefined) return null;
  for (const entry of allowedHosts) {
    const e = entry.trim().toLowerCase();
    if (e === '') continue;
    if (e.startsWith('*.')) {
      const suffix = e.slice(1); // ".example.com"
      if (host.endsWith(suffix) && host.length > suffix.length) return null;
    } else if (e === host || e === hostPort) {
      return null;
    }
  }
  return allowedHosts.length === 0
    ? `host "${u.hostname}" is not allowed: no sink hosts are allowed on this server (allowed hosts list is empty)`
    : `host "${u.hostname}" is not in the allowed sink hosts (${allowedHosts.join(', ')}); ask the operator to add it`;
}

function issueText(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
    return `${issue.keys.map((k) => `${prefix}${k}`).join(', ')}: unknown field${issue.keys.length > 1 ? 's' : ''}`;
  }
  if (issue.code === 'invalid_union' && issue.path.length === 0) {
    return `type: expected one of ${SINK_TYPES.join(', ')}`;
  }
  const field = issue.path.length > 0 ? issue.path.join('.') : 'config';
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return `${field}: required`;
  return `${field}: ${issue.message}`;
}

/** Validates a sink config (API body or stored JSON). Throws IpsError INVALID_SINK naming the field. */
export function parseSinkConfig(input: unknown, opts?: HostOptions): SinkConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new IpsError('INVALID_SINK', 'invalid sink config: expected an object with a "type" (webhook, maestro or airflow)');
  }
  const t = (input as { type?: unknown }).type;
  if (!SINK_TYPES.includes(t as SinkType)) {
    throw new IpsError('INVALID_SINK', `invalid sink config: type: expected one of ${SINK_TYPES.join(', ')}${t === undefined ? '' : `, got ${JSON.stringify(typeof t === 'string' ? t.slice(0, 40) : typeof t)}`}`);
  }
  const r = sinkConfigSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues;
    throw new IpsError('INVALID_SINK', `invalid ${String(t)} sink config: ${issues[0] ? issueText(issues[0]) : 'invalid'}`, {
      details: { issues: issues.map((i) => ({ path: i.path.join('.'), message: issueText(i) })) },
    });
  }
  const why = hostNotAllowed(r.data.url, opts?.allowedHosts);
  if (why) throw new IpsError('INVALID_SINK', `invalid ${r.data.type} sink config: url: ${why}`);
  return r.data;
}

/** The URL as it may be shown: query values masked (a webhook URL may carry a key there). */
export function displayUrl(raw: string): string {
  const u = new URL(raw);
  if (u.search === '') return raw;
  for (const k of [...new Set(u.searchParams.keys())]) u.searchParams.set(k, '***');
  return u.toString().replace(/%2A%2A%2A/g, '***');
}

/** Origin and path only: what error messages name. */
export function targetUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

function maskedHeaders(h: Record<string, Secret> | undefined): Record<string, string> | undefined {
  if (h === undefined) return undefined;
  return Object.fromEntries(Object.keys(h).map((k) => [k, '***']));
}

function withoutUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The config as safe JSON: secrets and header values as "***", URL query values masked. */
export function describeSinkConfig(config: SinkConfig): Record<string, unknown> {
  const masked = (s: Secret | undefined): string | undefined => (s === undefined ? undefined : '***');
  switch (config.type) {
    case 'webhook':
      return withoutUndefined({ type: 'webhook', url: displayUrl(config.url), secret: masked(config.secret), headers: maskedHeaders(config.headers) });
    case 'maestro':
      return withoutUndefined({
        type: 'maestro', url: displayUrl(config.url), workflow_id: config.workflow_id, version: config.version, user: config.user,
        token: masked(config.token), headers: maskedHeaders(config.headers),
      });
    case 'airflow':
      return withoutUndefined({
        type: 'airflow', url: displayUrl(config.url), dag_id: config.dag_id, api: config.api, username: config.username,
        password: masked(config.password), token: masked(config.token), headers: maskedHeaders(config.headers),
      });
  }
}

/**
 * The config for storage, secrets in clear text: the only function that reveals them. Never log
 * its result; sinkConfigFromJson reads it back.
 */
export function sinkConfigToJson(config: SinkConfig): SinkConfigJson {
  const reveal = (s: Secret | undefined): string | undefined => s?.reveal();
  const headers = config.headers === undefined ? undefined : revealHeaders(config.headers);
  switch (config.type) {
    case 'webhook':
      return withoutUndefined({ type: 'webhook', url: config.url, secret: reveal(config.secret), headers }) as SinkConfigJson;
    case 'maestro':
      return withoutUndefined({
        type: 'maestro', url: config.url, workflow_id: config.workflow_id, version: config.version, user: config.user, token: reveal(config.token), headers,
      }) as SinkConfigJson;
    case 'airflow':
      return withoutUndefined({
        type: 'airflow', url: config.url, dag_id: config.dag_id, api: config.api, username: config.username,
        password: reveal(config.password), token: reveal(config.token), headers,
      }) as SinkConfigJson;
  }
}

/** Reads a stored config (an object or its JSON text) written by sinkConfigToJson. */
export function sinkConfigFromJson(json: unknown, opts?: HostOptions): SinkConfig {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch {
      throw new IpsError('INVALID_SINK', 'invalid sink config: the stored value is not JSON');
    }
  }
  return parseSinkConfig(value, opts);
}

/** Configured headers in clear text, for a request. */
export function revealHeaders(h: Record<string, Secret> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(h ?? {}).map(([k, v]) => [k, v.reveal()]));
}

/** The secrets of a config in clear text, for scrubbing them out of error messages. */
export function secretsOf(config: SinkConfig): string[] {
  const out: string[] = [];
  const add = (s: Secret | undefined): void => {
    if (s !== undefined) out.push(s.reveal());
  };
  if (config.type === 'webhook') add(config.secret);
  if (config.type === 'maestro') add(config.token);
  if (config.type === 'airflow') {
    add(config.password);
    add(config.token);
    if (config.username !== undefined && config.password !== undefined) out.push(Buffer.from(`${config.username}:${config.password.reveal()}`).toString('base64'));
  }
  // Header values long enough to be keys (short ones like "data" would garble messages).
  for (const v of Object.values(config.headers ?? {})) if (v.reveal().length >= 8) out.push(v.reveal());
  return out;
}
