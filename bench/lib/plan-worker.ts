// The ips side of bench/change-planning.ts in a process of its own, so its peak memory is its own
// (the benchmark process holds the others' bookkeeping). Speaks bench/lib/json-child.ts's protocol:
// one JSON command a line on stdin, `@@bench <JSON>` answers on stdout.
//   {op: "load"}                      time loadTable of the table directory
//   {op: "incremental", from, to}     time resolveRange + computeChangeSet as `ips changes` plans
//                                     (compact entries, no statistics kept: no --range, as the peers
//                                     plan), then the digest of the added paths (untimed)
//   {op: "quit"}
// Peak RSS per command: the kernel's high-water mark (VmHWM) is reset before the timed span
// (/proc/self/clear_refs) and read after it.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { computeChangeSet } from '../../src/capture/change-set.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../../src/capture/policy.js';
import { resolveRange } from '../../src/capture/range.js';
import { loadTable } from '../../src/catalog/load-table.js';
import type { TableMetadata } from '../../src/iceberg/metadata.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';

const tablePath = process.argv[2];
if (!tablePath) throw new Error('usage: plan-worker.ts <table directory>');

function answer(obj: Record<string, unknown>): void {
  process.stdout.write(`@@bench ${JSON.stringify(obj)}\n`);
}

/** Resets the peak-RSS mark to the current RSS; returns the RSS then (MB). */
function resetPeak(): number {
  writeFileSync('/proc/self/clear_refs', '5');
  return statusMb('VmRSS');
}

function statusMb(key: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${key} in /proc/self/status`);
  return Number(m[1]) / 1024;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; seconds: number; cpu_seconds: number; rss_before_mb: number; peak_rss_mb: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const rss_before_mb = resetPeak();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  return { result, seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, rss_before_mb, peak_rss_mb: statusMb('VmHWM') };
}

let md: TableMetadata | undefined;

async function handle(cmd: { op: string; from?: string; to?: string; concurrency?: number }): Promise<Record<string, unknown>> {
  const io = new RoutingFileIO();
  try {
    if (cmd.op === 'load') {
      const r = await timed(() => loadTable(io, { kind: 'directory', location: tablePath! }));
      md = r.result.metadata;
      return { seconds: r.seconds, cpu_seconds: r.cpu_seconds, rss_before_mb: r.rss_before_mb, peak_rss_mb: r.peak_rss_mb };
    }
    if (cmd.op === 'incremental') {
      if (!md) md = (await loadTable(io, { kind: 'directory', location: tablePath! })).metadata;
      const table = md;
      const reader = new ManifestReader(io, 32 * 1024 * 1024, { inline: true });
      const r = await timed(async () => {
        const range = resolveRange(table, { from: BigInt(cmd.from!), to: BigInt(cmd.to!) });
        return computeChangeSet(reader, range, DEFAULT_POLICY, table, { deleteFootprints: false, compact: { stats: { fields: 'none' }, ...(cmd.concurrency ? { concurrency: cmd.concurrency } : {}) } });
      });
      const paths = r.result.added.map((c) => c.entry.dataFile.filePath).sort();
      return {
        seconds: r.seconds, cpu_seconds: r.cpu_seconds, rss_before_mb: r.rss_before_mb, peak_rss_mb: r.peak_rss_mb,
        files: paths.length, digest: createHash('sha256').update(paths.join('\n'), 'utf8').digest('hex'),
        removed: r.result.removed.length, snapshots: r.result.snapshots.length, warnings: r.result.warnings.length,
        manifests_read: reader.manifestsRead, manifest_lists_read: reader.manifestListsRead,
      };
    }
    throw new Error(`unknown op ${cmd.op}`);
  } finally {
    io.close();
  }
}

answer({ ready: true, node: process.version, heap_limit_mb: Math.round((await import('node:v8')).getHeapStatistics().heap_size_limit / 2 ** 20) });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line) as { op: string };
  if (cmd.op === 'quit') break;
  try {
    answer(await handle(cmd));
  } catch (e) {
    answer({ error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
  }
}
