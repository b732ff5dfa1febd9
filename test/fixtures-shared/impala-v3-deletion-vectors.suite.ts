// impala-v3-deletion-vectors (v3, Spark 4 / Iceberg 1.10.1): five one-row data files, then two
// deletion vectors in one Puffin file. Checks the `files` table facts, the DV manifest entries
// against the README and against the Puffin footer and blobs (parsed here independently), and
// the visible/deleted rows: each data file's single row comes from its bounds, each DV's
// positions from its Roaring bitmap.
// Not checkable without Parquet reads: nothing in expected.json (all files hold one row).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { currentLiveFiles, fixture, inspect, rowFromBounds, versionOf, type Json, type LiveFile } from './helpers.js';

const f = fixture('impala-v3-deletion-vectors');
const E = f.expected;

// README.md of the fixtures, section 5.
const PUFFIN = 'data/00000-9-08e88179-85b6-4635-8b34-94b49abc87d9-00001-deletes.puffin';
const DV_FACTS = [
  { referenced: 'data/00003-3-ec047627-1122-495a-9b07-87e0c47aebbb-0-00001.parquet', offset: 4n, size: 42n },
  { referenced: 'data/00001-1-ec047627-1122-495a-9b07-87e0c47aebbb-0-00001.parquet', offset: 46n, size: 42n },
];

interface PuffinBlob { type: string; offset: number; length: number; properties: Record<string, string> }

/** Puffin footer (puffin-spec.md): magic, JSON payload, payload size (LE int32), flags, magic. */
function puffinFooter(buf: Buffer): PuffinBlob[] {
  const magic = Buffer.from('PFA1');
  expect(buf.subarray(0, 4).equals(magic)).toBe(true);
  expect(buf.subarray(buf.length - 4).equals(magic)).toBe(true);
  const flags = buf.readInt32LE(buf.length - 8);
  expect(flags & 1).toBe(0); // payload not compressed
  const size = buf.readInt32LE(buf.length - 12);
  const start = buf.length - 12 - size;
  expect(buf.subarray(start - 4, start).equals(magic)).toBe(true);
  return (JSON.parse(buf.subarray(start, start + size).toString('utf8')) as { blobs: PuffinBlob[] }).blobs;
}

/**
 * deletion-vector-v1 blob: BE length, magic D1 D3 39 64, portable 64-bit Roaring bitmap, BE
 * CRC-32 of magic + bitmap. Supports array containers (cookie 12346), which is what holds here.
 */
function dvPositions(blob: Buffer): bigint[] {
  const len = blob.readUInt32BE(0);
  expect(len).toBe(blob.length - 8);
  const body = blob.subarray(4, 4 + len);
  expect(body.subarray(0, 4).toString('hex')).toBe('d1d33964');
  expect(blob.readUInt32BE(4 + len)).toBe(zlib.crc32(body) >>> 0);
  let p = 4;
  const count = body.readBigUInt64LE(p);
  p += 8;
  const out: bigint[] = [];
  for (let b = 0n; b < count; b++) {
    const high = BigInt(body.readUInt32LE(p));
    p += 4;
    const cookie = body.readUInt32LE(p);
    p += 4;
    expect(cookie).toBe(12346); // SERIAL_COOKIE_NO_RUNCONTAINER
    const containers = body.readUInt32LE(p);
    p += 4;
    const heads: [number, number][] = [];
    for (let c = 0; c < containers; c++) {
      heads.push([body.readUInt16LE(p), body.readUInt16LE(p + 2) + 1]);
      p += 4;
    }
    p += 4 * containers; // offsets
    for (const [key, card] of heads) {
      expect(card).toBeLessThanOrEqual(4096); // array container
      for (let i = 0; i < card; i++) {
        out.push((high << 32n) | (BigInt(key) << 16n) | BigInt(body.readUInt16LE(p)));
        p += 2;
      }
    }
  }
  return out;
}

function rowsWithDeletes(live: LiveFile[]): { visible: { i: number }[]; deleted: { i: number }[] } {
  const data = live.filter((l) => l.entry.dataFile.content === 0);
  const dvs = live.filter((l) => l.entry.dataFile.content === 1);
  const puffin = new Map<string, Buffer>();
  const visible: { i: number }[] = [];
  const deleted: { i: number }[] = [];
  for (const d of data) {
    const row = rowFromBounds(d, { 1: 'i' }) as { i: number };
    let gone = false;
    for (const dv of dvs) {
      const df = dv.entry.dataFile;
      if (df.referencedDataFile !== d.entry.dataFile.filePath) continue;
      expect(dv.entry.sequenceNumber! >= d.entry.sequenceNumber!).toBe(true);
      const p = path.join(f.tableDir, f.rel(df.filePath));
      if (!puffin.has(p)) puffin.set(p, fs.readFileSync(p));
      const buf = puffin.get(p)!;
      const positions = dvPositions(buf.subarray(Number(df.contentOffset), Number(df.contentOffset! + df.contentSizeInBytes!)));
      expect(BigInt(positions.length)).toBe(df.recordCount); // record_count = cardinality
      if (positions.includes(0n)) gone = true; // the file's only row is at position 0
    }
    (gone ? deleted : visible).push(row);
  }
  const byI = (a: { i: number }, b: { i: number }): number => a.i - b.i;
  return { visible: visible.sort(byI), deleted: deleted.sort(byI) };
}

