import crypto from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Secret, TokensRepo } from '../state/index.js';
import { apiError } from './problem.js';

/**
 * Who is calling. Admins (a configured token, or an issued admin token) manage tables,
 * consumers and tokens and may act for any consumer; a consumer token acts only for its own
 * consumer: its batches, its watermarks, the tables it subscribes to.
 */
export interface Principal {
  /** For the watermark audit and logs: never the token itself. */
  actor: string;
  admin: boolean;
  consumer: string | null;
}

const OPEN: Principal = { actor: 'anonymous', admin: true, consumer: null };

const sha256 = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

export class Authenticator {
  /** Digests of the configured admin tokens, compared in constant time with the presented token's. */
  private readonly adminDigests: Buffer[];

  constructor(private readonly mode: 'token' | 'none', adminTokens: Secret[], private readonly tokens: TokensRepo) {
    // Hashed once: every request compares against them.
    this.adminDigests = adminTokens.map((s) => sha256(s.reveal()));
  }

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (this.mode === 'none' && header === undefined) return OPEN;
    if (header === undefined) throw apiError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>" (an admin token, or a consumer token from POST /v1/consumers/{name}/tokens)');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw apiError('UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"');
    return this.authenticateToken(m[1]!);
  }

  /** The principal of a bearer token (also given as an OAuth2 client secret to the Iceberg REST catalog). */
  async authenticateToken(token: string): Promise<Principal> {
    if (this.adminDigests.length > 0) {
      const presented = sha256(token);
      if (this.adminDigests.some((d) => crypto.timingSafeEqual(d, presented))) return { actor: 'admin:configured', admin: true, consumer: null };
    }
    const issued = await this.tokens.authenticate(token);
    if (!issued) throw apiError('UNAUTHORIZED', 'unknown or revoked token');
    return {
      actor: `token:${issued.prefix}`,
      admin: issued.scopes.includes('admin'),
      consumer: issued.scopes.includes('consumer') ? issued.consumer : null,
    };
  }
}

export function requireAdmin(p: Principal): void {
  if (!p.admin) throw apiError('FORBIDDEN', 'this needs a token with the admin scope');
}

/** Admins act for anyone; a consumer token only for its own consumer. */
export function requireConsumer(p: Principal, consumer: string): void {
  if (p.admin) return;
  if (p.consumer !== consumer) throw apiError('FORBIDDEN', `this token does not belong to consumer "${consumer}"`);
}
