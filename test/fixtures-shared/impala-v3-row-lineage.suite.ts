// impala-v3-row-lineage (v3, Spark 4 / Iceberg 1.10.1): three one-row appends, then a
// rewrite_data_files (replace) whose output keeps data sequence number 3 and stores the lineage
// columns explicitly. Checks the v3 first_row_id inheritance against the `_row_id` values
// expected.json gives for each row, `_last_updated_sequence_number` against the files' data
// sequence numbers, next-row-id, and the bounds of the stored lineage columns.
// Not checkable without Parquet reads: which stored `_row_id` belongs to which `i` inside the
// compacted 3-row file (only its bounds are in metadata: i 1..3, _row_id 0..2, seq 1..3), and
// the current-state rows beyond those bounds.
import { describe, expect, it } from 'vitest';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { currentLiveFiles, fixture, inspect, rowFromBounds, sum, versionOf, type Json, type LiveFile } from './helpers.js';

const f = fixture('impala-v3-row-lineage');
const E = f.expected;
const ROW_ID = 2147483540;
const LAST_UPDATED_SEQ = 2147483539;

const le8 = (b: Buffer): bigint => b.readBigInt64LE(0);
const iOf = (l: LiveFile): number => rowFromBounds(l, { 1: 'i' })['i'] as number;

describe('impala-v3-row-lineage: snapshots', () => {
  it('version-hint.text (5) resolves to v5; v1 has current-snapshot-id null (v3 style)', async () => {
    const t = await f.load();
    expect(t.metadataLocation.endsWith('metadata/v5.metadata.json')).toBe(true);
    expect(t.metadata.formatVersion).toBe(3);
    const v1 = await f.load(versionOf(E.snapshots.empty_version.metadata_file));
    expect(v1.metadata.currentSnapshotId).toBe(null);
    expect(await currentLiveFiles(f, v1)).toEqual([]);
  });

  for (const st of E.snapshots.states as Json[]) {
    it(`${st.metadata_file}: ${st.snapshot_id} (${st.operation}, seq ${st.sequence_number}), ${st.visible_row_count} rows`, async () => {
      const t = await f.load(versionOf(st.metadata_file));
      const md = t.metadata;
      expect(md.currentSnapshotId?.toString()).toBe(st.snapshot_id);
      const s = snapshotById(md, md.currentSnapshotId!)!;
      expect(s.sequenceNumber.toString()).toBe(st.sequence_number);
      expect(s.operation).toBe(st.operation);
      const live = await currentLiveFiles(f, t);
      expect(live.every((l) => l.entry.dataFile.content === 0)).toBe(true); // no deletes
      expect(Number(sum(live.map((l) => l.entry.dataFile.recordCount)))).toBe(st.visible_row_count);
      if (live.every((l) => l.entry.dataFile.recordCount === 1n)) {
        expect(live.map((l) => ({ i: iOf(l) })).sort((a, b) => a.i - b.i)).toEqual(st.rows);
      } else {
        // the compacted file: only the range of i is in metadata
        const is = (st.rows as { i: number }[]).map((r) => r.i);
        expect(live).toHaveLength(1);
        expect(live[0]!.json.lower_bounds['1']).toBe(Math.min(...is));
        expect(live[0]!.json.upper_bounds['1']).toBe(Math.max(...is));
      }
    });
  }

  it('next-row-id goes 0, 1, 2, 3, 6 over v1..v5, and equals first-row-id + added-rows of each new snapshot', async () => {
    const ids: string[] = [];
    for (const v of ['v1', 'v2', 'v3', 'v4', 'v5']) {
      const md = (await f.load(v)).metadata;
      ids.push(md.nextRowId!.toString());
      if (md.currentSnapshotId !== null) {
        const s = snapshotById(md, md.currentSnapshotId)!;
        expect(s.firstRowId! + s.addedRows!).toBe(md.nextRowId);
      }
    }
    expect(ids).toEqual(['0', '1', '2', '3', '6']);
    expect(ids.at(-1)).toBe(E.row_lineage.next_row_id_of_current_state);
  });

  it('the orphan manifest in metadata/ is not picked up (only files reachable from manifest lists)', async () => {
    const ins = await inspect(f);
    const all = ins.snapshots.flatMap((s) => [...s.added_files, ...s.removed_files]);
    expect(all.some((x) => x.file_path.endsWith('.parq'))).toBe(false);
    expect(ins.snapshots.map((s) => s.snapshot_id)).not.toContain('304384514377627697');
  });
});

