// Planning the change set of a 100-snapshot range on a large generated table (bench/py/change_table.py:
// 2,000 fast appends × 500 data files, written by Iceberg Java), side by side in one run:
//   ips              resolveRange + computeChangeSet (fresh ManifestReader, RoutingFileIO on local disk)
//   PyIceberg        tbl.incremental_append_scan(from_snapshot_id_exclusive, to_snapshot_id_inclusive).plan_files()
//   Iceberg Java     table.newIncrementalAppendScan().fromSnapshotExclusive(a).toSnapshot(b).planFiles()
//   Spark DataFrame  spark.read.format("iceberg").option("start-snapshot-id", a).option("end-snapshot-id", b)
// and, for what an incremental run replaces, the planning of a 14-day lookback full scan
// (event_ts >= start of the day 13 days before the newest) by PyIceberg, Iceberg Java and Spark.
// The engines run in long-lived workers (bench/py/plan_worker.py): interpreter, JVM and Spark
// start-up are never timed. Rounds interleave all planners, rotating the order; medians are printed.
// Every round checks that the incremental file sets agree (SHA-256 of the sorted paths), and the
// lookback sets agree between engines and with the generator's per-day file counts.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { computeChangeSet } from '../src/capture/change-set.js';
import { ManifestReader } from '../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../src/capture/policy.js';
import { resolveRange } from '../src/capture/range.js';
import { loadTable } from '../src/catalog/load-table.js';
import type { TableMetadata } from '../src/iceberg/metadata.js';
import { RoutingFileIO } from '../src/io/routing-file-io.js';
import {
  REPO_ROOT, cacheDir, fmtInt, intOption, intOptions, lastJsonLine, machineSummary, median, runCommand, table,
  type BenchContext, type Benchmark,
} from './lib/common.js';
import { JsonChild } from './lib/json-child.js';

interface ChangeTable {
  table_dir: string;
  warehouse: string;
  identifier: string;
  table_path: string;
  location: string;
  metadata: string;
  snapshots: number;
  files_per_snapshot: number;
  data_files: number;
  snapshots_per_day: number;
  late_percent: number;
  day0: string;
  files_per_day: number[];
  avro_files: number;
  avro_bytes: number;
  iceberg: string;
  generation_seconds: number;
  cached: boolean;
}

interface PlanResult {
  seconds: number;
  cpu_seconds: number;
  files: number;
  digest: string;
}

interface LoadResult {
  seconds: number;
  cpu_seconds: number;
}

// ---- long-lived Python workers: JSON commands on stdin, `@@bench <JSON>` answers on stdout ----

/** bench/py/plan_worker.py <engine> …, run by the venv's Python. */
function planWorker(name: string, python: string, args: string[]): JsonChild {
  return new JsonChild(name, python, args, { what: 'worker', stderr: 'lines' });
}

// ---- ips ----

function digestOf(paths: string[]): string {
  return createHash('sha256').update([...paths].sort().join('\n'), 'utf8').digest('hex');
}

interface IpsRun extends PlanResult {
  paths: string[];
  snapshots: number;
  removed: number;
  warnings: string[];
  manifestsRead: number;
  manifestListsRead: number;
}

/** What ips does for `ips changes --from A --to B` once the table is loaded, with a cold reader. */
async function ipsPlan(md: TableMetadata, from: bigint, to: bigint): Promise<IpsRun> {
  const io = new RoutingFileIO();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const range = resolveRange(md, { from, to });
  const reader = new ManifestReader(io);
  const cs = await computeChangeSet(reader, range, DEFAULT_POLICY, md, { deleteFootprints: false }); // no ranges: as the peers plan
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  io.close();
  const paths = cs.added.map((c) => c.entry.dataFile.filePath);
  return {
    seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, files: paths.length, digest: digestOf(paths), paths,
    snapshots: cs.snapshots.length, removed: cs.removed.length, warnings: cs.warnings,
    manifestsRead: reader.manifestsRead, manifestListsRead: reader.manifestListsRead,
  };
}

async function ipsLoad(tablePath: string): Promise<LoadResult & { md: TableMetadata }> {
  const io = new RoutingFileIO();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const t = await loadTable(io, { kind: 'directory', location: tablePath });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  io.close();
  return { seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, md: t.metadata };
}

