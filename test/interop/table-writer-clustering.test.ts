// A copy-on-write commit rewrites only the manifests that hold the partitions it changes: the
// rewritten entries are clustered by partition into manifests of at most REWRITE_MAX_ENTRIES,
// and a later commit that changes one partition rewrites the one manifest holding it, carrying
// the others as they are. Read back by PyIceberg (the independent reader): at every snapshot its
// scan returns exactly the rows DuckDB reads from the files that should be live, and its
// all_manifests / entries show which manifests each commit wrote and carried.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HadoopCatalog } from '../../src/catalog/table-catalog.js';
import { SqlEngine } from '../../src/engine/duckdb.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import { Lake } from '../../src/playback/lake.js';
import { REWRITE_MAX_ENTRIES } from '../../src/table/table-writer.js';
import { runPythonCode } from '../setup/env.js';
import { Duck, days, sqlList } from '../unit/duckdb-parquet.js';

const IDENT = 'db.daily';
const DAYS = 15;
const BUCKETS = 10;
const BUCKET_WIDTH = 10;
const day = (i: number): string => new Date(Date.UTC(2026, 0, 1 + i)).toISOString().slice(0, 10);
/** Rows of (day i, bucket b): three per partition, `v` telling the commit that wrote them. */
const rowsOf = (parts: [number, number][], v: number): string => parts.map(([i, b]) =>
  `SELECT DATE '${day(i)}' AS event_date, (${b * BUCKET_WIDTH} + k)::BIGINT AS profile_id, ${v}::BIGINT AS v FROM range(3) t(k)`).join(' UNION ALL ');

const PY = String.raw`
import json, sys
from pyiceberg.table import StaticTable
req = json.load(sys.stdin)
tbl = StaticTable.from_metadata(req["metadata"])
out = {"snapshots": [], "manifests": {}}
for snap in tbl.snapshots():
    sid = snap.snapshot_id
    rows = sorted([str(r["event_date"]), int(r["profile_id"]), int(r["v"])] for r in tbl.scan(snapshot_id=sid).to_arrow().to_pylist())
    entries = [{"status": e["status"], "snapshot_id": str(e["snapshot_id"]), "file_path": e["data_file"]["file_path"]} for e in tbl.inspect.entries(snapshot_id=sid).to_pylist()]
    out["snapshots"].append({"snapshot_id": str(sid), "rows": rows, "entries": entries})
for m in tbl.inspect.all_manifests().to_pylist():
    out["manifests"].setdefault(str(m["reference_snapshot_id"]), []).append({
        "path": m["path"], "added_snapshot_id": str(m["added_snapshot_id"]),
        "added": m["added_data_files_count"], "existing": m["existing_data_files_count"], "deleted": m["deleted_data_files_count"],
        "days": [m["partition_summaries"][0]["lower_bound"], m["partition_summaries"][0]["upper_bound"]],
    })
json.dump(out, sys.stdout)
`;

interface PyOut {
  snapshots: { snapshot_id: string; rows: [string, number, number][]; entries: { status: number; snapshot_id: string; file_path: string }[] }[];
  manifests: Record<string, { path: string; added_snapshot_id: string; added: number; existing: number; deleted: number; days: [string, string] }[]>;
}

let tmp: string;
let lake: Lake;
let duck: Duck;
let py: PyOut;
const live: DataFile[][] = [];
const snapshotIds: bigint[] = [];
const removedBy: string[][] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-writer-cluster-'));
  const io = new LocalFileIO();
  lake = new Lake(new HadoopCatalog(io, `file://${tmp}/wh`), io, await SqlEngine.open({ io, scratchDir: path.join(tmp, 'engine'), threads: 1 }));
  duck = await Duck.open();
  await lake.create(IDENT, {
    schema: { fields: [
      { id: 1, name: 'event_date', type: 'date', required: false },
      { id: 2, name: 'profile_id', type: 'long', required: false },
      { id: 3, name: 'v', type: 'long', required: false },
    ] },
    partitionFields: [
      { name: 'event_date', transform: 'identity', sourceId: 1, fieldId: 1000 },
      { name: 'profile_id_trunc', transform: `truncate[${BUCKET_WIDTH}]`, sourceId: 2, fieldId: 1001 },
    ],
  });
  const all: [number, number][] = [];
  for (let i = 0; i < DAYS; i++) for (let b = 0; b < BUCKETS; b++) all.push([i, b]);
  // 1: every partition appended at once (one file each, one manifest).
  // 2: the last day's buckets 0-2 replaced: the appended manifest is rewritten, clustered.
  // 3: two buckets of the day before replaced: only the clustered manifest holding that day is rewritten.
  // 4: one bucket of the first day replaced: only the manifest holding the first day.
  const steps: { parts: [number, number][]; v: number }[] = [
    { parts: all, v: 1 },
    { parts: [[DAYS - 1, 0], [DAYS - 1, 1], [DAYS - 1, 2]], v: 2 },
    { parts: [[DAYS - 2, 5], [DAYS - 2, 6]], v: 3 },
    { parts: [[0, 9]], v: 4 },
  ];
  for (const step of steps) {
    let md = await lake.load(IDENT);
    const keys = new Set(step.parts.map(([i, b]) => `${days(day(i))}/${b * BUCKET_WIDTH}`));
    const remove = (await lake.plan(md)).filter((f) => keys.has(`${f.partition.get(1000)}/${f.partition.get(1001)}`));
    const w = await lake.write(IDENT, rowsOf(step.parts, step.v), remove, {}, md);
    md = w.metadata;
    snapshotIds.push(md.currentSnapshotId!);
    removedBy.push(remove.map((f) => f.filePath));
    live.push(await lake.plan(md));
  }
  const last = await lake.catalog.currentMetadataLocation(IDENT);
  py = JSON.parse(await runPythonCode(PY, [], { timeoutMs: 120_000, input: JSON.stringify({ metadata: last }) })) as PyOut;
}, 180_000);

