// A batch planned only as far as its limits reach (src/service/batch-plan.ts) against the plan of
// the consumer's whole remaining range (what prepare did before, kept here as the second
// computation): from every position on a table's lineage, with and without a partly processed
// snapshot, for a spread of limits and both policies, both must take the same files, complete
// the same snapshots and cut the same one.
import { expect } from 'vitest';
import { computeChangeSet, decisionEvents } from '../../src/capture/change-set.js';
import { changeKey } from '../../src/capture/file-key.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import type { FileEvent } from '../../src/capture/netting.js';
import { DEFAULT_POLICY, type CapturePolicy } from '../../src/capture/policy.js';
import { branchHead, resolveRange, type SnapshotRange } from '../../src/capture/range.js';
import { snapshotIndex, walkLineage } from '../../src/iceberg/lineage.js';
import type { TableMetadata } from '../../src/iceberg/metadata.js';
import type { FileIO } from '../../src/io/file-io.js';
import { firstPrefixLength, planBatch, selectFiles, type Selection } from '../../src/service/batch-plan.js';
import type { BatchLimits } from '../../src/state/index.js';

const LIMITS: BatchLimits[] = [
  { maxFiles: 1 }, { maxFiles: 2 }, { maxFiles: 3 }, { maxFiles: 7 }, { maxFiles: 40 },
  { maxRecords: 1n }, { maxRecords: 25n }, { maxRecords: 400n },
  { maxBytes: 1n }, { maxBytes: 6_000n }, { maxBytes: 60_000n },
  { maxFiles: 4, maxRecords: 100n }, {},
];
const POLICIES: CapturePolicy[] = [DEFAULT_POLICY, { overwrite: 'added-only', delete: 'skip' }];

function shown(s: Selection): unknown {
  return {
    taken: s.taken.map((e) => `${e.snapshot.snapshotId}:${e.kind}${e.rewrite ? ':rewrite' : ''}:${changeKey(e.change)}`),
    completed: s.completed.map((x) => x.snapshotId.toString()),
    cut: s.cut && { snapshot: s.cut.snapshot.snapshotId.toString(), paths: s.cut.paths },
  };
}

async function wholeRange(io: FileIO, md: TableMetadata, range: SnapshotRange, policy: CapturePolicy, limits: BatchLimits, skip?: (e: FileEvent) => boolean): Promise<Selection> {
  const cs = await computeChangeSet(new ManifestReader(io), range, policy, md, { deleteFootprints: false });
  return selectFiles(cs.snapshots.map((d) => ({ snapshot: d.snapshot, events: decisionEvents(d).filter((e) => !skip?.(e)) })), limits);
}

/** An error's code, or the result: both sides must fail alike where history is missing (expired snapshots). */
async function settle<T>(p: Promise<T>): Promise<T | { error: string }> {
  try {
    return await p;
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
}

export interface PlanCheckCounts {
  cases: number;
  /** Cases whose batch was planned on fewer snapshots than its range has. */
  shorter: number;
  /** Cases where the first prefix was too short and grew. */
  grown: number;
}

export async function expectPrefixPlansMatchWholeRange(io: FileIO, md: TableMetadata, label: string, branch = 'main'): Promise<PlanCheckCounts> {
  const counts: PlanCheckCounts = { cases: 0, shorter: 0, grown: 0 };
  const head = branchHead(md, branch);
  if (head === null) return counts;
  const positions: (bigint | null)[] = [null, ...[...walkLineage(snapshotIndex(md.snapshots), head)].map((s) => s.snapshot.snapshotId).filter((id) => id !== head)];
  for (const from of positions) {
    // A position whose history expired has no range to plan (prepare fails before planning).
    let range: SnapshotRange;
    try {
      range = resolveRange(md, { from, branch });
    } catch {
      continue;
    }
    for (const policy of POLICIES) {
      for (const limits of LIMITS) {
        const what = `${label}: from ${from ?? 'start'}, policy ${policy.overwrite}/${policy.delete}, limits ${JSON.stringify(limits, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`;
        const whole = await settle(wholeRange(io, md, range, policy, limits));
        const prefix = await settle(planBatch(new ManifestReader(io), range, policy, md, { limits, changeSet: { deleteFootprints: false } }));
        counts.cases++;
        if ('error' in whole || 'error' in prefix) {
          expect('error' in prefix ? prefix : shown(prefix.selection), what).toEqual('error' in whole ? whole : shown(whole));
          continue;
        }
        expect(shown(prefix.selection), what).toEqual(shown(whole));
        if (prefix.planned < range.snapshots.length) counts.shorter++;
        if (prefix.planned > Math.max(1, firstPrefixLength(range.snapshots, limits))) counts.grown++;
        // Where the limit cut a snapshot, the next batch starts inside it: the files taken are skipped.
        const cut = whole.cut;
        if (cut === null) continue;
        const done = new Set(cut.paths);
        const skip = (e: FileEvent): boolean => e.snapshot.snapshotId === cut.snapshot.snapshotId && done.has(changeKey(e.change));
        const next = resolveRange(md, { from: whole.completed.at(-1)?.snapshotId ?? from, branch });
        const wholeNext = await wholeRange(io, md, next, policy, limits, skip);
        const prefixNext = await planBatch(new ManifestReader(io), next, policy, md, { limits, skip, changeSet: { deleteFootprints: false } });
        counts.cases++;
        expect(shown(prefixNext.selection), `${what}, inside snapshot ${cut.snapshot.snapshotId}`).toEqual(shown(wholeNext));
        if (prefixNext.planned < next.snapshots.length) counts.shorter++;
        if (prefixNext.planned > Math.max(1, firstPrefixLength(next.snapshots, limits))) counts.grown++;
      }
    }
  }
  return counts;
}
