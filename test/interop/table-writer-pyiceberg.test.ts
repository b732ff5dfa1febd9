// Tables written by ips's table writer, read by PyIceberg (the independent reader) in both
// layouts: the Hadoop layout through StaticTable over the current metadata file, and a SQL
// catalog (PyIceberg SqlCatalog on the test PostgreSQL). Scenario per table: create, two
// appends, an overwrite that removes two files and adds one, a delete-only commit. Checked at
// every snapshot: PyIceberg's rows equal DuckDB's rows of the files that should be live;
// inspect.files/entries/all_manifests show the files, statuses, snapshot ids and sequence
// numbers the spec requires; summaries' totals match DuckDB counts and file sizes; a filtered
// PyIceberg scan (which prunes with ips-written partition values and bounds) returns the same
// rows as DuckDB; and ips's change capture reports exactly each snapshot's added/removed files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HadoopCatalog, SqlWritableCatalog, type WritableCatalog } from '../../src/catalog/table-catalog.js';
import { loadTable, parseTableRef } from '../../src/catalog/load-table.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { readSnapshotChanges } from '../../src/capture/snapshot-changes.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import type { DataFile } from '../../src/iceberg/manifest.js';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { createTable, commitTableUpdate, type NewTableSpec } from '../../src/table/table-writer.js';
import { uploadDataFile } from '../../src/table/data-files.js';
import { planScan } from '../../src/table/scan-planner.js';
import { runPythonCode } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { sourceTableSpec } from '../../src/playback/model.js';
import { Duck, days, sqlList } from '../unit/duckdb-parquet.js';

const io = new LocalFileIO();
const IDENT = 'demo.playback_daily';
// The demo's source table, also split by profile ranges (a truncate partition).
const SPEC: Omit<NewTableSpec, 'identifier'> = {
  ...sourceTableSpec(),
  partitionFields: [
    ...sourceTableSpec().partitionFields,
    { name: 'profile_id_trunc', transform: 'truncate[100]', sourceId: 2, fieldId: 1001 },
  ],
};
const IDS = { event_id: 1, profile_id: 2, title_id: 3, event_date: 4, watch_seconds: 5, device: 6 };

/** Files of the scenario: partition (date, profile bucket) and row count. */
const FILES = {
  f1: { date: '2026-01-01', bucket: 0, n: 120 },
  f2: { date: '2026-01-02', bucket: 100, n: 90 },
  f3: { date: '2026-01-01', bucket: 100, n: 75 },
  f4: { date: '2026-01-03', bucket: 0, n: 60 },
  f5: { date: '2026-01-01', bucket: 0, n: 140 },
} as const;
type F = keyof typeof FILES;
/** The commits, and the files live after each. */
const STEPS: { op: 'append' | 'overwrite' | 'delete'; add: F[]; remove: F[]; live: F[] }[] = [
  { op: 'append', add: ['f1', 'f2'], remove: [], live: ['f1', 'f2'] },
  { op: 'append', add: ['f3', 'f4'], remove: [], live: ['f1', 'f2', 'f3', 'f4'] },
  { op: 'overwrite', add: ['f5'], remove: ['f1', 'f4'], live: ['f2', 'f3', 'f5'] },
  { op: 'delete', add: [], remove: ['f2'], live: ['f3', 'f5'] },
];
/**
 * Manifest entries per snapshot as the spec requires them (status 0 EXISTING, 1 ADDED,
 * 2 DELETED; [status, snapshot index, data seq, file seq, file]): EXISTING entries keep the
 * adding snapshot and its sequence numbers, DELETED entries name the deleting snapshot and keep
 * the file's sequence numbers, DELETED entries of earlier snapshots are not carried.
 */
