// DuckDB as the independent tool of the table-writer tests: it writes the Parquet files (with
// Iceberg field ids), reports their footers (parquet_metadata) and evaluates predicates over
// their rows, so expected values never come from the code under test.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class Duck {
  private constructor(readonly conn: DuckDBConnection) {}

  static async open(): Promise<Duck> {
    const inst = await DuckDBInstance.create(':memory:');
    return new Duck(await inst.connect());
  }

  async rows(sql: string): Promise<Record<string, Json>[]> {
    return (await this.conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, Json>[];
  }

  /** COPY (select) TO file as Parquet, columns tagged with Iceberg field ids. */
  async writeParquet(file: string, select: string, fieldIds: Record<string, number>, opts: { rowGroupSize?: number } = {}): Promise<void> {
    // FIELD_IDS may only name columns the query has: keep the ids of those.
    const cols = new Set((await this.rows(`DESCRIBE (${select})`)).map((r) => r['column_name'] as string));
    const ids = Object.entries(fieldIds).filter(([k]) => cols.has(k)).map(([k, v]) => `${k}: ${v}`).join(', ');
    const rg = opts.rowGroupSize ? `, ROW_GROUP_SIZE ${opts.rowGroupSize}` : '';
    await this.conn.run(`COPY (${select}) TO '${file.replace(/'/g, "''")}' (FORMAT PARQUET${ids ? `, FIELD_IDS {${ids}}` : ''}${rg})`);
  }

  /** parquet_metadata(): one row per row group and column. */
  async footer(file: string): Promise<Record<string, Json>[]> {
    return this.rows(`SELECT * FROM parquet_metadata('${file}') ORDER BY row_group_id, column_id`);
  }
}

export const sqlList = (files: string[]): string => `[${files.map((f) => `'${f.replace(/'/g, "''")}'`).join(', ')}]`;

/** Days since 1970-01-01 of an ISO date. */
export const days = (iso: string): number => Date.parse(`${iso}T00:00:00Z`) / 86_400_000;
