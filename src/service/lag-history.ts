import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import { snapshotIndex, walkLineage } from '../iceberg/lineage.js';
import { branchHead } from '../capture/range.js';
import type { WatermarkMove } from '../state/index.js';
import { snapshotLagTotals } from './lag.js';

/**
 * A consumer's lag over time, reconstructed from what is already stored: the table's snapshots
 * (commit times along the branch) and the watermark's audit trail (every move with its time).
 * At an instant t the consumer had processed up to the watermark of the last move at or before
 * t, and was behind by every snapshot after it committed at or before t. Nothing is sampled or
 * stored for this, so a console left open costs nothing, and the history is the same on every
 * replica. Snapshots expired from the table's metadata are out of reach: the series starts at
 * the oldest snapshot still recorded.
 */

export interface LagPoint {
  /** Instant, ms since the epoch. */
  at: number;
  snapshots: number;
  files: bigint;
  bytes: bigint;
  records: bigint;
  /** How long it had been behind at that instant: t minus the commit time of the oldest pending snapshot (0 when caught up). */
  seconds: number;
}

/** Most points a series holds: the latest ones are kept. */
export const MAX_LAG_POINTS = 1000;
/** Most snapshots of the branch looked at (the latest). */
const MAX_CHAIN = 20_000;

export interface Chain {
  snapshots: Snapshot[];
  index: Map<bigint, number>;
  /** Prefix sums: totals[i] = sum over snapshots[0..i). */
  files: bigint[];
  bytes: bigint[];
  records: bigint[];
}

/** The branch's recorded snapshots with prefix sums of their lag totals: build once per table, ask lagAt of it per consumer. */
export function chainOf(md: TableMetadata, branch: string): Chain {
  const byId = snapshotIndex(md.snapshots);
  const rev: Snapshot[] = [];
  for (const step of walkLineage(byId, branchHead(md, branch))) {
    rev.push(step.snapshot);
    if (rev.length >= MAX_CHAIN) break;
  }
  const snapshots = rev.reverse();
  const files = [0n];
  const bytes = [0n];
  const records = [0n];
  snapshots.forEach((s, i) => {
    const t = snapshotLagTotals(s);
    files.push(files[i]! + t.files);
    bytes.push(bytes[i]! + t.bytes);
    records.push(records[i]! + t.records);
  });
  return { snapshots, index: new Map(snapshots.map((s, i) => [s.snapshotId, i])), files, bytes, records };
}

/** Index in the chain of the last fully processed snapshot; -1 when none of the recorded ones is. */
function processedUpTo(chain: Chain, pos: { snapshotId: bigint | null } | null): number {
  if (!pos || pos.snapshotId === null) return -1;
  // A watermark on an expired snapshot is older than every recorded one.
  return chain.index.get(pos.snapshotId) ?? -1;
}

function pointAt(chain: Chain, at: number, done: number): LagPoint {
  // Snapshots committed by `at` (commit times grow along a branch; a clock step back only shortens this).
  let last = chain.snapshots.length - 1;
  while (last >= 0 && Number(chain.snapshots[last]!.timestampMs) > at) last--;
  if (last <= done) return { at, snapshots: 0, files: 0n, bytes: 0n, records: 0n, seconds: 0 };
  const first = done + 1;
  return {
    at,
    snapshots: last - done,
    files: chain.files[last + 1]! - chain.files[first]!,
    bytes: chain.bytes[last + 1]! - chain.bytes[first]!,
    records: chain.records[last + 1]! - chain.records[first]!,
    seconds: Math.max(0, (at - Number(chain.snapshots[first]!.timestampMs)) / 1000),
  };
}

/** The lag at instant `at` (ms) of a consumer that had processed up to `position` by then. */
export function lagAt(chain: Chain, position: { snapshotId: bigint | null } | null, at: number): LagPoint {
  return pointAt(chain, at, processedUpTo(chain, position));
}

/**
 * The lag series between `since` and `until` (ms): a point at `since`, at every snapshot commit
 * and every watermark move in the window (just before and after a move, so the chart steps), and
 * at `until`. `moves` are the watermark's moves, oldest first (the latest few hundred suffice: a
 * window older than the first one starts from that move's `from`).
 */
export function lagHistory(md: TableMetadata, branch: string, moves: readonly WatermarkMove[], window: { since: number; until: number }): LagPoint[] {
  const chain = chainOf(md, branch);
  const events: { at: number; move: number | null }[] = [];
  for (const s of chain.snapshots) {
    const at = Number(s.timestampMs);
    if (at > window.since && at <= window.until) events.push({ at, move: null });
  }
  moves.forEach((m, i) => {
    const at = m.movedAt.getTime();
    if (at > window.since && at <= window.until) events.push({ at, move: i });
  });
  events.sort((a, b) => a.at - b.at || (a.move ?? -1) - (b.move ?? -1));
  // The position before the window: the last move before it, or the first move's starting point.
  let mi = 0;
  let done = moves.length === 0 ? -1 : processedUpTo(chain, moves[0]!.from);
  const advanceTo = (at: number) => {
    while (mi < moves.length && moves[mi]!.movedAt.getTime() <= at) done = processedUpTo(chain, moves[mi++]!.to);
  };
  advanceTo(window.since);
  // Where the window starts (what "lag growing" compares with), then every change inside it.
  const points: LagPoint[] = [pointAt(chain, window.since, done)];
  for (const e of events) {
    if (e.move !== null) points.push(pointAt(chain, e.at - 1, done)); // the step's top
    advanceTo(e.at);
    points.push(pointAt(chain, e.at, done));
  }
  advanceTo(window.until);
  points.push(pointAt(chain, window.until, done));
  // Too many: the window's start and the latest ones.
  return points.length > MAX_LAG_POINTS ? [points[0]!, ...points.slice(points.length - MAX_LAG_POINTS + 1)] : points;
}
