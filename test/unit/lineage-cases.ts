// Corrupt lineages for test/unit/lineage.test.ts, run in a bounded worker (test/setup/bounded.ts):
// without a cycle guard these loop for ever, which must fail the test, not hang the run.
import { isAncestorOrSelf, snapshotIndex } from '../../src/iceberg/lineage.js';
import { lineage, type Snapshot, type TableMetadata } from '../../src/iceberg/metadata.js';
import { recordedRootParents, resolveRange } from '../../src/capture/range.js';
import { orderedSnapshots } from '../../src/capture/inspect.js';

function snap(id: bigint, parent: bigint | null, seq: bigint): Snapshot {
  return {
    snapshotId: id, parentSnapshotId: parent, sequenceNumber: seq, timestampMs: 1_700_000_000_000n + seq,
    manifestList: `file:///t/metadata/snap-${id}.avro`, v1Manifests: null, operation: 'append', summary: { operation: 'append' },
    schemaId: 0, firstRowId: null, addedRows: null,
  };
}

function table(snapshots: Snapshot[], current: bigint): TableMetadata {
  return {
    formatVersion: 2, tableUuid: null, location: 'file:///t', lastSequenceNumber: 10n, lastUpdatedMs: 0n, lastColumnId: 1,
    schemas: [{ schemaId: 0, struct: { kind: 'struct', fields: [] } } as never], currentSchemaId: 0, specs: [{ specId: 0, fields: [] }], defaultSpecId: 0,
    lastPartitionId: null, properties: {}, currentSnapshotId: current, snapshots, refs: { main: { snapshotId: current, type: 'branch' } },
    sortOrders: [], defaultSortOrderId: null, nextRowId: null, raw: {},
  };
}

/** 1 ← 2 ← 3 (head), where 1's parent is set per case. */
function chain(rootParent: bigint | null): TableMetadata {
  return table([snap(1n, rootParent, 1n), snap(2n, 1n, 2n), snap(3n, 2n, 3n)], 3n);
}

const SELF = table([snap(7n, 7n, 1n)], 7n);
const LOOP = chain(3n); // 3 → 2 → 1 → 3
const HEAD_LOOP = table([snap(1n, null, 1n), snap(8n, 9n, 4n), snap(9n, 8n, 5n)], 8n); // head 8 ⇄ 9; 1 off the branch
const EXPIRED_AND_LOOP = table([snap(2n, 1n, 2n), snap(3n, 2n, 3n), snap(8n, 9n, 4n), snap(9n, 8n, 5n)], 3n); // 1 expired; 8 ⇄ 9

export function runCase(name: string): unknown {
  switch (name) {
    case 'lineage self-parent': return lineage(SELF, 7n).chain.length;
    case 'lineage loop': return lineage(LOOP, 3n).chain.length;
    case 'inspect order loop': return orderedSnapshots(LOOP).ordered.length;
    case 'range from start, self-parent': return resolveRange(SELF, { from: null }).snapshots.length;
    case 'range from start, loop': return resolveRange(LOOP, { from: null }).snapshots.length;
    case 'range from an unknown snapshot, loop': return resolveRange(LOOP, { from: 99n }).snapshots.length;
    case 'range to a snapshot off a looping branch': return resolveRange(HEAD_LOOP, { from: null, to: 1n }).snapshots.length;
    case 'range with a recorded parent that loops': {
      // Metadata's lineage is fine; the root's manifest list names the head as its parent.
      return resolveRange(chain(null), { from: null, recordedParents: new Map([[1n, 3n]]) }).snapshots.length;
    }
    case 'range from a looping snapshot across an expired parent': return resolveRange(EXPIRED_AND_LOOP, { from: 8n }).snapshots.length;
    case 'ancestor check, self-parent': return isAncestorOrSelf(snapshotIndex(SELF.snapshots), 7n, 99n);
    case 'ancestor check, loop': return isAncestorOrSelf(snapshotIndex(LOOP.snapshots), 3n, 99n);
    case 'ancestor check finds a snapshot before the loop': return isAncestorOrSelf(snapshotIndex(LOOP.snapshots), 3n, 1n);
    case 'range from a snapshot in the loop': return resolveRange(LOOP, { from: 2n }).snapshots.map((s) => s.snapshotId.toString());
    default: throw new Error(`no case ${name}`);
  }
}

export async function runRecordedParentsCase(): Promise<unknown> {
  return (await recordedRootParents(LOOP, 3n, async () => new Map())).size;
}
