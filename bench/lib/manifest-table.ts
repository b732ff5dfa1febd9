// The generated benchmark table (bench/py/generate_manifests.py), shared by the manifest benchmarks.
import path from 'node:path';
import { REPO_ROOT, intOption, lastJsonLine, runCommand, type BenchContext } from './common.js';

export interface GeneratedTable {
  table_dir: string;
  location: string;
  metadata: string;
  manifest_list: string;
  manifests: number;
  entries: number;
  record_count_sum: number;
  manifest_bytes: number;
  codec: string;
  entries_per_block: number;
  pyiceberg: string;
  generator_version: number;
  generation_seconds: number;
  workers: number;
  /** True when an already complete table was reused. */
  cached: boolean;
}

export const TABLE_OPTIONS: Record<string, string> = {
  manifests: 'manifests in the generated table (default 400)',
  'entries-per-manifest': 'entries per manifest (default 2500)',
  'entries-per-block': 'entries per Avro block: 1 = how PyIceberg writes (default), 100 ≈ Java (manifest-decode-java-blocks)',
  codec: 'manifest Avro codec: deflate (PyIceberg default), snappy, zstandard, null (default deflate)',
  workers: 'processes generating the table (default 2)',
  'table-root': 'directory holding generated tables (default $IPS_CACHE_DIR/bench)',
};

/** Generate the table, or reuse the cached one (under $IPS_CACHE_DIR/bench). Options override `defaults`. */
export async function ensureTable(ctx: BenchContext, defaults: { entriesPerBlock?: number } = {}): Promise<GeneratedTable> {
  const args = [
    path.join(REPO_ROOT, 'bench', 'py', 'generate_manifests.py'),
    '--manifests', String(intOption(ctx, 'manifests', 400)),
    '--entries-per-manifest', String(intOption(ctx, 'entries-per-manifest', 2500)),
    '--entries-per-block', String(intOption(ctx, 'entries-per-block', defaults.entriesPerBlock ?? 1)),
    '--codec', ctx.options.get('codec') ?? 'deflate',
    '--workers', String(intOption(ctx, 'workers', 2)),
  ];
  const root = ctx.options.get('table-root');
  if (root) args.push('--root', path.resolve(root));
  const out = await runCommand(ctx.python, args, { prefix: '' });
  return lastJsonLine<GeneratedTable>(out);
}
