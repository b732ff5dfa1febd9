// Issue 17: the row changelog in bounded memory, and bad input, on tables Spark writes.
//   - bounded memory: Spark writes 1,000,000 rows and a copy-on-write UPDATE of all of them; the
//     changelog of that UPDATE (2,000,000 changed rows, as JSON lines several hundred MB) runs in
//     a child `ips` whose JavaScript heap is capped far below what holding the rows would take
//     (--max-old-space-size=160) and whose engine gets a 256MB budget (DuckDB spills past it).
//     Counts against Spark's own (EXCEPT ALL both ways). Nothing is timed.
//   - bad input, on tables damaged after Spark wrote them: a position delete file removed
//     (FILES_MISSING), a Puffin file cut short so a deletion vector lies outside it
//     (CORRUPT_FILE), position deletes in Avro, which ips does not read (UNSUPPORTED_DELETE_FORMAT):
//     each a typed error, and no output file (nor a partial one) left behind.
//   - a Puffin file larger than ips reads whole: the deletion vectors are read by range, and the
//     rows are the same as before it grew.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, testEnv } from '../../setup/env.js';
import { ensureSqlCatalogTables } from '../../../src/catalog/sql-catalog.js';
import { ipsFileIO } from '../engine-report.js';
import { DAY0_US, RowGen } from './data.js';
import { EngineServer } from './engines.js';
import { SOURCE_CATALOG, type IpsContext } from './ips-steps.js';

const LONG = 20 * 60_000;
const TSX = createRequire(import.meta.url).resolve('tsx/cli');
const MOR = { 'write.delete.mode': 'merge-on-read', 'write.update.mode': 'merge-on-read', 'write.merge.mode': 'merge-on-read' };
const COW = { 'write.delete.mode': 'copy-on-write', 'write.update.mode': 'copy-on-write', 'write.merge.mode': 'copy-on-write' };

interface Run { code: number | null; stderr: string; stdout: string }

