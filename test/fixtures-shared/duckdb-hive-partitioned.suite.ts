// duckdb-hive-partitioned (v2, Spark metadata, spec evolution identity(event_date) →
// identity(event_date), identity(event_type)). Every fact of expected.json that metadata can
// verify: snapshots, per-file column stats for every metadata version, partition summaries, and
// the rows (every data file holds one row, so its bounds are its values).
// Not checkable here: nothing beyond the Parquet contents themselves, which the README says
// were replaced by DuckDB-written files lacking the partition columns (metadata-only fixture).
import { describe, expect, it } from 'vitest';
import { bindSpec } from '../../src/iceberg/partition-values.js';
import { snapshotById, specById } from '../../src/iceberg/metadata.js';
import { decodeBinaryValue, toJsonValue } from '../../src/iceberg/values.js';
import { currentLiveFiles, fixture, inspect, rowFromBounds, sortRows, sum, versionOf, type Json } from './helpers.js';

const f = fixture('duckdb-hive-partitioned');
const E = f.expected;
const STATUS = ['EXISTING', 'ADDED', 'DELETED'];
const COLUMNS = { 1: 'event_date', 2: 'user_id', 3: 'event_type' };

describe('duckdb-hive-partitioned: table and snapshots', () => {
  it('version-hint.text (4) resolves the directory to v4 and its current snapshot', async () => {
    const t = await f.load();
    expect(t.metadataLocation.endsWith('metadata/v4.metadata.json')).toBe(true);
    const cur = E.scan.states.find((s: Json) => s.current);
    expect(t.metadata.currentSnapshotId?.toString()).toBe(cur.snapshot_id);
    expect(t.metadata.formatVersion).toBe(2);
  });

  for (const state of E.scan.states as Json[]) {
    for (const mf of state.metadata_files as string[]) {
      it(`${mf}: current snapshot ${state.snapshot_id} (seq ${state.sequence_number}, ${state.operation}), ${state.visible_row_count} rows`, async () => {
        const t = await f.load(versionOf(mf));
        const md = t.metadata;
        expect(md.currentSnapshotId?.toString()).toBe(state.snapshot_id);
        const s = snapshotById(md, md.currentSnapshotId!)!;
        expect(s.sequenceNumber.toString()).toBe(state.sequence_number);
        expect(s.operation).toBe(state.operation);
        const live = await currentLiveFiles(f, t);
        // no delete files: the visible row count is the sum of data file record counts
        expect(live.every((l) => l.entry.dataFile.content === 0)).toBe(true);
        expect(Number(sum(live.map((l) => l.entry.dataFile.recordCount)))).toBe(state.visible_row_count);
        // logical rows: every file has one row, so lower == upper bounds are its values
        const rows = live.map((l) => rowFromBounds(l, COLUMNS));
        const keys = ['event_date', 'user_id', 'event_type'];
        expect(sortRows(rows, keys)).toEqual(sortRows(state.rows, keys));
        // the partition tuple agrees with the identity-partitioned columns of the row
        for (const l of live) {
          for (const [name, v] of Object.entries(l.json.partition)) {
            expect(v, `${l.json.file_path} ${name}`).toBe(rowFromBounds(l, COLUMNS)[name]);
          }
        }
      });
    }
  }

  it('the current snapshot added exactly the expected rows, with spec 1; the first with spec 0', async () => {
    const ins = await inspect(f);
    for (const state of E.scan.states as Json[]) {
      const s = ins.snapshots.find((x) => x.snapshot_id === state.snapshot_id)!;
      expect(s.added_files.length).toBeGreaterThan(0);
      for (const a of s.added_files) expect(a.spec_id).toBe(state.partition_spec_id_of_added_files);
      if (state.added_rows) {
        const t = await f.load();
        const live = await currentLiveFiles(f, t);
        const added = new Set(s.added_files.map((a) => a.file_path));
        const rows = live.filter((l) => added.has(l.json.file_path)).map((l) => rowFromBounds(l, COLUMNS));
        const keys = ['event_date', 'user_id', 'event_type'];
        expect(sortRows(rows, keys)).toEqual(sortRows(state.added_rows, keys));
      }
    }
  });

  it('filter event_date = 2024-01-02, projected to user_id, pruned by the identity partition value', async () => {
    const live = await currentLiveFiles(f, await f.load());
    for (const flt of E.scan.filters as Json[]) {
      expect(flt.predicate.op).toBe('=');
      const hits = live.filter((l) => l.json.partition[flt.predicate.column] === flt.predicate.value);
      const rows = hits.map((l) => {
        const r = rowFromBounds(l, COLUMNS);
        return Object.fromEntries(flt.projection.map((c: string) => [c, r[c]]));
      });
      expect(rows).toEqual(flt.result);
    }
  });

  it('v1 has no snapshot (current-snapshot-id -1) and no files', async () => {
    const t = await f.load('v1');
    expect(t.metadata.currentSnapshotId).toBe(null);
    expect(await currentLiveFiles(f, t)).toEqual([]);
    const ins = await inspect(f, 'v1');
    expect(ins.snapshots).toEqual([]);
    expect(ins.current_snapshot_id).toBe(null);
  });
});

