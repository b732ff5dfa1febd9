import { parse, protocol, type PGlite } from '@electric-sql/pglite';
import type { QueryResult } from '../database.js';
import { StatementNames, isStalePreparedStatement } from './statement-names.js';

/**
 * Parameterised statements on PGlite as named prepared statements, each run in one call into
 * the WebAssembly backend. PGlite's own `query()` makes six calls per statement (Parse, Describe
 * the statement, Bind, Describe the portal, Execute, Sync), and the server parses, analyses and
 * plans it every time; measured on this machine, a primary-key lookup costs ≈ 240 µs of CPU that
 * way and ≈ 80 µs as Bind + Describe + Execute + Sync of a statement prepared once. The embedded
 * database is one connection, so one set of names serves the whole process.
 *
 * Parameters are sent as text exactly as the pg driver sends them (`normalizeParams` has made
 * them strings, numbers, booleans or null), and rows are parsed by PGlite's own result parser
 * with the instance's type parsers, so both paths give the same values.
 *
 * The caller holds PGlite's locks (see `PgliteDatabase`): these calls go around `query()`.
 */
export class PglitePreparedStatements {
  private readonly names: StatementNames;

  constructor(private readonly pg: PGlite, limit?: number) {
    this.names = new StatementNames(limit);
  }

  /** Runs one statement; undefined when it should go through `query()` (past the bound). */
  async run<R>(sql: string, values: readonly (string | number | boolean | null)[]): Promise<QueryResult<R> | undefined> {
    const fresh = !this.names.has(sql);
    const name = this.names.nameOf(sql);
    if (name === undefined) return undefined;
    const messages = [
      ...(fresh ? [protocol.serialize.parse({ name, text: sql })] : []),
      protocol.serialize.bind({ statement: name, values: values.map(text) }),
      protocol.serialize.describe({ type: 'P' }),
      protocol.serialize.execute({}),
      protocol.serialize.sync(),
    ];
    const res = await this.pg.execProtocol(concat(messages), { syncToFs: false, throwOnError: false });
    // A fresh statement keeps its name only if the server prepared it (the Bind may still fail).
    if (fresh && !res.messages.some((m) => m.name === 'parseComplete')) this.names.drop(sql);
    const error = res.messages.find((m) => m.name === 'error');
    if (error) {
      if (isStalePreparedStatement(error)) await this.close(sql, name);
      throw error;
    }
    const [result] = parse.parseResults(res.messages, this.pg.parsers);
    const rows = (result?.rows ?? []) as R[];
    return { rows, rowCount: Math.max(result?.affectedRows ?? 0, rows.length) };
  }

  /** Drops a statement whose result type changed under it (a migration), so the next run prepares it again. */
  private async close(sql: string, name: string): Promise<void> {
    this.names.drop(sql);
    await this.pg.execProtocol(concat([protocol.serialize.close({ type: 'S', name }), protocol.serialize.sync()]), { syncToFs: false, throwOnError: false });
  }
}

function text(v: string | number | boolean | null): string | null {
  return v === null ? null : typeof v === 'string' ? v : String(v);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
