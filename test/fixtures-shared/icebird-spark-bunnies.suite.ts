// icebird-spark-bunnies (v2, Spark): append, merge-on-read position delete, copy-on-write
// rewrite that leaves the position delete dangling. Checks expected.json's metadata facts,
// row counts per state (data record counts minus the position deletes that apply, identified
// by the delete file's single-valued file_path bound), and the position-delete manifest entry.
// Not checkable without reading Parquet rows: the exact `first_row` values. This test only
// checks that each of them lies inside the data file's column bounds, and that the position
// delete of snapshot 2 removes position 0 (the first row) of the original file.
import { describe, expect, it } from 'vitest';
import type { LoadedTable } from '../../src/catalog/table.js';
import { snapshotById, type Snapshot } from '../../src/iceberg/metadata.js';
import type { PrimitiveType } from '../../src/iceberg/types.js';
import { compareValues, decodeBinaryValue } from '../../src/iceberg/values.js';
import { fixture, inspect, liveFiles, versionOf, type Json, type LiveFile } from './helpers.js';

const f = fixture('icebird-spark-bunnies');
const E = f.expected;
const POS_FILE_PATH = 2147483546; // reserved field id of a position-delete file's file_path
const POS_POS = 2147483545; // reserved field id of pos

function le8(b: Buffer): bigint {
  return b.readBigInt64LE(0);
}

/** Visible rows: data rows minus position deletes whose (single) target file is live. */
function visibleCount(live: LiveFile[]): number {
  const data = live.filter((l) => l.entry.dataFile.content === 0);
  const pos = live.filter((l) => l.entry.dataFile.content === 1);
  let n = 0n;
  for (const d of data) n += d.entry.dataFile.recordCount;
  for (const p of pos) {
    const df = p.entry.dataFile;
    const lo = df.lowerBounds!.get(POS_FILE_PATH)!.toString('utf8');
    const hi = df.upperBounds!.get(POS_FILE_PATH)!.toString('utf8');
    expect(lo).toBe(hi); // every delete in this file targets one data file
    const target = data.find((d) => d.entry.dataFile.filePath === lo);
    // a position delete applies to data files with data sequence number <= its own
    if (target && target.entry.sequenceNumber! <= p.entry.sequenceNumber!) n -= df.recordCount;
  }
  return Number(n);
}

async function at(t: LoadedTable, id?: string): Promise<{ snap: Snapshot; live: LiveFile[] }> {
  const snap = snapshotById(t.metadata, id === undefined ? t.metadata.currentSnapshotId! : BigInt(id))!;
  return { snap, live: await liveFiles(f, t, snap) };
}

describe('icebird-spark-bunnies: metadata', () => {
  const M = E.metadata;

  it('all listed versions parse, and version-hint.text names the latest', async () => {
    for (const v of M.versions as string[]) await f.load(v);
    const t = await f.load();
    expect(t.metadataLocation.endsWith(`metadata/${M.latest_version}.metadata.json`)).toBe(true);
    expect(M.version_hint).toBe(M.latest_version.slice(1));
  });

  for (const v of ['v5', 'v3']) {
    it(`${v}: format version, schema id, last sequence number, location, snapshot ids (exact, > 2^53)`, async () => {
      const exp = M[v];
      const md = (await f.load(v)).metadata;
      expect(md.formatVersion).toBe(exp['format-version']);
      expect(md.currentSchemaId).toBe(exp['current-schema-id']);
      expect(md.lastSequenceNumber.toString()).toBe(exp['last-sequence-number']);
      expect(md.location).toBe(exp.location);
      if (exp.snapshot_ids) {
        expect(md.snapshots.map((s) => s.snapshotId.toString())).toEqual(exp.snapshot_ids);
        expect(md.snapshots.some((s) => s.snapshotId > 2n ** 53n)).toBe(true);
      }
      if (exp['current-snapshot-id']) expect(md.currentSnapshotId?.toString()).toBe(exp['current-snapshot-id']);
    });
  }

  it('manifest-list headers carry the same snapshot ids as metadata.json (no float64 rounding)', async () => {
    const md = (await f.load()).metadata;
    for (const s of md.snapshots) {
      const list = await f.reader.manifestList(s);
      expect(list.meta.get('snapshot-id')).toBe(s.snapshotId.toString());
      expect(list.meta.get('parent-snapshot-id')).toBe(s.parentSnapshotId === null ? 'null' : s.parentSnapshotId.toString());
    }
  });
});

