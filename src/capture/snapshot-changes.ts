import { EntryStatus, type ManifestEntry } from '../iceberg/manifest.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import type { Snapshot } from '../iceberg/metadata.js';
import type { LimitFunction } from 'p-limit';
import { compactEntry, decodeStats, type EntryInterner, type StatsWanted } from './compact-entry.js';
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
 * How to read a snapshot's changes for a large plan: entries become compact records keeping only
 * `stats` (compact-entry.ts) and manifests are not cached; `limit` bounds the manifests decoded
 * at once across all snapshots read concurrently.
 */
export interface CompactRead {
  stats: StatsWanted;
  interner: EntryInterner;
  limit: LimitFunction;
}

/**
 * The data and delete files one snapshot added and removed. Read from that snapshot's own
 * manifest list: only manifests it wrote (`added_snapshot_id == S`) can hold its ADDED and
 * DELETED entries, and DELETED entries survive only in the deleting snapshot's manifests.
 * Manifests whose counts say they hold no added or deleted files are not opened
 * (a null count means unknown and is read).
 */
export async function readSnapshotChanges(reader: ManifestReader, snapshot: Snapshot, compact?: CompactRead, own?: ManifestFile[]): Promise<SnapshotChanges> {
  if (summarySaysNoChanges(snapshot)) return { snapshot, added: [], removed: [], manifestsRead: 0, manifestsSkipped: 0 };
  if (compact) return readCompact(reader, snapshot, compact, own);
  // `own`: the manifests the snapshot wrote, found without its list (own-manifests.ts).
  const list = own ? { manifests: own } : await reader.manifestList(snapshot);
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

/**
 * Manifests a snapshot wrote that may hold its changes (see readSnapshotChanges), and how many
 * list records were passed over. Only the candidates are deduplicated by path: a long range's
 * lists name thousands of manifests each, and hashing every path is measurable work; a path
 * listed twice among the skipped ones is counted twice (the count is only reported).
 */
function ownManifests(list: ManifestFile[], snapshot: Snapshot): { read: ManifestFile[]; skipped: number } {
  const read: ManifestFile[] = [];
  let skipped = 0;
  const seen = new Set<string>();
  for (const mf of list) {
    const ownedBySnapshot = mf.addedSnapshotId === null || mf.addedSnapshotId === snapshot.snapshotId;
    const mayHaveChanges = mf.addedFilesCount !== 0 || mf.deletedFilesCount !== 0;
    if (!ownedBySnapshot || !mayHaveChanges) skipped++;
    else if (!seen.has(mf.path)) {
      seen.add(mf.path);
      read.push(mf);
    }
  }
  return { read, skipped };
}

/**
 * readSnapshotChanges for large plans: the snapshot's manifests are decoded concurrently (within
 * `limit`), uncached, and only its ADDED and DELETED entries are kept, as compact entries. The
 * result lists entries in manifest order, as the sequential read does.
 */
async function readCompact(reader: ManifestReader, snapshot: Snapshot, c: CompactRead, fromNewest?: ManifestFile[]): Promise<SnapshotChanges> {
  // Only the snapshot's own manifests are decoded from its list, and only the stats the plan
  // keeps from its manifests; the rest is walked over in the bytes.
  const list = fromNewest ? { manifests: fromNewest, filtered: 0 } : await c.limit(() => reader.manifestList(snapshot, { cache: false, partitions: false, addedBy: snapshot.snapshotId, inline: true }));
  const own = ownManifests(list.manifests, snapshot);
  const read = own.read;
  const skipped = own.skipped + (list.filtered ?? 0);
  const parts = await Promise.all(read.map((mf) => c.limit(async () => {
    const m = await reader.manifest(mf, { cache: false, stats: decodeStats(c.stats), inline: true });
    const added: FileChange[] = [];
    const removed: FileChange[] = [];
    for (const entry of m.entries) {
      if (entry.snapshotId !== snapshot.snapshotId) continue;
      // A compact entry is its own FileChange (one object per file).
      if (entry.status === EntryStatus.ADDED) added.push(compactEntry(entry, mf, c.stats, c.interner));
      else if (entry.status === EntryStatus.DELETED) removed.push(compactEntry(entry, mf, c.stats, c.interner));
    }
    return { added, removed };
  })));
  return { snapshot, added: parts.flatMap((p) => p.added), removed: parts.flatMap((p) => p.removed), manifestsRead: read.length, manifestsSkipped: skipped };
}

const CHANGE_COUNTS = ['added-data-files', 'deleted-data-files', 'added-delete-files', 'removed-delete-files'];

/**
 * A snapshot whose summary states zero for every file-count metric changed no file, so not even
 * its manifest list needs reading. A missing metric means unknown: then the manifests decide.
 */
function summarySaysNoChanges(s: Snapshot): boolean {
  return CHANGE_COUNTS.every((k) => s.summary[k] === '0');
}
