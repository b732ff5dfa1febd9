import type { Batch, OutboxEntry, Signal } from '../state/index.js';
import type { TriggerPayload, TriggerRange } from '../sinks/index.js';

type Flag = TriggerRange['flag'];

/** Wider of two range flags: one unbounded table makes the union unbounded. */
function widerFlag(a: Flag, b: Flag): Flag {
  const order: Flag[] = ['exact', 'conservative', 'unbounded'];
  return order[Math.max(order.indexOf(a), order.indexOf(b))]!;
}

function less(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  if (typeof a === 'string' && typeof b === 'string') {
    // Decimal strings of 64-bit values compare as numbers; everything else (ISO dates, text) as text.
    if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) return BigInt(a) < BigInt(b);
    return a < b;
  }
  return String(a) < String(b);
}

/**
 * The trigger a sink sends for one outbox entry: the batch's tables with their ICDC tables and
 * ranges, and the ranges' union over the tables (a multi-table subscription gets one batch).
 */
export function triggerPayload(entry: OutboxEntry, batch: Batch | null, signals: Signal[] = [], consumer = batch?.consumer ?? ''): TriggerPayload {
  const union: Record<string, TriggerRange> = {};
  // A trigger fired by signals alone (fire_on_signals, no changes) has no batch: no tables, no ranges.
  const tables = (batch?.tables ?? []).map((t) => {
    const rj = t.ranges as { ranges?: Record<string, TriggerRange>; changed_partitions?: { name: string }[] };
    const ranges = rj.ranges ?? {};
    for (const [field, r] of Object.entries(ranges)) {
      const u = union[field];
      if (!u) union[field] = { ...r };
      else {
        if (r.min !== null && (u.min === null || less(r.min, u.min))) u.min = r.min;
        if (r.max !== null && (u.max === null || less(u.max, r.max))) u.max = r.max;
        u.flag = widerFlag(u.flag, r.flag);
      }
    }
    return {
      table: t.sourceTable,
      fromSnapshotId: t.fromSnapshotId?.toString() ?? null,
      toSnapshotId: t.toSnapshotId.toString(),
      icdcTable: t.icdc?.table ?? null,
      icdcMetadataLocation: t.icdc?.metadataLocation ?? null,
      icdcSnapshotId: t.icdc?.snapshotId.toString() ?? null,
      fileCount: t.fileCount,
      recordCount: t.recordCount.toString(),
      byteCount: t.byteCount.toString(),
      ranges,
      changedPartitions: (rj.changed_partitions ?? []).map((p) => p.name),
    };
  });
  const backfill = (batch?.tables[0]?.ranges as { backfill?: TriggerPayload['backfill'] } | undefined)?.backfill;
  return {
    ...(batch && batch.backfill !== null && backfill ? { backfill } : {}),
    subscription: entry.subscription,
    consumer,
    batchId: batch?.id.toString() ?? null,
    instanceId: batch?.instanceId ?? null,
    seq: entry.seq.toString(),
    dedupKey: entry.dedupKey,
    tables,
    ranges: union,
    createdAt: (batch?.createdAt ?? entry.createdAt).toISOString(),
    ...(entry.detail.partition ? {
      partition: {
        field: entry.detail.partition.field,
        values: entry.detail.partition.values.map((v) => v.value),
        quietValues: entry.detail.partition.values.filter((v) => v.reason === 'quiet').map((v) => v.value),
      },
    } : {}),
    ...(signals.length > 0 ? {
      signals: signals.map((g) => ({
        id: g.id.toString(), name: g.name, params: g.params, sender: g.sender, consumer: g.consumer,
        batchId: g.batchId?.toString() ?? null, createdAt: g.createdAt.toISOString(),
      })),
    } : {}),
  };
}
