import { IpsError } from '../errors.js';
import { lineage, type TableMetadata } from '../iceberg/metadata.js';
import type { LoadedTable } from '../catalog/table.js';
import { FileDescriber, type FileJson } from './file-json.js';
import type { ManifestReader } from './manifest-reader.js';
import { readSnapshotChanges } from './snapshot-changes.js';

export interface SnapshotJson {
  snapshot_id: string;
  parent_snapshot_id: string | null;
  sequence_number: string;
  timestamp_ms: string;
  timestamp: string;
  operation: string | null;
  summary: Record<string, string>;
  /** False for snapshots that are not ancestors of the current snapshot (rolled back, other branches). */
  on_main: boolean;
  added_files: FileJson[];
  removed_files: FileJson[];
}

export interface InspectJson {
  table: string;
  metadata_location: string;
  format_version: number;
  location: string;
  current_snapshot_id: string | null;
  /** Set when the oldest retained ancestor's parent was expired: history before it is gone. */
  history_truncated_at: string | null;
  /** Snapshots in the table; `snapshots` holds fewer with --snapshot or --limit. */
  snapshot_count: number;
  snapshots: SnapshotJson[];
  warnings: string[];
}

/** Snapshots in lineage order (oldest first) followed by any snapshots off the main lineage. */
export function orderedSnapshots(md: TableMetadata): { ordered: TableMetadata['snapshots']; onMain: Set<bigint>; truncatedAt: bigint | null } {
  const head = md.refs['main']?.snapshotId ?? md.currentSnapshotId;
  const { chain, truncatedAt } = head === null || head === undefined ? { chain: [], truncatedAt: null } : lineage(md, head);
  const main = [...chain].reverse();
  const onMain = new Set(main.map((s) => s.snapshotId));
  const others = md.snapshots
    .filter((s) => !onMain.has(s.snapshotId))
    .sort((a, b) => (a.sequenceNumber === b.sequenceNumber ? Number(a.timestampMs - b.timestampMs) : a.sequenceNumber < b.sequenceNumber ? -1 : 1));
  return { ordered: [...main, ...others], onMain, truncatedAt };
}

/** Which snapshots to describe: one by id, or the newest `limit` (in lineage order). */
export interface InspectSelection {
  snapshot?: bigint;
  limit?: number;
}

export async function inspectTable(table: LoadedTable, reader: ManifestReader, onProgress?: (done: number, total: number) => void, select: InspectSelection = {}): Promise<InspectJson> {
  const md = table.metadata;
  const describer = new FileDescriber(md);
  const ordered0 = orderedSnapshots(md);
  const { onMain } = ordered0;
  let ordered = ordered0.ordered;
  if (select.snapshot !== undefined) {
    ordered = ordered.filter((s) => s.snapshotId === select.snapshot);
    if (ordered.length === 0) throw new IpsError('UNKNOWN_SNAPSHOT', `the table has no snapshot ${select.snapshot}; \`ips inspect\` without --snapshot lists them`);
  }
  if (select.limit !== undefined) ordered = ordered.slice(Math.max(0, ordered.length - select.limit));
  let truncatedAt = ordered0.truncatedAt;
  const root = ordered0.ordered.find((s) => onMain.has(s.snapshotId));
  if (truncatedAt === null && root && root.parentSnapshotId === null && root.manifestList !== null) {
    // PyIceberg's expiry clears the surviving child's parent id; its manifest list still names it.
    const recorded = (await reader.manifestList(root)).meta.get('parent-snapshot-id');
    if (recorded !== undefined && /^\d+$/.test(recorded)) truncatedAt = BigInt(recorded);
  }
  const snapshots: SnapshotJson[] = [];
  for (const [i, s] of ordered.entries()) {
    const ch = await readSnapshotChanges(reader, s);
    snapshots.push({
      snapshot_id: s.snapshotId.toString(),
      parent_snapshot_id: s.parentSnapshotId?.toString() ?? null,
      sequence_number: s.sequenceNumber.toString(),
      timestamp_ms: s.timestampMs.toString(),
      timestamp: new Date(Number(s.timestampMs)).toISOString(),
      operation: s.operation,
      summary: s.summary,
      on_main: onMain.has(s.snapshotId),
      added_files: ch.added.map((c) => describer.describe(c)),
      removed_files: ch.removed.map((c) => describer.describe(c)),
    });
    onProgress?.(i + 1, ordered.length);
  }
  const warnings = [...describer.warnings];
  if (table.relocatedFrom) warnings.push(`the metadata names ${table.relocatedFrom}; files are read under ${table.name} instead`);
  if (truncatedAt !== null) warnings.push(`history is truncated: parent snapshot ${truncatedAt} of the oldest retained ancestor has expired`);
  return {
    table: table.name,
    metadata_location: table.metadataLocation,
    format_version: md.formatVersion,
    location: md.location,
    current_snapshot_id: md.currentSnapshotId?.toString() ?? null,
    history_truncated_at: truncatedAt?.toString() ?? null,
    snapshot_count: ordered0.ordered.length,
    snapshots,
    warnings,
  };
}