describe('icebird-spark-bunnies: reads', () => {
  const R = E.reads;

  it('schema 0 has the expected columns in order; schema 1 adds breed_name_length (int)', async () => {
    const md = (await f.load()).metadata;
    const s0 = md.schemas.find((s) => s.schemaId === 0)!;
    const s1 = md.schemas.find((s) => s.schemaId === 1)!;
    expect(s0.struct.fields.map((x) => x.name)).toEqual(R.columns_schema_0);
    expect(s1.struct.fields.map((x) => x.name)).toEqual([...R.columns_schema_0, 'breed_name_length']);
    expect(s1.struct.fields.at(-1)!.type).toEqual({ kind: 'int' });
  });

  for (const st of R.states as Json[]) {
    const label = st.time_travel_snapshot_id ? `time travel to ${st.time_travel_snapshot_id} from ${st.metadata_file}` : `${st.metadata_file} (${st.snapshot_id})`;
    it(`${label}: ${st.visible_row_count} visible rows`, async () => {
      const t = await f.load(versionOf(st.metadata_file));
      if (st.snapshot_id) expect(t.metadata.currentSnapshotId?.toString()).toBe(st.snapshot_id);
      const { live } = await at(t, st.time_travel_snapshot_id);
      expect(visibleCount(live)).toBe(st.visible_row_count);
      if (st.first_row) {
        // the first row's values lie within the bounds of the (single) live data file
        const data = live.filter((l) => l.entry.dataFile.content === 0);
        expect(data).toHaveLength(1);
        const df = data[0]!.entry.dataFile;
        const schema = t.metadata.schemas.find((s) => s.schemaId === t.metadata.currentSchemaId)!;
        for (const [name, v] of Object.entries(st.first_row as Record<string, unknown>)) {
          const field = schema.struct.fields.find((x) => x.name === name)!;
          const type = field.type as PrimitiveType;
          const val = type.kind === 'long' ? BigInt(v as string) : v;
          const lo = decodeBinaryValue(type, df.lowerBounds!.get(field.id)!);
          const hi = decodeBinaryValue(type, df.upperBounds!.get(field.id)!);
          expect(compareValues(type, lo, val as never), `${name} >= lower`).toBeLessThanOrEqual(0);
          expect(compareValues(type, val as never, hi), `${name} <= upper`).toBeLessThanOrEqual(0);
        }
      }
    });
  }

  it('the position delete of snapshot 2 removes position 0, the first row, of the original data file', async () => {
    const t = await f.load('v3');
    const { live } = await at(t);
    const pos = live.filter((l) => l.entry.dataFile.content === 1);
    expect(pos).toHaveLength(1);
    const df = pos[0]!.entry.dataFile;
    expect(le8(df.lowerBounds!.get(POS_POS)!)).toBe(0n);
    expect(le8(df.upperBounds!.get(POS_POS)!)).toBe(0n);
    const data = live.filter((l) => l.entry.dataFile.content === 0);
    expect(df.lowerBounds!.get(POS_FILE_PATH)!.toString('utf8')).toBe(data[0]!.entry.dataFile.filePath);
  });

  it('string bounds are truncated to 16 characters (lower bound "American Fuzzy L")', async () => {
    const { live } = await at(await f.load('v1'));
    expect(live[0]!.json.lower_bounds['1']).toBe('American Fuzzy L');
    expect([...String(live[0]!.json.lower_bounds['1'])]).toHaveLength(16);
  });
});

describe('icebird-spark-bunnies: manifests', () => {
  const MF = E.manifests;

  it(`${MF.metadata_file}: ${MF.manifest_count} manifests; the one at index 2 holds the position-delete entry`, async () => {
    const t = await f.load(versionOf(MF.metadata_file));
    expect(t.metadata.currentSnapshotId?.toString()).toBe(MF.snapshot_id);
    const snap = snapshotById(t.metadata, t.metadata.currentSnapshotId!)!;
    const list = await f.reader.manifestList(snap);
    expect(list.manifests).toHaveLength(MF.manifest_count);
    const e2 = MF.manifest_at_index_2;
    const mf = list.manifests[2]!;
    expect(f.rel(mf.path)).toBe(e2.manifest_path);
    const m = await f.reader.manifest(mf);
    expect(m.entries).toHaveLength(e2.entry_count);
    e2.entries.forEach((exp: Json, i: number) => {
      const e = m.entries[i]!;
      expect(e.status).toBe(exp.status);
      expect(e.snapshotId.toString()).toBe(exp.snapshot_id);
      // stored as null, inherited from the manifest list (sequence number 2)
      expect(e.sequenceNumber?.toString()).toBe(exp.sequence_number);
      expect(e.fileSequenceNumber?.toString()).toBe(exp.file_sequence_number);
      const df = e.dataFile;
      const d = exp.data_file;
      expect(df.content).toBe(d.content);
      expect(f.rel(df.filePath)).toBe(d.file_path);
      // file_format as stored is "PARQUET"; the reader normalises to lower case
      expect(df.fileFormat.toUpperCase()).toBe(d.file_format);
      expect(df.recordCount.toString()).toBe(d.record_count);
      expect(df.fileSizeInBytes.toString()).toBe(d.file_size_in_bytes);
      expect(df.splitOffsets?.map(String)).toEqual(d.split_offsets);
    });
  });

  it('snapshot 3 removed the original file (a DELETED entry with explicit sequence numbers) and added the 20-row rewrite', async () => {
    const ins = await inspect(f);
    const s3 = ins.snapshots.find((s) => s.snapshot_id === E.metadata.v5['current-snapshot-id'])!;
    expect(s3.operation).toBe('overwrite');
    expect(s3.added_files.map((a) => [a.content, a.record_count])).toEqual([['data', '20']]);
    expect(s3.removed_files.map((a) => [a.content, a.record_count, a.sequence_number, a.file_sequence_number])).toEqual([['data', '21', '1', '1']]);
  });
});