const ENTRIES: [number, number, number, number, F][][] = [
  [[1, 0, 1, 1, 'f1'], [1, 0, 1, 1, 'f2']],
  [[1, 1, 2, 2, 'f3'], [1, 1, 2, 2, 'f4'], [1, 0, 1, 1, 'f1'], [1, 0, 1, 1, 'f2']],
  [[1, 2, 3, 3, 'f5'], [0, 1, 2, 2, 'f3'], [2, 2, 2, 2, 'f4'], [2, 2, 1, 1, 'f1'], [0, 0, 1, 1, 'f2']],
  // Snapshot 3 rewrote the two appends' manifests into one (f1, f4 DELETED; f2, f3 EXISTING);
  // removing f2 rewrites that one again, without its DELETED entries of snapshot 3.
  [[1, 2, 3, 3, 'f5'], [0, 1, 2, 2, 'f3'], [2, 3, 1, 1, 'f2']],
];
/**
 * Manifests per snapshot: [added_snapshot index, added, existing, deleted data files]. The
 * manifests holding removed files are rewritten into one (of the one spec): PyIceberg reads it like any merged manifest.
 */
const MANIFESTS: [number, number, number, number][][] = [
  [[0, 2, 0, 0]],
  [[1, 2, 0, 0], [0, 2, 0, 0]],
  [[2, 1, 0, 0], [2, 0, 2, 2]],
  [[2, 1, 0, 0], [3, 0, 1, 1]],
];
const FILTER = "event_date = '2026-01-01' and profile_id >= 100 and profile_id < 150";
const FILTER_SQL = "event_date = DATE '2026-01-01' AND profile_id >= 100 AND profile_id < 150";

const PY = String.raw`
import datetime as dt, json, sys
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import StaticTable

req = json.load(sys.stdin)

def s(v):
    if v is None: return None
    if isinstance(v, (dt.date, dt.datetime)): return v.isoformat()
    if isinstance(v, bytes): return v.hex()
    if isinstance(v, dict): return {str(k): s(x) for k, x in v.items()}
    if isinstance(v, list): return [s(x) for x in v]
    return str(v)

def rows(arrow):
    return sorted(({k: s(v) for k, v in r.items()} for r in arrow.to_pylist()), key=lambda r: int(r["event_id"]))

def pairs(m):
    # pyarrow map columns come back as lists of (key, value) tuples
    return {str(k): s(v) for k, v in (m or [])}

out = {}
for t in req["tables"]:
    if t["kind"] == "static":
        tbl = StaticTable.from_metadata(t["metadata"])
    else:
        tbl = SqlCatalog(t["catalog"], uri=t["uri"], warehouse=t["warehouse"]).load_table(t["identifier"])
    res = {"metadata_location": tbl.metadata_location, "format_version": tbl.format_version, "snapshots": []}
    for snap in tbl.snapshots():
        sid = snap.snapshot_id
        summary = {k: str(v) for k, v in snap.summary.additional_properties.items()}
        summary["operation"] = snap.summary.operation.value
        files = tbl.inspect.files(snapshot_id=sid).to_pylist()
        entries = tbl.inspect.entries(snapshot_id=sid).to_pylist()
        res["snapshots"].append({
            "snapshot_id": str(sid),
            "parent_id": None if snap.parent_snapshot_id is None else str(snap.parent_snapshot_id),
            "sequence_number": str(snap.sequence_number),
            "summary": summary,
            "rows": rows(tbl.scan(snapshot_id=sid).to_arrow()),
            "files": [{
                "file_path": f["file_path"], "record_count": str(f["record_count"]), "file_size_in_bytes": str(f["file_size_in_bytes"]),
                "partition": s(f["partition"]), "lower_bounds": pairs(f["lower_bounds"]), "upper_bounds": pairs(f["upper_bounds"]),
                "column_sizes": pairs(f["column_sizes"]), "value_counts": pairs(f["value_counts"]), "null_value_counts": pairs(f["null_value_counts"]),
            } for f in files],
            "entries": [{
                "status": e["status"], "snapshot_id": str(e["snapshot_id"]), "sequence_number": str(e["sequence_number"]),
                "file_sequence_number": str(e["file_sequence_number"]), "file_path": e["data_file"]["file_path"],
            } for e in entries],
        })
    res["all_manifests"] = [{
        "reference_snapshot_id": str(m["reference_snapshot_id"]), "added_snapshot_id": str(m["added_snapshot_id"]),
        "added": m["added_data_files_count"], "existing": m["existing_data_files_count"], "deleted": m["deleted_data_files_count"],
    } for m in tbl.inspect.all_manifests().to_pylist()]
    res["filtered_rows"] = rows(tbl.scan(row_filter=req["filter"]).to_arrow())
    out[t["label"]] = res
json.dump(out, sys.stdout)
`;

