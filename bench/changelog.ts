// The row changelog (`ips changes --rows`, issue 17) against Spark's `create_changelog_view`, side
// by side in one run, on the same copy-on-write table written by Spark 3.5 + Iceberg 1.10
// (bench/py/changelog_spark.py: N rows, then an UPDATE of every K-th row, which rewrites every
// file and carries the other rows over). Both compute the changelog of that UPDATE with the
// identifier column `id` (carry-over removal, update pairing) and write it as JSON:
//   ips    `ips changes <table> --rows --identifier-columns id --out file.jsonl`, a child process
//          under /usr/bin/time (wall seconds, peak RSS: JavaScript heap and DuckDB together)
//   Spark  CALL create_changelog_view(…, identifier_columns => array('id')), written with
//          DataFrame.write.json; the JVM's peak RSS of the run (reset just before it)
// Rows per second = changelog rows / wall seconds (ips's include process start-up; Spark's
// session is already up). Counts must agree, or the run fails. Then ips alone on a table whose
// UPDATE changes every row (--big-rows, default 5,000,000 rows = 10,000,000 changed rows): peak
// memory under the default engine budget (--memory-limit, DuckDB spills past it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, fmtInt, fmtRatio, intOption, lastJsonLine, machineSummary, runCommand, table, type BenchContext, type Benchmark } from './lib/common.js';

interface Generated { table_dir: string; rows: number; updated: number; from: string; to: string; generation_seconds: number; cached: boolean }
interface SparkRun { seconds: number; counts: Record<string, number>; jvm_peak_rss_kb: number; jvm_hwm_before_kb: number }
interface IpsRun { seconds: number; maxRssKb: number; counts: Record<string, number> }

const PY = path.join(REPO_ROOT, 'bench', 'py', 'changelog_spark.py');

async function generate(ctx: BenchContext, rows: number, updateEvery: number): Promise<Generated> {
  return lastJsonLine<Generated>(await runCommand(ctx.python, [PY, 'generate', '--rows', String(rows), '--update-every', String(updateEvery)], { prefix: '  [spark] ' }));
}

function countTypes(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  let rest = '';
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) {
      const lines = (rest + buf.toString('utf8', 0, n)).split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        const t = /"_change_type":"([A-Z_]+)"/.exec(l)?.[1] ?? '?';
        counts[t] = (counts[t] ?? 0) + 1;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return counts;
}

