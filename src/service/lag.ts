import { isIpsError, describeError } from '../errors.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import { branchHead, resolveRange } from '../capture/range.js';
import type { Watermark } from '../state/index.js';

/**
 * How far a consumer is behind the head of a table, from snapshot summaries only (no manifest
 * is read, so a table page stays cheap): snapshots not yet fully processed, and the data and
 * delete files (added plus removed), bytes and records they carry. `replace` snapshots
 * (compaction) count as snapshots but carry no changes for a consumer, so their files do not
 * count. `estimated` is true when a snapshot lacks the summary totals or a split snapshot is
 * partly done.
 */
export interface Lag {
  snapshots: number;
  /** Files added plus files removed: what a batch must look at (a change set lists both). */
  files: bigint;
  filesAdded: bigint;
  filesRemoved: bigint;
  bytes: bigint;
  records: bigint;
  estimated: boolean;
  /** Commit time (ms) of the oldest snapshot not fully processed: how long the consumer has been behind. */
  oldestPendingMs: bigint | null;
}

export type LagResult = { ok: true; lag: Lag } | { ok: false; code: string; message: string };

const ADDED_FILE_KEYS = ['added-data-files', 'added-delete-files'] as const;
const REMOVED_FILE_KEYS = ['deleted-data-files', 'removed-delete-files'] as const;
const FILE_KEYS = [...ADDED_FILE_KEYS, ...REMOVED_FILE_KEYS] as const;
const BYTE_KEYS = ['added-files-size', 'removed-files-size'] as const;
const RECORD_KEYS = ['added-records', 'deleted-records'] as const;

function sum(summary: Record<string, string>, keys: readonly string[]): { total: bigint; complete: boolean } {
  let total = 0n;
  let complete = true;
  for (const k of keys) {
    const v = summary[k];
    if (v === undefined) continue;
    if (!/^\d+$/.test(v)) {
      complete = false;
      continue;
    }
    total += BigInt(v);
  }
  // Writers leave out zero-valued keys, so only a summary with none of them is incomplete.
  if (!keys.some((k) => summary[k] !== undefined)) complete = false;
  return { total, complete };
}

/** What one snapshot adds to a consumer's lag, from its summary (a `replace` carries no changes). */
export function snapshotLagTotals(s: Snapshot): { files: bigint; bytes: bigint; records: bigint; complete: boolean } {
  if (s.operation === 'replace') return { files: 0n, bytes: 0n, records: 0n, complete: true };
  const files = sum(s.summary, FILE_KEYS);
  const bytes = sum(s.summary, BYTE_KEYS);
  return { files: files.total, bytes: bytes.total, records: sum(s.summary, RECORD_KEYS).total, complete: files.complete && bytes.complete };
}

export function consumerLag(md: TableMetadata, wm: Watermark, branch: string): LagResult {
  try {
    const head = branchHead(md, branch);
    if (head === null || (head === wm.snapshotId && wm.partialSnapshotId === null)) {
      return { ok: true, lag: { snapshots: 0, files: 0n, filesAdded: 0n, filesRemoved: 0n, bytes: 0n, records: 0n, estimated: false, oldestPendingMs: null } };
    }
    const range = resolveRange(md, { from: wm.snapshotId, branch });
    const lag: Lag = { snapshots: range.snapshots.length, files: 0n, filesAdded: 0n, filesRemoved: 0n, bytes: 0n, records: 0n, estimated: wm.partialSnapshotId !== null, oldestPendingMs: range.snapshots[0]?.timestampMs ?? null };
    for (const s of range.snapshots) {
      if (s.operation === 'replace') continue;
      const files = sum(s.summary, FILE_KEYS);
      const bytes = sum(s.summary, BYTE_KEYS);
      const records = sum(s.summary, RECORD_KEYS);
      lag.files += files.total;
      lag.filesAdded += sum(s.summary, ADDED_FILE_KEYS).total;
      lag.filesRemoved += sum(s.summary, REMOVED_FILE_KEYS).total;
      lag.bytes += bytes.total;
      lag.records += records.total;
      if (!files.complete || !bytes.complete) lag.estimated = true;
    }
    return { ok: true, lag };
  } catch (e) {
    if (isIpsError(e)) return { ok: false, code: e.code, message: e.message };
    return { ok: false, code: 'INTERNAL', message: describeError(e) };
  }
}
