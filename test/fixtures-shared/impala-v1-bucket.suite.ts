// impala-v1-bucket (format v1, Impala data + Iceberg Java metadata): bucket[16](ID), v1
// manifest-list names (added_data_files_count ...), no sequence numbers, upper-case names in
// metadata.json vs lower-case in the manifests. Checks rows from bounds (one-row files), the
// stored bucket partition value against our bucket transform of the file's single ID value, and
// the filter's file pruning.
// Not checkable without Parquet reads: `row_groups_read` (row-group statistics live in the
// Parquet footer); this test checks the file-level pruning that precedes it.
import { describe, expect, it } from 'vitest';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { applyTransform, parseTransform } from '../../src/iceberg/transforms.js';
import { currentLiveFiles, fixture, inspect, rowFromBounds, versionOf, type Json } from './helpers.js';

const f = fixture('impala-v1-bucket');
const S = f.expected.scan;
const NAMES = { 1: 'ID', 2: 'OWNERID' };

describe('impala-v1-bucket', () => {
  it('version-hint.text (3) resolves to the only metadata file, v3; format v1 with the legacy spec', async () => {
    const t = await f.load();
    expect(t.metadataLocation.endsWith(S.metadata_file)).toBe(true);
    const md = t.metadata;
    expect(md.formatVersion).toBe(1);
    expect(md.currentSnapshotId?.toString()).toBe(S.snapshot_id);
    expect(md.specs).toHaveLength(1);
    expect(md.specs[0]!.fields).toEqual([{ sourceId: 1, sourceIds: [1], fieldId: 1000, name: 'ID_bucket', transform: 'bucket[16]' }]);
    // v1: no sequence numbers anywhere
    expect(md.lastSequenceNumber).toBe(0n);
    expect(md.snapshots.every((s) => s.sequenceNumber === 0n)).toBe(true);
  });

  it('v1 manifest lists: counts resolved by field id despite the old names, sequence numbers 0, content data', async () => {
    const md = (await f.load()).metadata;
    for (const s of md.snapshots) {
      const list = await f.reader.manifestList(s);
      for (const m of list.manifests) {
        expect(m.addedFilesCount).toBe(1);
        expect(m.existingFilesCount).toBe(0);
        expect(m.deletedFilesCount).toBe(0);
        expect(m.addedRowsCount).toBe(1n);
        expect(m.sequenceNumber).toBe(0n);
        expect(m.minSequenceNumber).toBe(0n);
        expect(m.content).toBe(0);
      }
      expect(list.meta.get('format-version')).toBe('1');
    }
  });

  it(`current state: ${S.visible_row_count} rows, from one-row files' bounds, names from metadata.json`, async () => {
    const t = await f.load(versionOf(S.metadata_file));
    const live = await currentLiveFiles(f, t);
    expect(live.every((l) => l.entry.dataFile.content === 0)).toBe(true);
    const rows = live.map((l) => rowFromBounds(l, NAMES));
    const key = (r: Record<string, unknown>): string => String(r['ID']);
    expect(rows.sort((a, b) => key(a).localeCompare(key(b)))).toEqual([...S.rows].sort((a: Json, b: Json) => key(a).localeCompare(key(b))));
    for (const l of live) {
      // v1 entries inherit nothing but sequence number 0
      expect(l.entry.sequenceNumber).toBe(0n);
      expect(l.entry.fileSequenceNumber).toBe(0n);
    }
  });

  it('the stored bucket partition value equals bucket[16] of the file\'s single ID value (README: 3 for "1", 7 for "2")', async () => {
    const t = await f.load();
    const live = await currentLiveFiles(f, t);
    const readme: Record<string, number> = { 1: 3, 2: 7 };
    const bucket = parseTransform(t.metadata.specs[0]!.fields[0]!.transform);
    for (const l of live) {
      const id = rowFromBounds(l, NAMES)['ID'] as string;
      const stored = l.entry.dataFile.partition.get(1000);
      expect(Number(stored)).toBe(readme[id]);
      expect(applyTransform(bucket, { kind: 'string' }, id)).toBe(Number(stored));
      // partition JSON keyed by the metadata.json name, although the manifest says id_bucket
      expect(l.json.partition).toEqual({ ID_bucket: readme[id] });
      expect(f.rel(l.json.file_path).startsWith(`data/id_bucket=${readme[id]}/`)).toBe(true);
    }
  });

  it('filter ID = \'1\': bucket pruning leaves one file, whose row is the expected result', async () => {
    const t = await f.load();
    const live = await currentLiveFiles(f, t);
    for (const flt of S.filters as Json[]) {
      expect(flt.predicate.field_id).toBe(1);
      const want = applyTransform(parseTransform('bucket[16]'), { kind: 'string' }, flt.predicate.value);
      const kept = live.filter((l) => Number(l.entry.dataFile.partition.get(1000)) === want);
      expect(kept).toHaveLength(1);
      expect(kept.map((l) => rowFromBounds(l, NAMES))).toEqual(flt.result);
    }
  });

  it('each append added one one-row file (manifest entries with explicit v1 snapshot ids)', async () => {
    const ins = await inspect(f);
    const md = (await f.load()).metadata;
    expect(ins.snapshots.map((s) => s.snapshot_id)).toEqual(md.snapshots.map((s) => s.snapshotId.toString()));
    for (const s of ins.snapshots) {
      expect(s.operation).toBe('append');
      expect(s.added_files.map((a) => a.record_count)).toEqual(['1']);
      expect(s.added_files[0]!.sequence_number).toBe('0');
      expect(snapshotById(md, BigInt(s.snapshot_id))!.summary['added-records']).toBe('1');
    }
  });
});
