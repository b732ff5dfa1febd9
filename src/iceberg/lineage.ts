import { IpsError } from '../errors.js';
import type { Snapshot } from './metadata.js';

/**
 * The one walk along `parent-snapshot-id` that every caller shares (range resolution, ancestry
 * checks, inspect, recorded root parents). Table metadata is written by other systems and may
 * be corrupt or hostile: a snapshot that is its own parent, or parents that form a loop, must
 * end in a typed error, never in an endless loop. The walk visits each snapshot at most once,
 * so it takes at most `snapshots.size` steps.
 */

export interface LineageStep {
  snapshot: Snapshot;
  /** The parent id this step follows (metadata's, or the caller's `parentOf`); null at a root. */
  parentId: bigint | null;
  /** The parent snapshot, undefined when `parentId` is null or names a snapshot not in the table (expired). */
  parent: Snapshot | undefined;
}

export type SnapshotIndex = ReadonlyMap<bigint, Snapshot>;

export function snapshotIndex(snapshots: readonly Snapshot[]): Map<bigint, Snapshot> {
  return new Map(snapshots.map((s) => [s.snapshotId, s] as const));
}

export function lineageCycleError(at: bigint, length: number): IpsError {
  return new IpsError('LINEAGE_CYCLE',
    `corrupt table metadata: the parent-snapshot-id chain loops back to snapshot ${at} after ${length} step(s) (a snapshot is its own ancestor); repair the table's metadata (roll back to a valid metadata file) before reading it`,
    { details: { snapshot: at.toString() } });
}

/**
 * Ancestors of `head` (inclusive), newest first. Each step carries the parent it would follow
 * next; the walk ends after a root (no parent) or a snapshot whose parent is missing.
 * `parentOf` overrides metadata's parent (e.g. parents recovered from manifest-list headers).
 * Throws LINEAGE_CYCLE when a snapshot comes back.
 */
export function* walkLineage(byId: SnapshotIndex, head: bigint | null, parentOf: (s: Snapshot) => bigint | null = (s) => s.parentSnapshotId): Generator<LineageStep, void, undefined> {
  let cur = head === null ? undefined : byId.get(head);
  const seen = new Set<bigint>();
  while (cur) {
    if (seen.has(cur.snapshotId)) throw lineageCycleError(cur.snapshotId, seen.size);
    seen.add(cur.snapshotId);
    const parentId = parentOf(cur);
    const parent = parentId === null ? undefined : byId.get(parentId);
    yield { snapshot: cur, parentId, parent };
    cur = parent;
  }
}

/** Whether `id` is `head` or one of its ancestors. */
export function isAncestorOrSelf(byId: SnapshotIndex, head: bigint | null, id: bigint): boolean {
  for (const step of walkLineage(byId, head)) if (step.snapshot.snapshotId === id) return true;
  return false;
}
