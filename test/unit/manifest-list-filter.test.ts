// decodeManifestList's `addedBy` filter (change planning keeps only a snapshot's own manifests):
// it compares added_snapshot_id on its Avro encoding, split in two 32-bit halves. Checked against
// the unfiltered decode of the same bytes (every manifest, then filtered by the decoded bigint),
// on hand-encoded lists with ids at the edges of the 64-bit range and on PyIceberg-written lists.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeManifestList, longMatches, zigzagHalves } from '../../src/iceberg/manifest-list.js';
import { REPO_ROOT } from '../setup/env.js';
import { avroString, container, opt, zz } from './avro-builder.js';

const schema = (idType: unknown) => ({
  type: 'record',
  name: 'manifest_file',
  fields: [
    { name: 'manifest_path', type: 'string', 'field-id': 500 },
    { name: 'manifest_length', type: 'long', 'field-id': 501 },
    { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
    { name: 'added_snapshot_id', type: idType, 'field-id': 503 },
    { name: 'added_files_count', type: ['null', 'int'], 'field-id': 504, default: null },
    { name: 'deleted_files_count', type: ['null', 'int'], 'field-id': 506, default: null },
  ],
});

// Ids that differ from each other only in the low half, only in the high half, in the sign, and
// values whose varints are 1 to 10 bytes long.
const IDS = [
  0n, 1n, -1n, 63n, -64n, 64n, 2n ** 31n, 2n ** 32n, 2n ** 32n + 1n, 2n ** 53n + 1n, -(2n ** 53n) - 1n,
  9223372036854775807n, -9223372036854775808n, 8265086861879663703n, 8265086861879663703n ^ (1n << 40n),
  -1537718237456742016n, 1537718237456742016n, 0x7fffffff00000000n, 0x00000000ffffffffn,
];

function record(i: number, id: Buffer): Buffer {
  return Buffer.concat([avroString(`s3://b/t/metadata/m${i}.avro`), zz(1000 + i), zz(0), id, opt(zz(i)), opt(zz(0))]);
}

function expectSameAsUnfiltered(buf: Buffer, ids: bigint[]): void {
  const all = decodeManifestList(buf, 'snap.avro').manifests;
  for (const id of ids) {
    const filtered = decodeManifestList(buf, 'snap.avro', { addedBy: id });
    const expected = all.filter((m) => m.addedSnapshotId === id);
    expect(filtered.manifests, `added_snapshot_id ${id}`).toEqual(expected);
    expect(filtered.filtered).toBe(all.length - expected.length);
  }
}

describe('decodeManifestList with addedBy', () => {
  it('keeps exactly the records whose long added_snapshot_id equals it, across the 64-bit range', () => {
    const buf = container(schema('long'), IDS.map((id, i) => record(i, zz(id))), 'deflate');
    expectSameAsUnfiltered(buf, [...IDS, 2n, -2n, 123456789012345678n]);
  });

  it('reads the optional (union) added_snapshot_id of older writers the same way', () => {
    const buf = container(schema(['null', 'long']), IDS.map((id, i) => record(i, opt(zz(id)))), 'null');
    expectSameAsUnfiltered(buf, IDS);
  });

  it('compares a padded (non-minimal) varint by value, and refuses one past 10 bytes', () => {
    const padded = Buffer.from([0x82, 0x80, 0x00]); // zigzag 2 = 1, in 3 bytes
    const { lo, hi } = zigzagHalves(1n);
    expect(longMatches({ buf: padded, pos: 0, end: padded.length }, lo, hi)).toBe(true);
    const eleven = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    expect(() => longMatches({ buf: eleven, pos: 0, end: eleven.length }, lo, hi)).toThrow(/10 bytes/);
    const cut = Buffer.from([0x80, 0x80]);
    expect(() => longMatches({ buf: cut, pos: 0, end: cut.length }, lo, hi)).toThrow(/truncated/);
  });

  it('gives the unfiltered answer on the manifest lists PyIceberg wrote for the playback fixture', () => {
    const dir = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback', 'metadata');
    const lists = fs.readdirSync(dir).filter((f) => f.startsWith('snap-') && f.endsWith('.avro'));
    expect(lists.length).toBeGreaterThan(1);
    const snapshotIds = lists.map((f) => BigInt(/^snap-(\d+)-/.exec(f)![1]!));
    for (const f of lists) {
      const buf = fs.readFileSync(path.join(dir, f));
      expectSameAsUnfiltered(buf, snapshotIds);
      // Each list holds its own snapshot's manifest(s).
      const own = BigInt(/^snap-(\d+)-/.exec(f)![1]!);
      expect(decodeManifestList(buf, f, { addedBy: own }).manifests.length).toBeGreaterThan(0);
    }
  });
});
