// Manifest entries decoded per second: ips (decodeManifestList + decodeManifest over LocalFileIO)
// against PyIceberg (read_manifest_list + ManifestFile.fetch_manifest_entry) on the same generated
// table, in the same run. Rounds alternate which side goes first; the machine is shared and noisy,
// so the medians are what to compare.
import path from 'node:path';
import { decodeManifestList } from '../src/iceberg/manifest-list.js';
import { decodeManifest, type DataFile, type StatsSelection } from '../src/iceberg/manifest.js';
import { LocalFileIO } from '../src/io/local-file-io.js';
import {
  REPO_ROOT, fmtInt, fmtRate, fmtSec, intOption, lastJsonLine, machineSummary, median, runCommand, table,
  type BenchContext, type Benchmark,
} from './lib/common.js';
import { ensureTable, type GeneratedTable } from './lib/manifest-table.js';

export interface DecodeRun {
  entries: number;
  /** Wall clock. */
  seconds: number;
  /** Process CPU time (user + system, all threads: GC helpers, the libuv pool reading files). */
  cpuSeconds: number;
  manifests: number;
  /** Sum of data_file.record_count over all entries: a checksum both sides compute. */
  recordCountSum: bigint;
  statusCounts: { existing: number; added: number; deleted: number };
  /** Every column stat read back through the public maps (see touchStats). */
  stats: StatsChecksum;
}

/** What touchStats reads back from every column stat: a checksum PyIceberg computes too (bench/py/read_manifests.py --checksum). */
export interface StatsChecksum {
  /** Σ of every value of column_sizes, value_counts, null_value_counts and nan_value_counts. */
  countSum: bigint;
  /** Number of those values. */
  counts: number;
  /** Number of lower and upper bounds, their bytes, and the sum of those bytes. */
  bounds: number;
  boundBytes: number;
  boundByteSum: number;
}

/**
 * Reads every column stat of a data file through the public ReadonlyMap API (a bigint per count, a
 * Buffer per bound, every byte of it), so that the measured pass pays for every value PyIceberg
 * materialises, not only for decoding it into ips's packed form. The callbacks are module-level
 * functions over per-entry sums that stay small integers (a running total past 2^31 in a variable
 * the callbacks write turned each write into a heap number and slowed the pass by half); the
 * entry's sums are added to the totals once.
 */
const entry = { counts: 0, countSum: 0, bounds: 0, boundBytes: 0, boundByteSum: 0 };
function addCount(v: bigint): void {
  entry.countSum += Number(v);
  entry.counts++;
}
function addBound(b: Buffer): void {
  let s = 0;
  for (let i = 0; i < b.length; i++) s += b[i]!;
  entry.bounds++;
  entry.boundBytes += b.length;
  entry.boundByteSum += s;
}
// Counts and bounds in two functions: with all six loops in one, V8 stopped inlining the maps'
// forEach and the pass cost two to three times as much per entry.
function touchCounts(df: DataFile): void {
  df.columnSizes?.forEach(addCount);
  df.valueCounts?.forEach(addCount);
  df.nullValueCounts?.forEach(addCount);
  df.nanValueCounts?.forEach(addCount);
}
function touchBounds(df: DataFile): void {
  df.lowerBounds?.forEach(addBound);
  df.upperBounds?.forEach(addBound);
}
export function touchStats(df: DataFile, sum: StatsChecksum): void {
  entry.counts = entry.countSum = entry.bounds = entry.boundBytes = entry.boundByteSum = 0;
  touchCounts(df);
  touchBounds(df);
  // Per entry the counts stay far below 2^53; the total may not.
  sum.countSum += BigInt(entry.countSum);
  sum.counts += entry.counts;
  sum.bounds += entry.bounds;
  sum.boundBytes += entry.boundBytes;
  sum.boundByteSum += entry.boundByteSum;
}