describe('impala-v3-row-lineage: row lineage', () => {
  const RL = E.row_lineage;
  const timeTravel = RL.states.find((s: Json) => !s.current);
  const current = RL.states.find((s: Json) => s.current);

  it(`time travel to ${timeTravel.snapshot_id}: inherited first_row_id + position = _row_id, data sequence number = _last_updated_sequence_number`, async () => {
    const t = await f.load(versionOf(timeTravel.metadata_file));
    expect(t.metadata.currentSnapshotId?.toString()).toBe(timeTravel.snapshot_id);
    const live = await currentLiveFiles(f, t);
    expect(live).toHaveLength(timeTravel.visible_row_count);
    for (const l of live) {
      const df = l.entry.dataFile;
      // the files store no lineage columns (stored_* null in expected.json) and no first_row_id
      expect(df.lowerBounds?.has(ROW_ID)).toBe(false);
      expect(timeTravel.rows.every((r: Json) => r.stored_row_id === null)).toBe(true);
      // each manifest carries first_row_id in the manifest list; the entry inherits it
      expect(l.manifest.firstRowId).not.toBe(null);
      expect(df.firstRowId).toBe(l.manifest.firstRowId);
      const exp = timeTravel.rows.find((r: Json) => r.i === iOf(l));
      expect(exp, `row i=${iOf(l)}`).toBeDefined();
      const position = 0n; // one-row file
      expect((df.firstRowId! + position).toString()).toBe(exp._row_id);
      expect(l.entry.sequenceNumber?.toString()).toBe(exp._last_updated_sequence_number);
      expect(l.json.first_row_id).toBe(exp._row_id);
    }
  });

  it('filters on the time-travel state: _row_id = 1 and _last_updated_sequence_number > 1', async () => {
    const live = await currentLiveFiles(f, await f.load(versionOf(timeTravel.metadata_file)));
    const rows = live.map((l) => ({ i: iOf(l), rowId: l.entry.dataFile.firstRowId!, seq: l.entry.sequenceNumber! }));
    const [byRowId, bySeq] = RL.filters as Json[];
    expect(byRowId.predicate).toBe('_row_id = 1');
    expect(rows.filter((r) => r.rowId === 1n).map((r) => ({ i: r.i }))).toEqual(byRowId.result);
    expect(bySeq.predicate).toBe('_last_updated_sequence_number > 1');
    expect(rows.filter((r) => r.seq > 1n).map((r) => ({ i: r.i })).sort((a, b) => a.i - b.i)).toEqual(bySeq.result);
  });

  it('current state: one compacted file whose stored lineage bounds match expected rows; new row-id space from 3', async () => {
    const t = await f.load(versionOf(current.metadata_file));
    expect(t.metadata.currentSnapshotId?.toString()).toBe(current.snapshot_id);
    const live = await currentLiveFiles(f, t);
    expect(live).toHaveLength(current.data_file_count);
    const l = live[0]!;
    const df = l.entry.dataFile;
    expect(df.recordCount).toBe(BigInt(current.visible_row_count));
    const storedIds = current.rows.map((r: Json) => BigInt(r.stored_row_id));
    const storedSeqs = current.rows.map((r: Json) => BigInt(r.stored_last_updated_sequence_number));
    const min = (xs: bigint[]): bigint => xs.reduce((a, b) => (b < a ? b : a));
    const max = (xs: bigint[]): bigint => xs.reduce((a, b) => (b > a ? b : a));
    expect(le8(df.lowerBounds!.get(ROW_ID)!)).toBe(min(storedIds));
    expect(le8(df.upperBounds!.get(ROW_ID)!)).toBe(max(storedIds));
    expect(le8(df.lowerBounds!.get(LAST_UPDATED_SEQ)!)).toBe(min(storedSeqs));
    expect(le8(df.upperBounds!.get(LAST_UPDATED_SEQ)!)).toBe(max(storedSeqs));
    // stored values equal the reported ones
    for (const r of current.rows as Json[]) {
      expect(r.stored_row_id).toBe(r._row_id);
      expect(r.stored_last_updated_sequence_number).toBe(r._last_updated_sequence_number);
    }
    // explicit data sequence number 3 (rewrite keeps the starting snapshot's), file seq 4
    expect(l.entry.sequenceNumber).toBe(3n);
    expect(l.entry.fileSequenceNumber).toBe(4n);
    // the compaction's output gets new row-id space: first_row_id 3 inherited from its manifest
    expect(l.manifest.firstRowId).toBe(3n);
    expect(df.firstRowId).toBe(3n);
    expect(df.firstRowId! + df.recordCount).toBe(BigInt(RL.next_row_id_of_current_state));
  });

  it('the replace snapshot\'s DELETED entries carry explicit first_row_id equal to the inherited ones of before', async () => {
    const ins = await inspect(f);
    const rep = ins.snapshots.find((s) => s.operation === 'replace')!;
    expect(rep.added_files).toHaveLength(1);
    expect(rep.removed_files).toHaveLength(3);
    const before = await currentLiveFiles(f, await f.load(versionOf(timeTravel.metadata_file)));
    for (const r of rep.removed_files) {
      const b = before.find((x) => x.json.file_path === r.file_path)!;
      expect(r.first_row_id).toBe(b.json.first_row_id);
      expect(r.sequence_number).toBe(b.json.sequence_number);
      expect(r.file_sequence_number).toBe(b.json.file_sequence_number);
    }
  });
});
