import { IpsError } from '../errors.js';
import { isAncestorOrSelf, snapshotIndex, walkLineage, type SnapshotIndex } from '../iceberg/lineage.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';

/**
 * A snapshot range `(from, to]` along the `parent-snapshot-id` lineage of a branch, with the
 * same rules as Iceberg Java's BaseIncrementalScan, except that every history problem is a
 * typed error instead of a silent shorter range.
 */
export interface SnapshotRange {
  /** Exclusive start; null means "from the beginning of the table". */
  from: bigint | null;
  to: bigint;
  /** Snapshots in the range, oldest first. */
  snapshots: Snapshot[];
}

export interface RangeRequest {
  from: bigint | null;
  /** Defaults to the head of `branch`. */
  to?: bigint | null | undefined;
  branch?: string | undefined;
  /**
   * Parents that metadata no longer records: PyIceberg's expiry sets the surviving child's
   * `parent-snapshot-id` to null, but the child's manifest list header still names its parent.
   */
  recordedParents?: Map<bigint, bigint> | undefined;
}

export function branchHead(md: TableMetadata, branch: string): bigint | null {
  const ref = md.refs[branch];
  if (ref === undefined) {
    if (branch === 'main') return md.currentSnapshotId;
    throw new IpsError('UNKNOWN_BRANCH', `table has no branch "${branch}" (branches: ${Object.entries(md.refs).filter(([, r]) => r.type === 'branch').map(([n]) => n).join(', ') || 'none'})`);
  }
  if (ref.type !== 'branch') throw new IpsError('UNKNOWN_BRANCH', `"${branch}" is a tag, not a branch`);
  return ref.snapshotId;
}

export function resolveRange(md: TableMetadata, req: RangeRequest): SnapshotRange {
  const branch = req.branch ?? 'main';
  const byId = snapshotIndex(md.snapshots);
  const head = branchHead(md, branch);
  const to = req.to ?? head;
  if (to === null) throw new IpsError('EMPTY_TABLE', `the table has no snapshots on ${branch} yet`);
  if (!byId.has(to)) throw new IpsError('UNKNOWN_SNAPSHOT', `end snapshot ${to} does not exist in the table (expired, or from another table)`);
  if (req.to !== undefined && req.to !== null && head !== null && !isAncestorOrSelf(byId, head, to)) {
    throw new IpsError('NOT_ON_BRANCH', `end snapshot ${to} is not on branch ${branch} (head ${head})`);
  }
  const from = req.from;
  if (from === to) return { from, to, snapshots: [] };

  const chain: Snapshot[] = [];
  const parentOf = (s: Snapshot): bigint | null => s.parentSnapshotId ?? req.recordedParents?.get(s.snapshotId) ?? null;
  for (const { snapshot: cur, parentId, parent } of walkLineage(byId, to, parentOf)) {
    if (from !== null && cur.snapshotId === from) return { from, to, snapshots: chain.reverse() };
    chain.push(cur);
    // The exclusive start may itself be expired, as long as its child survives (Java allows this too).
    if (from !== null && parentId === from) return { from, to, snapshots: chain.reverse() };
    if (parentId === null) break;
    if (!parent) {
      // The chain is cut by snapshot expiry before reaching `from` (or the table's beginning).
      const oldest = { ...cur, parentSnapshotId: parentId };
      if (from !== null && byId.has(from) && divergesFrom(byId, from, chain)) {
        throw new IpsError('FROM_NOT_ANCESTOR',
          `start snapshot ${from} is not an ancestor of ${to} on ${branch}: the table was rolled back or its branch reset past it; reset the consumer to a snapshot on the current lineage`,
          { details: { from: from.toString(), to: to.toString() } });
      }
      if (from === null) {
        throw new IpsError('HISTORY_TRUNCATED',
          `snapshots before ${oldest.snapshotId} have expired (its parent ${oldest.parentSnapshotId} is gone), so the changes since the table began cannot be listed; start from ${oldest.parentSnapshotId} explicitly to read what the retained snapshots added, or reset the consumer`,
          { details: { oldestRetained: oldest.snapshotId.toString(), missingParent: oldest.parentSnapshotId!.toString() } });
      }
      if (byId.has(from)) {
        throw new IpsError('LINEAGE_BROKEN',
          `the lineage from ${to} back to ${from} is broken: snapshot ${oldest.parentSnapshotId} between them has expired; reset the consumer or run a backfill`,
          { details: { from: from.toString(), to: to.toString(), missingParent: oldest.parentSnapshotId!.toString() } });
      }
      throw new IpsError('FROM_EXPIRED',
        `start snapshot ${from} is older than the oldest retained snapshot ${oldest.snapshotId} (expired); the changes since then can no longer be listed snapshot by snapshot; reset the consumer or run a backfill`,
        { details: { from: from.toString(), oldestRetained: oldest.snapshotId.toString() } });
    }
  }
  if (from === null) return { from, to, snapshots: chain.reverse() };
  const root = chain[chain.length - 1];
  if (!byId.has(from) && root && md.formatVersion >= 2 && root.sequenceNumber > 1n) {
    // Sequence numbers before the root were assigned to snapshots that no longer exist.
    throw new IpsError('FROM_EXPIRED',
      `start snapshot ${from} is not in the table's retained history: snapshots before ${root.snapshotId} (sequence number ${root.sequenceNumber}) have expired; reset the consumer or run a backfill`,
      { details: { from: from.toString(), oldestRetained: root.snapshotId.toString() } });
  }
  if (byId.has(from)) {
    throw new IpsError('FROM_NOT_ANCESTOR',
      `start snapshot ${from} is not an ancestor of ${to} on ${branch}: the table was rolled back or its branch reset past it; reset the consumer to a snapshot on the current lineage`,
      { details: { from: from.toString(), to: to.toString() } });
  }
  throw new IpsError('UNKNOWN_SNAPSHOT', `start snapshot ${from} is not in this table's history`, { details: { from: from.toString() } });
}

