import { IpsError } from '../errors.js';
import type { Snapshot } from '../iceberg/metadata.js';
import type { ManifestReader } from './manifest-reader.js';
import type { CapturePolicy } from './policy.js';
import type { SnapshotRange } from './range.js';
import { readSnapshotChanges, type FileChange } from './snapshot-changes.js';

export type SnapshotAction = 'included' | 'added-only' | 'skipped';

export interface SnapshotDecision {
  snapshot: Snapshot;
  operation: string;
  action: SnapshotAction;
  reason: string;
  added: FileChange[];
  removed: FileChange[];
}

/** What changed in a range: the files a consumer must process, and why each snapshot counted. */
export interface ChangeSet {
  range: SnapshotRange;
  snapshots: SnapshotDecision[];
  /** Data and delete files added by included snapshots and still present at the end of the range. */
  added: FileChange[];
  /** Files removed by included snapshots that existed before the range. */
  removed: FileChange[];
  warnings: string[];
  manifestsRead: number;
  manifestsSkipped: number;
  /** Set when the files were recovered by the sequence-number fallback instead of the lineage walk. */
  fallback?: { fromSequenceNumber: bigint };
}

function summaryLong(s: Snapshot, key: string): bigint | null {
  const v = s.summary[key];
  return v !== undefined && /^-?\d+$/.test(v) ? BigInt(v) : null;
}

/**
 * Decide per snapshot (policy), then collect files. A file added and removed inside the range
 * by included snapshots cancels out: the consumer never saw it, and handing it over would
 * duplicate rows that a later rewrite carried into another file. Files removed by `replace`
 * (compaction) stay: compaction changes no data, so the rows are still those of the original
 * files, which is why replace snapshots are skipped rather than netted.
 */
export async function computeChangeSet(reader: ManifestReader, range: SnapshotRange, policy: CapturePolicy): Promise<ChangeSet> {
  const warnings: string[] = [];
  const decisions: SnapshotDecision[] = [];
  let manifestsRead = 0;
  let manifestsSkipped = 0;
  for (const s of range.snapshots) {
    let op = s.operation;
    if (op === null) {
      warnings.push(`snapshot ${s.snapshotId} records no operation; treated as overwrite, as Iceberg Java does`);
      op = 'overwrite';
    }
    const decision = (action: SnapshotAction, reason: string): SnapshotDecision => ({ snapshot: s, operation: op!, action, reason, added: [], removed: [] });
    let d: SnapshotDecision;
    switch (op) {
      case 'append':
        d = decision('included', 'append: added files');
        break;
      case 'replace': {
        d = decision('skipped', 'replace (compaction) changes no data');
        const added = summaryLong(s, 'added-records');
        const deleted = summaryLong(s, 'deleted-records');
        if (added !== null && deleted !== null && added !== deleted) {
          warnings.push(`replace snapshot ${s.snapshotId} added ${added} records but removed ${deleted}: a rewrite that changed data is labelled as compaction; its changes are not captured`);
        }
        break;
      }
      case 'overwrite':
        if (policy.overwrite === 'fail') {
          throw new IpsError('OPERATION_NOT_ALLOWED', `snapshot ${s.snapshotId} is an overwrite and the policy says overwrite=fail; use overwrite=include (added and removed files) or overwrite=added-only`, { details: { snapshot: s.snapshotId.toString() } });
        }
        d = policy.overwrite === 'include'
          ? decision('included', 'overwrite: added and removed files (policy overwrite=include)')
          : decision('added-only', 'overwrite: added data files only (policy overwrite=added-only); removed files and delete files ignored');
        break;
      case 'delete':
        if (policy.delete === 'fail') {
          throw new IpsError('OPERATION_NOT_ALLOWED', `snapshot ${s.snapshotId} is a delete and the policy says delete=fail; use delete=include or delete=skip`, { details: { snapshot: s.snapshotId.toString() } });
        }
        d = policy.delete === 'include'
          ? decision('included', 'delete: removed files and new delete files (policy delete=include)')
          : decision('skipped', 'delete skipped by policy delete=skip');
        break;
      default:
        throw new IpsError('UNKNOWN_OPERATION', `snapshot ${s.snapshotId} has unknown operation "${op}"; ips cannot tell what it changed`);
    }
    if (d.action !== 'skipped') {
      const ch = await readSnapshotChanges(reader, s);
      manifestsRead += ch.manifestsRead;
      manifestsSkipped += ch.manifestsSkipped;
      if (d.action === 'added-only') {
        d.added = ch.added.filter((c) => c.entry.dataFile.content === 0);
      } else {
        d.added = ch.added;
        d.removed = ch.removed;
      }
    }
    decisions.push(d);
  }

  // Net out files added and later removed inside the range. Paths can be re-added after removal
  // (spec), so the key is (path, snapshot that added it) via order of events.
  const live = new Map<string, FileChange>();
  const removed = new Map<string, FileChange>();
  for (const d of decisions) {
    for (const r of d.removed) {
      const p = r.entry.dataFile.filePath;
      if (live.has(p)) live.delete(p);
      else removed.set(p, r);
    }
    for (const a of d.added) live.set(a.entry.dataFile.filePath, a);
  }
  return { range, snapshots: decisions, added: [...live.values()], removed: [...removed.values()], warnings, manifestsRead, manifestsSkipped };
}
