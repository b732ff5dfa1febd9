// Cross-check of `ips inspect` (inspectTable) and the manifest-list decoder against each
// fixture's derived/changes-by-snapshot.json, an independent decode of the latest metadata:
// snapshots, manifest lists, and the files each snapshot added and removed, with their stats.
// The derived file shows stored values (null when inherited); inherited values are compared
// only where the derived file has a stored one.
import { describe, expect, it } from 'vitest';
import { snapshotById, specById } from '../../src/iceberg/metadata.js';
import { bindSpec } from '../../src/iceberg/partition-values.js';
import type { FileJson } from '../../src/capture/file-json.js';
import { fixture, inspect, type FixtureName, type Json } from './helpers.js';

const NAMES: FixtureName[] = [
  'duckdb-hive-partitioned',
  'duckdb-eqdel-partitioned',
  'icebird-spark-bunnies',
  'impala-v3-row-lineage',
  'impala-v3-deletion-vectors',
  'impala-v1-bucket',
];
const CONTENT: Record<string, FileJson['content']> = { DATA: 'data', POSITION_DELETES: 'position_deletes', EQUALITY_DELETES: 'equality_deletes' };

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

for (const name of NAMES) {
  describe(`${name}: derived/changes-by-snapshot.json`, () => {
    const f = fixture(name);
    const D = f.derived;

    it('latest metadata file, format version, location, current snapshot, snapshot order and fields', async () => {
      const ins = await inspect(f);
      expect(f.rel(ins.metadata_location.replace(f.tableDir, f.prefix))).toBe(D.metadata_file);
      expect(ins.format_version).toBe(D.format_version);
      expect(ins.location).toBe(D.location);
      expect(ins.current_snapshot_id).toBe(D.current_snapshot_id);
      expect(ins.snapshots.map((s) => s.snapshot_id)).toEqual(D.snapshots.map((s: Json) => s.snapshot_id));
      const md = (await f.load()).metadata;
      for (const ds of D.snapshots as Json[]) {
        const s = ins.snapshots.find((x) => x.snapshot_id === ds.snapshot_id)!;
        expect(s.parent_snapshot_id).toBe(ds.parent_snapshot_id);
        // v1 has no sequence numbers: null in the derived decode, 0 per spec
        expect(s.sequence_number).toBe(str(ds.sequence_number) ?? '0');
        expect(s.timestamp_ms).toBe(String(ds.timestamp_ms));
        expect(s.operation).toBe(ds.operation);
        const snap = snapshotById(md, BigInt(ds.snapshot_id))!;
        expect(snap.schemaId).toBe(ds.schema_id ?? null);
        expect(str(snap.firstRowId)).toBe(ds.first_row_id ?? null);
        expect(str(snap.addedRows)).toBe(ds.added_rows ?? null);
        expect(snap.manifestList).toBe(ds.manifest_list);
      }
    });

    it('manifest lists: every manifest_file field, resolved by field id', async () => {
      const md = (await f.load()).metadata;
      for (const ds of D.snapshots as Json[]) {
        const list = await f.reader.manifestList(snapshotById(md, BigInt(ds.snapshot_id))!);
        expect(list.meta.get('snapshot-id')).toBe(ds.manifest_list_header_snapshot_id);
        const got = list.manifests.map((m) => ({
          manifest_path: m.path,
          content: m.content,
          partition_spec_id: m.partitionSpecId,
          sequence_number: md.formatVersion === 1 ? null : str(m.sequenceNumber),
          min_sequence_number: md.formatVersion === 1 ? null : str(m.minSequenceNumber),
          added_snapshot_id: str(m.addedSnapshotId),
          added_files_count: m.addedFilesCount,
          existing_files_count: m.existingFilesCount,
          deleted_files_count: m.deletedFilesCount,
          added_rows_count: str(m.addedRowsCount),
          first_row_id: str(m.firstRowId),
        }));
        expect(got).toEqual(ds.manifests);
        if (md.formatVersion === 1) for (const m of list.manifests) expect(m.sequenceNumber).toBe(0n);
      }
    });

    it('added and removed files per snapshot, with content, sizes, counts, partitions and bounds', async () => {
      const ins = await inspect(f);
      const md = (await f.load()).metadata;
      for (const ds of D.snapshots as Json[]) {
        const s = ins.snapshots.find((x) => x.snapshot_id === ds.snapshot_id)!;
        const changes = ds.changes as Json[];
        const added = changes.filter((c) => c.status === 'ADDED');
        const removed = changes.filter((c) => c.status === 'DELETED');
        const key = (p: string, extra: unknown): string => `${p}#${String(extra)}`;
        // DV entries share a path: key by path + referenced file
        expect(s.added_files.map((a) => key(a.file_path, a.referenced_data_file)).sort())
          .toEqual(added.map((c) => key(c.file_path, c.referenced_data_file ?? undefined)).sort());
        expect(s.removed_files.map((a) => key(a.file_path, a.referenced_data_file)).sort())
          .toEqual(removed.map((c) => key(c.file_path, c.referenced_data_file ?? undefined)).sort());
        for (const c of changes) {
          const list = c.status === 'ADDED' ? s.added_files : s.removed_files;
          const got = list.find((a) => a.file_path === c.file_path && (a.referenced_data_file ?? null) === c.referenced_data_file)!;
          const where = `${ds.snapshot_id} ${c.status} ${c.file_path}`;
          expect(got.content, where).toBe(CONTENT[c.content]);
          expect(got.file_format.toUpperCase(), where).toBe(c.file_format);
          expect(got.record_count, where).toBe(c.record_count);
          expect(got.file_size_in_bytes, where).toBe(c.file_size_in_bytes);
          expect(got.equality_ids ?? null, where).toEqual(c.equality_ids);
          // stored sequence numbers / first_row_id win over inheritance
          if (c.data_sequence_number !== null) expect(got.sequence_number, where).toBe(c.data_sequence_number);
          if (c.file_sequence_number !== null) expect(got.file_sequence_number, where).toBe(c.file_sequence_number);
          if (c.first_row_id !== null) expect(got.first_row_id, where).toBe(c.first_row_id);
          // ADDED entries with a null stored sequence number inherit the snapshot's
          if (c.status === 'ADDED' && c.data_sequence_number === null) expect(got.sequence_number, where).toBe(str(ds.sequence_number) ?? '0');
          if (c.status === 'ADDED' && c.file_sequence_number === null) expect(got.file_sequence_number, where).toBe(str(ds.sequence_number) ?? '0');
          // partition tuple: derived shows raw values (dates as day numbers), keyed by Avro name
          const bound = bindSpec(md, specById(md, got.spec_id));
          const rawPart = Object.values(c.partition as Record<string, unknown>);
          expect(Object.keys(got.partition)).toHaveLength(rawPart.length);
          bound.forEach((pf, i) => {
            const v = got.partition[pf.field.name];
            const raw = rawPart[i];
            if (pf.resultType.kind === 'date') expect(v, where).toBe(new Date((raw as number) * 86_400_000).toISOString().slice(0, 10));
            else expect(v, where).toBe(raw);
          });
          // bounds of schema columns and of reserved metadata columns (_row_id, position-delete
          // file_path/pos), decoded: derived and ours use the same JSON forms
          for (const [id, b] of Object.entries(c.bounds as Record<string, Json>)) {
            expect(got.lower_bounds[id], `${where} lower ${id}`).toEqual(b.lower);
            expect(got.upper_bounds[id], `${where} upper ${id}`).toEqual(b.upper);
          }
          const ids = Object.keys(c.bounds).sort();
          expect(Object.keys(got.lower_bounds).sort(), where).toEqual(ids);
        }
      }
    });

    it('value and null counts and DV fields of every changed entry, from the manifests', async () => {
      const md = (await f.load()).metadata;
      for (const ds of D.snapshots as Json[]) {
        const list = await f.reader.manifestList(snapshotById(md, BigInt(ds.snapshot_id))!);
        for (const c of ds.changes as Json[]) {
          const mf = list.manifests.find((m) => m.path.endsWith(`/${c.manifest}`))!;
          expect(mf, c.manifest).toBeDefined();
          const m = await f.reader.manifest(mf);
          const e = m.entries.find((x) => x.dataFile.filePath === c.file_path && (x.dataFile.referencedDataFile ?? null) === c.referenced_data_file)!;
          const df = e.dataFile;
          const where = `${c.manifest} ${c.file_path}`;
          expect(['EXISTING', 'ADDED', 'DELETED'][e.status], where).toBe(c.status);
          const counts = (mp: ReadonlyMap<number, bigint> | null): Record<string, string> =>
            Object.fromEntries([...(mp ?? new Map<number, bigint>())].map(([k, v]) => [String(k), v.toString()]));
          expect(counts(df.valueCounts), where).toEqual(c.value_counts);
          expect(counts(df.nullValueCounts), where).toEqual(c.null_value_counts);
          expect(str(df.contentOffset), where).toBe(c.content_offset);
          expect(str(df.contentSizeInBytes), where).toBe(c.content_size_in_bytes);
          // raw bound bytes, including reserved field ids
          for (const [id, b] of Object.entries(c.bounds as Record<string, Json>)) {
            expect(df.lowerBounds!.get(Number(id))!.toString('hex'), `${where} ${id}`).toBe(b.lower_hex);
            expect(df.upperBounds!.get(Number(id))!.toString('hex'), `${where} ${id}`).toBe(b.upper_hex);
          }
        }
      }
    });
  });
}
