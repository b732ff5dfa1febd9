// Names for server-side prepared statements, shared by both drivers.

/**
 * Names for server-side prepared statements, by SQL text. A named statement is parsed and
 * planned once per connection (pg sends Parse only the first time a connection sees the name;
 * PostgreSQL keeps the plan, generic after five runs); an unnamed one is parsed, analysed and
 * planned on every call, which was about a third of the server's CPU on the prepare → commit
 * path. Only parameterised statements get a name (one statement each, extended protocol); the
 * map is bounded so that SQL built with a variable number of placeholders cannot grow every
 * connection's server memory without limit: past the bound, statements go unnamed as before.
 *
 * A name is never reused for another text: pg refuses that on a connection that already
 * prepared it. After a schema change under a live statement (another replica's migration),
 * PostgreSQL answers "cached plan must not change result type" for as long as the connection
 * keeps it; `forget` gives every text a new name, so that the retry prepares afresh.
 */
export class StatementNames {
  private readonly names = new Map<string, string>();
  /** Names only count up: a name once given is never given to another text. */
  private next = 0;
  constructor(private readonly limit = 2000) {}

  /** The statement's name, or undefined past the bound (run it unnamed). */
  nameOf(sql: string): string | undefined {
    let name = this.names.get(sql);
    if (name === undefined) {
      if (this.names.size >= this.limit) return undefined;
      name = `ips_${this.next++}`;
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
  }

  get size(): number {
    return this.names.size;
  }
}

/** PostgreSQL's answer when a prepared statement's result type changed under it (0A000). */
export function isStalePreparedStatement(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return err?.code === '0A000' && typeof err.message === 'string' && err.message.includes('cached plan must not change result type');
}

