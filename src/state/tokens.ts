import crypto from 'node:crypto';
import { z } from 'zod';
import { IpsError } from '../errors.js';
import { newId, parseInput, parseRow } from './common.js';
import { jsonParam, sqlState, SQLSTATE, type Queryable } from './database.js';

/**
 * `admin` manages tables, consumers and tokens; `consumer` prepares, reads, commits and aborts
 * the batches of the one consumer the token belongs to.
 */
export type TokenScope = 'admin' | 'consumer';

export interface ApiToken {
  id: bigint;
  /** `ips_` and the first characters: enough to tell tokens apart, useless to authenticate. */
  prefix: string;
  description: string | null;
  consumer: string | null;
  scopes: TokenScope[];
  createdAt: Date;
  revokedAt: Date | null;
}

export interface IssuedToken {
  /** The secret itself: shown once, never stored. */
  token: string;
  record: ApiToken;
}

const TOKEN_PREFIX = 'ips_';

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

const inputSchema = z.object({
  consumer: z.string().nullable(),
  scopes: z.array(z.enum(['admin', 'consumer'])).min(1),
  description: z.string().max(500).nullish().transform((v) => v ?? null),
}).superRefine((v, ctx) => {
  if (v.scopes.includes('consumer') && v.consumer === null) ctx.addIssue({ code: 'custom', message: 'a consumer-scoped token needs its consumer', path: ['consumer'] });
  if (!v.scopes.includes('admin') && v.consumer === null) ctx.addIssue({ code: 'custom', message: 'a token without a consumer must have the admin scope', path: ['scopes'] });
});

const rowSchema = z.object({
  id: z.bigint(),
  token_prefix: z.string(),
  description: z.string().nullable(),
  consumer: z.string().nullable(),
  scopes: z.array(z.enum(['admin', 'consumer'])),
  created_at: z.date(),
  revoked_at: z.date().nullable(),
}).transform((r): ApiToken => ({
  id: r.id, prefix: r.token_prefix, description: r.description, consumer: r.consumer, scopes: r.scopes,
  createdAt: r.created_at, revokedAt: r.revoked_at,
}));

const COLUMNS = 'id, token_prefix, description, consumer, scopes, created_at, revoked_at';

export class TokensRepo {
  constructor(private readonly q: Queryable) {}

  /** Issues a new random token (256 bits); NOT_FOUND when its consumer does not exist. */
  async issue(input: { consumer: string | null; scopes: TokenScope[]; description?: string | null }): Promise<IssuedToken> {
    const v = parseInput(inputSchema, input, 'API token');
    const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
    try {
      const res = await this.q.query(
        `INSERT INTO api_tokens (id, token_sha256, token_prefix, description, consumer, scopes)
         VALUES ($1, $2, $3, $4, $5, $6::JSONB) RETURNING ${COLUMNS}`,
        [newId(), hashToken(token), token.slice(0, TOKEN_PREFIX.length + 8), v.description, v.consumer, jsonParam(v.scopes)]);
      return { token, record: parseRow(rowSchema, res.rows[0], 'api_tokens') };
    } catch (e) {
      if (sqlState(e) === SQLSTATE.FOREIGN_KEY_VIOLATION) throw new IpsError('NOT_FOUND', `consumer "${v.consumer}" does not exist`, { cause: e });
      throw e;
    }
  }

  /** The live token with this secret, or undefined (unknown or revoked). */
  async authenticate(token: string): Promise<ApiToken | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL`, [hashToken(token)]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'api_tokens');
  }

  async list(filter: { consumer?: string } = {}): Promise<ApiToken[]> {
    const res = filter.consumer === undefined
      ? await this.q.query(`SELECT ${COLUMNS} FROM api_tokens ORDER BY created_at, id`)
      : await this.q.query(`SELECT ${COLUMNS} FROM api_tokens WHERE consumer = $1 ORDER BY created_at, id`, [filter.consumer]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'api_tokens'));
  }

  /** Revokes a token; revoking it again is a no-op. NOT_FOUND when there is no such token. */
  async revoke(id: bigint): Promise<ApiToken> {
    const res = await this.q.query(
      `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    if (res.rows[0] === undefined) throw new IpsError('NOT_FOUND', `no API token ${id}`);
    return parseRow(rowSchema, res.rows[0], 'api_tokens');
  }
}