describe('impala-v3-deletion-vectors', () => {
  it('an empty version-hint.text falls back to the highest version, v3', async () => {
    expect(fs.readFileSync(path.join(f.tableDir, 'metadata', 'version-hint.text')).length).toBe(0);
    const t = await f.load();
    expect(t.metadataLocation.endsWith('metadata/v3.metadata.json')).toBe(true);
    expect(t.metadata.currentSnapshotId?.toString()).toBe(E.files_table.snapshot_id);
  });

  it('files table: 5 PARQUET data entries without DV fields, 2 PUFFIN entries with them, one Puffin file', async () => {
    const FT = E.files_table;
    const t = await f.load(versionOf(FT.metadata_file));
    expect(t.metadata.currentSnapshotId?.toString()).toBe(FT.snapshot_id);
    const live = await currentLiveFiles(f, t);
    const entries = live
      .map((l) => ({
        content: l.entry.dataFile.content as number,
        file_format: l.entry.dataFile.fileFormat.toUpperCase(),
        referenced_data_file_is_set: l.entry.dataFile.referencedDataFile !== null,
        content_offset_is_set: l.entry.dataFile.contentOffset !== null,
      }))
      .sort((a, b) => a.content - b.content || a.file_format.localeCompare(b.file_format));
    expect(entries).toEqual(FT.entries);
    expect(entries.filter((e) => e.content === 0 && e.file_format === 'PARQUET')).toHaveLength(FT.parquet_data_files);
    const puffins = live.filter((l) => l.entry.dataFile.fileFormat === 'puffin');
    expect(puffins).toHaveLength(FT.puffin_delete_entries);
    expect(new Set(puffins.map((l) => l.entry.dataFile.filePath)).size).toBe(FT.distinct_puffin_files);
  });

  it('DV entries: referenced_data_file, content_offset, content_size_in_bytes, record_count (README) and the Puffin footer agree', async () => {
    const live = await currentLiveFiles(f, await f.load());
    const dvs = live.filter((l) => l.entry.dataFile.content === 1);
    const got = dvs.map((l) => ({
      referenced: f.rel(l.entry.dataFile.referencedDataFile!),
      offset: l.entry.dataFile.contentOffset,
      size: l.entry.dataFile.contentSizeInBytes,
    }));
    expect(got.sort((a, b) => Number(a.offset! - b.offset!))).toEqual(DV_FACTS);
    const puffinBuf = fs.readFileSync(path.join(f.tableDir, PUFFIN));
    const blobs = puffinFooter(puffinBuf);
    for (const l of dvs) {
      const df = l.entry.dataFile;
      expect(f.rel(df.filePath)).toBe(PUFFIN);
      expect(df.recordCount).toBe(1n);
      // README pitfall 5: each DV entry reports the whole Puffin file as its size
      expect(df.fileSizeInBytes).toBe(BigInt(puffinBuf.length));
      expect(df.fileSizeInBytes).toBe(824n);
      const blob = blobs.find((b) => BigInt(b.offset) === df.contentOffset)!;
      expect(blob.type).toBe('deletion-vector-v1');
      expect(BigInt(blob.length)).toBe(df.contentSizeInBytes);
      expect(blob.properties['referenced-data-file']).toBe(df.referencedDataFile);
      expect(blob.properties['cardinality']).toBe(df.recordCount.toString());
    }
  });

  it('the delete snapshot: summary added-dvs=2, added-files-size = 2 × 42, its entries are ADDED with inherited seq 2', async () => {
    const t = await f.load();
    const s = snapshotById(t.metadata, t.metadata.currentSnapshotId!)!;
    expect(s.operation).toBe('delete');
    expect(s.summary['added-dvs']).toBe('2');
    expect(s.summary['added-files-size']).toBe(String(2 * 42));
    const ins = await inspect(f);
    const del = ins.snapshots.find((x) => x.snapshot_id === s.snapshotId.toString())!;
    expect(del.added_files.map((a) => [a.content, a.file_format, a.sequence_number])).toEqual([
      ['position_deletes', 'puffin', '2'],
      ['position_deletes', 'puffin', '2'],
    ]);
    expect(del.added_files.map((a) => a.referenced_data_file).sort()).toEqual(DV_FACTS.map((d) => f.abs(d.referenced)).sort());
    expect(del.removed_files).toEqual([]);
  });

  for (const st of E.scan.states as Json[]) {
    it(`${st.metadata_file}: visible rows ${JSON.stringify(st.rows.map((r: Json) => r.i))}${st.deleted_rows ? `, deleted ${JSON.stringify(st.deleted_rows.map((r: Json) => r.i))}` : ''}`, async () => {
      const t = await f.load(versionOf(st.metadata_file));
      expect(t.metadata.currentSnapshotId?.toString()).toBe(st.snapshot_id);
      const live = await currentLiveFiles(f, t);
      const { visible, deleted } = rowsWithDeletes(live);
      expect(visible).toEqual(st.rows);
      expect(visible.length).toBe(st.visible_row_count);
      expect(deleted).toEqual(st.deleted_rows ?? []);
      if (st.physical_row_count !== undefined) expect(visible.length + deleted.length).toBe(st.physical_row_count);
    });
  }

  it('data files inherit first_row_id 0..4 from their manifest (first_row_id 0)', async () => {
    const live = await currentLiveFiles(f, await f.load());
    const data = live.filter((l) => l.entry.dataFile.content === 0);
    expect(data.map((l) => l.entry.dataFile.firstRowId)).toEqual([0n, 1n, 2n, 3n, 4n]);
    // delete files never get row ids
    expect(live.filter((l) => l.entry.dataFile.content === 1).every((l) => l.entry.dataFile.firstRowId === null)).toBe(true);
  });
});
