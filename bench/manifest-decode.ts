// Manifest entries decoded per second: ips (decodeManifestList + decodeManifest over LocalFileIO)
// against PyIceberg (read_manifest_list + ManifestFile.fetch_manifest_entry) on the same generated
// table, in the same run. Rounds alternate which side goes first; the machine is shared and noisy,
// so the medians are what to compare.
import path from 'node:path';
import { decodeManifestList } from '../src/iceberg/manifest-list.js';
import { decodeManifest } from '../src/iceberg/manifest.js';
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
}

/**
 * One cold pass, as ips reads a snapshot: read the manifest list and every manifest from disk and
 * decode them (no cache: decode functions are called directly). Entries are counted, checksummed
 * and dropped manifest by manifest, like the PyIceberg side.
 */
export async function ipsDecodeAll(manifestList: string, limit = 0): Promise<DecodeRun> {
  const io = new LocalFileIO();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const list = decodeManifestList(await io.read(manifestList), manifestList);
  const manifests = limit ? list.manifests.slice(0, limit) : list.manifests;
  let entries = 0;
  let rows = 0n;
  const status = [0, 0, 0];
  for (const mf of manifests) {
    const m = decodeManifest(await io.read(mf.path), mf, mf.path);
    entries += m.entries.length;
    for (const e of m.entries) {
      rows += e.dataFile.recordCount;
      status[e.status]!++;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  return {
    entries, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, manifests: manifests.length, recordCountSum: rows,
    statusCounts: { existing: status[0]!, added: status[1]!, deleted: status[2]! },
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
}

async function pyDecodeAll(ctx: BenchContext, manifestList: string): Promise<PyRun> {
  const out = await runCommand(ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'read_manifests.py'), manifestList], { prefix: '[pyiceberg] ' });
  return lastJsonLine<PyRun>(out);
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
      // Untimed warm-up: read every file once so that neither side pays for cold page cache (round 1
      // would otherwise warm it for whichever side goes second), and let V8 compile the decode path
      // (Python has no JIT to warm).
      await warmPageCache(t.manifest_list);
      await ipsDecodeAll(t.manifest_list, 10);

      const ips: DecodeRun[] = [];
      const py: PyRun[] = [];
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? (['ips', 'py'] as const) : (['py', 'ips'] as const);
        for (const side of order) {
          if (side === 'ips') {
            const run = await ipsDecodeAll(t.manifest_list);
            ips.push(run);
            ctx.log(`round ${r + 1}/${rounds} ips:       ${fmtInt(run.entries)} entries in ${fmtSec(run.seconds)} = ${fmtRate(run.entries / run.seconds)} (CPU ${fmtSec(run.cpuSeconds)})`);
          } else {
            const run = await pyDecodeAll(ctx, t.manifest_list);
            py.push(run);
            ctx.log(`round ${r + 1}/${rounds} pyiceberg: ${fmtInt(run.entries)} entries in ${fmtSec(run.seconds)} = ${fmtRate(run.entries / run.seconds)} (CPU ${fmtSec(run.cpu_seconds)}, ${run.decoder} decoder)`);
          }
        }
        checkSame(ips[ips.length - 1]!, py[py.length - 1]!, t);
      }

      const rate = (entries: number, s: number): number => entries / s;
      const ipsWall = ips.map((x) => rate(x.entries, x.seconds));
      const pyWall = py.map((x) => rate(x.entries, x.seconds));
      const ipsCpu = ips.map((x) => rate(x.entries, x.cpuSeconds));
      const pyCpu = py.map((x) => rate(x.entries, x.cpu_seconds));
      const p0 = py[0]!;
      console.log(`\n== ${spec.name}: ${t.manifests} manifests, ${fmtInt(t.entries)} entries, ${mb.toFixed(1)} MB of manifests (${t.codec}, ${t.entries_per_block} entries/Avro block)`);
      console.log(`   ${machineSummary()}`);
      console.log(`   pyiceberg ${p0.pyiceberg} on Python ${p0.python}, Avro decoder: ${p0.decoder === 'cython' ? 'Cython (pyiceberg.avro.decoder_fast)' : 'pure Python (decoder_fast missing!)'}, ${p0.file_io}`);
      console.log(`   table generated in ${t.generation_seconds}s${t.cached ? ' (reused from cache)' : ''}: ${t.table_dir}`);
      console.log(`   rates are entries per second of wall clock, and per second of process CPU time (less sensitive to a busy machine)\n`);
      console.log(
        table(
          ['round', 'ips wall s', 'ips CPU s', 'pyiceberg wall s', 'pyiceberg CPU s', 'ips/pyiceberg wall', 'ips/pyiceberg CPU'],
          ips.map((x, i) => [
            String(i + 1), x.seconds.toFixed(2), x.cpuSeconds.toFixed(2), py[i]!.seconds.toFixed(2), py[i]!.cpu_seconds.toFixed(2),
            `${(ipsWall[i]! / pyWall[i]!).toFixed(2)}×`, `${(ipsCpu[i]! / pyCpu[i]!).toFixed(2)}×`,
          ]),
        ),
      );
      const row = (label: string, a: number[], b: number[]): (string | number)[] => [label, fmtRate(median(a)), fmtRate(median(b)), `${(median(a) / median(b)).toFixed(2)}×`, `${median(a.map((x, i) => x / b[i]!)).toFixed(2)}×`];
      console.log('');
      console.log(
        table(
          ['median of ' + rounds, 'ips entries/s', 'pyiceberg entries/s', 'ratio ips/pyiceberg', 'median per-round ratio'],
          [row('wall clock', ipsWall, pyWall), row('CPU time', ipsCpu, pyCpu)],
        ),
      );
      console.log(`\n   ips reads ${(t.manifest_bytes / 1e6 / median(ips.map((x) => x.seconds))).toFixed(1)} MB/s of manifest files (wall clock)`);
      console.log(`   entries, status counts and record_count sum agree (${fmtInt(ips[0]!.entries)} entries, Σ record_count ${ips[0]!.recordCountSum})\n`);
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
