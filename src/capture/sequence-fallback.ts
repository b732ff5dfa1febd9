import { IpsError } from '../errors.js';
import { EntryStatus } from '../iceberg/manifest.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import type { ChangeSet } from './change-set.js';
import type { ManifestReader } from './manifest-reader.js';
import type { FileChange } from './snapshot-changes.js';

/**
 * When snapshot expiry broke the lineage between `from` and `to`, the files added since `from`
 * can still be recovered in v2+ tables: every live file whose *file* sequence number is greater
 * than `from`'s sequence number was committed after it (the data sequence number would not do:
 * compaction keeps old data sequence numbers). This is a fallback with known gaps, reported as
 * such: files added and removed inside the gap are invisible, removed files are unknown, and
 * outputs of compactions whose snapshots have expired look like new files.
 */
export async function sequenceNumberFallback(reader: ManifestReader, md: TableMetadata, to: bigint, fromSequenceNumber: bigint): Promise<ChangeSet> {
  if (md.formatVersion < 2) throw new IpsError('FALLBACK_UNAVAILABLE', 'the sequence-number fallback needs a v2+ table (v1 has no sequence numbers)');
  const toSnap = md.snapshots.find((s) => s.snapshotId === to);
  if (!toSnap) throw new IpsError('UNKNOWN_SNAPSHOT', `end snapshot ${to} does not exist`);
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const list = await reader.manifestList(toSnap);
  const added: FileChange[] = [];
  let expiredCommitters = 0;
  let compactionOutputs = 0;
  let manifestsRead = 0;
  let manifestsSkipped = 0;
  for (const mf of list.manifests) {
    // A manifest whose newest possible file is older than `from` holds nothing new.
    if (mf.sequenceNumber <= fromSequenceNumber) {
      manifestsSkipped++;
      continue;
    }
    manifestsRead++;
    const m = await reader.manifest(mf);
    for (const entry of m.entries) {
      if (entry.status === EntryStatus.DELETED) continue;
      if (entry.fileSequenceNumber === null || entry.fileSequenceNumber <= fromSequenceNumber) continue;
      const committer = byId.get(entry.snapshotId);
      if (committer?.operation === 'replace') {
        compactionOutputs++;
        continue;
      }
      if (!committer) expiredCommitters++;
      added.push({ entry, manifest: mf });
    }
  }
  const warnings = [
    `sequence-number fallback: lineage from sequence number ${fromSequenceNumber} to snapshot ${to} is broken by expiry; files added after it were recovered from file sequence numbers`,
    'files added and removed again inside the expired gap are not visible, and removed files are unknown',
  ];
  if (compactionOutputs > 0) warnings.push(`${compactionOutputs} compaction output file(s) of retained replace snapshots were left out`);
  if (expiredCommitters > 0) warnings.push(`${expiredCommitters} file(s) were committed by expired snapshots whose operation is unknown: if any was a compaction, its rows may repeat earlier data`);
  return {
    range: { from: null, to, snapshots: [] },
    snapshots: [],
    added,
    removed: [],
    warnings,
    manifestsRead,
    manifestsSkipped,
    fallback: { fromSequenceNumber },
  };
}
