import { computeChangeSet, decisionEvents, type ChangeSetOptions } from '../capture/change-set.js';
import { fileKey } from '../capture/file-key.js';
import type { FileEvent } from '../capture/netting.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import type { CapturePolicy } from '../capture/policy.js';
import type { SnapshotRange } from '../capture/range.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import type { BatchLimits } from '../state/index.js';

/**
 * Which files of a range one batch takes, planned only as far as the batch's limits reach.
 *
 * Why: a consumer far behind that catches up in limited batches (`max_files` and the like) used
 * to plan its whole remaining range on every prepare, every manifest of every snapshot as full
 * entries, to take the first few files. Each batch cost the size of the backlog rather than of
 * the batch, a backlog of n batches cost n² and one of a million files did not fit in memory.
 *
 * Why a prefix gives the same batch: a snapshot's decision depends only on the snapshots before
 * it (change-set.ts), and selectFiles takes files in order and stops at the first one over a
 * limit. A prefix of the range whose selection stops inside it therefore selects exactly what the
 * whole range selects. A prefix taken whole says nothing about what comes after it, so the
 * prefix grows (twice as long each time) until its selection stops inside it or it is the range.
 */

export interface Selection {
  /** The events taken, in snapshot order (a compaction's files count for nothing, all or none). */
  taken: FileEvent[];
  /** Snapshots whose files are all taken (or were before), in order. */
  completed: Snapshot[];
  /** The snapshot the limit cut through, with the paths of it taken now. */
  cut: { snapshot: Snapshot; paths: string[] } | null;
}

/**
 * The files a batch takes, in snapshot order (within a snapshot: removed, then added, as
 * computeChangeSet nets them), whole files only, stopping before the first file that would
 * exceed a limit. The first file is always taken, so one oversized file still makes progress.
 */
export function selectFiles(snapshots: { snapshot: Snapshot; events: FileEvent[] }[], limits: BatchLimits): Selection {
  const taken: FileEvent[] = [];
  const completed: Snapshot[] = [];
  let bytes = 0n;
  let records = 0n;
  let files = 0;
  for (const { snapshot, events } of snapshots) {
    const now: string[] = [];
    for (const e of events) {
      // A compaction's files are not changes: they cost nothing and a batch takes all or none.
      if (e.rewrite) {
        taken.push(e);
        continue;
      }
      const df = e.change.entry.dataFile;
      const fits = files === 0 || (
        (limits.maxFiles === undefined || files + 1 <= limits.maxFiles) &&
        (limits.maxBytes === undefined || bytes + df.fileSizeInBytes <= limits.maxBytes) &&
        (limits.maxRecords === undefined || records + df.recordCount <= limits.maxRecords));
      if (!fits) return { taken, completed, cut: now.length > 0 ? { snapshot, paths: now } : null };
      taken.push(e);
      files++;
      now.push(fileKey(df));
      bytes += df.fileSizeInBytes;
      records += df.recordCount;
    }
    completed.push(snapshot);
  }
  return { taken, completed, cut: null };
}

/** A summary count, or null when none of the keys is there or one is not a plain non-negative integer (summaries are written by others). */
function count(s: Snapshot, keys: readonly string[]): bigint | null {
  let n = 0n;
  let found = false;
  for (const k of keys) {
    const v = s.summary[k];
    if (v === undefined) continue;
    if (!/^\d{1,19}$/.test(v)) return null;
    n += BigInt(v);
    found = true;
  }
  return found ? n : null;
}

const FILE_KEYS = ['added-data-files', 'added-delete-files', 'deleted-data-files', 'removed-delete-files'] as const;
const BYTE_KEYS = ['added-files-size', 'removed-files-size'] as const;
const RECORD_KEYS = ['added-records', 'deleted-records'] as const;

/**
 * How many snapshots the first plan covers: as many as the snapshot summaries say the limits
 * need. Only a first guess (a summary may be missing, wrong, or count files a policy skips):
 * planBatch grows a prefix that turns out too short, and a guess too long only costs time. A
 * snapshot without the counts a limit needs ends the guess there.
 */
export function firstPrefixLength(snapshots: readonly Snapshot[], limits: BatchLimits): number {
  const wanted: { keys: readonly string[]; limit: bigint; sum: bigint }[] = [];
  if (limits.maxFiles !== undefined) wanted.push({ keys: FILE_KEYS, limit: BigInt(limits.maxFiles), sum: 0n });
  if (limits.maxBytes !== undefined) wanted.push({ keys: BYTE_KEYS, limit: limits.maxBytes, sum: 0n });
  if (limits.maxRecords !== undefined) wanted.push({ keys: RECORD_KEYS, limit: limits.maxRecords, sum: 0n });
  if (wanted.length === 0) return snapshots.length;
  for (let i = 0; i < snapshots.length; i++) {
    const s = snapshots[i]!;
    if (s.operation === 'replace') continue;
    for (const w of wanted) {
      const n = count(s, w.keys);
      if (n === null) return i + 1;
      w.sum += n;
      if (w.sum >= w.limit) return i + 1;
    }
  }
  return snapshots.length;
}

export interface BatchPlanOptions {
  limits: BatchLimits;
  /** Events not to hand out again (the files of a partly processed snapshot taken before). */
  skip?: (e: FileEvent) => boolean;
  changeSet?: ChangeSetOptions;
}

export interface BatchPlan {
  selection: Selection;
  /** Snapshots of the range planned to get there (all of them without limits). */
  planned: number;
}

export async function planBatch(reader: ManifestReader, range: SnapshotRange, policy: CapturePolicy, md: TableMetadata, opts: BatchPlanOptions): Promise<BatchPlan> {
  const total = range.snapshots.length;
  let n = Math.max(1, Math.min(total, firstPrefixLength(range.snapshots, opts.limits)));
  for (;;) {
    const prefix: SnapshotRange = n >= total ? range : { from: range.from, to: range.snapshots[n - 1]!.snapshotId, snapshots: range.snapshots.slice(0, n) };
    const cs = await computeChangeSet(reader, prefix, policy, md, opts.changeSet);
    const perSnapshot = cs.snapshots.map((d) => ({
      snapshot: d.snapshot,
      events: opts.skip ? decisionEvents(d).filter((e) => !opts.skip!(e)) : decisionEvents(d),
    }));
    const selection = selectFiles(perSnapshot, opts.limits);
    if (n >= total || selection.cut !== null || selection.completed.length < n) return { selection, planned: n };
    n = Math.min(total, n * 2);
  }
}