async function runIps(ctx: BenchContext, g: Generated, memoryLimit: string | undefined): Promise<IpsRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-bench-changelog-'));
  try {
    const out = path.join(dir, 'changelog.jsonl');
    const timing = path.join(dir, 'time.txt');
    await runCommand('/usr/bin/time', ['-f', '%e %M', '-o', timing, process.execPath, path.join(REPO_ROOT, 'bin', 'ips.js'),
      'changes', g.table_dir, '--from', g.from, '--to', g.to, '--rows', '--identifier-columns', 'id', '--out', out,
      ...(memoryLimit ? ['--memory-limit', memoryLimit] : [])], { prefix: '  [ips] ' });
    const [seconds, kb] = fs.readFileSync(timing, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    return { seconds: seconds!, maxRssKb: kb!, counts: countTypes(out) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
const mb = (kb: number) => `${fmtInt(kb / 1024)} MB`;

export const changelog: Benchmark = {
  name: 'changelog',
  description: 'ips changes --rows (changelog with update pairing) vs Spark create_changelog_view on a copy-on-write UPDATE; peak memory at 10 M changed rows',
  byDefault: false,
  options: {
    rows: 'rows of the side-by-side table (default 1000000)',
    'update-every': 'the UPDATE changes every K-th row (default 10)',
    'big-rows': 'rows of the table whose UPDATE changes them all, for ips\'s peak memory (default 5000000 = 10 M changed rows; 0 skips)',
    'memory-limit': 'ips --memory-limit (default: ips\'s)',
  },
  async run(ctx) {
    const rows = intOption(ctx, 'rows', 1_000_000);
    const every = intOption(ctx, 'update-every', 10);
    const big = intOption(ctx, 'big-rows', 5_000_000);
    const memoryLimit = ctx.options.get('memory-limit');
    const g = await generate(ctx, rows, every);
    ctx.log(`table: ${fmtInt(g.rows)} rows, ${fmtInt(g.updated)} updated (${g.cached ? 'cached' : `generated in ${g.generation_seconds}s`})`);
    const spark = lastJsonLine<SparkRun>(await runCommand(ctx.python, [PY, 'changelog', '--table-dir', g.table_dir, '--from', g.from, '--to', g.to,
      '--out', path.join(os.tmpdir(), `ips-bench-spark-changelog-${process.pid}`)], { prefix: '  [spark] ' }));
    const ips = await runIps(ctx, g, memoryLimit);
    const norm = (c: Record<string, number>) => JSON.stringify(Object.entries(c).sort());
    if (norm(ips.counts) !== norm(spark.counts)) throw new Error(`changelog counts differ: ips ${norm(ips.counts)}, Spark ${norm(spark.counts)}`);
    const n = total(ips.counts);
    console.log(`\nchangelog of a copy-on-write UPDATE of ${fmtInt(g.updated)} of ${fmtInt(g.rows)} rows (${fmtInt(n)} changelog rows: ${norm(ips.counts)}); ${machineSummary()}`);
    console.log(table(['engine', 'seconds', 'rows/s', 'peak memory', 'ratio (time, ips/Spark)'], [
      ['ips (process, RSS)', ips.seconds.toFixed(2), fmtInt(n / ips.seconds), mb(ips.maxRssKb), (ips.seconds / spark.seconds).toFixed(2)],
      ['Spark create_changelog_view (JVM, RSS of the run)', spark.seconds.toFixed(2), fmtInt(n / spark.seconds), mb(spark.jvm_peak_rss_kb), '1.00'],
    ]));
    console.log(`Spark JVM RSS peak before the run (start-up, session): ${mb(spark.jvm_hwm_before_kb)}`);
    ctx.result({
      measure: `row changelog of a copy-on-write UPDATE of ${fmtInt(g.updated)} of ${fmtInt(g.rows)} rows (${fmtInt(n)} changelog rows, update pairing on \`id\`), written as JSON; ratio = Spark time ÷ ips time (> 1×: ips faster)`,
      ips: `${fmtInt(n / ips.seconds)} rows/s (${ips.seconds.toFixed(2)} s, process start included), peak RSS ${mb(ips.maxRssKb)}`,
      peer: `Spark create_changelog_view: ${fmtInt(n / spark.seconds)} rows/s (${spark.seconds.toFixed(2)} s, session already up), JVM peak RSS ${mb(spark.jvm_peak_rss_kb)}`,
      ratio: fmtRatio(spark.seconds / ips.seconds),
    });
    if (big > 0) {
      const gb = await generate(ctx, big, 1);
      const r = await runIps(ctx, gb, memoryLimit);
      if (r.counts['UPDATE_BEFORE'] !== gb.rows || r.counts['UPDATE_AFTER'] !== gb.rows) throw new Error(`big changelog counts ${JSON.stringify(r.counts)}, expected ${gb.rows} update pairs`);
      const loadBig = os.loadavg().map((l) => l.toFixed(2)).join(' ');
      console.log(`\nips on ${fmtInt(2 * gb.rows)} changed rows (UPDATE of all ${fmtInt(gb.rows)} rows): ${r.seconds.toFixed(1)} s, ${fmtInt((2 * gb.rows) / r.seconds)} rows/s, peak RSS ${mb(r.maxRssKb)}` +
        ` (engine budget ${memoryLimit ?? 'default'}); load average ${loadBig}`);
      ctx.result({
        measure: `ips alone: row changelog of an UPDATE of all ${fmtInt(gb.rows)} rows (${fmtInt(2 * gb.rows)} changed rows), engine budget ${memoryLimit ?? 'default'}`,
        ips: `${fmtInt((2 * gb.rows) / r.seconds)} rows/s (${r.seconds.toFixed(1)} s), peak RSS ${mb(r.maxRssKb)}`,
      });
    }
  },
};