/** The ancestor `n` parent steps behind the head of main, and the head. */
function lastRange(md: TableMetadata, n: number): { from: bigint; to: bigint } {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const to = md.currentSnapshotId;
  if (to === null) throw new Error('the generated table has no current snapshot');
  let cur = to;
  for (let i = 0; i < n; i++) {
    const p = byId.get(cur)?.parentSnapshotId ?? null;
    if (p === null) throw new Error(`the table's lineage is shorter than ${n} snapshots`);
    cur = p;
  }
  return { from: cur, to };
}

// ---- the benchmark ----

type Op =
  | 'ips incremental' | 'pyiceberg incremental' | 'java incremental' | 'spark incremental'
  | 'pyiceberg lookback' | 'java lookback' | 'spark lookback'
  | 'ips load' | 'pyiceberg load' | 'java load';

const OPS: Op[] = [
  'ips incremental', 'pyiceberg incremental', 'java incremental', 'spark incremental',
  'pyiceberg lookback', 'java lookback', 'spark lookback',
  'ips load', 'pyiceberg load', 'java load',
];

const LABEL: Record<Op, string> = {
  'ips incremental': 'ips (resolveRange + computeChangeSet)',
  'pyiceberg incremental': 'PyIceberg incremental_append_scan',
  'java incremental': 'Iceberg Java newIncrementalAppendScan',
  'spark incremental': 'Spark DataFrame start/end-snapshot-id',
  'pyiceberg lookback': 'PyIceberg scan(row_filter)',
  'java lookback': 'Iceberg Java newScan().filter()',
  'spark lookback': 'Spark DataFrame .where(event_ts >= …)',
  'ips load': 'ips loadTable',
  'pyiceberg load': 'PyIceberg StaticTable.from_metadata',
  'java load': 'Iceberg Java HadoopCatalog.loadTable',
};

const OPTIONS: Record<string, string> = {
  rounds: 'measured rounds, interleaved (default 3; a warm-up round comes first)',
  'pyiceberg-lookback-rounds': 'rounds that include PyIceberg\'s lookback plan, the first ones (default 1: it takes ~45 s of CPU, >10× all others)',
  range: 'snapshots in the incremental range, ending at the head (default 100)',
  'lookback-days': 'days of the lookback full scan, including the newest day (default 14)',
  snapshots: 'fast appends in the generated table (default 2000)',
  'files-per-snapshot': 'data files per append (default 500)',
  'snapshots-per-day': 'appends per day of event time (default 24, an hourly ingest)',
  'late-percent': 'percent of each append\'s files that belong to older days (default 4)',
  'table-root': 'directory holding generated tables (default $IPS_CACHE_DIR/bench)',
};

