import { EntryStatus } from '../iceberg/manifest.js';
import type { FieldSummary, ManifestFile } from '../iceberg/manifest-list.js';
import { specById, type Snapshot, type TableMetadata } from '../iceberg/metadata.js';
import { bindSpec, partitionValueFromAvro, type BoundPartitionField } from '../iceberg/partition-values.js';
import { compareValues, decodeBinaryValue } from '../iceberg/values.js';
import { partitionKey } from './file-key.js';
import type { ManifestReader } from './manifest-reader.js';
import type { FileChange } from './snapshot-changes.js';

/** Field id of `file_path` in position delete files (spec, reserved ids). */
const POS_FILE_PATH_ID = 2147483546;

/**
 * What a delete file's rows can be: the data files it can delete from, so that a field's change
 * range covers the deleted rows too. `files` is an over-approximation (every row of those files,
 * not only the deleted ones); `unknown` says why nothing better could be found.
 */
export type DeleteFootprint = { files: FileChange[] } | { unknown: string };

interface SnapshotIndex {
  byPath: Map<string, FileChange>;
  byPartition: Map<string, FileChange[]>;
}

export function mayHoldPartition(bound: BoundPartitionField[], summaries: FieldSummary[] | null, partition: Map<number, unknown>): boolean {
  if (summaries === null) return true;
  for (const [i, pf] of bound.entries()) {
    const s = summaries[i];
    if (!s) continue;
    const v = partitionValueFromAvro(pf.resultType, partition.get(pf.field.fieldId));
    if (v === null) {
      if (!s.containsNull) return false;
      continue;
    }
    try {
      if (s.lowerBound !== null && compareValues(pf.resultType, v, decodeBinaryValue(pf.resultType, s.lowerBound)) < 0) return false;
      if (s.upperBound !== null && compareValues(pf.resultType, v, decodeBinaryValue(pf.resultType, s.upperBound)) > 0) return false;
    } catch {
      // an undecodable summary prunes nothing
    }
  }
  return true;
}

function isGlobal(md: TableMetadata, fc: FileChange): boolean {
  return specById(md, fc.manifest.partitionSpecId).fields.length === 0;
}

/**
 * Resolves the footprint of each delete file (position deletes, deletion vectors, equality
 * deletes) among `deletes`, and stores it on the FileChange (`footprint`). The data files are
 * looked up among the live files of the snapshot that added the delete (its own manifests,
 * pruned by partition), where every file it can apply to must be; `known` (data files of the
 * range already at hand) answers the common case of a DV for a file the range added.
 * `fallbackSnapshot` serves deletes whose adding snapshot has expired.
 */
export async function resolveDeleteFootprints(reader: ManifestReader, md: TableMetadata, deletes: FileChange[], known: FileChange[], fallbackSnapshot?: Snapshot): Promise<void> {
  const knownByPath = new Map<string, FileChange>();
  for (const k of known) if (k.entry.dataFile.content === 0) knownByPath.set(k.entry.dataFile.filePath, k);
  const bySnapshot = new Map<bigint, FileChange[]>();
  for (const d of deletes) {
    const df = d.entry.dataFile;
    if (df.content === 0 || d.footprint !== undefined) continue;
    if (df.content === 1 && df.referencedDataFile !== null) {
      const hit = knownByPath.get(df.referencedDataFile);
      if (hit) {
        d.footprint = { files: [hit] };
        continue;
      }
    }
    const list = bySnapshot.get(d.entry.snapshotId) ?? [];
    list.push(d);
    bySnapshot.set(d.entry.snapshotId, list);
  }
  const snapshots = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const bound = new Map<number, BoundPartitionField[]>();
  const bind = (specId: number): BoundPartitionField[] => {
    let b = bound.get(specId);
    if (!b) bound.set(specId, (b = bindSpec(md, specById(md, specId))));
    return b;
  };

  for (const [snapshotId, group] of bySnapshot) {
    const snapshot = snapshots.get(snapshotId) ?? fallbackSnapshot;
    if (!snapshot) {
      for (const d of group) d.footprint = { unknown: `snapshot ${snapshotId}, which added it, has expired` };
      continue;
    }
    const global = group.some((d) => d.entry.dataFile.content === 2 && isGlobal(md, d));
    const wanted = new Map<string, FileChange>(); // partition key → a delete file of that partition
    for (const d of group) wanted.set(partitionKey(d), d);
    const index = await indexLiveDataFiles(reader, snapshot, (mf) => {
      if (global) return true;
      for (const d of wanted.values()) {
        if (d.manifest.partitionSpecId === mf.partitionSpecId && mayHoldPartition(bind(mf.partitionSpecId), mf.partitions, d.entry.dataFile.partition)) return true;
      }
      return false;
    }, global ? null : new Set(wanted.keys()));
    for (const d of group) d.footprint = footprintIn(md, index, d, snapshot);
  }
}

async function indexLiveDataFiles(reader: ManifestReader, snapshot: Snapshot, mayHold: (mf: ManifestFile) => boolean, partitions: Set<string> | null): Promise<SnapshotIndex> {
  const index: SnapshotIndex = { byPath: new Map(), byPartition: new Map() };
  const list = await reader.manifestList(snapshot);
  const seen = new Set<string>();
  for (const mf of list.manifests) {
    if (mf.content !== 0 || seen.has(mf.path) || !mayHold(mf)) continue;
    seen.add(mf.path);
    const m = await reader.manifest(mf);
    for (const entry of m.entries) {
      if (entry.status === EntryStatus.DELETED) continue;
      const fc: FileChange = { entry, manifest: mf };
      const pk = partitionKey(fc);
      if (partitions !== null && !partitions.has(pk)) continue;
      index.byPath.set(entry.dataFile.filePath, fc);
      const l = index.byPartition.get(pk) ?? [];
      l.push(fc);
      index.byPartition.set(pk, l);
    }
  }
  return index;
}

function footprintIn(md: TableMetadata, index: SnapshotIndex, d: FileChange, snapshot: Snapshot): DeleteFootprint {
  const df = d.entry.dataFile;
  if (df.content === 1) {
    if (df.referencedDataFile !== null) {
      const hit = index.byPath.get(df.referencedDataFile);
      return hit ? { files: [hit] } : { unknown: `its referenced data file ${df.referencedDataFile} is not live at snapshot ${snapshot.snapshotId}` };
    }
    // A position delete file names its data files in `file_path`: its bounds narrow them down.
    const lo = df.lowerBounds?.get(POS_FILE_PATH_ID)?.toString('utf8');
    const hi = df.upperBounds?.get(POS_FILE_PATH_ID)?.toString('utf8');
    const candidates = index.byPartition.get(partitionKey(d)) ?? [];
    return {
      files: candidates.filter((c) => {
        const p = Buffer.from(c.entry.dataFile.filePath, 'utf8');
        return (lo === undefined || Buffer.compare(p, Buffer.from(lo, 'utf8')) >= 0) && (hi === undefined || Buffer.compare(p, Buffer.from(hi, 'utf8')) <= 0);
      }),
    };
  }
  // Equality deletes apply to data files with a smaller data sequence number, in their
  // partition, or everywhere when the delete file is unpartitioned (spec).
  const seq = d.entry.sequenceNumber;
  const older = (c: FileChange): boolean => seq === null || c.entry.sequenceNumber === null || c.entry.sequenceNumber < seq;
  const pool = isGlobal(md, d) ? [...index.byPath.values()] : (index.byPartition.get(partitionKey(d)) ?? []);
  return { files: pool.filter(older) };
}
