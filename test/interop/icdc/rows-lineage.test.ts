// Issue 17, second slice: `ips changes --rows` on v3 row lineage, across schema changes and with
// the table's identifier fields, against Spark 3.5 + Iceberg 1.10 (which writes v3 tables here).
//   - lineage: the changelog per snapshot pairs updates by `_row_id`. Oracle: Spark's reads of
//     `_row_id` and `_last_updated_sequence_number` at each snapshot and its parent (spec "Row
//     Lineage": rows at the snapshot updated after the parent are INSERT, or UPDATE_AFTER when
//     the parent had their row id; rows at the parent whose row id is gone are DELETE, those
//     whose row id was updated UPDATE_BEFORE). Merge-on-read (deletion vectors) and
//     copy-on-write (carry-over rows, which lineage skips). Net changes on the same tables
//     against Spark's EXCEPT ALL both ways.
//   - schema change: a column added and one renamed mid-range; oracle: Spark's time travel to
//     each end (each read with its snapshot's schema), projected by field onto the `to` schema.
//   - identifier fields: a table with `identifier-field-ids` pairs updates by them without
//     flags; oracle: Spark's create_changelog_view with compute_updates on those columns.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { ManifestReader } from '../../../src/capture/manifest-reader.js';
import { resolveRangeWithHistory } from '../../../src/capture/range.js';
import { netRowChanges, type RowChange } from '../../../src/rows/net-rows.js';
import { rowChangelog, type ChangelogOptions, type ChangelogResult } from '../../../src/rows/changelog.js';
import { ipsFileIO } from '../engine-report.js';
import { DAY0_US, RowGen } from './data.js';
import { EngineServer } from './engines.js';
import { loadSource, runIps, SOURCE_CATALOG, type IpsContext } from './ips-steps.js';

const LONG = 10 * 60_000;
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const COW = { 'write.delete.mode': 'copy-on-write', 'write.update.mode': 'copy-on-write', 'write.merge.mode': 'copy-on-write' };
const MERGE = 'MERGE INTO {t} t USING batch_rows s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *';

type Cells = (string | null)[];

/** µs since epoch (as text) of ips's rendering of a timestamptz (`2026-03-01T05:00:00.123456+00:00`). */
function isoMicros(s: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})\+00:00$/.exec(s);
  if (!m) throw new Error(`not ips's timestamptz rendering: ${s}`);
  return String(Date.parse(`${m[1]}Z`) * 1000 + Number(m[2]));
}

/** An ips row as text cells in the order of `cols` (ts as µs). */
function cells(r: RowChange, cols: string[]): Cells {
  return cols.map((c) => (r[c] === null || r[c] === undefined ? null : c === 'ts' ? isoMicros(String(r[c])) : String(r[c])));
}

/** a − b as multisets of rows. */
function minus(a: Cells[], b: Cells[]): Cells[] {
  const count = new Map<string, number>();
  for (const r of b) count.set(JSON.stringify(r), (count.get(JSON.stringify(r)) ?? 0) + 1);
  return a.filter((r) => {
    const k = JSON.stringify(r);
    const n = count.get(k) ?? 0;
    if (n > 0) count.set(k, n - 1);
    return n === 0;
  });
}