/**
 * One cold pass, as ips reads a snapshot: read the manifest list and every manifest from disk and
 * decode them (no cache: decode functions are called directly). Entries are counted, checksummed
 * and dropped manifest by manifest, like the PyIceberg side.
 */
export async function ipsDecodeAll(manifestList: string, limit = 0, stats: StatsSelection = 'all', touch = false): Promise<DecodeRun> {
  const io = new LocalFileIO();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const list = decodeManifestList(await io.read(manifestList), manifestList);
  const manifests = limit ? list.manifests.slice(0, limit) : list.manifests;
  let entries = 0;
  let rows = 0n;
  const status = [0, 0, 0];
  const sum: StatsChecksum = { countSum: 0n, counts: 0, bounds: 0, boundBytes: 0, boundByteSum: 0 };
  for (const mf of manifests) {
    const m = decodeManifest(await io.read(mf.path), mf, mf.path, { stats });
    entries += m.entries.length;
    for (const e of m.entries) {
      rows += e.dataFile.recordCount;
      status[e.status]!++;
      if (touch) touchStats(e.dataFile, sum);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  return {
    entries, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, manifests: manifests.length, recordCountSum: rows,
    statusCounts: { existing: status[0]!, added: status[1]!, deleted: status[2]! }, stats: sum,
  };
}

async function warmPageCache(manifestList: string): Promise<void> {
  const io = new LocalFileIO();
  const list = decodeManifestList(await io.read(manifestList), manifestList);
  for (const mf of list.manifests) await io.read(mf.path);
}

interface PyRun {
  entries: number;
  seconds: number;
  cpu_seconds: number;
  manifests: number;
  list_seconds: number;
  record_count_sum: number | string;
  status_counts: { existing: number; added: number; deleted: number };
  decoder: 'cython' | 'python';
  pyiceberg: string;
  python: string;
  file_io: string;
  max_rss_bytes: number;
  /** With --checksum only. */
  stats?: Omit<StatsChecksum, 'countSum'> & { countSum: string };
}

async function pyDecodeAll(ctx: BenchContext, manifestList: string, checksum = false): Promise<PyRun> {
  const out = await runCommand(ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'read_manifests.py'), manifestList, ...(checksum ? ['--checksum'] : [])], { prefix: '[pyiceberg] ' });
  return lastJsonLine<PyRun>(out);
}

/** Every stat ips read back (touch pass) equals what PyIceberg decoded (its --checksum pass). */
function checkSameStats(ips: StatsChecksum, py: PyRun): void {
  const p = py.stats;
  if (!p) throw new Error('PyIceberg checksum run printed no stats');
  const problems: string[] = [];
  if (ips.countSum !== BigInt(p.countSum)) problems.push(`Σ counts: ips ${ips.countSum}, pyiceberg ${p.countSum}`);
  for (const k of ['counts', 'bounds', 'boundBytes', 'boundByteSum'] as const) if (ips[k] !== p[k]) problems.push(`${k}: ips ${ips[k]}, pyiceberg ${p[k]}`);
  if (problems.length) throw new Error(`ips and PyIceberg disagree on the column stats:\n  ${problems.join('\n  ')}`);
}

function checkSame(ips: DecodeRun, py: PyRun, t: GeneratedTable): void {
  const problems: string[] = [];
  if (ips.entries !== py.entries) problems.push(`entries: ips ${ips.entries}, pyiceberg ${py.entries}`);
  if (ips.entries !== t.entries) problems.push(`entries: ips ${ips.entries}, generator wrote ${t.entries}`);
  if (ips.manifests !== py.manifests) problems.push(`manifests: ips ${ips.manifests}, pyiceberg ${py.manifests}`);
  if (ips.recordCountSum !== BigInt(py.record_count_sum)) problems.push(`record_count sum: ips ${ips.recordCountSum}, pyiceberg ${py.record_count_sum}`);
  for (const k of ['existing', 'added', 'deleted'] as const) {
    if (ips.statusCounts[k] !== py.status_counts[k]) problems.push(`${k} entries: ips ${ips.statusCounts[k]}, pyiceberg ${py.status_counts[k]}`);
  }
  if (problems.length) throw new Error(`ips and PyIceberg disagree on the table's entries:\n  ${problems.join('\n  ')}`);
}

