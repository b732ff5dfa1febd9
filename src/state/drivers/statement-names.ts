// Names for server-side prepared statements, shared by both drivers.
import crypto from 'node:crypto';

/**
 * Names for server-side prepared statements, by SQL text. A named statement is parsed and
 * planned once per connection (pg sends Parse only the first time a connection sees the name;
 * PostgreSQL keeps the plan, generic after five runs); an unnamed one is parsed, analysed and
 * planned on every call, which was about a third of the server's CPU on the prepare → commit
 * path. Only parameterised statements get a name (one statement each, extended protocol); the
 * map is bounded so that SQL built with a variable number of placeholders cannot grow every
 * connection's server memory without limit: past the bound, statements go unnamed as before.
 *
 * A name is derived from the text (a hash), so a name always means the same statement, in every
 * process: behind a connection pooler in transaction mode (PgBouncer before 1.21, or with
 * `max_prepared_statements = 0`), where one client's statements can meet a server connection
 * another client prepared, a name can be missing there (26000) or present already (42P05) but
 * never stand for another statement. Either answer turns naming off for the process
 * (`disable`), and the statement runs again unnamed.
 *
 * After a schema change under a live statement (another replica's migration), PostgreSQL
 * answers "cached plan must not change result type" for as long as the connection keeps it;
 * `forget` moves every text to a new generation of names, so that the retry prepares afresh.
 */
export class StatementNames {
  private readonly names = new Map<string, string>();
  private generation = 0;
  private off = false;
  constructor(private readonly limit = 2000) {}

  /** The statement's name, or undefined (run it unnamed) past the bound or once naming is off. */
  nameOf(sql: string): string | undefined {
    if (this.off) return undefined;
    let name = this.names.get(sql);
    if (name === undefined) {
      if (this.names.size >= this.limit) return undefined;
      name = `ips_${this.generation}_${crypto.createHash('sha256').update(sql).digest('hex').slice(0, 32)}`;
      this.names.set(sql, name);
    }
    return name;
  }

  /** Whether the text already has a name (a connection may still have to prepare it). */
  has(sql: string): boolean {
    return this.names.has(sql);
  }

  /** Gives up one text's name (its statement failed to prepare, or went stale). */
  drop(sql: string): void {
    this.names.delete(sql);
  }

  /** Gives up every name: the next use of each text prepares it afresh under a new one. */
  forget(): void {
    this.names.clear();
    this.generation++;
  }

  /** Names nothing from now on (the server does not keep statements per client). */
  disable(): void {
    this.off = true;
    this.names.clear();
  }

  get enabled(): boolean {
    return !this.off;
  }
}

/**
 * A named statement the server connection does not have (26000) or has already (42P05): the
 * connection is not the one the statement was prepared on, i.e. a pooler in transaction mode.
 * ips never prepares statements in SQL, so these come only from the drivers' names.
 */
export function isLostPreparedStatement(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '26000' || code === '42P05';
}

/** PostgreSQL's answer when a prepared statement's result type changed under it (0A000). */
export function isStalePreparedStatement(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return err?.code === '0A000' && typeof err.message === 'string' && err.message.includes('cached plan must not change result type');
}

