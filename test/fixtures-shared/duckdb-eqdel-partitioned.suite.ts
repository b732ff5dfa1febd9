// duckdb-eqdel-partitioned (v2, Iceberg Java 1.8.1): 5 snapshots with equality deletes scoped
// by partition and sequence number. Every data file and every equality-delete file holds one
// row, so bounds (lower == upper) are the row values; with them this test applies the spec's
// equality-delete rule (delete seq > data seq, same partition, equal on equality_ids) to get the
// visible rows of each state from metadata alone, and compares them to expected.json.
// Not checkable without Parquet reads: nothing else in expected.json (projections are taken
// from the verified rows).
import { describe, expect, it } from 'vitest';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { currentLiveFiles, fixture, inspect, rowFromBounds, versionOf, type Json, type LiveFile } from './helpers.js';

const f = fixture('duckdb-eqdel-partitioned');
const E = f.expected;
const NAMES: Record<string, string> = { 1: 'id', 2: 'name', 3: 'bir' };

// README.md of the fixtures: equality_ids of the delete added by each delete snapshot.
const EQUALITY_IDS: Record<string, number[]> = {
  '4416477559988274704': [2],
  '6022113614852838397': [2, 1],
  '3138177759849079112': [2],
};

function visibleRows(live: LiveFile[]): Record<string, unknown>[] {
  const data = live.filter((l) => l.entry.dataFile.content === 0);
  const eqDeletes = live.filter((l) => l.entry.dataFile.content === 2);
  expect(live.length).toBe(data.length + eqDeletes.length); // no position deletes in this table
  const rows: Record<string, unknown>[] = [];
  for (const d of data) {
    const row = rowFromBounds(d, NAMES);
    const deleted = eqDeletes.some((del) => {
      const ids = del.entry.dataFile.equalityIds!;
      const delRow = rowFromBounds(del, Object.fromEntries(ids.map((id) => [String(id), NAMES[String(id)]!])));
      const samePartition = del.manifest.partitionSpecId === d.manifest.partitionSpecId
        && JSON.stringify(del.json.partition) === JSON.stringify(d.json.partition);
      return samePartition
        && del.entry.sequenceNumber! > d.entry.sequenceNumber!
        && ids.every((id) => delRow[NAMES[String(id)]!] === row[NAMES[String(id)]!]);
    });
    if (!deleted) rows.push(row);
  }
  return rows.sort((a, b) => Number(a['id']) - Number(b['id']));
}

describe('duckdb-eqdel-partitioned', () => {
  it('version-hint.text (6) resolves to v6, whose current snapshot is the current state', async () => {
    const t = await f.load();
    expect(t.metadataLocation.endsWith('metadata/v6.metadata.json')).toBe(true);
    const cur = E.snapshots.states.find((s: Json) => s.current);
    expect(t.metadata.currentSnapshotId?.toString()).toBe(cur.snapshot_id);
  });

  for (const state of E.snapshots.states as Json[]) {
    it(`${state.metadata_file}: snapshot ${state.snapshot_id} (${state.operation}, seq ${state.sequence_number}) shows ${state.visible_row_count} rows`, async () => {
      const t = await f.load(versionOf(state.metadata_file));
      const md = t.metadata;
      expect(md.currentSnapshotId?.toString()).toBe(state.snapshot_id);
      const s = snapshotById(md, md.currentSnapshotId!)!;
      expect(s.sequenceNumber.toString()).toBe(state.sequence_number);
      expect(s.operation).toBe(state.operation);
      const live = await currentLiveFiles(f, t);
      const rows = visibleRows(live);
      expect(rows.length).toBe(state.visible_row_count);
      expect(rows).toEqual(state.rows);
    });
  }

  it('each delete snapshot adds one equality-delete file in its own deletes manifest, with the README\'s equality_ids', async () => {
    const ins = await inspect(f);
    const t = await f.load();
    for (const s of ins.snapshots) {
      const snap = snapshotById(t.metadata, BigInt(s.snapshot_id))!;
      const list = await f.reader.manifestList(snap);
      const own = list.manifests.filter((m) => m.addedSnapshotId === snap.snapshotId);
      if (s.operation === 'delete') {
        expect(s.added_files).toHaveLength(1);
        expect(s.removed_files).toHaveLength(0);
        const del = s.added_files[0]!;
        expect(del.content).toBe('equality_deletes');
        expect(del.equality_ids).toEqual(EQUALITY_IDS[s.snapshot_id]);
        expect(del.sequence_number).toBe(s.sequence_number);
        expect(own).toHaveLength(1);
        expect(own[0]!.content).toBe(1);
        // the delete file carries the partition tuple of the partition it applies to
        expect(del.partition['name']).toBe(del.lower_bounds['2']);
      } else {
        expect(s.operation).toBe('append');
        expect(s.added_files.every((a) => a.content === 'data')).toBe(true);
        expect(own.every((m) => m.content === 0)).toBe(true);
      }
    }
  });

  it('empty_version: v1 has no snapshot (-1) and no rows', async () => {
    const ev = E.snapshots.empty_version;
    const t = await f.load(versionOf(ev.metadata_file));
    expect(t.metadata.currentSnapshotId).toBe(ev.snapshot_id);
    expect(visibleRows(await currentLiveFiles(f, t)).length).toBe(ev.visible_row_count);
  });

  it('scan_current: rows and projections of the current state', async () => {
    const sc = E.scan_current;
    const t = await f.load(versionOf(sc.metadata_file));
    expect(t.metadata.currentSnapshotId?.toString()).toBe(sc.snapshot_id);
    const rows = visibleRows(await currentLiveFiles(f, t));
    expect(rows.length).toBe(sc.visible_row_count);
    expect(rows).toEqual(sc.rows);
    for (const p of sc.projections as Json[]) {
      expect(rows.map((r) => Object.fromEntries(p.columns.map((c: string) => [c, r[c]]))), p.why).toEqual(p.result);
    }
  });
});
