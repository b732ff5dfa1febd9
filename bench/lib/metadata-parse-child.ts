// The ips side of bench/metadata-load.ts, in a process of its own so that its peak RSS is its own:
// reads FILE once, parses it ROUNDS times with parseTableMetadata (what ips does on every load of
// a table: lossless JSON parse + validation), and prints one JSON line. Run with --expose-gc.
//   tsx bench/lib/metadata-parse-child.ts FILE ROUNDS
import fs from 'node:fs';
import { parseTableMetadata } from '../../src/iceberg/metadata.js';

const [file, roundsArg] = process.argv.slice(2);
if (!file) throw new Error('usage: metadata-parse-child.ts FILE [ROUNDS]');
const rounds = Number(roundsArg ?? 20);
const text = fs.readFileSync(file, 'utf8');
const gc = (globalThis as { gc?: () => void }).gc;
// Untimed warm-up: V8 compiles the parse path (Python has no JIT to warm).
for (let i = 0; i < 3; i++) parseTableMetadata(text, file);
const cpu: number[] = [];
const wall: number[] = [];
let snapshots = 0;
let current = '';
for (let r = 0; r < rounds; r++) {
  gc?.();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const md = parseTableMetadata(text, file);
  const c = process.cpuUsage(c0);
  wall.push((performance.now() - t0) / 1000);
  cpu.push((c.user + c.system) / 1e6);
  snapshots = md.snapshots.length;
  current = String(md.currentSnapshotId);
}
// Heap allocated by one parse (no collection in between when the young generation holds it).
gc?.();
const h0 = process.memoryUsage().heapUsed;
const kept = parseTableMetadata(text, file);
const parseHeapBytes = process.memoryUsage().heapUsed - h0;
console.log(JSON.stringify({
  cpu_seconds: cpu, wall_seconds: wall, snapshots, current_snapshot_id: current, kept: kept.snapshots.length,
  max_rss_bytes: process.resourceUsage().maxRSS * 1024, parse_heap_bytes: parseHeapBytes, node: process.version,
}));