describe('duckdb-hive-partitioned: column_stats per metadata version', () => {
  const byPath = new Map<string, Json>((E.column_stats.files as Json[]).map((x) => [x.path, x]));

  for (const [version, v] of Object.entries(E.column_stats.by_metadata_version as Record<string, Json>)) {
    it(`${version}: live files, bounds, sizes, counts, sequence numbers and partitions`, async () => {
      const t = await f.load(version);
      expect(t.metadata.currentSnapshotId?.toString() ?? null).toBe(v.snapshot_id);
      const live = await currentLiveFiles(f, t);
      expect(live.map((l) => f.rel(l.json.file_path)).sort()).toEqual([...v.files].sort());
      for (const l of live) {
        const exp = byPath.get(f.rel(l.json.file_path))!;
        const df = l.entry.dataFile;
        expect(STATUS[l.entry.status]).toBe(exp.status);
        expect(exp.content).toBe('DATA');
        expect(df.content).toBe(0);
        expect(l.json.partition).toEqual(exp.partition);
        expect(l.entry.fileSequenceNumber?.toString()).toBe(exp.file_sequence_number);
        expect(l.json.file_sequence_number).toBe(exp.file_sequence_number);
        for (const [name, c] of Object.entries(exp.columns as Record<string, Json>)) {
          const id = c.field_id as number;
          const where = `${exp.path} ${name}`;
          expect(l.json.lower_bounds[String(id)], where).toBe(c.lower_bound);
          expect(l.json.upper_bounds[String(id)], where).toBe(c.upper_bound);
          expect(df.columnSizes?.get(id)?.toString(), where).toBe(c.column_size);
          expect(df.valueCounts?.get(id)?.toString(), where).toBe(c.value_count);
          expect(df.nullValueCounts?.get(id)?.toString(), where).toBe(c.null_value_count);
          expect(df.nanValueCounts?.get(id)?.toString() ?? null, where).toBe(c.nan_value_count);
          // the column's type in the table schema is the one expected.json names
          const field = t.metadata.schemas[0]!.struct.fields.find((x) => x.id === id)!;
          expect(field.name).toBe(name);
          expect(field.type).toEqual({ kind: c.type });
        }
      }
    });
  }

  it('v3 (new default spec, no new snapshot) still shows v2\'s snapshot and files', async () => {
    const t3 = await f.load('v3');
    const t2 = await f.load('v2');
    expect(t3.metadata.currentSnapshotId).toBe(t2.metadata.currentSnapshotId);
    expect(t3.metadata.defaultSpecId).toBe(1);
    expect(t2.metadata.defaultSpecId).toBe(0);
    const files = (await currentLiveFiles(f, t3)).map((l) => f.rel(l.json.file_path)).sort();
    expect(files).toEqual([...E.column_stats.by_metadata_version.v2.files].sort());
  });
});

describe('duckdb-hive-partitioned: manifest-list partition summaries', () => {
  const byPath = new Map<string, Json>((E.partition_summaries.manifests as Json[]).map((x) => [x.manifest_path, x]));

  for (const [version, v] of Object.entries(E.partition_summaries.by_metadata_version as Record<string, Json>)) {
    it(`${version}: manifests and their field summaries, bounds decoded with the partition result type`, async () => {
      const t = await f.load(version);
      const md = t.metadata;
      expect(md.currentSnapshotId?.toString() ?? null).toBe(v.snapshot_id);
      if (md.currentSnapshotId === null) {
        expect(v.manifests).toEqual([]);
        return;
      }
      const list = await f.reader.manifestList(snapshotById(md, md.currentSnapshotId)!);
      expect(list.manifests.map((m) => f.rel(m.path)).sort()).toEqual([...v.manifests].sort());
      for (const m of list.manifests) {
        const exp = byPath.get(f.rel(m.path))!;
        expect(m.addedSnapshotId?.toString()).toBe(exp.added_snapshot_id);
        expect(m.partitionSpecId).toBe(exp.partition_spec_id);
        const bound = bindSpec(md, specById(md, m.partitionSpecId));
        expect(m.partitions).not.toBe(null);
        expect(m.partitions!.length).toBe(exp.fields.length);
        exp.fields.forEach((ef: Json, i: number) => {
          const pf = bound[i]!;
          const s = m.partitions![i]!;
          expect(pf.field.fieldId).toBe(ef.field_id);
          expect(pf.field.name).toBe(ef.name);
          expect(pf.field.transform).toBe(ef.transform);
          expect(pf.resultType).toEqual({ kind: ef.type });
          expect(ef.source_columns).toEqual([md.schemas[0]!.struct.fields.find((x) => x.id === pf.field.sourceId)!.name]);
          expect(toJsonValue(pf.resultType, decodeBinaryValue(pf.resultType, s.lowerBound!))).toBe(ef.lower_bound);
          expect(toJsonValue(pf.resultType, decodeBinaryValue(pf.resultType, s.upperBound!))).toBe(ef.upper_bound);
          expect(s.containsNull).toBe(ef.contains_null);
          expect(s.containsNan).toBe(ef.contains_nan);
        });
      }
    });
  }
});
