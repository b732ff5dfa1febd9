import { EntryStatus, type ManifestEntry } from '../iceberg/manifest.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import type { Snapshot } from '../iceberg/metadata.js';
import type { DeleteFootprint } from './delete-footprint.js';
import type { ManifestReader } from './manifest-reader.js';

export interface FileChange {
  entry: ManifestEntry;
  /** The manifest the entry was read from: its partition spec decodes the partition tuple. */
  manifest: ManifestFile;
  /** For a delete file: the data files its deletes can touch (resolveDeleteFootprints), for ranges. */
  footprint?: DeleteFootprint;
}

export interface SnapshotChanges {
  snapshot: Snapshot;
  added: FileChange[];
  removed: FileChange[];
  manifestsRead: number;
  manifestsSkipped: number;
}

/**
 * The data and delete files one snapshot added and removed. Read from that snapshot's own
 * manifest list: only manifests it wrote (`added_snapshot_id == S`) can hold its ADDED and
 * DELETED entries, and DELETED entries survive only in the deleting snapshot's manifests.
 * Manifests whose counts say they hold no added or deleted files are not opened
 * (a null count means unknown and is read).
 */
export async function readSnapshotChanges(reader: ManifestReader, snapshot: Snapshot): Promise<SnapshotChanges> {
  if (summarySaysNoChanges(snapshot)) return { snapshot, added: [], removed: [], manifestsRead: 0, manifestsSkipped: 0 };
  const list = await reader.manifestList(snapshot);
  const added: FileChange[] = [];
  const removed: FileChange[] = [];
  let read = 0;
  let skipped = 0;
  const seen = new Set<string>();
  for (const mf of list.manifests) {
    if (seen.has(mf.path)) continue;
    seen.add(mf.path);
    const ownedBySnapshot = mf.addedSnapshotId === null || mf.addedSnapshotId === snapshot.snapshotId;
    const mayHaveChanges = mf.addedFilesCount !== 0 || mf.deletedFilesCount !== 0;
    if (!ownedBySnapshot || !mayHaveChanges) {
      skipped++;
      continue;
    }
    read++;
    const m = await reader.manifest(mf);
    for (const entry of m.entries) {
      if (entry.snapshotId !== snapshot.snapshotId) continue;
      if (entry.status === EntryStatus.ADDED) added.push({ entry, manifest: mf });
      else if (entry.status === EntryStatus.DELETED) removed.push({ entry, manifest: mf });
    }
  }
  return { snapshot, added, removed, manifestsRead: read, manifestsSkipped: skipped };
}

const CHANGE_COUNTS = ['added-data-files', 'deleted-data-files', 'added-delete-files', 'removed-delete-files'];

/**
 * A snapshot whose summary states zero for every file-count metric changed no file, so not even
 * its manifest list needs reading. A missing metric means unknown: then the manifests decide.
 */
function summarySaysNoChanges(s: Snapshot): boolean {
  return CHANGE_COUNTS.every((k) => s.summary[k] === '0');
}
