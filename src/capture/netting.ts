import type { Snapshot } from '../iceberg/metadata.js';
import { changeKey, partitionKey } from './file-key.js';
import type { FileChange } from './snapshot-changes.js';

/**
 * One file event of a range, in snapshot order; within a snapshot, removals come first.
 * `rewrite` marks the files of a `replace` (compaction) snapshot: they are not changes of the
 * data, but netting needs them when the compaction rewrote files the range itself added.
 */
export interface FileEvent {
  snapshot: Snapshot;
  kind: 'added' | 'removed';
  change: FileChange;
  rewrite?: boolean;
}

export interface NetResult {
  /** Files added in the events and still live after them: what the consumer reads. */
  added: FileChange[];
  /** Files that existed before the events and were removed by them. */
  removed: FileChange[];
  /** What a compaction inside the events did to the answer, for the change set's warnings. */
  notes: string[];
  /** Compactions whose outputs stand in for files the range added (see RewriteGroup). */
  rewritesHandedOver: Set<bigint>;
}


/**
 * A compaction that rewrote files the range added. Its outputs replace those inputs while
 * netting; at the end the swap is undone (the inputs go back, exactly the rows added) unless a
 * later change in the range touched an output: removed it, or added a position delete or DV
 * aimed at it. Then the inputs are gone for good (their rows live on in the outputs, and the
 * later delete must apply to the outputs), so the outputs are handed over, possibly with rows
 * that other, older files brought into the same output (carry-over, as with copy-on-write).
 */
interface RewriteGroup {
  snapshot: Snapshot;
  inputs: { key: string; file: FileChange; group: RewriteGroup | null }[];
  outputKeys: string[];
  outputPaths: Set<string>;
  outputPartitions: Set<string>;
  /** Earlier groups whose outputs this one rewrote again. */
  consumes: Set<RewriteGroup>;
  forcedBy: string | null;
  /**
   * Data files from before the range that the compaction merged into the same partitions. When
   * the outputs are handed over they carry these rows again, so these files count as removed,
   * as with a copy-on-write rewrite: a consumer that applies "removed, then added" gets each
   * row once, and the ranges cover rows of theirs that later changes deleted.
   */
  olderInputs: FileChange[];
  /** Outputs taken whole because the compaction moved rows to another partition spec. */
  crossSpec: boolean;
}

function bySnapshot(events: FileEvent[]): FileEvent[][] {
  const out: FileEvent[][] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (last && last[0]!.snapshot.snapshotId === e.snapshot.snapshotId && Boolean(last[0]!.rewrite) === Boolean(e.rewrite)) last.push(e);
    else out.push([e]);
  }
  return out;
}

/**
 * Nets the file events of a range (or of the part of it a batch takes). A file added and
 * removed inside the events cancels out: the consumer never saw it, and handing it over would
 * duplicate rows that a later rewrite carried into another file. Compactions follow the rule
 * of RewriteGroup: they change nothing, unless later changes in the range build on their output.
 */
export function netEvents(events: FileEvent[]): NetResult {
  const n = netting();
  n.push(events);
  return n.finish();
}

/** An incremental netEvents: push each snapshot's events as they are read, then finish once. */
export interface Netting {
  /** Events in range order (whole snapshots; a push may hold several). */
  push(events: FileEvent[]): void;
  /** The same as pushing `added` as one snapshot's 'added' events (no removals, no rewrite), without making the events. */
  pushAdded(snapshot: Snapshot, added: FileChange[]): void;
  finish(): NetResult;
}