function isoDay(day0: string, offset: number): string {
  const d = new Date(`${day0}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

/** Sorted path files of two planners → what each has that the other lacks. */
function diffPaths(a: string[], b: string[]): { onlyA: string[]; onlyB: string[] } {
  const sa = new Set(a);
  const sb = new Set(b);
  return { onlyA: a.filter((p) => !sb.has(p)), onlyB: b.filter((p) => !sa.has(p)) };
}

export const changePlanning: Benchmark = {
  name: 'change-planning',
  description: 'planning a 100-snapshot change set on a 2,000-snapshot / 1M-file table: ips vs PyIceberg vs Iceberg Java vs Spark, and their 14-day lookback full-scan planning',
  byDefault: false,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const { rounds, 'pyiceberg-lookback-rounds': pyLookback, range: rangeLen, 'lookback-days': lookbackDays } =
      intOptions(ctx, { rounds: 3, 'pyiceberg-lookback-rounds': 1, range: 100, 'lookback-days': 14 });
    const pyLookbackRounds = Math.min(rounds, pyLookback);

    ctx.log('Spark jars (scripts/provision/jars.sh)…');
    await runCommand('bash', [path.join(REPO_ROOT, 'scripts', 'provision', 'jars.sh')], { prefix: '' });

    const genArgs = [
      path.join(REPO_ROOT, 'bench', 'py', 'change_table.py'),
      '--snapshots', String(intOption(ctx, 'snapshots', 2000)),
      '--files-per-snapshot', String(intOption(ctx, 'files-per-snapshot', 500)),
      '--snapshots-per-day', String(intOption(ctx, 'snapshots-per-day', 24)),
      '--late-percent', String(intOption(ctx, 'late-percent', 4)),
    ];
    const root = ctx.options.get('table-root');
    if (root) genArgs.push('--root', path.resolve(root));
    const t = lastJsonLine<ChangeTable>(await runCommand(ctx.python, genArgs, { prefix: '[generate] ' }));
    ctx.log(
      `table ${t.table_path}: ${fmtInt(t.snapshots)} snapshots, ${fmtInt(t.data_files)} data files, ${fmtInt(t.avro_files)} Avro files ` +
        `(${(t.avro_bytes / 1e6).toFixed(0)} MB), ${t.cached ? 'cached; generated' : 'generated'} in ${t.generation_seconds}s`,
    );

    const loaded = await ipsLoad(t.table_path);
    const md = loaded.md;
    if (rangeLen >= md.snapshots.length) throw new Error(`--range ${rangeLen} needs more than ${md.snapshots.length} snapshots`);
    const { from, to } = lastRange(md, rangeLen);
    const days = t.files_per_day.length;
    const sinceOffset = Math.max(0, days - lookbackDays);
    const since = `${isoDay(t.day0, sinceOffset)}T00:00:00+00:00`;
    const expectedLookback = t.files_per_day.slice(sinceOffset).reduce((a, b) => a + b, 0);
    const expectedIncremental = rangeLen * t.files_per_snapshot;
    ctx.log(`range (${from}, ${to}]: ${rangeLen} snapshots, ${fmtInt(expectedIncremental)} files expected; lookback since ${since}: ${fmtInt(expectedLookback)} files expected`);

    const dumpDir = path.join(cacheDir(), 'bench', 'change-planning-paths');
    const py = planWorker('pyiceberg', ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'plan_worker.py'), 'pyiceberg', '--metadata', t.metadata]);
    const spark = planWorker('spark', ctx.python, [
      path.join(REPO_ROOT, 'bench', 'py', 'plan_worker.py'), 'spark', '--warehouse', t.warehouse, '--identifier', t.identifier,
    ]);
    try {
      const [pyInfo, sparkInfo] = await Promise.all([py.ready, spark.ready]);
      ctx.log(`workers ready: ${String(pyInfo['engine'])} (${String(pyInfo['decoder'])} Avro decoder); ${String(sparkInfo['engine'])} on Java ${String(sparkInfo['java'])}`);

      const inc = { from: from.toString(), to: to.toString() };
      let lastIps: IpsRun | undefined;
      const run = async (op: Op, dump?: string): Promise<PlanResult | LoadResult> => {
        const d = dump ? { dump } : {};
        switch (op) {
          case 'ips incremental':
            lastIps = await ipsPlan(md, from, to);
            return lastIps;
          case 'pyiceberg incremental': return py.request<PlanResult>({ op: 'incremental', ...inc, ...d });
          case 'java incremental': return spark.request<PlanResult>({ op: 'incremental', side: 'java', ...inc, ...d });
          case 'spark incremental': return spark.request<PlanResult>({ op: 'incremental', side: 'spark', ...inc, ...d });
          case 'pyiceberg lookback': return py.request<PlanResult>({ op: 'lookback', since, ...d });
          case 'java lookback': return spark.request<PlanResult>({ op: 'lookback', side: 'java', since, ...d });
          case 'spark lookback': return spark.request<PlanResult>({ op: 'lookback', side: 'spark', since, ...d });
          case 'ips load': return ipsLoad(t.table_path);
          case 'pyiceberg load': return py.request<LoadResult>({ op: 'load' });
          case 'java load': return spark.request<LoadResult>({ op: 'load' });
        }
      };
      const fmtRun = (r: PlanResult | LoadResult): string =>
        'files' in r ? `${fmtInt(r.files)} files in ${r.seconds.toFixed(2)}s (CPU ${r.cpu_seconds.toFixed(2)}s)` : `${r.seconds.toFixed(3)}s (CPU ${r.cpu_seconds.toFixed(3)}s)`;

      // Warm-up (not recorded): JIT for V8 and the JVM, the page cache for everyone. PyIceberg's
      // lookback is not warmed: it has no JIT, and it is by far the longest step.
      ctx.log('warm-up round (not recorded)…');
      for (const op of OPS) {
        if (op === 'pyiceberg lookback') continue;
        const r = await run(op);
        ctx.log(`  warm-up ${op.padEnd(22)} ${fmtRun(r)}`);
      }
      await run('ips incremental');

      // Per round, the results of the planners that ran in it.
      const perRound: Map<Op, PlanResult | LoadResult>[] = [];
      const results = (op: Op): (PlanResult | LoadResult)[] => perRound.map((m) => m.get(op)).filter((x) => x !== undefined);
      const mismatches: string[] = [];
      const checkRound = async (r: number): Promise<void> => {
        const get = (op: Op): PlanResult | undefined => perRound[r]!.get(op) as PlanResult | undefined;
        const incOps: Op[] = ['ips incremental', 'pyiceberg incremental', 'java incremental', 'spark incremental'];
        const lbOps: Op[] = ['java lookback', 'spark lookback', 'pyiceberg lookback'];
        const ran = (ops: Op[]): Op[] => ops.filter((o) => get(o) !== undefined);
        const incOk = ran(incOps).every((o) => get(o)!.digest === get('ips incremental')!.digest) && get('ips incremental')!.files === expectedIncremental;
        const lbOk = ran(lbOps).every((o) => get(o)!.digest === get('java lookback')!.digest) && get('java lookback')!.files === expectedLookback;
        if (incOk && lbOk) return;
        if (mismatches.length) return; // investigate once
        mkdirSync(dumpDir, { recursive: true });
        const paths = new Map<Op, string[]>();
        for (const op of [...incOps, ...lbOps]) {
          if (op === 'ips incremental') {
            paths.set(op, [...lastIps!.paths].sort());
            continue;
          }
          const file = path.join(dumpDir, `${op.replace(' ', '-')}.txt`);
          await run(op, file);
          paths.set(op, readFileSync(file, 'utf8').split('\n').filter(Boolean));
        }
        writeFileSync(path.join(dumpDir, 'ips-incremental.txt'), paths.get('ips incremental')!.join('\n') + '\n');
        const describe = (a: Op, b: Op): void => {
          const { onlyA, onlyB } = diffPaths(paths.get(a)!, paths.get(b)!);
          if (!onlyA.length && !onlyB.length) return;
          mismatches.push(`${a} (${fmtInt(paths.get(a)!.length)}) vs ${b} (${fmtInt(paths.get(b)!.length)}): ${fmtInt(onlyA.length)} only in ${a}, ${fmtInt(onlyB.length)} only in ${b}`);
          for (const p of onlyA.slice(0, 3)) mismatches.push(`    only in ${a}: ${p}`);
          for (const p of onlyB.slice(0, 3)) mismatches.push(`    only in ${b}: ${p}`);
        };
        for (const o of incOps.slice(1)) describe('ips incremental', o);
        for (const o of lbOps.slice(1)) describe('java lookback', o);
        for (const o of [...incOps, ...lbOps]) {
          const want = incOps.includes(o) ? expectedIncremental : expectedLookback;
          const n = paths.get(o)!.length;
          if (n !== want) mismatches.push(`${o} planned ${fmtInt(n)} files; the generator wrote ${fmtInt(want)}`);
        }
        mismatches.push(`(sorted path lists in ${dumpDir})`);
      };

      for (let r = 0; r < rounds; r++) {
        const order = [...OPS.slice(r % OPS.length), ...OPS.slice(0, r % OPS.length)];
        perRound.push(new Map());
        for (const op of order) {
          if (op === 'pyiceberg lookback' && r >= pyLookbackRounds) continue;
          const res = await run(op);
          perRound[r]!.set(op, res);
          ctx.log(`round ${r + 1}/${rounds} ${op.padEnd(22)} ${fmtRun(res)}`);
        }
        await checkRound(r);
      }

      // ---- report ----
      const med = (op: Op, k: 'seconds' | 'cpu_seconds'): number => median(results(op).map((x) => x[k]));
      const ipsWall = med('ips incremental', 'seconds');
      const ipsCpu = med('ips incremental', 'cpu_seconds');
      const ips0 = lastIps!;
      const row = (what: string, op: Op, vsIps: boolean): (string | number)[] => {
        const rs = results(op);
        const files = 'files' in rs[0]! ? fmtInt((rs[0] as PlanResult).files) : '';
        const w = med(op, 'seconds');
        const c = med(op, 'cpu_seconds');
        const dec = op.endsWith('load') ? 3 : 2;
        return [what, LABEL[op], files, w.toFixed(dec), c.toFixed(dec), vsIps ? `${(w / ipsWall).toFixed(1)}×` : '', vsIps ? `${(c / ipsCpu).toFixed(1)}×` : ''];
      };
      const incWhat = `incremental, ${rangeLen} snapshots`;
      const lbWhat = `${lookbackDays}-day lookback scan`;
      console.log(`\n== change-planning: ${fmtInt(t.snapshots)} snapshots, ${fmtInt(t.data_files)} data files (${t.files_per_snapshot}/snapshot, ${t.snapshots_per_day} snapshots/day over ${days} days, ${t.late_percent}% late files), day(event_ts)-partitioned v2`);
      console.log(`   ${machineSummary()}`);
      console.log(`   table written by Iceberg Java ${t.iceberg} (fast appends, HadoopCatalog) in ${t.generation_seconds}s${t.cached ? ' (reused from cache)' : ''}: ${t.table_path}`);
      console.log(`   ${fmtInt(t.avro_files)} manifests + manifest lists, ${(t.avro_bytes / 1e6).toFixed(0)} MB; the head's manifest list names ${fmtInt(t.snapshots)} manifests`);
      console.log(`   ${String(pyInfo['engine'])} on Python ${String(pyInfo['python'])} (${String(pyInfo['decoder'])} Avro decoder, ${String(pyInfo['file_io'])}); ${String(sparkInfo['engine'])} on Java ${String(sparkInfo['java'])}, local[2], Iceberg worker pool ${String(sparkInfo['worker_pool_threads'])} threads`);
      console.log(`   incremental range (${from}, ${to}]: the newest ${rangeLen} appends; lookback: event_ts >= ${since} (${lookbackDays} days incl. the newest)`);
      const pyLb = pyLookbackRounds < rounds ? ` (PyIceberg's lookback: ${pyLookbackRounds === 1 ? 'round 1 only' : `rounds 1–${pyLookbackRounds}`}, --pyiceberg-lookback-rounds)` : '';
      console.log(`   ${rounds === 1 ? '1 round' : `medians of ${rounds} interleaved rounds`}${pyLb} after a warm-up; every plan is cold except for the OS page cache (fresh ManifestReader,`);
      console.log(`   PyIceberg's manifest cache cleared, a freshly loaded Java Table); planning only, metadata.json loaded beforehand (its own rows below),`);
      console.log(`   except Spark, whose query loads the table itself; CPU = whole process (all threads: Java plans on its worker pool);`);
      console.log(`   "wall / ips" and "CPU / ips" = that planner's time ÷ ips's incremental planning time (> 1×: slower than ips)\n`);
      console.log(
        table(
          ['planning', 'planner', 'files', 'wall s', 'CPU s', 'wall / ips', 'CPU / ips'],
          [
            row(incWhat, 'ips incremental', true),
            row('', 'pyiceberg incremental', true),
            row('', 'java incremental', true),
            row('', 'spark incremental', true),
            row(lbWhat, 'pyiceberg lookback', true),
            row('', 'java lookback', true),
            row('', 'spark lookback', true),
            row('load metadata.json', 'ips load', false),
            row('', 'pyiceberg load', false),
            row('', 'java load', false),
          ],
        ),
      );
      console.log('\n   wall seconds per round:');
      console.log(table(['planner', ...Array.from({ length: rounds }, (_, i) => `r${i + 1}`)], OPS.map((op) => [op, ...perRound.map((m) => m.get(op)?.seconds.toFixed(op.endsWith('load') ? 3 : 2) ?? '—')])));
      console.log(`\n   ips read ${ips0.manifestListsRead} manifest lists and ${ips0.manifestsRead} manifests; ${ips0.snapshots} snapshots, ${fmtInt(ips0.files)} added files, ${ips0.removed} removed, ${ips0.warnings.length} warnings`);
      if (mismatches.length) {
        console.log('\n   FILE SETS DISAGREE:');
        for (const m of mismatches) console.log(`   ${m}`);
        console.log('');
        throw new Error('the planners disagree on the planned files (see above)');
      }
      console.log(`   incremental file sets agree in every round: ips added files == PyIceberg == Iceberg Java == Spark (${fmtInt(expectedIncremental)} paths = ${rangeLen} appends × ${t.files_per_snapshot})`);
      console.log(`   lookback file sets agree in every round: Iceberg Java == Spark == PyIceberg (${fmtInt(expectedLookback)} paths = the generator's files in those ${lookbackDays} days)\n`);
    } finally {
      await Promise.allSettled([py.close(), spark.close()]);
    }
  },
};
