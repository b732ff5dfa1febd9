// Row-change output (issue 17): `ips changes --rows --net` writing --format arrow, parquet and
// jsonl, against the named peer PyIceberg (`scan(snapshot_id=…).to_arrow()` written with pyarrow's
// IPC stream writer, or pq.write_table), on the same PyIceberg-written table in the same run. The
// range is the whole table (from its start), so both sides output every row: ips as INSERTs of
// the net change, PyIceberg as its scan. Each run is its own process, timed wall clock with its
// peak RSS (GNU time); rounds alternate which side goes first; medians and ratios ips / PyIceberg
// are printed. Both sides must write the same number of rows.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, fmtInt, fmtRatio, intOption, median, runCommand, table, type BenchContext, type Benchmark } from './lib/common.js';

const OPTIONS: Record<string, string> = {
  rows: 'rows in the generated table (default 1000000, written in 4 appends)',
  rounds: 'runs per side and format (default 3)',
};

const WRITE = String.raw`
import sys, json, datetime as dt, random
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import *
root, n = sys.argv[1], int(sys.argv[2])
cat = SqlCatalog("b", uri=f"sqlite:///{root}/cat.db", warehouse=f"file://{root}")
cat.create_namespace("b")
schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "ts", TimestamptzType()),
  NestedField(3, "name", StringType()), NestedField(4, "amount", DecimalType(18, 2)), NestedField(5, "day", DateType()), NestedField(6, "qty", IntegerType()))
t = cat.create_table("b.events", schema=schema)
rng = random.Random(17)
base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
import decimal
per = n // 4
for k in range(4):
  ids = range(k * per, (k + 1) * per)
  t.append(pa.table({
    "id": pa.array(list(ids), pa.int64()),
    "ts": pa.array([base + dt.timedelta(seconds=i * 7) for i in ids], pa.timestamp("us", tz="UTC")),
    "name": pa.array([f"name-{i % 1000}" for i in ids], pa.large_string()),
    "amount": pa.array([decimal.Decimal(i % 100000) / 100 for i in ids], pa.decimal128(18, 2)),
    "day": pa.array([(base + dt.timedelta(seconds=i * 7)).date() for i in ids], pa.date32()),
    "qty": pa.array([rng.randint(0, 1000) for _ in ids], pa.int32()),
  }, schema=t.schema().as_arrow()))
t = cat.load_table("b.events")
print(json.dumps({"metadata": t.metadata_location, "head": str(t.current_snapshot().snapshot_id)}))
`;

const PEER = String.raw`
import sys
import pyarrow as pa, pyarrow.ipc as ipc, pyarrow.parquet as pq
from pyiceberg.table import StaticTable
meta, snap, fmt, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t = StaticTable.from_metadata(meta).scan(snapshot_id=snap).to_arrow()
if fmt == "arrow":
  with ipc.new_stream(out, t.schema) as w:
    for b in t.to_batches(max_chunksize=8192): w.write_batch(b)
else:
  pq.write_table(t, out, compression="zstd")
print(t.num_rows)
`;

interface Run { wallS: number; peakMiB: number }

/** Runs argv under GNU time: wall seconds and peak RSS. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Run & { stdout: string } {
  const r = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %M', ...argv], { cwd: REPO_ROOT, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  const m = /__TIME__ ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { wallS: Number(m[1]), peakMiB: Number(m[2]) / 1024, stdout: r.stdout };
}

function arrowRows(python: string, file: string, fmt: string): number {
  const code = fmt === 'arrow'
    ? 'import sys, pyarrow.ipc as ipc; print(ipc.open_stream(open(sys.argv[1], "rb")).read_all().num_rows)'
    : fmt === 'parquet' ? 'import sys, pyarrow.parquet as pq; print(pq.read_metadata(sys.argv[1]).num_rows)'
      : 'import sys; print(sum(1 for _ in open(sys.argv[1])))';
  const r = spawnSync(python, ['-c', code, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

async function run(ctx: BenchContext): Promise<void> {
  const n = intOption(ctx, 'rows', 1_000_000);
  const rounds = intOption(ctx, 'rounds', 3);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-bench-rowsout-'));
  try {
    ctx.log(`writing a ${fmtInt(n)}-row table with PyIceberg…`);
    const w = JSON.parse((await runCommand(ctx.python, ['-c', WRITE, work, String(n)], { prefix: '' })).trim().split('\n').pop()!) as { metadata: string; head: string };
    const env = { ...process.env, IPS_ROWS_MAX_ROWS: String(n * 2) };
    const out: (string | number)[][] = [];
    const load = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    for (const fmt of ['arrow', 'parquet', 'jsonl'] as const) {
      const ips: Run[] = [];
      const peer: Run[] = [];
      for (let i = 0; i < rounds; i++) {
        const order = i % 2 === 0 ? ['ips', 'peer'] : ['peer', 'ips'];
        for (const side of order) {
          const file = path.join(work, `${side}.${fmt}`);
          fs.rmSync(file, { force: true });
          if (side === 'ips') {
            ips.push(timed([process.execPath, path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', w.metadata, '--rows', '--net', '--format', fmt, '--out', file], env));
            const got = arrowRows(ctx.python, file, fmt);
            if (got !== n) throw new Error(`ips wrote ${got} rows as ${fmt}, expected ${n}`);
          } else if (fmt !== 'jsonl') {
            const r = timed([ctx.python, '-c', PEER, w.metadata.replace(/^file:\/\//, ''), w.head, fmt, file], env);
            if (Number(r.stdout.trim()) !== n) throw new Error(`PyIceberg read ${r.stdout.trim()} rows, expected ${n}`);
            peer.push(r);
          }
        }
      }
      const iw = median(ips.map((r) => r.wallS));
      const im = median(ips.map((r) => r.peakMiB));
      const pw = peer.length ? median(peer.map((r) => r.wallS)) : NaN;
      const pm = peer.length ? median(peer.map((r) => r.peakMiB)) : NaN;
      ctx.result({
        measure: `\`ips changes --rows --net --format ${fmt}\` of a whole ${fmtInt(n)}-row PyIceberg table, process wall time and peak RSS, median of ${rounds}` +
          (peer.length ? '; ratio = PyIceberg wall ÷ ips wall (> 1×: ips faster)' : ''),
        ips: `${iw.toFixed(2)} s, peak RSS ${im.toFixed(0)} MiB`,
        peer: peer.length ? `PyIceberg scan → pyarrow ${fmt} writer: ${pw.toFixed(2)} s, peak RSS ${pm.toFixed(0)} MiB` : null,
        ratio: peer.length ? fmtRatio(pw / iw) : null,
      });
      out.push([fmt, fmtInt(n), iw.toFixed(2), im.toFixed(0), peer.length ? pw.toFixed(2) : '—', peer.length ? pm.toFixed(0) : '—',
        peer.length ? (iw / pw).toFixed(2) : '—', peer.length ? (im / pm).toFixed(2) : '—', load()]);
    }
    console.log(`\nrowsout: ips changes --rows --net (whole table) vs PyIceberg scan → pyarrow writer; medians of ${rounds} runs each, wall s and peak RSS MiB\n`);
    console.log(table(['format', 'rows', 'ips s', 'ips MiB', 'PyIceberg s', 'PyIceberg MiB', 'time ips/peer', 'memory ips/peer', 'load (1/5/15 min)'], out));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export const rowsOut: Benchmark = {
  name: 'rowsout',
  description: 'ips changes --rows output (arrow, parquet, jsonl) vs PyIceberg scan + pyarrow writers: wall time and peak memory',
  byDefault: true,
  options: OPTIONS,
  run,
};