type IpsRun = DecodeRun & { maxRssBytes: number };

/** One cold pass in a child process (bench/lib/manifest-decode-child.ts). */
async function ipsDecodeInChild(manifestList: string, mode: 'all' | 'touch' | 'none'): Promise<IpsRun> {
  const out = await runCommand(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'manifest-decode-child.ts'), manifestList, mode], { prefix: '[ips] ' });
  const r = lastJsonLine<Omit<IpsRun, 'recordCountSum' | 'stats'> & { recordCountSum: string; stats: Omit<StatsChecksum, 'countSum'> & { countSum: string } }>(out);
  return { ...r, recordCountSum: BigInt(r.recordCountSum), stats: { ...r.stats, countSum: BigInt(r.stats.countSum) } };
}

const MB = (b: number): string => `${(b / 1e6).toFixed(0)} MB`;

function manifestDecodeBenchmark(spec: { name: string; description: string; byDefault: boolean; entriesPerBlock: number }): Benchmark {
  return {
    name: spec.name,
    description: spec.description,
    byDefault: spec.byDefault,
    options: { rounds: 'measured rounds per side, interleaved (default 3)' },
    async run(ctx) {
      const rounds = intOption(ctx, 'rounds', 3);
      const t = await ensureTable(ctx, { entriesPerBlock: spec.entriesPerBlock });
      const mb = t.manifest_bytes / 1e6;
      ctx.log(
        `table ${t.table_dir}: ${t.manifests} manifests, ${fmtInt(t.entries)} entries, ${mb.toFixed(0)} MB (${t.codec}, ` +
          `${t.entries_per_block} entries/block), ${t.cached ? 'cached; generated' : 'generated'} in ${t.generation_seconds}s`,
      );
      // Untimed: read every file once so that neither side pays for cold page cache (round 1 would
      // otherwise warm it for whichever side goes second). Each ips process warms V8 up on 10
      // manifests before its timed pass (Python has no JIT to warm).
      await warmPageCache(t.manifest_list);

      // Four sides, each a fresh process per round: ips decoding every column stat (what PyIceberg
      // does), the same reading every stat back through the public maps inside the timed pass
      // ("touch"), ips with stats 'none' (what a caller that needs no stats asks for), PyIceberg.
      const ips: IpsRun[] = [];
      const touch: IpsRun[] = [];
      const bare: IpsRun[] = [];
      const py: PyRun[] = [];
      const sides = ['ips', 'touch', 'bare', 'py'] as const;
      const label = { ips: 'ips (all stats)       ', touch: 'ips (all stats, read)', bare: 'ips (no stats)        ' } as const;
      for (let r = 0; r < rounds; r++) {
        const order = sides.map((_, i) => sides[(i + r) % sides.length]!);
        for (const side of order) {
          if (side === 'py') {
            const run = await pyDecodeAll(ctx, t.manifest_list);
            py.push(run);
            ctx.log(`round ${r + 1}/${rounds} pyiceberg:             ${fmtInt(run.entries)} entries in ${fmtSec(run.seconds)} = ${fmtRate(run.entries / run.seconds)} (CPU ${fmtSec(run.cpu_seconds)}, ${run.decoder} decoder, peak RSS ${MB(run.max_rss_bytes)})`);
          } else {
            const run = await ipsDecodeInChild(t.manifest_list, side === 'ips' ? 'all' : side === 'touch' ? 'touch' : 'none');
            ({ ips, touch, bare })[side].push(run);
            ctx.log(`round ${r + 1}/${rounds} ${label[side]}: ${fmtInt(run.entries)} entries in ${fmtSec(run.seconds)} = ${fmtRate(run.entries / run.seconds)} (CPU ${fmtSec(run.cpuSeconds)}, peak RSS ${MB(run.maxRssBytes)})`);
          }
        }
        checkSame(ips[ips.length - 1]!, py[py.length - 1]!, t);
        checkSame(touch[touch.length - 1]!, py[py.length - 1]!, t);
        checkSame(bare[bare.length - 1]!, py[py.length - 1]!, t);
      }
      // Untimed: PyIceberg sums every column stat once; ips's touch passes must have read the same.
      const pySums = await pyDecodeAll(ctx, t.manifest_list, true);
      for (const x of touch) checkSameStats(x.stats, pySums);

      const rate = (entries: number, s: number): number => entries / s;
      const pyWall = py.map((x) => rate(x.entries, x.seconds));
      const pyCpu = py.map((x) => rate(x.entries, x.cpu_seconds));
      const p0 = py[0]!;
      console.log(`\n== ${spec.name}: ${t.manifests} manifests, ${fmtInt(t.entries)} entries, ${mb.toFixed(1)} MB of manifests (${t.codec}, ${t.entries_per_block} entries/Avro block)`);
      console.log(`   ${machineSummary()}`);
      console.log(`   pyiceberg ${p0.pyiceberg} on Python ${p0.python}, Avro decoder: ${p0.decoder === 'cython' ? 'Cython (pyiceberg.avro.decoder_fast)' : 'pure Python (decoder_fast missing!)'}, ${p0.file_io}`);
      console.log(`   table generated in ${t.generation_seconds}s${t.cached ? ' (reused from cache)' : ''}: ${t.table_dir}`);
      console.log(`   rates are entries per second of wall clock, and per second of process CPU time (less sensitive to a busy machine);`);
      console.log(`   "all stats" decodes every entry whole, as PyIceberg does (column stats into packed read-only maps); "read" then reads every`);
      console.log(`   stat back through those maps (a bigint per count, a Buffer per bound, every byte) inside the timed pass; "no stats" is`);
      console.log(`   decodeManifest(…, { stats: 'none' }) (column stats skipped, maps null)\n`);
      console.log(
        table(
          ['round', 'ips CPU s', 'ips+read CPU s', 'no-stats CPU s', 'pyiceberg CPU s', 'ips/py CPU', 'ips+read/py CPU', 'no-stats/py CPU', 'ips peak RSS', 'ips+read peak RSS', 'no-stats peak RSS', 'pyiceberg peak RSS'],
          ips.map((x, i) => {
            const tr = touch[i]!;
            const b = bare[i]!;
            const p = py[i]!;
            return [
              String(i + 1), x.cpuSeconds.toFixed(2), tr.cpuSeconds.toFixed(2), b.cpuSeconds.toFixed(2), p.cpu_seconds.toFixed(2),
              `${(p.cpu_seconds / x.cpuSeconds).toFixed(2)}×`, `${(p.cpu_seconds / tr.cpuSeconds).toFixed(2)}×`, `${(p.cpu_seconds / b.cpuSeconds).toFixed(2)}×`,
              MB(x.maxRssBytes), MB(tr.maxRssBytes), MB(b.maxRssBytes), MB(p.max_rss_bytes),
            ];
          }),
        ),
      );
      const row = (label: string, a: number[], b: number[]): (string | number)[] => [label, fmtRate(median(a)), fmtRate(median(b)), `${(median(a) / median(b)).toFixed(2)}×`, `${median(a.map((x, i) => x / b[i]!)).toFixed(2)}×`];
      console.log('');
      console.log(
        table(
          ['median of ' + rounds, 'ips entries/s', 'pyiceberg entries/s', 'ratio ips/pyiceberg', 'median per-round ratio'],
          [
            row('wall clock, all stats', ips.map((x) => rate(x.entries, x.seconds)), pyWall),
            row('CPU time, all stats', ips.map((x) => rate(x.entries, x.cpuSeconds)), pyCpu),
            row('wall clock, all stats + read', touch.map((x) => rate(x.entries, x.seconds)), pyWall),
            row('CPU time, all stats + read', touch.map((x) => rate(x.entries, x.cpuSeconds)), pyCpu),
            row('wall clock, no stats', bare.map((x) => rate(x.entries, x.seconds)), pyWall),
            row('CPU time, no stats', bare.map((x) => rate(x.entries, x.cpuSeconds)), pyCpu),
          ],
        ),
      );
      const s0 = touch[0]!.stats;
      console.log(`\n   ips reads ${(t.manifest_bytes / 1e6 / median(ips.map((x) => x.seconds))).toFixed(1)} MB/s of manifest files (wall clock, all stats)`);
      console.log(`   entries, status counts and record_count sum agree (${fmtInt(ips[0]!.entries)} entries, Σ record_count ${ips[0]!.recordCountSum})`);
      console.log(`   every column stat read back agrees with PyIceberg's: ${fmtInt(s0.counts)} counts (Σ ${s0.countSum}), ${fmtInt(s0.bounds)} bounds (${fmtInt(s0.boundBytes)} bytes, byte sum ${s0.boundByteSum})\n`);
      const cpuRatio = (xs: IpsRun[]): number => median(xs.map((x) => rate(x.entries, x.cpuSeconds))) / median(pyCpu);
      const mem = (xs: IpsRun[]): string => MB(median(xs.map((x) => x.maxRssBytes)));
      const pyLine = `PyIceberg ${fmtRate(median(pyCpu))} per CPU s, peak RSS ${MB(median(py.map((x) => x.max_rss_bytes)))}`;
      const layout = `${fmtInt(t.entries)} entries, ${t.entries_per_block} per Avro block`;
      ctx.result({
        measure: `manifest entries decoded per CPU second, every column stat decoded (${layout})`,
        ips: `${fmtRate(median(ips.map((x) => rate(x.entries, x.cpuSeconds))))} (peak RSS ${mem(ips)})`, peer: pyLine,
        ratio: `${cpuRatio(ips).toFixed(2)}×`, target: '≥ 3×', met: cpuRatio(ips) >= 3,
      });
      ctx.result({
        measure: `the same, every stat then read back through the public maps inside the timed pass (${layout})`,
        ips: `${fmtRate(median(touch.map((x) => rate(x.entries, x.cpuSeconds))))} (peak RSS ${mem(touch)})`, peer: pyLine,
        ratio: `${cpuRatio(touch).toFixed(2)}×`, target: '≥ 3×', met: cpuRatio(touch) >= 3,
      });
      ctx.result({
        measure: `the same, column stats skipped (stats: 'none') (${layout})`,
        ips: `${fmtRate(median(bare.map((x) => rate(x.entries, x.cpuSeconds))))} (peak RSS ${mem(bare)})`, peer: pyLine,
        ratio: `${cpuRatio(bare).toFixed(2)}×`,
      });
    },
  };
}

/** The table as PyIceberg's ManifestWriter writes it: one Avro block per entry. */
export const manifestDecode = manifestDecodeBenchmark({
  name: 'manifest-decode',
  description: 'manifest entries decoded per second, ips vs PyIceberg, 400 manifests / 1M entries as PyIceberg writes them (1 entry per Avro block)',
  byDefault: true,
  entriesPerBlock: 1,
});

/** The same entries in ~64 KB Avro blocks, the way Java (Spark, Flink, Trino) writes manifests. */
export const manifestDecodeJavaBlocks = manifestDecodeBenchmark({
  name: 'manifest-decode-java-blocks',
  description: 'the same, with 100 entries per Avro block (≈ the 64 KB blocks Java writers produce)',
  byDefault: false,
  entriesPerBlock: 100,
});