interface PySnapshot {
  snapshot_id: string;
  parent_id: string | null;
  sequence_number: string;
  summary: Record<string, string>;
  rows: Record<string, string | null>[];
  files: { file_path: string; record_count: string; file_size_in_bytes: string; partition: Record<string, string | null>; lower_bounds: Record<string, string>; upper_bounds: Record<string, string>; column_sizes: Record<string, string>; value_counts: Record<string, string>; null_value_counts: Record<string, string> }[];
  entries: { status: number; snapshot_id: string; sequence_number: string; file_sequence_number: string; file_path: string }[];
}
interface PyTable {
  metadata_location: string;
  format_version: number;
  snapshots: PySnapshot[];
  all_manifests: { reference_snapshot_id: string; added_snapshot_id: string; added: number; existing: number; deleted: number }[];
  filtered_rows: Record<string, string | null>[];
}

interface Written {
  label: string;
  cat: WritableCatalog;
  files: Record<F, DataFile>;
  snapshotIds: bigint[];
  metadataLocation: string;
}

let duck: Duck;
let tmp: string;
let db: { url: string; drop: () => Promise<void> };
const written: Written[] = [];
let py: Record<string, PyTable>;

const local = (loc: string): string => loc.replace(/^file:\/\//, '');

async function writeScenario(label: string, cat: WritableCatalog): Promise<Written> {
  const created = await createTable(cat, io, { identifier: IDENT, ...SPEC });
  const files = {} as Record<F, DataFile>;
  let seed = 0;
  for (const [name, f] of Object.entries(FILES) as [F, (typeof FILES)[F]][]) {
    seed++;
    const scratch = path.join(tmp, `${label}-${name}.parquet`);
    await duck.writeParquet(scratch, `
      SELECT (${seed} * 10000 + i)::BIGINT AS event_id, (${f.bucket} + (i * 37 + ${seed}) % 100)::BIGINT AS profile_id,
             ((i + ${seed}) % 25)::INTEGER AS title_id, DATE '${f.date}' AS event_date,
             CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 13 % 3600)::INTEGER END AS watch_seconds,
             CASE WHEN i % 7 = 0 THEN NULL ELSE 'device-' || (i % 5) END AS device
        FROM range(0, ${f.n}) t(i)`, IDS);
    files[name] = await uploadDataFile(io, created.metadata, fs.readFileSync(scratch), `event_date=${f.date}/profile_id_trunc=${f.bucket}/${name}.parquet`);
  }
  const snapshotIds: bigint[] = [];
  let metadataLocation = created.metadataLocation;
  for (const step of STEPS) {
    const r = await commitTableUpdate(cat, io, IDENT, {
      operation: step.op, add: step.add.map((f) => files[f]), removePaths: step.remove.map((f) => files[f].filePath),
    });
    snapshotIds.push(r.snapshotId);
    metadataLocation = r.metadataLocation;
  }
  return { label, cat, files, snapshotIds, metadataLocation };
}

beforeAll(async () => {
  duck = await Duck.open();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-writer-pyiceberg-'));
  db = await createPgDatabase('writer_pyiceberg');
  const hadoop = await writeScenario('hadoop', new HadoopCatalog(io, `file://${tmp}/hadoop-wh`));
  const sql = await writeScenario('sql', new SqlWritableCatalog(db.url, 'ips_writer_test', `file://${tmp}/sql-wh`, io));
  written.push(hadoop, sql);
  const sqlAlchemyUrl = db.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:');
  const out = await runPythonCode(PY, [], {
    timeoutMs: 120_000,
    input: JSON.stringify({
      filter: FILTER,
      tables: [
        { label: 'hadoop', kind: 'static', metadata: hadoop.metadataLocation },
        { label: 'sql', kind: 'sql', catalog: 'ips_writer_test', uri: sqlAlchemyUrl, warehouse: `file://${tmp}/sql-wh`, identifier: IDENT },
      ],
    }),
  });
  py = JSON.parse(out) as Record<string, PyTable>;
}, 180_000);

afterAll(async () => {
  for (const w of written) await w.cat.close();
  await db?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function duckRows(files: DataFile[], where = 'true'): Promise<Record<string, string | null>[]> {
  if (files.length === 0) return [];
  const rows = await duck.rows(`
    SELECT event_id::VARCHAR AS event_id, profile_id::VARCHAR AS profile_id, title_id::VARCHAR AS title_id, event_date::VARCHAR AS event_date,
           watch_seconds::VARCHAR AS watch_seconds, device
      FROM read_parquet(${sqlList(files.map((f) => local(f.filePath)))}) WHERE ${where} ORDER BY event_id`);
  return rows as Record<string, string | null>[];
}

describe.each(['hadoop', 'sql'])('ips-written table read by PyIceberg (%s layout)', (label) => {
  const w = (): Written => written.find((x) => x.label === label)!;
  const t = (): PyTable => py[label]!;

  it('PyIceberg reads the committed metadata: v2, the four snapshots in order', () => {
    expect(t().metadata_location).toBe(w().metadataLocation);
    expect(t().format_version).toBe(2);
    const ids = w().snapshotIds.map(String);
    expect(t().snapshots.map((s) => [s.snapshot_id, s.parent_id, s.sequence_number, s.summary['operation']])).toEqual([
      [ids[0], null, '1', 'append'], [ids[1], ids[0], '2', 'append'], [ids[2], ids[1], '3', 'overwrite'], [ids[3], ids[2], '4', 'delete'],
    ]);
  });

  it('PyIceberg returns, at every snapshot, exactly the rows of the files that should be live', async () => {
    for (const [i, step] of STEPS.entries()) {
      const expected = await duckRows(step.live.map((f) => w().files[f]));
      expect(t().snapshots[i]!.rows, `rows at snapshot ${i + 1}`).toEqual(expected);
    }
    // A filtered scan prunes with the partition values and column bounds ips wrote.
    const last = STEPS.at(-1)!;
    const filtered = await duckRows(last.live.map((f) => w().files[f]), FILTER_SQL);
    expect(filtered.length).toBeGreaterThan(0);
    expect(t().filtered_rows).toEqual(filtered);
  });

  it('inspect.files shows the live files with the partition values, counts, sizes and bounds written', async () => {
    for (const [i, step] of STEPS.entries()) {
      const files = [...t().snapshots[i]!.files].sort((a, b) => a.file_path.localeCompare(b.file_path));
      const want = step.live.map((f) => w().files[f]).sort((a, b) => a.filePath.localeCompare(b.filePath));
      expect(files.map((f) => f.file_path)).toEqual(want.map((f) => f.filePath));
      for (const [k, f] of files.entries()) {
        const name = step.live.find((n) => w().files[n].filePath === f.file_path)!;
        const df = want[k]!;
        const [cnt] = await duck.rows(`SELECT count(*)::VARCHAR AS n FROM read_parquet('${local(df.filePath)}')`);
        expect(f.record_count).toBe(cnt!['n']);
        expect(f.file_size_in_bytes).toBe(String(fs.statSync(local(df.filePath)).size));
        expect(f.partition).toEqual({ event_date: FILES[name].date, profile_id_trunc: String(FILES[name].bucket) });
        const hex = (m: ReadonlyMap<number, Buffer> | null) => Object.fromEntries([...(m ?? [])].map(([key, v]) => [String(key), v.toString('hex')]));
        const str = (m: ReadonlyMap<number, bigint> | null) => Object.fromEntries([...(m ?? [])].map(([key, v]) => [String(key), String(v)]));
        expect(f.lower_bounds).toEqual(hex(df.lowerBounds));
        expect(f.upper_bounds).toEqual(hex(df.upperBounds));
        expect(f.column_sizes).toEqual(str(df.columnSizes));
        expect(f.value_counts).toEqual(str(df.valueCounts));
        expect(f.null_value_counts).toEqual(str(df.nullValueCounts));
      }
    }
  });

  it('inspect.entries and all_manifests show the statuses, snapshot ids and sequence numbers the spec requires', () => {
    const ids = w().snapshotIds.map(String);
    const key = (e: { status: number; snapshot_id: string; sequence_number: string; file_sequence_number: string; file_path: string }) => JSON.stringify(e);
    for (const [i, expected] of ENTRIES.entries()) {
      const want = expected.map(([status, snap, seq, fseq, f]) => ({ status, snapshot_id: ids[snap]!, sequence_number: String(seq), file_sequence_number: String(fseq), file_path: w().files[f].filePath }));
      expect(t().snapshots[i]!.entries.map(key).sort(), `entries at snapshot ${i + 1}`).toEqual(want.map(key).sort());
    }
    for (const [i, expected] of MANIFESTS.entries()) {
      const got = t().all_manifests.filter((m) => m.reference_snapshot_id === ids[i]).map((m) => [m.added_snapshot_id, m.added, m.existing, m.deleted]);
      const want = expected.map(([snap, a, e, d]) => [ids[snap]!, a, e, d]);
      const order = (xs: unknown[][]) => xs.map((x) => JSON.stringify(x)).sort();
      expect(order(got), `manifests of snapshot ${i + 1}`).toEqual(order(want));
    }
  });

  it('snapshot summaries have Java SnapshotSummary totals matching DuckDB counts and file sizes', async () => {
    for (const [i, step] of STEPS.entries()) {
      const live = step.live.map((f) => w().files[f]);
      const [cnt] = await duck.rows(`SELECT count(*)::VARCHAR AS n FROM read_parquet(${sqlList(live.map((f) => local(f.filePath)))})`);
      const size = (fs_: DataFile[]) => String(fs_.reduce((n, f) => n + fs.statSync(local(f.filePath)).size, 0));
      const s = t().snapshots[i]!.summary;
      expect(s).toMatchObject({
        'total-records': cnt!['n'], 'total-data-files': String(live.length), 'total-files-size': size(live),
        'total-delete-files': '0', 'total-position-deletes': '0', 'total-equality-deletes': '0',
      });
      if (step.add.length > 0) expect(s['added-data-files']).toBe(String(step.add.length));
      if (step.remove.length > 0) {
        expect(s['deleted-data-files']).toBe(String(step.remove.length));
        expect(s['removed-files-size']).toBe(size(step.remove.map((f) => w().files[f])));
      }
    }
  });

  it("ips's change capture reports exactly each snapshot's added and removed files, loading the table as ips registers it", async () => {
    const reg = w().cat.registration(IDENT);
    const ref = reg.kind === 'directory' ? parseTableRef(reg.location) : parseTableRef(reg.identifier, { catalogUri: reg.uri, catalogName: reg.catalog_name });
    const table = await loadTable(io, ref);
    expect(table.metadataLocation).toBe(w().metadataLocation);
    const reader = new ManifestReader(io);
    for (const [i, step] of STEPS.entries()) {
      const ch = await readSnapshotChanges(reader, snapshotById(table.metadata, w().snapshotIds[i]!)!);
      expect(ch.added.map((c) => c.entry.dataFile.filePath).sort()).toEqual(step.add.map((f) => w().files[f].filePath).sort());
      expect(ch.removed.map((c) => c.entry.dataFile.filePath).sort()).toEqual(step.remove.map((f) => w().files[f].filePath).sort());
    }
    // ips's own plan for the filter keeps every file DuckDB finds matching rows in.
    const last = STEPS.at(-1)!.live.map((f) => w().files[f]);
    const matching = (await duck.rows(`SELECT DISTINCT filename FROM read_parquet(${sqlList(last.map((f) => local(f.filePath)))}, filename = true) WHERE ${FILTER_SQL}`)).map((r) => r['filename']);
    const plan = await planScan(io, table.metadata, [
      { field: 'event_date', op: 'in', values: [days('2026-01-01')] }, { field: 'profile_id', op: 'between', lo: 100n, hi: 149n },
    ]);
    expect(plan.files.map((f) => local(f.filePath))).toEqual(expect.arrayContaining(matching));
    expect(plan.files.map((f) => local(f.filePath))).toEqual([local(w().files.f3.filePath)]);
  });
});