afterAll(async () => {
  lake?.engine.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('copy-on-write commits rewrite only the manifests of the partitions they change', () => {
  it('PyIceberg reads, at every snapshot, exactly the rows DuckDB reads from the files that should be live', async () => {
    expect(py.snapshots.map((s) => s.snapshot_id)).toEqual(snapshotIds.map(String));
    // The files live after each commit, from the commits themselves: before, less removed, plus added.
    let expected = new Set<string>();
    for (const [k, s] of py.snapshots.entries()) {
      const added = s.entries.filter((e) => e.status === 1 && e.snapshot_id === s.snapshot_id).map((e) => e.file_path);
      expected = new Set([...[...expected].filter((p) => !removedBy[k]!.includes(p)), ...added]);
      const duckRows = (await duck.rows(`SELECT event_date::VARCHAR AS d, profile_id::BIGINT AS p, v::BIGINT AS v
        FROM read_parquet(${sqlList([...expected].map((p) => p.replace(/^file:\/\//, '')))}) ORDER BY d, p, v`))
        .map((r) => [r['d'], Number(r['p']), Number(r['v'])]);
      expect(s.rows).toEqual(duckRows);
      expect(s.rows.length).toBe(DAYS * BUCKETS * 3);
      expect(new Set(live[k]!.map((f) => f.filePath))).toEqual(expected);
    }
  });

  it('the first removal rewrites the appended manifest into clustered manifests of at most REWRITE_MAX_ENTRIES', () => {
    const m = py.manifests[snapshotIds[1]!.toString()]!;
    const rewritten = m.filter((x) => x.added_snapshot_id === snapshotIds[1]!.toString() && x.added === 0);
    expect(rewritten.length).toBeGreaterThan(1);
    expect(rewritten.length).toBe(Math.ceil(DAYS * BUCKETS / REWRITE_MAX_ENTRIES));
    for (const x of rewritten) expect(x.existing + x.deleted).toBeLessThanOrEqual(REWRITE_MAX_ENTRIES);
    expect(rewritten.reduce((n, x) => n + x.existing, 0)).toBe(DAYS * BUCKETS - 3);
    expect(rewritten.reduce((n, x) => n + x.deleted, 0)).toBe(3);
    // Clustered by partition: the manifests' day ranges (their partition summaries) do not overlap.
    const ranges = rewritten.map((x) => x.days).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0] > ranges[i - 1]![1]).toBe(true);
    expect(ranges[0]![0]).toBe(day(0));
    expect(ranges.at(-1)![1]).toBe(day(DAYS - 1));
  });

  it('a later commit rewrites only the manifest holding the partitions it changes and carries the others', () => {
    for (const k of [2, 3]) {
      const before = py.manifests[snapshotIds[k - 1]!.toString()]!;
      const after = py.manifests[snapshotIds[k]!.toString()]!;
      const sid = snapshotIds[k]!.toString();
      const written = after.filter((x) => x.added_snapshot_id === sid);
      const carried = after.filter((x) => x.added_snapshot_id !== sid);
      // One manifest of the added files, one rewritten (the one whose partitions changed).
      expect(written.filter((x) => x.added > 0)).toHaveLength(1);
      const rewritten = written.filter((x) => x.added === 0);
      expect(rewritten).toHaveLength(1);
      expect(rewritten[0]!.deleted).toBe(removedBy[k]!.length);
      expect(rewritten[0]!.existing + rewritten[0]!.deleted).toBeLessThanOrEqual(REWRITE_MAX_ENTRIES);
      // Every other manifest of the snapshot before is carried, the very same file.
      const beforePaths = new Set(before.map((x) => x.path));
      expect(carried.every((x) => beforePaths.has(x.path))).toBe(true);
      expect(carried.length).toBeGreaterThanOrEqual(2);
    }
  });
});
