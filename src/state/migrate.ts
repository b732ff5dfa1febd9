import crypto from 'node:crypto';
import os from 'node:os';
import { Umzug, type UmzugStorage } from 'umzug';
import { IpsError, describeError, isIpsError } from '../errors.js';
import { SQLSTATE, sqlState, type Database, type Queryable } from './database.js';
import { MIGRATIONS, type SqlMigration } from './migrations/index.js';

/**
 * Versioned schema migrations, applied at start-up by umzug (the migration list, ordering,
 * bookkeeping and events are umzug's). What this module adds is what several service replicas
 * starting at once on one database need, without advisory locks (CockroachDB has none):
 *
 * - storage: the table `ips_migrations` (one row per applied migration), written in the same
 *   transaction as the migration's SQL, so a crash never leaves a migration applied but
 *   unrecorded;
 * - a lock row in `ips_migration_lock`, taken with INSERT … ON CONFLICT DO NOTHING and retried
 *   with backoff; it has an expiry that the holder keeps pushing forward (heartbeat), so the lock
 *   of a crashed process is taken over after the TTL;
 * - fencing: each migration's transaction first extends the lock row *as its owner* and checks
 *   that its migration is still unrecorded. A process that lost the lock (paused past the TTL)
 *   fails instead of applying anything, and a takeover never applies a migration twice.
 */

export interface MigrateOptions {
  /** Who is migrating, recorded in ips_migrations.applied_by (default host:pid:random). */
  owner?: string;
  /** Lock expiry, pushed forward every ttl/3 while migrating (default 60 s). */
  lockTtlMs?: number;
  /** How long to wait for another process's migration before giving up (default 5 min). */
  lockTimeoutMs?: number;
  /** Progress events (migration applied, waiting for the lock, lock taken over). */
  log?: (event: Record<string, unknown>) => void;
  /** The migration list (tests); default MIGRATIONS. */
  migrations?: readonly SqlMigration[];
}

export interface MigrateResult {
  /** Migrations this call applied. */
  applied: string[];
  /** Every migration recorded in the database after the call, in order. */
  executed: string[];
  /**
   * Recorded migrations this code does not know: the database was migrated by a newer version
   * of ips. Additive migrations keep older replicas working; the caller decides whether to go on.
   */
  unknown: string[];
}

const LOCK_ID = 'schema';

