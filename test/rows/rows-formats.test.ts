// `ips changes --rows --format arrow|parquet|jsonl` on a table PyIceberg wrote with every
// primitive type ips reads (two appends, then a copy-on-write delete). pyarrow reads the Arrow
// stream and the Parquet file back; the oracle is PyIceberg itself: the rows inserted by the
// first append are its time-travel scan at that snapshot, the rows the delete removed are
// scan(before) minus scan(after) as multisets. The three formats must hold the same rows, with
// PyIceberg's schema_to_pyarrow types and the table's field ids.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');

function ips(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

const WRITE = String.raw`
import sys, json, uuid, datetime, decimal
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import *
from pyiceberg.expressions import LessThan
work = sys.argv[1]
cat = SqlCatalog("t", uri=f"sqlite:///{work}/cat.db", warehouse=f"file://{work}/wh")
cat.create_namespace("ns")
schema = Schema(
  NestedField(1, "id", LongType(), required=True),
  NestedField(2, "b", BooleanType()), NestedField(3, "i", IntegerType()), NestedField(4, "f", FloatType()),
  NestedField(5, "d", DoubleType()), NestedField(6, "dec", DecimalType(12, 3)), NestedField(7, "dt", DateType()),
  NestedField(8, "t", TimeType()), NestedField(9, "ts", TimestampType()), NestedField(10, "tstz", TimestamptzType()),
  NestedField(11, "s", StringType()), NestedField(12, "fx", FixedType(4)), NestedField(13, "bin", BinaryType()),
  NestedField(14, "big", DecimalType(38, 6)),
  # DuckDB keeps these in 2 and 4 bytes, the Arrow writer widens them to 128 bits
  NestedField(15, "d4", DecimalType(4, 2)), NestedField(16, "d9", DecimalType(9, 4)),
)
tbl = cat.create_table("ns.all_types", schema=schema)
arrow_schema = tbl.schema().as_arrow()
def rows(lo, hi):
  out = []
  for k in range(lo, hi):
    n = k % 7 == 3  # some nulls in every optional column
    out.append({
      "id": 9_007_199_254_740_993 + k,  # above 2^53: a JavaScript number would round it
      "b": None if n else k % 2 == 0, "i": None if n else -k * 1000, "f": None if n else k / 4,
      "d": None if n else (float("nan") if k == 5 else k * 1.1), "dec": None if n else decimal.Decimal(k * 1234567 * (-1 if k % 2 else 1)) / 1000,
      "dt": None if n else datetime.date(1969, 12, 30) + datetime.timedelta(days=k * 40),
      "t": None if n else datetime.time(k % 24, k % 60, k % 60, k * 7),
      "ts": None if n else datetime.datetime(2026, 3, 1, 5, 0, 0, 123456) + datetime.timedelta(microseconds=k * 1_000_003),
      "tstz": None if n else datetime.datetime(1960, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=k * 86_401, microseconds=k),
      "s": None if n else f"r{k} é ✓", "fx": None if n else bytes([k, 0, 255, k % 3]), "bin": None if n else bytes(range(k % 5)),
      # 128 bits: beyond 64-bit unscaled values, negative ones in two's complement
      "big": None if n else decimal.Decimal(f"{'-' if k % 3 == 0 else ''}{10**31 + k}.{k:06d}"),
      "d4": None if k % 5 == 2 else decimal.Decimal(k * 331 * (-1 if k % 2 else 1) % 9999) / 100 * (-1 if k % 3 == 1 else 1),
      "d9": None if k % 6 == 4 else decimal.Decimal(k * 7654321 % 999999999) / 10000 * (-1 if k % 2 == 0 else 1),
    })
  return pa.Table.from_pylist(out, schema=arrow_schema)
tbl.append(rows(0, 40))
tbl.append(rows(40, 60))
tbl.delete(LessThan("id", 9_007_199_254_740_993 + 12))
tbl = cat.load_table("ns.all_types")
print(json.dumps({"metadata": tbl.metadata_location, "snapshots": [str(s.snapshot_id) for s in tbl.snapshots()]}))
`;

const CHECK = String.raw`
import sys, json, collections, datetime, decimal, math
import pyarrow as pa, pyarrow.ipc as ipc, pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
work, arrow_path, parquet_path, jsonl_path, stdout_path, net_arrow_path, net_parquet_path, s1, s2, s3 = sys.argv[1:]
cat = SqlCatalog("t", uri=f"sqlite:///{work}/cat.db", warehouse=f"file://{work}/wh")
tbl = cat.load_table("ns.all_types")
ischema = tbl.schema()
cols = [f.name for f in ischema.fields]
def norm(v):
  if isinstance(v, float) and math.isnan(v): return "NaN"
  if isinstance(v, (bytes, bytearray)): return bytes(v).hex()
  if isinstance(v, datetime.datetime) and v.tzinfo is not None: return v.astimezone(datetime.timezone.utc).isoformat()
  if isinstance(v, (datetime.date, datetime.time, datetime.datetime, decimal.Decimal)): return v.isoformat() if not isinstance(v, decimal.Decimal) else str(v)
  return v
def bag(table, extra=()):
  return collections.Counter(json.dumps([norm(r[c]) for c in list(cols) + list(extra)]) for r in table.to_pylist())
def scan(sid): return tbl.scan(snapshot_id=int(sid)).to_arrow()
# the oracle: PyIceberg's time travel
inserted_by_first = bag(scan(s1))
deleted_by_delete = bag(scan(s2)) - bag(scan(s3))
inserted_by_delete = bag(scan(s3)) - bag(scan(s2))
out = {}
a = ipc.open_stream(open(arrow_path, "rb")).read_all()
p = pq.read_table(parquet_path)
j = [json.loads(l) for l in open(jsonl_path)]
out["arrow_types"] = {f.name: str(f.type) for f in a.schema}
out["arrow_nullable"] = {f.name: f.nullable for f in a.schema}
out["arrow_ids"] = {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in a.schema}
out["parquet_types"] = {f.name: str(f.type) for f in p.schema}
out["parquet_ids"] = {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in p.schema}
out["iceberg_ids"] = {f.name: f.field_id for f in ischema.fields}
out["rows"] = [a.num_rows, p.num_rows, len(j)]
ext = ("_change_type", "_change_ordinal", "_commit_snapshot_id")
ba, bp = bag(a, ext), bag(p, ext)
# JSON lines: values in the forms of ips inspect --json, turned into Python values by their Iceberg type
def from_json(r):
  o = dict(r)
  for f in ischema.fields:
    v, t = o.get(f.name), str(f.field_type)
    if v is None: continue
    if t == "long": o[f.name] = int(v)
    elif t.startswith("decimal"): o[f.name] = decimal.Decimal(v)
    elif t == "date": o[f.name] = datetime.date.fromisoformat(v)
    elif t == "time": o[f.name] = datetime.time.fromisoformat(v)
    elif t in ("timestamp", "timestamptz"): o[f.name] = datetime.datetime.fromisoformat(v)
    elif t.startswith("fixed") or t == "binary": o[f.name] = bytes.fromhex(v)
    elif t in ("float", "double"): o[f.name] = float(v)  # JSON writes 2.0 as 2; NaN as text
  o["_commit_snapshot_id"] = int(o["_commit_snapshot_id"])
  return o
bj = collections.Counter(json.dumps([norm(from_json(r)[c]) for c in list(cols) + list(ext)]) for r in j)
out["arrow_eq_parquet"] = ba == bp
out["arrow_eq_stdout"] = ba == bag(ipc.open_stream(open(stdout_path, "rb")).read_all(), ext)
out["arrow_eq_jsonl"] = ba == bj
out["jsonl_diff"] = [list((ba - bj).keys())[:2], list((bj - ba).keys())[:2]]
def part(b, kind, sid):
  c = collections.Counter()
  for k, n in b.items():
    v = json.loads(k)
    if v[-3] == kind and str(v[-1]) == sid: c[json.dumps(v[:-3])] += n
  return c
out["first_append_ok"] = part(ba, "INSERT", s1) == inserted_by_first
out["delete_ok"] = part(ba, "DELETE", s3) == deleted_by_delete and part(ba, "INSERT", s3) == inserted_by_delete
out["deleted"] = sum(deleted_by_delete.values())
out["ordinals"] = sorted(set((r["_change_ordinal"], r["_commit_snapshot_id"]) for r in a.select(["_change_ordinal", "_commit_snapshot_id"]).to_pylist()))
out["min_id"] = str(min(a.column("id").to_pylist()))
# --net: the Arrow stream (rows rendered and parsed back) and the Parquet file DuckDB writes
# itself must hold the same rows, every row of the table at s3 as an INSERT of ordinal 0
na = ipc.open_stream(open(net_arrow_path, "rb")).read_all()
npq = pq.read_table(net_parquet_path)
out["net_rows"] = [na.num_rows, npq.num_rows, scan(s3).num_rows]
out["net_arrow_eq_parquet"] = bag(na, ext) == bag(npq, ext)
out["net_ok"] = bag(npq, ext) == collections.Counter(json.dumps(json.loads(k) + ["INSERT", 0, int(s3)]) for k in bag(scan(s3)).elements())
out["net_parquet_types"] = {f.name: str(f.type) for f in npq.schema}
out["net_parquet_ids"] = {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in npq.schema}
print(json.dumps(out, default=str))
`;

describe('ips changes --rows --format arrow|parquet|jsonl on a PyIceberg table of every primitive type', () => {
  let work: string;
  let meta: string;
  let snaps: string[];

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-formats-'));
    const w = JSON.parse((await runPythonCode(WRITE, [work])).trim().split('\n').pop()!) as { metadata: string; snapshots: string[] };
    meta = w.metadata;
    snaps = w.snapshots;
  }, 300_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('pyarrow reads the Arrow stream and the Parquet file; both equal the JSON lines and PyIceberg time travel', async () => {
    expect(snaps.length, 'PyIceberg wrote two appends and a delete (which may be two snapshots)').toBeGreaterThanOrEqual(3);
    const [s1, s2] = snaps;
    const last = snaps[snaps.length - 1]!;
    const outs = { arrow: path.join(work, 'rows.arrows'), parquet: path.join(work, 'rows.parquet'), jsonl: path.join(work, 'rows.jsonl') };
    for (const [format, out] of Object.entries(outs)) {
      const r = ips(['changes', meta, '--rows', '--format', format, '--out', out]);
      expect([r.status, r.stdout.length], r.stderr).toEqual([0, 0]);
    }
    const net = { arrow: path.join(work, 'net.arrows'), parquet: path.join(work, 'net.parquet') };
    for (const [format, out] of Object.entries(net)) {
      const r = ips(['changes', meta, '--rows', '--net', '--format', format, '--out', out]);
      expect([r.status, r.stdout.length], r.stderr).toEqual([0, 0]);
    }
    // Without --out: the same bytes on standard output.
    const stdout = ips(['changes', meta, '--rows', '--format', 'arrow']);
    expect(stdout.status, stdout.stderr).toBe(0);
    const stdoutFile = path.join(work, 'stdout.arrows');
    fs.writeFileSync(stdoutFile, stdout.stdout);
    expect(fs.readdirSync(work).filter((f) => f.endsWith('.part'))).toEqual([]);

    // From the start of the table: s1 is the first append, s2 (the second append) the table before the delete, last after it.
    const c = JSON.parse((await runPythonCode(CHECK, [work, outs.arrow, outs.parquet, outs.jsonl, stdoutFile, net.arrow, net.parquet, s1!, s2!, last])).trim()) as Record<string, unknown>;
    expect(c['arrow_types']).toEqual({
      id: 'int64', b: 'bool', i: 'int32', f: 'float', d: 'double', dec: 'decimal128(12, 3)', dt: 'date32[day]', t: 'time64[us]',
      ts: 'timestamp[us]', tstz: 'timestamp[us, tz=UTC]', s: 'large_string', fx: 'fixed_size_binary[4]', bin: 'large_binary', big: 'decimal128(38, 6)',
      d4: 'decimal128(4, 2)', d9: 'decimal128(9, 4)', _change_type: 'large_string', _change_ordinal: 'int32', _commit_snapshot_id: 'int64',
    });
    expect((c['arrow_nullable'] as Record<string, boolean>)['id'], 'required columns are not nullable').toBe(false);
    expect((c['arrow_nullable'] as Record<string, boolean>)['dec']).toBe(true);
    const changelogIds = { _change_type: 2147483543, _change_ordinal: 2147483542, _commit_snapshot_id: 2147483541 };
    expect(c['arrow_ids']).toEqual({ ...(c['iceberg_ids'] as object), ...changelogIds });
    expect(c['parquet_ids']).toEqual({ ...(c['iceberg_ids'] as object), ...changelogIds });
    const pt = c['parquet_types'] as Record<string, string>;
    expect([pt['id'], pt['dec'], pt['ts'], pt['tstz'], pt['dt'], pt['t']]).toEqual(['int64', 'decimal128(12, 3)', 'timestamp[us]', 'timestamp[us, tz=UTC]', 'date32[day]', 'time64[us]']);
    const rows = c['rows'] as number[];
    expect(rows[0], '60 inserts and the 12 deletes').toBe(72);
    expect(rows).toEqual([rows[0], rows[0], rows[0]]);
    expect(c['arrow_eq_parquet']).toBe(true);
    expect(c['arrow_eq_stdout'], 'standard output carries the same stream').toBe(true);
    expect(c['arrow_eq_jsonl'], JSON.stringify(c['jsonl_diff'])).toBe(true);
    expect(c['first_append_ok'], 'the first append\'s rows equal PyIceberg\'s scan at that snapshot').toBe(true);
    expect(c['delete_ok'], 'the delete removed exactly scan(before) − scan(after)').toBe(true);
    expect(c['deleted']).toBe(12);
    expect(c['min_id'], 'a long above 2^53 comes through exactly').toBe('9007199254740993');
    const netRows = c['net_rows'] as number[];
    expect(netRows[2], 'the table at the last snapshot').toBe(48);
    expect(netRows).toEqual([48, 48, 48]);
    expect(c['net_arrow_eq_parquet'], '--net: the Arrow stream and the Parquet file DuckDB writes hold the same rows').toBe(true);
    expect(c['net_ok'], '--net from the start: every row of PyIceberg\'s scan at the last snapshot, as an INSERT').toBe(true);
    expect(c['net_parquet_types'], '--net Parquet: the same column types as the changelog\'s').toEqual(c['parquet_types']);
    expect(c['net_parquet_ids']).toEqual({ ...(c['iceberg_ids'] as object), ...changelogIds });
  }, 300_000);

  it('a refusal leaves nothing at --out', () => {
    const out = path.join(work, 'refused.arrows');
    const r = ips(['changes', meta, '--from', snaps[0]!, '--rows', '--format', 'arrow', '--out', out, '--max-rows', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ROW_BUDGET_EXCEEDED/);
    expect(fs.readdirSync(work).filter((f) => f.startsWith('refused'))).toEqual([]);
  });
});
