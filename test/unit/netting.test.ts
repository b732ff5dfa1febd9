// Netting of file events (src/capture/netting.ts) on hand-built histories: deletion vectors that
// share a Puffin file, and compactions inside a range. The engine-written versions of these
// histories are in test/interop/icdc/; here each rule is pinned on its own, with the expected
// files derived from the history by hand (which rows each file holds is stated per case).
import { describe, expect, it } from 'vitest';
import { compactionRecordCheck } from '../../src/capture/change-set.js';
import { fileKey } from '../../src/capture/file-key.js';
import { hasDuplicateKey, netEvents, netting, type FileEvent } from '../../src/capture/netting.js';
import type { FileChange } from '../../src/capture/snapshot-changes.js';
import { EntryStatus, type DataFile } from '../../src/iceberg/manifest.js';
import type { ManifestFile } from '../../src/iceberg/manifest-list.js';
import type { Snapshot } from '../../src/iceberg/metadata.js';
import { selectFiles } from '../../src/service/batch-plan.js';

const manifest = (specId = 0): ManifestFile => ({
  path: 'm.avro', length: 1n, partitionSpecId: specId, content: 0, sequenceNumber: 1n, minSequenceNumber: 1n,
  addedSnapshotId: null, addedFilesCount: null, existingFilesCount: null, deletedFilesCount: null,
  addedRowsCount: null, existingRowsCount: null, deletedRowsCount: null, partitions: null, keyMetadata: null, firstRowId: null,
});

function file(path: string, opts: Partial<DataFile> & { part?: number; spec?: number } = {}): FileChange {
  const { part = 1, spec = 0, ...df } = opts;
  const dataFile: DataFile = {
    content: 0, filePath: path, fileFormat: 'PARQUET', partition: new Map([[1000, part]]), recordCount: 10n, fileSizeInBytes: 100n,
    columnSizes: null, valueCounts: null, nullValueCounts: null, nanValueCounts: null, lowerBounds: null, upperBounds: null,
    keyMetadata: null, splitOffsets: null, equalityIds: null, sortOrderId: null, firstRowId: null,
    referencedDataFile: null, contentOffset: null, contentSizeInBytes: null, ...df,
  };
  return { entry: { status: EntryStatus.ADDED, snapshotId: 1n, sequenceNumber: 1n, fileSequenceNumber: 1n, dataFile }, manifest: manifest(spec) };
}

const dv = (puffin: string, offset: bigint, target: string, part = 1): FileChange =>
  file(puffin, { content: 1, fileFormat: 'PUFFIN', contentOffset: offset, contentSizeInBytes: 40n, referencedDataFile: target, part });

let nextId = 100n;
const snap = (operation: string): Snapshot => ({
  snapshotId: nextId++, parentSnapshotId: null, sequenceNumber: nextId, timestampMs: 0n, manifestList: null, v1Manifests: null,
  operation, summary: { operation }, schemaId: 0, firstRowId: null, addedRows: null,
});

/** Events of one snapshot: removals first, as the change set orders them. */
function at(operation: string, change: { added?: FileChange[]; removed?: FileChange[] }): FileEvent[] {
  const s = snap(operation);
  const rewrite = operation === 'replace';
  return [
    ...(change.removed ?? []).map((c): FileEvent => ({ snapshot: s, kind: 'removed', change: c, ...(rewrite ? { rewrite } : {}) })),
    ...(change.added ?? []).map((c): FileEvent => ({ snapshot: s, kind: 'added', change: c, ...(rewrite ? { rewrite } : {}) })),
  ];
}

const keys = (fs: FileChange[]): string[] => fs.map((f) => fileKey(f.entry.dataFile)).sort();

describe('netting: deletion vectors that share a Puffin file', () => {
  it('replacing one DV of a Puffin file keeps the others', () => {
    // One DELETE writes DVs for data files a and b into p1; a later one replaces a's DV (p2).
    const a = dv('p1.puffin', 4n, 'a.parquet');
    const b = dv('p1.puffin', 60n, 'b.parquet');
    const a2 = dv('p2.puffin', 4n, 'a.parquet');
    const net = netEvents([...at('delete', { added: [a, b] }), ...at('delete', { removed: [a], added: [a2] })]);
    expect(keys(net.added)).toEqual(['p1.puffin#content_offset=60', 'p2.puffin#content_offset=4']);
    expect(net.removed).toEqual([]);
  });

  it('a DV from before the range that is replaced is a removal of that DV only', () => {
    const old = dv('p0.puffin', 4n, 'a.parquet');
    const other = dv('p0.puffin', 60n, 'b.parquet');
    const net = netEvents(at('delete', { removed: [old], added: [dv('p1.puffin', 4n, 'a.parquet')] }));
    expect(keys(net.removed)).toEqual(['p0.puffin#content_offset=4']);
    expect(keys(net.removed)).not.toContain(fileKey(other.entry.dataFile));
  });
});

