// Manifest lists and manifests decoded from hand-encoded Avro files: fields resolved by field
// id whatever their names, and the spec's inheritance rules (snapshot id, data and file
// sequence numbers, v3 first_row_id). Expected values are set by hand from the spec rules.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { decodeManifestList, type ManifestFile } from '../../src/iceberg/manifest-list.js';
import { decodeManifest } from '../../src/iceberg/manifest.js';
import { array, avroString, container, opt, zz } from './avro-builder.js';

const optLong = (v: bigint | number | null): Buffer => opt(v === null ? null : zz(v));

describe('decodeManifestList', () => {
  // Names differ from the spec on purpose (and use Java's pre-2023 names for 504-506): only
  // the field ids say what a field is.
  const schema = {
    type: 'record',
    name: 'manifest_file',
    fields: [
      { name: 'path_of_manifest', type: 'string', 'field-id': 500 },
      { name: 'len', type: 'long', 'field-id': 501 },
      { name: 'spec', type: 'int', 'field-id': 502 },
      { name: 'kind', type: 'int', 'field-id': 517 },
      { name: 'seq', type: 'long', 'field-id': 515 },
      { name: 'min_seq', type: 'long', 'field-id': 516 },
      { name: 'added_snapshot', type: 'long', 'field-id': 503 },
      { name: 'added_data_files_count', type: ['null', 'int'], 'field-id': 504, default: null },
      { name: 'existing_data_files_count', type: ['null', 'int'], 'field-id': 505, default: null },
      { name: 'deleted_data_files_count', type: ['null', 'int'], 'field-id': 506, default: null },
      { name: 'added_rows', type: ['null', 'long'], 'field-id': 512, default: null },
      {
        name: 'parts',
        type: ['null', { type: 'array', 'element-id': 508, items: {
          type: 'record', name: 'r508', fields: [
            { name: 'has_null', type: 'boolean', 'field-id': 509 },
            { name: 'has_nan', type: ['null', 'boolean'], 'field-id': 518, default: null },
            { name: 'lo', type: ['null', 'bytes'], 'field-id': 510, default: null },
            { name: 'hi', type: ['null', 'bytes'], 'field-id': 511, default: null },
          ] } }],
        'field-id': 507,
        default: null,
      },
      { name: 'frid', type: ['null', 'long'], 'field-id': 520, default: null },
    ],
  };
  const summary = (hasNull: boolean, lo: Buffer | null, hi: Buffer | null): Buffer =>
    Buffer.concat([Buffer.from([hasNull ? 1 : 0]), opt(Buffer.from([0])), opt(lo && avroString(lo)), opt(hi && avroString(hi))]);
  const rec = Buffer.concat([
    avroString('s3://b/t/metadata/m0.avro'), zz(7001), zz(3), zz(1), zz(12), zz(9),
    zz(9223372036854775807n), opt(zz(2)), opt(zz(0)), opt(null), optLong(9007199254740993n),
    opt(array([summary(true, Buffer.from('0b4d0000', 'hex'), Buffer.from('0c4d0000', 'hex'))])),
    optLong(null),
  ]);

  it('resolves every field by id and keeps longs exact', () => {
    const list = decodeManifestList(container(schema, [rec], 'deflate', { 'format-version': '2' }), 'snap.avro');
    expect(list.meta.get('format-version')).toBe('2');
    expect(list.manifests).toHaveLength(1);
    const m = list.manifests[0]!;
    expect(m.path).toBe('s3://b/t/metadata/m0.avro');
    expect(m.length).toBe(7001n);
    expect(m.partitionSpecId).toBe(3);
    expect(m.content).toBe(1);
    expect(m.sequenceNumber).toBe(12n);
    expect(m.minSequenceNumber).toBe(9n);
    expect(m.addedSnapshotId).toBe(9223372036854775807n);
    expect(m.addedFilesCount).toBe(2);
    expect(m.existingFilesCount).toBe(0);
    // null count = unknown (the spec: assume non-zero), not 0
    expect(m.deletedFilesCount).toBe(null);
    expect(m.addedRowsCount).toBe(9007199254740993n);
    expect(m.firstRowId).toBe(null);
    expect(m.partitions).toHaveLength(1);
    const p = m.partitions![0]!;
    expect(p.containsNull).toBe(true);
    expect(p.containsNan).toBe(false);
    expect(p.lowerBound!.toString('hex')).toBe('0b4d0000');
    expect(p.upperBound!.toString('hex')).toBe('0c4d0000');
  });

  it('a list without sequence numbers (v1) reads them as 0 and content as data', () => {
    const v1 = {
      type: 'record',
      name: 'manifest_file',
      fields: [
        { name: 'manifest_path', type: 'string', 'field-id': 500 },
        { name: 'manifest_length', type: 'long', 'field-id': 501 },
        { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
        { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
      ],
    };
    const r = Buffer.concat([avroString('m.avro'), zz(10), zz(0), zz(5173553188971266738n)]);
    const m = decodeManifestList(container(v1, [r], 'null'), 'snap.avro').manifests[0]!;
    expect(m.sequenceNumber).toBe(0n);
    expect(m.minSequenceNumber).toBe(0n);
    expect(m.content).toBe(0);
    expect(m.addedSnapshotId).toBe(5173553188971266738n);
    expect(m.addedFilesCount).toBe(null);
    expect(m.partitions).toBe(null);
  });

  it('a list missing a required field id fails with the id in the message', () => {
    const bad = { type: 'record', name: 'manifest_file', fields: [{ name: 'manifest_path', type: 'string', 'field-id': 500 }] };
    let err: unknown;
    try {
      decodeManifestList(container(bad, [avroString('m.avro')], 'null'), 'snap.avro');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpsError);
    expect((err as IpsError).message).toContain('501');
    expect((err as IpsError).message).toContain('snap.avro');
  });
});

describe('decodeManifest: inheritance', () => {
  const schema = {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      { name: 'status', type: 'int', 'field-id': 0 },
      { name: 'snapshot_id', type: ['null', 'long'], 'field-id': 1, default: null },
      { name: 'sequence_number', type: ['null', 'long'], 'field-id': 3, default: null },
      { name: 'file_sequence_number', type: ['null', 'long'], 'field-id': 4, default: null },
      {
        name: 'data_file',
        'field-id': 2,
        type: {
          type: 'record',
          name: 'r2',
          fields: [
            { name: 'content', type: 'int', 'field-id': 134 },
            { name: 'file_path', type: 'string', 'field-id': 100 },
            { name: 'file_format', type: 'string', 'field-id': 101 },
            { name: 'partition', 'field-id': 102, type: { type: 'record', name: 'r102', fields: [
              { name: 'day', type: ['null', 'int'], 'field-id': 1000, default: null },
            ] } },
            { name: 'record_count', type: 'long', 'field-id': 103 },
            { name: 'file_size_in_bytes', type: 'long', 'field-id': 104 },
            { name: 'first_row_id', type: ['null', 'long'], 'field-id': 142, default: null },
          ],
        },
      },
    ],
  };
  interface E { status: number; snap: bigint | null; seq: bigint | null; fseq: bigint | null; path: string; rows: number; frid: bigint | null }
  const entry = (e: E): Buffer => Buffer.concat([
    zz(e.status), optLong(e.snap), optLong(e.seq), optLong(e.fseq),
    zz(0), avroString(e.path), avroString('PARQUET'), opt(zz(19723)), zz(e.rows), zz(100), optLong(e.frid),
  ]);
  const manifest = (over: Partial<ManifestFile>): ManifestFile => ({
    path: 'm.avro', length: 0n, partitionSpecId: 0, content: 0, sequenceNumber: 7n, minSequenceNumber: 3n,
    addedSnapshotId: 5173553188971266738n, addedFilesCount: null, existingFilesCount: null, deletedFilesCount: null,
    addedRowsCount: null, existingRowsCount: null, deletedRowsCount: null, partitions: null, keyMetadata: null,
    firstRowId: null, ...over,
  });
  const header = { 'partition-spec-id': '0', 'partition-spec': '[{"name":"day","transform":"day","source-id":1,"field-id":1000}]', 'format-version': '3', content: 'data' };

  const entries: E[] = [
    // ADDED, everything null: inherits snapshot id and both sequence numbers from the list
    { status: 1, snap: null, seq: null, fseq: null, path: 'a', rows: 5, frid: null },
    // EXISTING with explicit values: kept
    { status: 0, snap: 11n, seq: 3n, fseq: 4n, path: 'b', rows: 3, frid: 100n },
    // ADDED with an explicit (older) data sequence number: kept; file seq inherited
    { status: 1, snap: null, seq: 2n, fseq: null, path: 'c', rows: 2, frid: null },
    // DELETED with explicit values
    { status: 2, snap: 5173553188971266738n, seq: 1n, fseq: 1n, path: 'd', rows: 7, frid: 50n },
    // EXISTING with null sequence numbers in a v2+ manifest: not inherited (invalid, left null)
    { status: 0, snap: 12n, seq: null, fseq: null, path: 'e', rows: 4, frid: null },
  ];
  const buf = container(schema, entries.map(entry), 'deflate', header);

  it('snapshot id: inherited from added_snapshot_id when null, for any status', () => {
    const m = decodeManifest(buf, manifest({}), 'm.avro');
    expect(m.entries.map((e) => e.snapshotId)).toEqual([5173553188971266738n, 11n, 5173553188971266738n, 5173553188971266738n, 12n]);
  });

  it('sequence numbers: inherited from the manifest list only for ADDED entries; explicit values win', () => {
    const m = decodeManifest(buf, manifest({}), 'm.avro');
    expect(m.entries.map((e) => [e.dataFile.filePath, e.sequenceNumber, e.fileSequenceNumber])).toEqual([
      ['a', 7n, 7n],
      ['b', 3n, 4n],
      ['c', 2n, 7n],
      ['d', 1n, 1n],
      ['e', null, null],
    ]);
  });

  it('v3 first_row_id: live files without one get manifest first_row_id + rows of earlier such files', () => {
    const m = decodeManifest(buf, manifest({ firstRowId: 1000n }), 'm.avro');
    // a: 1000; b keeps 100; c: 1000 + 5; d (DELETED) keeps 50; e: 1000 + 5 + 2
    expect(m.entries.map((e) => [e.dataFile.filePath, e.dataFile.firstRowId])).toEqual([
      ['a', 1000n], ['b', 100n], ['c', 1005n], ['d', 50n], ['e', 1007n],
    ]);
  });

  it('no first_row_id on the manifest (v2, or before an upgrade) assigns none', () => {
    const m = decodeManifest(buf, manifest({ firstRowId: null }), 'm.avro');
    expect(m.entries.map((e) => e.dataFile.firstRowId)).toEqual([null, 100n, null, 50n, null]);
  });

  it('a manifest whose list entry has sequence number 0 (v1) gives every entry sequence number 0', () => {
    const m = decodeManifest(buf, manifest({ sequenceNumber: 0n, minSequenceNumber: 0n }), 'm.avro');
    expect(m.entries[0]!.sequenceNumber).toBe(0n);
    expect(m.entries[4]!.sequenceNumber).toBe(0n);
    expect(m.entries[4]!.fileSequenceNumber).toBe(0n);
  });

  it('data_file fields and the partition tuple by partition field id', () => {
    const m = decodeManifest(buf, manifest({}), 'm.avro');
    const df = m.entries[0]!.dataFile;
    expect(df.content).toBe(0);
    expect(df.recordCount).toBe(5n);
    expect(df.fileSizeInBytes).toBe(100n);
    expect([...df.partition.entries()]).toEqual([[1000, 19723]]);
    expect(m.meta.get('content')).toBe('data');
  });

  it('a header partition-spec-id that contradicts the manifest list is rejected', () => {
    let err: unknown;
    try {
      decodeManifest(buf, manifest({ partitionSpecId: 4 }), 'm.avro');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpsError);
    expect((err as IpsError).code).toBe('INVALID_MANIFEST');
  });
});

// Entries of one manifest share a partition Map per distinct tuple and a split-offsets array equal
// to the previous entry's (src/iceberg/manifest.ts, PartitionInterner / OffsetsInterner): each
// entry must still read exactly the tuple and offsets written for it. Expected values: the inputs.
describe('decodeManifest: shared partition tuples and split offsets', () => {
  const schema = {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      { name: 'status', type: 'int', 'field-id': 0 },
      { name: 'snapshot_id', type: ['null', 'long'], 'field-id': 1, default: null },
      {
        name: 'data_file',
        'field-id': 2,
        type: {
          type: 'record',
          name: 'r2',
          fields: [
            { name: 'file_path', type: 'string', 'field-id': 100 },
            { name: 'file_format', type: 'string', 'field-id': 101 },
            { name: 'partition', 'field-id': 102, type: { type: 'record', name: 'r102', fields: [
              { name: 'day', type: ['null', 'int'], 'field-id': 1000, default: null },
              { name: 'cat', type: ['null', 'string'], 'field-id': 1001, default: null },
              { name: 'key', type: ['null', 'bytes'], 'field-id': 1002, default: null },
            ] } },
            { name: 'record_count', type: 'long', 'field-id': 103 },
            { name: 'file_size_in_bytes', type: 'long', 'field-id': 104 },
            { name: 'split_offsets', type: ['null', { type: 'array', items: 'long', 'element-id': 133 }], 'field-id': 132, default: null },
          ],
        },
      },
    ],
  };
  interface T { day: number | null; cat: string | null; key: Buffer | null; offsets: bigint[] | null }
  // Runs of one day with alternating categories, 60 distinct (day, cat) tuples cycled back (more
  // than the 16 kept), nulls, bytes values, and offsets that repeat or change.
  const tuples: T[] = [];
  for (let i = 0; i < 160; i++) {
    const d = Math.floor(i / 4) % 20;
    tuples.push({
      day: d === 3 ? null : 19000 + d,
      cat: i % 5 === 0 ? null : `c${i % 2}`,
      key: i % 11 === 0 ? Buffer.from([i, 255 - i]) : null,
      offsets: i % 9 === 0 ? null : i % 4 <= 1 ? [4n, BigInt(i) * 1000n] : [4n],
    });
    if (i % 3 === 0) tuples.push({ ...tuples[tuples.length - 1]!, offsets: [4n] });
  }
  const entry = (t: T, i: number): Buffer => Buffer.concat([
    zz(1), opt(null),
    avroString(`f${i}.parquet`), avroString('PARQUET'),
    opt(t.day === null ? null : zz(t.day)), opt(t.cat === null ? null : avroString(t.cat)), opt(t.key === null ? null : avroString(t.key)),
    zz(10), zz(100), opt(t.offsets === null ? null : array(t.offsets.map((o) => zz(o)))),
  ]);
  const mf: ManifestFile = {
    path: 'm.avro', length: 0n, partitionSpecId: 0, content: 0, sequenceNumber: 1n, minSequenceNumber: 1n,
    addedSnapshotId: 1n, addedFilesCount: null, existingFilesCount: null, deletedFilesCount: null,
    addedRowsCount: null, existingRowsCount: null, deletedRowsCount: null, partitions: null, keyMetadata: null, firstRowId: null,
  };

  it('every entry reads its own tuple and offsets, whatever the others', () => {
    for (const codec of ['deflate', 'null'] as const) {
      const m = decodeManifest(container(schema, tuples.map(entry), codec, { 'format-version': '2' }), mf, 'm.avro');
      expect(m.entries).toHaveLength(tuples.length);
      m.entries.forEach((e, i) => {
        const t = tuples[i]!;
        expect(e.dataFile.filePath).toBe(`f${i}.parquet`);
        expect([...e.dataFile.partition.entries()]).toEqual([[1000, t.day], [1001, t.cat], [1002, t.key]]);
        expect(e.dataFile.splitOffsets).toEqual(t.offsets);
      });
      // Equal tuples without bytes values are one Map; a bytes value always gets a Map of its own.
      const d = m.entries.map((e) => e.dataFile);
      const same = tuples.findIndex((t, i) => i > 0 && t.key === null && tuples[i - 1]!.key === null && t.day === tuples[i - 1]!.day && t.cat === tuples[i - 1]!.cat);
      expect(same).toBeGreaterThan(0);
      expect(d[same]!.partition).toBe(d[same - 1]!.partition);
    }
  });
});
