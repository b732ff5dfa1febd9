// Loading a large table metadata JSON: ips (parseTableMetadata) against PyIceberg
// (FromByteStream.table_metadata = TableMetadataUtil.parse_raw) on the same PyIceberg-written file,
// in the same run. Each side runs in a process of its own (so the peak RSS beside its time is its
// own), parses the file `--parses` times per round, and rounds alternate which side goes first.
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  REPO_ROOT, cacheDir, fmtInt, fmtMiB, fmtRatio, intOption, meets, lastJsonLine, machineSummary, median, runCommand, table, type Benchmark,
} from './lib/common.js';

interface ParseRun {
  cpu_seconds: number[];
  wall_seconds: number[];
  snapshots: number;
  current_snapshot_id: string;
  max_rss_bytes: number;
}
interface PyRun extends ParseRun {
  parse_peak_alloc_bytes: number;
  pyiceberg: string;
  python: string;
}
interface IpsRun extends ParseRun {
  parse_heap_bytes: number;
  node: string;
}

const GENERATOR_VERSION = 1;

async function ensureMetadata(python: string, snapshots: number): Promise<string> {
  const dir = path.join(cacheDir(), 'bench');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `metadata-load-s${snapshots}-gen${GENERATOR_VERSION}.metadata.json`);
  if (existsSync(file)) return file;
  const tmp = `${file}.tmp-${process.pid}.metadata.json`;
  await runCommand(python, [path.join(REPO_ROOT, 'bench', 'py', 'metadata_load.py'), 'generate', tmp, '--snapshots', String(snapshots)], { prefix: '[pyiceberg] ' });
  renameSync(tmp, file);
  return file;
}

const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;

export const metadataLoad: Benchmark = {
  name: 'metadata-load',
  description: 'parsing a ~1.5 MB table metadata JSON (2,200 snapshots), ips parseTableMetadata vs PyIceberg FromByteStream.table_metadata',
  byDefault: true,
  options: { snapshots: 'snapshots in the generated metadata (default 2200 ≈ 1.5 MB)', parses: 'parses per side per round (default 20)', rounds: 'rounds per side, interleaved (default 3)' },
  async run(ctx) {
    const snapshots = intOption(ctx, 'snapshots', 2200);
    const parses = intOption(ctx, 'parses', 20);
    const rounds = intOption(ctx, 'rounds', 3);
    const file = await ensureMetadata(ctx.python, snapshots);
    const bytes = statSync(file).size;
    ctx.log(`${file}: ${fmtInt(bytes)} bytes, ${snapshots} snapshots`);
    const ips: IpsRun[] = [];
    const py: PyRun[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 === 0 ? ['ips', 'py'] : ['py', 'ips']) {
        if (side === 'ips') {
          const out = await runCommand(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'metadata-parse-child.ts'), file, String(parses)], { prefix: '[ips] ' });
          ips.push(lastJsonLine<IpsRun>(out));
        } else {
          const out = await runCommand(ctx.python, [path.join(REPO_ROOT, 'bench', 'py', 'metadata_load.py'), 'parse', file, '--rounds', String(parses)], { prefix: '[pyiceberg] ' });
          py.push(lastJsonLine<PyRun>(out));
        }
      }
      const a = ips[ips.length - 1]!;
      const b = py[py.length - 1]!;
      if (a.snapshots !== snapshots || b.snapshots !== snapshots || a.current_snapshot_id !== b.current_snapshot_id) {
        throw new Error(`ips and PyIceberg disagree: snapshots ${a.snapshots} / ${b.snapshots}, current snapshot ${a.current_snapshot_id} / ${b.current_snapshot_id}`);
      }
      ctx.log(`round ${r + 1}/${rounds}: ips ${(median(a.cpu_seconds) * 1000).toFixed(1)} ms CPU/parse, pyiceberg ${(median(b.cpu_seconds) * 1000).toFixed(1)} ms`);
    }
    const ms = (s: number): string => (s * 1000).toFixed(1);
    const p0 = py[0]!;
    console.log(`\n== metadata-load: ${mb(bytes)} metadata JSON, ${snapshots} snapshots (written by PyIceberg ${p0.pyiceberg}), ${parses} parses per side per round`);
    console.log(`   ${machineSummary()}`);
    console.log(`   ips: parseTableMetadata on ${ips[0]!.node}; pyiceberg: FromByteStream.table_metadata on Python ${p0.python}; both parse from text already in memory`);
    console.log(`   both sides agree on the snapshot count and the current snapshot id (${p0.current_snapshot_id}${BigInt(p0.current_snapshot_id) > 2n ** 53n ? ", beyond 2^53: exact" : ""})\n`);
    console.log(table(
      ['round', 'ips CPU ms/parse', 'pyiceberg CPU ms/parse', 'pyiceberg/ips CPU', 'ips wall ms', 'pyiceberg wall ms', 'ips peak RSS', 'pyiceberg peak RSS'],
      ips.map((a, i) => {
        const b = py[i]!;
        return [String(i + 1), ms(median(a.cpu_seconds)), ms(median(b.cpu_seconds)), `${(median(b.cpu_seconds) / median(a.cpu_seconds)).toFixed(2)}×`,
          ms(median(a.wall_seconds)), ms(median(b.wall_seconds)), mb(a.max_rss_bytes), mb(b.max_rss_bytes)];
      }),
    ));
    const ipsCpu = median(ips.map((a) => median(a.cpu_seconds)));
    const pyCpu = median(py.map((b) => median(b.cpu_seconds)));
    console.log(`\n   median CPU per parse: ips ${ms(ipsCpu)} ms, pyiceberg ${ms(pyCpu)} ms: ips is ${(pyCpu / ipsCpu).toFixed(2)}× as fast`);
    console.log(`   memory: ips heap allocated by one parse ${mb(median(ips.map((a) => a.parse_heap_bytes)))}, pyiceberg peak Python allocation of one parse ${mb(median(py.map((b) => b.parse_peak_alloc_bytes)))}; peak RSS is the whole process (interpreter included)\n`);
    ctx.result({
      measure: `CPU per parse of a ${(bytes / 1e6).toFixed(2)} MB metadata.json (${fmtInt(snapshots)} snapshots), median of ${rounds} × ${parses} parses; ratio = PyIceberg ÷ ips`,
      ips: `${ms(ipsCpu)} ms, peak RSS ${fmtMiB(Math.max(...ips.map((a) => a.max_rss_bytes)))}`,
      peer: `PyIceberg ${p0.pyiceberg}: ${ms(pyCpu)} ms, peak RSS ${fmtMiB(Math.max(...py.map((b) => b.max_rss_bytes)))}`,
      ratio: fmtRatio(pyCpu / ipsCpu),
      target: 'at least as fast as PyIceberg (≥ 1×)',
      met: meets(pyCpu / ipsCpu, '>=', 1),
    });
  },
};