describe('netting: a range of appends only (kept as a list, no index)', () => {
  // Two different paths whose FNV-1a hashes are equal (found by search): the duplicate check must
  // compare the keys themselves.
  const [c1, c2] = ['data/f-22598.parquet', 'data/f-991162.parquet'];

  it('hands the files over in the order they were added', () => {
    const files = ['a', 'b', 'c', 'd'].map((p) => file(`${p}.parquet`));
    const net = netEvents([...at('append', { added: files.slice(0, 2) }), ...at('append', { added: files.slice(2) })]);
    expect(net.added).toEqual(files);
    expect(net.removed).toEqual([]);
  });

  it('a file added twice is handed over once, at its first place, as the later entry (as a map keeps it)', () => {
    const a = file('a.parquet');
    const b = file('b.parquet');
    const a2 = file('a.parquet', { recordCount: 20n });
    const net = netEvents([...at('append', { added: [a, b] }), ...at('append', { added: [a2] })]);
    expect(net.added).toEqual([a2, b]);
  });

  it('tells equal keys from different keys with equal hashes', () => {
    expect(hasDuplicateKey([file(c1), file(c2)])).toBe(false);
    expect(hasDuplicateKey([file(c1), file('x.parquet'), file(c2), file(c1)])).toBe(true);
    expect(hasDuplicateKey([dv('p.puffin', 4n, c1), dv('p.puffin', 60n, c2)])).toBe(false);
    const net = netEvents(at('append', { added: [file(c1), file(c2)] }));
    expect(keys(net.added)).toEqual([c1, c2]);
  });

  it('a removal after appends nets against them as before (the list becomes the index)', () => {
    const a = file('a.parquet');
    const b = file('b.parquet');
    const c = file('c.parquet');
    const old = file('old.parquet');
    const n = netting();
    n.push(at('append', { added: [a, b] }));
    n.push(at('overwrite', { removed: [a, old], added: [c] }));
    const net = n.finish();
    expect(net.added).toEqual([b, c]);
    expect(net.removed).toEqual([old]);
  });
});

describe('netting: pushAdded', () => {
  it('gives what pushing the same files as added events gives, before and after the index exists', () => {
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((p) => file(`${p}.parquet`)) as [FileChange, FileChange, FileChange, FileChange];
    const old = file('old.parquet');
    const s1 = at('append', { added: [a, b] });
    const s2 = at('overwrite', { removed: [a, old], added: [c] });
    const s3 = at('append', { added: [d, b] });
    const viaEvents = netEvents([...s1, ...s2, ...s3]);
    const n = netting();
    n.pushAdded(s1[0]!.snapshot, [a, b]);
    n.push(s2);
    n.pushAdded(s3[0]!.snapshot, [d, b]);
    const viaAdded = n.finish();
    expect(viaAdded.added).toEqual(viaEvents.added);
    expect(viaAdded.added).toEqual([b, c, d]);
    expect(viaAdded.removed).toEqual(viaEvents.removed);
  });
});

