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

/** At most this many verified tokens are cached; past it the cache starts over. */
const MAX_CACHED_TOKENS = 10_000;

interface Verified {
  principal: Principal;
  tokenId: bigint;
  /** performance.now() past which the database is asked again. */
  until: number;
}

export class Authenticator {
  /** Digests of the configured admin tokens, compared in constant time with the presented token's. */
  private readonly adminDigests: Buffer[];
  /**
   * Issued tokens verified in the last `cacheMs`, by the hex digest of the secret (never the
   * secret itself). A pipeline step sends a prepare and a commit a few milliseconds apart with one
   * token, and each lookup was a database round trip on the hot path. Only hits are cached: an
   * unknown token asks every time (a newly issued one works at once, and guessing fills nothing).
   */
  private readonly verified = new Map<string, Verified>();
  /** Moves on every revocation here: a lookup that began before one does not cache what it read. */
  private revocations = 0;

  constructor(private readonly mode: 'token' | 'none', adminTokens: Secret[], private readonly tokens: TokensRepo, private readonly cacheMs = 0) {
    // Hashed once: every request compares against them.
    this.adminDigests = adminTokens.map((s) => sha256(s.reveal()));
  }

  /** A token revoked through this replica stops working here at once. */
  forgetToken(id: bigint): void {
    this.revocations++;
    for (const [k, v] of this.verified) if (v.tokenId === id) this.verified.delete(k);
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
    const presented = sha256(token);
    if (this.adminDigests.length > 0) {
      if (this.adminDigests.some((d) => crypto.timingSafeEqual(d, presented))) return { actor: 'admin:configured', admin: true, consumer: null };
    }
    const key = this.cacheMs > 0 ? presented.toString('hex') : '';
    if (this.cacheMs > 0) {
      const hit = this.verified.get(key);
      if (hit !== undefined) {
        if (performance.now() < hit.until) return hit.principal;
        this.verified.delete(key);
      }
    }
    const revocationsBefore = this.revocations;
    const issued = await this.tokens.authenticate(token);
    if (!issued) throw apiError('UNAUTHORIZED', 'unknown or revoked token');
    // Shared by every request the cache answers: frozen.
    const principal: Principal = Object.freeze({
      actor: `token:${issued.prefix}`,
      admin: issued.scopes.includes('admin'),
      consumer: issued.scopes.includes('consumer') ? issued.consumer : null,
    });
    if (this.cacheMs > 0 && this.revocations === revocationsBefore) {
      if (this.verified.size >= MAX_CACHED_TOKENS) this.verified.clear();
      this.verified.set(key, { principal, tokenId: issued.id, until: performance.now() + this.cacheMs });
    }
    return principal;
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
