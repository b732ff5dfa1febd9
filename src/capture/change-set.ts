import { IpsError } from '../errors.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import { resolveDeleteFootprints } from './delete-footprint.js';
import type { ManifestReader } from './manifest-reader.js';
import pLimit from 'p-limit';
import { EntryInterner, type StatsWanted } from './compact-entry.js';
import { netting, type FileEvent } from './netting.js';
import type { CapturePolicy } from './policy.js';
import type { SnapshotRange } from './range.js';
import { readSnapshotChanges, type CompactRead, type FileChange, type SnapshotChanges } from './snapshot-changes.js';
import { ownManifestsFromNewest } from './own-manifests.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';

export type SnapshotAction = 'included' | 'added-only' | 'skipped';

export interface SnapshotDecision {
  snapshot: Snapshot;
  operation: string;
  action: SnapshotAction;
  reason: string;
  added: FileChange[];
  removed: FileChange[];
  /**
   * For a `replace` read because files added earlier in the range may be among its inputs:
   * what it rewrote. Not a change; netting uses it (see netting.ts).
   */
  rewritten?: { added: FileChange[]; removed: FileChange[] };
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
 * Whether a `replace` snapshot's record counts fit a compaction. A compaction may drop rows
 * only where deletes already deleted them (Spark's rewrite_data_files applies position deletes
 * and DVs), so the rows it lost may not exceed the deletes it removed plus those live before it.
 * Returns the warning for a mislabelled rewrite, or null.
 */
export function compactionRecordCheck(s: Snapshot, parent: Snapshot | undefined): string | null {
  const added = summaryLong(s, 'added-records');
  const deleted = summaryLong(s, 'deleted-records');
  if (added === null || deleted === null || added === deleted) return null;
  const mislabelled = `replace snapshot ${s.snapshotId} added ${added} records but removed ${deleted}`;
  if (added > deleted) return `${mislabelled}: a rewrite that added rows is labelled as compaction; its changes are not captured`;
  const counts = [
    summaryLong(s, 'removed-position-deletes'), summaryLong(s, 'removed-equality-deletes'),
    parent ? summaryLong(parent, 'total-position-deletes') : null, parent ? summaryLong(parent, 'total-equality-deletes') : null,
  ];
  if (counts.every((c) => c === null)) return `${mislabelled} and its summary counts no deletes it could have applied: a rewrite that changed data may be labelled as compaction; its changes are not captured`;
  const allowance = counts.reduce<bigint>((n, c) => n + (c ?? 0n), 0n);
  if (deleted - added <= allowance) return null;
  return `${mislabelled}, more than the ${allowance} deleted rows it could have applied: a rewrite that changed data is labelled as compaction; its changes are not captured`;
}

/** The file events of a decision, in the order netting needs them (removals first). */
export function decisionEvents(d: SnapshotDecision): FileEvent[] {
  if (d.rewritten) {
    return [
      ...d.rewritten.removed.map((change): FileEvent => ({ snapshot: d.snapshot, kind: 'removed', change, rewrite: true })),
      ...d.rewritten.added.map((change): FileEvent => ({ snapshot: d.snapshot, kind: 'added', change, rewrite: true })),
    ];
  }
  return [
    ...d.removed.map((change): FileEvent => ({ snapshot: d.snapshot, kind: 'removed', change })),
    ...d.added.map((change): FileEvent => ({ snapshot: d.snapshot, kind: 'added', change })),
  ];
}

/**
 * Decide per snapshot (policy), then collect files and net them (netting.ts): a file added and
 * removed inside the range cancels out; a compaction changes nothing unless later changes in
 * the range build on its outputs. Delete files get their footprint (the data files they can
 * touch), which ranges need.
 */
export interface ChangeSetOptions {
  /**
   * Resolve what each delete file can touch (reads data manifests of the snapshots that added
   * deletes). Change ranges need it; a caller that computes no ranges skips that work.
   * Without it, ranges over delete files fall back to partition values or `unbounded`.
   */
  deleteFootprints?: boolean;
  /**
   * Keep files as compact entries with only these statistics (compact-entry.ts), read manifests
   * uncached and `concurrency` at a time: for long ranges, whose full entries do not fit in
   * memory. Without it, entries are the decoded ones (the ICDC writer needs every field).
   */
  compact?: { stats: StatsWanted; concurrency?: number };
  /**
   * Find each snapshot's manifests in the range's newest manifest list where that list still
   * names them all (own-manifests.ts; default true). False reads every snapshot's own list, as
   * Iceberg Java does: the same answer, the second computation tests compare with.
   */
  newestList?: boolean;
}

/** Snapshots whose reads may be in flight ahead of the one being netted (bounds memory too). */
const READ_AHEAD = 8;

type Settled = { ok: SnapshotChanges } | { err: unknown };

export async function computeChangeSet(reader: ManifestReader, range: SnapshotRange, policy: CapturePolicy, md: TableMetadata, opts: ChangeSetOptions = {}): Promise<ChangeSet> {
  const warnings: string[] = [];
  const decisions: SnapshotDecision[] = [];
  let manifestsRead = 0;
  let manifestsSkipped = 0;
  let addedSoFar = false;
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const compact: CompactRead | undefined = opts.compact
    ? { stats: opts.compact.stats, interner: new EntryInterner(), limit: pLimit(Math.max(1, opts.compact.concurrency ?? 4)) }
    : undefined;
  const net = netting();
  // Reads run ahead of netting by up to READ_AHEAD snapshots (compact plans only; otherwise one
  // at a time, as the cache-sharing callers expect). A compaction is read when a snapshot before
  // it may add files; whether one did is known only when netting reaches it, so that read is
  // speculative and its result (or error) is dropped when nothing was added.
  const window: { d: SnapshotDecision; maybeRewrite: boolean; read: Promise<Settled> | null }[] = [];
  const ahead = compact ? READ_AHEAD : 1;
  let mayHaveAdded = false;
  const own = opts.newestList === false ? new Map<bigint, ManifestFile[]>()
    : await ownManifestsFromNewest(reader, range, { compact: compact !== undefined, ...(compact ? { limit: compact.limit } : {}) });
  const settle = (s: Snapshot): Promise<Settled> => readSnapshotChanges(reader, s, compact, own.get(s.snapshotId)).then((ok) => ({ ok }), (err: unknown) => ({ err }));
  const consume = async (): Promise<void> => {
    const { d, maybeRewrite, read } = window.shift()!;
    const readRewrite = maybeRewrite && addedSoFar;
    if (read && (d.action !== 'skipped' || readRewrite)) {
      const r = await read;
      if ('err' in r) throw r.err;
      const ch = r.ok;
      manifestsRead += ch.manifestsRead;
      manifestsSkipped += ch.manifestsSkipped;
      if (readRewrite) {
        d.rewritten = { added: ch.added, removed: ch.removed };
      } else if (d.action === 'added-only') {
        d.added = ch.added.filter((c) => c.entry.dataFile.content === 0);
      } else {
        d.added = ch.added;
        d.removed = ch.removed;
      }
      if (d.added.length > 0) addedSoFar = true;
    }
    // An append's files go in without an event object each (a long range has a million).
    if (!d.rewritten && d.removed.length === 0) net.pushAdded(d.snapshot, d.added);
    else net.push(decisionEvents(d));
    decisions.push(d);
  };
  try {
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
          const w = compactionRecordCheck(s, s.parentSnapshotId !== null ? byId.get(s.parentSnapshotId) : undefined);
          if (w) warnings.push(w);
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
      // A compaction matters only when it may have rewritten files the range added.
      const maybeRewrite = op === 'replace' && (ahead === 1 ? addedSoFar : mayHaveAdded);
      const read = d.action !== 'skipped' || maybeRewrite ? settle(s) : null;
      if (d.action !== 'skipped') mayHaveAdded = true;
      window.push({ d, maybeRewrite, read });
      while (window.length >= ahead) await consume();
    }
    while (window.length > 0) await consume();
  } finally {
    window.length = 0; // reads still in flight settle into nothing
  }

  const result = net.finish();
  warnings.push(...result.notes);
  for (const d of decisions) {
    if (result.rewritesHandedOver.has(d.snapshot.snapshotId)) {
      d.action = 'included';
      d.reason = 'replace (compaction) of files the range added, whose outputs later snapshots of the range change: the outputs are handed over instead of the rewritten files';
    }
  }
  if (opts.deleteFootprints ?? true) {
    const deletes = decisions.flatMap((d) => [...d.added, ...(d.rewritten?.added ?? [])]).filter((c) => c.entry.dataFile.content !== 0);
    const dataFiles = decisions.flatMap((d) => [...d.added, ...d.removed, ...(d.rewritten?.added ?? [])]);
    await resolveDeleteFootprints(reader, md, deletes, dataFiles);
  }
  return { range, snapshots: decisions, added: result.added, removed: result.removed, warnings, manifestsRead, manifestsSkipped };
}