/** `ips` in a child process, with extra node options (the heap cap). */
function ips(args: string[], nodeOptions = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args], {
      cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} ${nodeOptions}`.trim() },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Counts of lines per `_change_type` in a JSON-lines file, read as a stream. */
async function countTypes(file: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let rest = '';
  for await (const chunk of fs.createReadStream(file, { encoding: 'utf8' })) {
    const lines = (rest + (chunk as string)).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      const m = /"_change_type":"([A-Z_]+)"/.exec(l);
      if (!m) throw new Error(`not a row change: ${l.slice(0, 200)}`);
      counts[m[1]!] = (counts[m[1]!] ?? 0) + 1;
    }
  }
  expect(rest).toBe('');
  return counts;
}

const localPath = (loc: string) => fileURLToPath(loc.replace(/^file:(?!\/\/)/, 'file://'));

describe('ips changes --rows: bounded memory on 2,000,000 changed rows, and damaged tables (Spark)', () => {
  let server: EngineServer;
  let ctx: IpsContext;
  let work: string;
  let base: string[];

  beforeAll(async () => {
    const env = testEnv();
    work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ips-rows-bounds-'));
    const ns = `rowsb_${process.pid}_${Date.now().toString(36)}`;
    const root = `file://${work}`;
    ctx = { io: ipsFileIO(), pool: new pg.Pool({ connectionString: env.pgUrl, max: 2 }), ns, icdcRoot: `${root}/icdc`, storage: 'local' };
    await ensureSqlCatalogTables(ctx.pool).catch(() => ensureSqlCatalogTables(ctx.pool));
    server = EngineServer.start({ storage: 'local', warehouse: `${root}/wh`, icdcWarehouse: `${root}/icdc-wh`, namespace: ns });
    base = ['--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG];
  }, LONG);

  afterAll(async () => {
    await server?.close();
    await ctx?.pool.end();
    ctx?.io.close();
    if (work) await fs.promises.rm(work, { recursive: true, force: true });
  });

  const sql = async (T: string, stmts: string[]): Promise<string> => (await server.sparkSql(T, stmts)).snapshot_id!;

  it('the changelog of a copy-on-write UPDATE of 1,000,000 rows in a 160 MB heap: counts equal Spark\'s', async () => {
    const T = 'rows_big_cow';
    const N = 1_000_000;
    await server.create('spark', T, null, { 'format-version': '2', ...COW });
    const a = await sql(T, [`INSERT INTO {t} SELECT /*+ REPARTITION(4) */ id, timestamp_micros(${DAY0_US} + id * 1000), concat('row-', CAST(id AS STRING), '-of-a-large-table'), CAST(id % 1000 AS INT), 1 FROM range(${N})`]);
    const u = await sql(T, ['UPDATE {t} SET qty = qty + 1, batch = 2']);
    const spark = async (x: string, y: string) => Number((await server.sparkSql(T, [`SELECT count(*) FROM (SELECT * FROM {t} VERSION AS OF ${x} EXCEPT ALL SELECT * FROM {t} VERSION AS OF ${y})`])).result[0]![0]);
    const [inserted, deleted] = [await spark(u, a), await spark(a, u)];
    expect([inserted, deleted], 'Spark: every row changed').toEqual([N, N]);

    const out = path.join(work, 'big.jsonl');
    const r = await ips(['changes', `${ctx.ns}.${T}`, ...base, '--from', a, '--to', u, '--rows', '--identifier-columns', 'id', '--memory-limit', '256MB', '--out', out], '--max-old-space-size=160');
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(await countTypes(out)).toEqual({ UPDATE_BEFORE: deleted, UPDATE_AFTER: inserted });
    // Held whole, the rows would far exceed the heap: the output is several times its size.
    expect(fs.statSync(out).size).toBeGreaterThan(2 * 160 * (1 << 20));
    expect(fs.readdirSync(work).filter((f) => f.startsWith('big.jsonl')), 'no spool file left').toEqual(['big.jsonl']);
    fs.rmSync(out);
  }, LONG);

  it('damaged tables are typed errors with no output left: a position delete file gone, a DV outside its Puffin file, Avro position deletes', async () => {
    const gen = new RowGen(1901);
    const cases: { T: string; props: Record<string, string>; damage: (added: { file_path: string; file_format?: string; content: number }[]) => void; error: RegExp }[] = [
      {
        T: 'rows_dmg_posdel', props: { 'format-version': '2', ...MOR },
        damage: (added) => fs.rmSync(localPath(added.find((e) => e.content === 1)!.file_path)),
        error: /error \[FILES_MISSING\]: .*position delete file/,
      },
      {
        T: 'rows_dmg_puffin', props: { 'format-version': '3', ...MOR },
        damage: (added) => {
          const p = localPath(added.find((e) => e.file_format === 'puffin')!.file_path);
          fs.truncateSync(p, 6);
        },
        error: /error \[CORRUPT_FILE\]: deletion vector at offset \d+ \(\d+ bytes\) lies outside/,
      },
      {
        T: 'rows_dmg_avro', props: { 'format-version': '2', ...MOR, 'write.delete.format.default': 'avro' },
        damage: (added) => expect(added.some((e) => e.content === 1 && e.file_format === 'avro'), 'Spark wrote Avro position deletes').toBe(true),
        error: /error \[UNSUPPORTED_DELETE_FORMAT\]: delete file .* \(position deletes, AVRO\)/i,
      },
    ];
    for (const c of cases) {
      await server.create('spark', c.T, null, c.props);
      const a = await server.append('spark', c.T, gen.rows(0, 40, 1));
      const d = await sql(c.T, ['DELETE FROM {t} WHERE id % 3 = 0']);
      const rf = await server.rangeFiles('spark', c.T, a, d, { dv: true });
      c.damage(rf[0]!.added);
      const dir = fs.mkdtempSync(path.join(work, 'out-'));
      const out = path.join(dir, 'rows.jsonl');
      for (const mode of [['--net'], []]) {
        const r = await ips(['changes', `${ctx.ns}.${c.T}`, ...base, '--from', a, '--to', d, '--rows', ...mode, '--out', out]);
        expect([r.code, r.stdout], `${c.T} ${mode.join(' ')}: ${r.stderr}`).toEqual([1, '']);
        expect(r.stderr, c.T).toMatch(c.error);
        expect(fs.readdirSync(dir), `${c.T}: no output file, no partial one`).toEqual([]);
        const toStdout = await ips(['changes', `${ctx.ns}.${c.T}`, ...base, '--from', a, '--to', d, '--rows', ...mode]);
        expect([toStdout.code, toStdout.stdout], `${c.T}: nothing on stdout`).toEqual([1, '']);
      }
    }
  }, LONG);

  it('a Puffin file larger than the data read limit: only the deletion vectors the answer needs are read', async () => {
    // A Puffin file holds the vectors of every data file a DELETE touched, and can outgrow what
    // ips reads whole (max_data_file_bytes, 1 GiB). Spark writes the table; the Puffin file is
    // then extended with a sparse 1.5 GiB (its blobs stay where the manifests say). The rows
    // must be the same as before, and equal Spark's own.
    const T = 'rows_big_puffin';
    const gen = new RowGen(1902);
    await server.create('spark', T, null, { 'format-version': '3', ...MOR });
    const a = await server.append('spark', T, gen.rows(0, 40, 1));
    const d = await sql(T, ['DELETE FROM {t} WHERE id % 3 = 0']);
    const rf = await server.rangeFiles('spark', T, a, d, { dv: true });
    const puffin = localPath(rf[0]!.added.find((e) => e.file_format === 'puffin')!.file_path);
    const args = ['changes', `${ctx.ns}.${T}`, ...base, '--from', a, '--to', d, '--rows', '--net'];
    const before = await ips(args);
    expect(before.code, before.stderr).toBe(0);
    const deleted = Number((await server.sparkSql(T, [`SELECT count(*) FROM (SELECT * FROM {t} VERSION AS OF ${a} EXCEPT ALL SELECT * FROM {t} VERSION AS OF ${d})`])).result[0]![0]);
    expect(deleted, 'Spark: the DELETE removed rows').toBeGreaterThan(0);
    const lines = before.stdout.trim().split('\n');
    expect(lines.length).toBe(deleted);
    expect(lines.every((l) => l.includes('"_change_type":"DELETE"'))).toBe(true);
    fs.truncateSync(puffin, 1.5 * 1024 ** 3);
    const after = await ips(args);
    expect(after.code, after.stderr).toBe(0);
    // (rows come in no particular order)
    expect(after.stdout.trim().split('\n').sort()).toEqual([...lines].sort());
  }, LONG);
});