describe('ips changes --rows: v3 row lineage, schema changes and identifier fields against Spark', () => {
  let server: EngineServer;
  let ctx: IpsContext;
  let work: string;

  beforeAll(async () => {
    const env = testEnv();
    work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ips-rows-lineage-'));
    const ns = `rowsl_${process.pid}_${Date.now().toString(36)}`;
    const root = `file://${work}`;
    ctx = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage: 'local' };
    await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool));
    server = EngineServer.start({ storage: 'local', warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns });
  }, LONG);

  afterAll(async () => {
    await server?.close();
    await ctx?.pool.end();
    ctx?.io.close();
    if (work) await fs.promises.rm(work, { recursive: true, force: true });
  });

  const sql = async (T: string, stmts: string[], rows?: [number, number, string | null, number | null, number][]): Promise<string> => (await server.sparkSql(T, stmts, rows)).snapshot_id!;

  async function ipsChangelog(T: string, from: string, to: string, opts: ChangelogOptions = {}): Promise<{ rows: RowChange[]; result: ChangelogResult; progress: string[] }> {
    const md = await loadSource(ctx, T);
    const reader = new ManifestReader(ctx.io);
    const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
    const rows: RowChange[] = [];
    const progress: string[] = [];
    const result = await rowChangelog(ctx.io, md, reader, range, (r) => rows.push(r), { ...opts, progress: (l) => progress.push(l) });
    return { rows, result, progress };
  }

  async function ipsNet(T: string, from: string, to: string) {
    const md = await loadSource(ctx, T);
    const reader = new ManifestReader(ctx.io);
    const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
    const rows: RowChange[] = [];
    const result = await netRowChanges(ctx.io, md, reader, range, (r) => rows.push(r));
    return { rows, result };
  }

  const BASE = ['id', 'ts', 'name', 'qty', 'batch'];
  const baseSelect = 'CAST(id AS STRING), CAST(unix_micros(ts) AS STRING), name, CAST(qty AS STRING), CAST(batch AS STRING)';

  /** The lineage changelog of (from, to] from Spark's reads of _row_id and _last_updated_sequence_number. */
  async function lineageOracle(T: string, from: string, to: string): Promise<string[]> {
    const info = await server.snapshots('spark', T);
    const ids = info.lineage.slice(info.lineage.indexOf(from) + 1, info.lineage.indexOf(to) + 1);
    const seq = (id: string) => BigInt(info.snapshots.find((s) => s.snapshot_id === id)!.sequence_number);
    const read = async (id: string) => (await server.sparkSql(T, [`SELECT ${baseSelect}, CAST(_row_id AS STRING), CAST(_last_updated_sequence_number AS STRING) FROM {t} VERSION AS OF ${id}`])).result;
    const want: string[] = [];
    let parent = from;
    let ordinal = 0;
    for (const id of ids) {
      const p = parent;
      parent = id;
      if (info.snapshots.find((s) => s.snapshot_id === id)!.operation === 'replace') continue;
      const [now, before] = [await read(id), await read(p)];
      expect(now.every((r) => r[5] !== null && r[6] !== null), `${T}@${id}: Spark reads lineage for every row`).toBe(true);
      const changed = now.filter((r) => BigInt(r[6]!) > seq(p));
      const unchanged = new Set(now.filter((r) => BigInt(r[6]!) <= seq(p)).map((r) => r[5]));
      const nowIds = new Set(now.map((r) => r[5]));
      const beforeIds = new Set(before.map((r) => r[5]));
      for (const r of changed) want.push(JSON.stringify([...r.slice(0, 5), beforeIds.has(r[5]) ? 'UPDATE_AFTER' : 'INSERT', ordinal, id]));
      for (const r of before.filter((x) => !unchanged.has(x[5]))) want.push(JSON.stringify([...r.slice(0, 5), nowIds.has(r[5]) ? 'UPDATE_BEFORE' : 'DELETE', ordinal, id]));
      ordinal++;
    }
    return want.sort();
  }

  const tagged = (rows: RowChange[], cols: string[]) => rows.map((r) => JSON.stringify([...cells(r, cols), r['_change_type'], r['_change_ordinal'], r['_commit_snapshot_id']])).sort();

  for (const mode of ['merge-on-read', 'copy-on-write'] as const) {
    it(`v3 ${mode}: the changelog pairs updates by _row_id as Spark's lineage columns say; net changes equal EXCEPT ALL`, async () => {
      const T = `rows_lineage_${mode === 'merge-on-read' ? 'mor' : 'cow'}`;
      await server.create('spark', T, 'day', { 'format-version': '3', ...(mode === 'merge-on-read' ? MOR : COW) });
      const gen = new RowGen(mode === 'merge-on-read' ? 1801 : 1802);
      const b1 = [0, 1].flatMap((d) => gen.rows(d, 12, 1));
      const s1 = await server.append('spark', T, b1);
      const s2 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 12, 2)));
      const s3 = await sql(T, ['UPDATE {t} SET qty = qty + 1000 WHERE id % 5 = 1']);
      const s4 = await sql(T, [MERGE], [...gen.updates(b1.slice(0, 3), 3), ...gen.rows(1, 4, 3)]);
      const s5 = await sql(T, ['DELETE FROM {t} WHERE id % 7 = 0']);
      // An update that leaves the values as they were: an update for lineage, nothing for EXCEPT ALL.
      const s6 = await sql(T, ['UPDATE {t} SET name = name WHERE id % 11 = 2']);
      const md = await loadSource(ctx, T);
      expect(md.formatVersion).toBe(3);

      const { rows, result, progress } = await ipsChangelog(T, s1, s6);
      expect(result.pairing.kind, 'v3 without identifier fields: pairs by _row_id').toBe('row-id');
      const want = await lineageOracle(T, s1, s6);
      expect(tagged(rows, BASE), `${T} (${s1}, ${s6}]: changelog by _row_id vs Spark's lineage columns`).toEqual(want);
      expect(want.filter((x) => x.includes('UPDATE_AFTER')).length, 'updates paired').toBeGreaterThan(5);
      expect(want.some((x) => x.includes(`"UPDATE_AFTER",4,"${s6}"`)), 'the no-op UPDATE is an update by lineage').toBe(true);
      if (mode === 'copy-on-write') {
        // Copy-on-write rewrites carried rows over: lineage skips them instead of comparing values.
        const skipped = progress.map((l) => /row lineage \(v3\): (\d+) carry-over/.exec(l)).filter((m) => m !== null).map((m) => Number(m![1]));
        expect(skipped.some((n) => n > 0), `carry-over rows skipped: ${progress.join(' | ')}`).toBe(true);
      }

      for (const [from, to] of [[s1, s6], [s2, s5], [s3, s4], [s4, s6]] as const) {
        const net = await ipsNet(T, from, to);
        expect(net.result.lineage, 'lineage used').toBe(true);
        for (const [kind, a, b] of [['INSERT', to, from], ['DELETE', from, to]] as const) {
          const spark = (await server.sparkSql(T, [`SELECT ${baseSelect} FROM {t} VERSION AS OF ${a} EXCEPT ALL SELECT ${baseSelect} FROM {t} VERSION AS OF ${b}`])).result;
          expect(net.rows.filter((r) => r['_change_type'] === kind).map((r) => JSON.stringify(cells(r, BASE))).sort(), `${T} (${from}, ${to}] ${kind} vs Spark EXCEPT ALL`).toEqual(spark.map((r) => JSON.stringify(r)).sort());
        }
      }
      // Pairing by lineage can be turned off: then the changelog is the plain difference.
      const plain = await ipsChangelog(T, s5, s6, { pairBy: 'none' });
      expect(plain.rows, 'the no-op UPDATE changes no values').toEqual([]);
    }, LONG);
  }

  it('a column added and a column renamed inside the range: each end read with its own schema, rows in the schema of to', async () => {
    const T = 'rows_schema_change';
    await server.create('spark', T, 'day', { 'format-version': '2', ...MOR });
    const gen = new RowGen(1803);
    const s1 = await server.append('spark', T, [0, 1].flatMap((d) => gen.rows(d, 10, 1)));
    await sql(T, ['ALTER TABLE {t} ADD COLUMN note STRING']);
    const s2 = await sql(T, [`INSERT INTO {t} SELECT id + 1000, ts, name, qty, batch, concat('n-', CAST(id AS STRING)) FROM {t} VERSION AS OF ${s1} WHERE id % 3 = 0`]);
    const s3 = await sql(T, ['UPDATE {t} SET note = \'set\' WHERE id % 4 = 0 AND id < 1000']);
    await sql(T, ['ALTER TABLE {t} RENAME COLUMN qty TO amount']);
    const s4 = await sql(T, ['UPDATE {t} SET amount = amount + 1 WHERE id % 5 = 0']);
    const cols = ['id', 'ts', 'name', 'amount', 'batch', 'note'];
    // Spark's time travel, each snapshot with its own schema: the columns it has by name at
    // that snapshot, null for the column not yet added (which only `to` has).
    const at = async (id: string): Promise<Cells[]> => {
      const r = (await server.sparkSql(T, [`SELECT to_json(struct(*)), CAST(unix_micros(ts) AS STRING) FROM {t} VERSION AS OF ${id}`])).result;
      return r.map(([json, ts]) => {
        const o = JSON.parse(json!) as Record<string, unknown>;
        const amount = 'amount' in o ? o['amount'] : o['qty'];
        return [String(o['id']), ts!, (o['name'] as string | undefined) ?? null, amount === undefined || amount === null ? null : String(amount), String(o['batch']), (o['note'] as string | undefined) ?? null];
      });
    };
    const states = new Map<string, Cells[]>();
    for (const s of [s1, s2, s3, s4]) states.set(s, await at(s));
    expect(states.get(s1)!.every((r) => r[5] === null) && states.get(s4)!.some((r) => r[5] === 'set'), 'note is added in the range').toBe(true);
    const notes: string[] = [];
    for (const [from, to] of [[s1, s4], [s1, s2], [s2, s4], [s3, s4]] as const) {
      const md = await loadSource(ctx, T);
      const reader = new ManifestReader(ctx.io);
      const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
      const rows: RowChange[] = [];
      const r = await netRowChanges(ctx.io, md, reader, range, (x) => rows.push(x), { note: (l) => notes.push(l) });
      expect(Object.keys(rows[0] ?? {}).slice(0, 6), 'the columns of to, by name').toEqual(rows.length ? (to === s2 || to === s3 ? ['id', 'ts', 'name', 'qty', 'batch', 'note'] : cols) : []);
      const colsAtTo = to === s4 ? cols : ['id', 'ts', 'name', 'qty', 'batch', 'note'];
      for (const [kind, a, b] of [['INSERT', to, from], ['DELETE', from, to]] as const) {
        expect(rows.filter((x) => x['_change_type'] === kind).map((x) => JSON.stringify(cells(x, colsAtTo))).sort(), `(${from}, ${to}] ${kind} vs Spark time travel`)
          .toEqual(minus(states.get(a)!, states.get(b)!).map((x) => JSON.stringify(x)).sort());
      }
      expect(r.notes.length, `(${from}, ${to}]: the schema change (every pair here crosses one) is said`).toBe(1);
    }
    expect(notes.some((l) => /added note/.test(l) && /renamed qty → amount/.test(l)), notes.join('\n')).toBe(true);

    // The changelog per snapshot across both changes, in the schema of to: per snapshot, Spark's
    // state minus its parent's.
    const cl = await ipsChangelog(T, s1, s4);
    expect(cl.result.notes.some((l) => /schema changed/.test(l))).toBe(true);
    const want: string[] = [];
    let parent = s1;
    [s2, s3, s4].forEach((id, ordinal) => {
      for (const [kind, a, b] of [['INSERT', id, parent], ['DELETE', parent, id]] as const) {
        for (const r of minus(states.get(a)!, states.get(b)!)) want.push(JSON.stringify([...r, kind, ordinal, id]));
      }
      parent = id;
    });
    expect(tagged(cl.rows, cols)).toEqual(want.sort());

    // The CLI says so on stderr.
    const env = testEnv();
    const cli = await runIps(ctx, ['changes', `${ctx.ns}.${T}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG, '--from', s1, '--to', s4, '--rows', '--net']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(/note: rows: the schema changed .*added note/);
    expect(cli.stdout.trim().split('\n').length).toBe((await ipsNet(T, s1, s4)).rows.length);
  }, LONG);

  it('a table with identifier fields pairs updates by them by default, as Spark\'s create_changelog_view does', async () => {
    const T = 'rows_identifier_fields';
    const tp = Object.entries({ 'format-version': '2', ...COW }).map(([k, v]) => `'${k}'='${v}'`).join(', ');
    await sql(T, ['DROP TABLE IF EXISTS {t} PURGE', `CREATE TABLE {t} (id BIGINT NOT NULL, ts TIMESTAMP, name STRING, qty INT, batch INT) USING iceberg PARTITIONED BY (days(ts)) TBLPROPERTIES (${tp})`, 'ALTER TABLE {t} SET IDENTIFIER FIELDS id']);
    const gen = new RowGen(1804);
    const b1 = [0, 1].flatMap((d) => gen.rows(d, 15, 1));
    const insert = 'INSERT INTO {t} SELECT coalesce(id, 0L), ts, name, qty, batch FROM batch_rows';
    const s1 = await sql(T, [insert], b1);
    const s2 = await sql(T, [insert], [0, 1].flatMap((d) => gen.rows(d, 15, 2)));
    const s3 = await sql(T, ['MERGE INTO {t} t USING (SELECT coalesce(id, 0L) AS id, ts, name, qty, batch FROM batch_rows) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *'],
      [...gen.updates(b1.filter((r) => r[1] < DAY0_US + 86_400_000_000).slice(0, 4), 3), ...gen.rows(0, 3, 3)]);
    const s4 = await sql(T, ['DELETE FROM {t} WHERE id % 6 = 0']);
    const md = await loadSource(ctx, T);
    expect(md.schemas.find((s) => s.schemaId === md.currentSchemaId)!.identifierFieldIds, 'Spark set the identifier field').toEqual([1]);
    const view = 'cl_identifier_fields';
    const spark = (await server.sparkSql(T, [
      `CALL src.system.create_changelog_view(table => '{ns}.${T}', changelog_view => '${view}', options => map('start-snapshot-id', '${s1}', 'end-snapshot-id', '${s4}'), identifier_columns => array('id'))`,
      `SELECT ${baseSelect}, _change_type, CAST(_change_ordinal AS STRING), CAST(_commit_snapshot_id AS STRING) FROM ${view}`])).result;
    const want = spark.map((r) => JSON.stringify([...r.slice(0, 6), Number(r[6]), r[7]])).sort();
    const { rows, result } = await ipsChangelog(T, s1, s4);
    expect(result.pairing).toEqual({ kind: 'columns', columns: ['id'] });
    expect(tagged(rows, BASE), `(${s1}, ${s4}] vs Spark create_changelog_view with identifier_columns id`).toEqual(want);
    expect(want.filter((x) => x.includes('UPDATE_AFTER')).length, 'the MERGE updated 4 rows').toBe(4);
    expect(s2).not.toBe(s3);
  }, LONG);
});