/** True when `from`'s own ancestry joins `chain`: `from` sits on a branch that left this lineage. */
function divergesFrom(byId: SnapshotIndex, from: bigint, chain: Snapshot[]): boolean {
  const onChain = new Set(chain.map((s) => s.snapshotId));
  for (const { snapshot } of walkLineage(byId, from)) if (onChain.has(snapshot.snapshotId)) return true;
  return false;
}

/**
 * Parents of root snapshots as their manifest lists recorded them, for tables whose expiry
 * cleared `parent-snapshot-id` in metadata (PyIceberg). Reads one manifest list per root on the
 * lineage of `to`: usually exactly one.
 */
export async function recordedRootParents(md: TableMetadata, to: bigint | null, readHeader: (s: Snapshot) => Promise<Map<string, string>>): Promise<Map<bigint, bigint>> {
  const out = new Map<bigint, bigint>();
  if (to === null) return out;
  for (const { snapshot: cur, parentId } of walkLineage(snapshotIndex(md.snapshots), to)) {
    if (parentId === null) {
      if (cur.manifestList !== null) {
        const recorded = (await readHeader(cur)).get('parent-snapshot-id');
        if (recorded !== undefined && /^\d+$/.test(recorded)) out.set(cur.snapshotId, BigInt(recorded));
      }
      break;
    }
  }
  return out;
}

/** `resolveRange`, first recovering parents that expiry erased from metadata (see `recordedParents`). */
export async function resolveRangeWithHistory(md: TableMetadata, req: RangeRequest, reader: { manifestList(s: Snapshot): Promise<{ meta: Map<string, string> }> }): Promise<SnapshotRange> {
  const to = req.to ?? branchHead(md, req.branch ?? 'main');
  const recordedParents = await recordedRootParents(md, to, async (s) => (await reader.manifestList(s)).meta);
  return resolveRange(md, { ...req, recordedParents });
}
