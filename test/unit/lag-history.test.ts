// Lag over time rebuilt from snapshot commit times and watermark moves, on a hand-made history
// whose lag at each instant is worked out by hand below.
import { describe, expect, it } from 'vitest';
import type { Snapshot, TableMetadata } from '../../src/iceberg/metadata.js';
import type { WatermarkMove, WatermarkPosition } from '../../src/state/index.js';
import { lagHistory } from '../../src/service/lag-history.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 1);

function snap(id: number, parent: number | null, minute: number, op: string, files: number, records: number): Snapshot {
  return {
    snapshotId: BigInt(id), parentSnapshotId: parent === null ? null : BigInt(parent), sequenceNumber: BigInt(id), timestampMs: BigInt(T0 + minute * MIN),
    manifestList: null, v1Manifests: null, operation: op, schemaId: 0, firstRowId: null, addedRows: null,
    summary: { operation: op, 'added-data-files': String(files), 'added-records': String(records), 'added-files-size': String(files * 1000) },
  } as Snapshot;
}

// Snapshots 1..5 at minutes 0, 10, 20, 30, 40; 4 is a compaction (counts as a snapshot, no files).
const snapshots = [snap(1, null, 0, 'append', 1, 100), snap(2, 1, 10, 'append', 2, 200), snap(3, 2, 20, 'append', 3, 300), snap(4, 3, 30, 'replace', 5, 600), snap(5, 4, 40, 'append', 4, 400)];
const md = { snapshots, refs: { main: { snapshotId: 5n, type: 'branch' } }, currentSnapshotId: 5n } as unknown as TableMetadata;

const pos = (id: number | null): WatermarkPosition => ({ snapshotId: id === null ? null : BigInt(id), sequenceNumber: null, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] });
function move(minute: number, from: number | null, to: number | null): WatermarkMove {
  return { id: 1n, consumer: 'c', sourceTable: 't', batchId: null, actor: 'test', reason: 'commit', fromVersion: null, toVersion: 1n, from: pos(from), to: pos(to), movedAt: new Date(T0 + minute * MIN) };
}

describe('lagHistory', () => {
  // Subscribed before the table existed; committed up to 2 at minute 15 and up to 5 at minute 45.
  const moves = [move(-5, null, null), move(15, null, 2), move(45, 2, 5)];

  it('steps up at each commit of the table and down at each watermark move', () => {
    const series = lagHistory(md, 'main', moves, { since: T0 - MIN, until: T0 + 50 * MIN });
    const at = (minute: number) => series.filter((p) => p.at === T0 + minute * MIN).at(-1);
    expect(at(-1)).toMatchObject({ snapshots: 0, records: 0n, seconds: 0 });
    expect(at(0)).toMatchObject({ snapshots: 1, records: 100n, files: 1n, seconds: 0 });
    expect(at(10)).toMatchObject({ snapshots: 2, records: 300n, files: 3n, seconds: 600 });
    // Just before the move at 15: 1 and 2 pending for 15 minutes; after it, nothing.
    expect(series.find((p) => p.at === T0 + 15 * MIN - 1)).toMatchObject({ snapshots: 2, records: 300n });
    expect(at(15)).toMatchObject({ snapshots: 0, records: 0n, seconds: 0 });
    expect(at(20)).toMatchObject({ snapshots: 1, records: 300n, bytes: 3000n });
    // The compaction adds a snapshot but no files, bytes or records.
    expect(at(30)).toMatchObject({ snapshots: 2, records: 300n, files: 3n, seconds: 600 });
    expect(at(40)).toMatchObject({ snapshots: 3, records: 700n, files: 7n, seconds: 1200 });
    expect(at(45)).toMatchObject({ snapshots: 0 });
    expect(series.at(-1)).toMatchObject({ at: T0 + 50 * MIN, snapshots: 0 });
  });

  it('starts the window from the position of the last move before it', () => {
    const series = lagHistory(md, 'main', moves, { since: T0 + 25 * MIN, until: T0 + 42 * MIN });
    // At 25 the watermark is 2 (moved at 15) and 3 is pending since 20.
    expect(series[0]).toMatchObject({ at: T0 + 25 * MIN, snapshots: 1, records: 300n, seconds: 300 });
    expect(series.map((p) => p.snapshots)).toEqual([1, 2, 3, 3]);
  });

  it('a watermark on a snapshot expired from the metadata counts every recorded snapshot as pending', () => {
    const series = lagHistory(md, 'main', [move(-5, null, 99)], { since: T0 + 41 * MIN, until: T0 + 42 * MIN });
    expect(series[0]).toMatchObject({ snapshots: 5, records: 1000n });
  });
});
