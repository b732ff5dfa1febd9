import type { TableMetadata } from '../iceberg/metadata.js';
import type { ChangeSet } from './change-set.js';
import { FileDescriber, type FileJson } from './file-json.js';
import { changedPartitions, fieldRange, type ChangedPartition, type FieldRange } from './ranges.js';

/** The JSON form of a change set (`ips changes --json`, and later the batch API). */
export interface ChangesJson {
  from: string | null;
  to: string;
  snapshots: { snapshot_id: string; sequence_number: string; operation: string; action: string; reason: string; added_files: number; removed_files: number }[];
  added_files: FileJson[];
  removed_files: FileJson[];
  ranges: Record<string, FieldRange>;
  changed_partitions: ChangedPartition[];
  icdc?: { table: string; metadata_location: string; snapshot_id: string };
  /** Present when the lineage was broken and files were recovered from sequence numbers. */
  fallback?: { kind: 'file-sequence-number'; from_sequence_number: string };
  warnings: string[];
}

export function changesJson(md: TableMetadata, cs: ChangeSet, rangeFields: string[]): ChangesJson {
  const describer = new FileDescriber(md);
  const all = [...cs.added, ...cs.removed];
  const ranges: Record<string, FieldRange> = {};
  for (const f of rangeFields) ranges[f] = fieldRange(md, describer, all, f);
  const out: ChangesJson = {
    from: cs.range.from?.toString() ?? null,
    to: cs.range.to.toString(),
    snapshots: cs.snapshots.map((d) => ({
      snapshot_id: d.snapshot.snapshotId.toString(),
      sequence_number: d.snapshot.sequenceNumber.toString(),
      operation: d.operation,
      action: d.action,
      reason: d.reason,
      added_files: d.added.length,
      removed_files: d.removed.length,
    })),
    added_files: cs.added.map((c) => describer.describe(c)),
    removed_files: cs.removed.map((c) => describer.describe(c)),
    ranges,
    changed_partitions: changedPartitions(describer, all),
    warnings: [...cs.warnings],
  };
  if (cs.fallback) out.fallback = { kind: 'file-sequence-number', from_sequence_number: cs.fallback.fromSequenceNumber.toString() };
  out.warnings.push(...describer.warnings);
  return out;
}
