import { z } from 'zod';
import { IpsError } from '../errors.js';
import type { TableRef } from '../catalog/load-table.js';
import type { S3Settings } from '../io/s3-file-io.js';
import { checkName, parseInput, parseRow, Secret, stringMap } from './common.js';
import { jsonParam, redactUrl, sqlState, SQLSTATE, type Queryable } from './database.js';

/** How the service reaches a source table (the kinds of src/catalog/load-table.ts TableRef). */
export type SourceTableRef =
  | { kind: 'metadata-file'; location: string }
  | { kind: 'directory'; location: string }
  | { kind: 'sql'; uri: string; catalogName: string | null; identifier: string }
  | { kind: 'rest'; uri: string; warehouse: string | null; token: Secret | null; identifier: string };

/** S3 settings of the table's warehouse; without keys the AWS default credential chain applies. */
export interface SourceTableS3 {
  endpoint: string | null;
  region: string | null;
  pathStyle: boolean | null;
  accessKeyId: string | null;
  secretAccessKey: Secret | null;
  sessionToken: Secret | null;
}

export interface SourceTable {
  name: string;
  ref: SourceTableRef;
  branch: string;
  s3: SourceTableS3 | null;
  properties: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

export interface SourceTableInput {
  name: string;
  ref:
    | { kind: 'metadata-file' | 'directory'; location: string }
    | { kind: 'sql'; uri: string; catalogName?: string | null; identifier: string }
    | { kind: 'rest'; uri: string; warehouse?: string | null; token?: string | Secret | null; identifier: string };
  branch?: string;
  s3?: {
    endpoint?: string | null;
    region?: string | null;
    pathStyle?: boolean | null;
    accessKeyId?: string | null;
    secretAccessKey?: string | Secret | null;
    sessionToken?: string | Secret | null;
  } | null;
  properties?: Record<string, string>;
}

const secretInput = z.union([z.string().min(1), z.instanceof(Secret)]).nullish().transform((v) =>
  v === null || v === undefined ? null : typeof v === 'string' ? v : v.reveal());

const inputSchema = z.object({
  name: z.string(),
  ref: z.discriminatedUnion('kind', [
    z.object({ kind: z.enum(['metadata-file', 'directory']), location: z.string().min(1) }),
    z.object({ kind: z.literal('sql'), uri: z.string().min(1), catalogName: z.string().min(1).nullish(), identifier: z.string().min(1) }),
    z.object({ kind: z.literal('rest'), uri: z.string().regex(/^https?:\/\//, 'an http(s):// URI'), warehouse: z.string().min(1).nullish(), token: secretInput, identifier: z.string().min(1) }),
  ]),
  branch: z.string().min(1).default('main'),
  s3: z.object({
    endpoint: z.string().min(1).nullish(),
    region: z.string().min(1).nullish(),
    pathStyle: z.boolean().nullish(),
    accessKeyId: z.string().min(1).nullish(),
    secretAccessKey: secretInput,
    sessionToken: secretInput,
  }).nullish(),
  properties: stringMap.default({}),
});

/** The s3 column's JSON (snake_case, like the catalog properties s3.endpoint, s3.path-style-access). */
const s3Json = z.object({
  endpoint: z.string().nullable().default(null),
  region: z.string().nullable().default(null),
  path_style: z.boolean().nullable().default(null),
  access_key_id: z.string().nullable().default(null),
  secret_access_key: z.string().nullable().default(null),
  session_token: z.string().nullable().default(null),
});

const rowSchema = z.object({
  name: z.string(),
  ref_kind: z.enum(['metadata-file', 'directory', 'sql', 'rest']),
  location: z.string().nullable(),
  catalog_uri: z.string().nullable(),
  catalog_name: z.string().nullable(),
  identifier: z.string().nullable(),
  catalog_token: z.string().nullable(),
  branch: z.string(),
  s3: s3Json.nullable(),
  properties: stringMap,
  created_at: z.date(),
  updated_at: z.date(),
}).transform((r, ctx): SourceTable => {
  let ref: SourceTableRef;
  const need = (v: string | null, col: string): string => {
    if (v === null) ctx.addIssue({ code: 'custom', message: `${col} is required for ${r.ref_kind}`, path: [col] });
    return v ?? '';
  };
  switch (r.ref_kind) {
    case 'metadata-file':
    case 'directory':
      ref = { kind: r.ref_kind, location: need(r.location, 'location') };
      break;
    case 'sql':
      ref = { kind: 'sql', uri: need(r.catalog_uri, 'catalog_uri'), catalogName: r.catalog_name, identifier: need(r.identifier, 'identifier') };
      break;
    case 'rest':
      ref = {
        kind: 'rest', uri: need(r.catalog_uri, 'catalog_uri'), warehouse: r.catalog_name,
        token: r.catalog_token === null ? null : new Secret(r.catalog_token), identifier: need(r.identifier, 'identifier'),
      };
      break;
  }
  return {
    name: r.name,
    ref,
    branch: r.branch,
    s3: r.s3 === null ? null : {
      endpoint: r.s3.endpoint,
      region: r.s3.region,
      pathStyle: r.s3.path_style,
      accessKeyId: r.s3.access_key_id,
      secretAccessKey: r.s3.secret_access_key === null ? null : new Secret(r.s3.secret_access_key),
      sessionToken: r.s3.session_token === null ? null : new Secret(r.s3.session_token),
    },
    properties: r.properties,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
});

const COLUMNS = 'name, ref_kind, location, catalog_uri, catalog_name, identifier, catalog_token, branch, s3, properties, created_at, updated_at';
const COLUMN_NAMES = COLUMNS.split(',').map((c) => c.trim());

/** The source table's columns of `alias`, each named `<prefix><column>`: for a join whose other side has columns of the same names. */
export function sourceTableColumns(alias: string, prefix: string): string {
  return COLUMN_NAMES.map((c) => `${alias}.${c} AS ${prefix}${c}`).join(', ');
}

/** A source table from a joined row whose source-table columns carry `prefix` (see sourceTableColumns). */
export function sourceTableFromRow(row: Record<string, unknown>, prefix: string): SourceTable {
  const own: Record<string, unknown> = {};
  for (const c of COLUMN_NAMES) own[c] = row[prefix + c];
  return parseRow(rowSchema, own, 'source_tables');
}

/** The TableRef that src/catalog/load-table.ts loads (reveals the catalog token). */
export function toTableRef(t: SourceTable): TableRef {
  const r = t.ref;
  switch (r.kind) {
    case 'metadata-file':
    case 'directory':
      return { kind: r.kind, location: r.location };
    case 'sql':
      return { kind: 'sql', uri: r.uri, catalogName: r.catalogName ?? undefined, identifier: r.identifier };
    case 'rest':
      return { kind: 'rest', uri: r.uri, token: r.token?.reveal(), warehouse: r.warehouse ?? undefined, identifier: r.identifier };
  }
}

/** The S3 settings for src/io/s3-file-io.ts (reveals the keys). */
export function toS3Settings(t: SourceTable): S3Settings | undefined {
  if (!t.s3) return undefined;
  const s: S3Settings = {};
  if (t.s3.endpoint !== null) s.endpoint = t.s3.endpoint;
  if (t.s3.region !== null) s.region = t.s3.region;
  if (t.s3.pathStyle !== null) s.pathStyle = t.s3.pathStyle;
  if (t.s3.accessKeyId !== null) s.accessKeyId = t.s3.accessKeyId;
  if (t.s3.secretAccessKey !== null) s.secretAccessKey = t.s3.secretAccessKey.reveal();
  if (t.s3.sessionToken !== null) s.sessionToken = t.s3.sessionToken.reveal();
  return s;
}

/**
 * A source table as safe JSON for logs and API responses: secrets are `***` (or absent), the
 * catalog URI's password is masked. The access key id is kept: it names the key, it is not one.
 */
export function describeSourceTable(t: SourceTable): Record<string, unknown> {
  const r = t.ref;
  const ref: Record<string, unknown> = { kind: r.kind };
  if (r.kind === 'metadata-file' || r.kind === 'directory') ref.location = r.location;
  else {
    ref.uri = redactUrl(r.uri);
    ref.identifier = r.identifier;
    if (r.kind === 'sql' && r.catalogName !== null) ref.catalog_name = r.catalogName;
    if (r.kind === 'rest') {
      if (r.warehouse !== null) ref.warehouse = r.warehouse;
      if (r.token !== null) ref.token = '***';
    }
  }
  const out: Record<string, unknown> = { name: t.name, ref, branch: t.branch, properties: t.properties };
  if (t.s3) {
    out.s3 = {
      endpoint: t.s3.endpoint, region: t.s3.region, path_style: t.s3.pathStyle, access_key_id: t.s3.accessKeyId,
      ...(t.s3.secretAccessKey ? { secret_access_key: '***' } : {}),
      ...(t.s3.sessionToken ? { session_token: '***' } : {}),
    };
  }
  out.created_at = t.createdAt.toISOString();
  out.updated_at = t.updatedAt.toISOString();
  return out;
}

export class SourceTablesRepo {
  constructor(private readonly q: Queryable) {}

  private static columns(input: SourceTableInput): unknown[] {
    const v = parseInput(inputSchema, input, 'source table');
    checkName('source table', v.name);
    const ref = v.ref;
    const location = ref.kind === 'metadata-file' || ref.kind === 'directory' ? ref.location : null;
    const uri = ref.kind === 'sql' || ref.kind === 'rest' ? ref.uri : null;
    const catalogName = ref.kind === 'sql' ? ref.catalogName ?? null : ref.kind === 'rest' ? ref.warehouse ?? null : null;
    const identifier = ref.kind === 'sql' || ref.kind === 'rest' ? ref.identifier : null;
    const token = ref.kind === 'rest' ? ref.token : null;
    const s3 = v.s3 ? {
      endpoint: v.s3.endpoint ?? null, region: v.s3.region ?? null, path_style: v.s3.pathStyle ?? null,
      access_key_id: v.s3.accessKeyId ?? null, secret_access_key: v.s3.secretAccessKey, session_token: v.s3.sessionToken,
    } : null;
    return [v.name, ref.kind, location, uri, catalogName, identifier, token, v.branch, s3 === null ? null : jsonParam(s3), jsonParam(v.properties)];
  }

  /**
   * The table `create` would store, validated the same way, without touching the database: what
   * a registration checks (loads the table) before its short transaction.
   */
  static preview(input: SourceTableInput, now = new Date()): SourceTable {
    const [name, refKind, location, uri, catalogName, identifier, token, branch, s3, properties] = SourceTablesRepo.columns(input);
    return parseRow(rowSchema, {
      name, ref_kind: refKind, location, catalog_uri: uri, catalog_name: catalogName, identifier, catalog_token: token, branch,
      s3: s3 === null ? null : JSON.parse(s3 as string), properties: JSON.parse(properties as string), created_at: now, updated_at: now,
    }, 'source_tables');
  }

  /** Registers a table; ALREADY_EXISTS when the name is taken. */
  async create(input: SourceTableInput): Promise<SourceTable> {
    const params = SourceTablesRepo.columns(input) as (string | null)[];
    try {
      const res = await this.q.query(
        `INSERT INTO source_tables (name, ref_kind, location, catalog_uri, catalog_name, identifier, catalog_token, branch, s3, properties)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::JSONB, $10::JSONB)
         RETURNING ${COLUMNS}`, params);
      return parseRow(rowSchema, res.rows[0], 'source_tables');
    } catch (e) {
      if (sqlState(e) === SQLSTATE.UNIQUE_VIOLATION) {
        throw new IpsError('ALREADY_EXISTS', `source table "${input.name}" is already registered`, { cause: e });
      }
      throw e;
    }
  }

  /** Replaces how the table is reached (name unchanged); NOT_FOUND when it is not registered. */
  async update(input: SourceTableInput): Promise<SourceTable> {
    const params = SourceTablesRepo.columns(input) as (string | null)[];
    const res = await this.q.query(
      `UPDATE source_tables SET ref_kind = $2, location = $3, catalog_uri = $4, catalog_name = $5, identifier = $6,
              catalog_token = $7, branch = $8, s3 = $9::JSONB, properties = $10::JSONB, updated_at = now()
        WHERE name = $1
       RETURNING ${COLUMNS}`, params);
    if (res.rowCount === 0) throw notFound(input.name);
    return parseRow(rowSchema, res.rows[0], 'source_tables');
  }

  async get(name: string): Promise<SourceTable | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM source_tables WHERE name = $1`, [name]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'source_tables');
  }

  async require(name: string): Promise<SourceTable> {
    const t = await this.get(name);
    if (!t) throw notFound(name);
    return t;
  }

  async list(): Promise<SourceTable[]> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM source_tables ORDER BY name`);
    return res.rows.map((r) => parseRow(rowSchema, r, 'source_tables'));
  }

  /** Removes a table no consumer subscribes to; CONFLICT while one does. */
  async delete(name: string): Promise<boolean> {
    try {
      const res = await this.q.query('DELETE FROM source_tables WHERE name = $1', [name]);
      return res.rowCount > 0;
    } catch (e) {
      if (sqlState(e) === SQLSTATE.FOREIGN_KEY_VIOLATION) {
        throw new IpsError('CONFLICT', `source table "${name}" is still used by consumers or batches; remove those first`, { cause: e });
      }
      throw e;
    }
  }
}

function notFound(name: string): IpsError {
  return new IpsError('NOT_FOUND', `source table "${name}" is not registered`, { details: { source_table: name } });
}