const BOOTSTRAP = [
  `CREATE TABLE IF NOT EXISTS ips_migrations (
     name TEXT PRIMARY KEY,
     applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
     applied_by TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ips_migration_lock (
     id TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
     expires_at TIMESTAMPTZ NOT NULL)`,
];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function defaultOwner(): string {
  return `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
}

/**
 * Two processes running CREATE TABLE IF NOT EXISTS at the same moment can both pass the
 * existence check on PostgreSQL; the loser fails with a unique violation on the catalog, 42P07,
 * or 42710 when the race is lost on the table's row type in pg_type. The table is there then: try again.
 */
async function bootstrap(db: Database): Promise<void> {
  for (const stmt of BOOTSTRAP) {
    for (let attempt = 0; ; attempt++) {
      try {
        await db.query(stmt);
        break;
      } catch (e) {
        const s = sqlState(e);
        const race = s === SQLSTATE.UNIQUE_VIOLATION || s === SQLSTATE.DUPLICATE_TABLE || s === SQLSTATE.DUPLICATE_OBJECT || s === SQLSTATE.SERIALIZATION_FAILURE;
        if (!race || attempt >= 5) throw e;
        await sleep(20 + Math.random() * 50);
      }
    }
  }
}

/** The migration lock: one row, owned by one process at a time, with an expiry. */
export class MigrationLock {
  private heartbeat: NodeJS.Timeout | undefined;
  private held = false;

  constructor(
    private readonly db: Database,
    readonly owner: string,
    private readonly ttlMs: number,
    private readonly log: (event: Record<string, unknown>) => void = () => {},
  ) {}

  /** Waits (with backoff) until this process owns the lock; takes over an expired one. */
  async acquire(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 50;
    let announced = false;
    for (;;) {
      const ins = await this.db.query(
        `INSERT INTO ips_migration_lock (id, owner, expires_at)
         VALUES ($1, $2, now() + $3::INT8 * INTERVAL '1 millisecond')
         ON CONFLICT (id) DO NOTHING`,
        [LOCK_ID, this.owner, this.ttlMs]);
      if (ins.rowCount === 1) break;
      // The holder died without releasing: its expiry passed. One process wins this update.
      const takeover = await this.db.query<{ owner: string }>(
        `UPDATE ips_migration_lock SET owner = $2, acquired_at = now(), expires_at = now() + $3::INT8 * INTERVAL '1 millisecond'
          WHERE id = $1 AND expires_at < now()
         RETURNING owner`,
        [LOCK_ID, this.owner, this.ttlMs]);
      if (takeover.rowCount === 1) {
        this.log({ event: 'migration-lock-taken-over', owner: this.owner });
        break;
      }
      if (Date.now() >= deadline) {
        const cur = await this.db.query<{ owner: string; expires_at: Date }>(
          'SELECT owner, expires_at FROM ips_migration_lock WHERE id = $1', [LOCK_ID]);
        const who = cur.rows[0] ? `${cur.rows[0].owner} (lock expires ${cur.rows[0].expires_at.toISOString()})` : 'another process';
        throw new IpsError('MIGRATION_LOCK_TIMEOUT',
          `gave up waiting ${Math.round(timeoutMs / 1000)}s for the schema migration lock held by ${who}; ` +
          'if that process is gone, its lock expires by itself; otherwise wait for its migration to finish');
      }
      if (!announced) {
        this.log({ event: 'migration-lock-wait', owner: this.owner });
        announced = true;
      }
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 1000);
    }
    this.held = true;
    this.heartbeat = setInterval(() => {
      this.extend(this.db).catch(() => {}); // a lost lock is caught by the fence
    }, Math.max(10, Math.floor(this.ttlMs / 3)));
    this.heartbeat.unref();
  }

  private async extend(q: Queryable): Promise<boolean> {
    const res = await q.query(
      `UPDATE ips_migration_lock SET expires_at = now() + $3::INT8 * INTERVAL '1 millisecond'
        WHERE id = $1 AND owner = $2`,
      [LOCK_ID, this.owner, this.ttlMs]);
    return res.rowCount === 1;
  }

  /**
   * Inside a migration's transaction: proves this process still owns the lock, and holds the
   * lock row until the transaction ends (a takeover waits for it, then sees the migration).
   */
  async fence(tx: Queryable): Promise<void> {
    if (!(await this.extend(tx))) {
      throw new IpsError('MIGRATION_LOCK_LOST',
        `the schema migration lock of ${this.owner} expired and another process took it over; this process applied nothing more; restart it`);
    }
  }

  async release(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (!this.held) return;
    this.held = false;
    await this.db.query('DELETE FROM ips_migration_lock WHERE id = $1 AND owner = $2', [LOCK_ID, this.owner]);
  }
}

function storage(): UmzugStorage<Database> {
  return {
    async executed({ context }) {
      const res = await context.query<{ name: string }>('SELECT name FROM ips_migrations ORDER BY name');
      return res.rows.map((r) => r.name);
    },
    async logMigration({ name, context }) {
      // Normally already there: the migration's own transaction recorded it.
      await context.query(
        'INSERT INTO ips_migrations (name, applied_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, 'umzug']);
    },
    async unlogMigration({ name, context }) {
      await context.query('DELETE FROM ips_migrations WHERE name = $1', [name]);
    },
  };
}

/** Applies pending migrations (once, across every process on this database). */
export async function migrate(db: Database, options: MigrateOptions = {}): Promise<MigrateResult> {
  const owner = options.owner ?? defaultOwner();
  const log = options.log ?? (() => {});
  const list = options.migrations ?? MIGRATIONS;
  const names = list.map((m) => m.name);
  if (new Set(names).size !== names.length || names.some((n, i) => i > 0 && n <= names[i - 1]!)) {
    throw new IpsError('INTERNAL', `migration names must be unique and in ascending order: ${names.join(', ')}`);
  }
  const lock = new MigrationLock(db, owner, options.lockTtlMs ?? 60_000, log);
  const applied: string[] = [];

  const umzug = new Umzug<Database>({
    context: db,
    storage: storage(),
    logger: undefined,
    migrations: list.map((m) => ({
      name: m.name,
      up: async ({ context }) => {
        // Retried as a whole on a serialization failure (CockroachDB): nothing of it is kept.
        const didApply = await context.withTransaction(async (tx) => {
          await lock.fence(tx);
          const done = await tx.query('SELECT 1 FROM ips_migrations WHERE name = $1', [m.name]);
          if (done.rowCount > 0) return false; // another process applied it while we waited
          await tx.exec(m.up);
          await tx.query('INSERT INTO ips_migrations (name, applied_by) VALUES ($1, $2)', [m.name, owner]);
          return true;
        });
        if (didApply) {
          applied.push(m.name);
          log({ event: 'migration-applied', name: m.name, owner });
        }
      },
    })),
  });
  umzug.on('beforeCommand', async ({ command }) => {
    if (command === 'up') await lock.acquire(options.lockTimeoutMs ?? 300_000);
  });
  umzug.on('afterCommand', async ({ command }) => {
    if (command === 'up') await lock.release();
  });

  try {
    await bootstrap(db);
    // Fast path: nothing pending, no lock (every replica start-up after the first).
    if ((await umzug.pending()).length > 0) await umzug.up();
  } catch (e) {
    await lock.release().catch(() => {});
    const cause = (e as { cause?: unknown }).cause ?? e;
    if (isIpsError(cause)) throw cause;
    if (isIpsError(e)) throw e;
    throw new IpsError('MIGRATION_FAILED', `schema migration failed: ${describeError(e)}`, { cause: e });
  }
  const executed = await storage().executed({ context: db });
  const known = new Set(names);
  return { applied, executed, unknown: executed.filter((n) => !known.has(n)) };
}