describe('netting: compaction inside the range', () => {
  it('a compaction nothing builds on changes nothing: the original files are handed over', () => {
    const f1 = file('f1');
    const f2 = file('f2');
    const c = file('c');
    const net = netEvents([...at('append', { added: [f1] }), ...at('append', { added: [f2] }), ...at('replace', { removed: [f1, f2], added: [c] })]);
    expect(keys(net.added)).toEqual(['f1', 'f2']);
    expect(net.notes).toEqual([]);
    expect(net.rewritesHandedOver.size).toBe(0);
  });

  it('a DV on the compaction output hands over the output with the DV, never the rewritten files', () => {
    const f1 = file('f1');
    const f2 = file('f2');
    const c = file('c');
    const d = dv('d.puffin', 4n, 'c');
    const net = netEvents([...at('append', { added: [f1] }), ...at('append', { added: [f2] }), ...at('replace', { removed: [f1, f2], added: [c] }), ...at('delete', { added: [d] })]);
    expect(keys(net.added)).toEqual(['c', 'd.puffin#content_offset=4']);
    expect(net.notes.join()).toMatch(/handed over/);
  });

  it('a position delete file without a referenced file forces the outputs of its partition only', () => {
    const f1 = file('f1', { part: 1 });
    const g1 = file('g1', { part: 2 });
    const c = file('c', { part: 1 });
    const k = file('k', { part: 2 });
    const pos = file('pos', { content: 1, part: 1 });
    const net = netEvents([...at('append', { added: [f1, g1] }), ...at('replace', { removed: [f1, g1], added: [c, k] }), ...at('overwrite', { added: [pos] })]);
    // Partition 1: the output stands in (the deletes may name it); partition 2 goes back to g1.
    // Both partitions were one compaction: the group is forced as a whole.
    expect(keys(net.added)).toEqual(['c', 'k', 'pos']);
  });

  it('an equality delete applies by sequence number to the inputs too: no swap', () => {
    const f1 = file('f1');
    const c = file('c');
    const eq = file('eq', { content: 2, equalityIds: [1] });
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f1], added: [c] }), ...at('overwrite', { added: [eq] })]);
    expect(keys(net.added)).toEqual(['eq', 'f1']);
  });

  it('copy-on-write after a compaction: the rewritten output nets out, the new file stays, nothing counts as removed', () => {
    const f0 = file('f0'); // before the range
    const f1 = file('f1');
    const c = file('c'); // rows of f0 and f1
    const c2 = file('c2'); // c minus the deleted rows
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f0, f1], added: [c] }), ...at('overwrite', { removed: [c], added: [c2] })]);
    expect(keys(net.added)).toEqual(['c2']);
    // f0's rows come again in c2 (and some were deleted): f0 counts as removed, as with copy-on-write.
    expect(keys(net.removed)).toEqual(['f0']);
    expect(net.notes.join()).toMatch(/1 file\(s\) written before the range, which are listed as removed/);
  });

  it('a compaction of a compaction unwinds to the original files when nothing builds on it', () => {
    const f1 = file('f1');
    const c1 = file('c1');
    const c2 = file('c2');
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f1], added: [c1] }), ...at('replace', { removed: [c1], added: [c2] })]);
    expect(keys(net.added)).toEqual(['f1']);
  });

  it('a DV on the output of a second compaction hands that output over and keeps the first compaction from unwinding', () => {
    const f1 = file('f1');
    const c1 = file('c1');
    const c2 = file('c2');
    const d = dv('d.puffin', 4n, 'c2');
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f1], added: [c1] }), ...at('replace', { removed: [c1], added: [c2] }), ...at('delete', { added: [d] })]);
    expect(keys(net.added)).toEqual(['c2', 'd.puffin#content_offset=4']);
    expect(net.rewritesHandedOver.size).toBe(2);
  });

  it('a compaction of files from before the range only is ignored', () => {
    const f0 = file('f0');
    const f1 = file('f1', { part: 2 });
    const c = file('c');
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f0], added: [c] }), ...at('delete', { added: [dv('d.puffin', 4n, 'c')] })]);
    expect(keys(net.added)).toEqual(['d.puffin#content_offset=4', 'f1']);
  });

  it('a compaction into a new partition spec takes the outputs of the new spec', () => {
    const f1 = file('f1', { spec: 0 });
    const c = file('c', { spec: 1, part: 7 });
    const d = dv('d.puffin', 4n, 'c', 7);
    d.manifest = manifest(1);
    const net = netEvents([...at('append', { added: [f1] }), ...at('replace', { removed: [f1], added: [c] }), ...at('delete', { added: [d] })]);
    expect(keys(net.added)).toEqual(['c', 'd.puffin#content_offset=4']);
    expect(net.notes.join()).toMatch(/changed the partition spec/);
  });
});

describe('batch limits and compactions', () => {
  it('a compaction costs nothing against maxFiles and is never split', () => {
    const f1 = file('f1');
    const f2 = file('f2');
    const c = file('c');
    const s = [at('append', { added: [f1] }), at('append', { added: [f2] }), at('replace', { removed: [f1, f2], added: [c] }), at('append', { added: [file('f3')] })];
    const sel = selectFiles(s.map((events) => ({ snapshot: events[0]!.snapshot, events })), { maxFiles: 2 });
    expect(sel.completed.length).toBe(3);
    expect(keys(netEvents(sel.taken).added)).toEqual(['f1', 'f2']);
  });
});

describe('compaction record check', () => {
  const replace = (summary: Record<string, string>): Snapshot => ({ ...snap('replace'), summary: { operation: 'replace', ...summary } });
  it('accepts equal counts, and fewer rows out when the compaction applied deletes', () => {
    expect(compactionRecordCheck(replace({ 'added-records': '300', 'deleted-records': '300' }), undefined)).toBeNull();
    expect(compactionRecordCheck(replace({ 'added-records': '270', 'deleted-records': '300', 'removed-position-deletes': '30' }), undefined)).toBeNull();
    const parent = { ...snap('delete'), summary: { operation: 'delete', 'total-position-deletes': '30' } };
    expect(compactionRecordCheck(replace({ 'added-records': '270', 'deleted-records': '300' }), parent)).toBeNull();
  });
  it('flags rows that no delete explains, and any rows added', () => {
    expect(compactionRecordCheck(replace({ 'added-records': '250', 'deleted-records': '300', 'removed-position-deletes': '30' }), undefined)).toMatch(/more than the 30 deleted rows/);
    expect(compactionRecordCheck(replace({ 'added-records': '310', 'deleted-records': '300' }), undefined)).toMatch(/added rows/);
    expect(compactionRecordCheck(replace({ 'added-records': '270', 'deleted-records': '300' }), undefined)).toMatch(/counts no deletes/);
  });
});
