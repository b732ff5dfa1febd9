import { IpsError } from '../errors.js';
import { EntryStatus } from '../iceberg/manifest.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import type { ChangeSet } from './change-set.js';
import { resolveDeleteFootprints } from './delete-footprint.js';
import { partitionKey } from './file-key.js';
import type { ManifestReader } from './manifest-reader.js';
import { readSnapshotChanges, type FileChange } from './snapshot-changes.js';

/**
 * When snapshot expiry broke the lineage between `from` and `to`, the files added since `from`
 * can still be recovered in v2+ tables: every live file whose *file* sequence number is greater
 * than `from`'s sequence number was committed after it (the data sequence number would not do:
 * compaction keeps old data sequence numbers). This is a fallback with known gaps, reported as
 * such: files added and removed inside the gap are invisible and removed files are unknown.
 *
 * Compaction outputs committed after `from` hold the rows of their inputs, and some of those
 * inputs may be files added after `from` that are no longer live: leaving the outputs out would
 * lose those rows. So an output is included unless its compaction is retained and every input
 * in its partition is older than `from` (then its rows were all there before). An included
 * output may carry rows from before `from` (whole-partition answer), which the warnings count.
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
  let carryingOutputs = 0;
  let manifestsRead = 0;
  let manifestsSkipped = 0;
  // Per retained compaction: the partitions whose inputs include files newer than `from`, and
  // those whose inputs include older files.
  const rewrites = new Map<bigint, { newer: Set<string>; older: Set<string> }>();
  const inputsOf = async (s: Snapshot) => {
    let r = rewrites.get(s.snapshotId);
    if (!r) {
      r = { newer: new Set(), older: new Set() };
      const ch = await readSnapshotChanges(reader, s);
      manifestsRead += ch.manifestsRead;
      for (const input of ch.removed) {
        const fsn = input.entry.fileSequenceNumber;
        (fsn === null || fsn > fromSequenceNumber ? r.newer : r.older).add(partitionKey(input));
      }
      rewrites.set(s.snapshotId, r);
    }
    return r;
  };
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
      const fc: FileChange = { entry, manifest: mf };
      const committer = byId.get(entry.snapshotId);
      if (committer?.operation === 'replace') {
        const inputs = await inputsOf(committer);
        const pk = partitionKey(fc);
        if (!inputs.newer.has(pk)) continue; // rewrote only files from before `from`
        compactionOutputs++;
        if (inputs.older.has(pk)) carryingOutputs++;
      } else if (!committer) {
        expiredCommitters++;
      }
      added.push(fc);
    }
  }
  const warnings = [
    `sequence-number fallback: lineage from sequence number ${fromSequenceNumber} to snapshot ${to} is broken by expiry; files added after it were recovered from file sequence numbers`,
    'files added and removed again inside the expired gap are not visible, and removed files are unknown',
  ];
  if (compactionOutputs > 0) {
    warnings.push(`${compactionOutputs} compaction output file(s) are included because they rewrote files added after sequence number ${fromSequenceNumber}` +
      (carryingOutputs > 0 ? `; ${carryingOutputs} of them also hold rows of older files (whole-partition answer: those rows are handed over again)` : ''));
  }
  if (expiredCommitters > 0) warnings.push(`${expiredCommitters} file(s) were committed by expired snapshots whose operation is unknown: if any was a compaction, its rows may repeat earlier data`);
  await resolveDeleteFootprints(reader, md, added.filter((f) => f.entry.dataFile.content !== 0), added, toSnap);
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