export function netting(): Netting {
  // The files live so far, by key, in the order they were added: one map entry per file and no
  // wrapper (a 950,000-file range keeps every one). `groupOf` holds the few that are outputs of a
  // compaction standing in for its inputs.
  const live = new Map<string, FileChange>();
  const groupOf = new Map<string, RewriteGroup>();
  // Until a removal or a compaction needs to look files up, added files are only listed, in
  // order: an append-only range (the common long one) then never builds the map, whose inserts
  // were the largest single cost of netting 950,000 files. `index` turns the list into the map,
  // with the same result as inserting each file as it came.
  let appended: FileChange[] | null = [];
  const index = (): void => {
    if (appended === null) return;
    for (const c of appended) live.set(changeKey(c), c);
    appended = null;
  };
  const removed = new Map<string, FileChange>();
  const groups: RewriteGroup[] = [];
  const force = (g: RewriteGroup, why: string): void => {
    g.forcedBy ??= why;
  };

  const applyChange = (evs: FileEvent[]): void => {
    for (const e of evs) {
      if (e.kind === 'added' && appended !== null) {
        appended.push(e.change); // no compaction yet: no group to check a delete file against
        continue;
      }
      index();
      const k = changeKey(e.change);
      if (e.kind === 'removed') {
        if (live.delete(k)) {
          const g = groupOf.get(k);
          if (g) {
            groupOf.delete(k);
            force(g, `snapshot ${e.snapshot.snapshotId} removed its output ${e.change.entry.dataFile.filePath}`);
          }
        } else {
          removed.set(k, e.change);
        }
        continue;
      }
      live.set(k, e.change);
      if (groupOf.size > 0) groupOf.delete(k);
      const df = e.change.entry.dataFile;
      if (df.content !== 1) continue; // equality deletes apply by value and sequence number: to the inputs as well as to the outputs
      for (const g of groups) {
        if (g.forcedBy !== null) continue;
        const aimed = df.referencedDataFile !== null
          ? g.outputPaths.has(df.referencedDataFile)
          : g.outputPartitions.has(partitionKey(e.change)); // a position delete file without a referenced file may name any file of its partition
        if (aimed) force(g, `snapshot ${e.snapshot.snapshotId} added ${df.referencedDataFile !== null ? 'a deletion vector or position delete' : 'position deletes'} for its output${df.referencedDataFile !== null ? ` ${df.referencedDataFile}` : 's'}`);
      }
    }
  };

  const applyRewrite = (evs: FileEvent[]): void => {
    index();
    const gone = evs.filter((e) => e.kind === 'removed');
    const made = evs.filter((e) => e.kind === 'added');
    const inRange = gone.filter((e) => live.has(changeKey(e.change)));
    if (inRange.length === 0) return; // a compaction of files from before the range: nothing changed for the consumer
    const s = evs[0]!.snapshot;
    const g: RewriteGroup = {
      snapshot: s, inputs: [], outputKeys: [], outputPaths: new Set(), outputPartitions: new Set(),
      consumes: new Set(), forcedBy: null, olderInputs: [], crossSpec: false,
    };
    const inputPartitions = new Set<string>();
    for (const e of inRange) {
      const key = changeKey(e.change);
      const file = live.get(key);
      if (file === undefined) continue; // the same file listed twice as removed: taken once
      const group = groupOf.get(key) ?? null;
      live.delete(key);
      groupOf.delete(key);
      g.inputs.push({ key, file, group });
      if (group) g.consumes.add(group);
      inputPartitions.add(partitionKey(e.change));
    }
    g.olderInputs = gone
      .filter((e) => e.change.entry.dataFile.content === 0 && !inRange.includes(e) && inputPartitions.has(partitionKey(e.change)))
      .map((e) => e.change);
    // Outputs are matched to inputs by partition; a compaction into another partition spec
    // moves rows across partitions, so then every output in a spec it did not read counts.
    const readSpecs = new Set(gone.map((e) => e.change.manifest.partitionSpecId));
    for (const e of made) {
      const samePartition = inputPartitions.has(partitionKey(e.change));
      const newSpec = !readSpecs.has(e.change.manifest.partitionSpecId);
      if (!samePartition && !newSpec) continue;
      if (newSpec) g.crossSpec = true;
      const key = changeKey(e.change);
      live.set(key, e.change);
      groupOf.set(key, g);
      g.outputKeys.push(key);
      if (e.change.entry.dataFile.content === 0) {
        g.outputPaths.add(e.change.entry.dataFile.filePath);
        g.outputPartitions.add(partitionKey(e.change));
      }
    }
    groups.push(g);
  };

  const push = (events: FileEvent[]): void => {
    for (const evs of bySnapshot(events)) {
      if (evs[0]!.rewrite) applyRewrite(evs);
      else applyChange(evs);
    }
  };

  const finish = (): NetResult => {
    // Only files were added: they are the answer, unless a key came twice (then the map's).
    if (appended !== null && !hasDuplicateKey(appended)) {
      return { added: appended, removed: [...removed.values()], notes: [], rewritesHandedOver: new Set() };
    }
    index();
    // Undo the swaps nobody built on, newest first, so that a compaction of a compaction unwinds
    // to the original files; a group that stays forces the groups whose outputs it consumed.
    const notes: string[] = [];
    const rewritesHandedOver = new Set<bigint>();
    for (const g of [...groups].reverse()) {
      if (g.forcedBy !== null) {
        rewritesHandedOver.add(g.snapshot.snapshotId);
        for (const c of g.consumes) force(c, `compaction ${g.snapshot.snapshotId}, whose outputs are handed over, rewrote its outputs`);
        const n = g.outputKeys.filter((k) => live.has(k)).length;
        for (const older of g.olderInputs) {
          const k = changeKey(older);
          if (!removed.has(k)) removed.set(k, older);
        }
        notes.push(`replace snapshot ${g.snapshot.snapshotId} rewrote ${g.inputs.length} file(s) that the range added, and ${g.forcedBy}: ` +
          `its ${n} output file(s) in those partitions are handed over instead of the rewritten files, so the later changes apply to them` +
          (g.olderInputs.length > 0 ? `; they also hold rows of ${g.olderInputs.length} file(s) written before the range, which are listed as removed (as a copy-on-write rewrite would)` : '') +
          (g.crossSpec ? '; the compaction changed the partition spec, so all its outputs in the new spec are included' : ''));
        continue;
      }
      for (const k of g.outputKeys) {
        live.delete(k);
        groupOf.delete(k);
      }
      for (const { key, file, group } of g.inputs) {
        live.set(key, file);
        if (group) groupOf.set(key, group);
        else groupOf.delete(key);
      }
    }
    return { added: [...live.values()], removed: [...removed.values()], notes, rewritesHandedOver };
  };
  const pushAdded = (snapshot: Snapshot, added: FileChange[]): void => {
    if (appended !== null) {
      for (const c of added) appended.push(c);
      return;
    }
    applyChange(added.map((change): FileEvent => ({ snapshot, kind: 'added', change })));
  };

  return { push, pushAdded, finish };
}

/** FNV-1a over the UTF-16 code units of `s`. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * Whether two changes share a key. Hashes go in a typed array and are sorted natively; only keys
 * whose hash occurs twice (about a hundred in a million) are compared as strings.
 */
export function hasDuplicateKey(changes: FileChange[]): boolean {
  const n = changes.length;
  if (n < 2) return false;
  const hashes = new Int32Array(n);
  for (let i = 0; i < n; i++) hashes[i] = hash32(changeKey(changes[i]!));
  const sorted = hashes.slice().sort();
  const twice = new Set<number>();
  for (let i = 1; i < n; i++) if (sorted[i] === sorted[i - 1]) twice.add(sorted[i]!);
  if (twice.size === 0) return false;
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (!twice.has(hashes[i]!)) continue;
    const k = changeKey(changes[i]!);
    if (seen.has(k)) return true;
    seen.add(k);
  }
  return false;
}
